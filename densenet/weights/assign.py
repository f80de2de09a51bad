"""Loading weights into a network's variables, exactly or not at all.

    weights, metadata = convert.read_weights('ckpt/densenet_121/model.ckpt')
    init_fn = assign.assign_fn(weights, scope='densenet_121')   # in a graph
    init_fn(session)

Weight dicts map names relative to the model scope (e.g.
'dense_block1/unit_1/dense_unit/conv1/weights') to numpy arrays in our
layout. `match_variables` pairs them with a network's variables and refuses
any partial match with one `WeightMismatchError` listing every difference;
`check_weights` checks a dict against a freshly built network.
"""

import functools
import json
import logging

import tensorflow as tf

from densenet import spec as spec_lib
from densenet.weights import checkpoints

_log = logging.getLogger(__name__)

def _relative_name(variable, scope):
  name = variable.op.name
  prefix = scope + '/'
  return name[len(prefix):] if name.startswith(prefix) else None


def match_variables(weights, variables, scope):
  """Pairs network variables with weights, refusing any partial match.

  Args:
    weights: Dict of names relative to `scope` to arrays.
    variables: The network's variables (all of them under `scope`).
    scope: The model's variable scope, e.g. 'densenet_121'.

  Returns:
    `(pairs, unused)`: a list of (variable, array) covering every variable,
    and the sorted weight names no variable uses.

  Raises:
    WeightMismatchError: If a variable has no weight or one of another shape
      (`checkpoints.match_by_name`); the message lists every such variable
      (and the unused weights).
  """
  by_name = {variable.op.name: variable for variable in variables}
  prefix = scope + '/'
  report = checkpoints.match_by_name(
      {name: variable.shape.as_list() for name, variable in by_name.items()},
      {prefix + name: value.shape for name, value in weights.items()})
  unused = [name[len(prefix):] for name in report.unused]
  if report.missing or report.mismatched:
    raise checkpoints.WeightMismatchError(
        report.missing, [(name,) + tuple(report.shapes[name])
                         for name in report.mismatched], unused,
        context='Cannot load weights into %s' % scope)
  return [(by_name[name], weights[name[len(prefix):]])
          for name in report.restored], unused


def assign_fn(weights, scope, variables=None):
  """Returns `init_fn(session)` that loads `weights` into the graph.

  Call it while the graph can still grow (it adds placeholders and assign
  ops), then run `init_fn(session)` once.

  Args:
    weights: Dict of names relative to `scope` to arrays (`read_weights`).
    scope: The model's variable scope.
    variables: The variables to load, default every global variable under
      `scope` (pass the model variables to skip e.g. optimizer slots, or
      leave out the logits to fine-tune on other classes).

  Returns:
    A function of a `tf.compat.v1.Session`. Its attribute `unused` lists the
    weights no variable took (also logged as a warning).

  Raises:
    WeightMismatchError: If a variable is missing from `weights` or has
      another shape.
  """
  if variables is None:
    variables = tf.compat.v1.global_variables(scope + '/')
  if not variables:
    raise ValueError('No variables under scope %r; build the network first.'
                     % scope)
  pairs, unused = match_variables(weights, variables, scope)
  if unused:
    _log.warning('%d weight(s) not used by %s: %s', len(unused), scope,
                 checkpoints.listing(unused))
  feed_placeholders, assign_ops = [], []
  with tf.name_scope('load_weights'):
    for variable, _ in pairs:
      placeholder = tf.compat.v1.placeholder(variable.dtype.base_dtype,
                                             variable.shape)
      feed_placeholders.append(placeholder)
      assign_ops.append(tf.compat.v1.assign(variable, placeholder))
  values = [value for _, value in pairs]

  def init_fn(session):
    session.run(assign_ops, dict(zip(feed_placeholders, values)))

  init_fn.unused = unused
  return init_fn


def session_weights(session, scope, variables=None):
  """`{name relative to scope: array}` of a network's variables in a session.

  With `save_checkpoint`, this turns a trained (or freshly initialized)
  network into a checkpoint with metadata.
  """
  if variables is None:
    variables = tf.compat.v1.global_variables(scope + '/')
  values = session.run(list(variables))
  return {_relative_name(v, scope): value
          for v, value in zip(variables, values)}


def expected_variables(architecture, num_classes):
  """`{relative name: shape}` of a network.

  Args:
    architecture: An architecture name or `densenet_X` config (see
      `densenet.spec.resolve`).
    num_classes: Its logits, or None.
  """
  return dict(_expected_variables(json.dumps(architecture, sort_keys=True),
                                  num_classes))


@functools.lru_cache(maxsize=8)
def _expected_variables(architecture_json, num_classes):
  """Builds the network once per (architecture, classes): a few seconds."""
  spec = spec_lib.ModelSpec(json.loads(architecture_json),
                            num_classes=num_classes)
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3])
    spec.build(images, is_training=False)
    return tuple((_relative_name(v, spec.scope), tuple(v.shape.as_list()))
                 for v in tf.compat.v1.global_variables(spec.scope + '/'))


def check_weights(weights, architecture, num_classes):
  """Raises `WeightMismatchError` unless `weights` fit the network exactly."""
  expected = expected_variables(architecture, num_classes)
  missing = sorted(set(expected) - set(weights))
  unused = sorted(set(weights) - set(expected))
  mismatched = [(name, list(shape), list(weights[name].shape))
                for name, shape in sorted(expected.items())
                if name in weights and tuple(weights[name].shape) != shape]
  if missing or unused or mismatched:
    raise checkpoints.WeightMismatchError(missing, mismatched, unused,
                              context='Weights do not fit %s' % (architecture,))
