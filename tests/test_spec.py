"""Tests of densenet.spec: one model contract from checkpoint to both trainers.

A tiny DenseNet (ImageNet stem, blocks of 1 and 2 units, k=4) is written as a
pudae/tensorflow-densenet checkpoint (pudae's names, 10 classes), converted
with pudae's contract ('same' stem padding, epsilon 1.1e-5, 'pudae'
normalization), and fine-tuned one step at learning rate 0 by both training
APIs. The fine-tuning graphs, rebuilt from the runs' configs, give
`load_pretrained`'s logits.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import densenet_utils
from densenet import classification
from densenet.weights import convert
from densenet import datasets
from densenet.serve import pretrained
from densenet import spec as spec_lib
from densenet import training
from segmentation import model as model_lib
from segmentation.data import synthetic
from segmentation import tasks
from test_convert import _pudae_variables  # pylint: disable=g-bad-import-order
from test_convert import _write_tf1_checkpoint  # pylint: disable=g-bad-import-order
from test_datasets import write_cifar  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {'num_units_per_block': [1, 2], 'growth_rate': 4,
        'num_initial_filters': 8, 'scope': 'tiny'}
PUDAE = {'batch_norm_epsilon': 1.1e-5, 'root_padding': 'same',
         'normalization': 'pudae'}


def test_resolve_names_cifar_names_and_configs():
  resolved = spec_lib.resolve('densenet_121')
  assert (resolved.constructor, resolved.kwargs, resolved.scope,
          resolved.num_classes) == ('densenet_121', {}, 'densenet_121', 1000)
  resolved = spec_lib.resolve('densenet_bc_10_k4')
  assert (resolved.constructor, resolved.scope) == ('densenet_cifar',
                                                    'densenet_bc_10_k4')
  assert resolved.kwargs == {'depth': 10, 'growth_rate': 4, 'bc': True,
                             'scope': 'densenet_bc_10_k4'}
  assert spec_lib.resolve({'num_units_per_block': [1]}).scope == 'densenet_X'
  assert spec_lib.infer_architecture((6, 12, 36, 24), 48) == 'densenet_161'
  with pytest.raises(ValueError, match="Unknown architecture 'resnet_50'"):
    spec_lib.resolve('resnet_50')
  with pytest.raises(ValueError, match='num_units_per_block'):
    spec_lib.resolve({'growth_rate': 4})
  with pytest.raises(ValueError, match='root_padding'):
    spec_lib.ModelSpec('densenet_121', root_padding='valid')
  with pytest.raises(ValueError, match='growth rate 7'):
    spec_lib.infer_architecture((6, 12, 24, 16), 7)


def test_round_trips_and_settings():
  spec = spec_lib.ModelSpec(TINY, num_classes=10, memory_efficient=True,
                            **PUDAE)
  assert spec_lib.ModelSpec.from_dict(spec.to_dict()) == spec
  # Run configs name the architecture 'model' (classification) or
  # 'backbone' (segmentation), checkpoint metadata 'model'.
  assert spec_lib.ModelSpec.from_config(
      {'backbone': TINY, 'num_classes': 10, 'memory_efficient': True,
       'head': 'aspp', **PUDAE}) == spec
  assert spec_lib.ModelSpec.from_metadata(
      {'model': 'densenet_121', 'num_classes': 1000, 'source': 'pudae',
       **PUDAE}).contract() == PUDAE
  merged = spec_lib.merge_settings(
      {'normalization': None, 'batch_norm_epsilon': None,
       'root_padding': 'same', 'memory_efficient': None},
      checkpoint=PUDAE, saved={'memory_efficient': True})
  assert merged == dict(PUDAE, memory_efficient=True)
  assert spec_lib.merge_settings({'normalization': {'mode': 'pudae'}},
                                 checkpoint=PUDAE) == {
                                     'normalization': {'mode': 'pudae'}}
  with pytest.raises(ValueError, match="normalization='torch' contradicts"):
    spec_lib.merge_settings({'normalization': 'torch'}, checkpoint=PUDAE)


def test_arg_scope_carries_the_contract_and_memory_efficient():
  from densenet import nets  # pylint: disable=g-import-not-at-top
  spec = spec_lib.ModelSpec(TINY, memory_efficient=True, **PUDAE)
  with spec.arg_scope(weight_decay=0.5):
    current = slim.current_arg_scope()
  dense_unit = current[slim.arg_scope_func_key(densenet_utils.dense_unit)]
  assert dense_unit['memory_efficient'] is True
  assert current[slim.arg_scope_func_key(nets.root_block)] == {
      'padding': 'same'}
  assert current[slim.arg_scope_func_key(densenet_utils.batch_norm)][
      'epsilon'] == 1.1e-5


def _pudae_tiny_checkpoint(directory):
  """A pudae-format checkpoint of TINY with 10 classes, and its conversion."""
  rng = np.random.RandomState(0)
  values = {}
  for name, shape in _pudae_variables(k=4, c0=8, units=(1, 2),
                                      num_classes=10).items():
    if name.endswith(('moving_variance', 'gamma')):
      values[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:
      values[name] = rng.normal(0.0, 0.3, shape).astype(np.float32)
  source = _write_tf1_checkpoint(values,
                                 os.path.join(directory, 'tf-densenet.ckpt'))
  converted = os.path.join(directory, 'converted', 'model.ckpt')
  metadata = convert.convert(source, converted, source_format='pudae',
                             model_name=TINY)
  assert {k: metadata[k] for k in PUDAE} == PUDAE
  return converted


@pytest.fixture(scope='module')
def pudae_tiny(tmp_path_factory):
  """(converted checkpoint, [8, 32, 32, 3] images, load_pretrained logits)."""
  directory = str(tmp_path_factory.mktemp('pudae'))
  converted = _pudae_tiny_checkpoint(directory)
  images = np.random.RandomState(1).randint(
      0, 256, (8, 32, 32, 3)).astype(np.float32)
  classifier = pretrained.load_pretrained(None, converted)
  try:
    logits = classifier.logits(images)
  finally:
    classifier.close()
  assert logits.shape == (8, 10)
  return converted, images, logits


def _logits_of(spec, checkpoint, images, **net_kwargs):
  """A fresh `SlimModel` of `spec` restored from `checkpoint`: logits."""
  model = training.SlimModel(spec.net_fn(**net_kwargs))
  inputs = tf.constant(spec.normalize(images))
  model(inputs, training=False)
  training.restore_by_name(model.variables_by_name(), checkpoint).check(
      'test')
  return model(inputs, training=False).numpy()


def test_default_contract_gives_other_logits(pudae_tiny):
  # What the tests below guard against: the same weights under the default
  # contract (Keras epsilon, symmetric stem, torch normalization).
  converted, images, expected = pudae_tiny
  plain = _logits_of(spec_lib.ModelSpec(TINY, num_classes=10), converted,
                     images)
  assert np.abs(plain - expected).max() > 1e-2


def test_classification_fine_tune_keeps_the_pudae_contract(pudae_tiny,
                                                           tmp_path):
  converted, images, expected = pudae_tiny
  source, _ = write_cifar(str(tmp_path), 'CIFAR10', 50, 10)
  data_dir = str(tmp_path / 'records')
  with pytest.warns(UserWarning):
    datasets.create_tfrecords('CIFAR10', source, data_dir)
  train_dir = str(tmp_path / 'run')
  kwargs = dict(model=TINY, batch_size=10, learning_rate=0.0,
                dropout_rate=0.0, eval_every_epochs=0, progress=False)
  results = classification.train(data_dir, train_dir, num_steps=1,
                                 initial_checkpoint=converted,
                                 memory_efficient=True, **kwargs)
  config = results['config']
  assert {k: config[k] for k in PUDAE} == PUDAE
  assert config['memory_efficient'] is True
  spec = spec_lib.ModelSpec.from_config(config)
  assert spec.contract() == PUDAE and spec.num_classes == 10
  np.testing.assert_allclose(_logits_of(spec, converted, images), expected,
                             rtol=0, atol=1e-5)
  # Learning rate 0: the fine-tuned kernels are the converted ones.
  before = tf.train.load_checkpoint(converted)
  after = tf.train.load_checkpoint(results['checkpoint'])
  name = 'tiny/dense_block2/unit_2/dense_unit/conv2/weights'
  np.testing.assert_array_equal(after.get_tensor(name),
                                before.get_tensor(name))
  # Resumed without the checkpoint or the switch: contract and
  # memory_efficient are kept from the run's config.
  resumed = classification.train(data_dir, train_dir, num_steps=2, **kwargs)
  assert resumed['start_step'] == 1
  assert {k: resumed['config'][k] for k in PUDAE} == PUDAE
  assert resumed['config']['memory_efficient'] is True
  # Another normalization than the weights expect is refused.
  with pytest.raises(ValueError, match='contradicts the initial checkpoint'):
    classification.train(data_dir, str(tmp_path / 'other'), num_steps=1,
                         initial_checkpoint=converted, normalization='torch',
                         **kwargs)


def test_segmentation_fine_tune_keeps_the_pudae_contract(pudae_tiny,
                                                         tmp_path):
  converted, images, expected = pudae_tiny
  synthetic.generate(str(tmp_path / 'voc'), 4, 1, size=32, seed=0,
                     progress=False)
  tasks.build_data(str(tmp_path / 'records'), voc_root=str(tmp_path / 'voc'),
                   num_shards=1, progress=False)
  model_dir = str(tmp_path / 'model')
  config = tasks.ModelConfig(num_classes=synthetic.NUM_CLASSES,
                             backbone=TINY, output_stride=8, depth=8)
  messages = []
  kwargs = dict(batch_size=2, crop_size=(32, 32), learning_rate=0.0,
                progress=False, log=messages.append)
  pattern = str(tmp_path / 'records' / 'train-*')
  result = tasks.train(model_dir, pattern, config, 1,
                       initial_checkpoint=converted, memory_efficient=True,
                       **kwargs)
  assert result.global_step == 1
  reader = tf.train.load_checkpoint(converted)
  backbone = [n for n in reader.get_variable_to_shape_map()
              if n.startswith('tiny/') and '/logits/' not in n]
  assert len(backbone) == 44  # Stem 5, units 3 x 10, transition 5, BN 4.
  assert 'restored %d variables' % len(backbone) in messages[0]
  saved = tasks.ModelConfig.load(model_dir)
  spec = saved.spec()
  assert spec.contract() == PUDAE and saved.memory_efficient is True

  # The segmentation graph's backbone features, pooled and put through the
  # checkpoint's logits layer by hand, are the classifier's logits.
  def features(inputs, is_training):
    _, end_points = model_lib.build_model(
        inputs, saved.num_classes, backbone=spec,
        output_stride=saved.output_stride, head=saved.head, depth=saved.depth,
        is_training=is_training)
    return end_points['tiny/postnorm']

  model = training.SlimModel(features)
  inputs = tf.constant(spec.normalize(images))
  model(inputs, training=False)
  report = training.restore_by_name(model.variables_by_name(), converted)
  assert {n.split('/')[0] for n in report.missing} == {'aspp', 'logits'}
  pooled = model(inputs, training=False).numpy().mean(axis=(1, 2))
  logits = pooled @ reader.get_tensor('tiny/logits/weights')[0, 0] + (
      reader.get_tensor('tiny/logits/biases'))
  np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
  # Resumed without the checkpoint or the switch: both kept.
  again = tasks.train(model_dir, pattern, config, 2, **kwargs)
  assert (again.start_step, again.global_step) == (1, 2)
  saved = tasks.ModelConfig.load(model_dir)
  assert saved.spec().contract() == PUDAE and saved.memory_efficient is True


def test_a_failed_first_start_does_not_lock_the_run_directory(tmp_path):
  # The model cannot be built (an output stride a 2-block net cannot
  # reach): no config.json is written, so other settings may follow.
  synthetic.generate(str(tmp_path / 'voc'), 2, 1, size=32, seed=0,
                     progress=False)
  tasks.build_data(str(tmp_path / 'records'), voc_root=str(tmp_path / 'voc'),
                   num_shards=1, progress=False)
  model_dir = str(tmp_path / 'model')
  pattern = str(tmp_path / 'records' / 'train-*')
  config = tasks.ModelConfig(num_classes=synthetic.NUM_CLASSES,
                             backbone=TINY, output_stride=8, depth=8)
  config.output_stride = 32  # After ModelConfig's own check.
  with pytest.raises(ValueError, match='output_stride'):
    tasks.train(model_dir, pattern, config, 1, batch_size=2,
                crop_size=(32, 32), progress=False)
  assert not os.path.exists(os.path.join(model_dir, 'config.json'))
  config.output_stride = 8
  tasks.train(model_dir, pattern, config, 1, batch_size=2,
              crop_size=(32, 32), progress=False)
  assert tasks.ModelConfig.load(model_dir).output_stride == 8


def test_spec_module_imports_no_tensorflow():
  # The records of a network and of a run (and what they import).
  code = ('import sys\n'
          'import densenet.spec, densenet.training.rundir\n'
          'import densenet.classification.config, segmentation.config\n'
          'print("tensorflow" in sys.modules)\n')
  output = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
  assert output.stdout.strip() == 'False', output.stderr
