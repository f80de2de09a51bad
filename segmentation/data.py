"""Segmentation data: VOC-layout folders -> sharded TFRecords -> tf.data.

Pascal VOC layout (`voc_pairs`):
    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png      palette ('P') or grayscale ('L') PNG
    ROOT/ImageSets/Segmentation/{train,val}.txt   one <id> per line
or any folder pair (`folder_pairs`): images and label PNGs matched by stem.

`write_tfrecords` validates every pair (the image decodes completely, the
label is a palette or grayscale PNG of the image's size), skips and reports a
bad pair by file name, and writes `<split>-<i>-of-<n>.tfrecord` shards
atomically (`densenet.records`). Records:
    image/encoded   the image file's bytes      image/format  'jpeg' | 'png'
    image/filename  basename                    image/height, image/width
    label/encoded   the label as grayscale PNG  (class ids, 255 = ignore)

`make_dataset` reads them: training batches with DeepLab's augmentation
(random scale in [0.5, 2.0], pad with the ignore label (images with the mean
pixel, 0 after normalization), random crop, random left-right flip), or
whole images one at a time for evaluation. Images come out normalized by
`densenet.preprocessing.normalize`, labels as `[..., height, width]` int32.
"""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from densenet import preprocessing
from densenet import records
from segmentation.losses import IGNORE_LABEL

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


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


def encode_example(image_path, label_path):
  """A serialized tf.train.Example of one pair.

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
      feature=features)).SerializeToString()


def write_tfrecords(pairs, output_dir, split, num_shards=4, progress=True):
  """Validates and writes `pairs` as `<split>-XXXXX-of-YYYYY.tfrecord` shards.

  Written by `densenet.records.write_shards`: complete shards replace the
  split's earlier ones in one step, so an interrupted run never leaves a
  partial shard where `<split>-*` finds it.

  Args:
    pairs: `[(image_path, label_path)]`.
    output_dir: Directory of the shards (created).
    split: Shard name prefix, e.g. 'train'.
    num_shards: Number of shards (fewer if there are fewer pairs).
    progress: Whether to show a tqdm bar.

  Returns:
    `(shard_paths, num_written, errors)`: `num_written` counted back from
    the files; `errors` lists the message of each skipped pair (naming its
    files).
  """
  if num_shards < 1:
    raise ValueError('num_shards must be >= 1, got %r.' % (num_shards,))
  num_shards = max(1, min(num_shards, len(pairs)))
  errors = []
  bar = tqdm(total=len(pairs), desc='%s records' % split, unit='image',
             disable=not progress)

  def shard(index):
    for image_path, label_path in pairs[index::num_shards]:
      try:
        yield encode_example(image_path, label_path)
      except (ValueError, OSError) as e:
        errors.append(str(e))
      bar.update(1)

  try:
    paths, counts = records.write_shards(
        output_dir, split, [shard(i) for i in range(num_shards)])
  finally:
    bar.close()
  return paths, sum(counts), errors


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


def make_dataset(file_pattern, is_training, batch_size=8, crop_size=(128, 128),
                 min_scale=0.5, max_scale=2.0, normalization='torch',
                 ignore_label=IGNORE_LABEL, shuffle_buffer=512, seed=None):
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

  Returns:
    Training: `(images [batch, crop_h, crop_w, 3], labels [batch, crop_h,
    crop_w])`. Evaluation: `(images [1, h, w, 3], labels [1, h, w],
    filenames [1])`.

  Raises:
    ValueError: If no file matches `file_pattern`.
  """
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise ValueError('No TFRecord file matches %r.' % file_pattern)
  preprocessing.normalization(normalization)  # Validates the mode early.
  dataset = tf.data.Dataset.from_tensor_slices(files)
  if is_training:
    dataset = dataset.shuffle(len(files), seed=seed).repeat()
  dataset = dataset.interleave(tf.data.TFRecordDataset,
                               cycle_length=min(4, len(files)),
                               num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=not is_training)

  def normalized(serialized):
    image, label, filename = parse_example(serialized)
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
