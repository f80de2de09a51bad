"""DenseNet batch norm: tf-slim's variables, fused kernels, tf.distribute aware.

`batch_norm` is a drop-in for `slim.batch_norm` (its fused NHWC path) that
also works inside a `tf.distribute` replica context and can normalize with
the statistics of the global batch (`synchronized`). In inference mode it is
one multiply-add with `scale = gamma / sqrt(moving_variance + epsilon)`, the
same epsilon rule as training (`tf.nn.fused_batch_norm` and the synchronized
path), so every path computes the same function.
"""

import numpy as np
import tensorflow as tf
import tf_slim as slim
from tf_slim.layers import utils as slim_utils
from tf_slim.ops import variables as slim_variables

from densenet._env import compat
from densenet.layers import recompute

# TensorFlow's fused batch norm raises a smaller epsilon to this (cuDNN's
# minimum). Every path of `batch_norm` (fused training and inference, the
# inference multiply-add, synchronized training) uses the same rule,
# `effective_epsilon`, so they compute the same function for any epsilon
# (torchvision's 1e-5 runs as 1.001e-5: a relative change of the
# normalization below 5e-9 / variance).
MIN_EPSILON = 1.001e-5


def effective_epsilon(epsilon):
  """The epsilon batch norm adds to the variance: `max(epsilon, 1.001e-5)`."""
  return max(float(epsilon), MIN_EPSILON)

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
    epsilon: Added to the variance before the square root; at least
      `MIN_EPSILON` (`effective_epsilon`), on every path.
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
  epsilon = effective_epsilon(epsilon)
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
        scale = gamma * tf.math.rsqrt(moving_variance + epsilon)
        shift = beta - moving_mean * scale
        return (inputs * tf.cast(scale, inputs.dtype) +
                tf.cast(shift, inputs.dtype), moving_mean, moving_variance)
      return tf.compat.v1.nn.fused_batch_norm(
          inputs, gamma, beta, mean=moving_mean, variance=moving_variance,
          epsilon=epsilon, is_training=False)

    outputs, mean, variance = slim_utils.smart_cond(is_training, training,
                                                    inference)
    training_value = slim_utils.constant_value(is_training)
    if (training_value is None or training_value) and (
        not recompute.recomputing()):

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
