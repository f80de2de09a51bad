"""One training step (SGD + softmax cross-entropy): time and peak memory.

Compares Keras' DenseNet121 (`keras.applications`, weights=None, in a
`tf.function`), our densenet_121 (a TF1 graph in a Session), our
densenet_121 with `memory_efficient=True` and, when PyTorch is importable,
torchvision's densenet121 with `memory_efficient=False` and `True` (NCHW,
PyTorch's default threads). `--onednn` runs the TensorFlow workers with
TF_ENABLE_ONEDNN_OPTS=1 (set before they import TensorFlow). Peak memory is
the peak resident set size of a process, so the driver runs every
(implementation, batch size) in its own worker process, in turn, and prints
the worker's JSON line; a last line summarises the ratios per batch size
(memory-efficient / plain, ours / Keras). Timings on a shared machine drift:
compare lines of one run.

  python benchmarks/train_step.py                        # batch 16 and 32
  python benchmarks/train_step.py --batch-sizes 16 --implementations plain \\
      memory_efficient
  python benchmarks/train_step.py --smoke                # tiny, for the tests
  python benchmarks/train_step.py --batch-sizes 32 --onednn

A worker alone (what the driver runs):

  python benchmarks/train_step.py --worker --implementation plain \\
      --batch-size 32
  python benchmarks/train_step.py --worker --implementation memory_efficient \\
      --cifar-depth 190 --growth-rate 12 --batch-size 64 --image-size 32
"""

import argparse
import importlib.util
import sys
import time

import numpy as np

import common

IMPLEMENTATIONS = ('keras', 'plain', 'memory_efficient', 'torch',
                   'torch_memory_efficient')
TORCH = ('torch', 'torch_memory_efficient')


def torch_available():
  return importlib.util.find_spec('torch') is not None


def default_implementations():
  """Ours and Keras; torchvision's too when PyTorch is importable."""
  return [name for name in IMPLEMENTATIONS
          if name not in TORCH or torch_available()]


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--implementations', nargs='+', choices=IMPLEMENTATIONS,
                      default=default_implementations())
  parser.add_argument('--batch-sizes', type=int, nargs='+', default=[16, 32])
  parser.add_argument('--image-size', type=int, default=224)
  parser.add_argument('--steps', type=int, default=2,
                      help='timed steps after 1 warm-up step (median time)')
  parser.add_argument('--smoke', action='store_true',
                      help='32x32, batch 2, 1 timed step (tests)')
  parser.add_argument('--onednn', action='store_true',
                      help='TensorFlow workers with TF_ENABLE_ONEDNN_OPTS=1')
  worker = parser.add_argument_group('worker (one configuration)')
  worker.add_argument('--worker', action='store_true')
  worker.add_argument('--implementation', choices=IMPLEMENTATIONS)
  worker.add_argument('--batch-size', type=int)
  worker.add_argument('--cifar-depth', type=int,
                      help='train DenseNet-BC (depth, --growth-rate) on '
                           'CIFAR-sized images instead of densenet_121')
  worker.add_argument('--growth-rate', type=int, default=12)
  args = parser.parse_args(argv)
  if args.smoke:
    args.batch_sizes, args.image_size, args.steps = [2], 32, 1
  if args.worker and (args.implementation is None or args.batch_size is None):
    parser.error('--worker needs --implementation and --batch-size')
  if args.cifar_depth and args.implementation == 'keras':
    parser.error('--cifar-depth: Keras has no CIFAR DenseNet; use plain, '
                 'memory_efficient or the torch ones')
  return args


def ours_step(args, images, labels):
  """Builds our training graph; returns a function running one step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_slim as slim  # pylint: disable=g-import-not-at-top

  import densenet  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(0)
    memory_efficient = args.implementation == 'memory_efficient'
    with slim.arg_scope(densenet.densenet_arg_scope(weight_decay=0.0)):
      if args.cifar_depth:
        logits, _ = densenet.densenet_cifar(
            tf.constant(images), args.cifar_depth, args.growth_rate, bc=True,
            num_classes=10, memory_efficient=memory_efficient)
      else:
        logits, _ = densenet.densenet_121(
            tf.constant(images), 1000, memory_efficient=memory_efficient)
    loss = tf1.losses.sparse_softmax_cross_entropy(tf.constant(labels),
                                                   logits)
    with tf.control_dependencies(
        tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
      train_op = tf1.train.GradientDescentOptimizer(0.01).minimize(loss)
    session = tf1.Session(graph=graph)
    session.run(tf1.global_variables_initializer())

  def step():
    return session.run([train_op, loss])[1]

  def graph_size():
    """Ops, GraphDef size and control edges (after the timed steps)."""
    graph_def = graph.as_graph_def()
    return {
        'ops': len(graph_def.node),
        'graph_def_mb': round(graph_def.ByteSize() / 1e6, 1),
        'control_edges': sum(name.startswith('^') for node in graph_def.node
                             for name in node.input),
    }

  step.graph_size = graph_size
  return step


def keras_step(args, images, labels):
  """Keras DenseNet121 + SGD in a tf.function; returns one-step function."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = keras.applications.DenseNet121(
      weights=None, input_shape=images.shape[1:],
      classifier_activation=None)
  optimizer = keras.optimizers.SGD(0.01)
  images, labels = tf.constant(images), tf.constant(labels)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      logits = model(images, training=True)
      loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return lambda: step().numpy()


def import_torchvision_models():
  """torchvision.models without its compiled operators.

  The torchvision wheel next to the CPU torch here is CUDA-linked; its
  pure-Python models work once the modules registering compiled operators
  are stubbed.
  """
  import types  # pylint: disable=g-import-not-at-top
  for name in ('torchvision._meta_registrations',
               'torchvision._autograd_registrations'):
    sys.modules.setdefault(name, types.ModuleType(name))
  import torchvision.models  # pylint: disable=g-import-not-at-top
  return torchvision.models


def torch_step(args, images, labels):
  """torchvision's DenseNet + SGD; returns a function running one step.

  densenet121, or with `--cifar-depth` DenseNet-BC with a 3x3 stem of
  2k filters and no stem pooling (our `densenet_cifar(bc=True)`).
  """
  import torch  # pylint: disable=g-import-not-at-top
  models = import_torchvision_models()
  torch.manual_seed(0)
  memory_efficient = args.implementation == 'torch_memory_efficient'
  if args.cifar_depth:
    units = (args.cifar_depth - 4) // 6
    model = models.DenseNet(
        growth_rate=args.growth_rate, block_config=(units,) * 3,
        num_init_features=2 * args.growth_rate, bn_size=4, num_classes=10,
        memory_efficient=memory_efficient)
    model.features.conv0 = torch.nn.Conv2d(
        3, 2 * args.growth_rate, 3, padding=1, bias=False)
    for name in ('norm0', 'relu0', 'pool0'):
      setattr(model.features, name, torch.nn.Identity())
  else:
    model = models.densenet121(weights=None, memory_efficient=memory_efficient)
  model.train()
  optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
  images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  labels = torch.from_numpy(labels.astype(np.int64))

  def step():
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()

  return step


def worker(args):
  """Times one configuration in this process; prints and returns its line."""
  rss_before = common.peak_rss_gb()
  rng = np.random.RandomState(0)
  classes = 10 if args.cifar_depth else 1000
  images = rng.uniform(-2, 2, (args.batch_size, args.image_size,
                               args.image_size, 3)).astype(np.float32)
  labels = rng.randint(0, classes, args.batch_size).astype(np.int32)
  start = time.perf_counter()
  build = {'keras': keras_step, 'torch': torch_step,
           'torch_memory_efficient': torch_step}.get(args.implementation,
                                                     ours_step)
  step = build(args, images, labels)
  rss_before_first_step = common.current_rss_gb()
  step()  # Warm-up: graph optimization, memory pools.
  setup_seconds = time.perf_counter() - start
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    loss = step()
    times.append(time.perf_counter() - start)
  peak_rss = common.peak_rss_gb()
  graph_size = getattr(step, 'graph_size', lambda: None)()
  model = ('densenet_bc_%d_k%d' % (args.cifar_depth, args.growth_rate)
           if args.cifar_depth else 'densenet_121')
  return common.emit({
      'benchmark': 'train_step',
      'implementation': args.implementation,
      'model': model,
      'image_size': args.image_size,
      'batch_size': args.batch_size,
      'seconds_per_step': round(float(np.median(times)), 4),
      'step_seconds': [round(t, 4) for t in times],
      'setup_seconds': round(setup_seconds, 2),
      'peak_rss_gb': round(peak_rss, 3),
      'rss_before_model_gb': round(rss_before, 3),
      # Model, optimizer and runtime, before any activation is computed.
      'rss_before_first_step_gb': round(rss_before_first_step, 3),
      'loss': round(float(loss), 4),
      # Our TF1 training graph: ops, GraphDef size, control edges.
      'graph': graph_size,
  })


def worker_args(args, implementation, batch_size, cifar_depth=None):
  """Command-line arguments of one worker."""
  argv = ['--worker', '--implementation', implementation,
          '--batch-size', str(batch_size), '--image-size',
          str(args.image_size), '--steps', str(args.steps)]
  if cifar_depth:
    argv += ['--cifar-depth', str(cifar_depth), '--growth-rate',
             str(args.growth_rate)]
  return argv


RATIOS = (('memory_efficient', 'plain'), ('plain', 'keras'),
          ('torch_memory_efficient', 'torch'), ('plain', 'torch'),
          ('memory_efficient', 'torch_memory_efficient'))


def ratios(records, key):
  """Ratios such as memory_efficient / plain of `key`, where both ran."""
  by_name = {r['implementation']: r[key] for r in records}
  return {'%s_to_%s' % (a, b): round(by_name[a] / by_name[b], 3)
          for a, b in RATIOS if a in by_name and b in by_name}


def worker_env(args, implementation):
  """Environment of a worker: oneDNN for TensorFlow ones with --onednn."""
  if implementation in TORCH:
    return {}
  return {'TF_ENABLE_ONEDNN_OPTS': '1' if args.onednn else '0'}


def main(argv=None):
  args = parse_args(argv)
  if args.worker:
    return [worker(args)]
  summaries = []
  for batch_size in args.batch_sizes:
    records = []
    for implementation in args.implementations:
      records += common.run_worker(
          'train_step.py', worker_args(args, implementation, batch_size),
          env=worker_env(args, implementation))
    summaries.append(common.emit({
        'benchmark': 'train_step_summary',
        'batch_size': batch_size,
        'image_size': args.image_size,
        'time_ratio': ratios(records, 'seconds_per_step'),
        'peak_rss_ratio': ratios(records, 'peak_rss_gb'),
        'setup_ratio': ratios(records, 'setup_seconds'),
        'onednn': args.onednn,
    }))
  return summaries


if __name__ == '__main__':
  main()
