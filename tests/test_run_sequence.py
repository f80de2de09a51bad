"""The run sequence both trainers share (`densenet.training.Run`), their
configs (0.1 files too), the bugs around it (Trainer.build's answer, a
checkpoint without global_step), one name per concept on the command line
(the 0.1 spellings hidden), one atomic write and one weight-name rule
(issue 21; case 14 on the command line, issue 22).

Cheap on purpose: no training but one step of a tiny network; the command
lines are parsed, and one runs in a fresh interpreter to show that the
mistake is reported before TensorFlow loads.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from densenet import spec as spec_lib

TINY = {'num_units_per_block': [1, 2], 'growth_rate': 4,
        'num_initial_filters': 8}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# The run sequence and its configs.


def _classification_config(**changes):
  from densenet.classification import config as config_lib  # pylint: disable=g-import-not-at-top
  values = dict(
      spec=spec_lib.ModelSpec('densenet_bc_10_k4', 10,
                              normalization={'mode': 'torch'}),
      data_dir='/data/c10', dataset='CIFAR10', augment=True, batch_size=16,
      steps_per_epoch=12, num_steps=30, learning_rate=0.1,
      learning_rate_boundaries=[15, 22], learning_rate_decay=0.1,
      momentum=0.9, nesterov=True, weight_decay=1e-4, dropout_rate=0.0)
  values.update(changes)
  return config_lib.ClassificationConfig(**values)


def test_run_checks_old_and_new_config_files_alike(tmp_path):
  """Resuming compares the saved config read the way the config class reads
  it: a 0.1 file (architecture under 'model' / 'backbone', normalization
  spelled {'mode': m}) resumes; a changed fixed setting is named."""
  from densenet.classification import config as config_lib  # pylint: disable=g-import-not-at-top
  from densenet.training import run as run_lib  # pylint: disable=g-import-not-at-top
  from segmentation import config as segmentation_config  # pylint: disable=g-import-not-at-top
  strategy = tf.distribute.get_strategy()
  config = _classification_config()
  written = config.to_dict()
  assert config_lib.ClassificationConfig.from_dict(written) == config
  assert {field.name for field in dataclasses.fields(spec_lib.ModelSpec)} <= (
      set(written))
  # A config.json of 0.2: the architecture under 'model', no output_stride.
  old = {k: v for k, v in written.items()
         if k not in ('architecture', 'output_stride')}
  old.update(model='densenet_bc_10_k4', normalization='torch')
  run_dir = tmp_path / 'classification'
  run_dir.mkdir()
  (run_dir / 'config.json').write_text(json.dumps(old))
  run = run_lib.Run(str(run_dir), strategy)
  assert run.prepare(config) == str(run_dir)
  assert config_lib.ClassificationConfig.load(str(run_dir)) == (
      _classification_config(spec=config.spec.replace(normalization='torch')))
  with pytest.raises(ValueError) as error:
    run.prepare(_classification_config(
        spec=config.spec.replace(architecture='densenet_bc_16_k4'),
        batch_size=8))
  assert ('other settings (batch_size, architecture): batch_size=16 (now 8); '
          "architecture='densenet_bc_10_k4' (now 'densenet_bc_16_k4')") in (
              str(error.value))
  # memory_efficient and the length may change.
  run.prepare(_classification_config(
      spec=config.spec.replace(memory_efficient=True), num_steps=60))

  model_config = segmentation_config.ModelConfig(
      num_classes=3, architecture=TINY, output_stride=8, head='fcn')
  old = dict(model_config.to_dict(), backbone=TINY)
  del old['architecture']
  run_dir = tmp_path / 'segmentation'
  run_dir.mkdir()
  (run_dir / 'config.json').write_text(json.dumps(old))
  assert segmentation_config.ModelConfig.load(str(run_dir)).architecture == (
      TINY)
  run = run_lib.Run(str(run_dir), strategy)
  settings = run.settings({name: None for name in segmentation_config.RESOLVED})
  assert settings == dict(spec_lib.DEFAULTS)
  run.prepare(model_config)
  with pytest.raises(ValueError, match=r'other settings \(head\)'):
    run.prepare(segmentation_config.ModelConfig(
        num_classes=3, architecture=TINY, output_stride=8, head='aspp'))


def test_model_config_checks_the_head_when_made():
  """Case 14 in Python: an output stride the backbone cannot reach is a
  ValueError when the config is made, before TensorFlow builds anything;
  `backbone=` (0.1) still names the architecture."""
  from segmentation import config as segmentation_config  # pylint: disable=g-import-not-at-top
  model_config = segmentation_config.ModelConfig
  with pytest.raises(ValueError) as error:
    model_config(num_classes=3, architecture=TINY, output_stride=16)
  assert str(error.value) == (
      'output_stride=16 cannot be reached; valid values: 4, 8 or None.')
  with pytest.raises(ValueError, match="head must be one of"):
    model_config(num_classes=3, head='psp')
  with pytest.raises(ValueError, match="Bad backbone: Unknown architecture"):
    model_config(num_classes=3, architecture='resnet_50')
  with pytest.warns(DeprecationWarning, match='named architecture'):
    config = model_config(num_classes=3, backbone=TINY, output_stride=8)
  assert config.architecture == config.backbone == TINY
  assert 'backbone' not in config.to_dict()


def test_trainer_build_says_what_it_restored_every_time(tmp_path):
  """`Trainer.build` returned None both for a fresh start and when already
  built; now it returns the restored checkpoint (None: fresh) each time."""
  from densenet import training  # pylint: disable=g-import-not-at-top
  spec = spec_lib.ModelSpec(TINY, 3)
  images = np.random.RandomState(1).uniform(-1, 1, (4, 16, 16, 3)).astype(
      np.float32)
  data = tf.data.Dataset.from_tensor_slices(
      (images, np.arange(4) % 3)).repeat().batch(2)
  calls = []

  def make_trainer():
    return training.Trainer(
        spec.net_fn(), lambda labels, logits: tf.nn.
        sparse_softmax_cross_entropy_with_logits(labels, logits),
        str(tmp_path), 2, checkpoint_every=1, progress=False,
        init_fn=calls.append)

  fresh = make_trainer()
  assert fresh.build(images[:2]) is None
  assert fresh.build(images[:2]) is None
  assert len(calls) == 1
  checkpoint = fresh.train(data, 1).checkpoint
  resumed = make_trainer()
  assert resumed.build(images[:2]) == checkpoint
  assert resumed.build(images[:2]) == checkpoint  # Was None.
  assert resumed.restored_checkpoint == checkpoint and len(calls) == 1


def test_segmentation_loads_a_checkpoint_without_global_step(tmp_path):
  """`load_model` read global_step unguarded (a NotFoundError for weights
  saved without the trainer); now it says None, as classification does."""
  from densenet import training  # pylint: disable=g-import-not-at-top
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  from segmentation import evaluation  # pylint: disable=g-import-not-at-top
  from segmentation import model as model_lib  # pylint: disable=g-import-not-at-top
  from segmentation import tasks  # pylint: disable=g-import-not-at-top
  config = tasks.ModelConfig(num_classes=3, architecture=TINY,
                             output_stride=8, head='fcn').resolved()
  config.save(str(tmp_path))
  model = training.SlimModel(model_lib.net_fn(config))
  model(np.zeros([1, 32, 32, 3], np.float32), training=False)
  prefix = checkpoints.save(
      {name: v.numpy() for name, v in model.variables_by_name().items()},
      str(tmp_path / 'weights.ckpt'))
  loaded, _, path, step = tasks.load_model(str(tmp_path), prefix)
  assert (path, step) == (prefix, None)
  assert sorted(loaded.variables_by_name()) == sorted(
      model.variables_by_name())
  results = {'mean_iou': 0.5, 'pixel_accuracy': 0.75, 'num_images': 2,
             'per_class_iou': {'a': 0.5, 'b': None, 'c': 0.5},
             'eval_scales': [1.0], 'flip': False}
  chart = evaluation.write_results(str(tmp_path / 'eval'), results, None)
  assert os.path.isfile(chart)
  assert training.read_global_step(prefix) is None


# ---------------------------------------------------------------------------
# One name per concept on the command line; the 0.1 spellings hidden.

RENAMED = [  # (program, command, new argv, old argv, dest)
    ('densenet', 'train', ['--model-dir', 'r'], ['--train-dir', 'r'],
     'model_dir'),
    ('densenet', 'train', ['--architecture', 'densenet_bc_10_k4'],
     ['--model', 'densenet_bc_10_k4'], 'architecture'),
    ('densenet', 'train', ['--steps', '7'], ['--num-steps', '7'], 'steps'),
    ('densenet', 'evaluate', ['--model-dir', '.'], ['--train-dir', '.'],
     'model_dir'),
    ('densenet', 'evaluate', ['--architecture', '{"num_units_per_block": [1]}'],
     ['--model', '{"num_units_per_block": [1]}'], 'architecture'),
    ('densenet', 'classify', ['--architecture', 'densenet_121'],
     ['--model', 'densenet_121'], 'architecture'),
    ('densenet', 'export', ['--architecture', 'densenet_169'],
     ['--model', 'densenet_169'], 'architecture'),
    ('densenet', 'convert', ['--architecture', 'densenet_201'],
     ['--model', 'densenet_201'], 'architecture'),
    ('segmentation', 'train', ['--architecture', 'densenet_169'],
     ['--backbone', 'densenet_169'], 'architecture'),
]
# What else each command needs to parse.
REQUIRED = {
    ('densenet', 'train'): ['--data-dir', 'd', '--model-dir', 'run'],
    ('densenet', 'evaluate'): [],
    ('densenet', 'classify'): ['image.jpg', '--checkpoint', '.'],
    ('densenet', 'export'): ['out', '--checkpoint', '.'],
    ('densenet', 'convert'): ['.', 'out'],
    ('segmentation', 'train'): ['--model-dir', 'run', '--train', __file__,
                                '--num-classes', '3', '--steps', '2'],
}


def _parser(program):
  from densenet import cli  # pylint: disable=g-import-not-at-top
  from segmentation import cli as segmentation_cli  # pylint: disable=g-import-not-at-top
  return (cli if program == 'densenet' else segmentation_cli).build_parser()


@pytest.mark.parametrize('program,command,new,old,dest', RENAMED,
                         ids=[' '.join(row[:2] + (row[3][0],))
                              for row in RENAMED])
def test_old_option_names_still_parse_and_stay_hidden(program, command, new,
                                                      old, dest, capsys):
  required = list(REQUIRED[program, command])
  if new[0] in required:  # Given by the row itself.
    index = required.index(new[0])
    del required[index:index + 2]
  parser = _parser(program)
  with_new = parser.parse_args([command] + required + new)
  with_old = parser.parse_args([command] + required + old)
  assert vars(with_old) == vars(with_new)
  if program == 'segmentation' or new[0] != '--model-dir':  # Not required.
    without = parser.parse_args([command] + required)
    assert getattr(without, dest) != getattr(with_old, dest)
  with pytest.raises(SystemExit):
    parser.parse_args([command, '--help'])
  page = capsys.readouterr().out
  assert new[0] in page
  assert old[0] + ' ' not in page and old[0] + '\n' not in page


def test_a_renamed_required_option_is_required_under_either_name(capsys):
  from densenet.cli import common  # pylint: disable=g-import-not-at-top
  parser = _parser('densenet')
  with pytest.raises(SystemExit) as exit_info:
    common.main(parser, ['train', '--data-dir', 'd'])
  assert exit_info.value.code == 2
  assert ('densenet train: error: the following arguments are required: '
          '--model-dir') in capsys.readouterr().err


def test_unreachable_output_stride_is_one_line_before_tensorflow(tmp_path):
  """Case 14 on the command line: was 'error: Exception encountered when
  calling layer 'slim_model' (type SlimModel)'."""
  (tmp_path / 'train-0.tfrecord').write_bytes(b'')
  code = ('import sys\nfrom segmentation.cli import main\nstatus = main('
          'sys.argv[1:])\nprint("TF=%s" % ("tensorflow" in sys.modules))\n'
          'sys.exit(status)\n')
  for option in ('--architecture', '--backbone'):
    process = subprocess.run(
        [sys.executable, '-c', code, 'train', '--model-dir', 'run',
         '--train', 'train-*', '--num-classes', '3', '--steps', '2', option,
         '{"num_units_per_block": [2, 2], "growth_rate": 4}',
         '--output-stride', '16'], cwd=str(tmp_path), capture_output=True,
        text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip().splitlines() == [
        'segmentation train: error: output_stride=16 cannot be reached; '
        'valid values: 4, 8 or None.']
    assert 'TF=False' in process.stdout
    assert not os.path.exists(tmp_path / 'run' / 'config.json')


# ---------------------------------------------------------------------------
# One atomic write, one name rule.


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
  from densenet._env import atomic  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'sub' / 'config.json')
  atomic.write_json(path, {'b': 2, 'a': [1]})
  with open(path) as f:
    assert f.read() == '{\n  "a": [\n    1\n  ],\n  "b": 2\n}\n'

  def fail(temporary):
    with open(temporary, 'w') as f:
      f.write('{"half": ')
    raise OSError(28, 'No space left on device')

  with pytest.raises(OSError, match='No space left'):
    atomic.write(path, fail)
  with open(path) as f:
    assert json.load(f) == {'a': [1], 'b': 2}
  assert os.listdir(tmp_path / 'sub') == ['config.json']
  # The temporary keeps the name's extension (Pillow picks the format).
  assert atomic.temporary_path(path).endswith('-config.json')
  assert os.path.basename(atomic.temporary_path(path)).startswith('.tmp-')


def test_one_name_rule_for_restoring_and_assigning():
  from densenet.weights import assign  # pylint: disable=g-import-not-at-top
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  report = checkpoints.match_by_name(
      {'s/a': [2], 's/b': [3], 's/c': [1], 's/logits/w': [4]},
      {'s/a': (2,), 's/b': (4,), 'x': (1,), 's/logits/w': (4,)},
      exclude_scopes=['s/logits'])
  assert tuple(report) == (['s/a'], ['s/c', 's/logits/w'], ['s/b'],
                           ['s/logits/w', 'x'], {'s/b': ([3], [4])})

  class Variable(object):  # What match_variables reads of a tf.Variable.

    def __init__(self, name, shape):
      self.op = type('Op', (), {'name': name})
      self.shape = tf.TensorShape(shape)

  variables = [Variable('s/a', [2]), Variable('s/b', [3])]
  weights = {'a': np.zeros(2), 'b': np.zeros(4), 'extra': np.zeros(1)}
  with pytest.raises(ValueError) as error:
    assign.match_variables(weights, variables, 's')
  assert error.value.mismatched == [('s/b', [3], [4])]
  assert error.value.unused == ['extra']
  weights['b'] = np.ones(3)
  pairs, unused = assign.match_variables(weights, variables, 's')
  assert [(v.op.name, list(value)) for v, value in pairs] == [
      ('s/a', [0, 0]), ('s/b', [1, 1, 1])]
  assert unused == ['extra']


def test_fine_tuning_takes_the_contract_a_training_run_records(tmp_path):
  """The initial checkpoint of a run may be another run's (a training
  checkpoint without metadata): its config.json says what the weights
  expect (`runs.read_contract`, on `runs.describe`), in 0.2's spelling
  too."""
  from densenet.training import run as run_lib  # pylint: disable=g-import-not-at-top
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  statistics = {'mean': [125.3, 123.0, 113.9], 'std': [63.0, 62.1, 66.7]}
  config = _classification_config(spec=spec_lib.ModelSpec(
      TINY, 10, batch_norm_epsilon=1e-3, normalization=statistics))
  for name, values in (
      ('new', config.to_dict()),
      ('old', dict({k: v for k, v in config.to_dict().items()
                    if k != 'architecture'}, model=TINY))):
    run_dir = tmp_path / name
    prefix = checkpoints.save({'densenet_X/conv1/weights': np.zeros([1]),
                               'global_step': np.int64(5)},
                              str(run_dir / 'model.ckpt-5'))
    tf.compat.v1.train.update_checkpoint_state(str(run_dir), prefix)
    (run_dir / 'config.json').write_text(json.dumps(values))
    for initial in (prefix, str(run_dir)):
      contract = run_lib.Run(str(tmp_path / 'tuned'), None, initial).contract
      assert contract == {'architecture': TINY, 'num_classes': 10,
                          'batch_norm_epsilon': 1e-3,
                          'root_padding': 'symmetric',
                          'normalization': statistics}, (name, initial)


def test_renamed_arguments_keep_their_old_names_for_one_release():
  """One name per concept in the Python API too: the architecture is
  `architecture`, the run directory `model_dir`; 0.2's names still work
  (with a DeprecationWarning), and giving both is an error."""
  import inspect  # pylint: disable=g-import-not-at-top

  import densenet  # pylint: disable=g-import-not-at-top
  from densenet import classification  # pylint: disable=g-import-not-at-top
  from densenet.serve import export  # pylint: disable=g-import-not-at-top
  from densenet.serve import pretrained  # pylint: disable=g-import-not-at-top
  from densenet.weights import convert  # pylint: disable=g-import-not-at-top
  renamed = [
      (densenet.keras_model, 'model', 'architecture'),
      (classification.train, 'model', 'architecture'),
      (classification.train, 'train_dir', 'model_dir'),
      (classification.evaluate, 'model', 'architecture'),
      (classification.evaluate, 'train_dir', 'model_dir'),
      (classification.evaluate_folder, 'model', 'architecture'),
      (classification.evaluate_folder, 'train_dir', 'model_dir'),
      (convert.read_weights, 'model_name', 'architecture'),
      (convert.convert, 'model_name', 'architecture'),
      (densenet.load_pretrained, 'model_name', 'architecture'),
      (pretrained.Classifier, 'model_name', 'architecture'),
      (pretrained.build_classifier, 'model_name', 'architecture'),
      (export.export_saved_model, 'model_name', 'architecture'),
  ]
  for function, old, new in renamed:
    parameters = inspect.signature(function).parameters
    assert new in parameters and old not in parameters, function
    with pytest.raises(TypeError, match='got %s and its old name %s' %
                       (new, old)):
      function(**{old: 'densenet_121', new: 'densenet_121'})
  with pytest.warns(DeprecationWarning, match=r'keras_model\(model=\.\.\.\) '
                    'is deprecated: the argument is named architecture'):
    model = densenet.keras_model(model=TINY, num_classes=2)
  assert model.name == 'densenet_X'
