"""The record of a classification run: `ClassificationConfig` (its
`config.json`; imports no TensorFlow).

    config = ClassificationConfig.load('runs/c10+')
    config.spec.build(images, is_training=False)     # the network
    config.batch_size, config.num_steps ...          # the recipe

The network is a `densenet.spec.ModelSpec` (`spec`); the rest is the data
and the recipe. `config.json` holds both flat: the spec's fields
(`ModelSpec.to_dict()`) beside the run's, so a new model setting (a field
of `ModelSpec`) is recorded, read back and checked on resume with no change
here. Files of 0.1 and earlier (the architecture under 'model') still load.
"""

import dataclasses

from densenet import spec as spec_lib
from densenet.training import rundir

CONFIG_FILE = rundir.CONFIG_FILE

# Run settings a resumed run must keep (besides the network's): what its
# checkpoints were trained on and with.
_FIXED = ('dataset', 'batch_size', 'augment', 'dropout_rate', 'weight_decay')
# The network settings that may change between a run and its resumption.
_RESUMABLE = ('memory_efficient',)


@dataclasses.dataclass(frozen=True)
class ClassificationConfig(object):
  """A classification run's settings (`config.json`).

  Attributes:
    spec: The network: a `densenet.spec.ModelSpec` (architecture,
      num_classes, what its weights expect, memory_efficient...).
    data_dir: The `densenet.datasets` directory trained on.
    dataset: Its name ('CIFAR10', 'image_folder', ...).
    augment: The standard augmentation.
    batch_size: Global batch size.
    steps_per_epoch, num_steps: Steps of an epoch, and of the whole run.
    learning_rate, learning_rate_boundaries, learning_rate_decay: The step
      schedule (`densenet.training.schedules.step`).
    momentum, nesterov: SGD momentum.
    weight_decay: L2 weight decay of the convolution kernels.
    dropout_rate: Dropout after each convolution.
    initial_checkpoint: The weights a fresh run started from, or None.
  """
  spec: spec_lib.ModelSpec
  data_dir: str
  dataset: str
  augment: bool
  batch_size: int
  steps_per_epoch: int
  num_steps: int
  learning_rate: float
  learning_rate_boundaries: tuple
  learning_rate_decay: float
  momentum: float
  nesterov: bool
  weight_decay: float
  dropout_rate: float
  initial_checkpoint: str = None

  def to_dict(self):
    """The JSON-able `config.json`: the spec's fields and the run's."""
    values = {field.name: getattr(self, field.name)
              for field in dataclasses.fields(self) if field.name != 'spec'}
    values['learning_rate_boundaries'] = list(self.learning_rate_boundaries)
    return dict(values, **self.spec.to_dict())

  @classmethod
  def from_dict(cls, values):
    """From `to_dict()` or a saved `config.json` (also 0.1's, whose
    architecture is 'model'); run settings it lacks are None."""
    run_fields = [field.name for field in dataclasses.fields(cls)
                  if field.name != 'spec']
    return cls(spec=spec_lib.ModelSpec.from_config(values),
               **{name: values.get(name) for name in run_fields})

  @classmethod
  def load(cls, run_dir):
    """The config of `run_dir`.

    Raises:
      FileNotFoundError: If `run_dir` has no config.json.
    """
    saved = rundir.read_config(run_dir)
    if saved is None:
      raise FileNotFoundError('%s has no %s: train a model there first.' %
                              (run_dir, CONFIG_FILE))
    return cls.from_dict(saved)

  @classmethod
  def fixed_settings(cls):
    """The `to_dict()` keys a resumed run must keep: the network's (all but
    `memory_efficient`) and what its checkpoints were trained with."""
    network = [field.name for field in dataclasses.fields(spec_lib.ModelSpec)
               if field.name not in _RESUMABLE]
    return list(_FIXED) + network
