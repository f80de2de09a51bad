"""What README.md documents resolves: import paths, names, keywords, the old
0.1 module paths, the console scripts and their options.

The tables below are read off README.md (its snippets and its prose); the
commands and options in its code are also read from the file itself. Names
are only resolved and keywords looked up, nothing is built.
"""

import importlib
import importlib.metadata
import inspect
import os
import re
import subprocess
import sys
import warnings

import pytest

from conftest import ROOT
from conftest import python_env
from densenet import cli as densenet_cli
from densenet._env import lazy
from segmentation import cli as segmentation_cli

CONSTRUCTORS = [  # The README's table of models.
    'densenet_121', 'densenet_169', 'densenet_201', 'densenet_161',
    'densenet_264', 'densenet_40_k12', 'densenet_100_k12', 'densenet_100_k24',
    'densenet_bc_100_k12', 'densenet_bc_250_k24', 'densenet_bc_190_k40']

# (module, names the README uses from it; dotted for attributes).
NAMES = [
    ('densenet', ['keras_model', 'load_pretrained', 'densenet_arg_scope',
                  'MODELS', 'densenet', 'densenet_X', 'densenet_cifar',
                  '__version__'] + CONSTRUCTORS),
    ('densenet.nets', ['root_block', 'densenet', 'densenet_X',
                       'densenet_cifar', 'MODELS'] + CONSTRUCTORS),
    ('densenet_utils', ['batch_norm', 'Block', 'dense_unit',
                        'densenet_arg_scope', 'densenet_block',
                        'transition_block', 'stack_blocks_dense']),
    ('densenet.architectures', ['CONFIG_KEYS', 'ARCHITECTURES']),
    ('densenet.spec', ['ModelSpec', 'resolve', 'ModelSpec.from_config',
                       'ModelSpec.from_metadata', 'ModelSpec.to_dict',
                       'ModelSpec.build', 'ModelSpec.normalize',
                       'ModelSpec.arg_scope']),
    ('densenet.training', ['Trainer', 'Trainer.train', 'SlimModel',
                           'SlimModel.variables_by_name', 'Interrupted',
                           'chief_dir', 'get_strategy']),
    ('densenet.weights', ['WeightMismatchError', 'save', 'restore_by_name']),
    ('densenet.serve.pretrained', ['load_pretrained', 'Classifier']),
    ('densenet.classification', ['train', 'evaluate']),
    ('segmentation', ['build_model']),
    ('segmentation.tasks', ['train', 'evaluate', 'predict']),
]

# (callable, keywords the README gives it).
KEYWORDS = [
    ('densenet.keras_model', ['num_classes', 'checkpoint']),
    ('densenet.densenet_arg_scope', ['memory_efficient', 'sync_batch_norm']),
    ('densenet_utils.batch_norm', ['synchronized']),
    ('densenet.densenet_121', ['inputs', 'num_classes', 'theta',
                               'is_training', 'global_pool', 'output_stride',
                               'spatial_squeeze', 'initial_output_stride',
                               'reuse', 'scope', 'dropout_rate',
                               'memory_efficient', 'compression']),
    ('densenet.densenet_cifar', ['depth', 'growth_rate', 'bc',
                                 'num_classes', 'theta']),
    ('densenet.training.get_strategy', ['timeout_seconds']),
    ('densenet.training.Trainer', ['sync_batch_norm']),
    ('densenet.classification.train', ['memory_efficient',
                                       'initial_checkpoint']),
    ('segmentation.build_model', ['num_classes', 'backbone', 'output_stride',
                                  'head', 'is_training']),
    ('segmentation.tasks.train', ['partial_restore', 'memory_efficient',
                                  'sync_batch_norm']),
    ('segmentation.tasks.evaluate', ['eval_scales', 'flip']),
]

COMMANDS = {
    'densenet': ['convert', 'classify', 'export', 'train', 'evaluate'],
    'segmentation': ['demo', 'build-data', 'train', 'evaluate', 'predict'],
}

# Options the README names in its prose, by command (those in its command
# lines are read from the file, `readme_command_options`).
PROSE_OPTIONS = {
    ('densenet', 'classify'): ['--json', '--resize-size', '--crop-size'],
    ('densenet', 'train'): [
        '--memory-efficient', '--model', '--epochs', '--batch-size',
        '--learning-rate', '--weight-decay', '--dropout-rate', '--no-augment',
        '--strategy', '--log-every', '--initial-checkpoint',
        '--checkpoint-every', '--sync-batch-norm', '--train-dir'],
    ('segmentation', 'build-data'): ['--num-classes', '--remap', '--strict'],
    ('segmentation', 'train'): [
        '--memory-efficient', '--eval', '--eval-every', '--partial-restore',
        '--checkpoint-every', '--initial-checkpoint', '--backbone',
        '--strategy', '--warmup-steps', '--log-every', '--model-dir'],
    ('segmentation', 'evaluate'): ['--eval-scales', '--flip', '--checkpoint'],
    ('segmentation', 'predict'): ['--eval-scales', '--flip', '--label-dir'],
}
GLOBAL_OPTIONS = ['--help', '--verbose']


def resolve(module, dotted):
  value = importlib.import_module(module)
  for part in dotted.split('.'):
    value = getattr(value, part)
  return value


@pytest.mark.parametrize('module,names', NAMES, ids=[m for m, _ in NAMES])
def test_documented_names_resolve(module, names):
  for name in names:
    assert resolve(module, name) is not None, (module, name)
  # From the package too, as `from densenet import densenet_121` does.
  if '.' not in module and module != 'densenet_utils':
    namespace = {}
    exec('from %s import %s' % (module, ', '.join(  # pylint: disable=exec-used
        n for n in names if '.' not in n)), namespace)


def test_documented_names_are_the_defining_modules():
  import densenet  # pylint: disable=g-import-not-at-top
  from densenet import nets  # pylint: disable=g-import-not-at-top
  import densenet_utils  # pylint: disable=g-import-not-at-top
  for name in CONSTRUCTORS + ['densenet_X', 'densenet_cifar', 'MODELS']:
    assert getattr(densenet, name) is getattr(nets, name), name
  assert sorted(nets.MODELS) == sorted(CONSTRUCTORS)
  assert densenet.densenet_arg_scope is densenet_utils.densenet_arg_scope
  assert resolve('densenet.training', 'SlimModel') is resolve(
      'densenet.training.slim_model', 'SlimModel')


@pytest.mark.parametrize('function,keywords', KEYWORDS,
                         ids=[f for f, _ in KEYWORDS])
def test_documented_keywords(function, keywords):
  module, _, name = function.rpartition('.')
  parameters = inspect.signature(resolve(module, name)).parameters
  missing = [k for k in keywords if k not in parameters]
  assert not missing, '%s has no %s' % (function, missing)


@pytest.mark.parametrize('old', sorted(lazy.MOVED))
def test_old_module_paths_warn_and_are_the_new_modules(old):
  new = lazy.MOVED[old]
  sys.modules.pop(old, None)
  with pytest.warns(DeprecationWarning, match=re.escape(new)):
    module = importlib.import_module(old)
  assert module is importlib.import_module(new)
  assert sys.modules[old] is module
  with warnings.catch_warnings():  # Once imported, no more warnings.
    warnings.simplefilter('error')
    assert importlib.import_module(old) is module


def test_console_scripts_are_the_commands():
  try:
    entry_points = importlib.metadata.distribution('densenet').entry_points
  except importlib.metadata.PackageNotFoundError:
    pytest.skip('the package is not installed (pip install -e .)')
  scripts = {ep.name: ep for ep in entry_points
             if ep.group == 'console_scripts'}
  assert sorted(scripts) == sorted(COMMANDS)
  assert scripts['densenet'].load() is densenet_cli.main
  assert scripts['segmentation'].load() is segmentation_cli.main


def test_console_scripts_show_every_help_page(tmp_path):
  bin_dir = os.path.dirname(sys.executable)
  if not all(os.path.exists(os.path.join(bin_dir, c)) for c in COMMANDS):
    pytest.skip('the console scripts are not installed next to %s' %
                sys.executable)
  pages = [(command, sub) for command, subs in COMMANDS.items()
           for sub in [None] + subs]
  processes = [subprocess.Popen(
      [os.path.join(bin_dir, command)] + ([sub] if sub else []) + ['--help'],
      cwd=str(tmp_path), env=python_env(PYTHONPATH=None),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for command, sub in pages]
  try:
    outputs = [p.communicate(timeout=120) for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  for (command, sub), process, (out, err) in zip(pages, processes, outputs):
    assert process.returncode == 0 and err == '', (command, sub, err)
    usage = 'usage: %s' % command + (' ' + sub if sub else '')
    assert out.startswith(usage), (command, sub, out[:200])
  # The top-level pages list the sub-commands.
  for (command, sub), (out, _) in zip(pages, outputs):
    if sub is None:
      assert all(s in out for s in COMMANDS[command]), out


def readme_command_options():
  """{(command, sub-command): options} of the README's command lines."""
  text = open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read()
  text = re.sub(r'\\\n\s*', ' ', text)  # Continued shell lines.
  subcommands = sorted({s for subs in COMMANDS.values() for s in subs})
  found = {}
  for match in re.finditer(r'(?:^|[\s`(])(densenet|segmentation) (%s)\b'
                           r'([^`\n]*)' % '|'.join(subcommands), text, re.M):
    command, sub, rest = match.groups()
    if sub in COMMANDS[command]:
      found.setdefault((command, sub), set()).update(
          re.findall(r'(?<![\w-])(--[a-z][a-z0-9-]*)', rest))
  return found


def option_strings(module, sub):
  """Every option string of a sub-command, hidden aliases included."""
  parser = module.build_parser()
  for action in parser._actions:  # pylint: disable=protected-access
    if action.choices and sub in getattr(action, 'choices', {}):
      return set(action.choices[sub]._option_string_actions)  # pylint: disable=protected-access
  raise AssertionError('no sub-command %r' % sub)


def test_readme_options_are_accepted():
  documented = readme_command_options()
  # The README's own command lines were found.
  assert {'--voc-root', '--output-dir'} <= documented[
      ('segmentation', 'build-data')]
  assert {'--dataset', '--source', '--data-dir'} <= documented[
      ('densenet', 'train')]
  for key, options in PROSE_OPTIONS.items():
    documented.setdefault(key, set()).update(options)
  modules = {'densenet': densenet_cli, 'segmentation': segmentation_cli}
  unknown = {}
  for (command, sub), options in sorted(documented.items()):
    accepted = option_strings(modules[command], sub)
    missing = sorted(set(options) - accepted)
    if missing:
      unknown['%s %s' % (command, sub)] = missing
    assert set(GLOBAL_OPTIONS) <= accepted, (command, sub)
  assert not unknown, 'options in README.md that the commands refuse: %s' % (
      unknown)
