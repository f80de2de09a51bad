"""Atomic sharded TFRecord writing, for both applications.

    from densenet import records
    paths, counts = records.write_shards(output_dir, 'train',
                                         [shard_0_records, shard_1_records])

A split is written as `<split>-<i>-of-<n>.tfrecord` shards. They are first
written into a temporary directory `.<split>-tmp-<id>` inside `output_dir`
(which no `<split>-*` glob matches), counted back from disk, and only when
every shard is complete moved into place, the shards of an earlier run of that
split (any shard count) removed in the same step. A killed run leaves only its
temporary directory, removed by the next run of the split; the previous
shards stay untouched until then.
"""

import glob
import os
import shutil
import uuid

import tensorflow as tf

SUFFIX = '.tfrecord'


def shard_name(split, index, num_shards):
  """File name of shard `index` of `num_shards` of `split`."""
  return '%s-%05d-of-%05d%s' % (split, index, num_shards, SUFFIX)


def _split_shards(output_dir, split):
  """Existing final shards of `split`, any shard count."""
  return glob.glob(os.path.join(
      output_dir, '%s-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]%s'
      % (split, SUFFIX)))


def count_records(paths):
  """Number of records in the TFRecord files `paths` (read from disk)."""
  with tf.init_scope():  # Eager, even when called inside a graph.
    return sum(1 for _ in tf.data.TFRecordDataset(list(paths)))


def write_shards(output_dir, split, shards):
  """Writes one TFRecord file per iterable of `shards`, atomically.

  Args:
    output_dir: Directory of the shards (created if missing).
    split: Split name, the prefix of the file names, e.g. 'train'.
    shards: A list of iterables of serialized records (bytes), one per
      shard, consumed in order (so they may share one iterator).

  Returns:
    `(paths, counts)`: the shard paths and the records counted back from
    each file.

  Raises:
    ValueError: If `shards` is empty. Whatever an iterable raises stops the
      writing; the earlier shards of the split are then left as they were.
  """
  if not shards:
    raise ValueError('shards must hold at least one iterable of records.')
  os.makedirs(output_dir, exist_ok=True)
  prefix = os.path.join(output_dir, '.%s-tmp-' % split)
  for leftover in glob.glob(glob.escape(prefix) + '*'):  # Of a killed run.
    shutil.rmtree(leftover, ignore_errors=True)
  temporary = prefix + uuid.uuid4().hex
  os.makedirs(temporary)
  try:
    names = [shard_name(split, i, len(shards)) for i in range(len(shards))]
    for name, shard in zip(names, shards):
      with tf.io.TFRecordWriter(os.path.join(temporary, name)) as writer:
        for record in shard:
          writer.write(record)
    counts = [count_records([os.path.join(temporary, n)]) for n in names]
    paths = [os.path.join(output_dir, n) for n in names]
    for old in _split_shards(output_dir, split):
      if old not in paths:
        os.remove(old)
    for name, path in zip(names, paths):
      os.replace(os.path.join(temporary, name), path)
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
  return paths, counts
