"""Where the time goes: TensorFlow step stats of densenet_121, per op type.

Runs our network in a Session with full tracing (`RunOptions.FULL_TRACE`) for
`--steps` steps after a warm-up and sums every node's wall time by op type
(the op type as the executor ran it: oneDNN's rewrites show as `_MklConv2D`,
`_MklFusedBatchNormV3`...). One JSON line per configuration: the op types
sorted by their share of the summed op time, the step wall time and the
number of nodes run. Traced steps are slower than untraced ones (the tracer
adds per-node overhead); the shares are what this is for.

oneDNN is on or off for the whole process, fixed when TensorFlow loads, so
`--onednn both` (the default) re-launches this script once per setting:

  python benchmarks/profile_ops.py                      # b1, b16, train b32
  python benchmarks/profile_ops.py --configs infer:1 --graph inference
  python benchmarks/profile_ops.py --smoke
"""

import argparse
import collections
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402  pylint: disable=g-import-not-at-top
import speed  # noqa: E402  pylint: disable=g-import-not-at-top


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--configs', nargs='+',
                      default=['infer:1', 'infer:16', 'train:32'],
                      help='MODE:BATCH, MODE infer or train')
  parser.add_argument('--onednn', choices=['on', 'off', 'both'],
                      default='both')
  parser.add_argument('--graph', choices=['plain', 'inference'],
                      default='plain',
                      help='inference: densenet.serve.rewrite.optimize (infer '
                           'configs only)')
  parser.add_argument('--image-size', type=int, default=224)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--top', type=int, default=12)
  parser.add_argument('--smoke', action='store_true',
                      help='tiny network, 32x32, batch 2, one step')
  args = parser.parse_args(argv)
  if args.smoke:
    args.configs, args.image_size, args.steps = ['infer:2', 'train:2'], 32, 1
  return args


def _op_type(node_stats):
  # timeline_label: "name = OpType(inputs)".
  label = node_stats.timeline_label
  if ' = ' in label:
    return label.split(' = ', 1)[1].split('(', 1)[0]
  return node_stats.node_name.split(':')[0]


def profile(args, mode, batch_size):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  rng = np.random.RandomState(0)
  images = rng.uniform(-2, 2, (batch_size, args.image_size, args.image_size,
                               3)).astype(np.float32)
  if mode == 'train':
    model = speed.OursTrain(args.image_size, batch_size, smoke=args.smoke)
    session, fetch, feed = model.session, model.train_op, {
        model.images: images, model.labels: rng.randint(
            0, model.num_classes, batch_size)}
  else:
    model = speed.OursInference(args.image_size,
                                optimized=args.graph == 'inference',
                                smoke=args.smoke)
    session, fetch, feed = model.session, model.logits, {model.images: images}
  session.run(fetch, feed)  # Warm-up.
  totals = collections.Counter()
  counts = collections.Counter()
  walls = []
  for _ in range(args.steps):
    metadata = tf1.RunMetadata()
    start = time.perf_counter()
    session.run(fetch, feed, options=tf1.RunOptions(
        trace_level=tf1.RunOptions.FULL_TRACE), run_metadata=metadata)
    walls.append(time.perf_counter() - start)
    for device in metadata.step_stats.dev_stats:
      for node in device.node_stats:
        op = _op_type(node)
        totals[op] += node.all_end_rel_micros
        counts[op] += 1
  total = sum(totals.values())
  top = [{'op': op, 'share': round(t / total, 4),
          'ms_per_step': round(t / args.steps / 1e3, 2),
          'nodes_per_step': counts[op] // args.steps}
         for op, t in totals.most_common(args.top)]
  return common.emit({
      'benchmark': 'profile_ops',
      'model': model.name,
      'graph': 'plain' if mode == 'train' else args.graph,
      'mode': mode,
      'batch_size': batch_size,
      'image_size': args.image_size,
      'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS'),
      'traced_step_seconds_median': round(float(np.median(walls)), 4),
      'summed_op_ms_per_step': round(total / args.steps / 1e3, 2),
      'nodes_per_step': sum(counts.values()) // args.steps,
      'top_ops': top,
  })


def main(argv=None):
  args = parse_args(argv)
  if args.onednn == 'both':
    argv = list(sys.argv[1:] if argv is None else argv)
    records = []
    for setting in ('off', 'on'):
      records += speed.relaunch('profile_ops.py', speed.without_onednn(argv) +
                                ['--onednn', setting])
    return records
  os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1' if args.onednn == 'on' else '0'
  records = []
  for config in args.configs:
    mode, batch_size = config.split(':')
    if mode not in ('infer', 'train'):
      raise ValueError('--configs: mode must be infer or train, got %r.' %
                       (mode,))
    records.append(profile(args, mode, int(batch_size)))
  return records


if __name__ == '__main__':
  main()
