"""densenet._env.runtime: oneDNN on by default, the user's choice kept, a
warning.

Each case runs a fresh Python (TensorFlow reads the variable once, when it
loads) and prints what the loaded TensorFlow reports.
"""

import platform

import pytest

from conftest import python_env
from conftest import run_python

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ('x86_64', 'amd64'),
    reason='oneDNN is turned on by default on x86-64 only')


def run(code, **env_vars):
  env = python_env(**dict({'PYTHONWARNINGS': 'always',
                           'TF_ENABLE_ONEDNN_OPTS': None}, **env_vars))
  proc = run_python('-c', code, env=env)
  return proc.stdout.split(), proc.stderr


# `import densenet` loads no TensorFlow (lazy names): the report loads it.
REPORT = ('import tensorflow; from densenet import runtime; import os; '
          'print(runtime.onednn_enabled(), '
          'os.environ.get("TF_ENABLE_ONEDNN_OPTS"))')


def test_runtime_never_imports_tensorflow():
  # The module alone, not through the package's __init__.
  out, _ = run('import importlib.util, sys; '
               'spec = importlib.util.spec_from_file_location('
               '"runtime", "densenet/_env/runtime.py"); '
               'm = importlib.util.module_from_spec(spec); '
               'spec.loader.exec_module(m); '
               'print(m.enable_onednn(), "tensorflow" in sys.modules)')
  assert out == ['True', 'False']


def test_import_densenet_turns_onednn_on():
  out, stderr = run('import densenet; ' + REPORT)
  assert out == ['True', '1']
  assert 'RuntimeWarning' not in stderr


def test_user_choice_is_kept():
  out, stderr = run('import densenet; ' + REPORT, TF_ENABLE_ONEDNN_OPTS='0')
  assert out == ['False', '0']
  assert 'RuntimeWarning' not in stderr


def test_tensorflow_first_warns():
  # TensorFlow's own default: off on AVX2-only x86 CPUs, on with AVX-512.
  default, _ = run('import tensorflow; from densenet import runtime; '
                   'print(runtime.onednn_enabled())')
  out, stderr = run('import tensorflow; import densenet; ' + REPORT)
  assert out == [default[0], 'None']
  warned = 'RuntimeWarning' in stderr and 'TF_ENABLE_ONEDNN_OPTS=1' in stderr
  assert warned == (default == ['False'])
