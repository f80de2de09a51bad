"""Segmentation data: VOC-layout folders -> sharded TFRecords -> tf.data.

Pascal VOC layout (`voc_pairs`):
    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png      palette ('P') or grayscale ('L') PNG
    ROOT/ImageSets/Segmentation/{train,val}.txt   one <id> per line
or any folder pair (`folder_pairs`): images and label PNGs matched by stem.

`write_tfrecords` validates every pair (the image decodes completely, the
label is a palette or grayscale PNG of the image's size), skips and reports a
bad pair by file name, maps label values through an optional `remap`
(`{255: 1}` for 0/255 binary masks), counts the pixels of every label value
(the split's histogram, also written as `labels-<split>.json`, which no
`<split>-*` glob matches), refuses a split whose values are neither below
`num_classes` nor the ignore label 255, and writes `<split>-<i>-of-<n>.tfrecord`
shards atomically (`densenet.records`): a refused split leaves the earlier
records as they were. Records:
    image/encoded   the image file's bytes      image/format  'jpeg' | 'png'
    image/filename  basename                    image/height, image/width
    label/encoded   the label as grayscale PNG  (class ids, 255 = ignore)

`make_dataset` reads them: training batches with DeepLab's augmentation
(random scale in [0.5, 2.0], pad with the ignore label (images with the mean
pixel, 0 after normalization), random crop, random left-right flip), or
whole images one at a time for evaluation. Images come out normalized by
`densenet.preprocessing.normalize`, labels as `[..., height, width]` int32.
Given `num_classes`, the pipeline checks every label against it and stops
at the first image with a value that is neither a class id nor 255
(`LabelError`, raised where `label_errors` wraps the reading).
"""

import collections
import contextlib
import io
import json
import os
import re

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from densenet import preprocessing
from densenet import records
from segmentation.losses import IGNORE_LABEL

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
LABELS_FILE = 'labels-%s.json'  # A split's label histogram, next to its shards.
BINARY_MASK_HINT = ('labels look like 0/255 binary masks: use --remap 255:1 '
                    '(255 is the ignore label)')
_EXAMPLE_FILES = 3  # Example files named per label value.


class LabelError(ValueError):
  """Label values that are neither a class id nor the ignore label."""


class BadPairsError(ValueError):
  """Bad pairs in a split written with `strict`: nothing was written.

  Attributes:
    split: The split.
    errors: The message of each bad pair (naming its files).
  """

  def __init__(self, split, errors):
    super().__init__('%s: %d bad pairs, nothing written (strict): %s' % (
        split, len(errors), ' | '.join(errors)))
    self.split = split
    self.errors = list(errors)


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


def voc_pairs(root, split):
  """`[(image_path, label_path)]` of a VOC split (ImageSets/Segmentation).

  Raises:
    ValueError: If the split file is missing.
  """
  list_file = os.path.join(root, 'ImageSets', 'Segmentation', split + '.txt')
  if not os.path.isfile(list_file):
    raise ValueError('No split file %s (VOC layout expected under %s).' %
                     (list_file, root))
  with open(list_file) as f:
    ids = [line.strip().split()[0] for line in f if line.strip()]
  return [(os.path.join(root, 'JPEGImages', i + '.jpg'),
           os.path.join(root, 'SegmentationClass', i + '.png')) for i in ids]


def folder_pairs(image_dir, label_dir):
  """Images of `image_dir` paired with `label_dir/<stem>.png` (sorted).

  Raises:
    ValueError: If no image has a label.
  """
  pairs = []
  for name in sorted(os.listdir(image_dir)):
    stem, extension = os.path.splitext(name)
    if extension.lower() in IMAGE_EXTENSIONS:
      label = os.path.join(label_dir, stem + '.png')
      if os.path.exists(label):
        pairs.append((os.path.join(image_dir, name), label))
  if not pairs:
    raise ValueError('No image in %s has a label <stem>.png in %s.' %
                     (image_dir, label_dir))
  return pairs


def _feature(value):
  if isinstance(value, int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def encode_example(image_path, label_path, remap_table=None):
  """A serialized tf.train.Example of one pair.

  Args:
    image_path, label_path: The pair's files.
    remap_table: Optional `[256]` uint8 table of label values
      (`check_remap`), applied to the label.

  Returns:
    `(serialized example, [height, width] uint8 label as written)`.

  Raises:
    ValueError: If the image is corrupt or not RGB-convertible, the label is
      not a palette/grayscale PNG, or their sizes differ; the message names
      the files.
  """
  with open(image_path, 'rb') as f:
    image_bytes = f.read()
  try:
    with Image.open(io.BytesIO(image_bytes)) as image:
      image.load()  # Decodes everything: truncated files fail here.
      size, image_format = image.size, image.format
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError('%s: cannot decode image (%s).' % (image_path, e)) from e
  if image_format not in ('JPEG', 'PNG'):
    raise ValueError('%s: images must be JPEG or PNG, got %s.' %
                     (image_path, image_format))
  try:
    label = read_label(label_path)
  except (OSError, SyntaxError) as e:
    raise ValueError('%s: cannot decode label (%s).' % (label_path, e)) from e
  if (label.shape[1], label.shape[0]) != size:
    raise ValueError('%s and %s: image is %dx%d but label is %dx%d '
                     '(width x height).' % (image_path, label_path, size[0],
                                            size[1], label.shape[1],
                                            label.shape[0]))
  if remap_table is not None:
    label = remap_table[label]
  buffer = io.BytesIO()
  Image.fromarray(label, mode='L').save(buffer, format='PNG')
  features = {
      'image/encoded': _feature(image_bytes),
      'image/format': _feature(image_format.lower().encode()),
      'image/filename': _feature(os.path.basename(image_path).encode()),
      'image/height': _feature(int(size[1])),
      'image/width': _feature(int(size[0])),
      'label/encoded': _feature(buffer.getvalue()),
  }
  return tf.train.Example(features=tf.train.Features(
      feature=features)).SerializeToString(), label


# What `write_tfrecords` returns: `histogram` is `{label value: pixels}`.
SplitRecords = collections.namedtuple(
    'SplitRecords', ['paths', 'num_written', 'errors', 'histogram'])


def write_tfrecords(pairs, output_dir, split, num_shards=4, progress=True,
                    num_classes=None, remap=None, strict=False):
  """Validates and writes `pairs` as `<split>-XXXXX-of-YYYYY.tfrecord` shards.

  Written by `densenet.records.write_shards`: complete shards replace the
  split's earlier ones in one step, so an interrupted run never leaves a
  partial shard where `<split>-*` finds it, and a refused split (bad labels,
  a bad pair with `strict`) leaves the earlier records as they were. The
  label histogram lands with the shards as `labels-<split>.json`.

  Args:
    pairs: `[(image_path, label_path)]`.
    output_dir: Directory of the shards (created).
    split: Shard name prefix, e.g. 'train'.
    num_shards: Number of shards (fewer if there are fewer pairs).
    progress: Whether to show a tqdm bar.
    num_classes: Optional: refuse label values that are neither below it
      nor 255 (see `check_labels`).
    remap: Optional `{source value: target value}` applied to the labels
      before they are written and counted, e.g. `{255: 1}`.
    strict: Refuse the split (write nothing) if any pair is bad.

  Returns:
    A `SplitRecords(paths, num_written, errors, histogram)`: `num_written`
    counted back from the files; `errors` lists the message of each skipped
    pair (naming its files).

  Raises:
    LabelError: If a label value is out of range (nothing written).
    BadPairsError: With `strict`, if any pair is bad (nothing written).
  """
  if num_shards < 1:
    raise ValueError('num_shards must be >= 1, got %r.' % (num_shards,))
  remap_table = check_remap(remap) if remap else None
  num_shards = max(1, min(num_shards, len(pairs)))
  errors = []
  histogram = np.zeros(256, np.int64)
  examples = collections.defaultdict(list)
  bar = tqdm(total=len(pairs), desc='%s records' % split, unit='image',
             disable=not progress)

  def shard(index):
    for image_path, label_path in pairs[index::num_shards]:
      try:
        record, label = encode_example(image_path, label_path, remap_table)
      except (ValueError, OSError) as e:
        errors.append(str(e))
      else:
        counts = np.bincount(label.reshape(-1), minlength=256)
        histogram[:] += counts
        for value in np.flatnonzero(counts):
          if len(examples[int(value)]) < _EXAMPLE_FILES:
            examples[int(value)].append(os.path.basename(label_path))
        yield record
      bar.update(1)

  def finish(_):
    if strict and errors:
      raise BadPairsError(split, errors)
    check_labels(as_dict(histogram), num_classes, examples, where=split)
    return {LABELS_FILE % split: json.dumps(
        {'split': split, 'remap': {str(k): v for k, v in
                                   sorted((remap or {}).items())},
         'histogram': {str(k): v for k, v in as_dict(histogram).items()}},
        indent=1).encode()}

  try:
    paths, counts = records.write_shards(
        output_dir, split, [shard(i) for i in range(num_shards)], finish)
  finally:
    bar.close()
  return SplitRecords(paths, sum(counts), errors, as_dict(histogram))


def as_dict(histogram):
  """`[256]` pixel counts -> `{label value: count}` of the values present."""
  return {int(value): int(histogram[value])
          for value in np.flatnonzero(histogram)}


def read_histogram(paths):
  """`{label value: pixels}` summed over the splits whose shards `paths`
  are, from their `labels-<split>.json`; None unless every split has one."""
  splits = set()
  for path in paths:
    shard = records.parse_shard_name(path)
    if not shard:
      return None
    splits.add((os.path.dirname(path), shard[0]))
  histogram = collections.Counter()
  for directory, split in sorted(splits):
    path = os.path.join(directory, LABELS_FILE % split)
    if not os.path.isfile(path):
      return None
    with open(path) as f:
      histogram.update({int(k): v for k, v in json.load(f)[
          'histogram'].items()})
  return dict(histogram) if splits else None


def parse_example(serialized):
  """`(image uint8 [h, w, 3], label int32 [h, w], filename)` of a record."""
  features = tf.io.parse_single_example(serialized, {
      'image/encoded': tf.io.FixedLenFeature([], tf.string),
      'image/filename': tf.io.FixedLenFeature([], tf.string, ''),
      'label/encoded': tf.io.FixedLenFeature([], tf.string),
  })
  image = tf.io.decode_image(features['image/encoded'], channels=3,
                             expand_animations=False)
  label = tf.io.decode_png(features['label/encoded'], channels=1)
  return image, tf.cast(label[..., 0], tf.int32), features['image/filename']


def augment(image, label, crop_size, min_scale=0.5, max_scale=2.0,
            ignore_label=IGNORE_LABEL):
  """DeepLab training augmentation of one normalized image.

  Args:
    image: `[h, w, 3]` float32, normalized (0 = mean pixel).
    label: `[h, w]` int32.
    crop_size: `(height, width)` of the output.
    min_scale, max_scale: Range of the random scale factor.
    ignore_label: Label of padded pixels.

  Returns:
    `([crop_h, crop_w, 3] float32, [crop_h, crop_w] int32)`.
  """
  crop_height, crop_width = crop_size
  scale = tf.random.uniform([], min_scale, max_scale)
  size = tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * scale),
                 tf.int32)
  image = tf.image.resize(image, size, method='bilinear')
  label = tf.image.resize(label[..., None], size, method='nearest')[..., 0]
  pad_height = tf.maximum(crop_height - size[0], 0)
  pad_width = tf.maximum(crop_width - size[1], 0)
  paddings = [[0, pad_height], [0, pad_width]]
  image = tf.pad(image, paddings + [[0, 0]])
  label = tf.pad(label + 1, paddings) - 1  # Pads with -1, then 255 below.
  label = tf.where(label < 0, ignore_label, label)
  stacked = tf.concat([image, tf.cast(label, tf.float32)[..., None]], 2)
  stacked = tf.image.random_crop(stacked, [crop_height, crop_width, 4])
  stacked = tf.image.random_flip_left_right(stacked)
  return stacked[..., :3], tf.cast(stacked[..., 3], tf.int32)


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


def make_dataset(file_pattern, is_training, batch_size=8, crop_size=(128, 128),
                 min_scale=0.5, max_scale=2.0, normalization='torch',
                 ignore_label=IGNORE_LABEL, shuffle_buffer=512, seed=None,
                 num_classes=None):
  """The tf.data pipeline over TFRecord shards.

  Args:
    file_pattern: Glob of the shards, e.g. 'records/train-*.tfrecord'.
    is_training: Augmented, shuffled, repeated `batch_size` batches of
      `crop_size`; otherwise whole images, batch 1, one pass, in order.
    batch_size: Training batch (the global batch under a strategy).
    crop_size: `(height, width)` of training crops.
    min_scale, max_scale: Random scale range.
    normalization: A `densenet.preprocessing` mode.
    ignore_label: Label of padded pixels.
    shuffle_buffer: Shuffle buffer in examples.
    seed: Optional shuffling seed (set tf.random.set_seed for the
      augmentation).
    num_classes: Optional: check the labels against it. The histograms of
      build-data (`labels-<split>.json`), where every matched split has one,
      are checked at once (`check_labels`); every label is also checked as
      it is read (`checked_label`: iterate under `label_errors()`).

  Returns:
    Training: `(images [batch, crop_h, crop_w, 3], labels [batch, crop_h,
    crop_w])`. Evaluation: `(images [1, h, w, 3], labels [1, h, w],
    filenames [1])`.

  Raises:
    ValueError: If no file matches `file_pattern`, or its shards are not
      whole splits (`densenet.records.check_complete`).
    LabelError: If the histograms of the records hold label values that are
      neither below `num_classes` nor `ignore_label`, or only 0 and 255.
  """
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise ValueError('No TFRecord file matches %r.' % file_pattern)
  records.check_complete(files)
  preprocessing.normalization(normalization)  # Validates the mode early.
  if num_classes is not None:
    histogram = read_histogram(files)
    if histogram is not None:
      check_labels(histogram, num_classes, where=file_pattern,
                   ignore_label=ignore_label)
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if is_training:
    dataset = dataset.shuffle(len(files), seed=seed).repeat()
  dataset = dataset.interleave(tf.data.TFRecordDataset,
                               cycle_length=min(4, len(files)),
                               num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=not is_training)

  def normalized(serialized):
    image, label, filename = parse_example(serialized)
    if num_classes is not None:
      label = checked_label(label, filename, num_classes, ignore_label)
    return preprocessing.normalize(image, normalization), label, filename

  dataset = dataset.map(normalized, num_parallel_calls=tf.data.AUTOTUNE)
  if not is_training:
    return dataset.batch(1).prefetch(2)
  dataset = dataset.shuffle(shuffle_buffer, seed=seed)
  dataset = dataset.map(
      lambda image, label, _: augment(image, label, crop_size, min_scale,
                                      max_scale, ignore_label),
      num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(2)
