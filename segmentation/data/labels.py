"""Label maps: their values, histograms, checks and PNG files.

Labels are `[height, width]` class ids with 255 the ignore label
(`segmentation.options.IGNORE_LABEL`). `check_labels` refuses values that are
neither a class id nor ignored (from build-data's histograms, before any
work); `checked_label` does it for every label as the pipeline reads it, and
`label_errors` turns that failure into a one-line `LabelError`. Label PNGs are
palette ('P', Pascal VOC's colours) or grayscale ('L') images of class ids.
"""

import contextlib
import re

import numpy as np
from PIL import Image
import tensorflow as tf

from segmentation.options import IGNORE_LABEL

BINARY_MASK_HINT = ('labels look like 0/255 binary masks: use --remap 255:1 '
                    '(255 is the ignore label)')


class LabelError(ValueError):
  """Label values that are neither a class id nor the ignore label."""


def check_remap(remap):
  """`{source: target}` of label values in [0, 255] -> a `[256]` uint8 table.

  Raises:
    ValueError: For values outside [0, 255]; names them.
  """
  table = np.arange(256, dtype=np.uint8)
  for source, target in (remap or {}).items():
    for value in (source, target):
      if isinstance(value, bool) or not isinstance(
          value, (int, np.integer)) or not 0 <= value <= 255:
        raise ValueError('remap values must be label values in [0, 255], got '
                         '%r: %r.' % (source, target))
    table[source] = target
  return table


def compact_count(count):
  """1234567 -> '1.23M', 30000 -> '30k', 999 -> '999'."""
  count = float('%.3g' % count)
  for size, unit in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
    if count >= size:
      return '%g%s' % (count / size, unit)
  return '%d' % count


def format_histogram(histogram, ignore_label=IGNORE_LABEL):
  """'0: 1.2M, 1: 30k, 255 (ignore): 4k' of `{label value: pixels}`."""
  return ', '.join(
      '%d%s: %s' % (value, ' (ignore)' if value == ignore_label else '',
                    compact_count(count))
      for value, count in sorted(histogram.items())) or 'none'


def looks_binary(histogram, ignore_label=IGNORE_LABEL):
  """Whether the only label values are 0 and the ignore label (0/255 masks)."""
  return set(histogram) == {0, ignore_label}


def check_labels(histogram, num_classes, examples=None, where='labels',
                 ignore_label=IGNORE_LABEL):
  """Raises `LabelError` unless every value is < num_classes or ignored.

  Args:
    histogram: `{label value: pixel count}`.
    num_classes: Classes of the model, or None to check nothing.
    examples: Optional `{label value: [file names]}` named in the message.
    where: What the labels are (the message's start).
    ignore_label: The ignore label.

  Raises:
    LabelError: One line naming each bad value, its pixel count and example
      files, and the likely cause: 0/255 binary masks (use --remap 255:1),
      and, with 0 and 255 only, that nothing but background would be learnt.
  """
  if num_classes is None:
    return
  bad = sorted(value for value, count in histogram.items()
               if count and value >= num_classes and value != ignore_label)
  if bad:
    raise LabelError(
        '%s: label values neither < num_classes=%d nor %d (ignore): %s; '
        'map them to class ids (build-data --remap SRC:DST) or raise '
        '--num-classes.' % (where, num_classes, ignore_label, '; '.join(
            '%d: %d pixels%s' % (value, histogram[value], (
                ' (e.g. %s)' % ', '.join(sorted(examples[value]))
                if examples and examples.get(value) else ''))
            for value in bad)))
  if num_classes > 1 and looks_binary(histogram, ignore_label):
    raise LabelError(
        '%s: %s; the only values are 0 (%d pixels) and %d (%d pixels), so '
        'nothing but the background would be learnt.' % (
            where, BINARY_MASK_HINT, histogram[0], ignore_label,
            histogram[ignore_label]))


def as_dict(histogram):
  """`[256]` pixel counts -> `{label value: count}` of the values present."""
  return {int(value): int(histogram[value])
          for value in np.flatnonzero(histogram)}


def voc_palette(num_colors=256):
  """Pascal VOC's colour map: `[num_colors, 3]` uint8 (class 255 is white)."""
  palette = np.zeros((num_colors, 3), np.uint8)
  for index in range(num_colors):
    color, value = np.zeros(3, np.int64), index
    for shift in range(7, -1, -1):
      for channel in range(3):
        color[channel] |= ((value >> channel) & 1) << shift
      value >>= 3
    palette[index] = color
  return palette


def save_label_png(path, label):
  """Writes `[height, width]` class ids as a VOC palette PNG."""
  image = Image.fromarray(np.asarray(label, np.uint8), mode='P')
  image.putpalette(voc_palette().reshape(-1).tolist())
  image.save(path)


def read_label(path):
  """`[height, width]` uint8 class ids of a palette or grayscale PNG.

  Raises:
    ValueError: If the file is not a 'P' or 'L' image; names the file.
  """
  with Image.open(path) as image:
    if image.mode not in ('P', 'L'):
      raise ValueError('%s: label must be a palette (P) or grayscale (L) '
                       'PNG of class ids, got mode %s.' % (path, image.mode))
    return np.array(image)


_CHECK = 'label check: '


def checked_label(label, filename, num_classes, ignore_label=IGNORE_LABEL):
  """`label` after a runtime assertion that its values are < num_classes or
  `ignore_label`; the failure (`label_errors` turns it into a `LabelError`)
  names the image, the bad values, their pixel count and the likely cause.

  Args:
    label: `[height, width]` int32 label of one record.
    filename: Scalar string, the record's image file name.
    num_classes: Classes of the model.
    ignore_label: The ignore label.
  """
  bad = tf.logical_and(label >= num_classes, label != ignore_label)
  bad = tf.logical_or(bad, label < 0)
  count = tf.reduce_sum(tf.cast(bad, tf.int64))
  values = tf.sort(tf.unique(tf.boolean_mask(label, bad)).y)
  message = tf.strings.join([
      _CHECK, 'record of image ', filename, ': ', tf.strings.as_string(count),
      ' pixels have label values ',
      tf.strings.reduce_join(tf.strings.as_string(values), separator=', '),
      ', neither < num_classes=%d nor %d (ignore); the records hold more '
      'classes than --num-classes, or values to map with `segmentation '
      'build-data --remap SRC:DST` (0/255 binary masks: --remap 255:1)' % (
          num_classes, ignore_label)])
  check = tf.debugging.Assert(tf.equal(count, 0), [message])
  with tf.control_dependencies([check]):
    return tf.identity(label)


def _label_message(error):
  """The `checked_label` message in a TensorFlow error's, or None."""
  match = re.search(re.escape(_CHECK) + r'[^\]\n]*', error.message or '')
  return match.group(0).replace('\\"', '"') + '.' if match else None


@contextlib.contextmanager
def label_errors():
  """Turns a failed `checked_label` assertion into a one-line `LabelError`.

  A context manager, or a decorator: `@data.label_errors()`.
  """
  try:
    yield
  except tf.errors.InvalidArgumentError as error:
    message = _label_message(error)
    if message is None:
      raise
    raise LabelError(message) from None
