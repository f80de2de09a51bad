"""The TensorFlow 2 face of the library: a DenseNet as a tf_keras model.

    import densenet
    model = densenet.keras_model('densenet_121', num_classes=1000)
    logits = model(images, training=False)              # [batch, 1000], eager

The constructors of `densenet.nets` are tf-slim (TF1 graph) code; this wraps
one in `SlimModel`, the tf_keras model our trainer uses, so the
same network runs eagerly, inside `tf.function`, in `compile`/`fit`/
`evaluate`/`predict` (with tf_keras optimizers and losses), under a
`tf.distribute` strategy, and saves to a SavedModel. Its variables keep the
slim names (`densenet_121/conv1/weights`...), so our checkpoints and
converted weights load into it by name.
"""

import inspect
import types

import numpy as np
import tensorflow as tf
import tf_keras

from densenet import nets
from densenet import spec as spec_lib
from densenet._env import compat
from densenet._env import lazy
from densenet.weights import assign
from densenet.weights import checkpoints as weights_lib
from densenet.weights import convert

# Constructor arguments keras_model sets itself: what to do instead.
_RESERVED = {'inputs': 'call the model on the images',
             'is_training': 'call the model with training=True or False',
             'num_classes': 'pass it once, as keras_model\'s num_classes'}
# Constructor arguments that are `ModelSpec` fields.
_SPEC_ARGUMENTS = ('memory_efficient', 'output_stride')
# Input dtypes a saved model takes besides float32 (cast first).
_SAVED_EXTRA_DTYPES = (tf.uint8,)


class SlimModel(tf_keras.Model):
  """A tf-keras Model running a tf-slim network function.

  Args:
    net_fn: `net_fn(images, is_training) -> logits` (or `(logits,
      end_points)`), building its variables with tf-slim /
      `tf.compat.v1.get_variable`. `images` is `[batch, height, width, 3]`.
    name: Optional Keras name of the model.
  """

  def __init__(self, net_fn, name=None):
    super().__init__(name=name)
    self._net_fn = net_fn
    self._channels = None  # Of the images of the first call: the variables'.
    # tf-slim's pooling layers need a graph name scope; eager calls trace.
    # No autograph: slim code has no tensor-dependent Python control flow,
    # and converting it would only slow the trace down. Held in a plain
    # namespace, not as a tf.function attribute, which SavedModel would
    # export and re-trace outside the variable store (it saves `call`).
    self._eager = types.SimpleNamespace(
        net=tf.function(self._run_net, autograph=False))

  def _run_net(self, images, training):
    # Each build numbers default-named scopes as a fresh graph would.
    with compat.fresh_variable_scope_counts():
      outputs = self._net_fn(images, training)
    if isinstance(outputs, (tuple, list)):
      outputs = outputs[0]
    return outputs

  @tf.autograph.experimental.do_not_convert
  def __call__(self, *args, **kwargs):
    """Keras' `__call__`, with the arguments checked first and the errors
    of `call` as raised (Keras hides them under its own message).

    Raises:
      ValueError: If `training` is not None, a bool or a bool Tensor (a
        string such as 'no' would be taken for True), or if the images do
        not have the channel count the model was built for.
    """
    inputs = args[0] if args else kwargs.get('inputs')
    training = args[1] if len(args) > 1 else kwargs.get('training')
    _check_training(training)
    channels = self._check_channels(inputs)
    try:
      outputs = super().__call__(*args, **kwargs)
    except Exception as error:  # pylint: disable=broad-except
      cause = compat.keras_call_error_cause(error)
      if cause is None:
        raise
    else:
      if self._channels is None:
        self._channels = channels
      return outputs
    raise cause.with_traceback(cause.__traceback__)

  def _check_channels(self, inputs):
    """The static channel count of `inputs` (None if unknown), checked
    against the model's."""
    shape = getattr(inputs, 'shape', None)
    try:
      shape = tf.TensorShape(np.shape(inputs) if shape is None else shape)
    except (TypeError, ValueError):
      return None  # Let the network say what is wrong with them.
    channels = shape[-1] if shape.rank == 4 else None
    if None not in (channels, self._channels) and channels != self._channels:
      raise ValueError(
          'The model %s was built for %d-channel images [batch, height, '
          'width, %d]; got inputs of shape %s.' % (
              self.name, self._channels, self._channels, shape))
    return channels

  @property
  def _trackable_saved_model_saver(self):
    # `model.save()`: the saved model takes uint8 images too.
    return compat.keras_saved_model_saver(self, _SAVED_EXTRA_DTYPES)

  @compat.track_tf1_style_variables
  def call(self, inputs, training=False):  # pylint: disable=arguments-differ
    """`[batch, height, width, 3]` images -> the logits of `net_fn`."""
    if tf.executing_eagerly():
      return self._eager.net(inputs, bool(training))
    return self._run_net(inputs, training)

  def compile(self, optimizer='rmsprop', loss=None, metrics=None, **kwargs):
    """tf_keras' `Model.compile`, refusing Keras 3 objects with a clear error.

    Raises:
      ValueError: If `optimizer`, `loss` or a metric is a Keras 3 object
        (`keras.*`, which `tf.keras` is in TensorFlow >= 2.16).
    """
    for argument, value in (('optimizer', optimizer), ('loss', loss),
                            ('metrics', metrics),
                            ('weighted_metrics',
                             kwargs.get('weighted_metrics'))):
      for item in tf.nest.flatten(value):
        origin = _keras3_origin(item)
        if origin:
          raise ValueError(
              '%s is a Keras 3 object (%s; tf.keras is Keras 3 in TensorFlow '
              '>= 2.16), but this model is a tf_keras model: `import tf_keras` '
              'and pass tf_keras objects, e.g. tf_keras.optimizers.SGD(0.01), '
              'tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)'
              ', or their string names.' % (argument, origin))
    super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

  def variables_by_name(self):
    """{slim variable name: variable} of every variable of the network."""
    return {weights_lib.variable_key(v): v for v in self.variables}


def _keras3_origin(item):
  """'module.Name' of a Keras 3 object, function or class, else None."""
  kind = item if inspect.isfunction(item) or isinstance(item, type) else (
      type(item))
  module = getattr(kind, '__module__', None) or ''
  if module.split('.')[0] != 'keras':
    return None
  return '%s.%s' % (module, kind.__qualname__)




def _check_training(training):
  """Raises ValueError unless `training` is None, a bool or a bool Tensor."""
  if training is None or isinstance(training, (bool, np.bool_)):
    return
  if (tf.is_tensor(training) or isinstance(training, tf.Variable)) and (
      training.dtype.base_dtype == tf.bool):
    return
  raise ValueError('training must be True, False, a bool Tensor or None, '
                   'got %r.' % (training,))


@lazy.renamed_arguments(model='architecture')
def keras_model(architecture=None, num_classes=None, checkpoint=None,
                **constructor_kwargs):
  """A DenseNet as a tf_keras model (`tf_keras.Model`, not Keras 3).

  The model is a `SlimModel`: `model(images, training=False)`
  maps `[batch, height, width, 3]` images (float32, or any real dtype such
  as uint8) to the constructor's output: `[batch, num_classes]` logits,
  `[batch, h, w, num_classes]` with `global_pool=False`, or features when
  `num_classes` is None. It works eagerly, in `tf.function`, with
  `compile`/`fit`/`evaluate`/`predict` (tf_keras optimizers and losses:
  `import tf_keras`; Keras 3 objects, which `tf.keras` is in TensorFlow >=
  2.16, are refused), under a `tf.distribute` strategy (call `keras_model`
  in its `scope()`), and `model.save(path)` writes a SavedModel that
  `tf.saved_model.load` serves (float32 or uint8 images). Its variables
  carry the slim names (`model.variables_by_name()`), so
  `training.restore_by_name` and TF1 graphs read its checkpoints.

  The network is the `densenet.spec.ModelSpec` of the arguments (and of the
  weights): `spec.build(...)`.

  Args:
    architecture: A `densenet.MODELS` name ('densenet_121', ...), a CIFAR
      DenseNet name ('densenet_bc_10_k4', any depth and growth rate), a dict
      of `densenet_X` arguments (e.g. `{'num_units_per_block': [6, 12, 24,
      16], 'growth_rate': 32}`; scope 'densenet_X' unless given), or None to
      take the one the checkpoint records.
    num_classes: Classes of the logits, or None for the features (as the
      constructors; a checkpoint's logits then stay unused).
    checkpoint: Weights to load, anything `convert.read_weights` reads: a
      converted or trained checkpoint of ours (a training run's directory
      too), a pudae checkpoint, a Keras `.h5`/`.keras` file, a torchvision
      state dict. The network is built the way the weights expect
      (batch-norm epsilon, stem padding) and, when the weights record an
      input normalization (converted checkpoints, training runs with their
      config.json and the other sources do; bare checkpoints do not), the
      model takes RGB images in [0, 255] and applies it; otherwise it uses
      the images as given.
    **constructor_kwargs: Arguments of the constructor (`output_stride`,
      `global_pool`, `initial_output_stride`, `theta`, `dropout_rate`,
      `memory_efficient`, `scope`, ...); not `inputs` or `is_training`
      (that is the call's `training`). `model=`, 0.1's name of
      `architecture`, still works for one release.

  Returns:
    The built `SlimModel` (a `tf_keras.Model`), weights loaded.

  Raises:
    ValueError: Before anything is built, for an unknown architecture, a bad
      `num_classes` or `output_stride`, an argument the constructor does not
      take or the model sets itself; later for weights that do not fit the
      network (missing or misshaped variables;
      `weights_lib.WeightMismatchError`).
  """
  spec, weights = model_spec(architecture, num_classes, checkpoint,
                             constructor_kwargs)
  kwargs = {k: v for k, v in constructor_kwargs.items()
            if k not in _SPEC_ARGUMENTS}

  def net_fn(images, is_training):
    return spec.build(spec.normalize(images), is_training, **kwargs)[0]

  keras = SlimModel(net_fn, name=kwargs.get('scope', spec.scope))
  _build(keras)
  if weights is not None:
    _assign(keras, weights, kwargs.get('scope', spec.scope))
  return keras


def model_spec(architecture, num_classes=None, checkpoint=None,
               constructor_kwargs=None):
  """The `ModelSpec` of a `keras_model` call, and the weights to load.

  Reads `checkpoint` (`convert.read_weights`: its architecture and what its
  weights expect) and checks every argument, so that a mistake is a
  ValueError before Keras wraps it.

  Returns:
    `(spec, weights)`: weights None without a checkpoint, else names
    relative to the model scope -> arrays. The spec's normalization is None
    (images used as given) unless the weights record one.
  """
  constructor_kwargs = dict(constructor_kwargs or {})
  for reserved, instead in _RESERVED.items():
    if reserved in constructor_kwargs:
      raise ValueError('%s is not a keras_model constructor argument: %s.'
                       % (reserved, instead))
  settings = {name: constructor_kwargs[name] for name in _SPEC_ARGUMENTS
              if constructor_kwargs.get(name) is not None}
  weights = None
  if checkpoint is not None:
    weights, metadata = convert.read_weights(checkpoint,
                                             architecture=architecture)
    spec = spec_lib.ModelSpec.from_metadata(metadata, architecture)
    recorded = metadata.get('recorded', spec_lib.CONTRACT)
    spec = spec.replace(
        num_classes=num_classes, normalization=(
            spec.normalization if 'normalization' in recorded else None),
        **settings)
  elif architecture is None:
    raise ValueError('keras_model needs an architecture (or a checkpoint '
                     'that records one).')
  else:
    spec = spec_lib.ModelSpec(architecture, num_classes, normalization=None,
                              **settings)
  _check_constructor_arguments(spec, constructor_kwargs)
  spec.check_build(initial_output_stride=constructor_kwargs.get(
      'initial_output_stride'))
  return spec, weights


def _check_constructor_arguments(spec, kwargs):
  """Raises ValueError for keywords the spec's constructor does not take,
  or that its architecture already sets."""
  resolved = spec.resolved
  given = set(spec.architecture) if isinstance(spec.architecture, dict) else (
      set(resolved.kwargs) - {'scope'})
  clashes = sorted(given & set(kwargs))
  if clashes:
    raise ValueError('The architecture %s already sets %s: give it once, in '
                     'the architecture.' % (spec.scope, ', '.join(clashes)))
  parameters = inspect.signature(
      getattr(nets, resolved.constructor)).parameters
  allowed = sorted(set(parameters) - set(resolved.kwargs) - set(_RESERVED)
                   | {'scope'})
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError('%s: not an argument of the %s constructor; its '
                     'arguments are %s.' % (', '.join(unknown), spec.scope,
                                            ', '.join(allowed)))


def _build(model):
  """Creates the variables in the current strategy, tracing the network for
  `[None, None, None, 3]` images (no forward pass; the SavedModel signature
  then takes any batch and image size)."""
  strategy = tf.distribute.get_strategy()
  spec = tf.TensorSpec([None, None, None, 3], tf.float32)

  @tf.function(input_signature=[spec], autograph=False)
  def build(images):
    return strategy.run(lambda x: model(x, training=False), (images,))

  with strategy.scope():
    build.get_concrete_function()


def _assign(model, weights, scope):
  """Loads `{name relative to scope: array}` into the model, by name.

  Raises:
    weights_lib.WeightMismatchError: If a variable has no weight or one of
      another shape.
  """
  named = [types.SimpleNamespace(op=types.SimpleNamespace(name=name),
                                 shape=variable.shape, variable=variable)
           for name, variable in model.variables_by_name().items()]
  pairs, _ = assign.match_variables(weights, named, scope)
  for proxy, value in pairs:
    proxy.variable.assign(value)
