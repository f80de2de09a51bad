"""Tests of densenet.datasets.records: the atomic sharded TFRecord writer."""

import glob
import os

import pytest

from densenet.datasets import records


def _records(prefix, count):
  return [('%s-%d' % (prefix, i)).encode() for i in range(count)]


def _read(paths):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return [r.numpy() for r in tf.data.TFRecordDataset(paths)]


def test_shards_replace_any_earlier_shard_count_and_count_back(tmp_path):
  output = str(tmp_path)
  paths, counts = records.write_shards(
      output, 'train', [_records('a', 3), _records('b', 2), _records('c', 1)])
  assert [os.path.basename(p) for p in paths] == [
      'train-00000-of-00003.tfrecord', 'train-00001-of-00003.tfrecord',
      'train-00002-of-00003.tfrecord']
  assert counts == [3, 2, 1]
  records.write_shards(output, 'val', [_records('v', 2)])
  # Two shards now: the three earlier ones are gone, 'val' is untouched.
  paths, counts = records.write_shards(
      output, 'train', [_records('x', 2), _records('y', 2)])
  assert counts == [2, 2]
  assert sorted(glob.glob(os.path.join(output, 'train-*'))) == sorted(paths)
  assert _read(sorted(paths)) == _records('x', 2) + _records('y', 2)
  assert _read(glob.glob(os.path.join(output, 'val-*'))) == _records('v', 2)
  assert sorted(os.listdir(output)) == [
      'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord',
      'val-00000-of-00001.tfrecord']


def test_a_failed_run_keeps_the_old_shards_and_is_cleaned_next_time(
    tmp_path):
  output = str(tmp_path)
  old, _ = records.write_shards(output, 'train', [_records('old', 2)])

  def broken():
    yield b'first'
    raise RuntimeError('killed')

  with pytest.raises(RuntimeError, match='killed'):
    records.write_shards(output, 'train', [_records('new', 3), broken()])
  assert glob.glob(os.path.join(output, 'train-*')) == old
  assert _read(old) == _records('old', 2)
  # A killed process leaves its temporary directory: no glob of the split
  # matches it, and the next run removes it.
  leftover = os.path.join(output, '.train-tmp-deadbeef')
  os.makedirs(leftover)
  open(os.path.join(leftover, 'train-00000-of-00001.tfrecord'), 'wb').close()
  assert glob.glob(os.path.join(output, 'train-*')) == old
  records.write_shards(output, 'train', [_records('next', 1)])
  assert sorted(os.listdir(output)) == ['train-00000-of-00001.tfrecord']
  with pytest.raises(ValueError, match='at least one'):
    records.write_shards(output, 'train', [])
