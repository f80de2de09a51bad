"""Fault injection (issue 22): each row breaks one thing, runs a command, and
checks the exit status, the message and what is on disk after.

Rows run in this process through `segmentation.cli.main` / `densenet.cli.main`
(capsys holds stdout and stderr); a row that needs another process (the
holder of a model directory's lock) starts it and bounds it in time. One
tiny segmentation model directory (trained to step 4, checkpoints 2 and 4),
its records, and an image folder with its TFRecords are built once per
module; every row works on copies. A new fault is a new row of `ROWS` (or of
`API_ROWS`, the same faults met through the Python API), not a new file.

Every row fails on the code before issue 22 (93684d1): there it exited 0
with a wrong or lost result, hung, or printed another message.
"""

import collections
import glob
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from densenet import cli as densenet_cli
from densenet.datasets import image_folder
from densenet.training import checkpoints as checkpoints_lib
from densenet.training import cluster
from densenet.weights import checkpoints as weights_lib
import segmentation
from segmentation import cli as segmentation_cli
from segmentation import options

# pylint: disable=g-bad-import-order
from test_faults_data import SIZE
from test_faults_data import TINY
from test_faults_data import write_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 60  # Seconds a helper process may live.


def strict_json(text):
  """`json.loads` that refuses NaN and Infinity (as other languages do)."""

  def refuse(constant):
    raise ValueError('not strict JSON: %s' % constant)

  return json.loads(text, parse_constant=refuse)


def train_argv(model_dir, pattern, steps, *flags):
  return ['train', '--model-dir', model_dir, '--train', pattern,
          '--num-classes', '3', '--backbone', json.dumps(TINY), '--head',
          'fcn', '--depth', '8', '--output-stride', '8', '--batch-size', '2',
          '--crop-size', str(SIZE), '--no-progress', '--steps', str(steps)
          ] + list(flags)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  """Records, a model trained to step 4 (checkpoints 2 and 4), an image
  folder (class a: 4 images, b: 1) and its TFRecords."""
  root = tmp_path_factory.mktemp('faults')
  pairs = write_pairs(str(root / 'pairs'), 4, seed=3)
  records = str(root / 'records')
  assert segmentation_cli.main([
      'build-data', '--image-dir', os.path.join(pairs, 'images'),
      '--label-dir', os.path.join(pairs, 'labels'), '--output-dir', records,
      '--splits', 'train', '--num-shards', '1']) == 0
  model = str(root / 'model')
  assert segmentation_cli.main(train_argv(
      model, os.path.join(records, 'train-*'), 4, '--checkpoint-every',
      '2')) == 0
  folder = root / 'folder'
  rng = np.random.RandomState(0)
  for name, count in (('a', 4), ('b', 1)):
    (folder / name).mkdir(parents=True)
    for i in range(count):
      Image.fromarray(rng.randint(0, 256, (16, 16, 3)).astype(
          np.uint8)).save(str(folder / name / ('%d.png' % i)))
  data_dir = str(root / 'data')
  image_folder.create_tfrecords(str(folder), data_dir, image_size=16,
                                validation_fraction=0.0)
  return collections.namedtuple('Workspace', 'pairs records model folder '
                                'data_dir')(pairs, records, model,
                                            str(folder), data_dir)


class Context(object):
  """What a row's functions share: the workspace, a fresh directory, paths
  made by `setup`, helper processes to stop, monkeypatch."""

  def __init__(self, workspace, tmp_path, monkeypatch):
    self.ws, self.tmp, self.monkeypatch = workspace, str(tmp_path), monkeypatch
    self.paths, self.processes = {}, []

  def copy_model(self):
    model = os.path.join(self.tmp, 'model')
    shutil.copytree(self.ws.model, model)
    self.paths['model'] = model
    return model

  def pattern(self):
    return os.path.join(self.ws.records, 'train-*')

  def holder(self, directory):
    """A process holding `directory`'s lock; returns its Popen."""
    process = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\n'
         'from densenet.training import lock\n'
         'lock.acquire(sys.argv[1])\n'
         'print("locked", flush=True)\n'
         'time.sleep(%d)' % TIMEOUT, directory], cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
        text=True)
    self.processes.append(process)
    ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
    assert ready and process.stdout.readline().strip() == 'locked'
    return process


def snapshot(directory):
  """{relative path: bytes} of every file under `directory`."""
  files = {}
  for folder, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        files[os.path.relpath(path, directory)] = f.read()
  return files


def checkpoint_steps(directory):
  return sorted(int(path.rsplit('-', 1)[1][:-len('.index')])
                for path in glob.glob(os.path.join(directory,
                                                   'model.ckpt-*.index')))


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def flip_byte(path, fraction=0.5):
  data = bytearray(open(path, 'rb').read())
  data[int(len(data) * fraction)] ^= 0xFF
  open(path, 'wb').write(bytes(data))


def truncate(path, size=100):
  with open(path, 'r+b') as f:
    f.truncate(size)


# --- Setups: each breaks one thing (and records paths for the command). ----


def missing_state_file(ctx):
  model = ctx.copy_model()
  ctx.paths['before'] = snapshot(model)
  os.remove(os.path.join(model, 'checkpoint'))


def stale_state_file(ctx):
  model = ctx.copy_model()
  older = os.path.join(model, 'model.ckpt-2')
  tf.compat.v1.train.update_checkpoint_state(model, older, [older])


def truncated_newest(ctx):
  model = ctx.copy_model()
  truncate(os.path.join(model, 'model.ckpt-4.data-00000-of-00001'))


def unreachable_worker(ctx):
  ctx.paths['port'] = free_port()
  ctx.monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'worker': ['localhost:%d' % free_port(),
                             'localhost:%d' % ctx.paths['port']]},
      'task': {'type': 'worker', 'index': 0}}))
  ctx.paths['model'] = os.path.join(ctx.tmp, 'cluster_model')
  ctx.paths['started'] = time.time()


def tf_config(text):
  def setup(ctx):
    ctx.monkeypatch.setenv('TF_CONFIG', text)
    ctx.paths['model'] = os.path.join(ctx.tmp, 'new_model')
  return setup


def live_lock(ctx):
  model = ctx.copy_model()
  ctx.paths['pid'] = ctx.holder(model).pid
  ctx.paths['before'] = snapshot(model)


def stale_lock(ctx):
  model = ctx.copy_model()
  process = ctx.holder(model)
  process.kill()  # SIGKILL: its lock file stays, its flock goes.
  process.wait(TIMEOUT)
  ctx.paths['pid'] = process.pid
  assert os.path.isfile(os.path.join(model, '.lock'))


def _corrupted_copy(ctx, source, name):
  """A copy of the records directory `source` as ctx.paths[name], one byte
  of its first training shard (ctx.paths['shard']) flipped."""
  ctx.paths[name] = os.path.join(ctx.tmp, name)
  shutil.copytree(source, ctx.paths[name])
  ctx.paths['shard'] = glob.glob(os.path.join(ctx.paths[name], 'train-*'))[0]
  flip_byte(ctx.paths['shard'])


def corrupted_records(ctx):
  _corrupted_copy(ctx, ctx.ws.records, 'records')
  ctx.paths['model'] = os.path.join(ctx.tmp, 'new_model')


def corrupted_classification_shard(ctx):
  _corrupted_copy(ctx, ctx.ws.data_dir, 'data')
  ctx.paths['train_dir'] = os.path.join(ctx.tmp, 'run')


def ignored_labels_only(ctx):
  """Records whose labels are all 255: no pixel counts, every metric is
  undefined (NaN before JSON)."""
  pairs = os.path.join(ctx.tmp, 'ignored')
  write_pairs(pairs, 2, seed=4)
  for path in glob.glob(os.path.join(pairs, 'labels', '*.png')):
    Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8), mode='L').save(path)
  ctx.paths['records'] = os.path.join(ctx.tmp, 'ignored_records')
  assert segmentation_cli.main([
      'build-data', '--image-dir', os.path.join(pairs, 'images'),
      '--label-dir', os.path.join(pairs, 'labels'), '--output-dir',
      ctx.paths['records'], '--splits', 'val']) == 0


def one_bad_pair_of_four(ctx):
  pairs = os.path.join(ctx.tmp, 'pairs')
  write_pairs(pairs, 4, seed=5)
  with open(os.path.join(pairs, 'images', 'im0001.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n cut short')
  ctx.paths['pairs'] = pairs
  ctx.paths['records'] = os.path.join(ctx.tmp, 'records')


def nothing(ctx):
  ctx.paths['model'] = os.path.join(ctx.tmp, 'new_model')


def trained_model(ctx):
  ctx.paths['model'] = ctx.ws.model


# --- After: what must be on disk (and in the output) after the command. ---


def resumed_and_kept_the_others(ctx, out, err):
  model = ctx.paths['model']
  assert 'Trained from step 4 to 6' in out
  assert checkpoint_steps(model) == [2, 4, 5, 6]
  after = snapshot(model)
  for name, content in ctx.paths['before'].items():
    if name.startswith('model.ckpt-'):  # Never deleted nor overwritten.
      assert after[name] == content, name
  assert not os.path.exists(os.path.join(model, '.lock'))


def evaluated_step(step):
  def after(ctx, out, err):
    assert strict_json(out)['global_step'] == step
  return after


def created_nothing(ctx, out, err):
  assert not os.path.exists(ctx.paths['model'])


def waited_and_said_so(ctx, out, err):
  created_nothing(ctx, out, err)
  assert ('waiting for worker 1 at localhost:%d' % ctx.paths['port']) in err
  assert time.time() - ctx.paths['started'] < 30


def unchanged(ctx, out, err):
  assert snapshot(ctx.paths['model']) == ctx.paths['before']


def took_over(ctx, out, err):
  assert 'Trained from step 4 to 5' in out
  assert checkpoint_steps(ctx.paths['model']) == [2, 4, 5]
  assert not os.path.exists(os.path.join(ctx.paths['model'], '.lock'))


def no_checkpoint(key):
  def after(ctx, out, err):
    assert not glob.glob(os.path.join(ctx.paths[key], 'model.ckpt-*'))
    assert not os.path.exists(os.path.join(ctx.paths[key], '.lock'))
  return after


def undefined_metrics_are_null(ctx, out, err):
  results = strict_json(out)
  assert results['num_pixels'] == 0
  assert results['mean_iou'] is None and results['pixel_accuracy'] is None
  assert set(results['per_class_iou'].values()) == {None}


def three_shards(ctx, out, err):
  assert 'train: 3 records in 3 shards' in out
  shards = sorted(glob.glob(os.path.join(ctx.paths['records'], 'train-*')))
  assert [os.path.basename(p) for p in shards] == [
      'train-%05d-of-00003.tfrecord' % i for i in range(3)]
  assert [sum(1 for _ in tf.data.TFRecordDataset(p)) for p in shards] == [
      1, 1, 1]


def nothing_after(ctx, out, err):
  del ctx, out, err


def no_dataset_written(ctx, out, err):
  assert not os.path.exists(os.path.join(ctx.tmp, 'data', 'metadata.json'))


# --- The table. ----------------------------------------------------------

Row = collections.namedtuple('Row', ['case', 'name', 'setup', 'argv',
                                     'status', 'message', 'after'])


def _seg(argv):
  return lambda ctx: (segmentation_cli.main, argv(ctx))


def _densenet(argv):
  return lambda ctx: (densenet_cli.main, argv(ctx))


def _evaluate(ctx, *flags):
  return ['evaluate', '--model-dir', ctx.paths['model'], '--eval',
          ctx.pattern(), '--json'] + list(flags)


def _train(ctx, steps, *flags):
  return train_argv(ctx.paths['model'], ctx.pattern(), steps, *flags)


ROWS = [
    Row(1, 'state file missing: resume from the newest on disk',
        missing_state_file,
        _seg(lambda ctx: _train(ctx, 6, '--checkpoint-every', '1')), 0,
        r'has no `checkpoint` state file; using model\.ckpt-4, the newest '
        r'complete checkpoint on disk', resumed_and_kept_the_others),
    Row(1, 'state file stale: evaluate the newest',
        stale_state_file, _seg(_evaluate), 0,
        r'state file naming model\.ckpt-2, not the newest; using '
        r'model\.ckpt-4', evaluated_step(4)),
    Row(2, 'unreachable worker: give up after --cluster-timeout',
        unreachable_worker,
        _seg(lambda ctx: _train(ctx, 1, '--cluster-timeout', '3')), 1,
        r'error: the 2-worker cluster of TF_CONFIG did not form in 3 s \(the '
        r'cluster timeout\): no answer from worker 1 at localhost:\d+ '
        r'\(connection refused\)', waited_and_said_so),
    Row(3, 'initial_output_stride in a segmentation backbone', nothing,
        _seg(lambda ctx: train_argv(ctx.paths['model'], ctx.pattern(), 1) + [
            '--backbone', json.dumps(dict(TINY, initial_output_stride=2))]),
        2, r'argument --backbone: backbone initial_output_stride=2 cannot be '
        r'used for segmentation: .*stride-4 features', created_nothing),
    Row(5, 'eval scale nan', trained_model,
        _seg(lambda ctx: _evaluate(ctx, '--eval-scales', 'nan')), 2,
        r"--eval-scales: must be comma-separated numbers in \[0\.1, 4\] .*"
        r"got 'nan'", nothing_after),
    Row(5, 'eval scale inf', trained_model,
        _seg(lambda ctx: _evaluate(ctx, '--eval-scales', '1,inf')), 2,
        r"--eval-scales: must be .* \(scale s costs s\*\*2 times the time "
        r"and memory of scale 1\), got '1,inf'", nothing_after),
    Row(5, '--json with undefined metrics is strict JSON',
        ignored_labels_only,
        _seg(lambda ctx: ['evaluate', '--model-dir', ctx.ws.model, '--eval',
                          os.path.join(ctx.paths['records'], 'val-*'),
                          '--json']), 0, None, undefined_metrics_are_null),
    Row(6, '--validation-fraction empties a class', nothing,
        _densenet(lambda ctx: [
            'train', '--image-folder', ctx.ws.folder, '--data-dir',
            os.path.join(ctx.tmp, 'data'), '--train-dir',
            os.path.join(ctx.tmp, 'run'), '--image-size', '16',
            '--validation-fraction', '0.6']), 2,
        r'validation_fraction=0\.6 holds out every image of 1 class\(es\), '
        r'leaving them no training image: b \(1 image, all to validation\)',
        no_dataset_written),
    Row(8, 'second trainer on a model directory', live_lock,
        _seg(lambda ctx: _train(ctx, 6)), 2,
        r'error: .*/model is in use by another training run \(pid %(pid)d on '
        r'host .* since .*; lock file .*/model/\.lock\)', unchanged),
    Row(8, 'stale lock of a killed trainer', stale_lock,
        _seg(lambda ctx: _train(ctx, 5)), 0,
        r'/model: took over the lock of a run that is gone \(pid %(pid)d on '
        r'host ', took_over),
    Row(9, 'truncated newest .data: evaluate the previous one',
        truncated_newest, _seg(_evaluate), 0,
        r'checkpoint .*/model\.ckpt-4 is incomplete: '
        r'model\.ckpt-4\.data-00000-of-00001 has 100 bytes, \d+ were written '
        r'\(truncated\); using model\.ckpt-2', evaluated_step(2)),
    Row(9, 'truncated checkpoint named explicitly', truncated_newest,
        _seg(lambda ctx: _evaluate(ctx, '--checkpoint', os.path.join(
            ctx.paths['model'], 'model.ckpt-4'))), 2,
        r'error: checkpoint .*/model\.ckpt-4 is incomplete: model\.ckpt-4\.'
        r'data-00000-of-00001 has 100 bytes, \d+ were written \(truncated\); '
        r'the newest complete checkpoint there is .*/model\.ckpt-2\.',
        nothing_after),
    Row(10, 'corrupted segmentation shard', corrupted_records,
        _seg(lambda ctx: train_argv(ctx.paths['model'], os.path.join(
            ctx.paths['records'], 'train-*'), 1)), 1,
        r'error: corrupted TFRecord shard %(shard)s: corrupted record at byte '
        r'\d+; write it again', no_checkpoint('model')),
    Row(10, 'corrupted classification shard', corrupted_classification_shard,
        _densenet(lambda ctx: [
            'train', '--data-dir', ctx.paths['data'], '--train-dir',
            ctx.paths['train_dir'], '--model', 'densenet_bc_10_k4',
            '--batch-size', '2', '--num-steps', '1', '--no-progress']), 1,
        r'error: corrupted TFRecord shard %(shard)s: corrupted record at byte '
        r'\d+', no_checkpoint('train_dir')),
    Row(11, 'TF_CONFIG not JSON',
        tf_config('{"cluster": {"worker": ["a:1" "b:2"]}}'),
        _seg(lambda ctx: _train(ctx, 1)), 2,
        r"error: TF_CONFIG is not valid JSON: Expecting ',' delimiter at line "
        r'1, column 31: \{"cluster": \{"worker": \["a:1" <-- here',
        created_nothing),
    Row(11, 'TF_CONFIG without task',
        tf_config('{"cluster": {"worker": ["a:1", "b:2"]}}'),
        _seg(lambda ctx: _train(ctx, 1)), 2,
        r'error: TF_CONFIG has no "task"', created_nothing),
    Row(11, 'TF_CONFIG task index out of range',
        tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, '
                  '"task": {"type": "worker", "index": 2}}'),
        _seg(lambda ctx: _train(ctx, 1)), 2,
        r"error: TF_CONFIG's task index 2 is out of range: its cluster has 2 "
        r"'worker' task\(s\) \(indexes 0 to 1\)", created_nothing),
    Row(16, 'never more shards than records', one_bad_pair_of_four,
        _seg(lambda ctx: [
            'build-data', '--image-dir', os.path.join(ctx.paths['pairs'],
                                                      'images'),
            '--label-dir', os.path.join(ctx.paths['pairs'], 'labels'),
            '--output-dir', ctx.paths['records'], '--splits', 'train',
            '--num-shards', '4']), 0, None, three_shards),
    Row(17, 'eval scale 100', trained_model,
        _seg(lambda ctx: _evaluate(ctx, '--eval-scales', '100')), 2,
        r"--eval-scales: must be comma-separated numbers in \[0\.1, 4\]",
        nothing_after),
]


@pytest.mark.parametrize('row', ROWS, ids=lambda row: 'case%d-%s' % (
    row.case, row.name.split(':')[0].replace(' ', '_')))
def test_fault(row, workspace, tmp_path, monkeypatch, capsys):
  ctx = Context(workspace, tmp_path, monkeypatch)
  try:
    row.setup(ctx)
    capsys.readouterr()  # What the setup printed.
    main, argv = row.argv(ctx)
    try:
      status = main(argv)
    except SystemExit as e:  # argparse's usage errors.
      status = e.code
    out, err = capsys.readouterr()
    assert 'Traceback' not in err
    assert status == row.status, err[-3000:]
    if row.message:
      pattern = row.message % {
          k: re.escape(v) if isinstance(v, str) else v
          for k, v in ctx.paths.items() if isinstance(v, (int, str))}
      errors = [line for line in err.splitlines() if ': error: ' in line]
      assert len(errors) == (row.status != 0), err[-3000:]
      assert any(re.search(pattern, line) for line in err.splitlines()), (
          pattern, err[-3000:])
    row.after(ctx, out, err)
  finally:
    for process in ctx.processes:
      process.kill()
      process.wait(TIMEOUT)


# --- The same faults through the Python API. -----------------------------

API_ROWS = [
    (5, lambda: options.check_scales([1.0, float('nan')]),
     r'eval_scales must be finite numbers in \[0\.1, 4\], got nan: a scale '
     r'multiplies the image\'s height and width'),
    (17, lambda: options.check_scales([100]), r'got 100: .*\(4: 16x\)'),
    (11, lambda: cluster.read_tf_config({'TF_CONFIG': '{"cluster": 3}'}),
     r'TF_CONFIG\'s "cluster" must map job names'),
    (3, lambda: segmentation.build_model(
        np.zeros([1, 32, 32, 3], np.float32), 3,
        backbone=dict(TINY, initial_output_stride=1)),
     r'backbone initial_output_stride=1 cannot be used for segmentation'),
    (12, lambda: segmentation.build_model(np.zeros([32, 32, 3]), 3),
     r'inputs must be a rank-4 \[batch, height, width, channels\] Tensor, '
     r'got shape \(32, 32, 3\)'),
]


@pytest.mark.parametrize('case,call,message', API_ROWS,
                         ids=['case%d' % row[0] for row in API_ROWS])
def test_api_fault(case, call, message):
  del case
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match=message):
      call()


def test_build_model_takes_numpy_like_the_nets():
  """Case 12: numpy arrays and nested lists are made constants."""
  images = np.random.RandomState(0).uniform(-1, 1, (2, 32, 32, 3))
  outputs = {}
  for kind, value in (('numpy', lambda: images),
                      ('list', images.tolist),
                      ('tensor', lambda: tf.constant(images, tf.float32))):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(0)
      logits, end_points = segmentation.build_model(
          value(), 3, backbone=TINY, head='deeplabv3plus', output_stride=8,
          depth=8)
      assert logits.shape.as_list() == [2, 32, 32, 3]
      assert logits.dtype == tf.float32
      assert end_points['logits'].shape.as_list() == [2, 8, 8, 3]  # Decoder.
      with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        outputs[kind] = session.run(logits)
  np.testing.assert_allclose(outputs['numpy'], outputs['tensor'], atol=1e-5)
  np.testing.assert_allclose(outputs['list'], outputs['tensor'], atol=1e-5)


def test_manager_resumes_prunes_only_its_own_and_sets_aside(tmp_path):
  """Cases 1 and 9 at the checkpoint manager: a missing state file, a
  truncated newest checkpoint, and max_to_keep over found checkpoints."""
  directory = str(tmp_path)
  step = tf.Variable(0, dtype=tf.int64)
  weights = tf.Variable(tf.zeros([64]))
  variables = {'global_step': step, 'w': weights}
  lines = []

  def manager(max_to_keep):
    return checkpoints_lib.NameBasedCheckpointManager(
        variables, directory, max_to_keep=max_to_keep, log=lines.append)

  def save(m, value):
    step.assign(value)
    weights.assign(tf.fill([64], float(value)))
    return m.save(value)

  first = manager(3)
  for value in (2, 4, 6):
    save(first, value)
  assert checkpoint_steps(directory) == [2, 4, 6]
  # A run resuming with the state file: its list is the run's own, pruned.
  second = manager(3)
  assert second.restore().endswith('model.ckpt-6') and lines == []
  save(second, 7)
  assert checkpoint_steps(directory) == [4, 6, 7]

  os.remove(os.path.join(directory, 'checkpoint'))
  third = manager(2)
  step.assign(0)
  assert third.restore().endswith('model.ckpt-7')
  assert int(step.numpy()) == 7
  assert lines == ['%s has no `checkpoint` state file; using model.ckpt-7, '
                   'the newest complete checkpoint on disk.' % directory]
  for value in (8, 9, 10):
    save(third, value)
  # Only its own saves were pruned (8); those it found stay.
  assert checkpoint_steps(directory) == [4, 6, 7, 9, 10]

  truncate(os.path.join(directory, 'model.ckpt-10.data-00000-of-00001'), 10)
  del lines[:]
  fourth = manager(2)
  assert fourth.restore().endswith('model.ckpt-9')
  assert np.all(weights.numpy() == 9.0)
  assert lines[0].startswith(
      'checkpoint %s/model.ckpt-10 is incomplete: model.ckpt-10.data-00000-'
      'of-00001 has 10 bytes, ' % directory)
  assert lines[1] == ('%s: set aside the files of model.ckpt-10, which this '
                      'run did not write, as model.ckpt-10.*.incomplete.' %
                      directory)
  assert sorted(os.path.basename(p) for p in glob.glob(
      os.path.join(directory, '*.incomplete'))) == [
          'model.ckpt-10.data-00000-of-00001.incomplete',
          'model.ckpt-10.index.incomplete',
          'model.ckpt-10.manifest.json.incomplete']
  save(fourth, 10)
  assert checkpoint_steps(directory) == [4, 6, 7, 9, 10]
  weights_lib.check_complete(os.path.join(directory, 'model.ckpt-10'))
  # A changed byte (same size) is caught by the CRC.
  flip_byte(os.path.join(directory, 'model.ckpt-9.data-00000-of-00001'))
  with pytest.raises(weights_lib.IncompleteCheckpointError,
                     match=r'model\.ckpt-9\.data-00000-of-00001 differs from '
                     r'what was written \(CRC-32\)'):
    weights_lib.reader(os.path.join(directory, 'model.ckpt-9'))



def test_manager_in_a_relative_directory(tmp_path, monkeypatch):
  """A relative model directory (`--model-dir runs/x`) records file names
  relative to it, so later commands find its checkpoints (TensorFlow took
  bare names relative to the working directory: '../../model.ckpt-3')."""
  monkeypatch.chdir(tmp_path)
  variables = {'v': tf.Variable(1.0)}
  for directory in (os.path.join('runs', 'x'), str(tmp_path / 'abs')):
    manager = checkpoints_lib.NameBasedCheckpointManager(variables,
                                                         directory)
    manager.save(3)
    state = tf.train.get_checkpoint_state(directory)
    assert os.path.basename(state.model_checkpoint_path) == 'model.ckpt-3'
    with open(os.path.join(directory, 'checkpoint')) as f:
      assert f.readline().strip() == 'model_checkpoint_path: "model.ckpt-3"'
    assert tf.train.latest_checkpoint(directory) == os.path.join(
        directory, 'model.ckpt-3')
