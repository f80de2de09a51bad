"""What must be decided before TensorFlow is imported: logging and CPU kernels.

This module imports nothing heavy (no TensorFlow, no tf-slim, no numpy), so the
command-line layer can call `configure()` first thing, before any module that
loads TensorFlow. Library users who import TensorFlow themselves before
`densenet` get whatever their environment says; see `configure`'s docstring.

    from densenet._env import runtime
    runtime.configure(verbose=False)   # before `import tensorflow`

CPU kernels: TensorFlow leaves oneDNN off by default on x86 CPUs without
AVX-512, where it is the fast path for DenseNets (a training step 2.4x faster
on a 2-core Zen 3; benchmarks/README.md). `import densenet` turns it on
(`enable_onednn`) unless the user set `TF_ENABLE_ONEDNN_OPTS`. A library user
who imports TensorFlow before `densenet` should set
`TF_ENABLE_ONEDNN_OPTS=1` in the environment (or in `os.environ` before that
import); `enable_onednn` warns once when TensorFlow was loaded with oneDNN off.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import platform
import sys
import warnings

ONEDNN_VARIABLE = 'TF_ENABLE_ONEDNN_OPTS'
# Where oneDNN is measured faster for our networks (x86-64 CPUs).
_ONEDNN_MACHINES = ('x86_64', 'amd64', 'i686', 'i386')
_warned = []


def tensorflow_imported():
  """True once `tensorflow` has been imported in this process."""
  return 'tensorflow' in sys.modules


def configure(verbose=False):
  """Sets TensorFlow's environment variables, if TensorFlow is not loaded yet.

  Variables the user has already set are left alone (`os.environ.setdefault`).

  Args:
    verbose: False silences TensorFlow's C++ logs (TF_CPP_MIN_LOG_LEVEL=3:
      on a machine without a GPU even its ERROR lines are noise such as
      "failed call to cuInit"; real errors still arrive as exceptions), what
      its native libraries print while `import tensorflow` runs (absl's
      "All log messages before absl::InitializeLog()", "Could not find cuda
      drivers", which no log level reaches), its Python logger below errors
      (deprecation notices) and the Python warnings of TensorFlow, tf-keras
      and tf-slim (e.g. "`layer.apply` is deprecated"); the command-line
      layer calls it so. True changes nothing.

  Returns:
    True if the settings could still take effect (TensorFlow not imported).
  """
  if not verbose:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    around_import('tensorflow', _stderr_discarded)
    # The logger TensorFlow's `tf.get_logger()` returns, configured by name.
    logging.getLogger('tensorflow').setLevel(logging.ERROR)
    for module in _NOISY_MODULES:
      warnings.filterwarnings('ignore', module=module)
    warnings.filterwarnings('ignore', message='`layer.apply` is deprecated')
  enable_onednn()
  return not tensorflow_imported()


# Modules whose Python warnings are TensorFlow's business, not the user's.
_NOISY_MODULES = (r'tensorflow(\.|$)', r'tf_keras(\.|$)', r'tf_slim(\.|$)',
                  r'keras(\.|$)')


@contextlib.contextmanager
def _stderr_discarded():
  """Sends file descriptor 2 (native code's stderr too) to os.devnull."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


class _AroundImport(importlib.abc.MetaPathFinder):
  """Runs the first import of one module inside `with context():`."""

  def __init__(self, name, context):
    self.name, self.context = name, context

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname != self.name:
      return None
    sys.meta_path.remove(self)  # Once; and find_spec below skips us.
    spec = importlib.util.find_spec(fullname)
    if spec is not None and spec.loader is not None:
      exec_module = spec.loader.exec_module

      def exec_module_in_context(module):
        with self.context():
          exec_module(module)

      # This loader object serves this one import of this one module.
      spec.loader.exec_module = exec_module_in_context
    return spec


def around_import(name, context):
  """Runs the first `import <name>` inside `with context():` (once per context).

  Imports nothing. Hooks of several contexts nest, the latest outermost.

  Args:
    name: A top-level module name, e.g. 'tensorflow'.
    context: A function returning a context manager, e.g. a
      `contextlib.contextmanager`; code after its `yield` runs once the
      module has been executed (not if the import fails).

  Returns:
    False if the module is already imported (nothing is done), else True.
  """
  if name in sys.modules:
    return False
  if not any(isinstance(f, _AroundImport) and f.name == name
             and f.context is context for f in sys.meta_path):
    sys.meta_path.insert(0, _AroundImport(name, context))
  return True


def enable_onednn():
  """Turns TensorFlow's oneDNN CPU kernels on by default, or warns it is off.

  Before TensorFlow is imported, sets `TF_ENABLE_ONEDNN_OPTS=1` on x86-64
  unless the variable is already set (the user's choice wins). After, warns
  (once per process) if oneDNN is off although the user did not choose so.

  Returns:
    True if oneDNN is (or will be) on, False if off, None if unknown.
  """
  if platform.machine().lower() not in _ONEDNN_MACHINES:
    return None
  if not tensorflow_imported():
    os.environ.setdefault(ONEDNN_VARIABLE, '1')
    return os.environ[ONEDNN_VARIABLE].lower() in ('1', 'true')
  enabled = onednn_enabled()
  if enabled is False and ONEDNN_VARIABLE not in os.environ and not _warned:
    _warned.append(True)
    warnings.warn(
        'TensorFlow was imported before densenet with oneDNN off: DenseNet '
        'training runs about 2x slower on this CPU. Set %s=1 in the '
        'environment (or os.environ before importing TensorFlow), or import '
        'densenet first.' % ONEDNN_VARIABLE, RuntimeWarning, stacklevel=2)
  return enabled


def onednn_enabled():
  """Whether the loaded TensorFlow runs oneDNN kernels; None if not loaded.

  Asks TensorFlow's own module only if TensorFlow is already imported (this
  module never imports it).
  """
  port = sys.modules.get('tensorflow.python.util._pywrap_util_port')
  if port is None:
    return None
  return bool(port.IsMklEnabled())
