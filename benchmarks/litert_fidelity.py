"""LiteRT fidelity: float32 files vs TensorFlow, quantized ones vs float32.

Every file is made by the commands (`densenet export` / `segmentation export
--format litert`) and run by `densenet.serve.litert_runtime`. Parts:

  keras         keras.applications.DenseNet121/169/201(weights=None) with
                random batch-norm statistics (as tests/test_convert.py),
                saved as .h5, `densenet convert`ed and exported: max |logit
                difference| of the float32 file against the TensorFlow
                inference graph (`load_pretrained`) on smooth random images
                (target <= 1e-4).
  int8          a small DenseNet trained here on a generated image folder (8
                classes: stripes at 4 orientations x 2 periods, PNG files):
                top-1 agreement with float32 and accuracy on a held-out
                folder of the int8 (calibrated on the training folder),
                dynamic-range and float16 files (targets: int8 agreement >=
                99 %, accuracy drop <= 0.5 points).
  segmentation  the demo model (`segmentation demo`; trained with
                --demo-steps first if --demo-dir has none): class maps of
                the float32 file against TensorFlow over the validation
                records (target >= 99.99 % of pixels) and the mIoU of every
                file against TensorFlow's (int8 drop target <= 0.01).

  python benchmarks/litert_fidelity.py                  # all parts
  python benchmarks/litert_fidelity.py --parts int8 --steps 400
"""

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import common

SIZE = 64
NUM_CLASSES = 8
SMALL = {'num_units_per_block': [2, 3, 3, 2], 'growth_rate': 12,
         'num_initial_filters': 24}


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--parts', nargs='+', default=['keras', 'int8',
                                                     'segmentation'],
                      choices=['keras', 'int8', 'segmentation'])
  parser.add_argument('--work-dir',
                      help='where the files go (default: a temporary '
                      'directory, removed at exit)')
  parser.add_argument('--depths', type=int, nargs='+', default=[121, 169, 201])
  parser.add_argument('--steps', type=int, default=800,
                      help='int8: training steps of the small DenseNet')
  parser.add_argument('--calibration-size', type=int, default=200)
  parser.add_argument('--demo-dir', default=os.path.join('runs', 'demo'))
  parser.add_argument('--demo-steps', type=int, default=600)
  return parser.parse_args(argv)


def _run(main, argv):
  status = main(argv)
  if status:
    raise RuntimeError('%s failed (exit %d)' % (' '.join(argv), status))


def keras_part(args):
  """Float32 LiteRT logits vs the TF inference graph, Keras weights."""
  import keras  # pylint: disable=g-import-not-at-top

  from densenet import cli  # pylint: disable=g-import-not-at-top
  from densenet.serve import litert_runtime  # pylint: disable=g-import-not-at-top
  from densenet.serve import pretrained  # pylint: disable=g-import-not-at-top
  import litert as litert_benchmark  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  images = litert_benchmark.smooth_images(8, (224, 224), seed=5)
  rows = {}
  for depth in args.depths:
    model = getattr(keras.applications, 'DenseNet%d' % depth)(
        weights=None, classifier_activation=None)
    for layer in model.layers:  # tests/test_convert.py's _randomize.
      weights = layer.get_weights()
      if len(weights) == 4:
        n = weights[0].shape[0]
        layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
                           rng.normal(0, 0.2, n), rng.uniform(0.5, 1.5, n)])
    prefix = os.path.join(args.work_dir, 'keras%d' % depth)
    model.save_weights(prefix + '.weights.h5')
    del model
    _run(cli.main, ['convert', prefix + '.weights.h5', prefix + '/model.ckpt'])
    _run(cli.main, ['export', prefix + '.tflite', '--checkpoint',
                    prefix + '/model.ckpt'])
    classifier = pretrained.load_pretrained(None, prefix + '/model.ckpt')
    expected = classifier.logits(images)
    classifier.close()
    got = litert_runtime.LiteRTModel(prefix + '.tflite').run(images)['logits']
    rows['densenet_%d' % depth] = {
        'max_abs_logit_difference': float(np.abs(got - expected).max()),
        'logit_std': float(expected.std()),
        'top1_agreement': float((got.argmax(1) == expected.argmax(1)).mean()),
        'tflite_mb': round(os.path.getsize(prefix + '.tflite') / 1e6, 2)}
  return common.emit({'benchmark': 'litert_fidelity', 'part': 'keras',
                      'images': len(images), 'models': rows})


def stripes(label, rng):
  """A `[SIZE, SIZE, 3]` uint8 image of class `label`: orientation
  label % 4, period short (label < 4) or long."""
  y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
  angle = np.pi / 4 * (label % 4) + rng.uniform(-0.3, 0.3)
  period = rng.uniform(4, 8) if label < 4 else rng.uniform(8, 14)
  wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period +
                rng.uniform(0, 2 * np.pi))[..., None]
  image = rng.uniform(0, 120, 3) + rng.uniform(60, 135) * (wave + 1)
  return np.clip(image + rng.normal(0, 40, image.shape), 0, 255).astype(
      np.uint8)


def write_folder(root, per_class, seed):
  rng = np.random.RandomState(seed)
  paths, labels = [], []
  for label in range(NUM_CLASSES):
    folder = os.path.join(root, 'class_%d' % label)
    os.makedirs(folder, exist_ok=True)
    for i in range(per_class):
      paths.append(os.path.join(folder, '%04d.png' % i))
      Image.fromarray(stripes(label, rng)).save(paths[-1])
      labels.append(label)
  return paths, np.array(labels)


def train_small(paths, labels, steps):
  """Weights of `SMALL` trained on the images (Adam, batch 32)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_slim as slim  # pylint: disable=g-import-not-at-top

  import densenet  # pylint: disable=g-import-not-at-top
  from densenet import preprocessing  # pylint: disable=g-import-not-at-top
  from densenet.weights import assign  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  pixels = np.stack([preprocessing.load_image(p, None, None) for p in paths])
  rng = np.random.RandomState(0)
  with tf.Graph().as_default():
    tf1.set_random_seed(0)
    images = tf1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
    targets = tf1.placeholder(tf.int64, [None])
    rate = tf1.placeholder(tf.float32, [])
    with slim.arg_scope(densenet.densenet_arg_scope(batch_norm_decay=0.95)):
      logits, _ = densenet.densenet_X(preprocessing.normalize(images),
                                      num_classes=NUM_CLASSES,
                                      is_training=True, **SMALL)
    loss = tf1.losses.sparse_softmax_cross_entropy(targets, logits)
    with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
      train_op = tf1.train.AdamOptimizer(rate).minimize(
          loss + tf1.losses.get_regularization_loss())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      for step in range(steps):
        batch = rng.choice(len(paths), 32)
        session.run(train_op, {images: pixels[batch], targets: labels[batch],
                               rate: 3e-3 if step < steps * 0.7 else 3e-4})
      return assign.session_weights(session, 'densenet_X', [
          v for v in tf1.global_variables('densenet_X/')
          if 'Adam' not in v.op.name])


def int8_part(args):
  """Quantized files vs float32 on a trained small DenseNet."""
  from densenet import cli  # pylint: disable=g-import-not-at-top
  from densenet import preprocessing  # pylint: disable=g-import-not-at-top
  from densenet.serve import litert_runtime  # pylint: disable=g-import-not-at-top
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  root = os.path.join(args.work_dir, 'stripes')
  train_paths, train_labels = write_folder(os.path.join(root, 'train'), 100, 0)
  test_paths, test_labels = write_folder(os.path.join(root, 'test'), 50, 1)
  started = time.time()
  weights = train_small(train_paths, train_labels, args.steps)
  training_seconds = time.time() - started
  checkpoint = checkpoints.save_checkpoint(weights, {
      'model': SMALL, 'num_classes': NUM_CLASSES, 'normalization': 'torch',
      'batch_norm_epsilon': 1.001e-5, 'source': 'litert_fidelity'},
                                           os.path.join(root, 'model.ckpt'))
  test = np.stack([preprocessing.load_image(p, None, None)
                   for p in test_paths]).astype(np.float32)
  geometry = ['--resize-size', str(SIZE), '--crop-size', str(SIZE)]
  rows, reference = {}, None
  for kind in ('fp32', 'int8', 'dynamic', 'float16'):
    path = os.path.join(root, '%s.tflite' % kind)
    options = [] if kind == 'fp32' else ['--quantize', kind]
    if kind == 'int8':
      options += ['--calibration', os.path.join(root, 'train'),
                  '--calibration-size', str(args.calibration_size)]
    started = time.time()
    _run(cli.main, ['export', path, '--checkpoint', checkpoint] + geometry +
         options)
    seconds = time.time() - started
    model = litert_runtime.LiteRTModel(path)
    predicted = np.concatenate([model.run(test[i:i + 50])['logits']
                                for i in range(0, len(test), 50)]).argmax(1)
    reference = predicted if kind == 'fp32' else reference
    rows[kind] = {'accuracy': float((predicted == test_labels).mean()),
                  'top1_agreement_with_fp32': float(
                      (predicted == reference).mean()),
                  'tflite_kb': round(os.path.getsize(path) / 1e3, 1),
                  'export_seconds': round(seconds, 1)}
  for row in rows.values():
    row['accuracy_drop_points'] = round(
        100 * (rows['fp32']['accuracy'] - row['accuracy']), 2)
  return common.emit({
      'benchmark': 'litert_fidelity', 'part': 'int8', 'model': SMALL,
      'image_size': SIZE, 'classes': NUM_CLASSES,
      'train_images': len(train_paths), 'test_images': len(test_paths),
      'steps': args.steps, 'training_seconds': round(training_seconds, 1),
      'calibration_images': min(args.calibration_size, len(train_paths)),
      'files': rows})


def segmentation_part(args):
  """The demo model: float32 class maps and every file's mIoU vs TF."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from segmentation import cli  # pylint: disable=g-import-not-at-top
  from segmentation import data  # pylint: disable=g-import-not-at-top
  from segmentation import evaluation  # pylint: disable=g-import-not-at-top
  from segmentation import litert as litert_run  # pylint: disable=g-import-not-at-top
  from segmentation import tasks  # pylint: disable=g-import-not-at-top
  model_dir = os.path.join(args.demo_dir, 'model')
  records = os.path.join(args.demo_dir, 'records')
  if not tf.train.latest_checkpoint(model_dir):
    _run(cli.main, ['demo', '--work-dir', args.demo_dir, '--steps',
                    str(args.demo_steps)])
  val = os.path.join(records, 'val-*')
  reference = tasks.evaluate(model_dir, val, progress=False, summary_dir='')
  model, config, _, _ = tasks.load_model(model_dir)
  predict = evaluation.make_predict_fn(model, config)
  rows = {}
  for kind in ('fp32', 'int8', 'dynamic', 'float16'):
    path = os.path.join(args.work_dir, 'demo_%s.tflite' % kind)
    options = [] if kind == 'fp32' else ['--quantize', kind]
    if kind == 'int8':
      options += ['--calibration', os.path.join(records, 'train-*'),
                  '--calibration-size', str(args.calibration_size)]
    _run(cli.main, ['export', '--model-dir', model_dir, path,
                    '--input-size', '128,128'] + options)
    lite = litert_run.load(path)
    agree, pixels = 0, 0
    for images, _, _ in data.make_dataset(val, False, normalization=None):
      ours = litert_run.class_map(lite, images.numpy()[0].astype(np.uint8))
      theirs = predict(config.spec().normalize(images)).numpy()[0]
      agree += int((ours == theirs).sum())
      pixels += theirs.size
    results = litert_run.evaluate(path, val, progress=False)
    rows[kind] = {'class_map_agreement_with_tf': agree / pixels,
                  'mean_iou': results['mean_iou'],
                  'mean_iou_drop': reference['mean_iou'] - results['mean_iou'],
                  'tflite_mb': round(os.path.getsize(path) / 1e6, 2)}
  return common.emit({
      'benchmark': 'litert_fidelity', 'part': 'segmentation',
      'model_dir': model_dir, 'global_step': reference['global_step'],
      'val_images': reference['num_images'],
      'tensorflow_mean_iou': reference['mean_iou'], 'files': rows})


def main(argv=None):
  args = parse_args(argv)
  import densenet  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401  (oneDNN on, its default)
  if not args.work_dir:
    args.work_dir = tempfile.mkdtemp(prefix='litert-fidelity-')
    atexit.register(shutil.rmtree, args.work_dir, True)
  os.makedirs(args.work_dir, exist_ok=True)
  parts = {'keras': keras_part, 'int8': int8_part,
           'segmentation': segmentation_part}
  return [parts[name](args) for name in args.parts]


if __name__ == '__main__':
  sys.exit(0 if main() else 1)
