"""Tests of densenet.classification and its commands (densenet.cli.train).

Training runs a tiny DenseNet-BC (L=10, k=4) on a generated CIFAR-10 archive
in the real format (see test_datasets.write_cifar).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from densenet import classification
from densenet import datasets
from densenet import cli
from densenet.spec import ModelSpec
from densenet.training import schedules
from test_datasets import write_cifar  # pylint: disable=g-bad-import-order
from test_faults import strict_json  # pylint: disable=g-bad-import-order


def test_paper_learning_rate_schedule():
  # CIFAR: 50,000 training images, batch 64, last partial batch dropped.
  steps_per_epoch = 50000 // 64
  assert steps_per_epoch == 781
  schedule = classification.paper_learning_rate(steps_per_epoch)
  # 300 epochs = 234,300 steps; 50% = epoch 150 = step 117,150; 75% = epoch
  # 225 = step 175,725.
  expected = [(0, 0.1), (117149, 0.1), (117150, 0.01), (175724, 0.01),
              (175725, 0.001), (234299, 0.001)]
  for step, rate in expected:
    assert float(schedule(step)) == pytest.approx(rate, rel=1e-6), step
  # The same schedule as a graph op on an int64 global step.
  step = tf.Variable(0, dtype=tf.int64)
  for value, rate in expected:
    step.assign(value)
    assert float(tf.function(lambda: schedule(step))()) == pytest.approx(
        rate, rel=1e-6)


def test_step_learning_rate_rejects_unsorted_boundaries():
  with pytest.raises(ValueError, match='boundaries must be increasing'):
    schedules.step(0.1, [20, 10])


def test_cifar_names_of_any_depth():
  spec = ModelSpec('densenet_bc_10_k4', num_classes=7)
  with tf.Graph().as_default():
    logits = spec.net_fn()(tf.zeros([2, 32, 32, 3]), False)
    names = [v.op.name for v in tf.compat.v1.global_variables()]
  assert logits.shape.as_list() == [2, 7]
  # L=10 DenseNet-BC: (10 - 4) / 6 = 1 bottleneck unit per block, root of
  # 2k = 8 filters, under the scope of its name.
  assert 'densenet_bc_10_k4/conv1/weights' in names
  assert 'densenet_bc_10_k4/dense_block3/unit_1/dense_unit/conv2/weights' in (
      names)
  assert not [n for n in names if 'unit_2' in n]
  with pytest.raises(ValueError, match="Unknown architecture 'resnet_50'"):
    ModelSpec('resnet_50')


@pytest.fixture(scope='module')
def cifar_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp('cifar')
  source, _ = write_cifar(str(directory), 'CIFAR10', 200, 40, learnable=True)
  with pytest.warns(UserWarning):
    datasets.create_tfrecords('CIFAR10', source, str(directory / 'records'))
  return str(directory / 'records'), source


def test_train_lowers_the_loss_resumes_and_evaluates(cifar_dir, tmp_path):
  data_dir, _ = cifar_dir
  train_dir = str(tmp_path / 'run')
  kwargs = dict(model='densenet_bc_10_k4', batch_size=16, augment=True,
                eval_every_epochs=0, checkpoint_every=10, seed=1,
                progress=False)
  first = classification.train(data_dir, train_dir, num_steps=30, **kwargs)
  assert (first['start_step'], first['global_step']) == (0, 30)
  losses = first['losses']
  assert len(losses) == 30
  assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
  assert first['config']['dropout_rate'] == 0.0  # Augmented: no dropout.
  assert first['config']['learning_rate_boundaries'] == [15, 22]
  # Re-running resumes from the checkpoint of step 30 and trains to 40.
  second = classification.train(data_dir, train_dir, num_steps=40, **kwargs)
  assert (second['start_step'], second['global_step']) == (30, 40)
  assert len(second['losses']) == 10
  assert np.mean(second['losses']) < np.mean(losses[:5])
  assert second['checkpoint'].endswith('model.ckpt-40')
  assert second['test']['num_examples'] == 40
  # evaluate() restores the checkpoint by name: the same numbers.
  evaluated = classification.evaluate(train_dir=train_dir)
  assert evaluated['global_step'] == 40
  assert evaluated['top1_error'] == pytest.approx(second['test']['top1_error'])
  assert evaluated['loss'] == pytest.approx(second['test']['loss'], rel=1e-5)
  with open(tmp_path / 'run' / 'results.json') as f:
    assert json.load(f)['global_step'] == 40
  # Another model in the same directory is refused, naming the setting.
  with pytest.raises(ValueError, match='other settings \\(architecture\\)'):
    classification.train(data_dir, train_dir, num_steps=40,
                         **dict(kwargs, model='densenet_bc_16_k4'))


def test_commands_build_the_data_train_and_evaluate(cifar_dir, tmp_path,
                                                    capsys):
  _, source = cifar_dir
  data_dir, train_dir = str(tmp_path / 'data'), str(tmp_path / 'run')
  assert cli.main([
      'train', '--dataset', 'C10', '--source', source, '--data-dir',
      data_dir, '--train-dir', train_dir, '--model', 'densenet_bc_10_k4',
      '--batch-size', '20', '--num-steps', '3', '--eval-every-epochs', '0',
      '--no-progress', '--json', '--memory-efficient']) == 0
  trained = strict_json(capsys.readouterr().out)
  assert trained['config']['memory_efficient'] is True
  assert trained['config']['augment'] is False  # C10 (no "+").
  assert trained['config']['dropout_rate'] == 0.2
  assert trained['config']['steps_per_epoch'] == 10
  assert trained['global_step'] == 3
  assert datasets.read_metadata(data_dir)['splits']['train'][
      'num_examples'] == 200
  assert cli.main(['evaluate', '--train-dir', train_dir, '--json',
                         '--output', str(tmp_path / 'eval.json')]) == 0
  evaluated = strict_json(capsys.readouterr().out)
  with open(tmp_path / 'eval.json') as f:
    assert json.load(f) == evaluated
  assert evaluated['num_examples'] == 40
  assert evaluated['top1_error'] == pytest.approx(
      trained['test']['top1_error'])


def test_fine_tune_on_an_image_folder_from_a_checkpoint(cifar_dir, tmp_path):
  data_dir, _ = cifar_dir
  pretrained = str(tmp_path / 'pretrained')
  classification.train(data_dir, pretrained, model='densenet_bc_10_k4',
                       batch_size=20, num_steps=2, eval_every_epochs=0,
                       progress=False)
  rng = np.random.RandomState(0)
  for name in ('a', 'b'):
    (tmp_path / 'photos' / name).mkdir(parents=True)
    for i in range(6):
      Image.fromarray(rng.randint(0, 256, (40, 48, 3)).astype(np.uint8)).save(
          tmp_path / 'photos' / name / ('%d.png' % i))
  folder_dir = str(tmp_path / 'folder')
  datasets.create_image_folder_tfrecords(str(tmp_path / 'photos'), folder_dir,
                                         image_size=32,
                                         validation_fraction=0.2)
  results = classification.train(
      folder_dir, str(tmp_path / 'tuned'), model='densenet_bc_10_k4',
      batch_size=5, num_steps=1, learning_rate=0.0, eval_every_epochs=0,
      initial_checkpoint=pretrained, progress=False)
  # The weights expect the normalization they were trained with (the
  # pretrained run's config.json), not the new dataset's.
  with open(os.path.join(pretrained, 'config.json')) as f:
    assert results['config']['normalization'] == json.load(f)[
        'normalization']
  assert 'mean' in results['config']['normalization']
  assert results['validation']['num_examples'] == 2
  before = tf.train.load_checkpoint(pretrained)
  after = tf.train.load_checkpoint(results['checkpoint'])
  kernels = [n for n in before.get_variable_to_shape_map()
             if n.startswith('densenet_bc_10_k4/') and
             n.endswith('/weights') and '/logits/' not in n]
  assert len(kernels) == 9  # Root, 3 units x (1x1 + 3x3), 2 transitions.
  for name in kernels:  # Learning rate 0: still the pretrained kernels.
    np.testing.assert_array_equal(after.get_tensor(name),
                                  before.get_tensor(name))
  assert after.get_tensor('densenet_bc_10_k4/logits/weights').shape[-1] == 2
  with pytest.raises(ValueError, match='initial_checkpoint .* does not fit '
                     'densenet_bc_16_k4'):
    classification.train(
        folder_dir, str(tmp_path / 'other'), model='densenet_bc_16_k4',
        batch_size=5, num_steps=1, eval_every_epochs=0,
        initial_checkpoint=pretrained, progress=False)
