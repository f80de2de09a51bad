"""Inference graphs rewritten for int8 LiteRT models (`densenet.serve.litert`).

    graph_def = int8_rewrite.for_int8(rewrite.optimize_graph_def(...), keep)

The pre-activation batch norms that `rewrite.optimize_graph_def` leaves as
multiply-adds, and the transitions' average pools, become depthwise
convolutions, which XNNPACK runs in int8. Exact in float32 (tests:
tests/test_inference.py).
"""

import numpy as np

from densenet.serve import rewrite


def for_int8(graph_def, keep):
  """An `optimize_graph_def`'d GraphDef rewritten for int8 LiteRT models.

  The pre-activation batch norms left as multiply-adds become 1x1 depthwise
  convolutions (weights the scales, bias the shifts, the ReLU fused), and
  the transitions' 2x2/2 average pools 2x2/2 depthwise convolutions of
  weight 1/4: XNNPACK runs both in int8 (it does not delegate an int8
  AVERAGE_POOL_2D, and a MUL + ADD + RELU requantizes three times).
  The same numbers in float32 (to rounding); measured on DenseNet-121, int8
  top-1 agreement with float32 and speed both improve (benchmarks/README.md).

  Args:
    graph_def, keep: As `optimize_graph_def`, whose output `graph_def` is.

  Returns:
    A new `GraphDef`.
  """
  return Int8Rewriter.apply(graph_def, keep, (
      Int8Rewriter.batch_norms_to_depthwise, Int8Rewriter.pools_to_depthwise))


class Int8Rewriter(rewrite.GraphRewriter):
  """`GraphRewriter` with the int8 rewrites."""

  def _make_depthwise(self, node, data, weights, strides):
    """Turns `node` into an NHWC VALID DepthwiseConv2dNative of `data`."""
    self.retype(node, 'DepthwiseConv2dNative', [
        data, self.add_constant(node.name + '/depthwise_weights', weights)])
    node.attr['strides'].list.i.extend(strides)
    node.attr['dilations'].list.i.extend([1, 1, 1, 1])
    node.attr['padding'].s = b'VALID'
    node.attr['data_format'].s = b'NHWC'

  def batch_norms_to_depthwise(self):
    """`relu(x * scale + shift)` -> `relu(depthwise_1x1(x, scale) + shift)`.

    One DEPTHWISE_CONV_2D with a bias and a fused ReLU in LiteRT instead of
    a MUL, an ADD and a RELU: in an int8 model, one requantization instead
    of three. Any sign of the scale. Returns the number rewritten.
    """
    count = 0
    for add in list(self.graph_def.node):
      norm = self._multiply_add(add)
      readers = self.consumers(add.name)
      if norm is None or [r.op for r, _, _ in readers] != ['Relu']:
        continue
      mul, scale, shift = norm
      self._make_depthwise(mul, mul.input[0], scale.reshape(1, 1, -1, 1),
                           [1, 1, 1, 1])
      self._to_bias_add(add, mul.name, add.name + '/bias', shift)
      count += 1
    return count

  def pools_to_depthwise(self):
    """AvgPool 2x2/2 VALID before a Conv2D -> 2x2/2 depthwise, weights 1/4.

    Exact (1/4 is a power of two). The channels are the reading
    convolution's input channels (a transition's, once pooled first).
    Returns the number rewritten.
    """
    count = 0
    for pool in list(self.graph_def.node):
      if not self._transition_pool(pool):
        continue
      channels = {self.constant(reader.input[1]).shape[2]
                  for reader, position, _ in self.consumers(pool.name)
                  if reader.op == 'Conv2D' and position == 0 and
                  self.constant(reader.input[1]) is not None}
      if len(channels) != 1:
        continue
      self._make_depthwise(pool, pool.input[0],
                           np.full((2, 2, channels.pop(), 1), 0.25),
                           [1, 2, 2, 1])
      count += 1
    return count
