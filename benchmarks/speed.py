"""CPU speed of DenseNet-121: ours (plain, inference graph), Keras, PyTorch.

In one process, in alternating rounds, on the same random images (224x224):
  inference at batch 1 and 16: our network in a Session (`plain`), the same
    weights through `densenet.serve.rewrite.optimize` (`inference`), Keras 3's
    `keras.applications.DenseNet121(weights=None)` in a `tf.function`, and,
    when `torch` is importable, torchvision's `densenet121()` in eval mode
    under `torch.inference_mode`, NCHW and channels_last, and when
    `ai_edge_litert` is, our inference graph as LiteRT files (`litert_fp32`,
    `litert_dynamic`, `litert_int8`: `litert.py`), with their sizes;
  one training step at batch 32 (SGD, softmax cross-entropy, batch norm in
    training mode): ours plain, Keras, torchvision NCHW and channels_last.
Every JSON line has the median images/s (or seconds per step) of each, the
per-round values, the ratios to ours, and the fraction of this machine's
SGEMM ceiling each reaches: `--sgemm` times a float32 numpy matmul first
(best of several 2048^3 products), and an implementation's rate is its
forward (inference) or 3x forward (training) FLOPs per second over that.

oneDNN is fixed for a process when TensorFlow loads
(`TF_ENABLE_ONEDNN_OPTS`), so `--onednn both` (the default) runs this script
once per setting in a fresh process (PyTorch is timed in both as the peer);
`--onednn on` / `off` measures in this process. torch is optional (never a
dependency of the library): run with a Python that has it, e.g.

  PYTHONPATH=$PWD $TORCH_VENV/bin/python benchmarks/speed.py  # torch venv
  python benchmarks/speed.py --onednn on --modes infer:1 --rounds 5
  python benchmarks/speed.py --smoke          # tiny network, seconds (tests)

torchvision wheels built against CUDA import on a CPU-only torch when its
two C++-registration modules are stubbed (`_import_torchvision`).
"""

import argparse
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402  pylint: disable=g-import-not-at-top
import inference as inference_benchmark  # noqa: E402  pylint: disable=g-import-not-at-top
import litert as litert_benchmark  # noqa: E402  pylint: disable=g-import-not-at-top

INFERENCE_NAMES = ('ours_plain', 'ours_inference', 'keras', 'torch_nchw',
                   'torch_channels_last', 'litert_fp32', 'litert_dynamic',
                   'litert_int8')
TRAIN_NAMES = ('ours_plain', 'keras', 'torch_nchw', 'torch_channels_last')
# A tiny densenet_X for --smoke (Keras and torchvision build their own
# DenseNet121 at 32x32: too small to matter).
SMOKE_BACKBONE = {'num_units_per_block': [1, 2], 'growth_rate': 4}


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--modes', nargs='+',
                      default=['infer:1', 'infer:16', 'train:32'],
                      help='MODE:BATCH with MODE infer or train')
  parser.add_argument('--onednn', choices=['on', 'off', 'both'],
                      default='both')
  parser.add_argument('--implementations', nargs='+',
                      help='subset of %s (default: all available)' %
                      (INFERENCE_NAMES,))
  parser.add_argument('--image-size', type=int, default=224)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--images-per-round', type=int, default=16,
                      help='inference: batches per round = this / batch')
  parser.add_argument('--no-torch', action='store_true')
  parser.add_argument('--smoke', action='store_true',
                      help='tiny densenet_X, 32x32, batch 2, one round, '
                           'ours only unless --implementations (tests)')
  args = parser.parse_args(argv)
  if args.smoke:
    args.modes, args.image_size, args.rounds = ['infer:2', 'train:2'], 32, 1
    args.images_per_round = 2
    args.implementations = args.implementations or ['ours_plain',
                                                    'ours_inference']
  return args


def parse_mode(text):
  mode, _, batch = text.partition(':')
  if mode not in ('infer', 'train') or not batch.isdigit():
    raise ValueError('--modes: expected infer:N or train:N, got %r.' % text)
  return mode, int(batch)


def _session_config():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.compat.v1.ConfigProto()


def _build_ours(images, smoke, **kwargs):
  import densenet  # pylint: disable=g-import-not-at-top
  if smoke:
    return densenet.densenet_X(images, num_classes=10, scope='densenet_X',
                               **dict(SMOKE_BACKBONE, **kwargs))
  return densenet.densenet_121(images, 1000, **kwargs)


class OursInference(object):
  """Our network in inference mode in a Session, plain or optimized."""

  def __init__(self, image_size, optimized, smoke=False):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tf_slim as slim  # pylint: disable=g-import-not-at-top

    import densenet  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    self.name = 'densenet_X' if smoke else 'densenet_121'
    graph = tf.Graph()
    with graph.as_default():
      tf1.set_random_seed(0)
      self.images = tf1.placeholder(tf.float32,
                                    [None, image_size, image_size, 3],
                                    name='images')
      with slim.arg_scope(densenet.densenet_arg_scope()):
        self.logits, _ = _build_ours(self.images, smoke, is_training=False)
      self.session = tf1.Session(graph=graph, config=_session_config())
      self.session.run(tf1.global_variables_initializer())
      inference_benchmark.randomize_batch_norm_statistics(
          self.session, tf1.global_variables())
    if optimized:
      from densenet.serve import rewrite  # pylint: disable=g-import-not-at-top
      self.session, (self.images, self.logits) = rewrite.optimize(
          self.session, (self.images, self.logits))

  def __call__(self, images):
    return self.session.run(self.logits, {self.images: images})


class OursTrain(object):
  """One SGD step of our network (plain graph) in a Session."""

  def __init__(self, image_size, batch_size, smoke=False):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tf_slim as slim  # pylint: disable=g-import-not-at-top

    import densenet  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    self.name = 'densenet_X' if smoke else 'densenet_121'
    self.num_classes = 10 if smoke else 1000
    graph = tf.Graph()
    with graph.as_default():
      tf1.set_random_seed(0)
      self.images = tf1.placeholder(
          tf.float32, [batch_size, image_size, image_size, 3], name='images')
      self.labels = tf1.placeholder(tf.int32, [batch_size], name='labels')
      with slim.arg_scope(densenet.densenet_arg_scope(weight_decay=0.0)):
        logits, _ = _build_ours(self.images, smoke, is_training=True)
      self.loss = tf1.losses.sparse_softmax_cross_entropy(self.labels, logits)
      with tf.control_dependencies(
          tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
        self.train_op = tf1.train.GradientDescentOptimizer(0.01).minimize(
            self.loss)
      self.session = tf1.Session(graph=graph, config=_session_config())
      self.session.run(tf1.global_variables_initializer())

  def __call__(self, images, labels):
    return self.session.run([self.train_op, self.loss],
                            {self.images: images, self.labels: labels})[1]


def relaunch(script, argv):
  """Runs `python script argv` (this Python) in a fresh process.

  The child gets `TF_ENABLE_ONEDNN_OPTS` from its `--onednn` argument (see
  `common.run_worker`). Its JSON lines are echoed and returned.

  Raises:
    RuntimeError: If the child fails; the message has its stderr tail.
  """
  setting = argv[argv.index('--onednn') + 1]
  return common.run_worker(
      script, argv,
      env={'TF_ENABLE_ONEDNN_OPTS': '1' if setting == 'on' else '0'})


def convolutions(image_size, batch_size=1, smoke=False):
  """The Conv2D ops of our network (training mode), in graph order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_slim as slim  # pylint: disable=g-import-not-at-top

  import densenet  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    images = tf.compat.v1.placeholder(
        tf.float32, [batch_size, image_size, image_size, 3])
    with slim.arg_scope(densenet.densenet_arg_scope()):
      _build_ours(images, smoke, is_training=True)
  return [op for op in graph.get_operations() if op.type == 'Conv2D']


def forward_flops(image_size, smoke=False):
  """FLOPs of one forward pass of our network (2 x MACs of its convolutions)."""
  flops = 0
  for op in convolutions(image_size, smoke=smoke):
    kh, kw, cin, _ = op.inputs[1].shape.as_list()
    flops += 2 * kh * kw * cin * int(np_prod(op.outputs[0].shape[1:]))
  return flops


def np_prod(dims):
  out = 1
  for d in dims:
    out *= int(d)
  return out


def sgemm_gflops(n=2048, repeats=5):
  """Best float32 numpy matmul rate in GFLOP/s (the machine's ceiling)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  a = rng.rand(n, n).astype(np.float32)
  b = rng.rand(n, n).astype(np.float32)
  a @ b  # pylint: disable=pointless-statement
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b  # pylint: disable=pointless-statement
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


# keras.applications.DenseNet121(weights=None) in a tf.function.
KerasInference = inference_benchmark.Keras


class KerasTrain(object):
  """Keras DenseNet121 + SGD(0.01) step in a tf.function."""

  def __init__(self, image_size):
    import keras  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    model = keras.applications.DenseNet121(
        weights=None, input_shape=(image_size, image_size, 3),
        classifier_activation=None)
    optimizer = keras.optimizers.SGD(0.01)

    @tf.function
    def step(images, labels):
      with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
      variables = model.trainable_variables
      optimizer.apply_gradients(zip(tape.gradient(loss, variables),
                                    variables))
      return loss

    self.step = step
    self.tf = tf

  def __call__(self, images, labels):
    return self.step(self.tf.constant(images),
                     self.tf.constant(labels)).numpy()


def _import_torchvision():
  """torch and torchvision, or None; stubs torchvision's C++ registrations.

  The registry's torchvision wheel is built against CUDA; its pure-Python
  models work on a CPU-only torch without these two modules.
  """
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  for name in ('torchvision._meta_registrations',
               'torchvision._autograd_registrations'):
    sys.modules.setdefault(name, types.ModuleType(name))
  import torchvision  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  return torch, torchvision


class Torch(object):
  """torchvision densenet121(): eval under inference_mode, or an SGD step."""

  def __init__(self, torch_modules, channels_last, train):
    torch, torchvision = torch_modules
    torch.manual_seed(0)
    self.torch = torch
    self.model = torchvision.models.densenet121()
    self.format = (torch.channels_last if channels_last else
                   torch.contiguous_format)
    self.model = self.model.to(memory_format=self.format)
    self.train = train
    if train:
      self.model.train()
      self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
    else:
      self.model.eval()

  def _input(self, images):
    return self.torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(
        memory_format=self.format)

  def __call__(self, images, labels=None):
    torch = self.torch
    x = self._input(images)
    if not self.train:
      with torch.inference_mode():
        return self.model(x).numpy()
    self.optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(self.model(x),
                                             torch.from_numpy(labels).long())
    loss.backward()
    self.optimizer.step()
    return float(loss)


def build(name, mode, batch_size, args, torch_modules):
  """The implementation `name` for `mode` ('infer' / 'train'), or None."""
  if name.startswith('litert'):
    if not litert_benchmark.available():
      return None
    return litert_benchmark.classifier(name, args.image_size, args.smoke)
  if name.startswith('torch'):
    if torch_modules is None or args.smoke:
      return None
    return Torch(torch_modules, name == 'torch_channels_last',
                 mode == 'train')
  if name == 'keras':
    return (KerasTrain(args.image_size) if mode == 'train' else
            KerasInference(args.image_size))
  if mode == 'train':
    return OursTrain(args.image_size, batch_size, smoke=args.smoke)
  return OursInference(args.image_size, name == 'ours_inference',
                       smoke=args.smoke)


def measure(args, mode, batch_size, torch_modules, flops, ceiling):
  """Times every implementation of one mode, alternating; one JSON line."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  names = INFERENCE_NAMES if mode == 'infer' else TRAIN_NAMES
  if args.implementations:
    names = [n for n in names if n in args.implementations]
  rng = np.random.RandomState(0)
  images = rng.uniform(-2, 2, (batch_size, args.image_size, args.image_size,
                               3)).astype(np.float32)
  labels = rng.randint(0, 10 if args.smoke else 1000,
                       batch_size).astype(np.int32)
  record_sizes, peak_alone = {}, {}
  run, rss_added = {}, {}
  for name in names:
    before = common.current_rss_gb()
    impl = build(name, mode, batch_size, args, torch_modules)
    if impl is not None:
      before = getattr(impl, 'rss_before_load_gb', before)  # LiteRT's.
      run[name] = ((lambda f=impl: f(images)) if mode == 'infer' else
                   (lambda f=impl: f(images, labels)))
      run[name]()  # Warm-up: graph optimization, caches.
      rss_added[name] = round(common.current_rss_gb() - before, 3)
      if hasattr(impl, 'size_mb'):
        record_sizes[name] = round(impl.size_mb, 2)
        peak_alone[name] = impl.peak_rss_alone_gb
  iterations = (max(1, args.images_per_round // batch_size)
                if mode == 'infer' else 1)
  seconds = {name: [] for name in run}
  for _ in range(args.rounds):
    for name, fn in run.items():
      start = time.perf_counter()
      for _ in range(iterations):
        fn()
      seconds[name].append((time.perf_counter() - start) / iterations)
  median = {n: float(np.median(s)) for n, s in seconds.items()}
  work = flops * batch_size * (1 if mode == 'infer' else 3)
  record = {
      'benchmark': 'speed',
      'mode': mode,
      'batch_size': batch_size,
      'image_size': args.image_size,
      'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS'),
      'rounds': args.rounds,
      'forward_gflop_per_image': round(flops / 1e9, 6),
      'sgemm_gflops': round(ceiling, 1),
      'fraction_of_sgemm': {n: round(work / m / 1e9 / ceiling, 4)
                            for n, m in median.items()},
      'rss_added_gb': rss_added,  # Building it and a first run.
      'peak_rss_gb': round(common.peak_rss_gb(), 3),
  }
  if record_sizes:  # LiteRT files: size, peak RSS of a process of its own.
    record['tflite_mb'] = record_sizes
    record['peak_rss_alone_gb'] = peak_alone
  if mode == 'infer':
    record['images_per_second'] = {n: round(batch_size / m, 3)
                                   for n, m in median.items()}
    record['images_per_second_per_round'] = {
        n: [round(batch_size / t, 3) for t in s] for n, s in seconds.items()}
    ours = 'ours_inference' if 'ours_inference' in median else 'ours_plain'
  else:
    record['seconds_per_step'] = {n: round(m, 4) for n, m in median.items()}
    record['step_seconds_per_round'] = {
        n: [round(t, 4) for t in s] for n, s in seconds.items()}
    ours = 'ours_plain'
  if ours in median:
    # > 1: ours is faster (inference); < 1: ours takes less time (training).
    key = ('speedup_of_%s' if mode == 'infer' else 'time_ratio_%s_to') % ours
    record[key] = {n: round(m / median[ours] if mode == 'infer' else
                            median[ours] / m, 3)
                   for n, m in median.items() if n != ours}
  return common.emit(record)


def main(argv=None):
  args = parse_args(argv)
  modes = [parse_mode(m) for m in args.modes]
  if args.onednn == 'both':
    argv = list(sys.argv[1:] if argv is None else argv)
    records = []
    for setting in ('off', 'on'):
      records += relaunch('speed.py', without_onednn(argv) +
                          ['--onednn', setting])
    return records
  os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1' if args.onednn == 'on' else '0'
  torch_modules = None if args.no_torch else _import_torchvision()
  ceiling = sgemm_gflops(512 if args.smoke else 2048)
  flops = forward_flops(args.image_size, args.smoke)
  return [measure(args, mode, batch_size, torch_modules, flops, ceiling)
          for mode, batch_size in modes]


def without_onednn(argv):
  """`argv` without its `--onednn X` / `--onednn=X`."""
  out, skip = [], False
  for arg in argv:
    if skip:
      skip = False
    elif arg == '--onednn':
      skip = True
    elif not arg.startswith('--onednn='):
      out.append(arg)
  return out


if __name__ == '__main__':
  main()
