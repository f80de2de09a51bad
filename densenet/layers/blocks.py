"""DenseNet blocks and units, in the style of tf-slim's `nets/resnet_utils.py`.

A DenseNet is a list of `Block`s (run by `densenet.layers.stack`): dense
blocks, whose units each append `growth_rate` feature maps to their input,
and transition blocks between them, which compress the channels by
`compression` (theta in the paper) and halve the resolution with a 2x2/2
average pool (a stride-1 2x2 average whose taps are `rate` apart once the
target output stride is reached). `densenet_arg_scope` carries the defaults.

All tensors are NHWC: `[batch, height, width, channels]`.
"""

import collections

import tensorflow as tf
import tf_slim as slim
from tf_slim.layers import utils as slim_utils

from densenet.layers import recompute
from densenet.layers.batch_norm import batch_norm


class Block(collections.namedtuple('Block', ['scope', 'unit_fn', 'args'])):
  """A named tuple describing a DenseNet block (dense block or transition).

  Its parts are:
    scope: The scope of the `Block`, e.g. 'dense_block1' or 'transition1'.
    unit_fn: The function that builds one unit: `dense_unit` or `transition`.
      It takes a `[batch, height, width, channels]` Tensor as its first
      argument (`dense_unit` is given the list of the block's feature maps
      instead, see `stack_blocks_dense`), a `rate` keyword, and the keywords
      in `args`.
    args: A list with one dict of keyword arguments per unit. A unit that
      downsamples has a 'stride' key; it is the only place a stride is stored.
  """


def densenet_block(scope, num_units, growth_rate, bottleneck=True,
                   dropout_rate=0.0):
  """A dense block of `num_units` identical dense units.

  Args:
    scope: The scope of the block.
    num_units: Number of dense units (layers) in the block, >= 1.
    growth_rate: Feature maps each unit adds (k in the paper), >= 1.
    bottleneck: Whether each unit starts with a 1x1 convolution to
      `4 * growth_rate` channels (DenseNet-B).
    dropout_rate: Dropout after every convolution of a unit (0 disables it).

  Returns:
    A `Block` whose units map `[B, H, W, C]` to `[B, H, W, C + growth_rate]`.
  """
  return Block(scope, dense_unit, [{
      'growth_rate': growth_rate,
      'bottleneck': bottleneck,
      'dropout_rate': dropout_rate,
  }] * num_units)


def transition_block(scope, compression=0.5, stride=2, dropout_rate=0.0):
  """A transition: BN-ReLU-Conv1x1(floor(compression * C))-AvgPool 2x2/stride.

  Args:
    scope: The scope of the block.
    compression: Fraction of channels kept (theta in the paper), in (0, 1].
    stride: Stride of the 2x2 average pool.
    dropout_rate: Dropout after the 1x1 convolution (0 disables it).

  Returns:
    A one-unit `Block` mapping `[B, H, W, C]` to
    `[B, H / stride, W / stride, floor(compression * C)]`.
  """
  return Block(scope, transition, [{
      'compression': compression,
      'stride': stride,
      'dropout_rate': dropout_rate,
  }])


@slim.add_arg_scope
def dense_unit(inputs,
               growth_rate,
               bottleneck=True,
               dropout_rate=0.0,
               rate=1,
               memory_efficient=False,
               outputs_collections=None,
               scope=None):
  """One dense layer: [BN-ReLU-Conv1x1(4k)]-BN-ReLU-Conv3x3(k), concatenated.

  Pre-activation, as in the paper: the unit normalizes its input (the
  concatenation of every earlier feature map of the block), then the new
  `growth_rate` feature maps are appended after the input channels (the order
  Keras, torchvision and the published checkpoints use). Variables:
  `preact/{beta,gamma,moving_mean,moving_variance}`, `conv1/weights` and
  `conv1/BatchNorm/*` (the 1x1, bottleneck only), `conv2/weights` (the 3x3).

  With `memory_efficient` (Pleiss et al., "Memory-Efficient Implementation of
  DenseNets", 2017) nothing inside the unit is kept for the backward pass:
  the concatenation, both BN-ReLUs and the 1x1 convolution are recomputed in
  it from the block's feature maps, and the unit keeps only its `k` new maps
  (with dropout, which is random, the recomputed part ends before the first
  dropout, and the unit also keeps the `4 * k` bottleneck maps). The
  variables, the outputs and the gradients are those of the plain unit, and
  batch norm updates its moving statistics once per step. Memory grows
  linearly with the number of units when `inputs` is the list of the block's
  feature maps (as `stack_blocks_dense` passes it).

  Args:
    inputs: A `[batch, height, width, channels]` Tensor, or a list of
      `[batch, height, width, channels_i]` Tensors standing for their
      concatenation along the channels.
    growth_rate: Number of feature maps added (k).
    bottleneck: Whether to start with the 1x1 convolution to `4 * k` channels.
    dropout_rate: Dropout after each convolution (0 disables it).
    rate: Dilation rate of the 3x3 convolution (atrous convolution).
    memory_efficient: Whether to recompute the unit in the backward pass
      instead of storing its intermediate maps (needs resource variables,
      which the unit's variable scope asks for).
    outputs_collections: Collections the output is added to.
    scope: Optional variable scope, 'dense_unit' by default.

  Returns:
    For a Tensor `inputs`, the `[batch, height, width, channels + growth_rate]`
    concatenation. For a list, a list of Tensors whose concatenation it is:
    `inputs` plus the `[batch, height, width, growth_rate]` new maps with
    `memory_efficient`, else the one concatenated Tensor. The concatenation
    is the unit's end point either way.
  """
  features = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
  # With dropout and a bottleneck the 3x3 comes after the first dropout.
  conv2_after_dropout = bottleneck and bool(dropout_rate)
  with recompute.unit_scope(scope, 'dense_unit', features,
                            memory_efficient) as (sc, recorder):

    def conv2(net):
      return slim.conv2d(net, growth_rate, [3, 3], stride=1, rate=rate,
                         normalizer_fn=None, activation_fn=None,
                         biases_initializer=None, scope='conv2')

    def new_maps(*maps):
      """BN-ReLU of the concatenation, the convolutions up to dropout."""
      net = batch_norm(concat_maps(maps), activation_fn=tf.nn.relu,
                       scope='preact')
      if bottleneck:
        net = slim.conv2d(net, 4 * growth_rate, [1, 1], stride=1,
                          scope='conv1')
      return net if conv2_after_dropout else conv2(net)

    if memory_efficient:
      net, features = recompute.recompute_grad(
          new_maps, recorder, _QUIET, pass_on=True)(*features)
    else:
      net = new_maps(*features)
    net = _dropout(net, dropout_rate)
    if conv2_after_dropout:
      net = _dropout(conv2(net), dropout_rate)
    if memory_efficient:
      features.append(net)
      output = concat_maps(features)
    else:
      output = tf.concat([concat_maps(features), net], axis=3)
      features = [output]
    output = slim_utils.collect_named_outputs(outputs_collections, sc.name,
                                              output)
    return features if isinstance(inputs, (list, tuple)) else output


# The ops whose end points a recomputation must not collect again.
_QUIET = (slim.conv2d, batch_norm)


def concat_maps(maps):
  """Concatenates `[batch, height, width, channels_i]` maps along channels
  (a single map is returned as is)."""
  maps = list(maps)
  return maps[0] if len(maps) == 1 else tf.concat(maps, axis=3)


def _dropout(net, dropout_rate):
  """slim.dropout with a drop probability; `is_training` comes by arg_scope."""
  if not dropout_rate:
    return net
  return slim.dropout(net, keep_prob=1.0 - dropout_rate)


@slim.add_arg_scope
def transition(inputs,
               compression=0.5,
               stride=2,
               dropout_rate=0.0,
               rate=1,
               memory_efficient=False,
               outputs_collections=None,
               scope=None):
  """A transition layer: BN-ReLU-Conv1x1(floor(compression * C))-AvgPool 2x2.

  With `stride=2` the pool is the paper's 2x2/2 average (VALID, as Keras and
  torchvision). With `stride=1` (used by `stack_blocks_dense` once the target
  output stride is reached) it is a stride-1 2x2 average whose taps are
  `rate` pixels apart, so the output sampled every `2 * rate` pixels equals the
  strided output sampled every `rate` pixels. The variables do not depend on
  `stride` or `rate`.

  With `memory_efficient` the concatenation, the BN-ReLU, the convolution and
  the pool (up to the dropout, if any) are recomputed in the backward pass
  instead of stored, as in `dense_unit`: given the dense block's list of
  feature maps, the transition keeps none of its full-resolution maps.

  Args:
    inputs: A `[batch, height, width, channels]` Tensor, or a list of
      `[batch, height, width, channels_i]` Tensors standing for their
      concatenation (a dense block's feature maps).
    compression: Fraction of the channels kept (theta), in (0, 1].
    stride: 2 (downsample) or 1 (keep the resolution).
    dropout_rate: Dropout after the 1x1 convolution (0 disables it).
    rate: Distance between the pooling taps when `stride` is 1.
    memory_efficient: Whether to recompute the transition in the backward
      pass instead of storing its intermediate maps.
    outputs_collections: Collections the output is added to.
    scope: Optional variable scope, 'transition' by default.

  Returns:
    A `[batch, height / stride, width / stride, floor(compression * channels)]`
    Tensor.
  """
  maps = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
  channels = sum(m.shape[-1] for m in maps)
  if int(compression * channels) < 1:
    raise ValueError(
        'compression (theta) %r keeps int(%r * %d) = 0 of the %d channels '
        'entering %s; use a compression of at least %.4g.' %
        (compression, compression, channels, channels,
         tf.compat.v1.get_variable_scope().name + '/' + (scope or
                                                         'transition'),
         1.0 / channels))
  with recompute.unit_scope(scope, 'transition', maps, memory_efficient) as (
      sc, recorder):

    def pool(net):
      if stride == 1:
        return dilated_avg_pool_2x2(net, rate)
      return slim.avg_pool2d(net, [2, 2], stride=stride, padding='VALID')

    def compress(*maps):
      """BN-ReLU of the concatenation, the convolution, the pool."""
      net = batch_norm(concat_maps(maps), activation_fn=tf.nn.relu,
                       scope='preact')
      net = slim.conv2d(net, int(compression * channels), [1, 1], stride=1,
                        normalizer_fn=None, activation_fn=None,
                        biases_initializer=None, scope='conv')
      return net if dropout_rate else pool(net)

    if memory_efficient:
      net = recompute.recompute_grad(compress, recorder, _QUIET)(*maps)
    else:
      net = compress(*maps)
    if dropout_rate:
      net = pool(_dropout(net, dropout_rate))
    return slim_utils.collect_named_outputs(outputs_collections, sc.name, net)


def dilated_avg_pool_2x2(inputs, rate=1):
  """Stride-1 2x2 average pool with taps at offsets 0 and `rate`.

  `output[i, j] = mean(inputs[i + a * rate, j + b * rate])` over a, b in {0, 1},
  the taps that fall outside the input left out of the mean (as TF's SAME
  average pooling does; for `rate` 1 this is exactly `avg_pool(2, 1, 'SAME')`).

  Args:
    inputs: A `[batch, height, width, channels]` Tensor.
    rate: Distance between the taps, >= 1.

  Returns:
    A `[batch, height, width, channels]` Tensor.
  """
  paddings = [[0, 0], [0, rate], [0, rate], [0, 0]]

  def pool_sum(x):
    return tf.nn.pool(tf.pad(x, paddings), [2, 2], 'AVG', padding='VALID',
                      dilations=[rate, rate])

  shape = tf.shape(inputs)
  valid = tf.ones(tf.stack([1, shape[1], shape[2], 1]), inputs.dtype)
  return pool_sum(inputs) / pool_sum(valid)


def densenet_arg_scope(weight_decay=1e-4,
                       batch_norm_decay=0.99,
                       batch_norm_epsilon=1.001e-5,
                       batch_norm_scale=True,
                       memory_efficient=False,
                       sync_batch_norm=None):
  """Defines the default DenseNet arg scope.

  Convolutions get L2 weight decay and He (fan-in) initialization; those
  followed by batch norm have no biases. The batch-norm defaults are Keras'
  (momentum 0.99, epsilon 1.001e-5), so Keras-trained weights give Keras'
  numbers.

  Args:
    weight_decay: L2 regularization weight of the convolution kernels.
    batch_norm_decay: Moving-average decay of the batch-norm statistics.
    batch_norm_epsilon: Batch-norm epsilon.
    batch_norm_scale: Whether batch norm learns a `gamma`.
    memory_efficient: Whether dense units and transitions recompute their
      concatenation, BN-ReLUs and convolutions in the backward pass instead
      of storing them (see `dense_unit`): training memory linear instead of
      quadratic in depth, same variables and numbers.
    sync_batch_norm: Whether batch norm uses the statistics of the global
      batch across `tf.distribute` replicas (`batch_norm`'s `synchronized`);
      None leaves it to an enclosing `arg_scope` of `batch_norm` (default:
      off), which is how `densenet.training.Trainer(sync_batch_norm=True)`
      turns it on for any network.

  Returns:
    An `arg_scope` for the DenseNet models.
  """
  batch_norm_params = {
      'decay': batch_norm_decay,
      'epsilon': batch_norm_epsilon,
      'scale': batch_norm_scale,
      'updates_collections': tf.compat.v1.GraphKeys.UPDATE_OPS,
  }
  if sync_batch_norm is not None:
    batch_norm_params['synchronized'] = bool(sync_batch_norm)
  with slim.arg_scope(
      [slim.conv2d],
      weights_regularizer=slim.l2_regularizer(weight_decay),
      weights_initializer=slim.variance_scaling_initializer(),
      activation_fn=tf.nn.relu,
      normalizer_fn=batch_norm,
      normalizer_params=batch_norm_params):
    with slim.arg_scope([batch_norm], **batch_norm_params), \
        slim.arg_scope([dense_unit, transition],
                       memory_efficient=memory_efficient) as arg_sc:
      return arg_sc
