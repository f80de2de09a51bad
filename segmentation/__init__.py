"""Semantic segmentation on DenseNet backbones (DeepLab v3 / v3+ heads).

    import segmentation
    logits, end_points = segmentation.build_model(
        images, num_classes=21, backbone='densenet_121', output_stride=16,
        head='aspp', is_training=False)      # [batch, height, width, 21]

Modules: `model` (heads), `losses`, `metrics` (confusion matrix, mIoU),
`data` (VOC folders -> TFRecords -> tf.data), `synthetic` (the embedded
default dataset), `tasks` (train / evaluate / predict / demo, the library
behind the `segmentation` command), `cli`.
"""

import densenet  # noqa: F401  (applies densenet.compat before tf-slim runs)

# pylint: disable=g-import-not-at-top,wrong-import-position
from segmentation.losses import IGNORE_LABEL
from segmentation.losses import softmax_cross_entropy
from segmentation.metrics import ConfusionMatrix
from segmentation.model import BACKBONE_EXCLUDES
from segmentation.model import HEADS
from segmentation.model import aspp
from segmentation.model import aspp_rates
from segmentation.model import build_model
from segmentation.model import decoder
