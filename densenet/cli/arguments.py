"""Argument types and shared options of both console scripts (no TensorFlow).

Each type is an argparse `type=` function: it returns the parsed value or
raises `argparse.ArgumentTypeError` with what was expected, so a mistake is
one usage line before TensorFlow loads.
"""

import argparse
import json
import os

from densenet import architectures
from densenet import spec
from densenet.training import cluster

# tf.distribute strategies of `densenet.training.distribute.get_strategy`.
STRATEGIES = spec.STRATEGIES
CLUSTER_TIMEOUT_SECONDS = cluster.CLUSTER_TIMEOUT_SECONDS


def positive_int(text):
  """An int >= 1."""
  return _int_at_least(text, 1, 'a positive integer')


def non_negative_int(text):
  """An int >= 0."""
  return _int_at_least(text, 0, 'an integer >= 0')


def _int_at_least(text, minimum, what):
  try:
    value = int(text)
  except ValueError:
    value = None
  if value is None or value < minimum:
    raise argparse.ArgumentTypeError('must be %s, got %r' % (what, text))
  return value


def positive_float(text):
  """A finite float > 0."""
  try:
    value = float(text)
  except ValueError:
    value = -1.0
  if not 0 < value < float('inf'):
    raise argparse.ArgumentTypeError('must be a number > 0, got %r' % text)
  return value


def non_negative_float(text):
  """A float >= 0."""
  try:
    value = float(text)
  except ValueError:
    value = -1.0
  if not value >= 0:
    raise argparse.ArgumentTypeError('must be a number >= 0, got %r' % text)
  return value


def _existing(exists, what):
  """An argparse type: the path itself if `exists(path)`, else an error."""

  def check(text):
    if not exists(text):
      raise argparse.ArgumentTypeError('no such %s: %s' % (what, text))
    return text

  check.__doc__ = 'A path to an existing %s.' % what
  return check


existing_file = _existing(os.path.isfile, 'file')


existing_dir = _existing(os.path.isdir, 'directory')


existing_path = _existing(os.path.exists, 'file or directory')


def checkpoint_path(text):
  """An existing file or directory, or a TF checkpoint prefix (PREFIX.index)."""
  if not (os.path.exists(text) or os.path.isfile(text + '.index')):
    raise argparse.ArgumentTypeError(
        'no such file, directory or checkpoint (%s.index): %s' % (text, text))
  return text


def architecture_name(text):
  """A name of `densenet.architectures.ARCHITECTURES`."""
  if text not in architectures.ARCHITECTURES:
    raise argparse.ArgumentTypeError(
        'unknown architecture %r; the architectures are %s' %
        (text, ', '.join(architectures.NAMES)))
  return text


def architecture(text):
  """An architecture: a name (`densenet.architectures.NAMES`, or a CIFAR
  DenseNet 'densenet[_bc]_<L>_k<k>'), or a `densenet_X` config as a JSON
  object with the keys of `architectures.CONFIG_KEYS`."""
  text = text.strip()
  if not text.startswith('{'):
    try:
      spec.resolve(text)
    except ValueError:
      return architecture_name(text)  # Raises, listing the names.
    return text
  try:
    config = json.loads(text)
  except ValueError as error:
    raise argparse.ArgumentTypeError('not a JSON object: %s' % error)
  if not isinstance(config, dict):
    raise argparse.ArgumentTypeError('not a JSON object: %s' % text)
  try:
    spec.resolve(config)
  except ValueError as error:
    raise argparse.ArgumentTypeError(str(error))
  return config


def add_run_arguments(parser):
  """The options both training commands share: `--strategy`,
  `--sync-batch-norm`, `--no-progress`, `--log-every`, `--cluster-timeout`
  (`parser` may be an argument group)."""
  parser.add_argument('--strategy', choices=STRATEGIES, default='auto',
                      help='tf.distribute strategy (auto: multi-worker with '
                      'TF_CONFIG, mirrored with several GPUs, else default).')
  parser.add_argument('--sync-batch-norm', action='store_true',
                      help='Batch norm over the global batch of all '
                      'replicas.')
  parser.add_argument('--no-progress', action='store_true',
                      help='Show no progress bar.')
  parser.add_argument('--log-every', type=non_negative_int, default=0,
                      help='Print "step N loss L" lines every N steps (0: '
                      'none).')
  parser.add_argument('--cluster-timeout', type=positive_float,
                      default=CLUSTER_TIMEOUT_SECONDS, metavar='SECONDS',
                      help='Multi-worker: seconds to wait for every worker '
                      'of TF_CONFIG to answer before giving up (exit 1, '
                      'naming the missing ones).')


def height_width(text):
  """'N', 'H,W' or 'HxW' -> (height, width), both >= 1."""
  try:
    parts = [int(p) for p in text.lower().replace('x', ',').split(',')]
  except ValueError:
    parts = []
  if len(parts) == 1:
    parts *= 2
  if len(parts) != 2 or min(parts) < 1:
    raise argparse.ArgumentTypeError('must be N, H,W or HxW, got %r' % text)
  return tuple(parts)


def comma_list(item_type):
  """'a,b,c' -> [item_type(a), item_type(b), item_type(c)]."""

  def parse(text):
    try:
      return [item_type(item) for item in text.split(',')]
    except ValueError as error:
      raise argparse.ArgumentTypeError(str(error))

  parse.__name__ = 'comma-separated %s list' % item_type.__name__
  return parse
