"""Graceful stop on SIGTERM / SIGINT, resume, and partial-restore refusal.

In-process: a `Trainer` whose callback signals its own process at a known
step (the handlers only record the request; the loop stops between steps,
saves and raises `training.Interrupted`), a second signal in the middle of
that save, and the handlers given back. In subprocesses: both training
commands (`segmentation train`, `densenet train`) get SIGTERM or SIGINT once
their `step N` log lines show training under way; each must save the step it
reached, print one line, exit 143 / 130, and the same command must then
resume from that step to --steps. Every subprocess is bounded in time and
every run in steps.
"""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import TINY_2BLOCK
from conftest import python_env
from conftest import start_python
from densenet import spec as spec_lib
from densenet import training
from densenet import weights
from densenet.cli import common
from densenet.training import signals
from densenet.weights import checkpoints as weights_checkpoints
from segmentation import model as seg_model
from segmentation import tasks
from segmentation.data import synthetic
from test_datasets import write_cifar
import test_multi_worker
from test_training import dataset
from test_training import loss_fn
from test_training import tiny_net
from test_training import toy_data

PROCESS_TIMEOUT = 120
MAX_STEPS = 100000  # Never reached: the signal stops the run first.


def _step(path):
  return int(path.rsplit('-', 1)[1])


def make_trainer(model_dir, callbacks=(), checkpoint_every=100):
  return training.Trainer(
      tiny_net, loss_fn, model_dir, global_batch_size=4,
      optimizer_fn=lambda: tf_keras.optimizers.SGD(0.1, momentum=0.9),
      checkpoint_every=checkpoint_every, progress=False, callbacks=callbacks)


def signal_at(step_to_signal, signum):
  """A callback sending `signum` to this process after that step."""

  def callback(trainer, step):
    if step == step_to_signal:
      os.kill(os.getpid(), signum)

  return callback


def test_sigterm_saves_the_step_reached_and_raises(tmp_path):
  images, labels = toy_data(16)
  model_dir = str(tmp_path / 'run')
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  seen = []
  trainer = make_trainer(model_dir, [
      signal_at(3, signal.SIGTERM),
      lambda trainer, step: seen.append((step, trainer.stop_requested))],
                         checkpoint_every=2)
  with pytest.raises(training.Interrupted) as raised:
    trainer.train(dataset(images, labels, 4), num_steps=MAX_STEPS)
  error = raised.value
  assert isinstance(error, KeyboardInterrupt)
  assert (error.signal_name, error.step, error.signal_number) == (
      'SIGTERM', 3, signal.SIGTERM)
  assert error.checkpoint == os.path.join(model_dir, 'model.ckpt-3')
  assert str(error) == ('stopped by SIGTERM at step 3; checkpoint %s saved; '
                        'run the same command to resume.' % error.checkpoint)
  # The callbacks of step 3 all ran; no step 4.
  assert seen == [(1, None), (2, None), (3, 'SIGTERM')]
  assert tf.train.latest_checkpoint(model_dir) == error.checkpoint
  assert tf.train.load_checkpoint(error.checkpoint).get_tensor(
      'global_step') == 3
  # The previous handlers are back.
  assert (signal.getsignal(signal.SIGTERM),
          signal.getsignal(signal.SIGINT)) == before
  assert trainer.stop_requested is None

  # Resuming continues from step 3.
  result = make_trainer(model_dir).train(dataset(images, labels, 4), 5)
  assert (result.start_step, result.global_step, len(result.losses)) == (
      3, 5, 2)


def test_a_second_sigint_does_not_interrupt_the_save(tmp_path, monkeypatch):
  # Whatever SIGINT did before training (KeyboardInterrupt, or SIG_IGN when
  # something earlier in this test process left it ignored) comes back.
  before = signal.getsignal(signal.SIGINT)
  images, labels = toy_data(16)
  model_dir = str(tmp_path / 'run')
  trainer = make_trainer(model_dir, [signal_at(2, signal.SIGINT)])
  saves = []
  real_save = weights_checkpoints.save

  def save_with_a_second_sigint(tensors, prefix):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again, while saving.
    time.sleep(0.05)
    path = real_save(tensors, prefix)
    saves.append(path)
    return path

  monkeypatch.setattr(weights_checkpoints, 'save', save_with_a_second_sigint)
  with pytest.raises(training.Interrupted) as raised:
    trainer.train(dataset(images, labels, 4), num_steps=MAX_STEPS)
  assert (raised.value.signal_name, raised.value.step) == ('SIGINT', 2)
  assert saves == [os.path.join(model_dir, 'model.ckpt-2')]
  reader = tf.train.load_checkpoint(saves[0])
  variables = trainer.model.variables_by_name()
  for name in ('tiny/conv1/weights', 'tiny/logits/biases'):
    np.testing.assert_array_equal(reader.get_tensor(name),
                                  variables[name].numpy())
  assert not [n for n in os.listdir(model_dir) if n.startswith('.tmp')]
  assert signal.getsignal(signal.SIGINT) == before


def test_handlers_come_back_after_an_error_and_only_in_the_main_thread(
    tmp_path):
  images, labels = toy_data(8)
  images[:] = np.nan
  previous = signal.getsignal(signal.SIGTERM)
  with pytest.raises(training.NaNLossError):
    make_trainer(str(tmp_path / 'nan')).train(dataset(images, labels, 4), 3)
  assert signal.getsignal(signal.SIGTERM) == previous

  requests = []

  def in_a_thread():
    with signals.stop_on_signals() as request:
      requests.append(request)

  thread = threading.Thread(target=in_a_thread)
  thread.start()
  thread.join(30)
  assert [r.active for r in requests] == [False]
  with signals.stop_on_signals() as outer:
    with signals.stop_on_signals() as inner:
      assert inner is outer and outer.active
    assert signal.getsignal(signal.SIGTERM) == outer.handle
  assert signal.getsignal(signal.SIGTERM) == previous


def test_exit_statuses_and_one_line():
  for name, status in (('SIGTERM', 143), ('SIGINT', 130)):
    error = signals.Interrupted(name, 37, 'runs/seg/model.ckpt-37')
    assert common.exit_status(error) == status
    assert common.error_message(error) == (
        'stopped by %s at step 37; checkpoint runs/seg/model.ckpt-37 saved; '
        'run the same command to resume.' % name)
  assert common.error_message(signals.Interrupted('SIGTERM', 0, None)) == (
      'stopped by SIGTERM at step 0, before the first checkpoint; run the '
      'same command to start again.')
  copy = pickle.loads(pickle.dumps(error))
  assert (type(copy), str(copy), copy.step) == (
      signals.Interrupted, str(error), 37)


# ---------------------------------------------------------------------------
# The commands, in subprocesses.

# A stop line: 'segmentation train: stopped by SIGTERM at step 37;
# checkpoint runs/seg/model.ckpt-37 saved; run the same command to resume.'
STOP_LINE = re.compile(r'^(\S+ train): stopped by (SIG\w+) at step (\d+); '
                       r'checkpoint (\S+) saved; run the same command to '
                       r'resume\.$')


@pytest.fixture(scope='module')
def records(voc_records):
  """8 training and 4 validation scenes of 32x32, one shard each."""
  return str(voc_records(num_train=8, num_val=4, size=32, num_shards=1))


@pytest.fixture(scope='module')
def cifar_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp('cifar')
  source, _ = write_cifar(str(directory), 'CIFAR10', 40, 8)
  with pytest.warns(UserWarning):  # Too few images for real statistics.
    from densenet import datasets  # pylint: disable=g-import-not-at-top
    datasets.create_tfrecords('CIFAR10', source, str(directory / 'records'))
  return str(directory / 'records')


def signal_once_training(args, signum, log_path, after_step=2):
  """Runs `python *args`, sends `signum` once a 'step N' line with N >=
  `after_step` is logged; returns (exit status, stderr)."""
  with open(log_path, 'w') as stderr:
    process = start_python(*args, stderr=stderr, stdout=subprocess.DEVNULL)
    try:
      deadline = time.time() + PROCESS_TIMEOUT
      while time.time() < deadline and process.poll() is None:
        steps = re.findall(r'^step (\d+) ', open(log_path).read(), re.M)
        if steps and int(steps[-1]) >= after_step:
          break
        time.sleep(0.1)
      if process.poll() is None:  # Else it failed: the log says why.
        os.kill(process.pid, signum)
      status = process.wait(timeout=PROCESS_TIMEOUT)
    finally:
      if process.poll() is None:
        process.kill()
        process.wait(timeout=30)
  return status, open(log_path).read()


def check_stopped(status, log, signal_name, model_dir):
  """The run stopped with one line and a checkpoint; returns its step."""
  expected = {'SIGTERM': 143, 'SIGINT': 130}[signal_name]
  assert status == expected, log[-3000:]
  assert 'Traceback' not in log, log[-3000:]
  last = log.strip().splitlines()[-1]
  match = STOP_LINE.match(last)
  assert match and match.group(2) == signal_name, last
  step, checkpoint = int(match.group(3)), match.group(4)
  # It stopped between steps: the last logged step is the one saved.
  logged = [int(s) for s in re.findall(r'^step (\d+) ', log, re.M)]
  assert logged[-1] == step >= 2
  assert checkpoint == os.path.join(model_dir, 'model.ckpt-%d' % step)
  assert tf.train.latest_checkpoint(model_dir) == checkpoint
  assert tf.train.load_checkpoint(checkpoint).get_tensor(
      'global_step') == step
  return step


def run_to_the_end(main, argv, capsys):
  """Runs a command in-process (the resumed run; saves a TF import)."""
  assert main(argv) == 0, capsys.readouterr().err[-3000:]
  return capsys.readouterr().out


def test_segmentation_train_stops_on_sigterm_and_resumes(records, tmp_path,
                                                         capsys):
  from segmentation import cli  # pylint: disable=g-import-not-at-top
  signal_name = 'SIGTERM'
  model_dir = str(tmp_path / 'model')
  command = ['train', '--model-dir', model_dir, '--train',
             os.path.join(records, 'train-*'), '--num-classes',
             str(synthetic.NUM_CLASSES), '--backbone',
             json.dumps(TINY_2BLOCK), '--output-stride', '8', '--head',
             'fcn', '--batch-size', '2', '--crop-size', '32',
             '--checkpoint-every', '1000', '--no-progress', '--log-every',
             '1']
  status, log = signal_once_training(
      ['-m', 'segmentation.cli'] + command +
      ['--steps', str(MAX_STEPS)], getattr(signal, signal_name),
      str(tmp_path / 'log.txt'))
  step = check_stopped(status, log, signal_name, model_dir)
  assert STOP_LINE.match(log.strip().splitlines()[-1]).group(1) == (
      'segmentation train')
  output = run_to_the_end(cli.main, command + ['--steps', str(step + 2)],
                          capsys)
  assert 'Trained from step %d to %d' % (step, step + 2) in output


def test_densenet_train_stops_on_sigint_and_resumes(cifar_dir, tmp_path,
                                                    capsys):
  from densenet import cli  # pylint: disable=g-import-not-at-top
  signal_name = 'SIGINT'
  train_dir = str(tmp_path / 'run')
  command = ['train', '--data-dir',
             cifar_dir, '--train-dir', train_dir, '--model',
             'densenet_bc_10_k4', '--batch-size', '4',
             '--eval-every-epochs', '0', '--checkpoint-every', '1000',
             '--no-progress', '--log-every', '1', '--json']
  status, log = signal_once_training(
      ['-m', 'densenet.cli'] + command +
      ['--num-steps', str(MAX_STEPS)], getattr(signal, signal_name),
      str(tmp_path / 'log.txt'))
  step = check_stopped(status, log, signal_name, train_dir)
  assert STOP_LINE.match(log.strip().splitlines()[-1]).group(1) == (
      'densenet train')
  results = json.loads(run_to_the_end(
      cli.main, command + ['--num-steps', str(step + 2)], capsys))
  assert (results['start_step'], results['global_step']) == (step, step + 2)


def test_a_signal_during_evaluation_cuts_it_short_and_saves(
    records, tmp_path, monkeypatch):
  from segmentation import evaluation  # pylint: disable=g-import-not-at-top
  real_make_predict_fn = evaluation.make_predict_fn
  predicted = []

  def make_predict_fn(*args, **kwargs):
    predict_fn = real_make_predict_fn(*args, **kwargs)

    def predict(images):
      predicted.append(images.shape)
      if len(predicted) == 2:  # SIGTERM while evaluating the 2nd image.
        os.kill(os.getpid(), signal.SIGTERM)
      return predict_fn(images)

    return predict

  monkeypatch.setattr(evaluation, 'make_predict_fn', make_predict_fn)
  model_dir = str(tmp_path / 'model')
  messages = []
  with pytest.raises(training.Interrupted) as raised:
    tasks.train(model_dir, os.path.join(records, 'train-*'),
                segmentation_config(), MAX_STEPS, batch_size=2,
                crop_size=(32, 32), checkpoint_every=1000, progress=False,
                log=messages.append, eval_pattern=os.path.join(
                    records, 'val-*'), eval_every=2)
  assert (raised.value.signal_name, raised.value.step) == ('SIGTERM', 2)
  assert raised.value.checkpoint == os.path.join(model_dir, 'model.ckpt-2')
  assert tf.train.latest_checkpoint(model_dir) == raised.value.checkpoint
  assert len(predicted) == 2  # Of the 4 validation images.
  assert messages == ['step 2: evaluation cut short by SIGTERM (not '
                      'recorded)']
  assert not os.path.exists(os.path.join(model_dir, 'best'))


def test_a_signal_during_the_final_classification_evaluation(
    cifar_dir, tmp_path, monkeypatch):
  from densenet import classification  # pylint: disable=g-import-not-at-top
  from densenet.classification import evaluation  # pylint: disable=g-import-not-at-top
  real_evaluate_model = evaluation.evaluate_model
  stopped = []

  def evaluate_model(model, eval_dataset, should_stop=None):
    os.kill(os.getpid(), signal.SIGTERM)  # As the evaluation starts.
    results = real_evaluate_model(model, eval_dataset, should_stop)
    stopped.append(results is None)
    return results

  kwargs = dict(model='densenet_bc_10_k4', batch_size=4, num_steps=3,
                eval_every_epochs=0, progress=False)
  train_dir = str(tmp_path / 'run')
  monkeypatch.setattr(evaluation, 'evaluate_model', evaluate_model)
  with pytest.raises(training.Interrupted) as raised:
    classification.train(cifar_dir, train_dir, **kwargs)
  assert stopped == [True]
  assert (raised.value.signal_name, raised.value.step) == ('SIGTERM', 3)
  assert raised.value.checkpoint == os.path.join(train_dir, 'model.ckpt-3')
  assert not os.path.exists(os.path.join(train_dir, 'results.json'))
  # Re-running trains no step: it evaluates and writes the results.
  monkeypatch.setattr(evaluation, 'evaluate_model', real_evaluate_model)
  results = classification.train(cifar_dir, train_dir, **kwargs)
  assert (results['start_step'], results['global_step']) == (3, 3)
  assert results['test']['num_examples'] == 8


# ---------------------------------------------------------------------------
# An initial checkpoint that does not fit the backbone.


def segmentation_config():
  return tasks.ModelConfig(num_classes=synthetic.NUM_CLASSES,
                           backbone=dict(TINY_2BLOCK), output_stride=8,
                           head='fcn', depth=8)


def test_partial_restore_is_an_error_unless_asked(records, tmp_path, capsys):
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  from segmentation import cli  # pylint: disable=g-import-not-at-top
  # A classification checkpoint of another densenet_X: a second unit in
  # block 2, so the final batch norm has more channels.
  other = training.SlimModel(spec_lib.ModelSpec(
      {'num_units_per_block': [1, 2], 'growth_rate': 4},
      num_classes=5).net_fn())
  other(tf.zeros([1, 32, 32, 3]))
  other_checkpoint = weights.save(
      {name: v.numpy() for name, v in other.variables_by_name().items()},
      str(tmp_path / 'other' / 'model.ckpt'))
  shapes = tf.train.load_checkpoint(
      other_checkpoint).get_variable_to_shape_map()
  model = training.SlimModel(seg_model.net_fn(segmentation_config()))
  model(tf.zeros([1, 32, 32, 3]))
  backbone = {name: v.shape.as_list() for name, v in
              model.variables_by_name().items()
              if name.startswith('densenet_X/')}
  matched = sum(shapes.get(name) == shape for name, shape in backbone.items())
  assert 0 < matched < len(backbone)

  pattern = os.path.join(records, 'train-*')
  kwargs = dict(batch_size=2, crop_size=(32, 32), progress=False)
  model_dir = str(tmp_path / 'refused')
  with pytest.raises(weights.WeightMismatchError) as raised:
    tasks.train(model_dir, pattern, segmentation_config(), 1,
                initial_checkpoint=other_checkpoint, **kwargs)
  message = str(raised.value)
  assert message.splitlines()[0] == (
      'initial checkpoint %s does not fit the densenet_X backbone (the '
      'checkpoint holds variable scope densenet_X; %d of the %d variables '
      'matched); to restore only the variables that fit, train with '
      '--partial-restore (partial_restore=True).' % (
          other_checkpoint, matched, len(backbone))), message
  assert 'densenet_X/postnorm/gamma (network [10], weights [14])' in message
  assert raised.value.missing == []
  assert len(raised.value.mismatched) == len(backbone) - matched
  # A failed first start leaves nothing that would lock the directory.
  assert not os.path.exists(os.path.join(model_dir, 'config.json'))

  messages = []
  result = tasks.train(str(tmp_path / 'partial'), pattern,
                       segmentation_config(), 1,
                       initial_checkpoint=other_checkpoint,
                       partial_restore=True, log=messages.append, **kwargs)
  assert result.global_step == 1
  assert ('restored %d variables' % matched) in messages[0]
  assert 'shape mismatches (not restored): densenet_X/postnorm/' in (
      messages[0])

  # A converted checkpoint of another model: the command says which, in one
  # line (exit status 2).
  converted = checkpoints.save_checkpoint(
      {'conv1/weights': np.zeros((7, 7, 3, 64), np.float32)},
      {'model': 'densenet_169', 'batch_norm_epsilon': 1.001e-5,
       'normalization': 'torch'}, str(tmp_path / 'd169' / 'model.ckpt'))
  assert weights.checkpoint_model(converted) == 'model densenet_169'
  assert weights.checkpoint_model(other_checkpoint) == (
      'variable scope densenet_X')
  status = cli.main([
      'train', '--model-dir', str(tmp_path / 'cli'), '--train', pattern,
      '--num-classes', str(synthetic.NUM_CLASSES), '--backbone',
      json.dumps(TINY_2BLOCK), '--output-stride', '8', '--head', 'fcn',
      '--depth', '8', '--batch-size', '2', '--crop-size', '32', '--steps',
      '1', '--no-progress', '--initial-checkpoint', converted])
  err = capsys.readouterr().err
  assert status == 2 and err.count('\n') == 1, err
  assert err.startswith('segmentation train: error: initial checkpoint '), err
  assert err.endswith(
      '(the checkpoint holds model densenet_169; 0 of the %d variables '
      'matched); to restore only the variables that fit, train with '
      '--partial-restore (partial_restore=True). (more with --verbose)\n' % (
          len(backbone))), err


# ---------------------------------------------------------------------------
# Two workers: a SIGTERM to one stops both after the same step, both saving.


def test_a_signal_to_one_worker_stops_every_worker_after_one_step(
    tmp_path):
  init = test_multi_worker.write_initial_checkpoint(str(tmp_path / 'init'))
  ports = test_multi_worker.free_ports(2)
  cluster = {'worker': ['localhost:%d' % port for port in ports]}
  processes = []
  try:
    for index in range(2):
      env = python_env(TF_CONFIG=json.dumps({'cluster': cluster, 'task': {
          'type': 'worker', 'index': index}}))
      args = {'model_dir': str(tmp_path / ('worker%d' % index)),
              'init': init, 'signal_at': 3 if index == 1 else None}
      processes.append(start_python(
          os.path.abspath(__file__), json.dumps(args), env=env,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = test_multi_worker.finish(processes, PROCESS_TIMEOUT)
  finally:
    test_multi_worker.stop(processes)
  for status, log in results:
    assert status == 143, log[-3000:]
  # The stop line (TF may log the lost peer of the shutdown after it).
  chief, other = [
      [line for line in log.splitlines() if line.startswith('stopped')]
      for _, log in results]
  assert len(chief) == len(other) == 1, results
  chief, other = chief[0], other[0]
  # Worker 1 signalled itself after step 3; step 4 told both to stop.
  checkpoint = str(tmp_path / 'worker0' / 'model.ckpt-4')
  assert chief == ('stopped by a signal to another worker at step 4; '
                   'checkpoint %s saved; run the same command to resume.' %
                   checkpoint)
  assert other.startswith('stopped by SIGTERM at step 4; checkpoint ')
  assert tf.train.latest_checkpoint(str(tmp_path / 'worker0')) == checkpoint
  assert not os.path.exists(str(tmp_path / 'worker1'))  # Not the chief.


def worker(args):
  """A worker of the test above; prints its `Interrupted` (exit 143)."""
  strategy = training.get_strategy(
      timeout_seconds=test_multi_worker.COLLECTIVE_TIMEOUT)
  global_batch_size = test_multi_worker.PER_WORKER_BATCH * 2
  callbacks = [signal_at(args['signal_at'], signal.SIGTERM)] if args[
      'signal_at'] else []
  trainer = training.Trainer(
      tiny_net, loss_fn, args['model_dir'], global_batch_size,
      strategy=strategy, checkpoint_every=1000, progress=False,
      callbacks=callbacks, init_fn=lambda model: training.restore_by_name(
          model.variables_by_name(), args['init']))
  try:
    trainer.train(test_multi_worker.training_data(global_batch_size),
                  MAX_STEPS)
  except training.Interrupted as error:
    print(error, file=sys.stderr)
    sys.exit(128 + error.signal_number if error.signal_name else 143)


if __name__ == '__main__':
  worker(json.loads(sys.argv[1]))
