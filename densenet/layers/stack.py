"""Stacking DenseNet blocks: the stride and rate bookkeeping.

As tf-slim's `resnet_utils.stack_blocks_dense`, `stack_blocks_dense` alone
owns it. Given a target `output_stride`, it runs every transition after that
stride is reached with a stride-1 2x2 average pool whose taps are `rate`
apart, and every later 3x3 convolution with that `rate` (atrous
convolution). Nothing else changes, so the variables of a network are the
same for every `output_stride` and a classification checkpoint loads into a
dense-prediction graph.
"""

import tensorflow as tf
from tf_slim.layers import utils as slim_utils

from densenet.layers import blocks as blocks_lib


def stack_blocks_dense(net, blocks, output_stride=None, input_stride=1,
                       outputs_collections=None):
  """Stacks DenseNet `Blocks` and controls the output feature density.

  As tf-slim's `resnet_utils.stack_blocks_dense`: once the product of the
  strides reaches `output_stride`, later units run with stride 1 and the
  `rate` that keeps their receptive fields (atrous convolution), so the
  output is computed densely at that stride.

  Args:
    net: A `[batch, height, width, channels]` Tensor at `input_stride`.
    blocks: A list of `Block`s.
    output_stride: The desired stride of the output relative to the image, or
      None for the nominal stride (every unit runs its own stride).
    input_stride: The stride of `net` relative to the image (the root's).
    outputs_collections: Collections for the end points of units and blocks.

  Returns:
    The output Tensor `[batch, height', width', channels']`,
    height' = height * input_stride / output_stride.

  Raises:
    ValueError: If `output_stride` cannot be reached; the message lists the
      values that can.
  """
  for block, units in _unit_schedule(blocks, output_stride, input_stride):
    with tf.compat.v1.variable_scope(block.scope, 'block', _as_list(net)) as sc:
      # A block's state is the list of the feature maps of the latest dense
      # block, concatenated only where a unit needs them (see `dense_unit`,
      # `memory_efficient`): dense units and transitions take the list.
      if block.unit_fn in (blocks_lib.dense_unit, blocks_lib.transition):
        net = _as_list(net)
      else:
        net = blocks_lib.concat_maps(_as_list(net))
      for i, (unit, rate) in enumerate(units):
        with tf.compat.v1.variable_scope('unit_%d' % (i + 1),
                                         values=_as_list(net)):
          net = block.unit_fn(net, rate=rate, **unit)
      output = slim_utils.collect_named_outputs(
          outputs_collections, sc.name, blocks_lib.concat_maps(_as_list(net)))
  return output


def _unit_schedule(blocks, output_stride=None, input_stride=1):
  """The stride/rate bookkeeping of `stack_blocks_dense`, as data.

  Once the product of the strides reaches `output_stride`, later units run
  with stride 1 and a `rate` multiplied by the stride they skip.

  Returns:
    `[(block, [(unit kwargs as run, rate)])]`, one entry per block.

  Raises:
    ValueError: If `output_stride` cannot be reached; the message lists the
      values that can.
  """
  reachable = [input_stride]
  for block in blocks:
    for unit in block.args:
      if unit.get('stride', 1) != 1:
        reachable.append(reachable[-1] * unit['stride'])
  if output_stride is not None and output_stride not in reachable:
    raise ValueError('output_stride=%r cannot be reached; valid values: %s '
                     'or None.' % (output_stride,
                                   ', '.join(map(str, reachable))))
  schedule = []
  current_stride = input_stride
  rate = 1
  for block in blocks:
    units = []
    for unit in block.args:
      unit_stride = unit.get('stride', 1)
      if output_stride is not None and current_stride == output_stride:
        units.append((dict(unit, stride=1) if unit_stride != 1 else unit,
                      rate))
        rate *= unit_stride
      else:
        units.append((unit, 1))
        current_stride *= unit_stride
    schedule.append((block, units))
  return schedule


def minimum_input_size(blocks, output_stride=None, input_stride=1):
  """The smallest height (and width) `stack_blocks_dense` can take.

  Every unit that downsamples by `s` (a transition: a 2x2/2 VALID average
  pool) floors the size, `h -> floor(h / s)`, and needs `h >= s`; so the
  input must be at least the product of the strides the units apply (those
  before `output_stride` is reached). Smaller maps would shrink to nothing
  (shape errors, or NaN logits when the size is known only at run time).

  Args:
    blocks, output_stride, input_stride: As `stack_blocks_dense`.

  Returns:
    An int >= 1, in pixels of `net` (at `input_stride`).
  """
  size = 1
  for _, units in _unit_schedule(blocks, output_stride, input_stride):
    for unit, _ in units:
      size *= unit.get('stride', 1)
  return size


def _as_list(net):
  return list(net) if isinstance(net, (list, tuple)) else [net]
