"""What must be decided before TensorFlow is imported: logging and CPU kernels.

This module imports nothing heavy (no TensorFlow, no tf-slim, no numpy), so the
command-line layer can call `configure()` first thing, before any module that
loads TensorFlow. Library users who import TensorFlow themselves before
`densenet` get whatever their environment says; see `configure`'s docstring.

    from densenet import runtime
    runtime.configure(verbose=False)   # before `import tensorflow`
"""

import logging
import os
import sys
import warnings


def tensorflow_imported():
  """True once `tensorflow` has been imported in this process."""
  return 'tensorflow' in sys.modules


def configure(verbose=False):
  """Sets TensorFlow's environment variables, if TensorFlow is not loaded yet.

  Variables the user has already set are left alone (`os.environ.setdefault`).

  Args:
    verbose: False silences TensorFlow's C++ logs (TF_CPP_MIN_LOG_LEVEL=2),
      its Python logger below errors (deprecation notices) and the Python
      warnings of TensorFlow, tf-keras and tf-slim (e.g. "`layer.apply` is
      deprecated"); the command-line layer calls it so. True changes nothing.

  Returns:
    True if the settings could still take effect (TensorFlow not imported).
  """
  if not verbose:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    # The logger TensorFlow's `tf.get_logger()` returns, configured by name.
    logging.getLogger('tensorflow').setLevel(logging.ERROR)
    for module in _NOISY_MODULES:
      warnings.filterwarnings('ignore', module=module)
    warnings.filterwarnings('ignore', message='`layer.apply` is deprecated')
  return not tensorflow_imported()


# Modules whose Python warnings are TensorFlow's business, not the user's.
_NOISY_MODULES = (r'tensorflow(\.|$)', r'tf_keras(\.|$)', r'tf_slim(\.|$)',
                  r'keras(\.|$)')
