"""Sharded TFRecords of labelled images: writing, the metadata file, reading.

Every classification dataset of this package (CIFAR, image folders) is stored
the same way, so one reader and one input pipeline serve them all:

    output_dir/
      metadata.json                       written last; its presence means the
                                          shards listed in it are complete
      train-00000-of-00010.tfrecord ...   one `tf.train.Example` per image
      test-00000-of-00002.tfrecord ...

Each example holds the raw `uint8` pixels (`image/raw`, row-major
`[height, width, channels]`), `image/height`, `image/width`,
`image/channels` and `image/class/label` (int64). Raw pixels (no JPEG/PNG
re-encoding) keep the images bit-exact and make decoding free.

Shards are written by `densenet.datasets.records.write_shards` (temporary directory,
moved into place when all are complete), so an interrupted run never leaves a
half-written shard under a final name, and `metadata.json` (replaced
atomically) only names shards whose record counts were read back and
verified.
"""

import json
import os

import numpy as np
import tensorflow as tf
import tqdm

from densenet._env import atomic
from densenet.datasets import records

METADATA_FILE = 'metadata.json'
FORMAT = 'densenet-classification-tfrecords'
FORMAT_VERSION = 1


def image_example(image, label):
  """Serializes one image and its class label.

  Args:
    image: `[height, width, channels]` uint8 numpy array.
    label: Integer class label.

  Returns:
    The serialized `tf.train.Example` (bytes).
  """
  image = np.ascontiguousarray(image, dtype=np.uint8)
  if image.ndim != 3:
    raise ValueError('image must be [height, width, channels], got shape %s.'
                     % (image.shape,))
  height, width, channels = image.shape

  def int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

  return tf.train.Example(features=tf.train.Features(feature={
      'image/raw': tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[image.tobytes()])),
      'image/height': int64(height),
      'image/width': int64(width),
      'image/channels': int64(channels),
      'image/class/label': int64(label),
  })).SerializeToString()


def write_split(examples, output_dir, split, num_examples, num_shards,
                description=None):
  """Writes `(image, label)` pairs to `num_shards` TFRecord shards, atomically.

  Examples go to the shards in order, in contiguous runs of
  `ceil(num_examples / num_shards)`, through `densenet.datasets.records.write_shards`
  (complete shards replace the split's earlier ones in one step); the
  records are then counted back from disk.

  Args:
    examples: An iterable of `(image, label)`: `[height, width, channels]`
      uint8 arrays and int labels; exactly `num_examples` of them.
    output_dir: Directory for the shards (created if missing).
    split: Split name used in the file names, e.g. 'train'.
    num_examples: How many examples `examples` yields.
    num_shards: Number of shards, >= 1.
    description: Label of the progress bar (default: `split`).

  Returns:
    The list of shard file names (relative to `output_dir`).

  Raises:
    ValueError: If `examples` does not yield `num_examples` pairs, or the
      records read back from disk do not number `num_examples`.
  """
  if num_shards < 1:
    raise ValueError('num_shards must be >= 1, got %r.' % (num_shards,))
  num_shards = max(1, min(num_shards, num_examples))
  per_shard = -(-num_examples // num_shards)
  iterator = iter(examples)
  written = [0]

  def shard(size):
    for _ in range(size):
      try:
        image, label = next(iterator)
      except StopIteration:
        raise ValueError('%s: expected %d examples, got only %d.' %
                         (split, num_examples, written[0])) from None
      yield image_example(image, label)
      written[0] += 1
      progress.update(1)

  with tqdm.tqdm(total=num_examples, desc=description or split,
                 unit='img') as progress:
    paths, counts = records.write_shards(
        output_dir, split,
        [shard(min(per_shard, num_examples - i * per_shard))
         for i in range(num_shards)])
  if next(iterator, None) is not None:
    raise ValueError('%s: expected %d examples, got more.' %
                     (split, num_examples))
  if sum(counts) != num_examples:
    raise ValueError('%s: wrote %d examples but read back %d from %s.' %
                     (split, num_examples, sum(counts), output_dir))
  return [os.path.basename(path) for path in paths]


count_records = records.count_records
shard_name = records.shard_name


def write_metadata(output_dir, metadata):
  """Writes `metadata` (a JSON-able dict) as `output_dir/metadata.json`.

  Adds the format name and version. Written to a temporary file and renamed,
  so readers see either the old complete file or the new one.
  """
  metadata = dict(metadata, format=FORMAT, format_version=FORMAT_VERSION)
  atomic.write_json(os.path.join(output_dir, METADATA_FILE), metadata)


def read_metadata(data_dir):
  """Reads the `metadata.json` of a TFRecord dataset directory.

  The metadata holds `dataset`, `num_classes`, `class_names`,
  `image_shape` ([height, width, channels]), `normalization` (a
  `densenet.preprocessing` mode or the per-channel `mean` / `std` of the
  training set) and `splits` (`{split: {'num_examples': n, 'files': [...]}}`).

  Raises:
    FileNotFoundError: If `data_dir` holds no `metadata.json` (not written
      by `create_tfrecords`, or the writing was interrupted).
    ValueError: If the file is not this package's format.
  """
  path = os.path.join(data_dir, METADATA_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        'No %s in %r: not a dataset written by create_tfrecords (or its '
        'writing did not finish).' % (METADATA_FILE, data_dir))
  with open(path, encoding='utf-8') as f:
    metadata = json.load(f)
  if metadata.get('format') != FORMAT:
    raise ValueError('%s is not a %s file (format=%r).' %
                     (path, FORMAT, metadata.get('format')))
  return metadata


def split_info(metadata, split):
  """`metadata['splits'][split]`, or a ValueError naming the known splits."""
  splits = metadata['splits']
  if split not in splits:
    raise ValueError('Unknown split %r of %s; known splits: %s.' %
                     (split, metadata.get('dataset'),
                      ', '.join(sorted(splits))))
  return splits[split]


def read_split(data_dir, split, metadata=None):
  """The `(image, label)` pairs of one split, in file order.

  Args:
    data_dir: A directory written by `create_tfrecords`.
    split: A split listed in its metadata, e.g. 'train' or 'test'.
    metadata: Its metadata if already read (`read_metadata(data_dir)`).

  Returns:
    A `tf.data.Dataset` of `(image, label)`: `[height, width, channels]`
    uint8 images (static shape from the metadata) and int64 scalar labels.
  """
  metadata = metadata or read_metadata(data_dir)
  info = split_info(metadata, split)
  files = [os.path.join(data_dir, name) for name in info['files']]
  missing = [f for f in files if not os.path.isfile(f)]
  if missing:
    raise FileNotFoundError('Missing shards of %s in %r: %s.' %
                            (split, data_dir, ', '.join(missing)))
  image_shape = metadata['image_shape']
  return tf.data.TFRecordDataset(records.reading(files)).map(
      lambda record: parse_example(record, image_shape),
      num_parallel_calls=tf.data.AUTOTUNE)


def parse_example(record, image_shape=None):
  """Parses a serialized example written by `image_example`.

  Args:
    record: A scalar string Tensor.
    image_shape: Optional static `[height, width, channels]`.

  Returns:
    `(image, label)`: `[height, width, channels]` uint8 and int64 scalar.
  """
  features = tf.io.parse_single_example(record, {
      'image/raw': tf.io.FixedLenFeature([], tf.string),
      'image/height': tf.io.FixedLenFeature([], tf.int64),
      'image/width': tf.io.FixedLenFeature([], tf.int64),
      'image/channels': tf.io.FixedLenFeature([], tf.int64),
      'image/class/label': tf.io.FixedLenFeature([], tf.int64),
  })
  image = tf.reshape(
      tf.io.decode_raw(features['image/raw'], tf.uint8),
      tf.stack([features['image/height'], features['image/width'],
                features['image/channels']]))
  if image_shape is not None:
    image.set_shape(image_shape)
  return image, features['image/class/label']
