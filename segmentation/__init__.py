"""Semantic segmentation on DenseNet backbones (DeepLab v3 / v3+ heads).

    import segmentation
    logits, end_points = segmentation.build_model(
        images, num_classes=21, backbone='densenet_121', output_stride=16,
        head='aspp', is_training=False)      # [batch, height, width, 21]

Modules: `model` (heads), `losses`, `metrics` (confusion matrix, mIoU),
`data` (VOC folders -> TFRecords -> tf.data), `synthetic` (the embedded
default dataset), `multiscale` (multi-scale + flip prediction at any size),
`evaluation` (whole-image evaluation, eval during training, TensorBoard
scalars), `pictures`, `eval_options` (no TensorFlow), `tasks` (train /
evaluate / predict / demo, the library behind the `segmentation` command),
`export` (SavedModel and LiteRT export), `litert` (predict / evaluate with a
.tflite), `cli`.

The public names below are imported from their modules on first use
(PEP 562): `import segmentation` loads neither TensorFlow nor the
application modules.
"""

from densenet._env import lazy

# Public name -> the module that defines it.
_PUBLIC = {
    'IGNORE_LABEL': 'segmentation.options',
    'softmax_cross_entropy': 'segmentation.losses',
    'ConfusionMatrix': 'segmentation.metrics',
    'BACKBONE_EXCLUDES': 'segmentation.model',
    'HEADS': 'segmentation.model',
    'aspp': 'segmentation.model',
    'aspp_rates': 'segmentation.model',
    'build_model': 'segmentation.model',
    'decoder': 'segmentation.model',
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
