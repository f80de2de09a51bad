"""The training checkpoints of a model directory, saved and restored by name.

Checkpoints are `<directory>/model.ckpt-<step>` in TF's V2 format, keyed by
the slim variable names (`densenet_121/conv1/weights`), plus `global_step`
and `optimizer/<slot>` (`checkpoint_variables`), written by the one
checkpoint writer (`densenet.weights.checkpoints.save`) with the usual
`checkpoint` state file, so `tf.train.latest_checkpoint`,
`tf.train.load_checkpoint`, TF1 `Saver`s and `slim.assign_from_checkpoint_fn`
read them. (`tf.train.Checkpoint` would key them by object path, and its
`Saver`-based alternative cannot save distributed variables eagerly.)
"""

import os
import sys

import tensorflow as tf

from densenet.weights import checkpoints as weights_lib
from densenet.weights import manifest

GLOBAL_STEP = 'global_step'
OPTIMIZER_PREFIX = weights_lib.OPTIMIZER_PREFIX


def checkpoint_variables(model, optimizer=None, global_step=None):
  """{checkpoint key: variable}: slim names, `global_step`, `optimizer/*`."""
  variables = model.variables_by_name()
  if global_step is not None:
    variables[GLOBAL_STEP] = global_step
  if optimizer is not None:
    for variable in optimizer.variables:
      key = OPTIMIZER_PREFIX + weights_lib.variable_key(variable)
      variables[key] = variable
  return variables


def read_global_step(checkpoint):
  """The global step a checkpoint records, or None if it has none (a
  converted checkpoint, or weights saved without the trainer)."""
  reader = weights_lib.reader(checkpoint)
  if not reader.has_tensor(GLOBAL_STEP):
    return None
  return int(reader.get_tensor(GLOBAL_STEP))


class NameBasedCheckpointManager(object):
  """Saves and restores `{name: variable}` as TF checkpoints, by name.

  Checkpoints are `<directory>/<prefix>-<step>` in TF's V2 format, with the
  usual `checkpoint` state file, so `tf.train.latest_checkpoint`,
  `tf.train.load_checkpoint`, TF1 `Saver`s and `slim.assign_from_checkpoint_fn`
  all read them.

  The directory describes itself: `restore` resumes from the newest
  complete checkpoint on disk (`densenet.weights.manifest`), also when the
  state file is missing or stale, and says so in one line (`log`). Newer
  checkpoints found incomplete (a truncated `.data` file) are set aside,
  renamed `<file>.incomplete`, so that nothing of them is lost or
  overwritten. `max_to_keep` deletes only checkpoints this manager wrote,
  or those listed in a state file that names the checkpoint it resumed
  from (the run's own list); others found on disk are never deleted.

  Args:
    variables: {checkpoint key: variable} (see `checkpoint_variables`).
    directory: Where checkpoints live.
    max_to_keep: Newest checkpoints kept; older ones are deleted.
    prefix: Basename of the checkpoints.
    write: Whether this process writes files (False on non-chief workers;
      they still read every variable, which MultiWorkerMirroredStrategy
      needs for its collective reads).
    log: Where the lines about what was found on disk go (default: stderr).
  """

  def __init__(self, variables, directory, max_to_keep=3, prefix='model.ckpt',
               write=True, log=None):
    if max_to_keep < 1:
      raise ValueError('max_to_keep must be >= 1, got %r.' % (max_to_keep,))
    self._variables = dict(variables)
    self._directory = directory
    self._prefix = prefix
    self._max_to_keep = max_to_keep
    self._write = write
    self._log = log or _stderr
    self._written = []  # Prefixes this manager saved, oldest first.
    self._adopted = None  # The state file's list, when it is the run's own.

  @property
  def directory(self):
    return self._directory

  @property
  def variables(self):
    """{checkpoint key: variable} (a copy)."""
    return dict(self._variables)

  @property
  def latest_checkpoint(self):
    """Prefix of the newest complete checkpoint, or None."""
    if self._written:
      return self._written[-1]
    return self._find().prefix

  def _find(self):
    if not tf.io.gfile.isdir(self._directory):
      return manifest.Found(None, [], [], False)
    return manifest.newest_complete(self._directory, self._prefix)

  def _adopt(self, found):
    """Takes over the state file's list when it names `found.prefix`."""
    if self._adopted is not None:
      return
    self._adopted = []
    if found.state_trusted:
      state = tf.train.get_checkpoint_state(self._directory)
      self._adopted = [
          os.path.join(self._directory, os.path.basename(p))
          for p in state.all_model_checkpoint_paths
          if os.path.isfile(p + '.index') and os.path.samefile(
              os.path.dirname(p) or '.', self._directory)]

  def save(self, step):
    """Writes the checkpoint of global step `step`; returns its prefix."""
    keys = sorted(self._variables)
    tensors = [tf.convert_to_tensor(self._variables[k]) for k in keys]
    path = os.path.join(self._directory, '%s-%d' % (self._prefix, step))
    if not self._write:
      return path
    if self._adopted is None:
      self._adopt(self._find())
    if path not in self._written:
      _set_aside(path, self._log)
    weights_lib.save(dict(zip(keys, tensors)), path)
    kept = [p for p in self._adopted + self._written if p != path] + [path]
    self._written = [p for p in self._written if p != path] + [path]
    for old in kept[:-self._max_to_keep]:
      for name in tf.io.gfile.glob(old + '.*'):
        tf.io.gfile.remove(name)
    kept = kept[-self._max_to_keep:]
    self._adopted = [p for p in self._adopted if p in kept]
    self._written = [p for p in self._written if p in kept]
    # File names relative to the directory, so a copy of it reads its own
    # files. TensorFlow keeps a bare name as given for an absolute directory,
    # but for a relative one takes it relative to the working directory
    # ('../../model.ckpt-3'): there it is given under the directory.
    def under(p):
      name = os.path.basename(p)
      return (name if os.path.isabs(self._directory) else
              os.path.join(self._directory, name))

    tf.compat.v1.train.update_checkpoint_state(
        self._directory, under(path),
        all_model_checkpoint_paths=[under(p) for p in kept])
    return path

  def restore(self, path=None):
    """Restores `path` (default: the newest complete checkpoint); returns
    it, or None if there is none.

    Raises:
      densenet.weights.WeightMismatchError: If the checkpoint lacks a
        variable or has another shape.
      densenet.weights.IncompleteCheckpointError: If `path`'s files are
        not whole.
    """
    if path is None:
      found = self._find()
      for line in found.notes:
        self._log(line)
      if self._write:
        for error in found.incomplete:
          _set_aside(error.prefix, self._log)
        self._adopt(found)
      path = found.prefix
    if path is None:
      return None
    weights_lib.restore_by_name(self._variables, path).check(
        'checkpoint %s does not match the model' % path)
    return path


INCOMPLETE_SUFFIX = '.incomplete'


def _stderr(line):
  print(line, file=sys.stderr, flush=True)


def _set_aside(prefix, log):
  """Renames the files of `prefix` (one this run did not write) to
  `<file>.incomplete`, so that a save there overwrites nothing."""
  names = [n for n in tf.io.gfile.glob(prefix + '.*')
           if not n.endswith(INCOMPLETE_SUFFIX)]
  if not names:
    return
  for name in names:
    tf.io.gfile.rename(name, name + INCOMPLETE_SUFFIX, overwrite=True)
  log('%s: set aside the files of %s, which this run did not write, as '
      '%s.*%s.' % (os.path.dirname(prefix) or '.', os.path.basename(prefix),
                   os.path.basename(prefix), INCOMPLETE_SUFFIX))
