"""Tests of densenet.keras_model, the TF2 face: eager, tf.function, fit,
SavedModel, MirroredStrategy, checkpoints with their recorded contract.

The fresh-process SavedModel load and the two-CPU MirroredStrategy run need
their own process (logical devices are set before TensorFlow starts): this
file run as a script.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import tf_slim as slim

import densenet
from densenet.weights import assign
from densenet.weights import convert
from densenet import preprocessing
from tests import test_convert

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {'num_units_per_block': [1, 2], 'growth_rate': 4,
        'num_initial_filters': 8}


def toy_batch(batch_size=4, size=32, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)
  return images, np.arange(batch_size, dtype=np.int32) % 3


def moving_means(model):
  return {name: variable.numpy()
          for name, variable in model.variables_by_name().items()
          if name.endswith('moving_mean')}


def test_eager_training_flag_tf_function_and_fit():
  images, labels = toy_batch()
  model = densenet.keras_model(TINY, num_classes=3)
  assert isinstance(model, tf_keras.Model)
  assert 'densenet_X/dense_block2/unit_2/dense_unit/conv2/weights' in (
      model.variables_by_name())
  before = moving_means(model)
  inference = model(images, training=False).numpy()
  assert inference.shape == (4, 3)
  traced = tf.function(lambda x: model(x, training=False))(images).numpy()
  np.testing.assert_allclose(traced, inference, atol=1e-6)
  for name, value in moving_means(model).items():
    np.testing.assert_array_equal(value, before[name])
  # Training mode normalizes with batch statistics and updates the moving
  # ones.
  training_logits = model(images, training=True).numpy()
  assert np.abs(training_logits - inference).max() > 1e-4
  assert all(np.abs(value - before[name]).max() > 0
             for name, value in moving_means(model).items())

  model.compile(tf_keras.optimizers.SGD(0.1),
                tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  kernel = model.variables_by_name()['densenet_X/logits/weights']
  start = kernel.numpy()
  history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history['loss'][0])
  assert np.abs(kernel.numpy() - start).max() > 0
  assert model.predict(images, verbose=0).shape == (4, 3)
  assert np.isfinite(model.evaluate(images, labels, verbose=0))


def test_memory_efficient_fit_step_equals_plain():
  images, labels = toy_batch()
  weights, initial = [], None
  for memory_efficient in (False, True):
    model = densenet.keras_model(TINY, num_classes=3,
                                 memory_efficient=memory_efficient)
    if initial is None:
      initial = {k: v.numpy() for k, v in model.variables_by_name().items()}
    else:
      for key, variable in model.variables_by_name().items():
        variable.assign(initial[key])
    model.compile(tf_keras.optimizers.SGD(0.5),
                  tf_keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    weights.append({k: v.numpy()
                    for k, v in model.variables_by_name().items()})
  assert sorted(weights[0]) == sorted(weights[1]) == sorted(initial)
  assert max(np.abs(weights[0][k] - initial[k]).max() for k in initial) > 1e-3
  for key in initial:
    np.testing.assert_allclose(weights[1][key], weights[0][key], atol=1e-5)


def test_compile_refuses_keras_3():
  model = densenet.keras_model(TINY, num_classes=3)
  with pytest.raises(ValueError, match=r'optimizer .*Keras 3.*import tf_keras'):
    model.compile(keras.optimizers.SGD(0.01), 'sparse_categorical_crossentropy')
  with pytest.raises(ValueError, match=r'loss .*Keras 3.*import tf_keras'):
    model.compile(tf_keras.optimizers.SGD(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  with pytest.raises(ValueError, match=r'metrics .*Keras 3'):
    model.compile('sgd', 'sparse_categorical_crossentropy',
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])


def test_bad_arguments():
  with pytest.raises(ValueError, match='Unknown architecture'):
    densenet.keras_model('densenet_122')
  with pytest.raises(ValueError, match='is_training'):
    densenet.keras_model(TINY, is_training=True)
  with pytest.raises(ValueError, match='growth_rate'):
    densenet.keras_model(TINY, growth_rate=8)
  with pytest.raises(ValueError, match='num_classes'):
    densenet.keras_model(dict(TINY, num_classes=3))


LOAD_SAVED_MODEL = """
import json, os, sys
import numpy as np
import tensorflow as tf
directory = sys.argv[1]
images = tf.constant(np.load(os.path.join(directory, 'images.npy')))
loaded = tf.saved_model.load(os.path.join(directory, 'saved'))
np.save(os.path.join(directory, 'loaded.npy'),
        loaded(images, training=False).numpy())
serving = loaded.signatures['serving_default']
print(json.dumps({
    'densenet_loaded': any(m.split('.')[0] in ('densenet', 'densenet_utils')
                           for m in sys.modules),
    'serving_shape': list(list(serving(images).values())[0].shape)}))
"""


def test_savedmodel_fresh_process_and_mirrored_strategy(tmp_path):
  images, _ = toy_batch(2, size=40)
  model = densenet.keras_model(TINY, num_classes=3, output_stride=8,
                               global_pool=False)
  model(images, training=True)  # Moving statistics away from 0 and 1.
  expected = model(images, training=False).numpy()
  assert expected.shape == (2, 5, 5, 3)
  model.save(str(tmp_path / 'saved'))
  np.save(tmp_path / 'images.npy', images)
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  # Plain TensorFlow: nothing of this project is imported.
  load = subprocess.run(
      [sys.executable, '-c', LOAD_SAVED_MODEL, str(tmp_path)],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300, env=env)
  assert load.returncode == 0, load.stderr[-3000:]
  assert json.loads(load.stdout.strip().splitlines()[-1]) == {
      'densenet_loaded': False, 'serving_shape': [2, 5, 5, 3]}
  loaded = np.load(tmp_path / 'loaded.npy')
  print('SavedModel in a fresh process: max |difference| %.3g' %
        np.abs(loaded - expected).max())
  np.testing.assert_allclose(loaded, expected, atol=1e-5)

  output = subprocess.run(
      [sys.executable, os.path.abspath(__file__)],
      capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
  assert output.returncode == 0, output.stderr[-3000:]
  results = json.loads(output.stdout.strip().splitlines()[-1])
  assert results['num_replicas'] == 2
  print('MirroredStrategy vs default, one fit step: loss %.3g, weights %.3g'
        % (results['loss_difference'], results['max_weight_difference']))
  assert results['loss_difference'] < 1e-5
  assert results['max_weight_difference'] < 1e-5
  assert results['max_weight_change'] > 1e-3


def _compare_strategies():
  """One fit step under a two-CPU MirroredStrategy and under the default
  strategy, from the same weights; prints a JSON summary."""
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  results = {}
  # Each replica gets half of a batch whose halves are equal: its batch
  # statistics are the one-device ones, so the runs must agree.
  batch, labels = toy_batch(2)
  batch, labels = np.concatenate([batch, batch]), np.concatenate([labels] * 2)
  weights, losses, initial = {}, {}, None
  for name, strategy in (
      ('default', tf.distribute.get_strategy()),
      ('mirrored', tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))):
    with strategy.scope():
      model = densenet.keras_model(TINY, num_classes=3)
      model.compile(tf_keras.optimizers.SGD(0.5),
                    tf_keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    if initial is None:
      initial = {k: v.numpy() for k, v in model.variables_by_name().items()}
    else:
      for key, variable in model.variables_by_name().items():
        variable.assign(initial[key])
    history = model.fit(batch, labels, batch_size=4, epochs=1, verbose=0,
                        shuffle=False)
    losses[name] = history.history['loss'][0]
    weights[name] = {k: v.numpy() for k, v in
                     model.variables_by_name().items()}
    results['num_replicas'] = strategy.num_replicas_in_sync
  trainable = [k for k in initial if 'moving_' not in k]
  results['loss_difference'] = abs(losses['mirrored'] - losses['default'])
  results['max_weight_difference'] = float(max(
      np.abs(weights['mirrored'][k] - weights['default'][k]).max()
      for k in trainable))
  results['max_weight_change'] = float(max(
      np.abs(weights['default'][k] - initial[k]).max() for k in trainable))
  print(json.dumps(results))


# ---------------------------------------------------------------------------
# DenseNet-121: converted Keras weights through checkpoint=, and the Keras
# model against the slim graph on the same weights.


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  """Keras' DenseNet121 (random weights and statistics), its logits on
  [0, 255] images, and its conversion to our checkpoint."""
  directory = tmp_path_factory.mktemp('keras_121')
  rng = np.random.RandomState(121)
  # pylint: disable=protected-access
  _, keras_model, path = test_convert._keras_model(
      121, 'tf_keras save_weights .h5', directory / 'keras', rng)
  images = rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
  keras_logits = np.asarray(keras_model(
      preprocessing.normalize(images, 'torch'), training=False))
  prefix = str(directory / 'ours' / 'model.ckpt')
  metadata = convert.convert(path, prefix, check=False)
  assert metadata['normalization'] == 'torch'
  return images, keras_logits, prefix


@pytest.fixture(scope='module')
def densenet_121(converted):
  _, _, prefix = converted
  return densenet.keras_model('densenet_121', num_classes=1000,
                              checkpoint=prefix)


def test_converted_keras_checkpoint_gives_keras_logits(converted,
                                                       densenet_121):
  images, keras_logits, _ = converted
  assert keras_logits.std() > 0.1
  logits = tf.function(lambda x: densenet_121(x, training=False))(
      images).numpy()
  difference = np.abs(logits - keras_logits).max()
  print('keras_model(checkpoint=converted Keras) vs Keras: max |logit '
        'difference| %.3g' % difference)
  assert difference <= 1e-4


def test_eager_logits_equal_slim_graph(converted, densenet_121):
  """Output stride None (logits) and 16 (a 14x14 logits map) at 224."""
  images, _, prefix = converted
  dense = densenet.keras_model('densenet_121', num_classes=1000,
                               checkpoint=prefix, output_stride=16,
                               global_pool=False)
  eager = [densenet_121(images, training=False).numpy(),
           dense(images, training=False).numpy()]
  weights, metadata = convert.read_weights(prefix)
  with tf.Graph().as_default():
    inputs = preprocessing.normalize(tf.constant(images), 'torch')
    with slim.arg_scope(densenet.densenet_arg_scope(
        batch_norm_epsilon=metadata['batch_norm_epsilon'])):
      logits, _ = densenet.densenet_121(inputs, 1000, is_training=False)
      logits_map, _ = densenet.densenet_121(
          inputs, 1000, is_training=False, output_stride=16,
          global_pool=False, reuse=True)
    init_fn = assign.assign_fn(weights, scope='densenet_121')
    with tf1.Session() as session:
      init_fn(session)
      graph = session.run([logits, logits_map])
  assert eager[0].shape == graph[0].shape == (1, 1000)
  assert eager[1].shape == graph[1].shape == (1, 14, 14, 1000)
  for name, ours, theirs in zip(('stride 32', 'stride 16'), eager, graph):
    difference = np.abs(ours - theirs).max()
    print('keras_model vs slim graph, %s: max |difference| %.3g' %
          (name, difference))
    assert np.abs(theirs).max() > 0.1
    assert difference <= 1e-5


if __name__ == '__main__':
  _compare_strategies()
