"""Tests of densenet.training: the tf-keras wrapper, the trainer, checkpoints.

The MirroredStrategy comparison needs two logical CPU devices, which must be
configured before TensorFlow initializes: it runs in a subprocess (this file
run as a script).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import tf_slim as slim

import densenet
from densenet import training

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_net(images, is_training, num_classes=3):
  """Two dense blocks of one unit, k=4: `[B, H, W, 3]` -> `[B, num_classes]`."""
  with slim.arg_scope(densenet.densenet_arg_scope()):
    logits, _ = densenet.densenet_X(
        images, num_units_per_block=[1, 1], growth_rate=4,
        num_initial_filters=8,
        num_classes=num_classes, is_training=is_training, scope='tiny')
  return logits


def loss_fn(labels, logits):
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)


def toy_data(num_examples, size=16, seed=0):
  """Images whose class is the brightest of three quadrant patterns."""
  rng = np.random.RandomState(seed)
  labels = rng.randint(0, 3, num_examples).astype(np.int32)
  images = rng.uniform(0, 60, (num_examples, size, size, 3)).astype(np.float32)
  for i, label in enumerate(labels):
    images[i, :, :, label] += 150.0
  return images / 127.5 - 1.0, labels


def dataset(images, labels, batch_size):
  return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(
      batch_size, drop_remainder=True)


def plain_graph_outputs(checkpoint, images, restore='slim'):
  """Eval-mode logits of `tiny_net` in a tf.Graph restored by name."""
  with tf.Graph().as_default():
    logits = tiny_net(tf.constant(images), is_training=False)
    with tf1.Session() as sess:
      if restore == 'slim':
        init_fn = slim.assign_from_checkpoint_fn(
            checkpoint, slim.get_variables_to_restore())
        init_fn(sess)
      else:
        tf1.train.Saver().restore(sess, checkpoint)
      return sess.run(logits)


def test_wrapper_eager_function_and_names():
  images = toy_data(2)[0]
  model = training.SlimModel(tiny_net)
  eager = model(images, training=False).numpy()
  traced = tf.function(lambda x: model(x, training=False))(images).numpy()
  np.testing.assert_allclose(eager, traced, atol=1e-6)
  assert eager.shape == (2, 3)
  with tf.Graph().as_default():
    tiny_net(tf1.placeholder(tf.float32, [None, 16, 16, 3]), False)
    graph_names = sorted(v.op.name for v in tf1.global_variables())
  assert sorted(model.variables_by_name()) == graph_names
  # Slim weight decay arrives as Keras losses: one per convolution kernel.
  num_kernels = sum(n.endswith('/weights') for n in graph_names)
  assert len(model.losses) == num_kernels


def test_batch_norm_statistics_update_in_training_only():
  images = toy_data(4)[0]
  model = training.SlimModel(tiny_net)
  model(images, training=False)
  moving_mean = model.variables_by_name()['tiny/conv1/BatchNorm/moving_mean']
  before = moving_mean.numpy().copy()
  model(images, training=False)
  np.testing.assert_array_equal(moving_mean.numpy(), before)
  model(images, training=True)
  after_eager = moving_mean.numpy().copy()
  assert np.abs(after_eager - before).max() > 1e-4
  # The update follows slim's formula with decay 0.99 from the batch mean of
  # the root conv's output (before its BN), whose value we compute directly.
  conv = tf.function(lambda x: model(x, training=True))
  conv(images)
  after_function = moving_mean.numpy()
  assert np.abs(after_function - after_eager).max() > 1e-5
  # moving <- moving - (moving - m) * 0.01 twice with the same m:
  # after2 - m = 0.99 (after1 - m)  =>  m = (after2 - 0.99 after1) / 0.01.
  batch_mean = (after_eager - 0.99 * before) / 0.01
  np.testing.assert_allclose(after_function,
                             after_eager - (after_eager - batch_mean) * 0.01,
                             atol=1e-5)


def test_train_resume_and_checkpoint_into_slim_graph(tmp_path):
  images, labels = toy_data(32)
  model_dir = str(tmp_path / 'run')

  def make_trainer():
    return training.Trainer(
        tiny_net, loss_fn, model_dir, global_batch_size=8,
        optimizer_fn=lambda: tf_keras.optimizers.SGD(0.1, momentum=0.9),
        checkpoint_every=10, progress=False)

  result = make_trainer().train(dataset(images, labels, 8), num_steps=30)
  assert (result.start_step, result.global_step) == (0, 30)
  assert np.mean(result.losses[-5:]) < 0.5 * np.mean(result.losses[:5])
  assert os.path.basename(result.checkpoint) == 'model.ckpt-30'
  reader = tf.train.load_checkpoint(result.checkpoint)
  assert reader.get_tensor('global_step') == 30
  assert 'tiny/dense_block1/unit_1/dense_unit/conv2/weights' in (
      reader.get_variable_to_shape_map())

  trainer = make_trainer()
  resumed = trainer.train(dataset(images, labels, 8), num_steps=35)
  assert (resumed.start_step, resumed.global_step) == (30, 35)
  assert len(resumed.losses) == 5
  kept = tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths
  assert [os.path.basename(p) for p in kept] == [
      'model.ckpt-20', 'model.ckpt-30', 'model.ckpt-35']

  expected = trainer.model(images[:4], training=False).numpy()
  for restore in ('slim', 'saver'):
    np.testing.assert_allclose(
        plain_graph_outputs(resumed.checkpoint, images[:4], restore),
        expected, atol=1e-5)


def test_nan_loss_stops_without_checkpoint(tmp_path):
  images, labels = toy_data(8)

  def nan_loss_fn(labels, logits):
    # NaN from the first step on whatever kernels run (NaN images are not:
    # oneDNN's max pool and ReLU on AVX-512 may turn NaN into numbers).
    return loss_fn(labels, logits) * float('nan')

  trainer = training.Trainer(tiny_net, nan_loss_fn, str(tmp_path), 4,
                             checkpoint_every=1, progress=False)
  with pytest.raises(training.NaNLossError, match='global step 1'):
    trainer.train(dataset(images, labels, 4), num_steps=3)
  assert tf.train.latest_checkpoint(str(tmp_path)) is None


def test_restore_by_name_reports(tmp_path):
  images = toy_data(2)[0]
  source = training.SlimModel(tiny_net)
  source(images)
  manager = training.NameBasedCheckpointManager(
      source.variables_by_name(), str(tmp_path))
  stale = tmp_path / '.tmp-0123-model.ckpt.index'  # A killed save's leftover.
  stale.write_bytes(b'partial')
  path = manager.save(7)
  assert sorted(os.listdir(tmp_path)) == [
      'checkpoint', 'model.ckpt-7.data-00000-of-00001', 'model.ckpt-7.index',
      'model.ckpt-7.manifest.json']
  target = training.SlimModel(lambda x, t: tiny_net(x, t, num_classes=5))
  target(images)
  report = training.restore_by_name(target.variables_by_name(), path,
                                    exclude_scopes=('tiny/logits',))
  assert report.missing == ['tiny/logits/biases', 'tiny/logits/weights']
  assert report.mismatched == []
  assert report.unused == ['tiny/logits/biases', 'tiny/logits/weights']
  assert len(report.restored) == len(source.variables) - 2
  name = 'tiny/conv1/weights'
  np.testing.assert_array_equal(target.variables_by_name()[name].numpy(),
                                source.variables_by_name()[name].numpy())
  with pytest.raises(ValueError, match='checkpoint_path'):
    training.restore_by_name({}, str(tmp_path / 'nothing'))


def test_keras_fit():
  images, labels = toy_data(16)
  model = training.SlimModel(tiny_net)
  model.compile(tf_keras.optimizers.SGD(0.1, momentum=0.9),
                tf_keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  history = model.fit(dataset(images, labels, 8), steps_per_epoch=10,
                      epochs=2, verbose=0)
  assert history.history['loss'][1] < history.history['loss'][0]


def test_strategy_names():
  assert training.get_strategy('default') is tf.distribute.get_strategy()
  with pytest.raises(ValueError, match='mirrored'):
    training.get_strategy('tpu')


def test_mirrored_equals_default_strategy(tmp_path):
  output = subprocess.run(
      [sys.executable, os.path.abspath(__file__), str(tmp_path)],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'))
  assert output.returncode == 0, output.stderr[-3000:]
  results = json.loads(output.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(results['mirrored']['losses'],
                             results['default']['losses'], atol=1e-4)
  assert results['mirrored']['num_replicas'] == 2
  assert results['max_weight_difference'] < 1e-4
  assert results['max_moving_variance_difference'] < 1e-4
  assert results['max_restore_difference'] < 1e-5


def _compare_strategies(directory):
  """Trains 4 steps under each strategy; prints a JSON summary."""
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  images, labels = toy_data(8)
  # Each replica gets half the global batch and normalizes with its own batch
  # statistics; with both halves equal, those are the one-device statistics,
  # so the runs must agree (moving variances up to the n / (n - 1) factor,
  # checked below). Everything else (global-batch loss scaling,
  # gradient sums, weight decay, moving statistics averaged over replicas)
  # is compared for real.
  images = np.concatenate([images[:4], images[:4]])
  labels = np.concatenate([labels[:4], labels[:4]])
  data = tf.data.Dataset.from_tensors((images, labels)).repeat()
  tf.random.set_seed(1)
  results = {}
  weights = {}
  initial = None  # The default run's initial weights.
  for name, strategy in (
      ('default', tf.distribute.get_strategy()),
      ('mirrored', tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))):
    tf_keras.utils.set_random_seed(3)
    trainer = training.Trainer(
        tiny_net, loss_fn, os.path.join(directory, name), 8,
        strategy=strategy, checkpoint_every=100, progress=False,
        optimizer_fn=lambda: tf_keras.optimizers.SGD(0.05, momentum=0.9))
    if name == 'mirrored':  # Same initial weights as the default run.
      trainer.build(tf.constant(images[:1]))
      for key, variable in trainer.model.variables_by_name().items():
        variable.assign(initial[key])
    else:
      trainer.build(tf.constant(images[:1]))
      initial = {k: v.numpy() for k, v in
                 trainer.model.variables_by_name().items()}
    result = trainer.train(data, num_steps=4)
    results[name] = {'losses': result.losses,
                     'num_replicas': strategy.num_replicas_in_sync,
                     'checkpoint': result.checkpoint}
    weights[name] = {k: v.numpy() for k, v in
                     trainer.model.variables_by_name().items()}
    if name == 'mirrored':
      expected = trainer.model(images[:4], training=False).numpy()
      restored = plain_graph_outputs(result.checkpoint, images[:4])
      results['max_restore_difference'] = float(
          np.abs(restored - expected).max())
  results['max_weight_difference'] = float(max(
      np.abs(weights['default'][k] - weights['mirrored'][k]).max()
      for k in weights['default'] if not k.endswith('moving_variance')))
  # Batch norm's moving variance uses the unbiased batch variance, n / (n - 1)
  # times the biased one, n = batch * height * width: on a replica n is half
  # the one-device n. After 4 steps from 1, moving = 0.99^4 + 0.01 * sum of
  # decayed batch variances, so (moving - 0.99^4) scales by the ratio c.
  spatial = {'tiny/conv1/': 8 * 8, 'tiny/dense_block1/': 4 * 4,
             'tiny/transition1/': 4 * 4, 'tiny/dense_block2/': 2 * 2,
             'tiny/postnorm/': 2 * 2}
  differences = []
  for key in weights['default']:
    if key.endswith('moving_variance'):
      n = 4 * [v for k, v in spatial.items() if key.startswith(k)][0]
      c = (n / (n - 1.0)) / (2 * n / (2 * n - 1.0))
      start = 0.99 ** 4
      differences.append(np.abs(
          (weights['mirrored'][key] - start) -
          c * (weights['default'][key] - start)).max())
  results['max_moving_variance_difference'] = float(max(differences))
  print(json.dumps(results))


if __name__ == '__main__':
  _compare_strategies(sys.argv[1])
