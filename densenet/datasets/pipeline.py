"""The `tf.data` input pipeline of every classification dataset.

    from densenet.datasets import pipeline

    train = pipeline.make_dataset('data/c10', 'train', batch_size=64,
                                  is_training=True, augment_images=True)
    for images, labels in train:   # [64, 32, 32, 3] float32, [64] int64
      ...

Order of operations (the DenseNet paper's Torch code, fb.resnet.torch):
shuffle, normalize, then augment (zero padding of the *normalized* image,
i.e. padding with the mean colour; random crop back to the original size;
random horizontal flip), batch, prefetch. The "+" datasets of the paper
(C10+, C100+) are the augmented ones: 4-pixel padding on 32x32 images.
"""

import tensorflow as tf

from densenet import preprocessing
from densenet.datasets import tfrecords

# Padding of the standard augmentation, as a fraction of the image side:
# 4 pixels for 32x32 CIFAR images (28 pixels at 224x224).
PADDING_FRACTION = 4 / 32




def augment(image, padding, seed=None):
  """The standard augmentation: pad, random crop, random horizontal flip.

  Args:
    image: A `[height, width, channels]` Tensor with a static shape.
    padding: Zero padding added on each side before the random crop back to
      `[height, width]` (4 for CIFAR).
    seed: Optional op-level seed.

  Returns:
    A `[height, width, channels]` Tensor of `image`'s dtype.
  """
  height, width, channels = image.shape.as_list()
  if padding:
    image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.random_crop(image, [height, width, channels], seed=seed)
  return tf.image.random_flip_left_right(image, seed=seed)


def input_pipeline(dataset, batch_size, normalization, is_training,
                   augment_images=False, padding=None, shuffle_buffer=10000,
                   repeat=False, drop_remainder=None, seed=None):
  """Shuffles, normalizes, augments, batches and prefetches `(image, label)`.

  Args:
    dataset: A `tf.data.Dataset` of `(image, label)`: `[height, width,
      channels]` uint8 images with a static shape, scalar labels.
    batch_size: Images per batch.
    normalization: See `normalizer`.
    is_training: Whether to shuffle (and to augment, with `augment_images`).
    augment_images: Whether to apply `augment` (only when `is_training`).
    padding: Padding of `augment`; default `PADDING_FRACTION` of the height
      (4 pixels at 32x32).
    shuffle_buffer: Shuffle buffer size (in images), when `is_training`.
    repeat: Whether to repeat the data forever (after shuffling: each epoch
      is reshuffled).
    drop_remainder: Whether to drop a last partial batch; default
      `is_training` (training batches all have `batch_size` images).
    seed: Optional seed of the shuffle and the augmentation.

  Returns:
    A `tf.data.Dataset` of `(images, labels)`: `[batch, height, width,
    channels]` float32 and `[batch]` int64.
  """
  if batch_size < 1:
    raise ValueError('batch_size must be >= 1, got %r.' % (batch_size,))
  normalize = preprocessing.normalizer(normalization)
  if padding is None:
    padding = int(round(dataset.element_spec[0].shape[0] * PADDING_FRACTION))
  if drop_remainder is None:
    drop_remainder = is_training
  if is_training:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()

  def prepare(image, label):
    image = normalize(image)
    if is_training and augment_images:
      image = augment(image, padding, seed=seed)
    return image, label

  dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(
      tf.data.AUTOTUNE)


def make_dataset(data_dir, split, batch_size, is_training,
                 augment_images=False, normalization=None, **kwargs):
  """`input_pipeline` over a split of a directory written by create_tfrecords.

  Args:
    data_dir: The dataset directory (with `metadata.json`).
    split: 'train', 'test', ... (as listed in the metadata).
    batch_size, is_training, augment_images: See `input_pipeline`.
    normalization: See `normalizer`; default the dataset's own (CIFAR: its
      training-set mean and std; image folders: the 'torch' mode).
    **kwargs: Further arguments of `input_pipeline`.

  Returns:
    The `tf.data.Dataset` of `input_pipeline`.
  """
  metadata = tfrecords.read_metadata(data_dir)
  return input_pipeline(
      tfrecords.read_split(data_dir, split, metadata), batch_size,
      normalization or metadata['normalization'], is_training,
      augment_images=augment_images, **kwargs)
