"""Tests of densenet.classification and its commands (densenet.train_cli).

Training runs a tiny DenseNet-BC (L=10, k=4) on a generated CIFAR-10 archive
in the real format (see test_datasets.write_cifar).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from densenet import classification
from densenet import datasets
from densenet import train_cli
from test_datasets import write_cifar  # pylint: disable=g-bad-import-order


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
    classification.step_learning_rate(0.1, [20, 10])


def test_model_names():
  assert classification.model_fn('densenet_121') is (
      classification.densenet.densenet_121)
  net_fn = classification.make_net_fn('densenet_bc_10_k4', num_classes=7)
  with tf.Graph().as_default():
    logits = net_fn(tf.zeros([2, 32, 32, 3]), False)
    names = [v.op.name for v in tf.compat.v1.global_variables()]
  assert logits.shape.as_list() == [2, 7]
  # L=10 DenseNet-BC: (10 - 4) / 6 = 1 bottleneck unit per block, root of
  # 2k = 8 filters, under the scope of its name.
  assert 'densenet_bc_10_k4/conv1/weights' in names
  assert 'densenet_bc_10_k4/dense_block3/unit_1/dense_unit/conv2/weights' in (
      names)
  assert not [n for n in names if 'unit_2' in n]
  with pytest.raises(ValueError, match="Unknown model 'resnet_50'"):
    classification.model_fn('resnet_50')


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
  with pytest.raises(ValueError, match='other settings \\(model\\)'):
    classification.train(data_dir, train_dir, num_steps=40,
                         **dict(kwargs, model='densenet_bc_16_k4'))


def test_commands_build_the_data_train_and_evaluate(cifar_dir, tmp_path,
                                                    capsys):
  _, source = cifar_dir
  data_dir, train_dir = str(tmp_path / 'data'), str(tmp_path / 'run')
  assert train_cli.main([
      'train', '--dataset', 'C10', '--source', source, '--data-dir',
      data_dir, '--train-dir', train_dir, '--model', 'densenet_bc_10_k4',
      '--batch-size', '20', '--num-steps', '3', '--eval-every-epochs', '0',
      '--no-progress', '--json']) == 0
  trained = json.loads(capsys.readouterr().out)
  assert trained['config']['augment'] is False  # C10 (no "+").
  assert trained['config']['dropout_rate'] == 0.2
  assert trained['config']['steps_per_epoch'] == 10
  assert trained['global_step'] == 3
  assert datasets.read_metadata(data_dir)['splits']['train'][
      'num_examples'] == 200
  assert train_cli.main(['evaluate', '--train-dir', train_dir, '--json',
                         '--output', str(tmp_path / 'eval.json')]) == 0
  evaluated = json.loads(capsys.readouterr().out)
  with open(tmp_path / 'eval.json') as f:
    assert json.load(f) == evaluated
  assert evaluated['num_examples'] == 40
  assert evaluated['top1_error'] == pytest.approx(
      trained['test']['top1_error'])
