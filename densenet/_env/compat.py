"""Keeps tf-slim 1.1.0 working on current TensorFlow (2.14 and newer).

This is the one place in the project that knows about TensorFlow's and
tf-slim's internals. `import densenet` (which every module of the project
does, directly or through `densenet_utils`) calls `install()`: the fixes below
are applied the moment TensorFlow finishes loading, or at once if it is
already loaded. After it, a user's own `slim.batch_norm`,
`slim.learning.create_train_op(clip_gradient_norm=...)` and tf-slim's own
`nets.resnet_v2` work again, whatever the import order.

This module imports TensorFlow only inside functions, so that `import
densenet` (and the `densenet --help` command line) does not load it.

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

import contextlib
import functools
import importlib
import importlib.abc
import importlib.util
import os
import sys

from densenet._env import runtime

_ALIAS = 'tf_keras.legacy_tf_layers'
_TARGET = 'tf_keras.src.legacy_tf_layers'

# (TF module, attribute, public replacement under `tf`) for every private name
# tf-slim 1.1.0 calls.
_MISSING_NAMES = (
    ('tensorflow.python.framework.ops', 'Tensor', 'Tensor'),
    ('tensorflow.python.framework.ops', 'IndexedSlices', 'IndexedSlices'),
    ('tensorflow.python.ops.array_ops', 'stack', 'stack'),
    ('tensorflow.python.ops.array_ops', 'unstack', 'unstack'),
    ('tensorflow.python.ops.control_flow_ops', 'cond', 'compat.v1.cond'),
    ('tensorflow.python.ops.control_flow_ops', 'case', 'compat.v1.case'),
    ('tensorflow.python.ops.control_flow_ops', 'while_loop',
     'compat.v1.while_loop'),
    ('tensorflow.python.ops.control_flow_ops', 'Assert', 'compat.v1.Assert'),
    ('tensorflow.python.ops.variable_scope', 'variable', 'compat.v1.Variable'),
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


def install():
  """Applies the fixes now if TensorFlow is loaded, else as soon as it loads.

  Imports nothing heavy: `import densenet` calls it.
  """
  if not runtime.around_import('tensorflow', _apply_after):
    apply()


@contextlib.contextmanager
def _apply_after():
  yield
  apply()


def apply():
  """Makes tf-slim 1.1.0 usable on the installed TensorFlow. Idempotent.

  Imports TensorFlow.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for module_name, name, replacement in _MISSING_NAMES:
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
      setattr(module, name,
              functools.reduce(getattr, replacement.split('.'), tf))
      PATCHED_NAMES.append('%s.%s' % (module_name, name))
  if (not any(isinstance(f, _LegacyLayersAlias) for f in sys.meta_path)
      and _alias_needed()):
    sys.meta_path.append(_LegacyLayersAlias())
    PATCHED_NAMES.append(_ALIAS + ' -> ' + _TARGET)


# ---------------------------------------------------------------------------
# TensorFlow internals the trainer needs (kept here, with the rest).


@contextlib.contextmanager
def fresh_variable_scope_counts():
  """Default-named variable scopes ('dense_unit', 'BatchNorm') count from
  zero inside, as in a fresh graph; the previous counts come back after.

  A `tf.function` trace's FuncGraph shares the variable-scope store of the
  process's eager graph, so counts left there by earlier work (e.g. a
  backward pass that re-entered scopes to recompute them) would otherwise
  rename a network's variables between traces.
  """
  from tensorflow.python.ops import variable_scope  # pylint: disable=g-import-not-at-top
  store = variable_scope.get_variable_scope_store()
  counts, store.variable_scopes_count = store.variable_scopes_count, {}
  try:
    yield
  finally:
    store.variable_scopes_count = counts


def track_tf1_style_variables(method):
  """tf-keras' decorator running TF1-style (`get_variable`) code inside a
  Keras layer's `call`, its variables tracked by the layer."""
  from tf_keras.src.legacy_tf_layers import variable_scope_shim
  return variable_scope_shim.track_tf1_style_variables(method)


def has_tf1_variable_store():
  """Whether `tf.compat.v1.get_variable` has a store that keeps variables
  outside TF1 graphs: tf_keras' `track_tf1_style_variables` (what
  `training.SlimModel` uses) or a `tf.compat.v1.keras.utils`-style eager
  variable store. A plain `tf.function` has none."""
  # pylint: disable=g-import-not-at-top,protected-access
  import tensorflow as tf
  from tensorflow.python.ops import variable_scope
  stores = tf.compat.v1.get_collection(variable_scope._VARSTORE_KEY)
  return bool(stores) and bool(getattr(stores[0], '_store_eager_variables',
                                       False))


def record_operation(op_type, outputs, inputs, backward_function):
  """Records an op with its own gradient on the active gradient tapes, as
  `tf.custom_gradient` does (used by the memory-efficient dense units)."""
  from tensorflow.python.eager import record  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  record.record_operation(op_type, outputs, inputs, backward_function)


@contextlib.contextmanager
def own_variable_scope_state():
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
  # pylint: disable=g-import-not-at-top,protected-access
  from tensorflow.python.framework import ops
  from tensorflow.python.ops import variable_scope
  scopes = variable_scope.get_variable_scope_store()
  saved = (scopes.current_scope, dict(scopes.variable_scopes_count),
           list(ops.get_collection_ref(variable_scope._VARSTORE_KEY)))
  try:
    yield
  finally:
    scopes.current_scope, scopes.variable_scopes_count, stores = saved
    ops.get_collection_ref(variable_scope._VARSTORE_KEY)[:] = stores


# ---------------------------------------------------------------------------
# tf_keras internals `training.SlimModel` needs.


def keras_call_error_cause(error):
  """The exception tf_keras wrapped in `error`, or None.

  tf_keras re-raises an error of a layer's `call` as a new exception of the
  same class, 'Exception encountered when calling layer ...' with the
  original message on its third line (`inject_argument_info_in_traceback`,
  marked `_keras_call_info_injected`); the original is its `__context__`.
  """
  cause = getattr(error, '__context__', None)
  if getattr(error, '_keras_call_info_injected', False) and isinstance(
      cause, Exception):
    return cause
  return None


def keras_saved_model_saver(model, extra_dtypes):
  """tf_keras' SavedModel saver of `model`, whose saved `__call__` also
  takes `extra_dtypes` inputs (cast to the saved input dtype first).

  tf_keras traces `__call__` for one input spec (`model.save_spec()`); a
  loaded model (`tf.saved_model.load`) then refuses any other dtype. The
  extra traces call the saved ones, so `call_and_return_conditional_losses`
  (which `tf_keras.models.load_model` revives) keeps its one spec.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tf_keras.src.saving.legacy.saved_model import model_serialization
  from tf_keras.src.saving.legacy.saved_model import save_impl

  class Saver(model_serialization.ModelSavedModelSaver):

    def _get_serialized_attributes_internal(self, serialization_cache):
      objects, functions = super()._get_serialized_attributes_internal(
          serialization_cache)
      call = functions.get('__call__')
      save_spec = self.obj.save_spec()
      if not isinstance(call, save_impl.LayerCall) or save_spec is None:
        return objects, functions
      spec = tf.nest.flatten(save_spec[0])[0] if save_spec[0] else None
      if not isinstance(spec, tf.TensorSpec):
        return objects, functions
      traced = call.wrapped_call

      @tf.function(autograph=False)
      def call_any_dtype(inputs, training=False):
        return traced(tf.cast(inputs, spec.dtype), training=training)

      for dtype in (spec.dtype,) + tuple(extra_dtypes):
        for training in (False, True):
          call_any_dtype.get_concrete_function(
              tf.TensorSpec(spec.shape, dtype, name=spec.name),
              training=training)
      functions['__call__'] = call_any_dtype
      return objects, functions

  return Saver(model)
