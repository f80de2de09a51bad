"""The named constructors, generated from the table of architectures.

`densenet.nets` builds `densenet_121`, ..., `densenet_bc_190_k40` and
`densenet_cifar` with these factories around its generic builder
(`densenet_X`), which they are given: each constructor takes the builder's
arguments minus those its architecture fixes, in the builder's order, with
the architecture's defaults.
"""

import inspect

from densenet import architectures

# densenet_X's parameters that define an architecture: fixed by a named
# constructor (from `architectures.ARCHITECTURES`), not among its arguments.
ARCHITECTURE_PARAMETERS = ('num_units_per_block', 'growth_rate',
                           'num_initial_filters', 'bottleneck', 'root')


class Default(float):
  """A default theta: equal to the float it holds, marked as not given.

  Lets `densenet_X` tell `theta` left at its default (any `compression` then
  applies) from `theta` given (a different `compression` is a conflict), while
  the signature still reads `theta=0.5`.
  """


def _signature(builder, leading, defaults):
  """The builder's signature for a constructor built on it.

  Args:
    builder: `densenet_X`.
    leading: Parameter names of the constructor placed after `inputs` (they
      must not be the builder's; no default), followed by the builder's own
      parameters minus `ARCHITECTURE_PARAMETERS`, in the builder's order.
    defaults: {builder parameter: this constructor's default}.
  """
  own = inspect.signature(builder).parameters
  parameters = [own['inputs']]
  parameters += [
      inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
      for name in leading]
  for name, parameter in own.items():
    if name != 'inputs' and name not in ARCHITECTURE_PARAMETERS:
      parameters.append(parameter.replace(
          default=defaults.get(name, parameter.default)))
  return inspect.Signature(parameters)


def _bind(signature, args, kwargs):
  bound = signature.bind(*args, **kwargs)
  bound.apply_defaults()
  return bound.arguments


def named_constructor(builder, name, architecture):
  """The constructor `name` of `architectures.ARCHITECTURES`.

  It takes the builder's arguments but the architecture's own
  (`ARCHITECTURE_PARAMETERS`), in the builder's order (for the ImageNet
  models the original library's: inputs, num_classes, theta, is_training,
  global_pool, output_stride, spatial_squeeze, initial_output_stride, reuse,
  scope), with the architecture's defaults for num_classes, theta,
  initial_output_stride and scope (its name).

  Args:
    builder: `densenet.nets.densenet_X`.
    name: The constructor's name, e.g. 'densenet_121'.
    architecture: Its entry of `architectures.ARCHITECTURES`.

  Returns:
    The constructor, with `default_image_size` and `architecture` (and for
    ImageNet models `num_units_per_block` and `growth_rate`) attributes.
  """
  fixed = {key: architecture[key] for key in ARCHITECTURE_PARAMETERS}
  signature = _signature(builder, (), {
      'num_classes': architecture['num_classes'],
      'theta': Default(architecture['compression']),
      'initial_output_stride': architecture['initial_output_stride'],
      'scope': name})

  def constructor(*args, **kwargs):
    return builder(**fixed, **_bind(signature, args, kwargs))

  constructor.__signature__ = signature
  constructor.__name__ = constructor.__qualname__ = name
  constructor.__module__ = builder.__module__
  if architecture['root'] == 'cifar':
    title = '%s L=%d, k=%d, on 32x32 images (%d classes by default)' % (
        'DenseNet-BC' if architecture['bottleneck'] else 'DenseNet',
        architecture['depth'], architecture['growth_rate'],
        architecture['num_classes'])
  else:
    title = 'DenseNet-%s (k=%d, units per block %s), ImageNet root' % (
        name.split('_')[-1], architecture['growth_rate'],
        architecture['num_units_per_block'])
  constructor.__doc__ = """%s.

  Args: see `densenet_X`; %s are fixed by the
    architecture; theta defaults to %s.

  Returns:
    (net, end_points); net is `[batch, num_classes]` for
    %dx%d inputs, or `[batch, size / output_stride, size / output_stride,
    channels]` with `num_classes=None, global_pool=False`.
  """ % (title, ', '.join(ARCHITECTURE_PARAMETERS),
         architecture['compression'],
         architecture['default_image_size'],
         architecture['default_image_size'])
  constructor.default_image_size = architecture['default_image_size']
  constructor.architecture = dict(architecture)
  if architecture['root'] == 'imagenet':
    constructor.num_units_per_block = architecture['num_units_per_block']
    constructor.growth_rate = architecture['growth_rate']
  return constructor


def cifar_constructor(builder):
  """`densenet_cifar`: the paper's CIFAR DenseNets around `builder`."""
  signature = _signature(
      builder, ('depth', 'growth_rate', 'bc'),
      {'num_classes': 10, 'theta': None, 'initial_output_stride': 1,
       'scope': None})
  signature = signature.replace(parameters=[
      p.replace(default=True) if p.name == 'bc' else p
      for p in signature.parameters.values()])

  def densenet_cifar(*args, **kwargs):
    """The paper's CIFAR DenseNets: three dense blocks on 32x32 images.

    `densenet_cifar(inputs, depth, growth_rate, bc=True, num_classes=10,
    theta=None, ...)`, then densenet_X's other arguments.

    DenseNet (`bc=False`): (depth - 4) / 3 units per block without
    bottleneck, 16 root filters, no compression (theta 1). DenseNet-BC
    (`bc=True`): (depth - 4) / 6 bottleneck units per block, 2k root
    filters, theta 0.5.

    Args:
      inputs: A `[batch, 32, 32, 3]` Tensor (other sizes work too).
      depth: L, the number of layers with weights.
      growth_rate: k.
      bc: DenseNet-BC (bottleneck and compression) or plain DenseNet.
      theta: The compression, None for the paper's (above).
      dropout_rate: The paper uses 0.2 when training without augmentation.
      Other args: see `densenet_X`; the scope defaults to e.g.
        'densenet_bc_100_k12', initial_output_stride to 1.

    Returns:
      (net, end_points); net is `[batch, num_classes]`.

    Raises:
      ValueError: If `depth` does not give a whole number of units per block.
    """
    arguments = _bind(signature, args, kwargs)
    depth, growth_rate, bc = (arguments.pop(name)
                              for name in ('depth', 'growth_rate', 'bc'))
    layers_per_unit = 6 if bc else 3
    if not isinstance(depth, int) or depth < 4 + layers_per_unit or (
        depth - 4) % layers_per_unit:
      raise ValueError('depth must be 4 + a positive multiple of %d for %s, '
                       'got %r.' % (layers_per_unit,
                                    'DenseNet-BC' if bc else 'DenseNet',
                                    depth))
    architecture = architectures.cifar(depth, growth_rate, bc)
    if arguments['scope'] is None:
      arguments['scope'] = architectures.cifar_name(depth, growth_rate, bc)
    if arguments['theta'] is None:
      arguments['theta'] = Default(architecture['compression'])
    return builder(**{key: architecture[key]
                      for key in ARCHITECTURE_PARAMETERS}, **arguments)

  densenet_cifar.__signature__ = signature
  densenet_cifar.__qualname__ = 'densenet_cifar'
  densenet_cifar.__module__ = builder.__module__
  densenet_cifar.default_image_size = 32
  return densenet_cifar
