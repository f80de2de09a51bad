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
import glob

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


# The range of an evaluation scale: above MAX_EVAL_SCALE an image costs more
# than 16x the time and memory of scale 1 (the pixels grow as the square),
# below MIN_EVAL_SCALE the network sees a tenth of the image's side.
MIN_EVAL_SCALE = 0.1
MAX_EVAL_SCALE = 4.0


# The stride of a segmentation backbone's root (`segmentation.model`).
INITIAL_OUTPUT_STRIDE = 4


def check_backbone(backbone):
  """Raises ValueError if a backbone config asks for another root stride.

  A segmentation backbone is built at `initial_output_stride` 4: the
  output strides (8, 16, 32) and the ASPP rates count from it, and the
  DeepLab v3+ decoder takes `dense_block1` as its stride-4 features.
  Classification honours the key; here a config dict (or a `ModelSpec`'s
  dict) may only repeat 4.
  """
  architecture = getattr(backbone, 'architecture', backbone)
  if not isinstance(architecture, dict):
    return
  stride = architecture.get('initial_output_stride', INITIAL_OUTPUT_STRIDE)
  if stride != INITIAL_OUTPUT_STRIDE:
    raise ValueError(
        'backbone initial_output_stride=%r cannot be used for segmentation: '
        'its backbones are built at initial_output_stride %d (the output '
        'strides 8/16/32 and the ASPP rates count from it, and the DeepLab '
        'v3+ decoder takes dense_block1 as its stride-4 features); remove '
        'the key (classification honours it).' % (stride,
                                                   INITIAL_OUTPUT_STRIDE))


def check_scales(eval_scales):
  """`eval_scales` as a tuple of floats in [MIN_EVAL_SCALE, MAX_EVAL_SCALE].

  Raises:
    ValueError: If `eval_scales` is empty or holds a value that is not a
      finite number in that range (NaN, inf, 0, 100...), with the reason.
  """
  try:
    scales = tuple(float(scale) for scale in eval_scales)
  except (TypeError, ValueError) as e:
    raise ValueError('eval_scales must be a list of numbers in [%g, %g], got '
                     '%r.' % (MIN_EVAL_SCALE, MAX_EVAL_SCALE,
                              eval_scales)) from e
  if not scales:
    raise ValueError('eval_scales must be a non-empty list of numbers in '
                     '[%g, %g], got %r.' % (MIN_EVAL_SCALE, MAX_EVAL_SCALE,
                                            eval_scales))
  bad = [scale for scale in scales
         if not MIN_EVAL_SCALE <= scale <= MAX_EVAL_SCALE]  # NaN included.
  if bad:
    raise ValueError(
        'eval_scales must be finite numbers in [%g, %g], got %s: a scale '
        'multiplies the image\'s height and width, so scale s costs s**2 '
        'times the time and memory of scale 1 (%g: %gx), and below %g the '
        'network sees too few pixels.' % (
            MIN_EVAL_SCALE, MAX_EVAL_SCALE, ', '.join('%g' % s for s in bad),
            MAX_EVAL_SCALE, MAX_EVAL_SCALE ** 2, MIN_EVAL_SCALE))
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
        'must be comma-separated numbers in [%g, %g] such as '
        '0.5,0.75,1.0,1.25,1.5,1.75 (scale s costs s**2 times the time and '
        'memory of scale 1), got %r' % (MIN_EVAL_SCALE, MAX_EVAL_SCALE,
                                        text)) from e


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


def records_glob(pattern):
  """A glob that matches at least one file."""
  if not glob.glob(pattern):
    raise argparse.ArgumentTypeError('no file matches %r' % pattern)
  return pattern


def remap(text):
  """'SRC:DST[,SRC:DST...]' -> {SRC: DST}, label values in [0, 255]."""
  remap = {}
  for item in text.split(','):
    parts = item.split(':')
    try:
      source, target = [int(part) for part in parts]
    except ValueError:
      source = target = -1
    if not (0 <= source <= 255 and 0 <= target <= 255):
      raise argparse.ArgumentTypeError(
          'must be SRC:DST label values in [0, 255] (e.g. 255:1), got %r' %
          item)
    remap[source] = target
  return remap
