"""ModelSpec as the one road to the graph: `keras_model` built on it, its
argument checks before Keras, and its SavedModel (issues 21 and 22, cases
4, 13, 14, 15).

One tiny `densenet_X` model (blocks of 1 and 2 units, k=4) serves the call
checks and the SavedModel; the named architectures are compared with the
slim constructors' variables.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import densenet
from densenet import nets
from densenet import spec as spec_lib
from densenet.training import slim_model

TINY = {'num_units_per_block': [1, 2], 'growth_rate': 4,
        'num_initial_filters': 8}


def _first_line(error):
  return str(error.value).splitlines()[0]


@pytest.fixture(scope='module')
def tiny():
  """The tiny model (3 classes), and float images in [0, 255]."""
  model = densenet.keras_model(TINY, num_classes=3)
  images = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3))
  model(images.astype(np.float32), training=True)  # Statistics off 0 and 1.
  return model, images.astype(np.uint8).astype(np.float32)


def _slim_variables(constructor, **kwargs):
  """{name: shape} of a slim constructor's variables, in a TF1 graph."""
  import tf_slim as slim  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [1, 32, 32, 3])
    with slim.arg_scope(densenet.densenet_arg_scope()):
      constructor(images, is_training=False, **kwargs)
    return {v.op.name: v.shape.as_list()
            for v in tf.compat.v1.global_variables()}


def test_keras_model_builds_every_architecture_resolve_names():
  """Every name `spec.resolve` (and `densenet train`) takes; the bug: CIFAR
  names outside `densenet.MODELS` were refused."""
  model = densenet.keras_model('densenet_bc_10_k4', num_classes=10)
  ours = {name: v.shape.as_list()
          for name, v in model.variables_by_name().items()}
  expected = _slim_variables(nets.densenet_cifar, depth=10, growth_rate=4,
                             bc=True, num_classes=10)
  assert len(ours) == len(expected) == 47
  assert ours == expected
  assert model.name == 'densenet_bc_10_k4'
  logits = model(np.zeros([2, 32, 32, 3], np.float32), training=False)
  assert logits.shape == (2, 10)
  # The named ones resolve to their own constructor (building DenseNet-BC
  # L=100 takes seconds: the spec is enough).
  spec, weights = slim_model.model_spec('densenet_bc_100_k12', 10)
  assert (spec.resolved.constructor, spec.scope, spec.num_classes,
          spec.normalization, weights) == (
              'densenet_bc_100_k12', 'densenet_bc_100_k12', 10, None, None)


def test_call_refuses_a_training_that_is_not_a_bool(tiny):
  """Case 4: 'no' was taken for True (training mode, moving averages
  updated)."""
  model, images = tiny
  before = {name: v.numpy() for name, v in model.variables_by_name().items()}
  for training in ('no', 1, 'False'):
    with pytest.raises(ValueError) as error:
      model(images, training=training)
    assert _first_line(error) == (
        'training must be True, False, a bool Tensor or None, got %r.' %
        (training,))
  for name, value in model.variables_by_name().items():
    np.testing.assert_array_equal(value.numpy(), before[name], err_msg=name)
  # A bool Tensor is fine, and so is numpy's bool.
  np.testing.assert_array_equal(
      model(images, training=tf.constant(False)).numpy(),
      model(images, training=np.bool_(False)).numpy())


def test_call_names_the_channels_the_model_was_built_for(tiny):
  """Case 13: was 'Trying to share variable densenet_X/conv1/weights, but
  specified shape (7, 7, 1, 8) and found shape (7, 7, 3, 8)'."""
  model, images = tiny
  with pytest.raises(ValueError) as error:
    model(images[..., :1], training=False)
  assert _first_line(error) == (
      'The model densenet_X was built for 3-channel images [batch, height, '
      'width, 3]; got inputs of shape (2, 32, 32, 1).')


@pytest.mark.parametrize('kwargs,message', [
    ({'num_classes': 0}, 'num_classes must be None or an int >= 1, got 0.'),
    ({'output_stride': 3},
     'output_stride=3 cannot be reached; valid values: 4, 8 or None.'),
    ({'output_stride': 8, 'initial_output_stride': 2},
     'output_stride=8 cannot be reached; valid values: 2, 4 or None.'),
    ({'colour': 'red'}, 'colour: not an argument of the densenet_X '
     'constructor; its arguments are bottleneck, compression, dropout_rate, '
     'global_pool, initial_output_stride, memory_efficient, output_stride, '
     'reuse, root, scope, spatial_squeeze, theta.'),
    ({'growth_rate': 8}, 'growth_rate: the architecture densenet_X sets '
     'growth_rate; pass them once, in the architecture.'),
    ({'is_training': True}, 'is_training is not a keras_model constructor '
     'argument: call the model with training=True or False.'),
])
def test_keras_model_errors_come_first_not_under_keras_text(kwargs, message):
  """Case 14: the real message on the first line, not 'Exception
  encountered when calling layer ...'."""
  kwargs.setdefault('num_classes', 3)
  with pytest.raises(ValueError) as error:
    densenet.keras_model(TINY, **kwargs)
  assert _first_line(error) == message


def test_errors_raised_inside_call_are_unwrapped():
  """What Keras still wraps (an error while tracing the network) comes out
  as raised: its class, its message on the first line."""

  def net_fn(images, is_training):
    raise ValueError('output_stride=16 cannot be reached; valid values: 4, '
                     '8 or None.')

  model = slim_model.SlimModel(net_fn)
  with pytest.raises(ValueError) as error:
    model(np.zeros([1, 8, 8, 3], np.float32), training=False)
  assert _first_line(error).startswith('output_stride=16 cannot be reached')
  assert 'Exception encountered' not in str(error.value)


def test_saved_model_takes_uint8_and_says_too_small(tiny, tmp_path):
  """Case 15: `model.save()` refused uint8 ('Could not find matching
  concrete function') and a 3x3 image gave 'Negative dimension size'."""
  model, images = tiny
  expected = model(images, training=False).numpy()
  np.testing.assert_allclose(
      model(images.astype(np.uint8), training=False).numpy(), expected,
      atol=1e-5)
  model.save(str(tmp_path / 'saved'))
  loaded = tf.saved_model.load(str(tmp_path / 'saved'))
  for dtype in (np.float32, np.uint8):
    logits = loaded(tf.constant(images.astype(dtype)), training=False)
    assert logits.dtype == tf.float32
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5,
                               err_msg=str(dtype))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'inputs are too small: densenet_X needs images '
                     r'of at least 5x5 pixels .*\[3 3\]'):
    loaded(tf.zeros([1, 3, 3, 3]), training=False)
  # tf_keras' own loader still revives it (float32, its saved spec).
  import tf_keras  # pylint: disable=g-import-not-at-top
  revived = tf_keras.models.load_model(str(tmp_path / 'saved'))
  np.testing.assert_allclose(revived(images, training=False).numpy(),
                             expected, atol=1e-5)


def test_output_strides_without_tensorflow_match_the_constructors():
  """`Architecture.output_strides` (TF-free, what the command line checks)
  gives the strides the constructors' `stack_blocks_dense` accepts (on the
  architecture's real block list), and no other."""
  from densenet import architectures  # pylint: disable=g-import-not-at-top
  from densenet.layers import blocks  # pylint: disable=g-import-not-at-top
  cases = [('densenet_121', None), ('densenet_bc_10_k4', None),
           ('densenet_bc_10_k4', 4), (TINY, None), (TINY, 2),
           (dict(TINY, initial_output_stride=1), None)]
  for architecture, initial in cases:
    resolved = spec_lib.resolve(architecture)
    if isinstance(architecture, dict):
      settings = dict(architecture)
    elif resolved.constructor == 'densenet_cifar':
      settings = architectures.cifar(10, 4, True)
    else:
      settings = architectures.ARCHITECTURES[architecture]
    block_list = nets.densenet_blocks(settings['num_units_per_block'],
                                      settings['growth_rate'])
    input_stride = initial or settings.get('initial_output_stride', 4)
    valid = resolved.output_strides(initial)
    for stride in (1, 2, 3, 4, 8, 16, 32, 64):
      try:
        blocks.minimum_input_size(block_list, stride, input_stride)
        reachable = True
      except ValueError as error:
        assert 'cannot be reached' in str(error)
        reachable = False
      assert reachable == (stride in valid), (architecture, initial, stride)
    assert len(valid) == len(settings['num_units_per_block'])


# ---------------------------------------------------------------------------
# What a checkpoint records, through `read_weights`, decides keras_model's
# normalization.


def test_keras_model_takes_the_contract_its_weights_record(tiny, tmp_path):
  """A checkpoint of ours without metadata: images used as given, epsilon
  and stem the defaults (`read_weights` says nothing was recorded); with a
  recorded normalization the model normalizes [0, 255] images itself."""
  from densenet.weights import checkpoints  # pylint: disable=g-import-not-at-top
  from densenet.weights import convert  # pylint: disable=g-import-not-at-top
  model, images = tiny
  prefix = checkpoints.save(
      {name: v.numpy() for name, v in model.variables_by_name().items()},
      str(tmp_path / 'bare' / 'model.ckpt'))
  _, metadata = convert.read_weights(prefix)
  assert metadata['recorded'] == []
  assert metadata['model'] == 'densenet_X'
  again = densenet.keras_model(TINY, num_classes=3, checkpoint=prefix)
  np.testing.assert_array_equal(again(images, training=False).numpy(),
                                model(images, training=False).numpy())
  weights = {name.split('/', 1)[1]: v.numpy()
             for name, v in model.variables_by_name().items()}
  recorded = checkpoints.save_checkpoint(
      weights, {'model': TINY, 'num_classes': 3, 'batch_norm_epsilon': 1e-3,
                'normalization': 'pudae', 'root_padding': 'same'},
      str(tmp_path / 'recorded' / 'model.ckpt'))
  assert checkpoints.read_contract(recorded) == {
      'architecture': TINY, 'num_classes': 3,
      'batch_norm_epsilon': 1e-3, 'normalization': 'pudae',
      'root_padding': 'same'}
  spec, _ = slim_model.model_spec(None, 3, recorded)
  assert (spec.batch_norm_epsilon, spec.root_padding, spec.normalization) == (
      1e-3, 'same', 'pudae')
  normalizing = densenet.keras_model(checkpoint=recorded, num_classes=3)
  # The reference: the slim graph built and fed by hand.
  import tf_slim as slim  # pylint: disable=g-import-not-at-top
  from densenet import preprocessing  # pylint: disable=g-import-not-at-top
  from densenet.weights import assign  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    inputs = preprocessing.normalize(tf.constant(images), 'pudae')
    with slim.arg_scope(densenet.densenet_arg_scope(
        batch_norm_epsilon=1e-3)), slim.arg_scope([nets.root_block],
                                                  padding='same'):
      logits, _ = nets.densenet_X(inputs, 3, is_training=False, **TINY)
    init_fn = assign.assign_fn(weights, 'densenet_X')
    with tf.compat.v1.Session() as session:
      init_fn(session)
      expected = session.run(logits)
  ours = normalizing(images, training=False).numpy()
  assert np.abs(ours - model(images, training=False).numpy()).max() > 1e-3
  np.testing.assert_allclose(ours, expected, atol=1e-5)


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
  it: a 0.2 file (architecture under 'model' / 'backbone', normalization
  spelled {'mode': m}) resumes; a changed fixed setting is named."""
  import json  # pylint: disable=g-import-not-at-top
  from densenet.classification import config as config_lib  # pylint: disable=g-import-not-at-top
  from densenet.training import run as run_lib  # pylint: disable=g-import-not-at-top
  from segmentation import config as segmentation_config  # pylint: disable=g-import-not-at-top
  strategy = tf.distribute.get_strategy()
  config = _classification_config()
  written = config.to_dict()
  assert config_lib.ClassificationConfig.from_dict(written) == config
  assert set(dataclasses_fields(spec_lib.ModelSpec)) <= set(written)
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


def dataclasses_fields(cls):
  import dataclasses  # pylint: disable=g-import-not-at-top
  return [field.name for field in dataclasses.fields(cls)]


def test_model_config_checks_the_head_when_made():
  """Case 14 in Python: an output stride the backbone cannot reach is a
  ValueError when the config is made, before TensorFlow builds anything;
  `backbone=` (0.2) still names the architecture."""
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
# One name per concept on the command line; the 0.2 spellings hidden.

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
  import os as os_lib  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os_lib.path.dirname(os_lib.path.dirname(os_lib.path.abspath(
      __file__)))
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
        text=True, timeout=120, env=dict(os_lib.environ, PYTHONPATH=root))
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip().splitlines() == [
        'segmentation train: error: output_stride=16 cannot be reached; '
        'valid values: 4, 8 or None.']
    assert 'TF=False' in process.stdout
    assert not os_lib.path.exists(tmp_path / 'run' / 'config.json')


# ---------------------------------------------------------------------------
# One atomic write, one name rule.


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
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
