"""Image preprocessing: the one place that knows how pixels become inputs.

Every network input in this project is an RGB image in `[0, 255]` normalized
by `normalize(images, mode)`. The mode travels with the weights (converted
checkpoints record it), so a checkpoint is always fed the way it was trained.

Modes:
  'torch':  (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
            (Keras' DenseNet `preprocess_input`, torchvision); our default.
  'pudae':  (x - [123.68, 116.78, 103.94]) * 0.017
            (pudae/tensorflow-densenet checkpoints, converted from Caffe).
"""

import io

import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow as tf

# mode -> (per-channel mean, per-channel scale) in [0, 255] pixel units:
# normalized = (x - mean) * scale.
NORMALIZATIONS = {
    'torch': ((123.675, 116.28, 103.53),
              (1.0 / 58.395, 1.0 / 57.12, 1.0 / 57.375)),
    'pudae': ((123.68, 116.78, 103.94), (0.017, 0.017, 0.017)),
}

DEFAULT_MODE = 'torch'


def normalization(mode):
  """`(mean, scale)` float32 arrays of shape [3] for `mode`.

  Raises:
    ValueError: If `mode` is unknown; the message lists the known modes.
  """
  if mode not in NORMALIZATIONS:
    raise ValueError('Unknown normalization mode %r; known modes: %s.' %
                     (mode, ', '.join(sorted(NORMALIZATIONS))))
  mean, scale = NORMALIZATIONS[mode]
  return np.asarray(mean, np.float32), np.asarray(scale, np.float32)


def normalize(images, mode=DEFAULT_MODE):
  """Normalizes RGB images in [0, 255].

  Args:
    images: `[..., 3]` RGB values in [0, 255]: a Tensor (any real dtype) or a
      numpy array.
    mode: A key of `NORMALIZATIONS`.

  Returns:
    float32 `[..., 3]` of the same kind (Tensor in, Tensor out).
  """
  mean, scale = normalization(mode)
  return _shift_and_scale(images, mean, scale)


def normalize_with_statistics(images, mean, std):
  """Normalizes RGB images with a data set's own per-channel statistics.

  `(x - mean) / std` per channel: the normalization of the DenseNet paper's
  CIFAR code (mean and standard deviation of the training images, which
  `densenet.datasets` records in a dataset's metadata).

  Args:
    images: `[..., channels]` values in [0, 255]: a Tensor (any real dtype)
      or a numpy array.
    mean: `channels` per-channel means, in [0, 255] pixel units.
    std: `channels` per-channel standard deviations, all > 0.

  Returns:
    float32 `[..., channels]` of the same kind (Tensor in, Tensor out).

  Raises:
    ValueError: If `mean` and `std` differ in length or a `std` is <= 0.
  """
  mean = np.asarray(mean, np.float32).reshape(-1)
  std = np.asarray(std, np.float32).reshape(-1)
  if mean.shape != std.shape or not np.all(std > 0):
    raise ValueError('mean and std must have one value per channel and std '
                     'must be > 0, got mean=%s std=%s.' % (mean, std))
  return _shift_and_scale(images, mean, 1.0 / std)


def normalizer(description):
  """A function `images -> float32 normalized images` from a description.

  Args:
    description: A mode of `NORMALIZATIONS` ('torch', 'pudae'), `{'mode':
      name}`, or `{'mean': [c values], 'std': [c values]}` in [0, 255] pixel
      units (a dataset's own statistics, as CIFAR's metadata records them).

  Returns:
    A function mapping `[..., channels]` images in [0, 255] to float32.

  Raises:
    ValueError: If `description` is none of the above.
  """
  if isinstance(description, str):
    description = {'mode': description}
  if isinstance(description, dict) and 'mode' in description:
    mode = description['mode']
    normalization(mode)  # Validates the mode.
    return lambda images: normalize(images, mode)
  if isinstance(description, dict) and {'mean', 'std'} <= set(description):
    mean, std = description['mean'], description['std']
    normalize_with_statistics(np.zeros([len(mean)]), mean, std)  # Validates.
    return lambda images: normalize_with_statistics(images, mean, std)
  raise ValueError("normalization must be a preprocessing mode, {'mode': "
                   "mode} or {'mean': [...], 'std': [...]}, got %r." %
                   (description,))


def _shift_and_scale(images, mean, scale):
  """`(images - mean) * scale` in float32, numpy in numpy out."""
  if isinstance(images, np.ndarray):
    return (images.astype(np.float32) - mean) * scale
  return (tf.cast(images, tf.float32) - mean) * scale


# ---------------------------------------------------------------------------
# Decoding and geometry: files -> RGB uint8 `[crop, crop, 3]` arrays.
#
# Evaluation geometry of the published ImageNet numbers (Keras, torchvision,
# pudae): resize the shorter side to 256, then take the central 224x224 crop.

DEFAULT_RESIZE_SIZE = 256
DEFAULT_CROP_SIZE = 224


def to_rgb(image):
  """A PIL image in mode 'RGB'.

  Grayscale ('L', 'I', '1', ...) is replicated into three channels; images
  with transparency ('RGBA', 'LA', 'P' with a transparent colour) are
  composited over white, so transparent pixels read as white rather than as
  whatever colour they happen to store.
  """
  if image.mode == 'RGB':
    return image
  if image.mode == 'P' and 'transparency' in image.info:
    image = image.convert('RGBA')
  if image.mode in ('RGBA', 'LA', 'PA', 'La', 'RGBa'):
    image = image.convert('RGBA')
    background = Image.new('RGBA', image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert('RGB')
  if image.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'F'):
    # 16-bit or float grayscale: scale the full range into [0, 255].
    array = np.asarray(image, np.float64)
    top = 65535.0 if image.mode.startswith('I;16') or array.max() > 255 else (
        255.0)
    array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    image = Image.fromarray(array, 'L')
  return image.convert('RGB')


def decode_image(source):
  """Opens and fully decodes an image file with Pillow.

  Applies the EXIF orientation (photos from phones are often stored sideways
  with an orientation tag) and converts to RGB (`to_rgb`). Any format Pillow
  reads works: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF...

  Args:
    source: A path, a file object, or the encoded bytes.

  Returns:
    A PIL image in mode 'RGB'.

  Raises:
    OSError: If the file is missing, not an image, or truncated (Pillow's
      `UnidentifiedImageError` is an `OSError`).
  """
  if isinstance(source, (bytes, bytearray)):
    source = io.BytesIO(source)
  with Image.open(source) as image:
    image.load()  # Decode now, so a truncated file fails here.
    image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def resize_shorter_side(image, size):
  """Resizes a PIL image so its shorter side is `size`, keeping the aspect.

  The longer side becomes `int(size * long / short)` (torchvision's rule);
  the filter is Pillow's bilinear (antialiased when shrinking).
  """
  width, height = image.size
  if width <= height:
    new_size = (size, int(size * height / width))
  else:
    new_size = (int(size * width / height), size)
  if new_size == image.size:
    return image
  return image.resize(new_size, Image.BILINEAR)


def center_crop(image, size):
  """The central `size` x `size` crop of a PIL image (torchvision's offsets).

  Raises:
    ValueError: If the image is smaller than `size` in a dimension.
  """
  width, height = image.size
  if width < size or height < size:
    raise ValueError('Cannot crop %dx%d out of a %dx%d image; resize it first '
                     '(resize_size >= crop_size).' % (size, size, width,
                                                      height))
  left = int(round((width - size) / 2.0))
  top = int(round((height - size) / 2.0))
  return image.crop((left, top, left + size, top + size))


def load_image(source, resize_size=DEFAULT_RESIZE_SIZE,
               crop_size=DEFAULT_CROP_SIZE):
  """Decodes, resizes and centre-crops one image.

  Args:
    source: A path, file object, encoded bytes, PIL image, or an RGB array
      `[height, width, 3]` (taken as already decoded).
    resize_size: The shorter side after resizing, or None to keep the size.
    crop_size: The side of the central square crop, or None for no crop.

  Returns:
    uint8 RGB array `[crop_size, crop_size, 3]` (or the resized size without
    a crop), ready for `normalize`.

  Raises:
    OSError: If the file cannot be read or decoded.
    ValueError: If `resize_size` < `crop_size`, or an array is not RGB.
  """
  if resize_size is not None and crop_size is not None and (
      resize_size < crop_size):
    raise ValueError('resize_size (%r) must be >= crop_size (%r).' %
                     (resize_size, crop_size))
  if isinstance(source, np.ndarray):
    if source.ndim != 3 or source.shape[-1] != 3:
      raise ValueError('An image array must be [height, width, 3] RGB, got '
                       'shape %s.' % (source.shape,))
    image = Image.fromarray(np.clip(source, 0, 255).astype(np.uint8), 'RGB')
  elif isinstance(source, Image.Image):
    image = to_rgb(source)
  else:
    image = decode_image(source)
  if resize_size is not None:
    image = resize_shorter_side(image, resize_size)
  if crop_size is not None:
    image = center_crop(image, crop_size)
  return np.asarray(image, np.uint8)


# The same geometry in TensorFlow, for graphs that take encoded images
# (`densenet.serve.export`). TF decodes without EXIF orientation and drops alpha
# instead of compositing, and its antialiased bilinear resize is close to but
# not bit-identical with Pillow's. JPEGs are decoded with libjpeg's accurate
# integer DCT, as Pillow decodes them (TF's default, the fast one, differs by
# up to 4 grey levels).


def tf_decode(image_bytes):
  """Encoded image (scalar string Tensor) -> uint8 `[height, width, 3]` RGB.

  JPEG, PNG, GIF (first frame), BMP and WebP (`tf.io.decode_image`;
  grayscale becomes RGB), JPEG with the accurate DCT as Pillow decodes it, so
  TFRecords, SavedModels and `decode_image` give the same pixels.
  """
  image = tf.cond(
      tf.io.is_jpeg(image_bytes),
      lambda: tf.io.decode_jpeg(image_bytes, channels=3,
                                dct_method='INTEGER_ACCURATE'),
      lambda: tf.io.decode_image(image_bytes, channels=3,
                                 expand_animations=False))
  image.set_shape([None, None, 3])
  return image


def tf_decode_and_crop(image_bytes, resize_size=DEFAULT_RESIZE_SIZE,
                       crop_size=DEFAULT_CROP_SIZE):
  """Encoded image (scalar string Tensor) -> float32 `[crop, crop, 3]` RGB.

  Decodes as `tf_decode`, resizes the shorter side to `resize_size` and
  crops the centre `crop_size` square. Values in [0, 255], not normalized.
  """
  image = tf_decode(image_bytes)
  shape = tf.shape(image)
  height = tf.cast(shape[0], tf.float64)
  width = tf.cast(shape[1], tf.float64)
  size = tf.constant(float(resize_size), tf.float64)
  new_height, new_width = tf.cond(
      width <= height,
      lambda: (tf.cast(size * height / width, tf.int32),
               tf.constant(resize_size, tf.int32)),
      lambda: (tf.constant(resize_size, tf.int32),
               tf.cast(size * width / height, tf.int32)))
  image = tf.image.resize(tf.cast(image, tf.float32),
                          tf.stack([new_height, new_width]),
                          method='bilinear', antialias=True)
  top = tf.cast(tf.round(tf.cast(new_height - crop_size, tf.float32) / 2),
                tf.int32)
  left = tf.cast(tf.round(tf.cast(new_width - crop_size, tf.float32) / 2),
                 tf.int32)
  image = image[top:top + crop_size, left:left + crop_size, :]
  image.set_shape([crop_size, crop_size, 3])
  return tf.clip_by_value(image, 0.0, 255.0)
