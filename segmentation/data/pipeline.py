"""The tf.data pipeline over segmentation TFRecords (`data.tfrecords`).

`make_dataset` reads them: training batches with DeepLab's augmentation
(random scale in [0.5, 2.0], pad with the ignore label (images with the mean
pixel, 0 after normalization), random crop, random left-right flip), or
whole images one at a time for evaluation. Images come out normalized by
`densenet.preprocessing.normalize`, labels as `[..., height, width]` int32.
Given `num_classes`, the pipeline checks every label against it and stops
at the first image with a value that is neither a class id nor 255
(`labels.LabelError`, raised where `labels.label_errors` wraps the reading).
"""

import tensorflow as tf

from densenet import preprocessing
from densenet.datasets import records
from segmentation.data import labels as labels_lib
from segmentation.data import tfrecords
from segmentation.options import IGNORE_LABEL


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
    normalization: A `densenet.preprocessing` mode, or None for float32
      RGB in [0, 255].
    ignore_label: Label of padded pixels.
    shuffle_buffer: Shuffle buffer in examples.
    seed: Optional shuffling seed (set tf.random.set_seed for the
      augmentation).
    num_classes: Optional: check the labels against it. The histograms of
      build-data (`labels-<split>.json`), where every matched split has one,
      are checked at once (`labels.check_labels`); every label is also
      checked as it is read (`labels.checked_label`: iterate under
      `labels.label_errors()`).

  Returns:
    Training: `(images [batch, crop_h, crop_w, 3], labels [batch, crop_h,
    crop_w])`. Evaluation: `(images [1, h, w, 3], labels [1, h, w],
    filenames [1])`.

  Raises:
    ValueError: If no file matches `file_pattern`, or its shards are not
      whole splits (`densenet.datasets.records.check_complete`).
    LabelError: If the histograms of the records hold label values that are
      neither below `num_classes` nor `ignore_label`, or only 0 and 255.
  """
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise ValueError('No TFRecord file matches %r.' % file_pattern)
  records.check_complete(files)
  records.reading(files)  # A corrupted one is named (names_corrupt_shards).
  if normalization is not None:
    preprocessing.normalization(normalization)  # Validates the mode early.
  if num_classes is not None:
    histogram = tfrecords.read_histogram(files)
    if histogram is not None:
      labels_lib.check_labels(histogram, num_classes, where=file_pattern,
                   ignore_label=ignore_label)
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if is_training:
    dataset = dataset.shuffle(len(files), seed=seed).repeat()
  dataset = dataset.interleave(tf.data.TFRecordDataset,
                               cycle_length=min(4, len(files)),
                               num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=not is_training)

  def normalized(serialized):
    image, label, filename = tfrecords.parse_example(serialized)
    if num_classes is not None:
      label = labels_lib.checked_label(label, filename, num_classes,
                                       ignore_label)
    if normalization is None:  # RGB in [0, 255] (LiteRT models normalize).
      return tf.cast(image, tf.float32), label, filename
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
