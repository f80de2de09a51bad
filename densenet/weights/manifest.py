"""Whether a checkpoint is complete: its manifest, checked before it is read.

`checkpoints.save` records what the files of a checkpoint must be:
`<prefix>.manifest.json` holds the byte size and CRC-32 of `<prefix>.index`
and of each `<prefix>.data-*`. It lands before the index, which lands last,
so every checkpoint of ours with an index has its manifest. `check(prefix)`
compares the files on disk with it and raises `IncompleteCheckpointError`
naming the first file that differs (truncated, missing or altered). A
checkpoint without a manifest (TF's `Saver`, pudae's, ours before 0.3) gets
the check its index allows: its data files must hold at least the bytes of
its numeric tensors.

`newest_complete(directory)` finds a directory's checkpoints from the
`*.index` files on disk, not only from the `checkpoint` state file (which
may be missing, stale, or name the paths of another machine), and returns
the newest one that passes `check`, with one line for each thing it had to
work around (`Found`).
"""

import collections
import glob
import json
import os
import re
import zlib

MANIFEST_SUFFIX = '.manifest.json'
FORMAT = 'densenet-checkpoint-manifest'
STATE_FILE = 'checkpoint'  # TF's state file (`tf.train.latest_checkpoint`).
_CHUNK = 1 << 20
_STEP = re.compile(r'-(\d+)$')
# Files of a prefix that the manifest covers: the index and the data shards.
_COVERED = re.compile(r'^(index|data-\d+-of-\d+)$')


class IncompleteCheckpointError(ValueError):
  """A checkpoint whose files are not what was written (or not readable).

  Attributes:
    prefix: The checkpoint prefix.
    file: The file found wrong (None when the reason is not one file).
    reason: What is wrong with it, in words.
  """

  def __init__(self, prefix, reason, file=None):  # pylint: disable=redefined-builtin
    self.prefix, self.reason, self.file = prefix, reason, file
    super().__init__('checkpoint %s is incomplete: %s.' % (prefix, reason))


def _crc32(path):
  crc = 0
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(_CHUNK), b''):
      crc = zlib.crc32(chunk, crc)
  return crc


def files_of(prefix):
  """{suffix: path} of the index and data files of `prefix` on disk."""
  found = {}
  for path in glob.glob(glob.escape(prefix) + '.*'):
    suffix = path[len(prefix) + 1:]
    if _COVERED.match(suffix):
      found[suffix] = path
  return found


def write(prefix):
  """Writes `<prefix>.manifest.json` describing the files of `prefix`.

  Returns:
    The manifest's path.
  """
  files = {suffix: {'bytes': os.path.getsize(path), 'crc32': _crc32(path)}
           for suffix, path in sorted(files_of(prefix).items())}
  path = prefix + MANIFEST_SUFFIX
  with open(path, 'w', encoding='utf-8') as f:
    json.dump({'format': FORMAT, 'version': 1, 'files': files}, f,
              indent=1, sort_keys=True)
  return path


def read(prefix):
  """The `files` of `prefix`'s manifest, or None if it has none."""
  path = prefix + MANIFEST_SUFFIX
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      manifest = json.load(f)
    files = manifest['files']
    if manifest.get('format') != FORMAT or not isinstance(files, dict):
      raise ValueError('not a %s' % FORMAT)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise IncompleteCheckpointError(
        prefix, 'its manifest %s is unreadable (%s)' % (
            os.path.basename(path), e), path) from e
  return files


_checked = {}  # prefix -> the (name, size, mtime) of its files when checked.


def _signature(prefix):
  paths = sorted(files_of(prefix).values()) + [prefix + MANIFEST_SUFFIX]
  signature = []
  for path in paths:
    try:
      status = os.stat(path)
    except OSError:
      continue
    signature.append((path, status.st_size, status.st_mtime_ns))
  return tuple(signature)


def check(prefix):
  """Raises `IncompleteCheckpointError` unless `prefix`'s files are whole.

  With a manifest: every file it lists exists with its size and CRC-32.
  Without: the index reads and the data files hold at least the bytes of
  the numeric tensors it lists. A checkpoint already checked whose files
  have not changed since (size, modification time) is not read again.
  """
  signature = _signature(prefix)
  if _checked.get(prefix) == signature:
    return
  expected = read(prefix)
  if expected is None:
    _check_without_manifest(prefix)
  else:
    for suffix, record in sorted(expected.items()):
      name = os.path.basename(prefix) + '.' + suffix
      path = prefix + '.' + suffix
      if not os.path.isfile(path):
        raise IncompleteCheckpointError(prefix, '%s is missing' % name, path)
      size = os.path.getsize(path)
      if size != record['bytes']:
        raise IncompleteCheckpointError(
            prefix, '%s has %d bytes, %d were written (%s)' % (
                name, size, record['bytes'],
                'truncated' if size < record['bytes'] else 'grown'), path)
      if _crc32(path) != record['crc32']:
        raise IncompleteCheckpointError(
            prefix, '%s differs from what was written (CRC-32)' % name, path)
  _checked[prefix] = signature


def _check_without_manifest(prefix):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    reader = tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as e:
    message = (getattr(e, 'message', None) or str(e)).strip().splitlines()
    raise IncompleteCheckpointError(
        prefix, 'its index %s.index does not read (%s)' % (
            os.path.basename(prefix), (message or [type(e).__name__])[0]),
        prefix + '.index') from e
  dtypes = reader.get_variable_to_dtype_map()
  needed = 0
  for name, shape in reader.get_variable_to_shape_map().items():
    dtype = dtypes.get(name)
    if dtype is not None and dtype.is_numpy_compatible and (
        dtype.as_numpy_dtype is not object):
      count = 1
      for dimension in shape:
        count *= dimension
      needed += count * dtype.size
  data = [path for suffix, path in sorted(files_of(prefix).items())
          if suffix.startswith('data-')]
  held = sum(os.path.getsize(path) for path in data)
  if held < needed:
    file = data[0] if len(data) == 1 else None
    what = (os.path.basename(file) if file else 'its data files (%s)' %
            ', '.join(os.path.basename(p) for p in data) or 'no data file')
    raise IncompleteCheckpointError(
        prefix, '%s has %d bytes, its index needs at least %d (truncated)' % (
            what, held, needed), file)


def _same_directory(first, second):
  try:
    return os.path.samefile(first or '.', second or '.')
  except OSError:
    return False


def step_of(prefix):
  """The global step in a `<name>-<step>` prefix, or None."""
  match = _STEP.search(prefix)
  return int(match.group(1)) if match else None


def on_disk(directory, basename=None):
  """The checkpoint prefixes with an index in `directory` (only
  `<basename>-<step>` ones if `basename` is given), newest first (by step,
  then by modification time)."""
  found = []
  pattern = '*.index' if basename is None else (
      glob.escape(basename) + '-*.index')
  for index in glob.glob(os.path.join(glob.escape(directory), pattern)):
    prefix = index[:-len('.index')]
    if os.path.basename(prefix).startswith('.'):  # A save in progress.
      continue
    step = step_of(prefix)
    if basename is not None and (step is None or os.path.basename(
        prefix) != '%s-%d' % (basename, step)):
      continue
    found.append((-1 if step is None else step, os.path.getmtime(index),
                  prefix))
  return [prefix for _, _, prefix in sorted(found, reverse=True)]


def state_file_checkpoint(directory):
  """The checkpoint the `checkpoint` state file names (a path), or None if
  there is no readable state file."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    state = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):
    return None
  return state.model_checkpoint_path if state else None


Found = collections.namedtuple('Found', ['prefix', 'incomplete', 'notes',
                                         'state_trusted'])
Found.__doc__ = """What `newest_complete` found in a directory.

prefix: the newest complete checkpoint, or None.
incomplete: `IncompleteCheckpointError`s of the newer checkpoints skipped.
notes: one line per thing worked around (a missing or stale state file, an
  incomplete checkpoint skipped), for the user.
state_trusted: whether the state file names `prefix` (then its list of
  checkpoints is the run's own).
"""


def newest_complete(directory, basename=None):
  """The newest complete checkpoint of `directory` (see `Found`; `basename`
  as in `on_disk`)."""
  incomplete, chosen = [], None
  for prefix in on_disk(directory, basename):
    try:
      check(prefix)
    except IncompleteCheckpointError as e:
      incomplete.append(e)
      continue
    chosen = prefix
    break
  named = state_file_checkpoint(directory)
  trusted = bool(named and chosen and os.path.isfile(named + '.index') and
                 os.path.samefile(named + '.index', chosen + '.index'))
  notes = []
  where = directory.rstrip(os.sep) or directory
  if chosen is None:
    if incomplete:
      notes.append('%s: no complete checkpoint (%s)' % (
          where, '; '.join(str(e).rstrip('.') for e in incomplete)))
    return Found(None, incomplete, notes, False)
  base = os.path.basename(chosen)
  for e in incomplete:
    notes.append('%s; using %s, the newest complete checkpoint of %s.' % (
        str(e).rstrip('.'), base, where))
  if not trusted and not incomplete:
    if not os.path.isfile(os.path.join(directory, STATE_FILE)):
      state = 'has no `%s` state file' % STATE_FILE
    elif named is None:
      state = 'has an unreadable `%s` state file' % STATE_FILE
    elif not _same_directory(os.path.dirname(named), directory):
      state = ('has a `%s` state file naming %s, outside it (a copy of '
               'another directory?)' % (STATE_FILE, named))
    elif not os.path.isfile(named + '.index'):
      state = "has a `%s` state file naming %s, which is not there" % (
          STATE_FILE, named)
    else:
      state = "has a `%s` state file naming %s, not the newest" % (
          STATE_FILE, os.path.basename(named))
    notes.append('%s %s; using %s, the newest complete checkpoint on disk.'
                 % (where, state, base))
  return Found(chosen, incomplete, notes, trusted)
