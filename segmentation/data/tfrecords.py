"""Segmentation TFRecords: validated pairs in, sharded records out, parsed back.

`write_tfrecords` validates every pair (the image decodes completely, the
label is a palette or grayscale PNG of the image's size), skips and reports a
bad pair by file name, maps label values through an optional `remap`
(`{255: 1}` for 0/255 binary masks), counts the pixels of every label value
(the split's histogram, also written as `labels-<split>.json`, which no
`<split>-*` glob matches), refuses a split whose values are neither below
`num_classes` nor the ignore label 255, and writes
`<split>-<i>-of-<n>.tfrecord` shards atomically (`densenet.datasets.records`):
a refused split leaves the earlier records as they were. Records:
    image/encoded   the image file's bytes      image/format  'jpeg' | 'png'
    image/filename  basename                    image/height, image/width
    label/encoded   the label as grayscale PNG  (class ids, 255 = ignore)
"""

import collections
import io
import json
import os

import numpy as np
from PIL import Image
import tensorflow as tf
from tqdm import tqdm

from densenet import preprocessing
from densenet.datasets import records
from segmentation.data import labels as labels_lib

LABELS_FILE = 'labels-%s.json'  # A split's label histogram, next to its shards.


_EXAMPLE_FILES = 3  # Example files named per label value.


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
    label = labels_lib.read_label(label_path)
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

  Written by `densenet.datasets.records.write_shards`: complete shards
  replace the split's earlier ones in one step, so an interrupted run never
  leaves a partial shard where `<split>-*` finds it, and a refused split
  (bad labels, a bad pair with `strict`) leaves the earlier records as they
  were. The label histogram lands with the shards as `labels-<split>.json`.

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
  remap_table = labels_lib.check_remap(remap) if remap else None
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
    labels_lib.check_labels(labels_lib.as_dict(histogram), num_classes,
                            examples, where=split)
    return {LABELS_FILE % split: json.dumps(
        {'split': split, 'remap': {str(k): v for k, v in
                                   sorted((remap or {}).items())},
         'histogram': {str(k): v for k, v in
                       labels_lib.as_dict(histogram).items()}},
        indent=1).encode()}

  try:
    paths, counts = records.write_shards(
        output_dir, split, [shard(i) for i in range(num_shards)], finish)
  finally:
    bar.close()
  return SplitRecords(paths, sum(counts), errors, labels_lib.as_dict(histogram))


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
  image = preprocessing.tf_decode(features['image/encoded'])
  label = tf.io.decode_png(features['label/encoded'], channels=1)
  return image, tf.cast(label[..., 0], tf.int32), features['image/filename']
