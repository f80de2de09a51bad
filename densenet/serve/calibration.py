"""Calibration images for int8 models: an image folder or TFRecords.

    from densenet.serve import calibration
    sources = calibration.sources('photos/', 200)     # or 'records/train-*'
    pixels = [preprocessing.load_image(s, 256, 224) for s in sources]

An image folder is searched recursively (a class-per-folder tree or a flat
folder); a glob matches TFRecord shards of this library: classification
records (`densenet.datasets.tfrecords`, raw pixels) or segmentation records
(`segmentation.data`, encoded images). With more images than asked for,
the ones taken are spread evenly over the sorted files (every class of a
class-per-folder tree) or over the shards.
"""

import glob
import os

import numpy as np
import tensorflow as tf

from densenet.datasets import image_folder
from densenet.serve import litert_runtime

DEFAULT_SIZE = litert_runtime.DEFAULT_CALIBRATION_SIZE


def sources(source, count=DEFAULT_SIZE):
  """Up to `count` images for `preprocessing.load_image`.

  Args:
    source: An image folder, or a glob of TFRecord shards.
    count: How many images at most, >= 1.

  Returns:
    A list of image paths, encoded images (bytes) or uint8 `[height, width,
    3]` arrays.

  Raises:
    ValueError: If `count` < 1, nothing matches `source`, it holds no image,
      or its records are not of this library.
  """
  if isinstance(count, bool) or not isinstance(count, int) or count < 1:
    raise ValueError('--calibration-size must be a positive integer, got %r.'
                     % (count,))
  if os.path.isdir(source):
    paths = []
    for root, dirs, names in os.walk(source):
      dirs[:] = [d for d in dirs if not d.startswith('.')]
      paths.extend(os.path.join(root, name) for name in names
                   if name.lower().endswith(image_folder.IMAGE_EXTENSIONS)
                   and not name.startswith('.'))
    paths.sort()
    if not paths:
      raise ValueError('--calibration folder %s has no images (extensions: '
                       '%s).' % (source, ' '.join(
                           image_folder.IMAGE_EXTENSIONS)))
    return _spread(paths, count)
  files = sorted(f for f in glob.glob(source) if os.path.isfile(f))
  if not files:
    raise ValueError('--calibration %r is neither an image folder nor a glob '
                     'matching TFRecord files.' % (source,))
  return _records(files, count, source)


def _spread(items, count):
  """`count` items evenly spread over `items` (all if fewer)."""
  if len(items) <= count:
    return list(items)
  return [items[i * len(items) // count] for i in range(count)]


def _records(files, count, pattern):
  """Images of up to `count` records, ceil(count / shards) per shard."""
  per_file = -(-count // len(files))
  images = []
  for path in files:
    try:
      for i, record in enumerate(tf.data.TFRecordDataset(path)):
        if i == per_file or len(images) == count:
          break
        images.append(_image(tf.train.Example.FromString(record.numpy()),
                             path))
    except tf.errors.DataLossError as error:
      raise ValueError('--calibration %s: %s is not a TFRecord file (%s).' %
                       (pattern, path, error.message.splitlines()[0]))
  if not images:
    raise ValueError('--calibration %r: its TFRecord files hold no records.'
                     % (pattern,))
  return images


def _image(example, path):
  """The image of a classification or segmentation record."""
  features = example.features.feature
  if 'image/encoded' in features:  # segmentation.data
    return features['image/encoded'].bytes_list.value[0]
  if 'image/raw' in features:  # densenet.datasets.tfrecords
    shape = [features['image/%s' % key].int64_list.value[0]
             for key in ('height', 'width', 'channels')]
    image = np.frombuffer(features['image/raw'].bytes_list.value[0],
                          np.uint8).reshape(shape)
    return np.repeat(image, 3, -1) if shape[-1] == 1 else image
  raise ValueError('--calibration: %s holds records of neither this '
                   "library's classification (image/raw) nor segmentation "
                   '(image/encoded) format.' % (path,))
