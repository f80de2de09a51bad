"""Faults around data and output directories: build-data killed with SIGKILL
while it writes, failing and re-sharded runs, predict on missing and broken
images, output directories that cannot be written (a parent that is a file,
a read-only directory, a full disk simulated with RLIMIT_FSIZE).

The tests run as root here, where chmod does not stop writes: the read-only
case is skipped then, and the parent-is-a-file case (NotADirectoryError)
and the file size limit (EFBIG, SIGXFSZ ignored) stand in for it.
"""

import glob
import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from densenet.datasets import records
from segmentation import cli
from segmentation import data
from segmentation import tasks
from test_segmentation_labels import error_line  # pylint: disable=g-bad-import-order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {'num_units_per_block': [1, 1], 'growth_rate': 4,
        'num_initial_filters': 8, 'scope': 'tiny'}
SIZE = 32
NUM_OLD = 5       # Records of the earlier, good run.
NUM_NEW = 600     # Records of the run that is killed: ~1 s of writing.
TIMEOUT = 120     # Seconds any subprocess may take.


def write_pairs(root, count, size=SIZE, seed=0):
  """`count` random RGB PNGs in root/images, labels in {0, 1, 2, 255}."""
  rng = np.random.RandomState(seed)
  for folder in ('images', 'labels'):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
  for i in range(count):
    Image.fromarray(rng.randint(0, 256, (size, size, 3)).astype(
        np.uint8)).save(os.path.join(root, 'images', 'im%04d.png' % i))
    label = rng.choice([0, 1, 2, 255], (size, size)).astype(np.uint8)
    Image.fromarray(label, mode='L').save(
        os.path.join(root, 'labels', 'im%04d.png' % i))
  return root


def build_argv(pairs, output, *flags):
  return ['build-data', '--image-dir', os.path.join(pairs, 'images'),
          '--label-dir', os.path.join(pairs, 'labels'), '--output-dir',
          output, '--splits', 'train'] + list(flags)


def count(pattern):
  """Records of the files `pattern` matches, read with tf.data (a truncated
  or partial file raises DataLossError)."""
  files = sorted(glob.glob(pattern))
  return sum(1 for _ in tf.data.TFRecordDataset(files)) if files else 0


def snapshot(directory):
  return {name: open(os.path.join(directory, name), 'rb').read()
          for name in sorted(os.listdir(directory))}


def python(argv, **kwargs):
  """`python -m segmentation.cli argv` from the repository root."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.Popen([sys.executable, '-m', 'segmentation.cli'] + argv,
                          cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
  """{'old': NUM_OLD pairs, 'new': NUM_NEW pairs} (folders)."""
  root = tmp_path_factory.mktemp('pairs')
  return {'old': write_pairs(str(root / 'old'), NUM_OLD, seed=1),
          'new': write_pairs(str(root / 'new'), NUM_NEW, seed=2)}


def _shard_sizes(output):
  """Sizes of the shards in build-data's temporary directories so far."""
  sizes = []
  for path in glob.glob(os.path.join(output, '.train-tmp-*', 'train-*')):
    try:
      sizes.append(os.path.getsize(path))
    except FileNotFoundError:  # Removed since the glob.
      pass
  return sizes


# Moments to kill at: the first shard has data; a later shard has data (the
# first ones are complete).
KILL_POINTS = {
    'first_bytes': lambda output: sum(_shard_sizes(output)) > 0,
    'later_shard': lambda output: sum(
        size > 0 for size in _shard_sizes(output)) >= 3,
}


@pytest.mark.parametrize('moment', sorted(KILL_POINTS))
def test_sigkill_during_build_data_leaves_old_or_new_records(
    pairs, tmp_path, moment):
  output = str(tmp_path / 'records')
  assert cli.main(build_argv(pairs['old'], output, '--num-shards', '3')) == 0
  pattern = os.path.join(output, 'train-*')
  assert count(pattern) == NUM_OLD
  process = python(build_argv(pairs['new'], output, '--num-shards', '4'))
  deadline = time.time() + TIMEOUT
  try:
    while not KILL_POINTS[moment](output):
      assert process.poll() is None, 'build-data ended before the kill'
      assert time.time() < deadline
      time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
  finally:
    process.kill()
    process.communicate(timeout=TIMEOUT)
  assert process.returncode == -signal.SIGKILL
  # The kill left its temporary directory, which `train-*` does not match:
  # the directory reads as the old records, whole.
  assert glob.glob(os.path.join(output, '.train-tmp-*'))
  assert sorted(os.path.basename(p) for p in glob.glob(pattern)) == [
      records.shard_name('train', i, 3) for i in range(3)]
  assert count(pattern) == NUM_OLD
  # The next run removes the leftovers and replaces the three old shards by
  # its two.
  assert cli.main(build_argv(pairs['old'], output, '--num-shards', '2')) == 0
  assert sorted(os.listdir(output)) == ['labels-train.json'] + [
      records.shard_name('train', i, 2) for i in range(2)]
  assert count(pattern) == NUM_OLD


class Killed(BaseException):
  """Stands for SIGKILL inside the process (nothing after it runs)."""


def test_a_run_killed_while_landing_is_finished_by_the_next(tmp_path,
                                                            monkeypatch):
  # The commit (renaming the temporary directory) is done; the kill comes
  # after the first of the new shards replaced an old one.
  output = str(tmp_path)
  records.write_shards(output, 'train', [[b'old'] * 2] * 4)
  real_replace, moves = os.replace, []

  def replace(source, target):
    if moves:
      raise Killed()
    moves.append(target)
    real_replace(source, target)

  monkeypatch.setattr(os, 'replace', replace)
  with pytest.raises(Killed):
    records.write_shards(output, 'train', [[b'new'] * 3] * 2)
  monkeypatch.setattr(os, 'replace', real_replace)
  commits = glob.glob(os.path.join(output, '.train-commit-*'))
  assert len(commits) == 1
  # Meanwhile the old shards are gone and one new one of two landed: a
  # reader refuses the partial set instead of training on half the data.
  pattern = os.path.join(output, 'train-*')
  assert sorted(os.path.basename(p) for p in glob.glob(pattern)) == [
      records.shard_name('train', 0, 2)]
  with pytest.raises(ValueError, match=r"split 'train' are not one whole "
                     r'set \(1 files, of 2\).*write the split again'):
    data.make_dataset(pattern, True)
  # The next run of the split (or `recover`) rolls the commit forward.
  assert records.recover(output, 'train') == (commits, [])
  assert sorted(os.listdir(output)) == [
      records.shard_name('train', i, 2) for i in range(2)]
  assert count(pattern) == 6
  records.check_complete(glob.glob(pattern))
  # Mixed shard counts (files of two runs) are refused too.
  open(os.path.join(output, records.shard_name('train', 0, 3)), 'wb').close()
  with pytest.raises(ValueError, match=r'3 files, of 2 and 3'):
    records.check_complete(glob.glob(pattern))


def test_failing_strict_run_keeps_the_old_shards(pairs, tmp_path, capsys):
  output = str(tmp_path / 'records')
  assert cli.main(build_argv(pairs['old'], output, '--num-shards', '2')) == 0
  before = snapshot(output)
  broken = str(tmp_path / 'broken')
  write_pairs(broken, 3)
  with open(os.path.join(broken, 'images', 'im0001.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n truncated')
  assert cli.main(build_argv(broken, output, '--strict')) == 1
  captured = capsys.readouterr()
  assert 'im0001.png' in captured.out
  assert 'train: 1 bad pairs (--strict): nothing written' in error_line(
      captured.err)
  assert snapshot(output) == before
  # Without --strict the good pairs replace them; the bad one is reported.
  assert cli.main(build_argv(broken, output)) == 0
  assert 'skipped: ' in capsys.readouterr().out
  assert count(os.path.join(output, 'train-*')) == 2


def test_another_num_shards_replaces_every_old_shard(pairs, tmp_path):
  output = str(tmp_path / 'records')
  pattern = os.path.join(output, 'train-*')
  for num_shards in (4, 2, 5):
    assert cli.main(build_argv(pairs['old'], output, '--num-shards',
                               str(num_shards))) == 0
    assert sorted(os.path.basename(p) for p in glob.glob(pattern)) == [
        records.shard_name('train', i, num_shards) for i in
        range(num_shards)]
    assert count(pattern) == NUM_OLD


@pytest.fixture(scope='module')
def model_dir(pairs, tmp_path_factory):
  """A tiny 3-class model trained 2 steps on the old pairs."""
  root = tmp_path_factory.mktemp('model')
  tasks.build_data(str(root / 'records'), image_dir=os.path.join(
      pairs['old'], 'images'), label_dir=os.path.join(pairs['old'], 'labels'),
                   splits=['train'], num_shards=1, progress=False,
                   num_classes=3)
  model = str(root / 'model')
  tasks.train(model, str(root / 'records' / 'train-*'),
              tasks.ModelConfig(num_classes=3, backbone=TINY, head='fcn',
                                depth=8, output_stride=8), 2, batch_size=2,
              crop_size=(SIZE, SIZE), progress=False, log=lambda *_: None)
  return model


def test_predict_reports_missing_and_broken_images_and_goes_on(
    pairs, model_dir, tmp_path, capsys):
  good = os.path.join(pairs['old'], 'images', 'im0000.png')
  missing = str(tmp_path / 'missing.png')
  broken = str(tmp_path / 'broken.jpg')
  with open(broken, 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 not a JPEG')
  other = os.path.join(pairs['old'], 'images', 'im0001.png')
  output = str(tmp_path / 'out')
  assert cli.main(['predict', missing, good, broken, other, '--model-dir',
                   model_dir, '--output-dir', output]) == 1
  captured = capsys.readouterr()
  assert 'Traceback' not in captured.err
  reports = [line for line in captured.err.splitlines()
             if line.startswith('segmentation predict: cannot read ')]
  assert [line.split()[4].rstrip(':') for line in reports] == [missing,
                                                              broken]
  assert sorted(os.listdir(output)) == ['im0000.png', 'im0000_overlay.png',
                                        'im0001.png', 'im0001_overlay.png']
  mask = np.array(Image.open(os.path.join(output, 'im0000.png')))
  assert mask.shape == (SIZE, SIZE) and mask.max() < 3


def _under_a_file(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  return str(blocker / 'out')


def _a_file(tmp_path):
  _under_a_file(tmp_path)
  return str(tmp_path / 'a_file')


def _read_only(tmp_path):
  if os.geteuid() == 0:
    pytest.skip('root writes into a 0555 directory')
  directory = tmp_path / 'read_only'
  directory.mkdir()
  directory.chmod(0o555)
  return str(directory / 'out')


@pytest.mark.parametrize('make_dir', [_under_a_file, _a_file, _read_only])
@pytest.mark.parametrize('command', ['build-data', 'predict', 'train'])
def test_unwritable_output_directory_is_one_line_and_status_1(
    pairs, model_dir, tmp_path, capsys, command, make_dir):
  output = make_dir(tmp_path)
  image = os.path.join(pairs['old'], 'images', 'im0000.png')
  argv = {
      'build-data': build_argv(pairs['old'], output),
      'predict': ['predict', image, '--model-dir', model_dir,
                  '--output-dir', output],
      'train': ['train', '--model-dir', output, '--train',
                os.path.join(os.path.dirname(model_dir), 'records',
                             'train-*'), '--num-classes', '3',
                '--backbone', json.dumps(TINY), '--output-stride', '8',
                '--steps', '1'],
  }[command]
  assert cli.main(argv) == 1
  message = error_line(capsys.readouterr().err)
  what = 'model directory' if command == 'train' else 'output directory'
  assert message.startswith('segmentation %s: error: cannot write to %s %s: '
                            % (command, what, output)), message
  if make_dir is _a_file:
    assert message.endswith(': it is a file, not a directory')


def _file_size_limit(size):
  """A preexec_fn: files of the child may not grow past `size` bytes, and
  writing more fails with EFBIG instead of killing it (a full disk)."""

  def limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

  return limit


def test_full_disk_during_build_data_keeps_old_records(pairs, tmp_path):
  output = str(tmp_path / 'records')
  assert cli.main(build_argv(pairs['old'], output)) == 0
  before = snapshot(output)
  process = python(build_argv(pairs['new'], output, '--num-shards', '1'),
                   preexec_fn=_file_size_limit(1 << 16))
  _, err = process.communicate(timeout=TIMEOUT)
  assert process.returncode == 1, err
  message = error_line(err)
  assert message.startswith('segmentation build-data: error: cannot write '
                            'to output directory %s: ' % output), message
  assert 'File too large' in message
  assert snapshot(output) == before  # No temporary left, old records whole.


def test_full_disk_during_predict_leaves_no_partial_file(pairs, model_dir,
                                                         tmp_path):
  output = str(tmp_path / 'out')
  process = python(['predict', os.path.join(pairs['old'], 'images',
                                            'im0000.png'),
                    '--model-dir', model_dir, '--output-dir', output],
                   preexec_fn=_file_size_limit(100))
  _, err = process.communicate(timeout=TIMEOUT)
  assert process.returncode == 1, err
  assert error_line(err) == ('segmentation predict: error: cannot write to '
                             'output directory %s: File too large' % output)
  assert os.listdir(output) == []


def test_full_disk_while_training_saves_names_the_model_directory(
    model_dir, tmp_path):
  # The tiny model's checkpoint is ~45 KB: its save hits the limit.
  output = str(tmp_path / 'model')
  process = python(['train', '--model-dir', output, '--train',
                    os.path.join(os.path.dirname(model_dir), 'records',
                                 'train-*'), '--num-classes', '3',
                    '--backbone', json.dumps(TINY), '--head', 'fcn',
                    '--depth', '8', '--output-stride', '8', '--steps', '1',
                    '--batch-size', '2', '--crop-size', str(SIZE),
                    '--no-progress'], preexec_fn=_file_size_limit(20000))
  _, err = process.communicate(timeout=TIMEOUT)
  assert process.returncode == 1, err
  assert error_line(err) == ('segmentation train: error: cannot write to '
                             'model directory %s: File too large' % output)
  assert not glob.glob(os.path.join(output, 'model.ckpt-*'))
