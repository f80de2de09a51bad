"""Tests for densenet.weights.convert: Keras, pudae and torchvision weights."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import densenet
from densenet.weights import assign
from densenet.weights import checkpoints
from densenet.weights import convert
from densenet.weights import names

KERAS_MODELS = {
    # model: (our constructor, how the test saves the Keras weights)
    121: (densenet.densenet_121, 'keras3.weights.h5'),
    169: (densenet.densenet_169, 'keras3 model.save .h5'),
    201: (densenet.densenet_201, 'tf_keras save_weights .h5'),
}


def _randomize(model, rng):
  """Random BN parameters and moving statistics, random classifier bias."""
  for layer in model.layers:
    weights = layer.get_weights()
    if len(weights) == 4:  # gamma, beta, moving_mean, moving_variance.
      n = weights[0].shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n),
                         rng.normal(0, 0.2, n), rng.uniform(0.5, 1.5, n)])
    elif len(weights) == 2:  # The classifier.
      layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape)])


def _keras_model(depth, how, path, rng):
  """Builds keras.applications.DenseNet<depth>, randomizes it, saves it."""
  if how.startswith('tf_keras'):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
  else:
    import keras  # pylint: disable=g-import-not-at-top
  model = getattr(keras.applications, 'DenseNet%d' % depth)(
      weights=None, classifier_activation=None)
  _randomize(model, rng)
  if how == 'keras3.weights.h5':
    path = str(path) + '.weights.h5'
    model.save_weights(path)
  elif how == 'keras3 model.save .h5':
    path = str(path) + '.h5'
    model.save(path)
  else:
    path = str(path) + '.h5'
    model.save_weights(path)  # The layout of Keras' published files.
  return keras, model, path


def _our_graph(constructor, metadata):
  images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
  with slim.arg_scope(densenet.densenet_arg_scope(
      batch_norm_epsilon=metadata['batch_norm_epsilon'])):
    logits, end_points = constructor(images, num_classes=1000,
                                     is_training=False)
  return images, logits, end_points


@pytest.mark.parametrize('depth', sorted(KERAS_MODELS))
def test_keras_weights_give_keras_logits(depth, tmp_path):
  constructor, how = KERAS_MODELS[depth]
  rng = np.random.RandomState(depth)
  keras, model, path = _keras_model(depth, how, tmp_path / 'keras', rng)
  # Inputs as Keras' preprocess_input(mode='torch') would give them.
  images = rng.normal(0, 1, (2, 224, 224, 3)).astype(np.float32)
  keras_logits = np.asarray(model(images, training=False))
  assert keras_logits.std() > 0.1  # Not a degenerate network.

  metadata = convert.convert(path, str(tmp_path / 'ours' / 'model.ckpt'),
                             check=False)
  assert metadata['model'] == constructor.__name__
  assert metadata['num_classes'] == 1000
  assert metadata['batch_norm_epsilon'] == 1.001e-5
  assert metadata['normalization'] == 'torch'
  weights, stored = convert.read_weights(str(tmp_path / 'ours' / 'model.ckpt'))
  assert stored['source'] == 'keras'
  assert stored['batch_norm_epsilon'] == 1.001e-5
  assert stored['normalization'] == 'torch'

  keras_features = None
  if depth == 121:
    # The same weights without the top, on a non-square image.
    features_model = keras.applications.DenseNet121(
        weights=None, include_top=False, input_shape=(None, None, 3))
    features_model.set_weights(model.get_weights()[:-2])
    odd = rng.normal(0, 1, (2, 150, 200, 3)).astype(np.float32)
    keras_features = np.asarray(features_model(odd, training=False))
    # Every reader gives the same weights: live model, .keras archive.
    model.save(str(tmp_path / 'keras.keras'))
    for source in (model, str(tmp_path / 'keras.keras')):
      other, _ = convert.read_weights(source)
      assert sorted(other) == sorted(weights)
      for name in weights:
        np.testing.assert_array_equal(other[name], weights[name])

  with tf.Graph().as_default():
    inputs, logits, end_points = _our_graph(constructor, stored)
    init_fn = assign.assign_fn(weights, scope=constructor.__name__)
    assert init_fn.unused == []
    with tf.compat.v1.Session() as session:
      init_fn(session)
      our_logits = session.run(logits, {inputs: images})
      diff = np.abs(our_logits - keras_logits).max()
      print('DenseNet%d max |logit difference| %.3g' % (depth, diff))
      assert diff <= 1e-4
      np.testing.assert_array_equal(np.argsort(-our_logits)[:, :5],
                                    np.argsort(-keras_logits)[:, :5])
      if keras_features is not None:
        # densenet_121/postnorm is the num_classes=None, global_pool=False
        # output of the network.
        features = session.run(end_points['densenet_121/postnorm'],
                               {inputs: odd})
        assert features.shape == keras_features.shape == (2, 4, 6, 1024)
        np.testing.assert_allclose(features, keras_features, atol=1e-4)


def test_keras_names():
  # tf-keras / Keras 2 stem names and the 'fc1000' classifier of Keras' files.
  assert names.map_name('keras', 'conv1_conv/kernel')[0] == 'conv1/weights'
  assert names.map_name('keras', 'conv5_block16_1_bn/moving_variance')[0] == (
      'dense_block4/unit_16/dense_unit/conv1/BatchNorm/moving_variance')
  assert names.map_name('keras', 'pool4_conv/kernel')[0] == (
      'transition3/unit_1/transition/conv/weights')
  name, transform = names.map_name('keras', 'fc1000/kernel')
  assert name == 'logits/weights'
  assert transform(np.zeros((1024, 1000))).shape == (1, 1, 1024, 1000)
  assert names.map_name('keras', 'conv1_relu/kernel') == (None, None)
  with pytest.raises(ValueError, match='caffe'):
    names.map_name('caffe', 'conv1')


# ---------------------------------------------------------------------------
# pudae/tensorflow-densenet checkpoints, generated from the published name
# scheme (shared/reference/pudae_densenet_variables.md).

PUDAE_BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')


def _pudae_variables(root='densenet121', k=32, c0=64, units=(6, 12, 24, 16),
                     num_classes=1000):
  """{name: shape} of a pudae checkpoint, written from the manifest."""
  variables = {root + '/conv1/weights': (7, 7, 3, c0)}
  for p in PUDAE_BN:
    variables['%s/BatchNorm/%s' % (root, p)] = (c0,)
  channels = c0
  for b, num_units in enumerate(units, 1):
    for i in range(1, num_units + 1):
      unit = '%s/dense_block%d/conv_block%d' % (root, b, i)
      cin = channels + k * (i - 1)
      for p in PUDAE_BN:
        variables['%s/x1/BatchNorm/%s' % (unit, p)] = (cin,)
        variables['%s/x2/BatchNorm/%s' % (unit, p)] = (4 * k,)
      variables[unit + '/x1/Conv/weights'] = (1, 1, cin, 4 * k)
      variables[unit + '/x2/Conv/weights'] = (3, 3, 4 * k, k)
    channels += k * num_units
    if b < len(units):
      block = '%s/transition_block%d/blk' % (root, b)
      for p in PUDAE_BN:
        variables['%s/BatchNorm/%s' % (block, p)] = (channels,)
      variables[block + '/Conv/weights'] = (1, 1, channels, channels // 2)
      channels //= 2
  for p in PUDAE_BN:
    variables['%s/final_block/BatchNorm/%s' % (root, p)] = (channels,)
  variables[root + '/logits/weights'] = (1, 1, channels, num_classes)
  variables[root + '/logits/biases'] = (num_classes,)
  return variables


def _write_tf1_checkpoint(values, prefix):
  """A V2 checkpoint of `values` plus global_step, as pudae's Saver wrote."""
  names = sorted(values) + ['global_step']
  tensors = [tf.constant(values[name]) for name in names[:-1]]
  tensors.append(tf.constant(1000, tf.int64))
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names), tensors=tensors)
  return prefix


@pytest.fixture(scope='module')
def densenet_121_graph():
  """A densenet_121 graph (1000 classes): its variables to match against."""
  graph = tf.Graph()
  with graph.as_default():
    _our_graph(densenet.densenet_121, {'batch_norm_epsilon': 1.1e-5})
  return graph


def _pudae_values(seed=0):
  rng = np.random.RandomState(seed)
  return {name: rng.normal(0, 1, shape).astype(np.float32)
          for name, shape in _pudae_variables().items()}


def test_pudae_manifest_counts():
  variables = _pudae_variables()
  assert len(variables) == 606
  trainable = sum(int(np.prod(shape)) for name, shape in variables.items()
                  if 'moving_' not in name)
  assert trainable == 7978856


def test_pudae_checkpoint_loads_completely(tmp_path, densenet_121_graph):
  values = _pudae_values()
  prefix = _write_tf1_checkpoint(values, str(tmp_path / 'tf-densenet121.ckpt'))
  assert convert.detect_source(prefix) == 'pudae'
  weights, metadata = convert.read_weights(prefix)
  assert metadata['model'] == 'densenet_121'
  assert metadata['batch_norm_epsilon'] == 1.1e-5
  assert metadata['normalization'] == 'pudae'
  assert metadata['root_padding'] == 'same'
  assert metadata['unmatched'] == []  # global_step is not a weight.
  with densenet_121_graph.as_default():
    variables = tf.compat.v1.global_variables('densenet_121/')
    pairs, unused = assign.match_variables(weights, variables, 'densenet_121')
  assert len(pairs) == len(variables) == 606
  assert unused == []
  ours = {v.op.name: value for v, value in pairs}
  for pudae, our in [
      ('conv1/weights', 'conv1/weights'),
      ('BatchNorm/moving_mean', 'conv1/BatchNorm/moving_mean'),
      ('dense_block1/conv_block1/x1/BatchNorm/gamma',
       'dense_block1/unit_1/dense_unit/preact/gamma'),
      ('dense_block2/conv_block3/x1/Conv/weights',
       'dense_block2/unit_3/dense_unit/conv1/weights'),
      ('dense_block3/conv_block24/x2/BatchNorm/moving_variance',
       'dense_block3/unit_24/dense_unit/conv1/BatchNorm/moving_variance'),
      ('dense_block4/conv_block16/x2/Conv/weights',
       'dense_block4/unit_16/dense_unit/conv2/weights'),
      ('transition_block2/blk/BatchNorm/beta',
       'transition2/unit_1/transition/preact/beta'),
      ('transition_block3/blk/Conv/weights',
       'transition3/unit_1/transition/conv/weights'),
      ('final_block/BatchNorm/gamma', 'postnorm/gamma'),
      ('logits/weights', 'logits/weights'),
      ('logits/biases', 'logits/biases'),
  ]:
    np.testing.assert_array_equal(ours['densenet_121/' + our],
                                  values['densenet121/' + pudae])


def test_pudae_checkpoint_missing_variable_fails(tmp_path, densenet_121_graph):
  values = _pudae_values()
  del values['densenet121/dense_block3/conv_block7/x2/Conv/weights']
  prefix = _write_tf1_checkpoint(values, str(tmp_path / 'partial.ckpt'))
  weights, _ = convert.read_weights(prefix)
  with densenet_121_graph.as_default():
    with pytest.raises(checkpoints.WeightMismatchError) as error:
      assign.assign_fn(weights, 'densenet_121')
  assert error.value.missing == [
      'densenet_121/dense_block3/unit_7/dense_unit/conv2/weights']
  assert 'densenet_121/dense_block3/unit_7/dense_unit/conv2/weights' in str(
      error.value)
  assert error.value.mismatched == [] and error.value.unused == []


def test_misshaped_and_unknown_weights_fail(tmp_path, densenet_121_graph):
  values = _pudae_values()
  values['densenet121/logits/weights'] = np.zeros((1, 1, 1024, 10),
                                                  np.float32)
  values['densenet121/logits/biases'] = np.zeros((10,), np.float32)
  values['densenet121/extra/Conv/weights'] = np.zeros((1,), np.float32)
  prefix = _write_tf1_checkpoint(values, str(tmp_path / 'odd.ckpt'))
  weights, metadata = convert.read_weights(prefix)
  assert metadata['unmatched'] == ['extra/Conv/weights']
  with pytest.raises(checkpoints.WeightMismatchError,
                     match='extra/Conv/weights'):
    convert.convert(prefix, str(tmp_path / 'out.ckpt'), check=False)
  with densenet_121_graph.as_default():
    with pytest.raises(checkpoints.WeightMismatchError) as error:
      assign.assign_fn(weights, 'densenet_121')
  assert error.value.mismatched == [
      ('densenet_121/logits/biases', [1000], [10]),
      ('densenet_121/logits/weights', [1, 1, 1024, 1000], [1, 1, 1024, 10])]
  assert '[1, 1, 1024, 1000]' in str(error.value)


# ---------------------------------------------------------------------------
# torchvision state dicts, generated from torchvision's name scheme.


def _torchvision_state_dict(rng, k=32, c0=64, units=(6, 12, 24, 16)):
  state = {}

  def bn(prefix, channels):
    state[prefix + '.weight'] = rng.normal(0, 1, channels)
    state[prefix + '.bias'] = rng.normal(0, 1, channels)
    state[prefix + '.running_mean'] = rng.normal(0, 1, channels)
    state[prefix + '.running_var'] = rng.uniform(0.5, 1.5, channels)
    state[prefix + '.num_batches_tracked'] = np.array(7)

  state['features.conv0.weight'] = rng.normal(0, 1, (c0, 3, 7, 7))
  bn('features.norm0', c0)
  channels = c0
  for b, num_units in enumerate(units, 1):
    for i in range(1, num_units + 1):
      layer = 'features.denseblock%d.denselayer%d' % (b, i)
      # Checkpoints from before torchvision 0.3 say 'norm.1' for 'norm1'.
      old = b == 1 and i == 1
      bn(layer + ('.norm.1' if old else '.norm1'), channels + k * (i - 1))
      state[layer + ('.conv.1' if old else '.conv1') + '.weight'] = rng.normal(
          0, 1, (4 * k, channels + k * (i - 1), 1, 1))
      bn(layer + '.norm2', 4 * k)
      state[layer + '.conv2.weight'] = rng.normal(0, 1, (k, 4 * k, 3, 3))
    channels += k * num_units
    if b < len(units):
      bn('features.transition%d.norm' % b, channels)
      state['features.transition%d.conv.weight' % b] = rng.normal(
          0, 1, (channels // 2, channels, 1, 1))
      channels //= 2
  bn('features.norm5', channels)
  state['classifier.weight'] = rng.normal(0, 1, (1000, channels))
  state['classifier.bias'] = rng.normal(0, 1, 1000)
  return state


def test_torchvision_state_dict(tmp_path, densenet_121_graph):
  state = _torchvision_state_dict(np.random.RandomState(3))
  np.savez(str(tmp_path / 'densenet121.npz'), **state)
  weights, metadata = convert.read_weights(str(tmp_path / 'densenet121.npz'))
  assert metadata['source'] == 'torchvision'
  assert metadata['model'] == 'densenet_121'
  assert metadata['batch_norm_epsilon'] == 1e-5
  assert metadata['unmatched'] == []
  with densenet_121_graph.as_default():
    pairs, unused = assign.match_variables(
        weights, tf.compat.v1.global_variables('densenet_121/'),
        'densenet_121')
  assert len(pairs) == 606 and unused == []
  # OIHW -> HWIO, Linear [classes, channels] -> 1x1 conv, BN names.
  conv0 = state['features.conv0.weight']
  assert weights['conv1/weights'][5, 2, 1, 17] == np.float32(
      conv0[17, 1, 5, 2])
  assert weights['logits/weights'][0, 0, 1000 - 1, 3] == np.float32(
      state['classifier.weight'][3, 999])
  np.testing.assert_array_equal(
      weights['dense_block1/unit_1/dense_unit/preact/moving_variance'],
      state['features.denseblock1.denselayer1.norm.1.running_var'].astype(
          np.float32))
  np.testing.assert_array_equal(
      weights['transition2/unit_1/transition/conv/weights'][0, 0, 7, 9],
      np.float32(state['features.transition2.conv.weight'][9, 7, 0, 0]))


def test_convert_command(tmp_path, capsys):
  from densenet import cli  # pylint: disable=g-import-not-at-top
  values = _pudae_values()
  source = _write_tf1_checkpoint(values, str(tmp_path / 'tf-densenet121.ckpt'))
  output = str(tmp_path / 'converted' / 'model.ckpt')
  assert cli.main(['convert', source, output]) == 0
  assert 'densenet_121' in capsys.readouterr().out
  metadata = checkpoints.read_metadata(output)
  assert metadata == {'model': 'densenet_121', 'num_classes': 1000,
                      'batch_norm_epsilon': 1.1e-5, 'normalization': 'pudae',
                      'root_padding': 'same', 'source': 'pudae',
                      'format_version': 1}
  reader = tf.train.load_checkpoint(output)
  names = set(reader.get_variable_to_shape_map()) - {checkpoints.METADATA_KEY}
  assert len(names) == 606
  np.testing.assert_array_equal(
      reader.get_tensor('densenet_121/dense_block4/unit_2/dense_unit/'
                        'conv1/BatchNorm/beta'),
      values['densenet121/dense_block4/conv_block2/x2/BatchNorm/beta'])
  # A broken source: exit status 2 (a ValueError), the missing variable
  # named.
  del values['densenet121/final_block/BatchNorm/gamma']
  source = _write_tf1_checkpoint(values, str(tmp_path / 'broken.ckpt'))
  assert cli.main(['convert', source, str(tmp_path / 'no.ckpt')]) == 2
  assert 'postnorm/gamma' in capsys.readouterr().err
