"""Our checkpoint format: the one writer, its metadata, the one name-based
restorer, and the one mismatch error.

    from densenet.weights import checkpoints
    checkpoints.save({'densenet_121/conv1/weights': array, ...},
                     'ckpt/model.ckpt')
    report = checkpoints.restore_by_name(model.variables_by_name(), 'ckpt',
                                         exclude_scopes=['densenet_121/logits'])
    report.check('initial_checkpoint ckpt does not fit densenet_121',
                 allow_missing=['densenet_121/logits'])

Checkpoints are TF's V2 format keyed by the slim variable names, so
`tf.train.load_checkpoint`, `slim.assign_from_checkpoint_fn` and TF1 `Saver`s
read them. `save` writes to a temporary prefix (`densenet._env.atomic`'s
names) and renames the files into place, the index last, so a killed writer
never leaves a half-written checkpoint under the final name; it records the
size and CRC-32 of each file in `<prefix>.manifest.json`, and `reader` (every
read of a checkpoint here) refuses a checkpoint whose files differ, naming
the file (`IncompleteCheckpointError`, `densenet.weights.manifest`).

Metadata: a checkpoint written by `save_checkpoint` (converted weights)
holds, next to the variables `<model>/...`, a string tensor
`densenet_metadata` with a JSON object: `model` (e.g. 'densenet_121'),
`num_classes` (None without logits), `batch_norm_epsilon`, `normalization`
(a `densenet.preprocessing` normalization), `root_padding` (the stem's,
`densenet.nets.root_block`), `source` and `format_version`. It cannot be
separated from the weights; `tf.compat.v1.train.Saver` over the model's
variables (or `slim.assign_from_checkpoint_fn`) ignores it.

Every way weights can fail to fit a network (the converter's exact check,
`restore_by_name`'s report, a resumed run's checkpoint) ends in one
`WeightMismatchError`, a `ValueError` listing every variable concerned.
"""

import collections
import json
import os
import sys

import numpy as np
import tensorflow as tf

from densenet import spec as spec_lib
from densenet._env import atomic
from densenet.weights import manifest

IncompleteCheckpointError = manifest.IncompleteCheckpointError

METADATA_KEY = 'densenet_metadata'
FORMAT_VERSION = 1
# Where training checkpoints keep the optimizer's slots (`densenet.training`).
OPTIMIZER_PREFIX = 'optimizer/'


def variable_key(variable):
  """The key of a variable in our checkpoints: its name without ':0'."""
  return variable.name.split(':')[0]


def listing(items, limit=30):
  items = list(items)
  text = ', '.join(items[:limit])
  if len(items) > limit:
    text += ', ... (%d more)' % (len(items) - limit)
  return text


class WeightMismatchError(ValueError):
  """Weights and network variables do not match; lists every difference.

  Attributes:
    missing: network variables without weights.
    mismatched: `(name, network shape, weights shape)` of the variables whose
      weights have another shape.
    unused: weights no variable takes.

  The message is `<context>: <lists>.`, or with `headline` that line, then
  the lists on the next (the command line shows the first line).
  """

  def __init__(self, missing=(), mismatched=(), unused=(), context='',
               headline=None):
    self.missing = sorted(missing)
    self.mismatched = sorted(mismatched)
    self.unused = sorted(unused)
    parts = []
    if self.missing:
      parts.append('%d variable(s) missing from the weights: %s' %
                   (len(self.missing), listing(self.missing)))
    if self.mismatched:
      parts.append('%d variable(s) with the wrong shape: %s' % (
          len(self.mismatched),
          listing('%s (network %s, weights %s)' % m for m in self.mismatched)))
    if self.unused:
      parts.append('%d weight(s) not used by the network: %s' %
                   (len(self.unused), listing(self.unused)))
    if headline:  # A summary line, then the lists.
      super().__init__('%s\n%s.' % (headline, '; '.join(parts)))
    else:
      super().__init__('%s%s.' % (context + ': ' if context else '',
                                  '; '.join(parts)))


class RestoreReport(collections.namedtuple(
    'RestoreReport', ['restored', 'missing', 'mismatched', 'unused',
                      'shapes'])):
  """What `restore_by_name` did, as sorted name lists.

  restored: variables assigned from the checkpoint.
  missing: variables with no tensor of that name in the checkpoint (left as
    initialized), excluded ones included.
  mismatched: variables whose checkpoint tensor has another shape (left).
  unused: checkpoint tensors no variable asked for.
  shapes: {mismatched name: (network shape, checkpoint shape)}.
  """

  def check(self, context, allow_missing=(), scope='', checkpoint=None,
            hint=''):
    """Raises `WeightMismatchError` for missing or mismatched variables.

    Its message is a summary line (`context`, how many of the variables
    that had to be restored were, which model `checkpoint` holds, `hint`),
    then the variables concerned (the command line shows the first line).

    Args:
      context: What was restored into what (starts the message).
      allow_missing: Name prefixes that may be missing (e.g. a logits scope
        that starts fresh).
      scope: Only variables under this name prefix must be restored (e.g. a
        segmentation backbone's 'densenet_121/'); others may be missing or
        of another shape.
      checkpoint: The checkpoint restored from, to name what it holds.
      hint: What to do about it, ends the summary line.
    """

    def required(name):
      return name.startswith(scope) and not any(
          name.startswith(p) for p in allow_missing)

    missing = [n for n in self.missing if required(n)]
    mismatched = [n for n in self.mismatched if required(n)]
    if missing or mismatched:
      matched = len([n for n in self.restored if required(n)])
      details = '%d of the %d variables matched' % (
          matched, matched + len(missing) + len(mismatched))
      if checkpoint is not None:
        details = 'the checkpoint holds %s; %s' % (
            checkpoint_model(checkpoint), details)
      raise WeightMismatchError(
          missing, [(n,) + tuple(self.shapes[n]) for n in mismatched],
          headline='%s (%s)%s.' % (context, details,
                                   '; ' + hint if hint else ''))
    return self


def checkpoint_model(checkpoint):
  """What model a checkpoint holds, in words (for messages).

  The 'model' its `densenet_metadata` records (`densenet convert`
  checkpoints), else the top-level variable scopes of its tensors
  (`global_step` and training's `optimizer/` slots aside).

  Args:
    checkpoint: A checkpoint prefix or directory.

  Returns:
    E.g. 'model densenet_169', 'variable scope densenet_169' or 'variable
    scopes aspp, densenet_121, logits'.
  """
  checkpoint_reader = reader(checkpoint)
  if checkpoint_reader.has_tensor(METADATA_KEY):
    model = (read_metadata(latest(checkpoint)) or {}).get('model')
    if model:
      return 'model %s' % (model if isinstance(model, str) else
                           json.dumps(model, sort_keys=True))
  scopes = sorted({name.split('/', 1)[0] for name in
                   checkpoint_reader.get_variable_to_shape_map()
                   if '/' in name and not name.startswith(OPTIMIZER_PREFIX)})
  if not scopes:
    return 'no model variables'
  return 'variable scope%s %s' % ('s' if len(scopes) > 1 else '',
                                  ', '.join(scopes))


def latest(checkpoint, log=None):
  """`checkpoint`, or the newest complete checkpoint of a directory.

  A directory's checkpoints are found from its `*.index` files, the newest
  (by step) whose files are whole (`manifest.check`) wins, whatever its
  `checkpoint` state file says; each thing worked around (a missing or stale
  state file, an incomplete newer checkpoint) is said in one line to `log`
  (default: stderr, once per process).

  Raises:
    ValueError: If a directory holds no complete checkpoint.
  """
  if tf.io.gfile.isdir(checkpoint):
    found = manifest.newest_complete(checkpoint)
    for line in found.notes:
      (log or notice)(line)
    if found.prefix is None:
      if found.incomplete:
        raise found.incomplete[0]
      raise ValueError('checkpoint_path %r holds no checkpoint.' %
                       (checkpoint,))
    return found.prefix
  return checkpoint


_noticed = set()


def notice(line):
  """Prints `line` on stderr, once per process."""
  if line not in _noticed:
    _noticed.add(line)
    print(line, file=sys.stderr, flush=True)


def check_complete(prefix):
  """Raises `IncompleteCheckpointError` unless the files of checkpoint
  `prefix` are whole (see `densenet.weights.manifest`); the message names
  the file and, if the directory has one, the newest complete checkpoint."""
  try:
    manifest.check(prefix)
  except manifest.IncompleteCheckpointError as e:
    directory = os.path.dirname(prefix) or '.'
    newest = manifest.newest_complete(directory).prefix
    if newest and newest != prefix:
      raise manifest.IncompleteCheckpointError(
          prefix, '%s; the newest complete checkpoint there is %s' % (
              e.reason, newest), e.file) from None
    raise


def reader(checkpoint):
  """A `tf.train.CheckpointReader` of a complete checkpoint prefix, or of
  the newest complete checkpoint of a directory (`latest`).

  Raises:
    IncompleteCheckpointError: (a ValueError) If the checkpoint's files are
      not what was written (a truncated `.data` file...), naming the file.
    ValueError: If there is no readable checkpoint there.
  """
  path = latest(checkpoint)
  if tf.io.gfile.exists(path + '.index'):
    check_complete(path)
  try:
    return tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError) as e:
    raise ValueError('checkpoint_path %r is not a readable checkpoint: %s' %
                     (path, e)) from e


def match_by_name(variable_shapes, weight_shapes, exclude_scopes=()):
  """The one rule pairing variables with weights: the same name, the same
  shape (`restore_by_name` and `assign.match_variables` are built on it).

  Args:
    variable_shapes: {variable name: shape} of the network.
    weight_shapes: {weight name: shape} of the checkpoint or weight dict.
    exclude_scopes: Variable name prefixes not to match (e.g. the logits).

  Returns:
    A `RestoreReport`: `restored` lists the variables that match (to
    assign); `missing` those without a weight of their name, excluded ones
    included; `mismatched` those whose weight has another shape; `unused`
    the weights no variable matched.
  """
  matched, missing, mismatched, shapes = [], [], [], {}
  for name in sorted(variable_shapes):
    shape = [int(d) for d in variable_shapes[name]]
    if any(name.startswith(scope) for scope in exclude_scopes) or (
        name not in weight_shapes):
      missing.append(name)
    elif [int(d) for d in weight_shapes[name]] != shape:
      mismatched.append(name)
      shapes[name] = (shape, [int(d) for d in weight_shapes[name]])
    else:
      matched.append(name)
  unused = sorted(set(weight_shapes) - set(matched) - set(mismatched))
  return RestoreReport(matched, missing, mismatched, unused, shapes)


def restore_by_name(variables, checkpoint, exclude_scopes=()):
  """Assigns checkpoint tensors to the variables of the same name.

  Works for any V1/V2 checkpoint with slim names (a TF1 slim `Saver`
  checkpoint, a converted ImageNet checkpoint, a training checkpoint),
  eagerly and for distributed variables.

  Args:
    variables: {name: variable}, e.g. `SlimModel.variables_by_name()`.
    checkpoint: A checkpoint prefix or a directory (its latest one).
    exclude_scopes: Name prefixes not to restore (e.g. the logits scope).

  Returns:
    A `RestoreReport` (`match_by_name`'s); `report.check(...)` turns it
    into an error.

  Raises:
    ValueError: If there is no readable checkpoint.
  """
  path = latest(checkpoint)
  checkpoint_reader = reader(path)
  report = match_by_name(
      {name: variable.shape.as_list() for name, variable in variables.items()},
      checkpoint_reader.get_variable_to_shape_map(), exclude_scopes)
  for name in report.restored:
    # No read back: reading a moving statistic under a multi-worker
    # strategy is a collective, which only the chief would join.
    variables[name].assign(_tensor(checkpoint_reader, name, path),
                           read_value=False)
  return report


def _tensor(checkpoint_reader, name, path):
  """`get_tensor`, a failed read (a data file cut short) naming the file."""
  try:
    return checkpoint_reader.get_tensor(name)
  except (IndexError, tf.errors.OpError) as e:
    message = (getattr(e, 'message', None) or str(e)).strip().splitlines()
    raise IncompleteCheckpointError(path, 'reading %s failed (%s)' % (
        name, (message or [type(e).__name__])[0])) from e


def save(tensors, prefix):
  """Writes `{name: value}` as a TF (V2) checkpoint at `prefix`, atomically.

  Args:
    tensors: {checkpoint key: Tensor, variable or numpy array}.
    prefix: The checkpoint prefix (`prefix.index`, `prefix.data-*`); its
      directory is created. Leftovers of killed saves there are removed.

  Returns:
    `prefix`.
  """
  directory = os.path.dirname(os.path.abspath(prefix))
  base = os.path.basename(prefix)
  tf.io.gfile.makedirs(directory)
  for stale in tf.io.gfile.glob(os.path.join(directory,
                                             atomic.TEMPORARY_PATTERN)):
    tf.io.gfile.remove(stale)
  temporary = atomic.temporary_path(os.path.join(directory, base))
  keys = sorted(tensors)
  with tf.init_scope():  # Eager, even when called while building a graph.
    tf.raw_ops.SaveV2(prefix=temporary, tensor_names=keys,
                      shape_and_slices=[''] * len(keys),
                      tensors=[tf.convert_to_tensor(tensors[k]) for k in keys])
  manifest.write(temporary)  # What the files are, for `check_complete`.
  for name in tf.io.gfile.glob(temporary + '.data-*') + [
      temporary + manifest.MANIFEST_SUFFIX, temporary + '.index']:
    os.replace(name, prefix + name[len(temporary):])  # The index last.
  return prefix


def _decode(value):
  return value.decode('utf8') if isinstance(value, bytes) else str(value)


def read_metadata(checkpoint):
  """The metadata dict of a checkpoint written by `save_checkpoint`.

  Returns:
    The dict, or None if the checkpoint has no metadata.
  """
  checkpoint_reader = reader(checkpoint)
  if not checkpoint_reader.has_tensor(METADATA_KEY):
    return None
  return json.loads(_decode(checkpoint_reader.get_tensor(METADATA_KEY)))


def save_checkpoint(weights, metadata, prefix, progress=False):
  """Writes a TF (V2) checkpoint of `weights` under the model's scope.

  Args:
    weights: Dict of names relative to the model scope to arrays.
    metadata: Dict with at least 'model' (an architecture name or
      `densenet_X` config), 'batch_norm_epsilon' and 'normalization'; stored
      as the `densenet_metadata` JSON string.
    prefix: The checkpoint prefix (`prefix.index`, `prefix.data-*` are
      written, atomically); its directory is created.
    progress: Unused (kept for callers); writing is one operation.

  Returns:
    `prefix`.
  """
  del progress
  scope = spec_lib.resolve(metadata['model']).scope
  stored = {key: metadata[key] for key in
            ('model', 'num_classes', 'batch_norm_epsilon', 'normalization',
             'root_padding', 'source') if key in metadata}
  stored['format_version'] = FORMAT_VERSION
  tensors = {'%s/%s' % (scope, name): np.asarray(value, np.float32)
             for name, value in weights.items()}
  tensors[METADATA_KEY] = np.array(json.dumps(stored, sort_keys=True),
                                   dtype=object)
  return save(tensors, prefix)
