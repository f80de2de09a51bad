"""What a checkpoint of ours holds, read with the run directory around it.

A converted checkpoint records its model and contract in `densenet_metadata`
(`densenet.weights.checkpoints`). A training checkpoint (`densenet train`,
`segmentation train`: `model.ckpt-<step>` with `global_step` and the
`optimizer/` slots) records nothing, but its run directory does: its
`config.json` (the model, the number of classes, what the weights expect)
and, for classification, the `metadata.json` of the dataset under
`config['data_dir']` (class names, image size). `describe` reads all of it,
once, for every entry point that takes weights (`classify`, `export`,
`load_pretrained`, `keras_model`, `evaluate`, and `read_contract` for
fine-tuning):

    from densenet.weights import runs
    prefix, metadata = runs.describe('runs/photos')      # its latest checkpoint
    metadata['model'], metadata['class_names'], metadata['image_size']
"""

import json
import os
import warnings

from densenet import spec as spec_lib
from densenet.weights import checkpoints

# The file names of `densenet.training.rundir` and `densenet.datasets`
# (higher floors, not imported here).
CONFIG_FILE = 'config.json'
DATASET_METADATA_FILE = 'metadata.json'
GLOBAL_STEP = 'global_step'

_DEFAULTS = dict(spec_lib.DEFAULTS)
del _DEFAULTS['memory_efficient']


def is_model_tensor(name):
  """Whether a checkpoint tensor is a network variable (not `global_step`,
  an `optimizer/` slot or the metadata)."""
  return not (name == GLOBAL_STEP or name == checkpoints.METADATA_KEY or
              name.startswith(checkpoints.OPTIMIZER_PREFIX))


def _read_json(path):
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _dataset(config, config_path):
  """`(class_names, image_size)` of a classification run's dataset."""
  data_dir = config.get('data_dir')
  path = data_dir and os.path.join(data_dir, DATASET_METADATA_FILE)
  if not path or not os.path.isfile(path):
    warnings.warn(
        '%s names the dataset %s, whose %s is not there: the classes are '
        'numbered and the training image size is not known (images are '
        'resized to 256 and cropped to 224 unless told: --resize-size, '
        '--crop-size).' % (config_path, data_dir, DATASET_METADATA_FILE),
        stacklevel=3)
    return None, None
  dataset = _read_json(path)
  shape = dataset.get('image_shape') or [None, None]
  return (dataset.get('class_names'),
          shape[0] if shape[0] == shape[1] else None)


def _from_config(config, config_path):
  """The metadata of a run's config.json (classification or segmentation)."""
  metadata = {name: config[name] for name in spec_lib.CONTRACT
              if config.get(name) is not None}
  metadata['recorded'] = sorted(metadata)
  architecture = spec_lib.config_architecture(config)
  if 'head' in config:  # segmentation.config.ModelConfig
    metadata.update(task='segmentation', model=architecture,
                    num_classes=None, head=config['head'],
                    class_names=config.get('class_names'),
                    segmentation_classes=config.get('num_classes'))
  else:
    class_names, image_size = _dataset(config, config_path)
    metadata.update(task='classification', model=architecture,
                    num_classes=config.get('num_classes'),
                    class_names=class_names, image_size=image_size,
                    data_dir=config.get('data_dir'))
  return metadata


def _named_scope(reader):
  """The one model scope of a checkpoint if it names an architecture
  ('densenet_121', 'densenet_bc_100_k12'...), else None."""
  scopes = {name.split('/', 1)[0] for name in reader.get_variable_to_shape_map()
            if is_model_tensor(name) and '/' in name}
  if len(scopes) != 1:
    return None
  scope = scopes.pop()
  try:
    spec_lib.resolve(scope)
  except ValueError:
    return None
  return scope


def describe(checkpoint, run_dir=None):
  """What a checkpoint of ours holds and what its weights expect.

  Args:
    checkpoint: A checkpoint prefix, or a directory (its latest checkpoint):
      converted weights, or a training run's.
    run_dir: The run directory whose `config.json` describes the checkpoint
      (default: the checkpoint's own directory).

  Returns:
    `(prefix, metadata)`: the checkpoint prefix, and a dict with 'model' (a
    name or `densenet_X` config; for a checkpoint without metadata or
    config.json the name of its variable scope if that is an architecture,
    else None), 'num_classes'
    (None for features or a segmentation backbone), 'batch_norm_epsilon',
    'root_padding', 'normalization' (recorded values, else
    `densenet.spec.DEFAULTS`), 'recorded' (the names of those that were
    recorded), 'class_names' (a list, or None if unknown), 'image_size'
    (the training images' side, or None), 'task' ('classification',
    'segmentation', or None for converted weights), 'global_step' (None
    without one), 'run_dir' (where `config.json` was read, or None),
    'checkpoint' (the prefix) and,
    for converted weights, what their metadata holds ('source'...).

  Raises:
    ValueError: If there is no readable checkpoint.
    FileNotFoundError: If `run_dir` is given and has no `config.json`.
  """
  prefix = checkpoints.latest(checkpoint)
  reader = checkpoints.reader(prefix)
  converted = checkpoints.read_metadata(prefix)
  config_dir = run_dir or os.path.dirname(os.path.abspath(prefix))
  config_path = os.path.join(config_dir, CONFIG_FILE)
  if run_dir is not None and not os.path.isfile(config_path):
    raise FileNotFoundError('%s does not exist.' % (config_path,))
  if converted is not None:
    metadata = dict(converted, task=None, class_names=None, image_size=None,
                    recorded=sorted(name for name in spec_lib.CONTRACT
                                    if name in converted))
    config_dir = None
  elif os.path.isfile(config_path):
    metadata = _from_config(_read_json(config_path), config_path)
  else:
    metadata = {'model': None, 'num_classes': None, 'task': None,
                'class_names': None, 'image_size': None, 'recorded': []}
    config_dir = None
  if metadata['model'] is None:  # A bare checkpoint: its scope's name?
    metadata['model'] = _named_scope(reader)
  for name, value in _DEFAULTS.items():
    if metadata.get(name) is None:
      metadata[name] = value
  metadata['global_step'] = (int(reader.get_tensor(GLOBAL_STEP))
                             if reader.has_tensor(GLOBAL_STEP) else None)
  metadata['run_dir'] = config_dir
  metadata['checkpoint'] = prefix
  return prefix, metadata


def read_contract(checkpoint):
  """What a checkpoint records about the network its weights are for, as
  `densenet.spec.ModelSpec` fields (`ModelSpec.from_dict` takes it): what
  fine-tuning from it must build and normalize with.

  Args:
    checkpoint: A checkpoint prefix or directory, converted or a training
      run's (`describe`).

  Returns:
    {field: value}: 'architecture' and 'num_classes' when known, and the
    `spec.CONTRACT` settings the checkpoint (or its run's config.json)
    records; the defaults `describe` fills in are left out.
  """
  with warnings.catch_warnings():  # Class names do not matter here.
    warnings.simplefilter('ignore')
    _, metadata = describe(checkpoint)
  contract = {name: metadata[name] for name in metadata['recorded']}
  for field, key in (('architecture', 'model'),
                     ('num_classes', 'num_classes')):
    if metadata.get(key) is not None:
      contract[field] = metadata[key]
  return contract


def check_classifier(metadata, checkpoint):
  """Raises a ValueError unless `metadata` (of `describe`) is a classifier's.

  Args:
    metadata: What `describe` (or `convert.read_weights`) returned.
    checkpoint: The weights given, for the message (a run's directory is
      named instead when known).
  """
  checkpoint = metadata.get('run_dir') or checkpoint
  if metadata.get('task') == 'segmentation':
    raise ValueError(
        '%s is a segmentation model (head %r on %s), not a classifier: it '
        'has no logits per image; use `segmentation predict` / '
        '`segmentation evaluate` with its model directory.' % (
            checkpoint, metadata.get('head'),
            spec_lib.resolve(metadata['model']).scope))
  if not metadata.get('num_classes'):
    raise ValueError('The weights of %s have no logits (num_classes is %r); '
                     'they cannot classify.' % (checkpoint,
                                                metadata.get('num_classes')))
