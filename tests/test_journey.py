"""The journey: train on an image folder, then use what was trained.

One tiny model is trained once (`densenet train --image-folder`, a few
steps on generated 3-class images, normalization 'pudae' so that an entry
point falling back on the default 'torch' shows), and its run directory is
given to every command that takes weights: `densenet evaluate
--image-folder test/`, `densenet evaluate --checkpoint`, `densenet classify`,
`densenet export` (reloaded in a fresh process), `load_pretrained` and
`densenet.keras_model(checkpoint=...)`. They must agree with one reference:
the network built from the run's config.json and restored by name, fed the
test images as training's image folder stores them.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
from PIL import ImageDraw
import pytest
import tensorflow as tf

import densenet
from densenet import cli
from densenet import preprocessing
from densenet import spec as spec_lib
from densenet.classification import evaluation
from densenet.classification import pictures
from densenet.datasets import image_folder
from densenet.serve import litert_runtime
from densenet.training import checkpoints as training_checkpoints
from densenet.training import slim_model
from densenet.weights import checkpoints
from densenet.weights import runs
from test_faults import strict_json  # pylint: disable=g-bad-import-order

CLASSES = ('circle', 'square', 'stripes')
MODEL = {'num_units_per_block': [1, 1], 'growth_rate': 4}
IMAGE_SIZE = 16
STEPS = 4


def _picture(kind, rng):
  """A noisy shape on a dark background, 20 to 30 pixels a side."""
  width, height = (int(v) for v in rng.randint(20, 31, 2))
  image = Image.new('RGB', (width, height),
                    tuple(int(v) for v in rng.randint(0, 90, 3)))
  draw = ImageDraw.Draw(image)
  color = tuple(int(v) for v in rng.randint(150, 256, 3))
  r = min(width, height) * 0.35
  box = [width / 2 - r, height / 2 - r, width / 2 + r, height / 2 + r]
  if kind == 'circle':
    draw.ellipse(box, fill=color)
  elif kind == 'square':
    draw.rectangle(box, fill=color)
  else:
    for x in range(0, width, 6):
      draw.rectangle([x, 0, x + 2, height], fill=color)
  pixels = np.asarray(image, np.float32) + rng.normal(0, 10, (height, width,
                                                             3))
  return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_folder(root, classes, count, rng):
  """`count` images of each class in `root/<class>/` (the README's Deploy
  walk-through used `write_folder('photos/train', CLASSES, 40, rng)` then
  `write_folder('photos/test', CLASSES, 10, rng)`, rng seeded with 0)."""
  for kind in classes:
    os.makedirs(os.path.join(root, kind))
    for i in range(count):
      _picture(kind if kind in CLASSES else 'circle', rng).save(
          os.path.join(root, kind, '%d.%s' % (i, ('png', 'jpg')[i % 2])))
  return root


@pytest.fixture(scope='module')
def journey(tmp_path_factory):
  """The trained run, its test folder and the reference logits."""
  directory = str(tmp_path_factory.mktemp('journey'))
  rng = np.random.RandomState(0)
  paths = {name: os.path.join(directory, name) for name in
           ('train', 'test', 'data', 'run')}
  write_folder(paths['train'], CLASSES, 8, rng)
  write_folder(paths['test'], CLASSES, 4, rng)
  assert cli.main([
      'train', '--image-folder', paths['train'], '--data-dir', paths['data'],
      '--train-dir', paths['run'], '--model', json.dumps(MODEL),
      '--image-size', str(IMAGE_SIZE), '--validation-fraction', '0.25',
      '--normalization', 'pudae', '--batch-size', '6', '--num-steps',
      str(STEPS), '--eval-every-epochs', '0', '--no-progress', '--json']) == 0
  files = sorted(os.path.join(paths['test'], kind, name) for kind in CLASSES
                 for name in os.listdir(os.path.join(paths['test'], kind)))
  # The reference: the run's network restored by name (as `densenet
  # evaluate` does), on the images as training's image folder stores them.
  with open(os.path.join(paths['run'], 'config.json')) as f:
    config = json.load(f)
  assert config['normalization'] == 'pudae'
  spec = spec_lib.ModelSpec.from_config(config)
  pixels = np.stack([image_folder.load_image(path, IMAGE_SIZE)
                     for path in files])
  net = slim_model.SlimModel(spec.net_fn())
  images = spec.normalize(tf.constant(pixels))
  net(images, training=False)
  prefix = os.path.join(paths['run'], 'model.ckpt-%d' % STEPS)
  checkpoints.restore_by_name(net.variables_by_name(), prefix).check('run')
  logits = net(images, training=False).numpy()
  assert logits.shape == (len(files), 3) and logits.std() > 1e-3
  return dict(paths, prefix=prefix, files=files, pixels=pixels,
              logits=logits, labels=[CLASSES.index(os.path.basename(
                  os.path.dirname(path))) for path in files])


def _softmax(logits):
  exp = np.exp(logits - logits.max(axis=1, keepdims=True))
  return exp / exp.sum(axis=1, keepdims=True)


def test_evaluate_an_image_folder(journey, capsys, tmp_path):
  png = str(tmp_path / 'confusion.png')
  assert cli.main(['evaluate', '--train-dir', journey['run'],
                   '--image-folder', journey['test'], '--confusion-png', png,
                   '--json', '--no-progress']) == 0
  results = strict_json(capsys.readouterr().out)  # One document alone.
  labels = np.array(journey['labels'])
  predictions = journey['logits'].argmax(axis=1)
  expected = np.zeros([3, 3], int)
  np.add.at(expected, (labels, predictions), 1)
  assert results['num_examples'] == 12
  assert results['classes'] == list(CLASSES)
  assert results['confusion_matrix'] == expected.tolist()
  assert results['top1_accuracy'] == pytest.approx(np.trace(expected) / 12)
  assert results['top5_accuracy'] == 1.0  # Three classes.
  assert results['global_step'] == STEPS
  assert results['image_size'] == [IMAGE_SIZE, IMAGE_SIZE]
  assert results['missing_classes'] == []
  for i, name in enumerate(CLASSES):
    assert results['per_class'][name] == {
        'num_examples': 4, 'correct': int(expected[i, i]),
        'accuracy': expected[i, i] / 4}
  log_probabilities = np.log(_softmax(journey['logits'].astype(np.float64)))
  assert results['loss'] == pytest.approx(
      -log_probabilities[np.arange(12), labels].mean(), rel=1e-4)
  # The picture: each cell shaded by its share of its row.
  picture = Image.open(png).convert('RGB')
  for row in range(3):
    for column in range(3):
      left, top, _, _ = pictures.cell_box(list(CLASSES), row, column,
                                          title='x')
      assert picture.getpixel((left + 2, top + 2)) == pictures.cell_color(
          expected[row, column] / 4), (row, column)

  # Text, with the picture's default place said; a folder lacking a class.
  lacking = str(tmp_path / 'lacking')
  shutil.copytree(journey['test'], lacking, ignore=shutil.ignore_patterns(
      'stripes'))
  assert cli.main(['evaluate', '--checkpoint', journey['run'],
                   '--image-folder', lacking, '--no-progress']) == 0
  out = capsys.readouterr().out.splitlines()
  default_png = os.path.join(journey['run'], 'eval', 'confusion_lacking.png')
  assert out[0].startswith('top-1 accuracy %.2f%% (%d of 8 images)' % (
      100 * np.trace(expected[:2, :2]) / 8, np.trace(expected[:2, :2])))
  assert 'not in the folder: stripes' in out
  assert out[-1] == 'confusion matrix picture: %s' % default_png
  assert os.path.isfile(default_png)

  # A class the model was not trained on: one line naming it, nothing drawn.
  write_folder(str(tmp_path / 'other'), ('circle', 'triangle'), 1,
                np.random.RandomState(1))
  assert cli.main(['evaluate', '--checkpoint', journey['prefix'],
                   '--image-folder', str(tmp_path / 'other')]) == 2
  error = capsys.readouterr().err.strip().splitlines()
  assert error == ['densenet evaluate: error: %s has class folder(s) triangle '
                   'that the model was not trained on; its classes are: '
                   'circle, square, stripes.' % (tmp_path / 'other')]
  assert not os.path.exists(os.path.join(journey['run'], 'eval',
                                         'confusion_other.png'))


def test_evaluate_a_checkpoint_alone(journey, capsys):
  """Issue 22 case 7: no --train-dir, no --model; the run's normalization
  ('pudae'), not the dataset's ('torch')."""
  with open(os.path.join(journey['run'], 'results.json')) as f:
    trained = json.load(f)['validation']
  assert cli.main(['evaluate', '--checkpoint', journey['prefix'],
                   '--json']) == 0
  results = json.loads(capsys.readouterr().out)
  assert results['num_examples'] == trained['num_examples'] == 6
  assert results['global_step'] == STEPS
  assert results['top1_error'] == pytest.approx(trained['top1_error'])
  assert results['loss'] == pytest.approx(trained['loss'], rel=1e-5)


_LOADER = r'''
import sys
import numpy as np
import tensorflow as tf
export_dir, inputs_path, outputs_path = sys.argv[1:]
model = tf.saved_model.load(export_dir)
outputs = model.signatures['serving_images'](
    images=tf.constant(np.load(inputs_path)))
assert 'densenet' not in sys.modules
np.savez(outputs_path, logits=outputs['logits'].numpy(),
         names=outputs['top_k_names'].numpy().astype(bytes))
'''


def test_every_entry_point_takes_the_run(journey, capsys, tmp_path):
  reference = journey['logits']
  probabilities = _softmax(reference.astype(np.float64))
  files = journey['files']

  # densenet classify --checkpoint DIR: the dataset's class names, all 3
  # of them by default (not 5).
  assert cli.main(['classify', *files, '--checkpoint', journey['run'],
                   '--json']) == 0
  classified = json.loads(capsys.readouterr().out)
  for i, entry in enumerate(classified):
    order = np.argsort(-reference[i])
    assert [p['class'] for p in entry['predictions']] == [
        CLASSES[j] for j in order]
    np.testing.assert_allclose([p['probability'] for p in entry[
        'predictions']], probabilities[i, order], atol=1e-5)

  # load_pretrained: names, geometry and logits of the run.
  model = densenet.load_pretrained(None, journey['prefix'])
  try:
    assert model.class_names == list(CLASSES)
    assert (model.resize_size, model.crop_size) == (IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_allclose(model.logits(files), reference, atol=1e-4)
  finally:
    model.close()

  # keras_model(checkpoint=DIR): RGB in [0, 255], normalized as trained.
  keras = densenet.keras_model(None, num_classes=3,
                               checkpoint=journey['run'])
  np.testing.assert_allclose(
      keras(journey['pixels'].astype(np.float32), training=False).numpy(),
      reference, atol=1e-4)

  # densenet export --checkpoint PREFIX, served without this library.
  export_dir = str(tmp_path / 'export')
  assert cli.main(['export', export_dir, '--checkpoint',
                   journey['prefix']]) == 0
  np.save(str(tmp_path / 'in.npy'), journey['pixels'].astype(np.float32))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)
  subprocess.run([sys.executable, '-c', _LOADER, export_dir,
                  str(tmp_path / 'in.npy'), str(tmp_path / 'out.npz')],
                 check=True, env=env, cwd=str(tmp_path), timeout=120)
  served = np.load(str(tmp_path / 'out.npz'))
  np.testing.assert_allclose(served['logits'], reference, atol=1e-4)
  assert [[name.decode() for name in row] for row in served['names']] == [
      [CLASSES[j] for j in np.argsort(-row)] for row in reference]

  # densenet export --format litert: the run's classes, geometry and logits.
  tflite = str(tmp_path / 'run.tflite')
  assert cli.main(['export', '--checkpoint', journey['prefix'], '--format',
                   'litert', tflite]) == 0
  lite = litert_runtime.LiteRTClassifier(tflite)
  assert lite.class_names == list(CLASSES)
  assert (lite.resize_size, lite.crop_size) == (IMAGE_SIZE, IMAGE_SIZE)
  assert lite.metadata['normalization'] == 'pudae'
  np.testing.assert_allclose(lite.run(journey['pixels'])['logits'], reference,
                             atol=1e-4)


def test_a_checkpoint_without_its_run(journey, capsys, tmp_path):
  """Copied away from config.json: defaults ('torch', numbered classes), and
  the architecture must be given for a densenet_X scope."""
  bare = tmp_path / 'bare'
  bare.mkdir()
  for name in os.listdir(journey['run']):
    if name.startswith('model.ckpt-%d.' % STEPS):
      shutil.copy(os.path.join(journey['run'], name), bare)
  prefix = str(bare / ('model.ckpt-%d' % STEPS))
  assert cli.main(['classify', journey['files'][0], '--checkpoint',
                   prefix]) == 2
  assert ("holds a network under the scope 'densenet_X', but no config.json "
          "or metadata next to it records its architecture; give the "
          "architecture"
          in capsys.readouterr().err)
  model = densenet.load_pretrained(MODEL, prefix, resize_size=IMAGE_SIZE,
                                   crop_size=IMAGE_SIZE)
  try:
    assert model.class_names == ['0', '1', '2']
    logits = model.logits(journey['pixels'])
  finally:
    model.close()
  # The same weights without normalization: fed 'torch'-normalized pixels.
  keras = densenet.keras_model(MODEL, num_classes=3, checkpoint=prefix)
  torch_normalized = preprocessing.normalize(journey['pixels'], 'torch')
  np.testing.assert_allclose(keras(torch_normalized, training=False).numpy(),
                             logits, atol=1e-4)
  assert np.abs(logits - journey['logits']).max() > 1e-3  # Not 'pudae'.


def test_a_segmentation_run_is_not_a_classifier(journey, capsys, tmp_path):
  from segmentation import model as model_lib  # pylint: disable=g-import-not-at-top
  from segmentation.config import ModelConfig  # pylint: disable=g-import-not-at-top
  run = str(tmp_path / 'segmentation')
  config = ModelConfig(num_classes=3, backbone=MODEL, output_stride=8,
                       head='fcn', class_names=['bg', 'a', 'b']).resolved()
  model = slim_model.SlimModel(model_lib.net_fn(config))
  model(tf.zeros([1, 32, 32, 3]), training=False)
  step = tf.Variable(0, dtype=tf.int64)
  training_checkpoints.NameBasedCheckpointManager(
      training_checkpoints.checkpoint_variables(model, global_step=step),
      run).save(0)
  config.save(run)
  for command in (['classify', journey['files'][0]],
                  ['export', str(tmp_path / 'export')],
                  ['evaluate', '--image-folder', journey['test']]):
    assert cli.main(command + ['--checkpoint', run]) == 2, command
    error = capsys.readouterr().err
    assert ("%s is a segmentation model (head 'fcn' on densenet_X), not a "
            "classifier" % run) in error, error
  assert not os.path.exists(str(tmp_path / 'export'))
  # Its backbone is still weights: keras_model gives its features.
  backbone = densenet.keras_model(None, checkpoint=run)
  kernel = 'densenet_X/conv1/weights'
  np.testing.assert_array_equal(
      backbone.variables_by_name()[kernel].numpy(),
      model.variables_by_name()[kernel].numpy())
  assert backbone(tf.zeros([1, 32, 32, 3])).shape[-1] == (
      model.variables_by_name()['densenet_X/postnorm/beta'].shape[0])


def test_classification_metrics_by_hand():
  names = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
  logits = np.array([[7, 1, 0, 0, 0, 0, 0],     # a as a
                     [0, 6, 5, 4, 3, 2, 1],     # c as b, c second
                     [6, 1, 2, 3, 4, 5, 0],     # b as a, b sixth
                     [1, 0, 9, 0, 0, 0, 0],     # c as c
                     [0, 0, 0, 0, 0, 0, 3.]])   # a as g, a in the top 5
  results = evaluation.classification_metrics(logits, [0, 2, 1, 2, 0],
                                              names)
  assert results['top1_accuracy'] == 2 / 5
  assert results['top5_accuracy'] == 4 / 5
  assert results['classes'] == ['a', 'b', 'c', 'g']  # d-f: absent, unused.
  assert results['confusion_matrix'] == [[1, 0, 0, 1], [1, 0, 0, 0],
                                         [0, 1, 1, 0], [0, 0, 0, 0]]
  assert results['missing_classes'] == ['d', 'e', 'f', 'g']
  assert results['per_class'] == {
      'a': {'num_examples': 2, 'correct': 1, 'accuracy': 0.5},
      'b': {'num_examples': 1, 'correct': 0, 'accuracy': 0.0},
      'c': {'num_examples': 2, 'correct': 1, 'accuracy': 0.5}}


def test_describe_a_bare_checkpoint(tmp_path):
  """No metadata, no config.json: the scope names the model if it can."""
  for scope, model in (('densenet_bc_10_k4', 'densenet_bc_10_k4'),
                       ('densenet_X', None)):
    prefix = checkpoints.save({
        scope + '/conv1/weights': np.zeros([3, 3, 3, 8], np.float32),
        'global_step': np.int64(3),
        'optimizer/iter': np.int64(3)}, str(tmp_path / scope / 'model.ckpt-3'))
    found, metadata = runs.describe(prefix)
    assert found == prefix
    assert (metadata['model'], metadata['global_step'], metadata['recorded'],
            metadata['normalization'], metadata['task'],
            metadata['run_dir']) == (model, 3, [], 'torch', None, None)
