"""How fast can the convolutions alone be? A kernel lower bound per step.

Lists every convolution of our densenet_121 (or, with `--smoke`, a tiny
densenet_X) at `--batch-size`, and times each distinct shape on its own in a
Session (inputs in variables, so nothing is constant-folded): the forward
convolution and, for training, the two backward ones, each as TensorFlow's
own op and as the alternative formulations that give the same numbers:

  forward      Conv2D; for 1x1 also a MatMul over [batch*h*w, c_in]
  input grad   Conv2DBackpropInput; for stride-1 odd-sized 'SAME' kernels
               also a forward Conv2D of the gradient with the flipped,
               transposed filter (1x1: a MatMul)
  filter grad  Conv2DBackpropFilter; for stride-1 odd-sized 'SAME' kernels
               also one MatMul of the input [batch*h*w, c_in] with the
               kh*kw shifted copies of the gradient side by side (1x1: no
               copies)

Each alternative is checked against TensorFlow's op (relative error printed).
The best time of each pass, times the number of convolutions of that shape,
summed, is what the convolutions cost with the best of these kernels, on this
machine, each alone (no concatenations, batch norms or ReLUs; the cost of an
empty Session.run subtracted). A step in a graph can beat it a little: the
executor runs two small ops at once, which keeps 2 cores busier than one op's
intra-op threads do. One JSON line per shape, then a
summary with the bound for inference (forward) and for a training step
(forward + both gradients) and their fraction of the measured SGEMM ceiling.

  python benchmarks/conv_bound.py --batch-size 32           # training bound
  python benchmarks/conv_bound.py --batch-size 1 --passes forward
  python benchmarks/conv_bound.py --smoke
  python benchmarks/conv_bound.py --batch-size 1 --passes forward --onednn off
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

PASSES = ('forward', 'input_grad', 'filter_grad')


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch-size', type=int, default=32)
  parser.add_argument('--image-size', type=int, default=224)
  parser.add_argument('--passes', nargs='+', choices=PASSES, default=PASSES)
  parser.add_argument('--onednn', choices=['on', 'off'], default='on',
                      help='TF_ENABLE_ONEDNN_OPTS for this process (on: what '
                           '`import densenet` sets)')
  parser.add_argument('--repeats', type=int, default=5,
                      help='timed runs per kernel after one warm-up (median)')
  parser.add_argument('--quiet', action='store_true',
                      help='print the summary line only')
  parser.add_argument('--smoke', action='store_true',
                      help='tiny densenet_X, 32x32, batch 2, one repeat')
  args = parser.parse_args(argv)
  if args.smoke:
    args.batch_size, args.image_size, args.repeats = 2, 32, 1
  return args


Shape = collections.namedtuple(
    'Shape', 'height width c_in kernel c_out stride padding rate')


def convolutions(args):
  """{Shape: count} of the network's Conv2D ops at `args.batch_size`."""
  ops = speed.convolutions(args.image_size, args.batch_size, args.smoke)
  shapes = collections.Counter()
  for op in ops:
    _, height, width, c_in = op.inputs[0].shape.as_list()
    kernel, _, _, c_out = op.inputs[1].shape.as_list()
    shapes[Shape(height, width, c_in, kernel, c_out,
                 op.get_attr('strides')[1],
                 op.get_attr('padding').decode(),
                 op.get_attr('dilations')[1])] += 1
  return shapes


def kernels(tf, x, w, dy, shape):
  """{pass: {name: tensor}}: TensorFlow's op and the alternatives."""
  tf1 = tf.compat.v1
  strides = [1, shape.stride, shape.stride, 1]
  dilations = [1, shape.rate, shape.rate, 1]
  out = {
      'forward': {'conv2d': tf.nn.conv2d(x, w, strides, shape.padding,
                                         dilations=dilations)},
      'input_grad': {'backprop_input': tf1.nn.conv2d_backprop_input(
          tf.shape(x), w, dy, strides, shape.padding, dilations=dilations)},
      'filter_grad': {'backprop_filter': tf1.nn.conv2d_backprop_filter(
          x, tf.shape(w), dy, strides, shape.padding, dilations=dilations)},
  }
  k, rate = shape.kernel, shape.rate
  if shape.stride != 1 or k % 2 == 0 or (k > 1 and shape.padding != 'SAME'):
    return out
  x2 = tf.reshape(x, [-1, shape.c_in])
  dy2 = tf.reshape(dy, [-1, shape.c_out])
  if k == 1:
    w2 = tf.reshape(w, [shape.c_in, shape.c_out])
    out['forward']['matmul'] = tf.reshape(tf.matmul(x2, w2), tf.shape(dy))
    out['input_grad']['matmul'] = tf.reshape(
        tf.matmul(dy2, w2, transpose_b=True), tf.shape(x))
    out['filter_grad']['matmul'] = tf.reshape(
        tf.matmul(x2, dy2, transpose_a=True), tf.shape(w))
    return out
  flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
  out['input_grad']['flipped_conv2d'] = tf.nn.conv2d(
      dy, flipped, 1, 'SAME', dilations=rate)
  # dW[i, j] = sum over pixels of x * dy shifted by (pad - rate*i, ...).
  pad = rate * (k // 2)
  padded = tf.pad(dy, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  shifted = tf.concat([
      padded[:, 2 * pad - rate * i:2 * pad - rate * i + shape.height,
             2 * pad - rate * j:2 * pad - rate * j + shape.width, :]
      for i in range(k) for j in range(k)], axis=3)
  product = tf.matmul(x2, tf.reshape(shifted, [-1, k * k * shape.c_out]),
                      transpose_a=True)
  out['filter_grad']['shifted_matmul'] = tf.transpose(
      tf.reshape(product, [shape.c_in, k, k, shape.c_out]), [1, 2, 0, 3])
  return out


def time_shape(args, shape):
  """Best seconds per pass for one convolution shape, and the details."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  rng = np.random.RandomState(0)
  out_height = -(-shape.height // shape.stride)
  out_width = -(-shape.width // shape.stride)
  if shape.padding == 'VALID':
    reach = shape.rate * (shape.kernel - 1)
    out_height = (shape.height - reach - 1) // shape.stride + 1
    out_width = (shape.width - reach - 1) // shape.stride + 1
  graph = tf.Graph()
  with graph.as_default():
    def variable(*dims):
      return tf1.Variable(rng.standard_normal(dims).astype(np.float32),
                          use_resource=True).read_value()
    x = variable(args.batch_size, shape.height, shape.width, shape.c_in)
    w = variable(shape.kernel, shape.kernel, shape.c_in, shape.c_out)
    dy = variable(args.batch_size, out_height, out_width, shape.c_out)
    tensors = kernels(tf, x, w, dy, shape)
    session = tf1.Session(graph=graph)
    session.run(tf1.global_variables_initializer())
  # What a Session.run of nearly nothing costs (a variable read, 1 ms at
  # batch 1 is a third of a convolution's time): subtracted from every time.
  overhead = []
  for _ in range(args.repeats + 1):
    start = time.perf_counter()
    session.run(w.op)
    overhead.append(time.perf_counter() - start)
  overhead = float(np.median(overhead))
  flops = (2 * args.batch_size * out_height * out_width * shape.kernel ** 2 *
           shape.c_in * shape.c_out)
  best, details = {}, {}
  for name in args.passes:
    reference = None
    for kernel, tensor in tensors[name].items():
      value = session.run(tensor)  # Warm-up (and the check).
      if reference is None:
        reference, error = value, 0.0
      else:
        error = float(np.abs(value - reference).max() /
                      max(np.abs(reference).max(), 1e-30))
        if error > 1e-4:
          raise AssertionError('%s %s differs from TensorFlow\'s op by %.2g '
                               '(relative) at %s' % (name, kernel, error,
                                                     shape))
      times = []
      for _ in range(args.repeats):
        start = time.perf_counter()
        session.run(tensor.op)
        times.append(time.perf_counter() - start)
      seconds = max(float(np.median(times)) - overhead, 1e-9)
      details['%s/%s' % (name, kernel)] = {
          'ms': round(seconds * 1e3, 3),
          'gflops': round(flops / seconds / 1e9, 1),
          'relative_error': float('%.2g' % error)}
      best[name] = min(best.get(name, float('inf')), seconds)
  session.close()
  return best, details, flops


def main(argv=None):
  args = parse_args(argv)
  # Read once, when TensorFlow loads: set before anything imports it.
  os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1' if args.onednn == 'on' else '0'
  sgemm = speed.sgemm_gflops()
  shapes = convolutions(args)
  totals = collections.Counter()
  tf_op_totals = collections.Counter()
  total_flops = 0
  for shape, count in sorted(shapes.items(), key=lambda item: -item[0].height):
    best, details, flops = time_shape(args, shape)
    total_flops += count * flops
    for name, seconds in best.items():
      totals[name] += count * seconds
    for name in args.passes:
      tf_name = next(key for key in details if key.startswith(name + '/'))
      tf_op_totals[name] += count * details[tf_name]['ms'] / 1e3
    if not args.quiet:
      common.emit({'benchmark': 'conv_bound_shape', 'shape': shape._asdict(),
                   'count': count, 'batch_size': args.batch_size,
                   'kernels': details})
  forward = totals['forward']
  training = sum(totals[name] for name in args.passes)
  return common.emit({
      'benchmark': 'conv_bound',
      'model': 'densenet_X' if args.smoke else 'densenet_121',
      'batch_size': args.batch_size,
      'image_size': args.image_size,
      'convolutions': sum(shapes.values()),
      'distinct_shapes': len(shapes),
      'forward_gflop': round(total_flops / 1e9, 3),
      'sgemm_gflops': round(sgemm, 1),
      # Sums of the best kernel per shape and pass, and of TensorFlow's ops.
      'best_seconds': {name: round(totals[name], 4) for name in args.passes},
      'tensorflow_op_seconds': {name: round(tf_op_totals[name], 4)
                                for name in args.passes},
      'forward_bound_images_per_second': round(args.batch_size / forward, 2)
                                         if forward else None,
      'step_bound_seconds': round(training, 4),
      # FLOPs of the passes timed over their best time, / SGEMM.
      'fraction_of_sgemm': round(total_flops * len(args.passes) / training /
                                 1e9 / sgemm, 3) if training else None,
  })


if __name__ == '__main__':
  main()
