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

import tensorflow as tf
import tf_keras
import tf_slim as slim

from densenet import nets
from densenet import preprocessing
from densenet import spec as spec_lib
from densenet._env import compat
from densenet.layers import blocks
from densenet.weights import assign
from densenet.weights import checkpoints as weights_lib
from densenet.weights import convert

# What the network needs when no checkpoint says otherwise: the defaults of
# `densenet_arg_scope` and `nets.root_block`, inputs used as given.
DEFAULT_CONTRACT = {name: spec_lib.DEFAULTS[name] for name in spec_lib.CONTRACT}
DEFAULT_CONTRACT['normalization'] = None  # Inputs used as given.

# Constructor arguments keras_model sets itself: what to do instead.
_RESERVED = {'inputs': 'call the model on the images',
             'is_training': 'call the model with training=True or False'}


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


def keras_model(model, num_classes=None, checkpoint=None,
                **constructor_kwargs):
  """A DenseNet as a tf_keras model (`tf_keras.Model`, not Keras 3).

  The model is a `SlimModel`: `model(images, training=False)`
  maps `[batch, height, width, 3]` float32 images to the constructor's
  output: `[batch, num_classes]` logits, `[batch, h, w, num_classes]` with
  `global_pool=False`, or features when `num_classes` is None. It works
  eagerly, in `tf.function`, with `compile`/`fit`/`evaluate`/`predict`
  (tf_keras optimizers and losses: `import tf_keras`; Keras 3 objects, which
  `tf.keras` is in TensorFlow >= 2.16, are refused), under a
  `tf.distribute` strategy (call `keras_model` in its `scope()`), and
  `model.save(path)` writes a SavedModel that `tf.saved_model.load` serves.
  Its variables carry the slim names (`model.variables_by_name()`), so
  `training.restore_by_name` and TF1 graphs read its checkpoints.

  Args:
    model: A `densenet.MODELS` name ('densenet_121', ...), a dict of
      `densenet_X` arguments (e.g. `{'num_units_per_block': [6, 12, 24, 16],
      'growth_rate': 32}`; scope 'densenet_X' unless given), or None to take
      the name the checkpoint records.
    num_classes: Classes of the logits, or None for the features (as the
      constructors; a checkpoint's logits then stay unused).
    checkpoint: Weights to load, anything `convert.read_weights` reads: a
      converted or trained checkpoint of ours (a training run's directory
      too), a pudae checkpoint, a Keras `.h5`/`.keras` file, a torchvision
      state dict. The network is built the way the weights expect
      (batch-norm epsilon, stem padding) and, when the weights record an
      input normalization (converted checkpoints, training runs with their
      config.json and the other sources do; bare checkpoints do not), the
      model takes RGB images in [0, 255] and applies it.
    **constructor_kwargs: Arguments of the constructor (`output_stride`,
      `global_pool`, `initial_output_stride`, `theta`, `dropout_rate`,
      `memory_efficient`, `scope`, ...); not `inputs` or `is_training`
      (that is the call's `training`).

  Returns:
    The built `SlimModel` (a `tf_keras.Model`), weights loaded.

  Raises:
    ValueError: For an unknown model name, a constructor argument the model
      sets itself, or weights that do not fit the network (missing or
      misshaped variables; `weights_lib.WeightMismatchError`).
  """
  for reserved, instead in _RESERVED.items():
    if reserved in constructor_kwargs:
      raise ValueError('%s is not a keras_model argument: %s.' %
                       (reserved, instead))
  weights, contract = None, dict(DEFAULT_CONTRACT)
  if checkpoint is not None:
    weights, contract, recorded_model = checkpoint_contract(checkpoint,
                                                            model)
    if model is None:
      model = recorded_model
  constructor, scope = _constructor(model, constructor_kwargs)

  def net_fn(images, is_training):
    arg_scope = blocks.densenet_arg_scope(
        batch_norm_epsilon=contract['batch_norm_epsilon'])
    with slim.arg_scope(arg_scope), slim.arg_scope(
        [nets.root_block], padding=contract['root_padding']):
      if contract['normalization']:
        images = preprocessing.normalizer(contract['normalization'])(images)
      net, _ = constructor(images, num_classes=num_classes,
                           is_training=is_training, **constructor_kwargs)
    return net

  keras = SlimModel(net_fn, name=scope)
  _build(keras)
  if weights is not None:
    _assign(keras, weights, scope)
  return keras


def checkpoint_contract(checkpoint, model_name=None):
  """What weights expect of the network and its inputs.

  Args:
    checkpoint: Anything `convert.read_weights` reads.
    model_name: The architecture (a name or `densenet_X` config) the weights
      are for, or None to take it from them.

  Returns:
    `(weights, contract, model_name)`: weights by name relative to the model
    scope; contract a dict like `DEFAULT_CONTRACT` (normalization None when
    the checkpoint records none); the weights' model name.
  """
  weights, metadata = convert.read_weights(checkpoint, model_name=model_name)
  # Our checkpoints say what they record (converted metadata, a run's
  # config.json); the other sources always expect their normalization.
  recorded = (metadata['source'] != 'densenet' or
              'normalization' in metadata.get('recorded', ()))
  contract = {'batch_norm_epsilon': metadata['batch_norm_epsilon'],
              'root_padding': metadata.get('root_padding', 'symmetric'),
              'normalization': metadata['normalization'] if recorded else None}
  return weights, contract, metadata['model']


def _constructor(model, constructor_kwargs):
  """`(constructor, scope)` of a model name or densenet_X dict."""
  if isinstance(model, dict):
    spec_lib.resolve(model)  # Validates its keys.
    config = dict(model)
    clashes = sorted(set(config) & (set(constructor_kwargs) | set(
        _RESERVED) | {'num_classes'}))
    if clashes:
      raise ValueError('model (a densenet_X dict) must not give %s: pass '
                       'them once, as keras_model arguments.' %
                       ', '.join(clashes))
    scope = constructor_kwargs.get('scope', config.get('scope', 'densenet_X'))

    def constructor(images, **kwargs):
      return nets.densenet_X(images, **config, **kwargs)

    return constructor, scope
  if model not in nets.MODELS:
    raise ValueError('model must be one of %s or a densenet_X dict, got %r.'
                     % (', '.join(nets.MODELS), model))
  return nets.MODELS[model], constructor_kwargs.get('scope', model)


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
