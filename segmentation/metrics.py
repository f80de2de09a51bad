"""Confusion-matrix segmentation metrics accumulated over a whole eval set."""

import numpy as np

from segmentation.options import IGNORE_LABEL


class ConfusionMatrix(object):
  """`matrix[label, prediction]` pixel counts, accumulated image by image.

  Pixels labelled `ignore_label` are skipped; any other label outside
  [0, num_classes) is an error (never silently dropped).

  Args:
    num_classes: Number of classes.
    ignore_label: Label of the pixels to skip.
  """

  def __init__(self, num_classes, ignore_label=IGNORE_LABEL):
    if num_classes < 1:
      raise ValueError('num_classes must be >= 1, got %r.' % (num_classes,))
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.matrix = np.zeros((num_classes, num_classes), np.int64)

  def update(self, labels, predictions):
    """Adds `labels` and `predictions` (integer arrays of one shape).

    Raises:
      ValueError: If a label is neither in [0, num_classes) nor the ignore
        label; names the values and counts their pixels.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
      raise ValueError('labels and predictions must have the same size, got '
                       '%d and %d.' % (labels.size, predictions.size))
    keep = labels != self.ignore_label
    bad = keep & ((labels < 0) | (labels >= self.num_classes))
    if bad.any():
      raise ValueError(
          'labels must be < num_classes=%d or %d (ignore), got %d pixels '
          'with values %s.' % (self.num_classes, self.ignore_label,
                               int(bad.sum()), ', '.join(
                                   str(v) for v in np.unique(labels[bad]))))
    index = labels[keep] * self.num_classes + np.clip(
        predictions[keep], 0, self.num_classes - 1)
    self.matrix += np.bincount(index, minlength=self.num_classes ** 2).reshape(
        self.num_classes, self.num_classes)

  def pixel_accuracy(self):
    """Correct pixels / labelled pixels (NaN with no labelled pixel)."""
    total = self.matrix.sum()
    return float(np.trace(self.matrix) / total) if total else float('nan')

  def iou(self):
    """`[num_classes]` intersection over union; NaN for a class that is in
    neither the labels nor the predictions."""
    true_positive = np.diag(self.matrix).astype(np.float64)
    union = self.matrix.sum(0) + self.matrix.sum(1) - true_positive
    with np.errstate(invalid='ignore', divide='ignore'):
      return np.where(union > 0, true_positive / np.maximum(union, 1),
                      np.nan)

  def mean_iou(self):
    """Mean IoU over the classes present in the labels or predictions."""
    iou = self.iou()
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float('nan')

  def results(self, class_names=None):
    """A JSON-able dict: pixel_accuracy, mean_iou, per_class_iou (None for
    absent classes), class_names."""
    names = list(class_names or ['class_%d' % i
                                 for i in range(self.num_classes)])
    return {
        'pixel_accuracy': self.pixel_accuracy(),
        'mean_iou': self.mean_iou(),
        'per_class_iou': {name: (None if np.isnan(value) else float(value))
                          for name, value in zip(names, self.iou())},
        'num_pixels': int(self.matrix.sum()),
    }
