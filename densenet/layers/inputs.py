"""What the constructors accept as images, checked before any layer is built.

A rank-4 `[batch, height, width, channels]` Tensor with known channels (numpy
arrays and nested lists are made constants), computed in float32 or a
low-precision float (`as_inputs`), at least the network's minimum size
(`check_size`, statically or by an assertion at run time); variables stay
float32 under low precision (`float32_variables`). The constructors run only
in a TF1 graph or under a TF1 variable store (`check_graph_mode`).
"""

import numpy as np
import tensorflow as tf

from densenet._env import compat

_COMPUTE_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


def as_inputs(inputs):
  """`inputs` as a Tensor the network computes in (see `densenet`).

  Raises:
    RuntimeError: Outside a TF1 graph and outside a TF1 variable store
      (eagerly, or in a plain `tf.function`), where tf-slim cannot keep
      variables.
    ValueError: If the shape is not `[batch, height, width, channels]`.
  """
  check_graph_mode()
  if not tf.is_tensor(inputs):
    array = np.asarray(inputs)
    inputs = tf.convert_to_tensor(
        array, None if array.dtype == np.float32 or array.dtype == np.float16
        else tf.float32)
  if inputs.dtype.base_dtype not in _COMPUTE_DTYPES:
    inputs = tf.cast(inputs, tf.float32)
  check_inputs(inputs)
  return inputs


def check_graph_mode():
  """Raises the two ways to run the networks when neither is in use."""
  if not tf.compat.v1.executing_eagerly_outside_functions():
    return  # A TF1 graph: tf.compat.v1.Graph / Session code.
  if not tf.executing_eagerly() and compat.has_tf1_variable_store():
    return  # Traced under track_tf1_style_variables (densenet.keras_model).
  raise RuntimeError(
      'The DenseNet constructors are TF1 graph-mode (tf-slim) code and cannot '
      'run %s. Two ways: densenet.keras_model(\'densenet_121\', ...) gives '
      'the same network as a tf_keras model (eager, tf.function, fit, '
      'SavedModel); or build it in tf.compat.v1 graph mode: `with '
      'tf.Graph().as_default():` ... `tf.compat.v1.Session()`.' % (
          'eagerly' if tf.executing_eagerly() else
          'in a tf.function without a TF1 variable store'))


def check_inputs(inputs):
  shape = inputs.shape
  if shape.rank != 4:
    raise ValueError('inputs must be a rank-4 [batch, height, width, '
                     'channels] Tensor, got shape %s.' % shape)
  if shape[-1] is None:
    raise ValueError('inputs must have a known channel count, got shape %s.'
                     % shape)


def check_size(inputs, minimum, output_stride, name):
  """`inputs`, checked to be at least `minimum` pixels high and wide.

  The root maps a size h to ceil(h / initial_output_stride) and every
  downsampling transition floors a size by 2 (`minimum_input_size`); below
  `minimum` a map would shrink to nothing. Sizes known when the graph is built
  are checked now; unknown ones (placeholders, `tf.function`s with a dynamic
  shape, SavedModel signatures) by an assertion that runs before the network
  does, so small images fail with a message instead of giving NaN logits.

  Raises:
    ValueError: If a static height or width is below `minimum`.
  """
  what = ('%s needs images of at least %dx%d pixels (output_stride %s)' %
          (name, minimum, minimum, output_stride))
  height, width = inputs.shape[1], inputs.shape[2]
  if (height is not None and height < minimum) or (
      width is not None and width < minimum):
    raise ValueError('inputs are too small: %s, got %sx%s (height x width).'
                     % (what, height, width))
  if height is not None and width is not None:
    return inputs
  size = tf.shape(inputs)[1:3]
  check = tf.debugging.Assert(
      tf.reduce_all(size >= minimum),
      ['inputs are too small: %s, got (height, width):' % what, size],
      name='check_input_size')
  with tf.control_dependencies([check]):
    # Not an identity: its output keeps the unknown sizes even where the
    # graph is later specialized to known ones (a loaded SavedModel called
    # on a 3x3 image), so shape inference does not fail before the check.
    return tf.compat.v1.placeholder_with_default(inputs, inputs.shape)


_LOW_PRECISION = (tf.bfloat16, tf.float16)


def float32_variables(dtype):
  """A variable getter storing `dtype` variables as float32, or None.

  Layers ask for variables of their inputs' dtype; for a low-precision dtype
  the getter creates (or reuses) the float32 variable of the same name and
  returns it cast to `dtype`.
  """
  if dtype.base_dtype not in _LOW_PRECISION:
    return None

  def float32_getter(getter, name, shape=None, dtype=None, *args, **kwargs):
    if dtype is None or dtype.base_dtype not in _LOW_PRECISION:
      return getter(name, shape, dtype, *args, **kwargs)
    return tf.cast(getter(name, shape, tf.float32, *args, **kwargs), dtype)

  return float32_getter
