"""Whole-image prediction at any input size, at several scales, with flips.

    from segmentation import multiscale
    predict = multiscale.make_predict_fn(
        lambda x: model(x, training=False), multiple=config.output_stride,
        eval_scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True)
    labels = predict(images)          # [batch, height, width] int32

Any size: the normalized images are padded at the bottom and right with 0
(the mean pixel, as the training augmentation pads) to a multiple of the
network's output stride, so every stride-2 layer halves an even size and the
logits align with the pixels; the logits are cropped back to the input size,
nothing is cropped away.

Several scales (DeepLab's `predict_labels_multi_scale`): the images are
resized by each scale (bilinear), run as above, optionally also flipped left
to right (the logits flipped back), the logits are resized to the input
resolution, and the softmax of every (scale, flip) is averaged there; the
prediction is its argmax.
"""

import tensorflow as tf

from segmentation import options


def scaled_size(size, scale):
  """`[2]` int32: round(size * scale), at least 1."""
  scaled = tf.round(tf.cast(size, tf.float32) * scale)
  return tf.maximum(tf.cast(scaled, tf.int32), 1)


def logits_at_any_size(logits_fn, images, multiple):
  """Logits of images of any size, by padding to a multiple and cropping.

  Args:
    logits_fn: `fn(images [batch, H, W, 3]) -> [batch, H, W, classes]` for
      H, W multiples of `multiple`.
    images: `[batch, height, width, 3]` normalized images.
    multiple: What the padded height and width are multiples of (the output
      stride of the network).

  Returns:
    `[batch, height, width, classes]`.
  """
  if multiple < 1:
    raise ValueError('multiple must be >= 1, got %r.' % (multiple,))
  height, width = tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [0, (-height) % multiple],
                           [0, (-width) % multiple], [0, 0]])
  return logits_fn(padded)[:, :height, :width]


def averaged_probabilities(logits_fn, images, multiple,
                           eval_scales=options.DEFAULT_EVAL_SCALES,
                           flip=False):
  """The softmax averaged over scales (and flips) at the input resolution.

  Args:
    logits_fn: See `logits_at_any_size`.
    images: `[batch, height, width, 3]` normalized images.
    multiple: See `logits_at_any_size`.
    eval_scales: Positive input scales (DeepLab: 0.5 ... 1.75).
    flip: Whether to add the left-right flip of every scale.

  Returns:
    `[batch, height, width, classes]` float32 probabilities.

  Raises:
    ValueError: For bad `eval_scales`.
  """
  scales = options.check_scales(eval_scales)
  images = tf.convert_to_tensor(images, tf.float32)
  size = tf.shape(images)[1:3]
  probabilities = []
  for scale in scales:
    scaled = (images if scale == 1.0 else
              tf.image.resize(images, scaled_size(size, scale), 'bilinear'))
    for flipped in ((False, True) if flip else (False,)):
      inputs = tf.reverse(scaled, [2]) if flipped else scaled
      logits = tf.cast(logits_at_any_size(logits_fn, inputs, multiple),
                       tf.float32)
      if flipped:
        logits = tf.reverse(logits, [2])
      if scale != 1.0:
        logits = tf.image.resize(logits, size, 'bilinear')
      probabilities.append(tf.nn.softmax(logits))
  return tf.add_n(probabilities) / float(len(probabilities))


def make_predict_fn(logits_fn, multiple,
                    eval_scales=options.DEFAULT_EVAL_SCALES, flip=False):
  """A `tf.function` `images [batch, h, w, 3] -> labels [batch, h, w] int32`
  (one trace for every image size).

  Raises:
    ValueError: For bad `eval_scales` or `multiple`.
  """
  scales = options.check_scales(eval_scales)
  if multiple < 1:
    raise ValueError('multiple must be >= 1, got %r.' % (multiple,))

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3],
                                              tf.float32)], autograph=False)
  def predict(images):
    probabilities = averaged_probabilities(logits_fn, images, multiple,
                                           scales, flip)
    return tf.argmax(probabilities, -1, output_type=tf.int32)

  return predict
