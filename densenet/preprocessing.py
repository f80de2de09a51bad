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

import numpy as np
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


def _shift_and_scale(images, mean, scale):
  """`(images - mean) * scale` in float32, numpy in numpy out."""
  if isinstance(images, np.ndarray):
    return (images.astype(np.float32) - mean) * scale
  return (tf.cast(images, tf.float32) - mean) * scale
