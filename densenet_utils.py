"""Building blocks of DenseNets, in the style of tf-slim's `nets/resnet_utils.py`.

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
(https://arxiv.org/abs/1608.06993).

A DenseNet is a list of `Block`s run by `stack_blocks_dense`: dense blocks,
whose units each append `growth_rate` feature maps to their input, and
transition blocks between them, which compress the channels by `compression`
(theta in the paper) and halve the resolution with a 2x2/2 average pool.

`stack_blocks_dense` alone owns the stride bookkeeping. Given a target
`output_stride`, it runs every transition after that stride is reached with a
stride-1 2x2 average pool whose taps are `rate` apart, and every later 3x3
convolution with that `rate` (atrous convolution). Nothing else changes, so
the variables of a network are the same for every `output_stride` and a
classification checkpoint loads into a dense-prediction graph.

All tensors are NHWC: `[batch, height, width, channels]`.
"""

import collections
import contextlib
import itertools
import threading

import numpy as np
import tensorflow as tf
import tf_slim as slim
from tf_slim.layers import utils as slim_utils
from tf_slim.ops import variables as slim_variables

from densenet._env import compat

compat.apply()  # tf-slim 1.1.0 on the installed TensorFlow.


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


def check_is_training(is_training, allow_none=False):
  """Raises ValueError unless `is_training` is a bool or a bool Tensor.

  A string such as 'no' or a number would otherwise be taken for True (a
  training-mode network, silently) or fail deep inside a `cond`.

  Args:
    is_training: The value to check: a Python or numpy bool, or a Tensor /
      Variable of dtype bool.
    allow_none: Whether None (leave it to an enclosing arg_scope) is allowed.
  """
  if is_training is None and allow_none:
    return
  if isinstance(is_training, (bool, np.bool_)):
    return
  if (tf.is_tensor(is_training) or isinstance(is_training, tf.Variable)) and (
      is_training.dtype.base_dtype == tf.bool):
    return
  raise ValueError('is_training must be a Python bool or a bool Tensor%s, '
                   'got %r.' % (' (or None)' if allow_none else '',
                                is_training))


@slim.add_arg_scope
def batch_norm(inputs,
               decay=0.999,
               center=True,
               scale=False,
               epsilon=0.001,
               activation_fn=None,
               param_initializers=None,
               updates_collections=tf.compat.v1.GraphKeys.UPDATE_OPS,
               is_training=True,
               reuse=None,
               variables_collections=None,
               outputs_collections=None,
               trainable=True,
               synchronized=False,
               scope=None):
  """Fused batch normalization with tf-slim's variables and semantics.

  A drop-in for `slim.batch_norm` (its fused NHWC path) that also works inside
  a `tf.distribute` replica context: the moving statistics are ON_READ / MEAN
  variables updated with `assign_sub`, using slim's formula
  `moving -= (moving - batch_statistic) * (1 - decay)`, so each replica keeps
  its own statistics and reads average them. With `synchronized`, training
  normalizes with the statistics of the global batch instead (see
  `_global_batch_moments`) and every replica makes the same update. Variables
  (the same with or without `synchronized`): `<scope>/beta`,
  `<scope>/gamma` (if `scale`), `<scope>/moving_mean`,
  `<scope>/moving_variance`, scope 'BatchNorm' by default.

  Args:
    inputs: A `[batch, height, width, channels]` Tensor, channels known.
    decay: Decay of the moving averages.
    center: Whether to add the offset `beta`.
    scale: Whether to multiply by `gamma`.
    epsilon: Added to the variance before the square root.
    activation_fn: Optional activation applied to the output.
    param_initializers: Optional dict of initializers for 'beta', 'gamma',
      'moving_mean', 'moving_variance'.
    updates_collections: Collections the moving-average updates are added to
      (run them with the train op), or None to run them in place. No updates
      are made while a memory-efficient dense unit is recomputed for the
      backward pass: the forward pass made them.
    is_training: Python bool or bool Tensor: normalize with batch statistics
      and update the moving averages, or normalize with the moving averages.
    reuse: Whether to reuse the variables of `scope`.
    variables_collections: Optional collections for the variables.
    outputs_collections: Collections the output is added to.
    trainable: Whether `beta` and `gamma` are trainable.
    synchronized: Whether training uses the mean and variance of the global
      batch: in a `tf.distribute` replica context with several replicas
      (`MirroredStrategy`, `MultiWorkerMirroredStrategy`), the per-channel
      sums, sums of squares and counts of every replica are all-reduced
      (one all-reduce of `2 * channels + 1` floats per layer and step, and
      one more for its gradient). The normalization, its gradient and the
      moving averages are then those of one device running the whole
      batch. Without several replicas this is plain batch norm.
    scope: Optional variable scope.

  Returns:
    A Tensor with the shape and dtype of `inputs`.

  Raises:
    ValueError: If `inputs` is not rank 4 or its channel count is unknown,
      or `is_training` is not a bool or bool Tensor.
  """
  check_is_training(is_training)
  with tf.compat.v1.variable_scope(
      scope, 'BatchNorm', [inputs], reuse=reuse) as sc:
    inputs = tf.convert_to_tensor(inputs)
    shape = inputs.shape
    if shape.rank != 4:
      raise ValueError('batch_norm: inputs must be rank 4 [batch, height, '
                       'width, channels], got shape %s.' % shape)
    params_shape = shape[-1:]
    if not params_shape.is_fully_defined():
      raise ValueError('batch_norm: the channel dimension of inputs must be '
                       'known, got shape %s.' % shape)
    initializers = dict(param_initializers or {})

    def variable(name, default_initializer, **kwargs):
      return slim_variables.model_variable(
          name,
          shape=params_shape,
          dtype=tf.float32,
          initializer=initializers.get(name, default_initializer),
          collections=slim_utils.get_variable_collections(
              variables_collections, name),
          **kwargs)

    beta = (variable('beta', tf.compat.v1.zeros_initializer(),
                     trainable=trainable) if center else
            tf.zeros(params_shape, tf.float32))
    gamma = (variable('gamma', tf.compat.v1.ones_initializer(),
                      trainable=trainable) if scale else
             tf.ones(params_shape, tf.float32))
    moving = dict(
        trainable=False,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.MEAN)
    moving_mean = variable('moving_mean', tf.compat.v1.zeros_initializer(),
                           **moving)
    moving_variance = variable('moving_variance',
                               tf.compat.v1.ones_initializer(), **moving)

    replica_context = tf.distribute.get_replica_context()
    global_batch = (synchronized and replica_context is not None and
                    replica_context.num_replicas_in_sync > 1)

    def training():
      if global_batch:
        mean, variance, unbiased_variance = _global_batch_moments(
            inputs, tf.stop_gradient(tf.convert_to_tensor(moving_mean)),
            replica_context)
        outputs = tf.nn.batch_normalization(inputs, mean, variance, beta,
                                            gamma, epsilon)
        return outputs, mean, unbiased_variance
      return tf.compat.v1.nn.fused_batch_norm(
          inputs, gamma, beta, epsilon=epsilon, is_training=True)

    def inference():
      if slim_utils.constant_value(is_training) is False:
        # A multiply-add, not FusedBatchNormV3: Grappler fuses a convolution
        # and a following FusedBatchNormV3 into one kernel, which oneDNN runs
        # ~100x slower at batch 1 (benchmarks/README.md).
        scale = gamma * tf.math.rsqrt(moving_variance + max(epsilon, 1.001e-5))
        shift = beta - moving_mean * scale
        return (inputs * tf.cast(scale, inputs.dtype) +
                tf.cast(shift, inputs.dtype), moving_mean, moving_variance)
      return tf.compat.v1.nn.fused_batch_norm(
          inputs, gamma, beta, mean=moving_mean, variance=moving_variance,
          epsilon=epsilon, is_training=False)

    outputs, mean, variance = slim_utils.smart_cond(is_training, training,
                                                    inference)
    training_value = slim_utils.constant_value(is_training)
    if (training_value is None or training_value) and not _recomputing():

      def update_moving_averages():
        complement = tf.constant(1.0 - decay, tf.float32)
        return (moving_mean.assign_sub((moving_mean - mean) * complement),
                moving_variance.assign_sub(
                    (moving_variance - variance) * complement))

      if updates_collections is None:
        def updated_outputs():
          with tf.control_dependencies(update_moving_averages()):
            return tf.identity(outputs)
        outputs = slim_utils.smart_cond(is_training, updated_outputs,
                                        lambda: outputs)
      else:
        updates = slim_utils.smart_cond(
            is_training, update_moving_averages,
            lambda: (tf.identity(moving_mean), tf.identity(moving_variance)))
        for update in updates:
          tf.compat.v1.add_to_collections(updates_collections, update)
    outputs.set_shape(shape)
    if activation_fn is not None:
      outputs = activation_fn(outputs)
    return slim_utils.collect_named_outputs(outputs_collections, sc.name,
                                            outputs)


def _global_batch_moments(inputs, shift, replica_context):
  """Mean and variance per channel over the batches of all replicas.

  Args:
    inputs: This replica's `[batch, height, width, channels]` float32 Tensor.
    shift: `[channels]`, the same on every replica (the moving mean): the
      sums are taken of `inputs - shift`, which keeps
      `E[x^2] - E[x]^2` accurate when the mean is large against the spread.
    replica_context: The `tf.distribute.ReplicaContext` to all-reduce in.

  Returns:
    `(mean, variance, unbiased_variance)`, each `[channels]`: the moments of
    the global batch of `n` positions (batch x height x width over all
    replicas), the variance biased (divided by `n`, what normalizes) and
    unbiased (by `n - 1`, what fused batch norm puts in the moving average).
    Differentiable: the gradient of the all-reduce is an all-reduce.
  """
  channels = inputs.shape[-1]
  centered = inputs - shift
  count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
  local = tf.concat([tf.reduce_sum(centered, [0, 1, 2]),
                     tf.reduce_sum(tf.square(centered), [0, 1, 2]),
                     count[None]], 0)
  with compat.own_variable_scope_state():  # Other replicas run meanwhile.
    total = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, local)
  sums, squares, n = (total[:channels], total[channels:2 * channels],
                      total[2 * channels])
  shifted_mean = sums / n
  variance = tf.maximum(squares / n - tf.square(shifted_mean), 0.0)
  unbiased_variance = variance * n / tf.maximum(n - 1.0, 1.0)
  return shifted_mean + shift, variance, unbiased_variance


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
  with _unit_scope(scope, 'dense_unit', features, memory_efficient) as (
      sc, recorder):

    def conv2(net):
      return slim.conv2d(net, growth_rate, [3, 3], stride=1, rate=rate,
                         normalizer_fn=None, activation_fn=None,
                         biases_initializer=None, scope='conv2')

    def new_maps(*maps):
      """BN-ReLU of the concatenation, the convolutions up to dropout."""
      net = batch_norm(_concat(maps), activation_fn=tf.nn.relu,
                       scope='preact')
      if bottleneck:
        net = slim.conv2d(net, 4 * growth_rate, [1, 1], stride=1,
                          scope='conv1')
      return net if conv2_after_dropout else conv2(net)

    if memory_efficient:
      net, features = _recompute_grad(new_maps, recorder,
                                      pass_on=True)(*features)
    else:
      net = new_maps(*features)
    net = _dropout(net, dropout_rate)
    if conv2_after_dropout:
      net = _dropout(conv2(net), dropout_rate)
    if memory_efficient:
      features.append(net)
      output = _concat(features)
    else:
      output = tf.concat([_concat(features), net], axis=3)
      features = [output]
    output = slim_utils.collect_named_outputs(outputs_collections, sc.name,
                                              output)
    return features if isinstance(inputs, (list, tuple)) else output


@contextlib.contextmanager
def _unit_scope(scope, default_name, values, memory_efficient):
  """The variable scope of a unit; yields it and its `_VariableRecorder`.

  A memory-efficient unit asks for resource variables and records the
  variables its forward call gets (the recorder is None otherwise).
  """
  recorder = _VariableRecorder() if memory_efficient else None
  with tf.compat.v1.variable_scope(
      scope, default_name, values,
      use_resource=True if memory_efficient else None,
      custom_getter=recorder.record if recorder else None) as sc:
    yield sc, recorder


def _concat(maps):
  """Concatenates `[batch, height, width, channels_i]` maps along channels."""
  maps = list(maps)
  return maps[0] if len(maps) == 1 else tf.concat(maps, axis=3)


_RECOMPUTATION = threading.local()


def _recomputing():
  """True while a memory-efficient unit is rebuilt for its gradients."""
  return getattr(_RECOMPUTATION, 'active', False)


@contextlib.contextmanager
def _recomputation():
  previous = _recomputing()
  _RECOMPUTATION.active = True
  try:
    yield
  finally:
    _RECOMPUTATION.active = previous


class _VariableRecorder(object):
  """Custom getters: `record` the variables a call gets, `replay` them."""

  def __init__(self):
    self.variables = {}

  def record(self, getter, name, *args, **kwargs):
    self.variables[name] = getter(name, *args, **kwargs)
    return self.variables[name]

  def replay(self, getter, name, *args, **kwargs):
    del getter, args, kwargs
    return self.variables[name]


@contextlib.contextmanager
def _depending_only_on(tensor):
  """Ops built inside depend on `tensor` and on no enclosing control scope.

  A training graph is often built under
  `tf.control_dependencies(UPDATE_OPS)`, and TensorFlow gives every op built
  there whose inputs come from outside the block a control edge to each of
  the ~2 x (number of batch norms) update ops. A recomputed unit takes all its
  inputs from outside, so inherited edges would grow with (units per block)^2
  x depth: gigabytes of graph at DenseNet-BC-250. Ordering needs one edge:
  recompute once the unit's output gradient exists. With control flow v1 the
  enclosing edges stay (clearing them would also clear the loop context).
  """
  if tf.compat.v1.control_flow_v2_enabled():
    with tf.control_dependencies(None), tf.control_dependencies([tensor]):
      yield
  else:
    with tf.control_dependencies([tensor]):
      yield


def _recompute_grad(fn, recorder, pass_on=False):
  """`fn(*tensors)`, recomputed in the backward pass instead of stored.

  The returned function builds `fn(*tensors)` and hands its output on
  through an `IdentityN` op whose gradient (for `tf.gradients`, and for
  `tf.GradientTape`, on which it is recorded) rebuilds `fn` once the output's
  gradient exists and differentiates the rebuilt ops with a tape. So no
  intermediate tensor of `fn` outlives the forward call, and building the
  gradient touches only the rebuilt ops: no search of the whole graph per
  unit. The rebuild runs in the forward call's variable and arg scopes with
  the variables `recorder.record` saw (in TF2, under
  `track_tf1_style_variables`, the forward call's variable store is gone by
  then); while it runs, batch norm makes no moving-average updates and no end
  points are collected.

  The `IdentityN` takes the output, `tensors` and the values of the variables
  (through which their gradients flow back to them). With `pass_on`, the
  outputs for `tensors` are returned too (no copies): later units take these,
  so the gradient of a feature map is summed unit by unit in the backward pass
  instead of held as one partial gradient per later unit until the last one
  arrives. (`tf.custom_gradient` would add a copy of every input that no one
  reads, and `tf.gradients` gives each unread output a zeros op that inherits
  every enclosing control dependency: a quadratic number of them.)

  Returns:
    `(*tensors) -> output`, or `(*tensors) -> (output, list of tensors)` with
    `pass_on`.
  """

  def call(*tensors):
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    variable_scope = tf.compat.v1.get_variable_scope()
    arg_scope = slim.current_arg_scope()
    output = fn(*tensors)
    # Gradients flow to the trainable variables (and tensors standing for
    # them, e.g. low-precision casts), not to the moving statistics.
    variables = [recorder.variables[name] for name in sorted(recorder.variables)
                 if getattr(recorder.variables[name], 'trainable', True)]
    values = [tf.convert_to_tensor(v) for v in variables]

    def gradient(output_gradient, *gradients):
      passed_on = gradients[:len(tensors)] if pass_on else ()
      if output_gradient is None:
        input_gradients = [None] * len(tensors)
        variable_gradients = [None] * len(variables)
      else:
        with _depending_only_on(output_gradient):
          inputs = [tf.identity(t) for t in tensors]
          with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(inputs)
            tape.watch(variables)
            with _recomputation(), \
                slim.arg_scope(arg_scope), \
                tf.compat.v1.variable_scope(variable_scope, reuse=True,
                                            custom_getter=recorder.replay), \
                slim.arg_scope([slim.conv2d, batch_norm],
                               outputs_collections=None):
              recomputed = fn(*inputs)
          sources = inputs + variables
          computed = tape.gradient(recomputed, sources,
                                   output_gradients=output_gradient)
        # Rejoin the enclosing control scope through a data input that is
        # already in it, so the ops built on these gradients inherit nothing.
        present = [g for g in computed if g is not None]
        joined = iter(tf.identity_n([output_gradient] + present)[1:])
        computed = [None if g is None else next(joined) for g in computed]
        input_gradients = computed[:len(tensors)]
        variable_gradients = computed[len(tensors):]
      for i, passed in enumerate(passed_on):
        if passed is not None:
          input_gradients[i] = (passed if input_gradients[i] is None else
                                input_gradients[i] + passed)
      return [None] + input_gradients + variable_gradients

    name = 'DenseNetRecompute_%d' % next(_GRADIENT_NAMES)
    tf.RegisterGradient(name)(lambda op, *grads: gradient(*grads))
    inputs = [output] + tensors + values
    with tf.compat.v1.get_default_graph().gradient_override_map(
        {'IdentityN': name}):
      outputs = tf.identity_n(inputs)
    compat.record_operation(name, outputs, inputs, gradient)
    if pass_on:
      return outputs[0], list(outputs[1:1 + len(tensors)])
    return outputs[0]

  return call


_GRADIENT_NAMES = itertools.count()


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
  with _unit_scope(scope, 'transition', maps, memory_efficient) as (
      sc, recorder):

    def pool(net):
      if stride == 1:
        return dilated_avg_pool_2x2(net, rate)
      return slim.avg_pool2d(net, [2, 2], stride=stride, padding='VALID')

    def compress(*maps):
      """BN-ReLU of the concatenation, the convolution, the pool."""
      net = batch_norm(_concat(maps), activation_fn=tf.nn.relu,
                       scope='preact')
      net = slim.conv2d(net, int(compression * channels), [1, 1], stride=1,
                        normalizer_fn=None, activation_fn=None,
                        biases_initializer=None, scope='conv')
      return net if dropout_rate else pool(net)

    if memory_efficient:
      net = _recompute_grad(compress, recorder)(*maps)
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
      if block.unit_fn in (dense_unit, transition):
        net = _as_list(net)
      else:
        net = _concat(_as_list(net))
      for i, (unit, rate) in enumerate(units):
        with tf.compat.v1.variable_scope('unit_%d' % (i + 1),
                                         values=_as_list(net)):
          net = block.unit_fn(net, rate=rate, **unit)
      output = slim_utils.collect_named_outputs(
          outputs_collections, sc.name, _concat(_as_list(net)))
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
                     'or None.' % (output_stride, ', '.join(map(str, reachable))))
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

