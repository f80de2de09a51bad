"""End-to-end tests of `segmentation` training, resuming, evaluation, predict.

One tiny synthetic dataset (48x48 scenes) and a tiny DenseNet (1 unit per
block, k=4) with a 16-channel ASPP serve every test of the module.
"""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from segmentation import cli
from segmentation import data
from segmentation import pictures
from segmentation.data import synthetic
from segmentation import tasks
from segmentation import demo as seg_demo
from test_faults import strict_json  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {'num_units_per_block': [1, 1, 1, 1], 'growth_rate': 4,
        'num_initial_filters': 8, 'scope': 'tiny'}
TRAIN_FLAGS = ['--num-classes', str(synthetic.NUM_CLASSES), '--backbone',
               json.dumps(TINY), '--depth', '16', '--batch-size', '4',
               '--crop-size', '48', '--learning-rate', '0.003',
               '--optimizer', 'adam', '--no-progress', '--log-every', '1']


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  root = tmp_path_factory.mktemp('synthetic')
  synthetic.generate(str(root / 'voc'), 24, 4, size=48, seed=0,
                     progress=False)
  tasks.build_data(str(root / 'records'), voc_root=str(root / 'voc'),
                   num_shards=2, progress=False)
  return root


def config():
  return tasks.ModelConfig(num_classes=synthetic.NUM_CLASSES, backbone=TINY,
                           depth=16, class_names=list(synthetic.CLASS_NAMES))


def test_train_lowers_loss_resumes_evaluates_predicts(records, tmp_path):
  model_dir = str(tmp_path / 'model')
  pattern = str(records / 'records' / 'train-*')
  tf.random.set_seed(0)
  first = tasks.train(model_dir, pattern, config(), 30, batch_size=4,
                      crop_size=(48, 48), learning_rate=3e-3,
                      optimizer='adam', checkpoint_every=10, progress=False)
  assert (first.start_step, first.global_step) == (0, 30)
  assert np.mean(first.losses[-8:]) < 0.8 * np.mean(first.losses[:8])

  again = tasks.train(model_dir, pattern, config(), 33, batch_size=4,
                      crop_size=(48, 48), learning_rate=3e-3,
                      optimizer='adam', checkpoint_every=10, progress=False)
  assert (again.start_step, again.global_step) == (30, 33)
  with pytest.raises(ValueError, match='another config'):
    other = config()
    other.head = 'fcn'
    tasks.train(model_dir, pattern, other, 40, progress=False)

  # evaluate --json: the counts cover every labelled val pixel.
  output = run_cli(['evaluate', '--model-dir', model_dir, '--eval',
                    str(records / 'records' / 'val-*'), '--json'])
  results = strict_json(output)  # One strict JSON document alone.
  assert results['global_step'] == 33 and results['num_images'] == 4
  assert results['num_pixels'] == 4 * 48 * 48
  assert 0.0 <= results['mean_iou'] <= 1.0
  assert list(results['per_class_iou']) == list(synthetic.CLASS_NAMES)

  # predict: one palette mask of the input's size per image, and an overlay.
  inputs = []
  for i, (height, width) in enumerate([(40, 56), (61, 35)]):
    path = str(tmp_path / ('input_%d.jpg' % i))
    Image.fromarray(np.random.RandomState(i).randint(
        0, 256, (height, width, 3)).astype(np.uint8)).save(path)
    inputs.append((path, height, width))
  out_dir = str(tmp_path / 'predictions')
  run_cli(['predict'] + [p for p, _, _ in inputs] +
          ['--model-dir', model_dir, '--output-dir', out_dir])
  assert sorted(os.listdir(out_dir)) == [
      'input_0.png', 'input_0_overlay.png', 'input_1.png',
      'input_1_overlay.png']
  for path, height, width in inputs:
    stem = os.path.splitext(os.path.basename(path))[0]
    with Image.open(os.path.join(out_dir, stem + '.png')) as mask:
      assert mask.mode == 'P' and mask.size == (width, height)
      np.testing.assert_array_equal(
          np.asarray(mask.getpalette(), np.uint8).reshape(-1, 3),
          data.voc_palette()[:len(mask.getpalette()) // 3])
      assert np.asarray(mask).max() < synthetic.NUM_CLASSES
    # The picture: image | prediction panels at the input's size.
    with Image.open(os.path.join(out_dir, stem + '_overlay.png')) as image:
      picture = np.asarray(image.convert('RGB'))
    assert picture.shape[1] == 6 + 2 * (width + 6)
    left, top, right, bottom = pictures.panel_box((width, height), 2, 0,
                                                  has_title=True)
    with Image.open(path) as image:
      np.testing.assert_array_equal(picture[top:bottom, left:right],
                                    np.asarray(image.convert('RGB')))


def run_cli(argv):
  """Runs `segmentation` in-process; returns its stdout."""
  import contextlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.StringIO()
  with contextlib.redirect_stdout(buffer):
    assert cli.main(argv) == 0
  return buffer.getvalue()


def test_train_command_memory_efficient(records, tmp_path):
  model_dir = str(tmp_path / 'model')
  output = run_cli(['train', '--model-dir', model_dir, '--train',
                    str(records / 'records' / 'train-*'), '--steps', '2',
                    '--memory-efficient'] + TRAIN_FLAGS)
  assert 'Trained from step 0 to 2' in output
  assert tasks.ModelConfig.load(model_dir).memory_efficient is True


def latest_step(model_dir):
  """The step of the newest checkpoint file pair written so far, or -1."""
  steps = [int(m) for m in re.findall(
      r'model\.ckpt-(\d+)\.index', ' '.join(os.listdir(model_dir)))
           ] if os.path.isdir(model_dir) else []
  return max(steps, default=-1)


def test_killed_training_loses_at_most_one_checkpoint_interval(records,
                                                               tmp_path):
  model_dir = str(tmp_path / 'model')
  command = [sys.executable, '-m', 'segmentation.cli', 'train',
             '--model-dir', model_dir, '--train',
             str(records / 'records' / 'train-*'), '--checkpoint-every', '5']
  command += TRAIN_FLAGS
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  log = tmp_path / 'log.txt'
  with open(log, 'w') as stderr:
    process = subprocess.Popen(command + ['--steps', '100000'], cwd=ROOT,
                               env=env, stderr=stderr,
                               stdout=subprocess.DEVNULL)
    deadline = time.time() + 240
    while (time.time() < deadline and process.poll() is None and
           latest_step(model_dir) < 10):
      time.sleep(0.2)
    time.sleep(1.5)  # Somewhere between checkpoints.
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
  latest = tf.train.latest_checkpoint(model_dir)
  assert latest is not None, open(log).read()[-2000:]
  saved = int(latest.rsplit('-', 1)[1])
  assert saved >= 10
  # The step the killed run was at: its last 'step N' log line.
  reached = max(int(s) for s in re.findall(r'^step (\d+)', open(log).read(),
                                           re.M))
  # At most one interval (5) is lost: exactly 5 when the kill lands while
  # the checkpoint of `reached` is being written.
  assert saved <= reached <= saved + 5
  output = subprocess.run(command + ['--steps', str(saved + 2)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
  assert output.returncode == 0, output.stderr[-2000:]
  assert 'Trained from step %d to %d' % (saved, saved + 2) in output.stdout
  # A save the kill interrupted leaves only temporary files, removed by the
  # next save.
  assert not [n for n in os.listdir(model_dir) if n.startswith('.tmp')]


def test_demo_runs_end_to_end_small(tmp_path, monkeypatch, capsys):
  # The command with --json, on smaller data (demo()'s own arguments): its
  # stdout is one strict JSON document, its log lines go to stderr.
  monkeypatch.setattr(seg_demo, 'demo', functools.partial(
      seg_demo.demo, size=48, num_train=4, num_val=2, num_overlays=1,
      progress=False))
  assert cli.main(['demo', '--work-dir', str(tmp_path / 'demo'), '--steps',
                   '2', '--batch-size', '2', '--json']) == 0
  captured = capsys.readouterr()
  results = strict_json(captured.out)
  assert results['global_step'] == 2 and results['num_images'] == 2
  assert results['num_pixels'] == 2 * 48 * 48
  assert 0.0 <= results['mean_iou'] <= 1.0
  assert [os.path.basename(p) for p in results['overlays']] == [
      'val_00000_overlay.png']
  with Image.open(results['overlays'][0]) as image:
    assert image.size[0] == 6 + 3 * (48 + 6)  # Image | truth | prediction.
  config = tasks.ModelConfig.load(str(tmp_path / 'demo' / 'model'))
  assert (config.head, config.output_stride, config.depth) == (
      'deeplabv3plus', 16, 64)
  assert config.backbone == seg_demo.DEMO_BACKBONE
  assert 'train: 4 records' in captured.err
