"""Segmentation constants and evaluation options (no TensorFlow import).

DeepLab evaluates at one scale by default and, for its best numbers, averages
the softmax of six scales and their left-right flips:

    from segmentation import tasks
    tasks.evaluate('runs/seg', 'records/val-*',
                   eval_scales=eval_options.DEEPLAB_EVAL_SCALES, flip=True)

    segmentation evaluate --model-dir runs/seg --eval 'records/val-*' \\
        --eval-scales 0.5,0.75,1.0,1.25,1.5,1.75 --flip

`add_arguments` gives `evaluate` and `predict` (and `train`, for its periodic
evaluation) the same two flags; `add_train_arguments` adds `--eval` and
`--eval-every` to `train`.
"""

import argparse

# The label of pixels that count for nothing (Pascal VOC's object borders,
# padding): the loss, the metrics and the label checks skip them.
IGNORE_LABEL = 255

# Segmentation heads (`segmentation.model`), output strides of the backbone,
# optimizers of `segmentation train`.
HEADS = ('fcn', 'aspp', 'deeplabv3plus')
OUTPUT_STRIDES = (8, 16, 32)
OPTIMIZERS = ('momentum', 'adam')
DEFAULT_EVAL_SCALES = (1.0,)
DEEPLAB_EVAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def check_scales(eval_scales):
  """`eval_scales` as a tuple of positive floats.

  Raises:
    ValueError: If `eval_scales` is empty or holds a value <= 0 (or one that
      is not a number).
  """
  try:
    scales = tuple(float(scale) for scale in eval_scales)
  except (TypeError, ValueError) as e:
    raise ValueError('eval_scales must be a list of positive numbers, got '
                     '%r.' % (eval_scales,)) from e
  if not scales or min(scales) <= 0:
    raise ValueError('eval_scales must be a non-empty list of positive '
                     'numbers, got %r.' % (eval_scales,))
  return scales


def describe(eval_scales=DEFAULT_EVAL_SCALES, flip=False):
  """A short name of the options: '' for the default single scale, else e.g.
  'scales_0.5-0.75-1-1.25-1.5-1.75_flip' (used in TensorBoard tags)."""
  scales = check_scales(eval_scales)
  if scales == DEFAULT_EVAL_SCALES and not flip:
    return ''
  name = 'scales_' + '-'.join('%g' % scale for scale in scales)
  return name + ('_flip' if flip else '')


def parse_scales(text):
  """argparse type of `--eval-scales`: '0.5,0.75,1.0' -> (0.5, 0.75, 1.0)."""
  try:
    return check_scales(part for part in text.split(',') if part.strip())
  except ValueError as e:
    raise argparse.ArgumentTypeError(
        '--eval-scales must be comma-separated positive numbers such as '
        '0.5,0.75,1.0,1.25,1.5,1.75, got %r.' % text) from e


def add_arguments(parser):
  """Adds `--eval-scales` and `--flip` to an argparse (sub)parser."""
  parser.add_argument(
      '--eval-scales', type=parse_scales,
      default=','.join(str(scale) for scale in DEFAULT_EVAL_SCALES),
      help='Comma-separated input scales whose softmax is averaged at the '
      'input resolution (DeepLab: 0.5,0.75,1.0,1.25,1.5,1.75).')
  parser.add_argument(
      '--flip', action='store_true',
      help='Also average the left-right flipped input of every scale.')


def add_train_arguments(parser, records_type=None, steps_type=int):
  """Adds `--eval`, `--eval-every`, `--eval-scales` and `--flip` to `train`.

  `records_type` and `steps_type` are the argparse types of `--eval` (e.g.
  a glob that must match) and `--eval-every`.
  """
  parser.add_argument(
      '--eval', dest='eval_pattern', type=records_type,
      help='Glob of validation TFRecords evaluated during training (mIoU to '
      'TensorBoard in <model-dir>/eval, best checkpoint in <model-dir>/best).')
  parser.add_argument(
      '--eval-every', type=steps_type,
      help='Steps between evaluations (default: --checkpoint-every).')
  add_arguments(parser)
