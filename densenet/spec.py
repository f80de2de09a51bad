"""`ModelSpec`: what a network is and what its weights expect (no TensorFlow).

One immutable record travels from a command line, a run directory's
`config.json` or a checkpoint's `densenet_metadata` to every builder
(classification, segmentation backbones, `load_pretrained`, export):

    from densenet import spec as spec_lib
    spec = spec_lib.ModelSpec('densenet_121', num_classes=1000,
                              batch_norm_epsilon=1.1e-5, root_padding='same',
                              normalization='pudae')
    logits, end_points = spec.build(spec.normalize(images), is_training=False)
    spec.to_dict()   # JSON-able; ModelSpec.from_dict(...) reads it back

Fields:
  architecture: a name of `densenet.architectures.ARCHITECTURES`, a CIFAR
    DenseNet spelled 'densenet_<L>_k<k>' / 'densenet_bc_<L>_k<k>' (any depth
    and growth rate), or a dict of `densenet_X` keyword arguments (at least
    `num_units_per_block`; variables under its 'scope', default
    'densenet_X').
  num_classes: logits of the network; None for features only.
  batch_norm_epsilon, root_padding ('symmetric' | 'same'), normalization (a
    `densenet.preprocessing` mode, `{'mode': m}`, or a data set's
    `{'mean': [...], 'std': [...]}`; None: the inputs are used as given):
    the contract of the weights (`CONTRACT`). Keras weights: 1.001e-5,
    'symmetric', 'torch'; pudae's: 1.1e-5, 'same', 'pudae'; torchvision's:
    1e-5, 'symmetric', 'torch'.
  memory_efficient: dense units recompute in the backward pass (same
    numbers, less memory).
  output_stride: the output stride (dense prediction), or None (nominal);
    checked against the architecture when built (`check_build`).

A setting of the network is a field here: `to_dict` / `from_dict` carry it
through every run config and the checkpoints' metadata.

The architecture is resolved in one place, `resolve`. This module imports
TensorFlow only inside the methods that build graphs, so the command-line
layer can use it (and `NAMES`, `ROOT_PADDINGS`, `STRATEGIES`) for argument
parsing.
"""

import contextlib
import dataclasses
import json
import re

from densenet import architectures

NAMES = architectures.NAMES
ROOT_PADDINGS = architectures.ROOT_PADDINGS
STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')
# What the weights expect from the network and the input pipeline.
CONTRACT = ('batch_norm_epsilon', 'root_padding', 'normalization')
DEFAULTS = {'batch_norm_epsilon': 1.001e-5, 'root_padding': 'symmetric',
            'normalization': 'torch', 'memory_efficient': False}
DEFAULT_WEIGHT_DECAY = 1e-4

_CIFAR_NAME = re.compile(r'^densenet_(bc_)?(\d+)_k(\d+)$')
# Run-config keys that name the architecture: classification's 'model',
# segmentation's 'backbone', checkpoint metadata's 'model'.
_ARCHITECTURE_KEYS = ('architecture', 'model', 'backbone')


@dataclasses.dataclass(frozen=True)
class Architecture(object):
  """A resolved architecture: `densenet.nets.<constructor>(**kwargs)`.

  Attributes:
    constructor: The name of a `densenet.nets` function.
    kwargs: Its architecture keyword arguments (scope included).
    scope: The variable scope of the network.
    num_classes: The architecture's own number of classes (None for a
      config dict).
    num_blocks: Its dense blocks (a stride-2 transition between two).
    initial_output_stride: Its root's own stride (a constructor argument
      may change it).
  """
  constructor: str
  kwargs: dict
  scope: str
  num_classes: object = None
  num_blocks: int = 4
  initial_output_stride: int = 4

  def output_strides(self, initial_output_stride=None):
    """The output strides the network can reach, smallest first: the root's
    (`initial_output_stride`, default the architecture's own), doubled by
    each transition (`densenet.layers.blocks.stack_blocks_dense`'s rule)."""
    first = initial_output_stride or self.initial_output_stride
    return tuple(first * 2 ** t for t in range(self.num_blocks))

  def check_output_stride(self, output_stride, initial_output_stride=None):
    """Raises the constructors' ValueError if `output_stride` (an int or
    None) cannot be reached."""
    if output_stride is None:
      return
    valid = self.output_strides(initial_output_stride)
    if isinstance(output_stride, bool) or output_stride not in valid:
      raise ValueError('output_stride=%r cannot be reached; valid values: %s '
                       'or None.' % (output_stride,
                                     ', '.join(map(str, valid))))


def resolve(architecture):
  """The one place an architecture name or config becomes a constructor.

  Args:
    architecture: See the module docstring.

  Returns:
    An `Architecture`.

  Raises:
    ValueError: For an unknown name, or a dict without
      `num_units_per_block` or with a key not in
      `architectures.CONFIG_KEYS`.
  """
  if isinstance(architecture, dict):
    config = dict(architecture)
    if 'num_units_per_block' not in config:
      raise ValueError('An architecture dict needs num_units_per_block (and '
                       'may set %s), got %r.' % (
                           ', '.join(architectures.CONFIG_KEYS[1:]),
                           architecture))
    unknown = sorted(set(config) - set(architectures.CONFIG_KEYS))
    if unknown:
      raise ValueError('Unknown key(s) %s in the architecture dict %s; the '
                       'keys are: %s.' % (', '.join(map(repr, unknown)),
                                          json.dumps(architecture),
                                          ', '.join(architectures.CONFIG_KEYS)))
    config.setdefault('scope', 'densenet_X')
    units = config['num_units_per_block']
    return Architecture(
        'densenet_X', config, config['scope'],
        num_blocks=len(units) if isinstance(units, (list, tuple)) else 1,
        initial_output_stride=config.get('initial_output_stride', 4))
  if isinstance(architecture, str) and (
      architecture in architectures.ARCHITECTURES):
    settings = architectures.ARCHITECTURES[architecture]
    return Architecture(
        architecture, {}, architecture, settings['num_classes'],
        len(settings['num_units_per_block']),
        settings['initial_output_stride'])
  match = _CIFAR_NAME.match(str(architecture))
  if match:
    return Architecture(
        'densenet_cifar',
        {'depth': int(match.group(2)), 'growth_rate': int(match.group(3)),
         'bc': bool(match.group(1)), 'scope': architecture},
        architecture, 10, 3, 1)
  raise ValueError('Unknown architecture %r; use one of %s, '
                   'densenet_<L>_k<k> / densenet_bc_<L>_k<k> for a CIFAR '
                   'DenseNet, or a densenet_X config dict.' %
                   (architecture, ', '.join(sorted(NAMES))))


def infer_architecture(num_units_per_block, growth_rate):
  """The `ARCHITECTURES` name with these units per block and growth rate.

  Raises:
    ValueError: If none has that structure.
  """
  structure = tuple(num_units_per_block)
  for name, config in architectures.ARCHITECTURES.items():
    if (tuple(config['num_units_per_block']) == structure and
        config['growth_rate'] == growth_rate):
      return name
  raise ValueError('No named DenseNet has %s units per block and growth rate '
                   '%s; pass the architecture (a name or a densenet_X '
                   'config).' % (structure, growth_rate))


def same_normalization(first, second):
  """Whether two normalization descriptions mean the same ('torch' is
  `{'mode': 'torch'}`)."""
  return canonical_normalization(first) == canonical_normalization(second)


def config_architecture(values):
  """The architecture a config or metadata dict records ('architecture', or
  0.1's 'model' / 'backbone'), or None."""
  for key in _ARCHITECTURE_KEYS:
    if values.get(key) is not None:
      return values[key]
  return None


def canonical_normalization(value):
  """One spelling per normalization: `{'mode': 'torch'}` is 'torch'; a
  dataset's `{'mean': [...], 'std': [...]}` as JSON reads it back."""
  if isinstance(value, dict) and set(value) == {'mode'}:
    return value['mode']
  if isinstance(value, dict):
    return json.loads(json.dumps(value))
  return value


def _same(name, first, second):
  if name == 'normalization':
    return same_normalization(first, second)
  return first == second


def merge_settings(explicit, checkpoint=None, saved=None, defaults=None):
  """Settings from (in order) explicit values, an initial checkpoint's
  contract, a resumed run's saved config, and defaults.

  Args:
    explicit: {name: value or None (not given)}; its keys are the settings.
    checkpoint: {name: value} the weights expect (`read_contract`), or None.
    saved: The resumed run's config, or None.
    defaults: {name: value} for what nothing else gives (default
      `DEFAULTS`).

  Returns:
    {name: value} for every key of `explicit`.

  Raises:
    ValueError: If an explicit value contradicts the checkpoint's contract.
  """
  checkpoint, saved = checkpoint or {}, saved or {}
  defaults = DEFAULTS if defaults is None else defaults
  merged = {}
  for name, value in explicit.items():
    expected = checkpoint.get(name)
    if value is not None and expected is not None and not _same(
        name, value, expected):
      raise ValueError('%s=%r contradicts the initial checkpoint, whose '
                       'weights expect %r.' % (name, value, expected))
    for candidate in (value, expected, saved.get(name), defaults.get(name)):
      if candidate is not None:
        merged[name] = candidate
        break
    else:
      merged[name] = None
  return merged


@dataclasses.dataclass(frozen=True)
class ModelSpec(object):
  """What a network is and what its weights expect; see the module docstring."""
  architecture: object
  num_classes: object = None
  batch_norm_epsilon: float = DEFAULTS['batch_norm_epsilon']
  root_padding: str = DEFAULTS['root_padding']
  normalization: object = DEFAULTS['normalization']
  memory_efficient: bool = False
  output_stride: object = None

  def __post_init__(self):
    if isinstance(self.architecture, dict):  # A private, JSON-like copy.
      object.__setattr__(self, 'architecture',
                         json.loads(json.dumps(self.architecture)))
    self.resolved  # pylint: disable=pointless-statement  (validates)
    if self.root_padding not in ROOT_PADDINGS:
      raise ValueError('root_padding must be one of %s, got %r.' %
                       (ROOT_PADDINGS, self.root_padding))
    if not (isinstance(self.batch_norm_epsilon, (int, float)) and
            not isinstance(self.batch_norm_epsilon, bool) and
            self.batch_norm_epsilon > 0):
      raise ValueError('batch_norm_epsilon must be a number > 0, got %r.' %
                       (self.batch_norm_epsilon,))
    for name in ('num_classes', 'output_stride'):
      value = getattr(self, name)
      if value is not None and (not isinstance(value, int) or
                                isinstance(value, bool) or value < 1):
        raise ValueError('%s must be None or an int >= 1, got %r.' %
                         (name, value))
    object.__setattr__(self, 'memory_efficient', bool(self.memory_efficient))

  # -- Constructors ---------------------------------------------------------

  @classmethod
  def from_dict(cls, values, **overrides):
    """From `to_dict()`, a run config or checkpoint metadata.

    The architecture may be under 'architecture', 'model' (0.1's
    classification configs, checkpoint metadata) or 'backbone' (0.1's
    segmentation configs); other unknown keys are ignored, missing or None
    ones take the defaults (a spec whose images are used as given is
    `replace(normalization=None)`). `overrides` (not None) replace values.
    """
    values = dict(values)
    if config_architecture(values) is not None:
      values.setdefault('architecture', config_architecture(values))
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items()
                  if k in fields and v is not None})

  from_config = from_dict  # A run directory's config.json, as read.

  @classmethod
  def from_metadata(cls, metadata, architecture=None):
    """From a checkpoint's `densenet_metadata` (see
    `densenet.weights.convert`)."""
    return cls.from_dict(metadata, architecture=architecture)

  def replace(self, **changes):
    """A copy with `changes`."""
    return dataclasses.replace(self, **changes)

  def to_dict(self):
    """JSON-able {field: value}."""
    return json.loads(json.dumps(dataclasses.asdict(self)))

  def contract(self):
    """{name: value} of `CONTRACT`: what the weights expect."""
    return {name: getattr(self, name) for name in CONTRACT}

  # -- The network ----------------------------------------------------------

  @property
  def resolved(self):
    """The `Architecture` (see `resolve`)."""
    return resolve(self.architecture)

  @property
  def scope(self):
    """The variable scope of the network, e.g. 'densenet_121'."""
    return self.resolved.scope

  @contextlib.contextmanager
  def arg_scope(self, weight_decay=DEFAULT_WEIGHT_DECAY, **kwargs):
    """`densenet_arg_scope` with this spec's epsilon and memory_efficient,
    and the stem padding of `nets.root_block`.

    Args:
      weight_decay: L2 weight decay of the convolutions.
      **kwargs: Other `densenet_arg_scope` arguments.
    """
    import tf_slim as slim  # pylint: disable=g-import-not-at-top

    from densenet import nets  # pylint: disable=g-import-not-at-top
    from densenet.layers import blocks  # pylint: disable=g-import-not-at-top
    with slim.arg_scope(blocks.densenet_arg_scope(
        weight_decay=weight_decay,
        batch_norm_epsilon=self.batch_norm_epsilon,
        memory_efficient=self.memory_efficient, **kwargs)):
      with slim.arg_scope([nets.root_block],
                          padding=self.root_padding) as scope:
        yield scope

  def build(self, images, is_training, weight_decay=DEFAULT_WEIGHT_DECAY,
            **kwargs):
    """Builds the network under `arg_scope`.

    Args:
      images: `[batch, height, width, 3]` normalized images (`normalize`).
      is_training: Python bool or bool Tensor.
      weight_decay: L2 weight decay.
      **kwargs: More constructor keywords (`dropout_rate`, `global_pool`,
        `initial_output_stride`, `reuse`...); `num_classes` and
        `output_stride` default to the spec's.

    Returns:
      `(net, end_points)` of the constructor: `[batch, num_classes]` logits,
      or features when `num_classes` is None.
    """
    from densenet import nets  # pylint: disable=g-import-not-at-top
    resolved = self.resolved
    kwargs.setdefault('num_classes', self.num_classes)
    kwargs.setdefault('output_stride', self.output_stride)
    self.check_build(**kwargs)
    constructor = getattr(nets, resolved.constructor)
    with self.arg_scope(weight_decay=weight_decay):
      return constructor(images, is_training=is_training,
                         **dict(resolved.kwargs, **kwargs))

  def check_build(self, **kwargs):
    """Raises the ValueError `build(images, is_training, **kwargs)` would
    raise for `kwargs`' output stride (this spec's unless given), before
    anything is built (TF-free)."""
    output_stride = kwargs.get('output_stride', self.output_stride)
    self.resolved.check_output_stride(
        output_stride, kwargs.get('initial_output_stride'))

  def net_fn(self, weight_decay=DEFAULT_WEIGHT_DECAY, **kwargs):
    """`net_fn(images, is_training) -> logits`, for `densenet.training`."""

    def network(images, is_training):
      return self.build(images, is_training, weight_decay=weight_decay,
                        **kwargs)[0]

    return network

  def normalizer(self):
    """`fn(images in [0, 255]) -> float32 normalized images` (with
    normalization None: `fn(images) -> images`, used as given)."""
    if self.normalization is None:
      return lambda images: images
    from densenet import preprocessing  # pylint: disable=g-import-not-at-top
    return preprocessing.normalizer(self.normalization)

  def normalize(self, images):
    """`[..., 3]` RGB in [0, 255] -> what the weights expect (float32)."""
    return self.normalizer()(images)

