"""Shared pieces of the test suite: the repository root, tiny networks,
fresh-interpreter helpers, one-line error checks and generated records.

Test modules import the plain names (`from conftest import ROOT, run_python`)
and ask for the fixtures by name. Nothing here loads TensorFlow at import:
the fixtures import what they need when first used.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny `densenet_X` configs: growth rate 4 and 8 root filters (2k). Tests add
# `scope='tiny'` where their variable names say so.
# Two blocks of one unit: the smallest net with a transition.
TINY_2BLOCK = {'num_units_per_block': [1, 1], 'growth_rate': 4,
               'num_initial_filters': 8}
# Blocks of 1 and 2 units: a unit that reads an earlier unit's maps.
TINY_2BLOCK_UNEVEN = {'num_units_per_block': [1, 2], 'growth_rate': 4,
                      'num_initial_filters': 8}
# Four blocks (output strides 4 to 32), one unit each: segmentation backbones.
TINY_4BLOCK_THIN = {'num_units_per_block': [1, 1, 1, 1], 'growth_rate': 4,
                    'num_initial_filters': 8}
# Four blocks of 1, 2, 2, 1 units: the ImageNet layout in small.
TINY_4BLOCK = {'num_units_per_block': [1, 2, 2, 1], 'growth_rate': 4,
               'num_initial_filters': 8}

SUBPROCESS_TIMEOUT = 300  # Seconds a fresh interpreter may take by default.


def python_env(**changes):
  """`os.environ` for a fresh interpreter of this checkout.

  PYTHONPATH is the repository root and TensorFlow's C++ logs are quiet;
  `changes` override (a value of None removes the variable).
  """
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2')
  for name, value in changes.items():
    if value is None:
      env.pop(name, None)
    else:
      env[name] = value
  return env


def run_python(*args, cwd=ROOT, env=None, timeout=SUBPROCESS_TIMEOUT,
               check=True, **kwargs):
  """`python *args` (e.g. `'-c', code` or `'-m', module` or a script path)
  in a fresh interpreter, output captured as text.

  Args:
    *args: The interpreter's arguments.
    cwd: Working directory (the repository root by default).
    env: The environment (`python_env()` by default).
    timeout: Seconds before the child is killed (and the test fails).
    check: Assert exit status 0, showing the end of stderr otherwise.
    **kwargs: More `subprocess.run` arguments (e.g. `preexec_fn`).

  Returns:
    The `subprocess.CompletedProcess`.
  """
  process = subprocess.run([sys.executable] + [str(a) for a in args],
                           cwd=cwd, env=python_env() if env is None else env,
                           capture_output=True, text=True, timeout=timeout,
                           **kwargs)
  if check:
    assert process.returncode == 0, process.stderr[-3000:]
  return process


def start_python(*args, cwd=ROOT, env=None, **kwargs):
  """`python *args` started in the background (`subprocess.Popen`, text
  mode, `python_env()` by default); the caller bounds its wait."""
  return subprocess.Popen([sys.executable] + [str(a) for a in args],
                          cwd=cwd, env=python_env() if env is None else env,
                          text=True, **kwargs)


def last_json_line(stdout):
  """The last line of a child's stdout, parsed as JSON."""
  return json.loads(stdout.strip().splitlines()[-1])


def randomize_batch_norm(assign, variables):
  """Gives batch norms statistics far from 0 and 1, so a wrongly applied
  norm shows: moving means and betas N(0, 0.1), moving variances and gammas
  U(0.5, 1.5), by `assign(variable, value)`."""
  rng = np.random.RandomState(0)
  for v in variables:
    shape = v.shape.as_list()
    name = v.name.split(':')[0]
    if name.endswith(('moving_mean', 'beta')):
      assign(v, rng.normal(0, 0.1, shape).astype(np.float32))
    elif name.endswith(('moving_variance', 'gamma')):
      assign(v, rng.uniform(0.5, 1.5, shape).astype(np.float32))


# `densenet train: error: ...`, `segmentation build-data: error: ...`.
_ERROR_LINE = re.compile(r'^(densenet|segmentation)( [\w-]+)?: error: ')


def error_line(stderr):
  """The one error line of a command's stderr, `<program> [<command>]:
  error: <message>` (progress bars, logs and argparse's usage aside); fails
  on a traceback or on anything but exactly one line saying `: error: `."""
  assert 'Traceback' not in stderr, stderr[-3000:]
  lines = [line for line in stderr.splitlines() if ': error: ' in line]
  assert len(lines) == 1 and _ERROR_LINE.match(lines[0]), stderr[-3000:]
  return lines[0]


@pytest.fixture(scope='session')
def voc_records(tmp_path_factory):
  """`make(num_train=8, num_val=4, size=32, num_shards=1)` -> a directory of
  `train-*` and `val-*` TFRecords of the synthetic VOC dataset (seed 0).

  Each shape is generated and converted once per session (per xdist
  worker); tests only read the records. The VOC folder is the sibling
  `voc`.
  """
  made = {}

  def make(num_train=8, num_val=4, size=32, num_shards=1):
    key = (num_train, num_val, size, num_shards)
    if key not in made:
      from segmentation import tasks  # pylint: disable=g-import-not-at-top
      from segmentation.data import synthetic  # pylint: disable=g-import-not-at-top
      root = tmp_path_factory.mktemp('voc_%d_%d_%d_%d' % key)
      synthetic.generate(str(root / 'voc'), num_train, num_val, size=size,
                         seed=0, progress=False)
      tasks.build_data(str(root / 'records'), voc_root=str(root / 'voc'),
                       num_shards=num_shards, progress=False)
      made[key] = root / 'records'
    return made[key]

  return make


@pytest.fixture
def recomputed_units(monkeypatch):
  """Watches the memory-efficient units (and transitions) built while the
  test runs: {'forward': [variable scope of each unit built],
  'backward': [... of each unit rebuilt for its gradient]}."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from densenet.layers import recompute  # pylint: disable=g-import-not-at-top
  seen = {'forward': [], 'backward': []}
  recompute_grad = recompute.recompute_grad

  def watched(fn, *args, **kwargs):
    def call(*tensors):
      seen['backward' if recompute.recomputing() else 'forward'].append(
          tf.compat.v1.get_variable_scope().name)
      return fn(*tensors)
    return recompute_grad(call, *args, **kwargs)

  monkeypatch.setattr(recompute, 'recompute_grad', watched)
  return seen
