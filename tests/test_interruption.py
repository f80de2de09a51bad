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

from densenet import cli_common
from densenet import signals
from densenet import training
from densenet import weights
from segmentation import synthetic
from segmentation import tasks
# pylint: disable=g-bad-import-order
from test_datasets import write_cifar
from test_training import dataset, loss_fn, tiny_net, toy_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
  images, labels = toy_data(16)
  model_dir = str(tmp_path / 'run')
  trainer = make_trainer(model_dir, [signal_at(2, signal.SIGINT)])
  saves = []
  real_save = weights.save

  def save_with_a_second_sigint(tensors, prefix):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again, while saving.
    time.sleep(0.05)
    path = real_save(tensors, prefix)
    saves.append(path)
    return path

  monkeypatch.setattr(weights, 'save', save_with_a_second_sigint)
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
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


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
    assert cli_common.exit_status(error) == status
    assert cli_common.error_message(error) == (
        'stopped by %s at step 37; checkpoint runs/seg/model.ckpt-37 saved; '
        'run the same command to resume.' % name)
  assert cli_common.error_message(signals.Interrupted('SIGTERM', 0, None)) == (
      'stopped by SIGTERM at step 0, before the first checkpoint; run the '
      'same command to start again.')
