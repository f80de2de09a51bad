"""A run directory's `config.json`, for both applications (no TensorFlow).

    saved = rundir.read_config(run_dir)              # None on a fresh run
    rundir.check_config(run_dir, saved, config, fixed=('model', ...))
    ... build the model, restore its checkpoint ...
    rundir.write_config(run_dir, config)             # only once it built

The file is written atomically (`densenet._env.atomic`) and, by both
training APIs, only after the model has been built and restored, so a first
start that fails does not leave a directory locked to its settings. A
resumed run must share the `fixed` settings with the saved config.

`writable_dir` checks an output directory before any work, `writing_to`
names it when a write fails later (a full disk): both raise
`OutputDirError`, an OSError the command line prints as one line (exit 1).
"""

import contextlib
import functools
import inspect
import json
import os
import re
import tempfile

from densenet._env import atomic

CONFIG_FILE = 'config.json'


class OutputDirError(OSError):
  """An output directory that cannot be created or written."""


def _output_dir_error(path, what, error):
  if os.path.exists(path) and not os.path.isdir(path):
    reason = 'it is a file, not a directory'
  elif getattr(error, 'strerror', None):  # An OSError.
    reason = error.strerror
  else:  # TensorFlow's: '<file>; No space left on device'.
    message = (getattr(error, 'message', None) or str(error)).strip()
    reason = re.sub(r'\s*\[Op:\w+\]$', '', message.splitlines()[0].split(
        '; ')[-1]) if message else ''
  return OutputDirError('cannot write to %s %s: %s' % (
      what, path, reason or type(error).__name__))


def writable_dir(path, what='output directory'):
  """Creates `path` if needed and checks that a file can be written in it.

  Returns:
    `path`.

  Raises:
    OutputDirError: Naming `what` and `path` and the reason (a read-only
      file system, no permission, a parent that is a file, a full disk).
  """
  try:
    os.makedirs(path, exist_ok=True)
    handle, probe = tempfile.mkstemp(prefix='.write-test-', dir=path)
    try:
      os.write(handle, b'0')
    finally:
      os.close(handle)
      os.remove(probe)
  except OSError as error:
    raise _output_dir_error(path, what, error) from error
  return path


# TensorFlow's errors for a failed write (named: no TensorFlow import here).
_TF_WRITE_ERRORS = ('PermissionDeniedError', 'ResourceExhaustedError',
                    'OutOfRangeError', 'FailedPreconditionError',
                    'UnknownError', 'InternalError')


@contextlib.contextmanager
def writing_to(path, what='output directory', named_only=False):
  """Turns an OSError raised inside, or a TensorFlow I/O error whose message
  names a file under `path`, into an `OutputDirError` naming `what` and
  `path`. Wrap only code that writes there, or pass `named_only`: then an
  OSError too must name a file under `path`."""
  under = os.path.join(path, '')
  try:
    yield
  except OutputDirError:
    raise
  except OSError as error:
    if named_only and not str(error.filename or '').startswith(under):
      raise
    raise _output_dir_error(path, what, error) from error
  except Exception as error:  # pylint: disable=broad-except
    kind = type(error)
    if not (kind.__module__.startswith('tensorflow') and
            kind.__name__ in _TF_WRITE_ERRORS and under in str(error)):
      raise
    raise _output_dir_error(path, what, error) from error


def writes_to(argument, what):
  """Decorates a function that writes into the directory given as its
  `argument`: its failed writes there raise `OutputDirError` naming `what`
  and the directory (`writing_to(..., named_only=True)`)."""

  def decorate(function):
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
      path = signature.bind(*args, **kwargs).arguments[argument]
      with writing_to(path, what, named_only=True):
        return function(*args, **kwargs)

    return wrapper

  return decorate


def read_json(path):
  """The JSON at `path`.

  Raises:
    FileNotFoundError: If there is no such file.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError('%s does not exist.' % (path,))
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def write_json(path, data):
  """Writes `data` as JSON atomically (`densenet._env.atomic.write_json`;
  numpy scalars as numbers)."""
  atomic.write_json(path, data, default=_json_default)


def _json_default(value):
  item = getattr(value, 'item', None)  # numpy scalars.
  if item is not None:
    return item()
  raise TypeError('%r is not JSON serializable' % (value,))


def jsonable(data):
  """`data` as it reads back from JSON (tuples become lists...)."""
  return json.loads(json.dumps(data, default=_json_default))


def read_config(run_dir):
  """The saved config of `run_dir`, or None if it has none yet."""
  path = os.path.join(run_dir, CONFIG_FILE)
  return read_json(path) if os.path.isfile(path) else None


def write_config(run_dir, config):
  """Writes `run_dir/config.json` atomically; returns it as read back."""
  config = jsonable(config)
  write_json(os.path.join(run_dir, CONFIG_FILE), config)
  return config


def check_config(run_dir, saved, config, fixed):
  """Raises a ValueError naming every `fixed` setting `config` changes.

  Args:
    run_dir: The run directory (for the message).
    saved: Its saved config, or None (a fresh run: nothing to check).
    config: The settings of this run.
    fixed: Keys a resumed run must keep.
  """
  if saved is None:
    return
  config = jsonable(config)
  different = [k for k in fixed if saved.get(k) != config.get(k)]
  if different:
    raise ValueError(
        '%s was trained with another config, other settings (%s): %s; use '
        'another directory or the same settings.' % (
            run_dir, ', '.join(different),
            '; '.join('%s=%r (now %r)' % (k, saved.get(k), config.get(k))
                      for k in different)))
