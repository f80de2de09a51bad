"""The command-line layer: exit statuses, one-line errors, quiet and fast help.

Most error paths run the real console-script code in a fresh interpreter
(`HARNESS`), which also reports whether TensorFlow was imported: a mistake
in the arguments must be reported before TensorFlow loads.
"""

import argparse
import json
import re

import pytest

from conftest import error_line
from conftest import python_env
from conftest import run_python
from densenet import cli
from densenet.cli import arguments
from densenet.cli import common
from segmentation import cli as segmentation_cli

# Runs `<module>.main(argv)`; prints whether TensorFlow got imported.
HARNESS = """
import sys
from %s import main
try:
  status = main(sys.argv[1:])
except SystemExit as e:
  status = e.code
print('TENSORFLOW_IMPORTED=%%s' %% ('tensorflow' in sys.modules))
sys.exit(status)
"""
COMMANDS = {'densenet': 'densenet.cli', 'segmentation': 'segmentation.cli'}
# A line of TensorFlow's C++ or absl logging, e.g. "I0000 00:00:17... ]".
TF_LOG_LINE = re.compile(r'^([IWEF]\d{4} |WARNING: All log messages)', re.M)


def run_command(command, argv, cwd):
  # The command must quiet TensorFlow itself.
  process = run_python('-c', HARNESS % COMMANDS[command], *argv, cwd=cwd,
                       env=python_env(TF_CPP_MIN_LOG_LEVEL=None),
                       timeout=120, check=False)
  imported = 'TENSORFLOW_IMPORTED=True' in process.stdout
  return process.returncode, process.stdout, process.stderr, imported


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """Files the error paths point at: garbage weights, an empty run dir..."""
  root = tmp_path_factory.mktemp('cli')
  (root / 'garbage.h5').write_bytes(b'not an HDF5 file')
  (root / 'image.jpg').write_bytes(b'not decoded before the checkpoint')
  (root / 'empty').mkdir()
  (root / 'records-0').write_bytes(b'')
  return str(root)


# (command, argv, exit status, substring of stderr, TensorFlow loaded).
ERROR_TABLE = [
    # densenet
    ('densenet', ['classify', 'missing.jpg', '--checkpoint', 'nowhere.ckpt'],
     2, 'nowhere.ckpt', False),
    ('densenet', ['classify', 'image.jpg', '--checkpoint', 'nowhere.ckpt'],
     2, 'nowhere.ckpt', False),
    ('densenet', ['classify', 'image.jpg', '--checkpoint', 'garbage.h5',
                  '--batch-size', '0'], 2, 'argument --batch-size', False),
    ('densenet', ['classify', 'image.jpg', '--checkpoint', 'garbage.h5',
                  '--top', '-1'], 2, 'argument --top', False),
    ('densenet', ['classify', 'image.jpg', '--checkpoint', 'garbage.h5',
                  '--model', 'densenet_7'], 2,
     "unknown architecture 'densenet_7'", False),
    ('densenet', ['classify', 'image.jpg', '--checkpoint', 'garbage.h5',
                  '--frobnicate'], 2, 'unrecognized arguments: --frobnicate',
     False),
    ('densenet', ['frobnicate'], 2, 'invalid choice', False),
    ('densenet', [], 2, 'required: COMMAND', False),
    ('densenet', ['convert', 'garbage.h5', 'out.ckpt', '--source-format',
                  'pudae'], 2, 'garbage.h5.index does not exist', False),
    ('densenet', ['convert', 'missing.h5', 'out.ckpt'], 2, 'missing.h5',
     False),
    ('densenet', ['export', 'export/1', '--checkpoint', 'garbage.h5',
                  '--crop-size', '0'], 2, 'argument --crop-size', False),
    ('densenet', ['train', '--data-dir', 'empty', '--train-dir', 'run'], 2,
     'holds no dataset', False),
    ('densenet', ['train', '--data-dir', 'empty', '--train-dir', 'run',
                  '--batch-size', '0'], 2, 'argument --batch-size', False),
    ('densenet', ['train', '--data-dir', 'empty', '--train-dir', 'run',
                  '--model', 'densenet_7'], 2,
     "unknown architecture 'densenet_7'", False),
    ('densenet', ['train', '--data-dir', 'empty', '--train-dir', 'run',
                  '--model', '{"growth_rate": 4}'], 2,
     'An architecture dict needs num_units_per_block', False),
    ('densenet', ['train', '--data-dir', 'empty', '--train-dir', 'run',
                  '--num-steps', '0'], 2, 'argument --num-steps', False),
    ('densenet', ['train', '--data-dir', 'data', '--train-dir', 'run',
                  '--image-folder', 'nowhere'], 2, 'no such directory',
     False),
    ('densenet', ['evaluate', '--train-dir', 'nowhere'], 2,
     'no such directory: nowhere', False),
    # After TensorFlow loads: still one quiet line.
    ('densenet', ['evaluate', '--train-dir', 'empty'], 2,
     'config.json does not exist', True),
    ('densenet', ['convert', 'garbage.h5', 'out.ckpt', '--source-format',
                  'keras'], 1, 'file signature not found', True),
    # segmentation
    ('segmentation', ['build-data', '--image-dir', 'nowhere', '--label-dir',
                      'empty', '--output-dir', 'out'], 2,
     'no such directory: nowhere', False),
    ('segmentation', ['build-data', '--output-dir', 'out'], 2,
     'give either --voc-root', False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'records-*',
                      '--num-classes', '3', '--steps', '0'], 2,
     'argument --steps', False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'records-*',
                      '--num-classes', '3', '--steps', '5', '--batch-size',
                      '0'], 2, 'argument --batch-size', False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'records-*',
                      '--num-classes', '3', '--steps', '5', '--backbone',
                      '{"growth_rate": 4,'], 2, 'not a JSON object', False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'records-*',
                      '--num-classes', '3', '--steps', '5', '--backbone',
                      'resnet_50'], 2, "unknown architecture 'resnet_50'",
     False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'records-*',
                      '--num-classes', '3', '--steps', '5', '--backbone',
                      '{"num_units_per_block": [1, 1], "k": 4}'], 2,
     "Unknown key(s) 'k' in the architecture dict", False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'none-*',
                      '--num-classes', '3', '--steps', '5'], 2,
     "no file matches 'none-*'", False),
    ('segmentation', ['train', '--model-dir', 'm', '--train', 'records-*',
                      '--num-classes', '3', '--steps', '5', '--crop-size',
                      '32x0'], 2, 'argument --crop-size', False),
    ('segmentation', ['evaluate', '--model-dir', 'nowhere', '--eval',
                      'records-*'], 2, 'no such directory: nowhere', False),
    # A missing image is reported as predict goes on (tests/
    # test_faults_data.py); here the model directory is the mistake.
    ('segmentation', ['predict', 'missing.jpg', '--model-dir', 'empty',
                      '--output-dir', 'out'], 2, 'has no config.json',
     True),
    ('segmentation', ['demo', '--steps', '0'], 2, 'argument --steps', False),
    ('segmentation', ['demo', '--frobnicate'], 2, 'unrecognized arguments',
     False),
    ('segmentation', ['evaluate', '--model-dir', 'empty', '--eval',
                      'records-*'], 2, 'has no config.json', True),
]


@pytest.mark.parametrize('command,argv,status,message,loads_tensorflow',
                         ERROR_TABLE,
                         ids=['%s %s' % (row[0], ' '.join(row[1]))
                              for row in ERROR_TABLE])
def test_error_paths(workdir, command, argv, status, message,
                     loads_tensorflow):
  returncode, _, stderr, imported = run_command(command, argv, workdir)
  assert returncode == status, stderr
  assert message in stderr
  assert 'Traceback' not in stderr
  assert not TF_LOG_LINE.search(stderr), stderr
  # Mistakes in the arguments are found before TensorFlow loads.
  assert imported == loads_tensorflow
  # The error itself is one line naming the command (argparse adds usage).
  prefix = command
  if argv and argv[0] in SUBCOMMANDS[command]:
    prefix += ' ' + argv[0]
  assert error_line(stderr).startswith(prefix + ': error: '), stderr


def test_verbose_shows_the_traceback(workdir):
  for argv in (['--verbose', 'convert'], ['convert', '--verbose']):
    returncode, _, stderr, _ = run_command(
        'densenet', argv + ['garbage.h5', 'out.ckpt', '--source-format',
                            'pudae'], workdir)
    assert returncode == 2
    assert 'Traceback' in stderr and 'UsageError' in stderr


SUBCOMMANDS = {
    'densenet': ['convert', 'classify', 'export', 'train', 'evaluate'],
    'segmentation': ['demo', 'build-data', 'train', 'evaluate', 'predict'],
}


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_help_does_not_import_tensorflow(command, tmp_path):
  code = """
import contextlib, io, json, sys
from %s import main
pages = {}
for sub in [[]] + [[s] for s in %r]:
  out = io.StringIO()
  try:
    with contextlib.redirect_stdout(out):
      main(sub + ['--help'])
  except SystemExit as e:
    pages[' '.join(sub)] = (e.code, out.getvalue())
print(json.dumps({'pages': pages, 'tf': 'tensorflow' in sys.modules}))
""" % (COMMANDS[command], SUBCOMMANDS[command])
  process = run_python('-c', code, cwd=tmp_path, timeout=60,
                       env=python_env(TF_CPP_MIN_LOG_LEVEL=None))
  assert process.stderr == ''
  result = json.loads(process.stdout)
  assert result['tf'] is False
  assert sorted(result['pages']) == sorted([''] + SUBCOMMANDS[command])
  for name, (status, page) in result['pages'].items():
    assert status == 0
    assert page.startswith('usage: %s %s' % (command, name)), page[:80]
    assert '--verbose' in page
  assert '--memory-efficient' in result['pages']['train'][1]


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_module_help_is_quiet(command, tmp_path):
  # `python -m densenet.cli --help`: fast because it loads no TensorFlow
  # (checked above); speed itself belongs to benchmarks.
  process = run_python('-m', COMMANDS[command], '--help', cwd=tmp_path,
                       timeout=60, env=python_env(TF_CPP_MIN_LOG_LEVEL=None))
  assert process.stderr == ''
  assert process.stdout.startswith('usage: %s' % command)


@pytest.mark.parametrize('module,command', [(cli, 'densenet'),
                                            (segmentation_cli, 'segmentation')])
def test_version(module, command, capsys):
  import densenet  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit) as exit_info:
    module.main(['--version'])
  assert exit_info.value.code == 0
  assert capsys.readouterr().out.strip() == '%s %s' % (command,
                                                        densenet.__version__)


def _subparsers(parser):
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      yield from action.choices.items()


@pytest.mark.parametrize('module', [cli, segmentation_cli])
def test_every_option_has_help_and_shows_its_default(module):
  parser = module.build_parser()
  for name, subparser in _subparsers(parser):
    page = subparser.format_help()
    for action in subparser._actions:  # pylint: disable=protected-access
      assert action.help, (name, action.dest)
      default = action.default
      if (isinstance(default, (int, float, str)) and default is not False
          and default != argparse.SUPPRESS and action.option_strings):
        assert '(default: %s)' % (default,) in ' '.join(page.split()), (
            name, action.dest)


def _raising(error):
  """A parser whose one command, 'go', raises `error`."""

  def registrar(subparsers):
    common.add_command(subparsers, 'go', _raise(error), help='Raise.')

  return common.build_parser('prog', 'A test.', [registrar])


def _raise(error):
  def func(args):
    del args
    raise error
  return func


def test_exit_status_table(capsys):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cases = [
      (KeyboardInterrupt(), 130, 'interrupted'),
      (ValueError('num_classes must be >= 2'), 2, 'num_classes must be'),
      (FileNotFoundError('x/config.json does not exist.'), 2, 'x/config'),
      (NotADirectoryError('runs is a file'), 2, 'runs is a file'),
      (common.UsageError('give --train-dir'), 2, 'give --train-dir'),
      (tf.errors.NotFoundError(None, None, 'no checkpoint\nat x'), 2,
       'no checkpoint (more with --verbose)'),
      (PermissionError(13, 'Permission denied', 'out.ckpt'), 1,
       'Permission denied'),
      (FloatingPointError('loss is NaN at step 3'), 1,
       'FloatingPointError: loss is NaN at step 3'),
      (tf.errors.DataLossError(None, None, 'corrupted record\nmore'), 1,
       'DataLossError: corrupted record (more with --verbose)'),
      (tf.errors.InvalidArgumentError(
          None, None, 'Graph execution error:\n\nDetected at node x\n'
          'assertion failed: [inputs are too small: 29x29] [28 40]\n'
          '\t [[{{node x}}]]'), 1,
       'InvalidArgumentError: [inputs are too small: 29x29] [28 40] (more '
       'with --verbose)'),
      (RuntimeError(), 1, 'prog go: error: RuntimeError\n'),
  ]
  for error, status, message in cases:
    assert common.main(_raising(error), ['go']) == status, error
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    assert err.startswith('prog go: error: ') and message in err, err


def test_height_width_is_one_parser_for_both_commands():
  # segmentation --crop-size and the LiteRT --input-size of both commands.
  assert [arguments.height_width(text) for text in ('33', '32,40', '32x40',
                                                     '32X40')] == [
                                                         (33, 33), (32, 40),
                                                         (32, 40), (32, 40)]
  for bad in ('32x0', '3,4,5', 'a', '', '-1'):
    with pytest.raises(argparse.ArgumentTypeError, match='must be N, H,W or '
                       'HxW'):
      arguments.height_width(bad)
