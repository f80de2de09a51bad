"""Atomic sharded TFRecord writing, for both applications.

    from densenet.datasets import records
    paths, counts = records.write_shards(output_dir, 'train',
                                         [shard_0_records, shard_1_records])

A split is written as `<split>-<i>-of-<n>.tfrecord` shards. They are first
written into a temporary directory `.<split>-tmp-<id>` inside `output_dir`
(which no `<split>-*` glob matches) and counted back from disk. When every
shard is complete, the temporary directory is renamed `.<split>-commit-<id>`
with a manifest of its files: that rename is the commit. The new files are
then moved into place and the shards of an earlier run of that split (any
shard count) removed, in one short loop of renames.

A run killed before its commit leaves only its temporary directory: the
previous shards stay untouched, and the next run of the split removes it. A
run killed after its commit, inside that loop of renames (microseconds),
leaves its commit directory: the next run of the split finishes the move
first (rolls forward), so the directory again holds exactly the new shards.
A run that raises (a bad record, a failed check) lands nothing.

Reading: the readers register the shards they read (`reading`), and the
functions that iterate over them (`names_corrupt_shards`) turn TensorFlow's
`DataLossError: corrupted record at N` into a `CorruptShardError` that
names the shard and the offset.
"""

import collections
import functools
import glob
import json
import os
import re
import shutil
import uuid

import tensorflow as tf

SUFFIX = '.tfrecord'
MANIFEST = 'MANIFEST.json'


def shard_name(split, index, num_shards):
  """File name of shard `index` of `num_shards` of `split`."""
  return '%s-%05d-of-%05d%s' % (split, index, num_shards, SUFFIX)


def _split_shards(output_dir, split):
  """Existing final shards of `split`, any shard count."""
  return glob.glob(os.path.join(
      glob.escape(output_dir),
      '%s-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]%s'
      % (glob.escape(split), SUFFIX)))


_SHARD = re.compile(r'^(.+)-(\d{5})-of-(\d{5})%s$' % re.escape(SUFFIX))


def parse_shard_name(path):
  """`(split, index, num_shards)` of a `shard_name` path, else None."""
  match = _SHARD.match(os.path.basename(path))
  return match and (match.group(1), int(match.group(2)), int(match.group(3)))


def check_complete(paths):
  """Raises ValueError unless the shards among `paths` form whole splits.

  Files named like `shard_name` are grouped by directory and split: each
  split must have one shard count and every shard of it. Other files are
  not checked. A split found otherwise was being replaced when its writer
  was killed, or mixes files of several runs.

  Raises:
    ValueError: Naming the split, the shards found and what to do.
  """
  found = collections.defaultdict(set)
  for path in paths:
    shard = parse_shard_name(path)
    if shard:
      found[os.path.dirname(path), shard[0]].add(shard[1:])
  for (directory, split), shards in sorted(found.items()):
    counts = sorted({n for _, n in shards})
    if len(counts) > 1 or len(shards) != counts[0]:
      raise ValueError(
          '%s: the shards of split %r are not one whole set (%d files, of '
          '%s): a run writing it was killed while its new shards landed, or '
          'files of several runs are mixed; write the split again.' % (
              directory or '.', split, len(shards),
              ' and '.join('%d' % n for n in counts)))


def count_records(paths):
  """Number of records in the TFRecord files `paths` (read from disk)."""
  with tf.init_scope():  # Eager, even when called inside a graph.
    return sum(1 for _ in tf.data.TFRecordDataset(list(paths)))


def _land(output_dir, split, commit_dir):
  """Moves a committed run's files into `output_dir` (idempotent).

  Removes the split's shards that the run did not write, moves the rest of
  the commit directory's files (named by its manifest) into place, then
  removes the commit directory.
  """
  with open(os.path.join(commit_dir, MANIFEST)) as f:
    names = json.load(f)
  for old in _split_shards(output_dir, split):
    if os.path.basename(old) not in names:
      os.remove(old)
  for name in names:
    source = os.path.join(commit_dir, name)
    if os.path.exists(source):  # Else moved before a kill.
      os.replace(source, os.path.join(output_dir, name))
  shutil.rmtree(commit_dir, ignore_errors=True)


def recover(output_dir, split):
  """Finishes a committed run of `split` and removes uncommitted leftovers.

  Returns:
    `(rolled_forward, removed)`: the commit and temporary directories found.
  """
  prefix = os.path.join(glob.escape(output_dir), glob.escape('.' + split))
  committed = sorted(glob.glob(prefix + '-commit-*'))
  for commit_dir in committed:
    if os.path.isfile(os.path.join(commit_dir, MANIFEST)):
      _land(output_dir, split, commit_dir)
    else:  # Not possible from write_shards; never trust it.
      shutil.rmtree(commit_dir, ignore_errors=True)
  temporaries = glob.glob(prefix + '-tmp-*')
  for leftover in temporaries:  # Of a killed run.
    shutil.rmtree(leftover, ignore_errors=True)
  return committed, temporaries


def _without_empty_shards(directory, split, names, counts):
  """Removes the empty shards in `directory` and renumbers the others
  (`<split>-<i>-of-<n>` with n the shards that hold records), so that a
  split never has more shards than records; a split of no record keeps one
  empty shard. Returns the new `(names, counts)`."""
  kept = [(name, count) for name, count in zip(names, counts) if count]
  if len(kept) == len(names):
    return names, counts
  kept = kept or [(names[0], 0)]
  for name in set(names) - {name for name, _ in kept}:
    os.remove(os.path.join(directory, name))
  renamed = [shard_name(split, i, len(kept)) for i in range(len(kept))]
  for (old, _), new in zip(kept, renamed):
    os.rename(os.path.join(directory, old), os.path.join(directory, new))
  return renamed, [count for _, count in kept]


def write_shards(output_dir, split, shards, finish=None):
  """Writes one TFRecord file per iterable of `shards`, atomically.

  Args:
    output_dir: Directory of the shards (created if missing).
    split: Split name, the prefix of the file names, e.g. 'train'.
    shards: A list of iterables of serialized records (bytes), one per
      shard, consumed in order (so they may share one iterator).
    finish: Optional `finish(counts)` called once every shard is written and
      counted back, before anything lands: it may raise to abort (nothing
      lands), and returns None or a dict {file name: bytes} of side files
      (not matched by `<split>-*`) that land with the shards.

  Returns:
    `(paths, counts)`: the shard paths and the records counted back from
    each file. Shards that received no record are dropped and the others
    numbered `-of-<shards with records>` (never more shards than records;
    one empty shard for a split of none).

  Raises:
    ValueError: If `shards` is empty. Whatever an iterable or `finish`
      raises stops the writing; the earlier shards of the split are then
      left as they were. OSError where `output_dir` cannot be written.
  """
  if not shards:
    raise ValueError('shards must hold at least one iterable of records.')
  os.makedirs(output_dir, exist_ok=True)
  recover(output_dir, split)
  run_id = uuid.uuid4().hex
  temporary = os.path.join(output_dir, '.%s-tmp-%s' % (split, run_id))
  os.makedirs(temporary)
  try:
    names = [shard_name(split, i, len(shards)) for i in range(len(shards))]
    for name, shard in zip(names, shards):
      with tf.io.TFRecordWriter(os.path.join(temporary, name)) as writer:
        for record in shard:
          writer.write(record)
    counts = [count_records([os.path.join(temporary, n)]) for n in names]
    names, counts = _without_empty_shards(temporary, split, names, counts)
    extras = (finish(counts) if finish else None) or {}
    for name, content in extras.items():
      if name.startswith(split + '-') or os.path.basename(name) != name:
        raise ValueError('side file %r must be a plain name not starting '
                         'with %r.' % (name, split + '-'))
      with open(os.path.join(temporary, name), 'wb') as f:
        f.write(content)
    with open(os.path.join(temporary, MANIFEST), 'w') as f:
      json.dump(sorted(extras) + names, f)
    commit_dir = os.path.join(output_dir, '.%s-commit-%s' % (split, run_id))
    os.rename(temporary, commit_dir)  # The commit.
    temporary = commit_dir
    _land(output_dir, split, commit_dir)
  finally:
    if os.path.basename(temporary).startswith('.%s-tmp-' % split):
      shutil.rmtree(temporary, ignore_errors=True)
  return [os.path.join(output_dir, n) for n in names], counts


# Reading: a corrupted shard named. ----------------------------------------

_read = {}  # Shard path -> when (a count) this process last began reading it.
_reads = [0]


class CorruptShardError(OSError):
  """A TFRecord shard that does not read back (exit status 1).

  Attributes:
    path: The shard.
    offset: The byte offset TensorFlow reported, or None.
  """

  def __init__(self, path, offset, reason):
    self.path, self.offset = path, offset
    super().__init__('corrupted TFRecord shard %s: %s; write it again (its '
                     'split\'s records) or remove it.' % (path, reason))


def reading(paths):
  """Records that this process reads the shards `paths` (so that a
  `DataLossError` can be traced to one of them); returns `paths`."""
  for path in paths:
    _reads[0] += 1
    _read[os.path.abspath(path)] = _reads[0]
  return paths


_OFFSET = re.compile(r'(corrupted|truncated) record at (\d+)')


def find_corrupt(paths):
  """The first of `paths` that does not read to its end, as a
  `CorruptShardError`, or None. Reads every record of each file."""
  with tf.init_scope():
    for path in paths:
      if not os.path.isfile(path):
        continue
      try:
        tf.data.TFRecordDataset(path).reduce(
            tf.constant(0, tf.int64), lambda count, _: count + 1)
      except tf.errors.DataLossError as e:
        message = e.message or str(e)
        match = _OFFSET.search(message)
        if match:
          reason = '%s record at byte %s' % match.groups()
          return CorruptShardError(path, int(match.group(2)), reason)
        return CorruptShardError(path, None, message.strip().splitlines()[0])
  return None


def names_corrupt_shards(function):
  """Decorates a function that reads shards (`reading`): a `DataLossError`
  it raises becomes the `CorruptShardError` of the shard that does not
  read (found by reading each shard it registered), naming it and the byte
  offset; other errors pass unchanged."""

  @functools.wraps(function)
  def wrapper(*args, **kwargs):
    started = _reads[0]
    try:
      return function(*args, **kwargs)
    except tf.errors.DataLossError as e:
      corrupt = find_corrupt(  # The shards this call read.
          [path for path, when in _read.items() if when > started])
      if corrupt is None:
        raise
      raise corrupt from e

  return wrapper
