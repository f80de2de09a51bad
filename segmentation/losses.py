"""Per-pixel softmax cross-entropy with an ignore label and class weights."""

import numpy as np
import tensorflow as tf

from segmentation.options import IGNORE_LABEL


def softmax_cross_entropy(labels, logits, ignore_label=IGNORE_LABEL,
                          class_weights=None):
  """Per-image mean cross-entropy over the pixels that are not ignored.

  Args:
    labels: `[batch, height, width]` (or `[..., 1]`) integer class ids in
      [0, num_classes); pixels equal to `ignore_label` count for nothing:
      their logits do not change the loss or its gradients. Any other value
      fails an assertion (InvalidArgumentError), never silently ignored.
    logits: `[batch, height, width, num_classes]`.
    ignore_label: The label of pixels to ignore.
    class_weights: Optional `[num_classes]` weights multiplying each pixel's
      loss by its label's weight (the mean still divides by the number of
      labelled pixels, as DeepLab).

  Returns:
    `[batch]` losses (0 for an image with no labelled pixel), for
    `densenet.training.Trainer`.
  """
  logits = tf.convert_to_tensor(logits)
  num_classes = logits.shape[-1]
  labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
  if labels.shape.rank == 4:
    labels = tf.squeeze(labels, 3)
  valid = tf.not_equal(labels, ignore_label)
  safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
  message = 'labels must be in [0, num_classes=%d) or %d (ignore)' % (
      num_classes, ignore_label)
  with tf.control_dependencies([
      tf.debugging.assert_non_negative(safe_labels, message=message),
      tf.debugging.assert_less(safe_labels, num_classes, message=message)]):
    safe_labels = tf.identity(safe_labels)
  losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=safe_labels, logits=tf.cast(logits, tf.float32))
  weights = tf.cast(valid, tf.float32)
  if class_weights is not None:
    class_weights = np.asarray(class_weights, np.float32)
    if class_weights.shape != (num_classes,):
      raise ValueError('class_weights must have num_classes=%d entries, got '
                       'shape %s.' % (num_classes, class_weights.shape))
    weights *= tf.gather(tf.constant(class_weights), safe_labels)
  losses = tf.where(valid, losses, tf.zeros_like(losses)) * weights
  count = tf.reduce_sum(tf.cast(valid, tf.float32), [1, 2])
  return tf.reduce_sum(losses, [1, 2]) / tf.maximum(count, 1.0)
