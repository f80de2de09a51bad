"""One training run per model directory: its lock file (no TensorFlow).

    with lock.held('runs/seg'):      # refuses if another run trains there
      ... train ...

    @lock.locks('model_dir')         # the same, around a function
    def train(model_dir, ...): ...

The lock is `<directory>/.lock`, locked with `fcntl.flock` (the kernel
releases it when its process ends, however it ends) and holding the
holder's pid, host and start time as JSON for the messages. A second run
on the same directory raises `LockedError` (a ValueError: the command line
prints one line naming the holder and exits 2). A lock file left by a
process that is gone (SIGKILL, a crash) is taken over with a one-line
notice. The file is removed when the holder releases it (the end of the
`with`, an error, a stop on a signal, `atexit`). Locks are reentrant within
a process: `tasks.train` holds it, and the `Trainer` it runs takes it again.
Non-chief workers of a multi-worker run write nothing into the model
directory, and take no lock (`locks` asks `cluster.is_chief_task`).
"""

import atexit
import contextlib
import datetime
import fcntl
import functools
import inspect
import json
import os
import socket
import sys

from densenet.training import cluster
from densenet.training import rundir

LOCK_FILE = '.lock'


class LockedError(ValueError):
  """The model directory is in use by another training run.

  Attributes:
    path: The lock file.
    holder: What it says of its holder ({'pid', 'host', 'started'}), or {}.
  """

  def __init__(self, directory, path, holder):
    self.path, self.holder = path, holder
    super().__init__(
        '%s is in use by another training run (%s; lock file %s): wait for '
        'it to end, stop it, or use another directory.' % (
            directory, describe(holder), path))


def describe(holder):
  """'pid 123 on host h since 2025-01-02 03:04:05' (what is known)."""
  if not holder:
    return 'holder unknown'
  parts = []
  if holder.get('pid') is not None:
    parts.append('pid %s' % holder['pid'])
  if holder.get('host'):
    parts.append('on host %s' % holder['host'])
  if holder.get('started'):
    parts.append('since %s' % holder['started'])
  return ' '.join(parts) or 'holder unknown'


def _read(fd):
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode('utf-8', 'replace')
    holder = json.loads(text) if text.strip() else {}
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}


_held = {}  # realpath of a directory -> [fd, count] held by this process.


def acquire(directory, what='model directory', log=None):
  """Locks `directory` (created if needed) for this process.

  Returns:
    True if this call took the lock, False if this process already held it
    (then `release` must be called as many times as `acquire`).

  Raises:
    LockedError: If another process holds it.
    rundir.OutputDirError: If the directory cannot be created or written.
  """
  rundir.writable_dir(directory, what)
  key = os.path.realpath(directory)
  if key in _held:
    _held[key][1] += 1
    return False
  path = os.path.join(directory, LOCK_FILE)
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
      raise rundir.OutputDirError('cannot write to %s %s: %s' % (
          what, directory, error.strerror or error)) from error
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read(fd)
      os.close(fd)
      raise LockedError(directory, path, holder) from None
    except OSError:  # No flock on this file system: trust the pid.
      holder = _read(fd)
      if _alive(holder):
        os.close(fd)
        raise LockedError(directory, path, holder) from None
    # The file may have been removed (released) between open and flock.
    try:
      same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
      same = False
    if same:
      break
    os.close(fd)
  previous = _read(fd)
  if previous:
    (log or _stderr)('%s: took over the lock of a run that is gone (%s).' % (
        directory, describe(previous)))
  record = {'pid': os.getpid(), 'host': socket.gethostname(),
            'started': datetime.datetime.now().isoformat(' ', 'seconds'),
            'command': ' '.join(sys.argv)[:500]}
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps(record).encode())
  os.fsync(fd)
  _held[key] = [fd, 1, path]
  return True


def release(directory):
  """Undoes one `acquire`; the last one removes the lock file."""
  key = os.path.realpath(directory)
  entry = _held.get(key)
  if entry is None:
    return
  entry[1] -= 1
  if entry[1] > 0:
    return
  del _held[key]
  fd, _, path = entry
  try:
    os.remove(path)
  except OSError:
    pass
  os.close(fd)


@contextlib.contextmanager
def held(directory, what='model directory', log=None):
  """`acquire` ... `release` around a block."""
  acquire(directory, what, log)
  try:
    yield
  finally:
    release(directory)


def locks(argument, what='model directory'):
  """Decorates a training function: holds the lock of the directory given
  as its `argument` while it runs, unless this process is a non-chief
  worker of a multi-worker run (it writes nothing there). The chief is
  told from a `strategy` argument when given, else from TF_CONFIG
  (`cluster.is_chief_task`)."""

  def decorate(function):
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
      arguments = signature.bind(*args, **kwargs).arguments
      strategy = arguments.get('strategy')
      if strategy is not None:
        from densenet.training import distribute  # pylint: disable=g-import-not-at-top
        chief = distribute.is_chief(strategy)
      else:
        chief = cluster.is_chief_task()
      if not chief:
        return function(*args, **kwargs)
      with held(arguments[argument], what):
        return function(*args, **kwargs)

    return wrapper

  return decorate


def _alive(holder):
  """Whether the holder may still run: another host's, or a live pid here."""
  if not holder:
    return False
  if holder.get('host') != socket.gethostname():
    return True
  try:
    os.kill(int(holder.get('pid')), 0)
  except ProcessLookupError:
    return False
  except (OSError, TypeError, ValueError):
    return True
  return int(holder['pid']) != os.getpid()


def _stderr(line):
  print(line, file=sys.stderr, flush=True)


def _release_all():
  for key in list(_held):
    _held[key][1] = 1
    release(key)


atexit.register(_release_all)
