"""The record of a segmentation network: `ModelConfig` (a model's config.json).

    from segmentation.config import ModelConfig
    config = ModelConfig(num_classes=21, architecture='densenet_121',
                         output_stride=16, head='deeplabv3plus')
    net_fn = segmentation.model.net_fn(config)   # (images, is_training)

The backbone's part of it (its architecture and what its weights expect) is
a `densenet.spec.ModelSpec` (`config.spec()`); the rest is the head. The
config is checked when made (no TensorFlow), so a head the backbone cannot
carry is refused before anything is built.
"""

import dataclasses
import warnings

from densenet import spec as spec_lib
from densenet.training import rundir
from segmentation import options

CONFIG_FILE = rundir.CONFIG_FILE

# Settings that may differ between a run and its resumption.
_RESUMABLE = ('memory_efficient',)
# Settings `densenet.training.run.Run.settings` resolves when left None.
RESOLVED = spec_lib.CONTRACT + ('memory_efficient',)


@dataclasses.dataclass
class ModelConfig(object):
  """Everything needed to rebuild a segmentation network (`config.json`).

  Attributes:
    num_classes: Classes, background included.
    architecture: The backbone's: a `densenet.MODELS` name or a `densenet_X`
      config dict (`backbone=` is its 0.1 name, accepted for one release).
    output_stride: 8, 16 or 32, one the backbone reaches.
    head: 'fcn', 'aspp' or 'deeplabv3plus'.
    depth: ASPP / decoder channels.
    dropout_rate: ASPP dropout.
    weight_decay: L2 weight decay.
    normalization: The `densenet.preprocessing` mode of the inputs.
    class_names: Optional names, one per class.
    batch_norm_epsilon, root_padding: What the backbone's weights expect
      (see `densenet.spec.ModelSpec`).
    memory_efficient: Dense units recompute in the backward pass; may change
      when a run resumes.
  normalization, batch_norm_epsilon, root_padding and memory_efficient left
  None are resolved by `train` (`resolved`): the initial checkpoint's
  contract, else the resumed run's, else `densenet.spec.DEFAULTS`.
  """
  num_classes: int
  architecture: object = 'densenet_121'
  output_stride: int = 16
  head: str = 'aspp'
  depth: int = 256
  dropout_rate: float = 0.1
  weight_decay: float = 1e-4
  normalization: object = None
  class_names: list = None
  batch_norm_epsilon: float = None
  root_padding: str = None
  memory_efficient: bool = None
  backbone: dataclasses.InitVar[object] = None  # The 0.1 name.

  def __post_init__(self, backbone):
    """Raises ValueError for a bad head, output stride or architecture."""
    if backbone is not None:
      warnings.warn('ModelConfig(backbone=...) is deprecated: the field is '
                    'named architecture.', DeprecationWarning, stacklevel=3)
      self.architecture = backbone
    if self.head not in options.HEADS:
      raise ValueError('head must be one of %s, got %r.' %
                       (options.HEADS, self.head))
    if self.output_stride not in options.OUTPUT_STRIDES:
      raise ValueError('output_stride must be one of %s, got %r.' %
                       (options.OUTPUT_STRIDES, self.output_stride))
    try:
      resolved = spec_lib.resolve(self.architecture)
    except ValueError as e:
      raise ValueError('Bad backbone: %s' % e) from None
    options.check_backbone(self.architecture)
    resolved.check_output_stride(self.output_stride,
                                 options.INITIAL_OUTPUT_STRIDE)

  def names(self):
    return list(self.class_names or ['class_%d' % i
                                     for i in range(self.num_classes)])

  def spec(self):
    """The `densenet.spec.ModelSpec` of the network (backbone contract)."""
    return spec_lib.ModelSpec.from_config(dataclasses.asdict(self))

  def resolved(self, saved=None, checkpoint_contract=None):
    """A copy with every None setting filled (see the class docstring).

    Raises:
      ValueError: If a given setting contradicts `checkpoint_contract`.
    """
    settings = spec_lib.merge_settings(
        {name: getattr(self, name) for name in RESOLVED},
        checkpoint_contract, saved)
    return dataclasses.replace(self, **settings)

  @classmethod
  def fixed_settings(cls):
    """The settings a resumed run must keep (all but `memory_efficient`)."""
    return [f.name for f in dataclasses.fields(cls)
            if f.name not in _RESUMABLE]

  def to_dict(self):
    """The JSON-able `config.json`."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values):
    """From `to_dict()` or a saved `config.json` (also 0.1's, whose
    architecture is 'backbone'); other keys are ignored."""
    values = dict(values)
    if 'architecture' not in values and 'backbone' in values:
      values['architecture'] = values['backbone']
    fields = {field.name for field in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in fields})

  def save(self, model_dir):
    """Writes `model_dir/config.json` atomically."""
    rundir.write_config(model_dir, self.to_dict())

  @classmethod
  def load(cls, model_dir):
    """Raises ValueError if `model_dir` has no config.json."""
    saved = rundir.read_config(model_dir)
    if saved is None:
      raise ValueError('%s has no %s: train a model there first.' %
                       (model_dir, CONFIG_FILE))
    return cls.from_dict(saved).resolved()


# `config.backbone`, the 0.1 name of `config.architecture`, read-only.
ModelConfig.backbone = property(lambda self: self.architecture,
                                doc='The 0.1 name of `architecture`.')
