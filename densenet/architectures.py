"""The named DenseNet architectures, as data (imports no TensorFlow).

One table, `ARCHITECTURES`: constructor name -> the `densenet_X` settings that
define it. `densenet.nets` generates its named constructors from it; the
command-line layer lists its names (`--model` choices) without loading
TensorFlow; model specs resolve names through it.

    >>> ARCHITECTURES['densenet_121']['num_units_per_block']
    (6, 12, 24, 16)
"""

import collections


def _imagenet(num_units_per_block, growth_rate):
  return {'num_units_per_block': tuple(num_units_per_block),
          'growth_rate': growth_rate,
          'num_initial_filters': 2 * growth_rate,
          'compression': 0.5,
          'bottleneck': True,
          'root': 'imagenet',
          'initial_output_stride': 4,
          'num_classes': 1000,
          'default_image_size': 224}


def _cifar(depth, growth_rate, bc):
  units = (depth - 4) // (6 if bc else 3)
  return {'num_units_per_block': (units,) * 3,
          'growth_rate': growth_rate,
          'num_initial_filters': 2 * growth_rate if bc else 16,
          'compression': 0.5 if bc else 1.0,
          'bottleneck': bc,
          'root': 'cifar',
          'initial_output_stride': 1,
          'num_classes': 10,
          'default_image_size': 32,
          'depth': depth}


ARCHITECTURES = collections.OrderedDict([
    ('densenet_121', _imagenet((6, 12, 24, 16), 32)),
    ('densenet_169', _imagenet((6, 12, 32, 32), 32)),
    ('densenet_201', _imagenet((6, 12, 48, 32), 32)),
    ('densenet_161', _imagenet((6, 12, 36, 24), 48)),
    ('densenet_264', _imagenet((6, 12, 64, 48), 32)),
    ('densenet_40_k12', _cifar(40, 12, bc=False)),
    ('densenet_100_k12', _cifar(100, 12, bc=False)),
    ('densenet_100_k24', _cifar(100, 24, bc=False)),
    ('densenet_bc_100_k12', _cifar(100, 12, bc=True)),
    ('densenet_bc_250_k24', _cifar(250, 24, bc=True)),
    ('densenet_bc_190_k40', _cifar(190, 40, bc=True)),
])

NAMES = tuple(ARCHITECTURES)

# Stem paddings of `densenet.layers.root.root_block`: 'symmetric' (Keras,
# torchvision) or 'same' (TF's SAME, as pudae's checkpoints were built).
ROOT_PADDINGS = ('symmetric', 'same')


def cifar(depth, growth_rate, bc):
  """The settings of the paper's CIFAR DenseNet (-BC if `bc`), depth L, k."""
  return _cifar(depth, growth_rate, bc)


def cifar_name(depth, growth_rate, bc):
  """'densenet_bc_100_k12' for DenseNet-BC L=100 k=12, and so on."""
  return 'densenet_%s%d_k%d' % ('bc_' if bc else '', depth, growth_rate)


# The keys a `densenet_X` config dict may hold (a `--backbone` / `--model`
# JSON, a run's config.json): the architecture keywords of
# `densenet.nets.densenet_X` (tests/test_bad_inputs.py checks they are its
# parameters).
CONFIG_KEYS = ('num_units_per_block', 'growth_rate', 'theta', 'compression',
               'num_initial_filters', 'bottleneck', 'dropout_rate', 'root',
               'initial_output_stride', 'scope')
