"""What must be decided before TensorFlow is imported: logging and CPU kernels.

This module imports nothing heavy (no TensorFlow, no tf-slim, no numpy), so the
command-line layer can call `configure()` first thing, before any module that
loads TensorFlow. Library users who import TensorFlow themselves before
`densenet` get whatever their environment says; see `configure`'s docstring.

    from densenet import runtime
    runtime.configure(verbose=False)   # before `import tensorflow`
"""

import os
import sys


def tensorflow_imported():
  """True once `tensorflow` has been imported in this process."""
  return 'tensorflow' in sys.modules


def configure(verbose=False):
  """Sets TensorFlow's environment variables, if TensorFlow is not loaded yet.

  Variables the user has already set are left alone (`os.environ.setdefault`).

  Args:
    verbose: False silences TensorFlow's C++ logs (TF_CPP_MIN_LOG_LEVEL=2).

  Returns:
    True if the settings could still take effect (TensorFlow not imported).
  """
  if not verbose:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  return not tensorflow_imported()
