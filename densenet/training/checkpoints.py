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

import tensorflow as tf

from densenet.weights import checkpoints as weights_lib

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


class NameBasedCheckpointManager(object):
  """Saves and restores `{name: variable}` as TF checkpoints, by name.

  Checkpoints are `<directory>/<prefix>-<step>` in TF's V2 format, with the
  usual `checkpoint` state file, so `tf.train.latest_checkpoint`,
  `tf.train.load_checkpoint`, TF1 `Saver`s and `slim.assign_from_checkpoint_fn`
  all read them.

  Args:
    variables: {checkpoint key: variable} (see `checkpoint_variables`).
    directory: Where checkpoints live.
    max_to_keep: Newest checkpoints kept; older ones are deleted.
    prefix: Basename of the checkpoints.
    write: Whether this process writes files (False on non-chief workers;
      they still read every variable, which MultiWorkerMirroredStrategy
      needs for its collective reads).
  """

  def __init__(self, variables, directory, max_to_keep=3, prefix='model.ckpt',
               write=True):
    if max_to_keep < 1:
      raise ValueError('max_to_keep must be >= 1, got %r.' % (max_to_keep,))
    self._variables = dict(variables)
    self._directory = directory
    self._prefix = prefix
    self._max_to_keep = max_to_keep
    self._write = write

  @property
  def directory(self):
    return self._directory

  @property
  def variables(self):
    """{checkpoint key: variable} (a copy)."""
    return dict(self._variables)

  @property
  def latest_checkpoint(self):
    """Prefix of the newest checkpoint, or None."""
    return tf.train.latest_checkpoint(self._directory)

  def _all_checkpoints(self):
    state = tf.train.get_checkpoint_state(self._directory)
    return list(state.all_model_checkpoint_paths) if state else []

  def save(self, step):
    """Writes the checkpoint of global step `step`; returns its prefix."""
    keys = sorted(self._variables)
    tensors = [tf.convert_to_tensor(self._variables[k]) for k in keys]
    path = os.path.join(self._directory, '%s-%d' % (self._prefix, step))
    if not self._write:
      return path
    weights_lib.save(dict(zip(keys, tensors)), path)
    kept = [p for p in self._all_checkpoints() if p != path] + [path]
    for old in kept[:-self._max_to_keep]:
      for name in tf.io.gfile.glob(old + '.*'):
        tf.io.gfile.remove(name)
    kept = kept[-self._max_to_keep:]
    tf.compat.v1.train.update_checkpoint_state(
        self._directory, path, all_model_checkpoint_paths=kept)
    return path

  def restore(self, path=None):
    """Restores `path` (default: the latest); returns it, or None if none.

    Raises:
      densenet.weights.WeightMismatchError: If the checkpoint lacks a
        variable or has another shape.
    """
    path = path or self.latest_checkpoint
    if path is None:
      return None
    weights_lib.restore_by_name(self._variables, path).check(
        'checkpoint %s does not match the model' % path)
    return path
