"""LiteRT speed: the classifier rows of speed.py, and the segmentation model.

`speed.py` times `LiteRT` (rows litert_fp32, litert_dynamic, litert_int8)
beside ours, Keras and torch. This script times the segmentation model,
DeepLab v3+ on DenseNet-121 at output stride 16 (depth 256, 21 classes),
at 513x513 batch 1: TensorFlow (the optimized inference graph that
`segmentation predict` and the SavedModel run, in a Session) against its
LiteRT files (float32, dynamic range, int8), in alternating rounds, with
each file's size, the RSS each implementation added, and the class-map
agreement of every file with TensorFlow. Weights are random (He) with
randomized batch-norm statistics, the logits centred per class so the class
map varies; int8 is calibrated on `--calibration-images` smooth random
images (speed does not depend on them).

  python benchmarks/litert.py                       # 513x513, 3 rounds
  python benchmarks/litert.py --smoke               # tiny, for the tests

`--spacetobatch` adds the rows `tensorflow_spacetobatch` and
`litert_fp32_spacetobatch`: the same graphs without the inference rewrite's
`atrous_to_dilated` (each atrous convolution as TensorFlow builds it,
SpaceToBatchND-Conv2D-BatchToSpaceND), in the same rounds.
"""

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import common
import inference as inference_benchmark

KINDS = {'litert_fp32': None, 'litert_dynamic': 'dynamic',
         'litert_int8': 'int8'}
SMOKE_BACKBONE = {'num_units_per_block': [1, 2], 'growth_rate': 4}
SMOKE_SEGMENTATION_BACKBONE = {'num_units_per_block': [1, 1, 1, 1],
                               'growth_rate': 4}
_FILES = []  # The temporary directory of the files: made on first use.


def files_dir():
  """A temporary directory for the .tflite files, removed at exit."""
  if not _FILES:
    _FILES.append(tempfile.mkdtemp(prefix='litert-benchmark-'))
    atexit.register(shutil.rmtree, _FILES[0], True)
  return _FILES[0]


def smooth_images(count, size, seed=0):
  """`[count, height, width, 3]` float32 in [0, 255]: upsampled noise."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(seed)
  low = rng.uniform(0, 255, (count, 6, 6, 3)).astype(np.float32)
  images = tf.image.resize(low, size, 'bicubic').numpy()
  return np.clip(images + rng.normal(0, 8, images.shape), 0, 255).astype(
      np.float32)


def classifier_graph_def(image_size, smoke=False):
  """Our DenseNet-121 (or the smoke network) as `densenet export` builds it
  for LiteRT: images in [0, 255] -> logits, probabilities, optimized."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from densenet import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from densenet.serve import rewrite  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  spec = spec_lib.ModelSpec(SMOKE_BACKBONE if smoke else 'densenet_121',
                            num_classes=10 if smoke else 1000)
  with tf.Graph().as_default() as graph:
    tf1.set_random_seed(0)
    images = tf1.placeholder(tf.float32, [None, image_size, image_size, 3],
                             name='images')
    logits, _ = spec.build(spec.normalize(images), is_training=False)
    logits = tf.identity(logits, name='logits')
    probabilities = tf.nn.softmax(logits, name='probabilities')
    session = tf1.Session(graph=graph)
    session.run(tf1.global_variables_initializer())
    inference_benchmark.randomize_batch_norm_statistics(
        session, tf1.global_variables())
    session, _ = rewrite.optimize(session, (images, logits, probabilities))
    graph_def = session.graph.as_graph_def()
    session.close()
  return graph_def


class LiteRT(object):
  """A LiteRT file of a graph, run by `densenet.serve.litert_runtime`."""

  def __init__(self, graph_def, input_size, outputs, quantize, task,
               calibration_images=16, threads=None, name=None):
    from densenet.serve import litert  # pylint: disable=g-import-not-at-top
    from densenet.serve import litert_runtime  # pylint: disable=g-import-not-at-top
    calibration = smooth_images(calibration_images, input_size, seed=7)
    loaders = [lambda x=x: x for x in calibration] if quantize == 'int8' else (
        None)
    started = time.perf_counter()
    content = litert.convert(graph_def, input_size, outputs, quantize,
                             loaders, progress=False)
    self.conversion_seconds = time.perf_counter() - started
    path = os.path.join(files_dir(), '%s_%s_%dx%d.tflite' % (
        task, name or quantize or 'fp32', input_size[0], input_size[1]))
    if os.path.exists(path):
      os.remove(path)
    litert.save(path, content, {
        'task': task, 'input_size': list(input_size), 'outputs': outputs,
        'class_names': [], 'quantization': quantize or 'none'})
    self.size_mb = os.path.getsize(path) / 1e6
    # What loading and running the file adds, not what converting took.
    self.rss_before_load_gb = common.current_rss_gb()
    self.model = litert_runtime.LiteRTModel(path, threads)
    # The peak of a process that only runs it (no TensorFlow).
    (alone,) = common.run_worker('litert.py', ['--worker', path], echo=False)
    self.peak_rss_alone_gb = alone['peak_rss_gb']
    self.output = outputs[0]

  def __call__(self, images):
    return self.model.run(images)[self.output]


def available():
  """Whether ai-edge-litert imports."""
  try:
    import ai_edge_litert.interpreter  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError:
    return False
  return True


# ---------------------------------------------------------------------------
# The segmentation model at 513x513.


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--image-size', type=int, default=513)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--images-per-round', type=int, default=2)
  parser.add_argument('--calibration-images', type=int, default=16)
  parser.add_argument('--kinds', nargs='+', default=sorted(KINDS),
                      choices=sorted(KINDS))
  parser.add_argument('--spacetobatch', action='store_true',
                      help='also time the graphs without atrous_to_dilated')
  parser.add_argument('--smoke', action='store_true',
                      help='tiny backbone, 64x64, 1 round (tests)')
  args = parser.parse_args(argv)
  if args.smoke:
    args.image_size, args.rounds, args.images_per_round = 64, 1, 1
    args.calibration_images = 2
  return args


def segmentation_model_dir(directory, smoke):
  """A model directory of random DeepLab v3+ weights (centred logits)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from densenet import training  # pylint: disable=g-import-not-at-top
  from segmentation import model as model_lib  # pylint: disable=g-import-not-at-top
  from segmentation.config import ModelConfig  # pylint: disable=g-import-not-at-top
  config = ModelConfig(num_classes=21, head='deeplabv3plus', output_stride=16,
                       architecture=(SMOKE_SEGMENTATION_BACKBONE if smoke
                                     else 'densenet_121'),
                       depth=8 if smoke else 256)
  config = config.resolved()
  config.save(directory)
  tf.random.set_seed(0)
  model = training.SlimModel(model_lib.net_fn(config))
  probe = smooth_images(2, (128, 128), seed=999)
  model(config.spec().normalize(probe[:1]), training=False)
  rng = np.random.RandomState(0)  # inference.randomize_batch_norm_statistics
  for variable in model.variables:
    name = variable.name.split(':')[0]
    if name.endswith(('moving_mean', 'beta')):
      variable.assign(rng.normal(0, 0.1, variable.shape))
    elif name.endswith(('moving_variance', 'gamma')):
      variable.assign(rng.uniform(0.5, 1.5, variable.shape))
  mean = model(config.spec().normalize(probe), training=False).numpy().mean(
      (0, 1, 2))
  biases = model.variables_by_name()['logits/biases']
  biases.assign(biases - mean)
  step = tf.Variable(1, dtype=tf.int64)
  training.NameBasedCheckpointManager(
      training.checkpoint_variables(model, None, step), directory).save(1)
  return directory


_GRAPH_DEFS = {}


def classifier(name, image_size, smoke=False, calibration_images=16):
  """speed.py's row `name` (a key of `KINDS`): our classifier's file."""
  key = (image_size, smoke)
  if key not in _GRAPH_DEFS:
    _GRAPH_DEFS[key] = classifier_graph_def(image_size, smoke)
  return LiteRT(_GRAPH_DEFS[key], (image_size, image_size),
                ['logits', 'probabilities'], KINDS[name], 'classification',
                2 if smoke else calibration_images)


def worker(path, batch_size=1):
  """Loads `path` and runs it twice on batch 1 in this process, which
  imports numpy and ai-edge-litert only; one JSON line with its peak RSS."""
  from densenet.serve import litert_runtime  # pylint: disable=g-import-not-at-top
  model = litert_runtime.LiteRTModel(path)
  images = np.random.RandomState(0).uniform(
      0, 255, (batch_size,) + model.input_size + (3,))
  for _ in range(2):
    model.run(images)
  assert 'tensorflow' not in sys.modules
  # VmHWM, not ru_maxrss: Linux keeps the latter across exec, so it would
  # be the forking parent's RSS.
  with open('/proc/self/status') as status:
    peak_kb = [int(line.split()[1]) for line in status
               if line.startswith('VmHWM:')][0]
  record = {'benchmark': 'litert_worker', 'file': path,
            'batch_size': batch_size, 'peak_rss_gb': round(peak_kb / 1e6, 3)}
  print(json.dumps(record), flush=True)  # common.emit would load TF.
  return record


def main(argv=None):
  if argv is None and sys.argv[1:2] == ['--worker']:
    return worker(sys.argv[2])
  args = parse_args(argv)
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # densenet's default.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from segmentation import export  # pylint: disable=g-import-not-at-top
  size = (args.image_size, args.image_size)
  model_dir = segmentation_model_dir(os.path.join(files_dir(), 'model'),
                                     args.smoke)
  outputs = list(export.OUTPUTS)
  graph_def, _, _, _ = export.inference_graph_def(model_dir)  # Any size.
  images = smooth_images(1, size, seed=321)
  before = common.current_rss_gb()
  with tf.Graph().as_default() as graph:
    tf.compat.v1.import_graph_def(graph_def, name='')
  session = tf.compat.v1.Session(graph=graph)
  fetches = [name + ':0' for name in outputs]
  run = {'tensorflow': lambda: session.run(fetches, {'images:0': images})}
  reference = run['tensorflow']()[0]
  added = {'tensorflow': common.current_rss_gb() - before}
  agreement = {}
  fixed, _, _, _ = export.inference_graph_def(model_dir, input_size=size)
  graphs = {kind: fixed for kind in args.kinds}
  if args.spacetobatch:
    from densenet.serve import rewrite  # pylint: disable=g-import-not-at-top
    dilate = rewrite.GraphRewriter.atrous_to_dilated
    rewrite.GraphRewriter.atrous_to_dilated = lambda self: 0
    try:
      plain, _, _, _ = export.inference_graph_def(model_dir)
      graphs['litert_fp32_spacetobatch'], _, _, _ = (
          export.inference_graph_def(model_dir, input_size=size))
    finally:
      rewrite.GraphRewriter.atrous_to_dilated = dilate
    with tf.Graph().as_default() as plain_graph:
      tf.compat.v1.import_graph_def(plain, name='')
    plain_session = tf.compat.v1.Session(graph=plain_graph)
    run['tensorflow_spacetobatch'] = lambda: plain_session.run(
        fetches, {'images:0': images})
    agreement['tensorflow_spacetobatch'] = float(
        (run['tensorflow_spacetobatch']()[0] == reference).mean())
  files = {}
  for kind, kind_graph_def in graphs.items():
    files[kind] = LiteRT(kind_graph_def, size, outputs, KINDS.get(kind),
                         'segmentation', args.calibration_images, name=kind)
    classes = files[kind].model.run(images)['classes']
    added[kind] = common.current_rss_gb() - files[kind].rss_before_load_gb
    agreement[kind] = float((classes == reference).mean())
    run[kind] = lambda model=files[kind].model: model.run(images)
  seconds = {name: [] for name in run}
  for _ in range(args.rounds):
    for name, fn in run.items():
      start = time.perf_counter()
      for _ in range(args.images_per_round):
        fn()
      seconds[name].append((time.perf_counter() - start) /
                           args.images_per_round)
  median = {name: float(np.median(s)) for name, s in seconds.items()}
  return common.emit({
      'benchmark': 'litert_segmentation',
      'model': 'deeplabv3plus/%s/os16' % (
          'smoke' if args.smoke else 'densenet_121'),
      'image_size': args.image_size, 'batch_size': 1, 'rounds': args.rounds,
      'seconds_per_image': {n: round(m, 4) for n, m in median.items()},
      'seconds_per_round': {n: [round(t, 4) for t in s]
                            for n, s in seconds.items()},
      'speedup_over_tensorflow': {n: round(median['tensorflow'] / m, 3)
                                  for n, m in median.items()
                                  if n != 'tensorflow'},
      'class_map_agreement_with_tensorflow': {
          n: round(a, 6) for n, a in agreement.items()},
      'tflite_mb': {n: round(f.size_mb, 2) for n, f in files.items()},
      'conversion_seconds': {n: round(f.conversion_seconds, 1)
                             for n, f in files.items()},
      'rss_added_gb': {n: round(a, 3) for n, a in added.items()},
      'peak_rss_alone_gb': {n: f.peak_rss_alone_gb for n, f in files.items()},
      'peak_rss_gb': round(common.peak_rss_gb(), 3),
      'threads': files[args.kinds[0]].model.threads if files else None,
  })


if __name__ == '__main__':
  sys.exit(0 if main() else 1)
