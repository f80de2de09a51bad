"""Keeps tf-slim 1.1.0 working on current TensorFlow (2.14 and newer).

This is the one place in the project that knows about tf-slim's breakages;
`import densenet` (and `import densenet_utils`) call `apply()` before anything
uses tf-slim. After it, a user's own `slim.batch_norm`,
`slim.learning.create_train_op(clip_gradient_norm=...)` and tf-slim's own
`nets.resnet_v2` work again.

tf-slim 1.1.0 predates TF 2.14 and breaks in two independent ways:

1. `slim.batch_norm` on its default (non-fused) path reaches
   `tensorflow/python/layers/normalization.py`, which lazily imports
   `tf_keras.legacy_tf_layers.normalization`. The tf-keras wheel ships that
   module as `tf_keras.src.legacy_tf_layers`. We install an import alias
   (a `sys.meta_path` finder) that resolves `tf_keras.legacy_tf_layers[.*]` to
   `tf_keras.src.legacy_tf_layers[.*]` on first use; nothing is imported early.
2. TensorFlow moved private names that tf-slim still calls (`ops.Tensor`,
   `array_ops.stack`, `control_flow_ops.cond`, `variable_scope.variable`...).
   We put each missing name back, pointing at TF's public equivalent, and only
   where it is absent, so a TensorFlow that still has them is left untouched.

`apply()` is idempotent. `PATCHED_NAMES` lists what it added on this
installation, for tests and bug reports.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

import tensorflow as tf

# pylint: disable=g-direct-tensorflow-import
from tensorflow.python.framework import ops
from tensorflow.python.ops import array_ops
from tensorflow.python.ops import control_flow_ops
from tensorflow.python.ops import variable_scope

_ALIAS = 'tf_keras.legacy_tf_layers'
_TARGET = 'tf_keras.src.legacy_tf_layers'

# (module, attribute, replacement) for every private name tf-slim 1.1.0 calls.
_MISSING_NAMES = (
    (ops, 'Tensor', tf.Tensor),
    (ops, 'IndexedSlices', tf.IndexedSlices),
    (array_ops, 'stack', tf.stack),
    (array_ops, 'unstack', tf.unstack),
    (control_flow_ops, 'cond', tf.compat.v1.cond),
    (control_flow_ops, 'case', tf.compat.v1.case),
    (control_flow_ops, 'while_loop', tf.compat.v1.while_loop),
    (control_flow_ops, 'Assert', tf.compat.v1.Assert),
    (variable_scope, 'variable', tf.compat.v1.Variable),
)

PATCHED_NAMES = []


class _LegacyLayersAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Resolves `tf_keras.legacy_tf_layers[.x]` to `tf_keras.src.legacy_tf_layers[.x]`."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname != _ALIAS and not fullname.startswith(_ALIAS + '.'):
      return None
    # Appended last to sys.meta_path: reached only when the real path is absent.
    return importlib.util.spec_from_loader(fullname, self)

  def create_module(self, spec):
    return None  # The default module; exec_module swaps in the real one.

  def exec_module(self, module):
    # The import system returns whatever sys.modules holds after exec_module.
    real = importlib.import_module(_TARGET + module.__name__[len(_ALIAS):])
    sys.modules[module.__name__] = real


def _alias_needed():
  """True when tf-keras is installed without `legacy_tf_layers` at the top."""
  spec = importlib.util.find_spec('tf_keras')  # Locates, does not import.
  if spec is None or not spec.submodule_search_locations:
    return False
  root = list(spec.submodule_search_locations)[0]
  return (not os.path.isdir(os.path.join(root, 'legacy_tf_layers'))
          and os.path.isdir(os.path.join(root, 'src', 'legacy_tf_layers')))


def apply():
  """Makes tf-slim 1.1.0 usable on the installed TensorFlow. Idempotent."""
  for module, name, replacement in _MISSING_NAMES:
    if not hasattr(module, name):
      setattr(module, name, replacement)
      PATCHED_NAMES.append('%s.%s' % (module.__name__, name))
  if (not any(isinstance(f, _LegacyLayersAlias) for f in sys.meta_path)
      and _alias_needed()):
    sys.meta_path.append(_LegacyLayersAlias())
    PATCHED_NAMES.append(_ALIAS + ' -> ' + _TARGET)


class own_variable_scope_state(object):  # pylint: disable=invalid-name
  """Restores the TF1 variable-scope state when the block is left.

  `MirroredStrategy` runs each replica in its own thread, and its
  `ReplicaContext.all_reduce` hands control to the other replicas (a
  `merge_call`) in the middle of the network; the variable-scope store
  (current scope, scope counts) is shared by those threads through the
  graph's collections, and so is the variable store that tf-keras'
  `track_tf1_style_variables` installs (the first replica to finish
  uninstalls it under the others' feet). A replica wraps such a call in this
  block to carry on with its own scope and store.
  """

  def __enter__(self):
    scopes = variable_scope.get_variable_scope_store()
    self._saved = (scopes.current_scope, dict(scopes.variable_scopes_count),
                   list(ops.get_collection_ref(
                       variable_scope._VARSTORE_KEY)))  # pylint: disable=protected-access
    return self

  def __exit__(self, *unused_exc_info):
    scopes = variable_scope.get_variable_scope_store()
    scopes.current_scope, scopes.variable_scopes_count, stores = self._saved
    ops.get_collection_ref(variable_scope._VARSTORE_KEY)[:] = stores  # pylint: disable=protected-access
    return False

