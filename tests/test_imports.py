"""Importing a package loads only what it needs; the public names still work.

Each check runs in a fresh interpreter and lists the project's modules (and
TensorFlow) that the import left in `sys.modules`.
"""

import json

import pytest

from conftest import run_python

# Application code no plain import of a package (or of the blocks) needs.
APPLICATION = {'densenet.weights.convert', 'densenet.serve.pretrained',
               'densenet.training.trainer', 'densenet.training.slim_model',
               'densenet.classification.run', 'densenet.serve.export',
               'densenet.datasets.pipeline', 'densenet.preprocessing',
               'segmentation.tasks', 'segmentation.data.pipeline',
               'segmentation.data.synthetic', 'segmentation.model'}


def loaded_after(statement):
  code = ('import json, sys\n%s\nprint(json.dumps(sorted(m for m in '
          'sys.modules if m.split(".")[0] in ("densenet", "densenet_utils", '
          '"segmentation", "tensorflow", "tf_slim"))))' % statement)
  process = run_python('-c', code, timeout=120)
  return set(json.loads(process.stdout.splitlines()[-1]))


@pytest.mark.parametrize('statement', [
    'import densenet', 'import segmentation', 'import densenet.cli',
    'import segmentation.cli', 'from densenet import architectures, runtime'])
def test_packages_and_commands_load_no_tensorflow(statement):
  loaded = loaded_after(statement)
  assert 'tensorflow' not in loaded and 'tf_slim' not in loaded, loaded
  assert not loaded & APPLICATION, loaded & APPLICATION
  assert 'densenet_utils' not in loaded and 'densenet.nets' not in loaded


def test_blocks_and_networks_load_no_application_code():
  loaded = loaded_after('import densenet_utils\n'
                        'from densenet import densenet_121, MODELS')
  assert {'densenet_utils', 'densenet.nets', 'densenet._env.compat',
          'tensorflow'} <= loaded
  assert not loaded & APPLICATION, loaded & APPLICATION


def test_public_names_resolve_lazily_to_their_modules():
  # pylint: disable=g-import-not-at-top
  import densenet
  from densenet import architectures
  from densenet import nets
  from densenet.serve import pretrained
  import densenet_utils
  import segmentation
  from segmentation import model
  assert densenet.load_pretrained is pretrained.load_pretrained
  assert densenet.densenet_arg_scope is densenet_utils.densenet_arg_scope
  assert densenet.MODELS is nets.MODELS
  for name in architectures.NAMES:
    assert getattr(densenet, name) is getattr(nets, name)
  assert set(architectures.NAMES) <= set(dir(densenet))
  assert segmentation.build_model is model.build_model
  assert segmentation.HEADS == model.HEADS
  for package in (densenet, segmentation):
    for name in package.__all__:
      assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match='no attribute'):
      getattr(package, 'no_such_name')
