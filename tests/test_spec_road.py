"""ModelSpec as the one road to the graph: `keras_model` built on it, its
argument checks before Keras, its SavedModel, and the contract its weights
record (issue 21; issue 22, cases 4, 13, 14, 15). The run sequence and the
command-line names are in test_run_sequence.py.

One tiny `densenet_X` model (blocks of 1 and 2 units, k=4) serves the call
checks and the SavedModel; the named architectures are compared with the
slim constructors' variables.
"""

import numpy as np
import pytest
import tensorflow as tf

import densenet
from densenet import nets
from densenet import spec as spec_lib
from densenet.training import slim_model

TINY = {'num_units_per_block': [1, 2], 'growth_rate': 4,
        'num_initial_filters': 8}


def _first_line(error):
  return str(error.value).splitlines()[0]


@pytest.fixture(scope='module')
def tiny():
  """The tiny model (3 classes), and float images in [0, 255]."""
  model = densenet.keras_model(TINY, num_classes=3)
  images = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3))
  model(images.astype(np.float32), training=True)  # Statistics off 0 and 1.
  return model, images.astype(np.uint8).astype(np.float32)


def _slim_variables(constructor, **kwargs):
  """{name: shape} of a slim constructor's variables, in a TF1 graph."""
  import tf_slim as slim  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [1, 32, 32, 3])
    with slim.arg_scope(densenet.densenet_arg_scope()):
      constructor(images, is_training=False, **kwargs)
    return {v.op.name: v.shape.as_list()
            for v in tf.compat.v1.global_variables()}


def test_keras_model_builds_every_architecture_resolve_names():
  """Every name `spec.resolve` (and `densenet train`) takes; the bug: CIFAR
  names outside `densenet.MODELS` were refused."""
  model = densenet.keras_model('densenet_bc_10_k4', num_classes=10)
  ours = {name: v.shape.as_list()
          for name, v in model.variables_by_name().items()}
  expected = _slim_variables(nets.densenet_cifar, depth=10, growth_rate=4,
                             bc=True, num_classes=10)
  assert len(ours) == len(expected) == 47
  assert ours == expected
  assert model.name == 'densenet_bc_10_k4'
  logits = model(np.zeros([2, 32, 32, 3], np.float32), training=False)
  assert logits.shape == (2, 10)
  # The named ones resolve to their own constructor (building DenseNet-BC
  # L=100 takes seconds: the spec is enough).
  spec, weights = slim_model.model_spec('densenet_bc_100_k12', 10)
  assert (spec.resolved.constructor, spec.scope, spec.num_classes,
          spec.normalization, weights) == (
              'densenet_bc_100_k12', 'densenet_bc_100_k12', 10, None, None)


def test_call_refuses_a_training_that_is_not_a_bool(tiny):
  """Case 4: 'no' was taken for True (training mode, moving averages
  updated)."""
  model, images = tiny
  before = {name: v.numpy() for name, v in model.variables_by_name().items()}
  for training in ('no', 1, 'False'):
    with pytest.raises(ValueError) as error:
      model(images, training=training)
    assert _first_line(error) == (
        'training must be True, False, a bool Tensor or None, got %r.' %
        (training,))
  for name, value in model.variables_by_name().items():
    np.testing.assert_array_equal(value.numpy(), before[name], err_msg=name)
  # A bool Tensor is fine, and so is numpy's bool.
  np.testing.assert_array_equal(
      model(images, training=tf.constant(False)).numpy(),
      model(images, training=np.bool_(False)).numpy())


def test_call_names_the_channels_the_model_was_built_for(tiny):
  """Case 13: was 'Trying to share variable densenet_X/conv1/weights, but
  specified shape (7, 7, 1, 8) and found shape (7, 7, 3, 8)'."""
  model, images = tiny
  with pytest.raises(ValueError) as error:
    model(images[..., :1], training=False)
  assert _first_line(error) == (
      'The model densenet_X was built for 3-channel images [batch, height, '
      'width, 3]; got inputs of shape (2, 32, 32, 1).')


@pytest.mark.parametrize('kwargs,message', [
    ({'num_classes': 0}, 'num_classes must be None or an int >= 1, got 0.'),
    ({'output_stride': 3},
     'output_stride=3 cannot be reached; valid values: 4, 8 or None.'),
    ({'output_stride': 8, 'initial_output_stride': 2},
     'output_stride=8 cannot be reached; valid values: 2, 4 or None.'),
    ({'colour': 'red'}, 'colour: not an argument of the densenet_X '
     'constructor; its arguments are bottleneck, compression, dropout_rate, '
     'global_pool, initial_output_stride, memory_efficient, output_stride, '
     'reuse, root, scope, spatial_squeeze, theta.'),
    ({'growth_rate': 8}, 'The architecture densenet_X already sets '
     'growth_rate: give it once, in the architecture.'),
    ({'is_training': True}, 'is_training is not a keras_model constructor '
     'argument: call the model with training=True or False.'),
])
def test_keras_model_errors_come_first_not_under_keras_text(kwargs, message):
  """Case 14: the real message on the first line, not 'Exception
  encountered when calling layer ...'."""
  kwargs.setdefault('num_classes', 3)
  with pytest.raises(ValueError) as error:
    densenet.keras_model(TINY, **kwargs)
  assert _first_line(error) == message


def test_errors_raised_inside_call_are_unwrapped():
  """What Keras still wraps (an error while tracing the network) comes out
  as raised: its class, its message on the first line."""

  def net_fn(images, is_training):
    raise ValueError('output_stride=16 cannot be reached; valid values: 4, '
                     '8 or None.')

  model = slim_model.SlimModel(net_fn)
  with pytest.raises(ValueError) as error:
    model(np.zeros([1, 8, 8, 3], np.float32), training=False)
  assert _first_line(error).startswith('output_stride=16 cannot be reached')
  assert 'Exception encountered' not in str(error.value)


def test_saved_model_takes_uint8_and_says_too_small(tiny, tmp_path):
  """Case 15: `model.save()` refused uint8 ('Could not find matching
  concrete function') and a 3x3 image gave 'Negative dimension size'."""
  model, images = tiny
  expected = model(images, training=False).numpy()
  np.testing.assert_allclose(
      model(images.astype(np.uint8), training=False).numpy(), expected,
      atol=1e-5)
  model.save(str(tmp_path / 'saved'))
  loaded = tf.saved_model.load(str(tmp_path / 'saved'))
  for dtype in (np.float32, np.uint8):
    logits = loaded(tf.constant(images.astype(dtype)), training=False)
    assert logits.dtype == tf.float32
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5,
                               err_msg=str(dtype))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'inputs are too small: densenet_X needs images '
                     r'of at least 5x5 pixels .*\[3 3\]'):
    loaded(tf.zeros([1, 3, 3, 3]), training=False)
  # tf_keras' own loader still revives it (float32, its saved spec).
  import tf_keras  # pylint: disable=g-import-not-at-top
  revived = tf_keras.models.load_model(str(tmp_path / 'saved'))
  np.testing.assert_allclose(revived(images, training=False).numpy(),
                             expected, atol=1e-5)


def test_output_strides_without_tensorflow_match_the_constructors():
  """`Architecture.output_strides` (TF-free, what the command line checks)
  gives the strides the constructors' `stack_blocks_dense` accepts (on the
  architecture's real block list), and no other."""
  from densenet import architectures  # pylint: disable=g-import-not-at-top
  import densenet_utils  # pylint: disable=g-import-not-at-top
  cases = [('densenet_121', None), ('densenet_bc_10_k4', None),
           ('densenet_bc_10_k4', 4), (TINY, None), (TINY, 2),
           (dict(TINY, initial_output_stride=1), None)]
  for architecture, initial in cases:
    resolved = spec_lib.resolve(architecture)
    if isinstance(architecture, dict):
      settings = dict(architecture)
    elif resolved.constructor == 'densenet_cifar':
      settings = architectures.cifar(10, 4, True)
    else:
      settings = architectures.ARCHITECTURES[architecture]
    block_list = nets.densenet_blocks(settings['num_units_per_block'],
                                      settings['growth_rate'])
    input_stride = initial or settings.get('initial_output_stride', 4)
    valid = resolved.output_strides(initial)
    for stride in (1, 2, 3, 4, 8, 16, 32, 64):
      try:
        densenet_utils.minimum_input_size(block_list, stride, input_stride)
        reachable = True
      except ValueError as error:
        assert 'cannot be reached' in str(error)
        reachable = False
      assert reachable == (stride in valid), (architecture, initial, stride)
    assert len(valid) == len(settings['num_units_per_block'])


# ---------------------------------------------------------------------------
# What a checkpoint records, through `read_weights`, decides keras_model's
# normalization.


def test_keras_model_takes_the_contract_its_weights_record(tiny, tmp_path):
  """A checkpoint of ours without metadata: images used as given, epsilon
  and stem the defaults (`read_weights` says nothing was recorded); with a
  recorded normalization the model normalizes [0, 255] images itself."""
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  from densenet.weights import convert  # pylint: disable=g-import-not-at-top
  from densenet.weights import runs  # pylint: disable=g-import-not-at-top
  model, images = tiny
  prefix = checkpoints.save(
      {name: v.numpy() for name, v in model.variables_by_name().items()},
      str(tmp_path / 'bare' / 'model.ckpt'))
  with pytest.warns(DeprecationWarning, match='read_weights.model_name=.'):
    _, metadata = convert.read_weights(prefix, model_name=TINY)  # 0.1's.
  assert metadata['recorded'] == []
  assert runs.read_contract(prefix) == {}
  again = densenet.keras_model(TINY, num_classes=3, checkpoint=prefix)
  np.testing.assert_array_equal(again(images, training=False).numpy(),
                                model(images, training=False).numpy())
  weights = {name.split('/', 1)[1]: v.numpy()
             for name, v in model.variables_by_name().items()}
  recorded = checkpoints.save_checkpoint(
      weights, {'model': TINY, 'num_classes': 3, 'batch_norm_epsilon': 1e-3,
                'normalization': 'pudae', 'root_padding': 'same'},
      str(tmp_path / 'recorded' / 'model.ckpt'))
  assert runs.read_contract(recorded) == {
      'architecture': TINY, 'num_classes': 3,
      'batch_norm_epsilon': 1e-3, 'normalization': 'pudae',
      'root_padding': 'same'}
  spec, _ = slim_model.model_spec(None, 3, recorded)
  assert (spec.batch_norm_epsilon, spec.root_padding, spec.normalization) == (
      1e-3, 'same', 'pudae')
  normalizing = densenet.keras_model(checkpoint=recorded, num_classes=3)
  # The reference: the slim graph built and fed by hand.
  import tf_slim as slim  # pylint: disable=g-import-not-at-top

  from densenet import preprocessing  # pylint: disable=g-import-not-at-top
  from densenet.weights import assign  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    inputs = preprocessing.normalize(tf.constant(images), 'pudae')
    with slim.arg_scope(densenet.densenet_arg_scope(
        batch_norm_epsilon=1e-3)), slim.arg_scope([nets.root_block],
                                                  padding='same'):
      logits, _ = nets.densenet_X(inputs, 3, is_training=False, **TINY)
    init_fn = assign.assign_fn(weights, 'densenet_X')
    with tf.compat.v1.Session() as session:
      init_fn(session)
      expected = session.run(logits)
  ours = normalizing(images, training=False).numpy()
  assert np.abs(ours - model(images, training=False).numpy()).max() > 1e-3
  np.testing.assert_allclose(ours, expected, atol=1e-5)
