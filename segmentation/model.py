"""Segmentation models: DeepLab v3 / v3+ heads on DenseNet backbones.

    import tf_slim as slim
    import segmentation

    logits, end_points = segmentation.build_model(
        images, num_classes=21, backbone='densenet_121', output_stride=16,
        head='aspp', is_training=True)   # [batch, height, width, 21]

`images` are normalized by `densenet.preprocessing.normalize`. The backbone
is built with `num_classes=None, global_pool=False, initial_output_stride=4`
in its own scope (e.g. `densenet_121/...`), so its variables are exactly the
classification network's and an ImageNet checkpoint initialises it
(`densenet.training.restore_by_name(..., exclude_scopes=BACKBONE_EXCLUDES)`).

Heads (Chen et al. 2017, "Rethinking Atrous Convolution", and 2018,
"Encoder-Decoder with Atrous Separable Convolution"):
  'fcn':           1x1 convolution logits on the backbone output.
  'aspp':          Atrous Spatial Pyramid Pooling: a 1x1 branch, three 3x3
                   atrous branches with rates (6, 12, 18) at output stride 16
                   (scaled by 16 / output_stride: (12, 24, 36) at 8), an
                   image-pooling branch, concatenation, 1x1 projection,
                   dropout; `depth` (256) channels, batch norm everywhere.
  'deeplabv3plus': the ASPP, then a decoder: the stride-4 backbone end point
                   (`<scope>/dense_block1`) projected to 48 channels, fused
                   with the upsampled ASPP output by two 3x3 convolutions.
The logits are bilinearly upsampled to the input resolution.

Variables (besides the backbone's): `aspp/conv_1x1/*`, `aspp/atrous_{1,2,3}/*`,
`aspp/image_pooling/*`, `aspp/projection/*`, `decoder/low_level/*`,
`decoder/fuse_{1,2}/*`, `logits/{weights,biases}`; the same for every
output stride.

End points: the backbone's, plus `aspp`, `decoder`, `logits` (at the
feature resolution) and `upsampled_logits`.
"""

import tensorflow as tf
import tf_slim as slim

from densenet import spec as spec_lib
from densenet.layers import inputs as inputs_lib
from densenet.layers.batch_norm import batch_norm
from segmentation import options

HEADS = options.HEADS
OUTPUT_STRIDES = options.OUTPUT_STRIDES
BASE_ATROUS_RATES = (6, 12, 18)   # At output stride 16.
# Classification-only variables a backbone checkpoint holds.
BACKBONE_EXCLUDES = ('logits',)


def aspp_rates(output_stride, base_rates=BASE_ATROUS_RATES):
  """ASPP atrous rates at `output_stride`: (6, 12, 18) * 16 / output_stride.

  Raises:
    ValueError: If `output_stride` is not one of `OUTPUT_STRIDES`.
  """
  if output_stride not in OUTPUT_STRIDES:
    raise ValueError('output_stride must be one of %s, got %r.' %
                     (OUTPUT_STRIDES, output_stride))
  return tuple(max(1, rate * 16 // output_stride) for rate in base_rates)


def backbone_spec(backbone):
  """The `densenet.spec.ModelSpec` of a backbone (features, no logits).

  Args:
    backbone: A `ModelSpec` (its architecture, batch-norm epsilon, stem
      padding and memory_efficient are used), a name in `densenet.MODELS`
      ('densenet_121', ...), or a dict of `densenet.densenet_X` keyword
      arguments (at least `num_units_per_block`; e.g.
      `{'num_units_per_block': [2, 2, 2, 2], 'growth_rate': 16}`), scope
      'densenet_X' unless given.

  Raises:
    ValueError: For an unknown name, a dict without `num_units_per_block`,
      or one with an `initial_output_stride` other than 4
      (`options.check_backbone`).
  """
  options.check_backbone(backbone)
  if isinstance(backbone, spec_lib.ModelSpec):
    return backbone.replace(num_classes=None)
  try:
    return spec_lib.ModelSpec(backbone)
  except ValueError as e:
    raise ValueError('Bad backbone: %s' % e) from None


def backbone_fn(backbone):
  """`(fn, scope)` for a backbone (see `backbone_spec`).

  Returns:
    `fn(images, is_training, output_stride, weight_decay=1e-4) ->
    (features, end_points)` and the backbone's variable scope.
  """
  spec = backbone_spec(backbone)

  def network(images, is_training, output_stride,
              weight_decay=spec_lib.DEFAULT_WEIGHT_DECAY):
    return spec.build(images, is_training, weight_decay=weight_decay,
                      num_classes=None, global_pool=False,
                      output_stride=output_stride, initial_output_stride=4)

  return network, spec.scope


def _resize(inputs, size):
  return tf.compat.v1.image.resize_bilinear(inputs, size, align_corners=False)


def aspp(features, output_stride, depth=256, dropout_rate=0.1,
         scope='aspp'):
  """DeepLab v3 Atrous Spatial Pyramid Pooling.

  Args:
    features: `[batch, height, width, channels]` backbone features.
    output_stride: Their stride; sets the atrous rates (`aspp_rates`).
    depth: Channels of every branch and of the output.
    dropout_rate: Dropout after the projection (DeepLab: 0.1).
    scope: Variable scope.

  Returns:
    `[batch, height, width, depth]`.
  """
  with tf.compat.v1.variable_scope(scope, values=[features]):
    size = tf.shape(features)[1:3]
    branches = [slim.conv2d(features, depth, [1, 1], scope='conv_1x1')]
    for i, rate in enumerate(aspp_rates(output_stride)):
      branches.append(slim.conv2d(features, depth, [3, 3], rate=rate,
                                  scope='atrous_%d' % (i + 1)))
    pooled = tf.reduce_mean(features, [1, 2], keepdims=True)
    pooled = slim.conv2d(pooled, depth, [1, 1], scope='image_pooling')
    branches.append(_resize(pooled, size))
    net = tf.concat(branches, 3)
    net = slim.conv2d(net, depth, [1, 1], scope='projection')
    if dropout_rate:
      net = slim.dropout(net, keep_prob=1.0 - dropout_rate)
    return net


def decoder(features, low_level_features, depth=256, low_level_depth=48,
            scope='decoder'):
  """DeepLab v3+ decoder.

  Args:
    features: `[batch, h, w, c]` ASPP output.
    low_level_features: `[batch, 4h', 4w', c']` stride-4 backbone features.
    depth: Channels of the two fusing 3x3 convolutions.
    low_level_depth: Channels of the low-level projection (48).
    scope: Variable scope.

  Returns:
    `[batch, height(low_level), width(low_level), depth]`.
  """
  with tf.compat.v1.variable_scope(scope, values=[features,
                                                  low_level_features]):
    low_level = slim.conv2d(low_level_features, low_level_depth, [1, 1],
                            scope='low_level')
    net = _resize(features, tf.shape(low_level)[1:3])
    net = tf.concat([net, low_level], 3)
    net = slim.conv2d(net, depth, [3, 3], scope='fuse_1')
    net = slim.conv2d(net, depth, [3, 3], scope='fuse_2')
    return net


def build_model(images,
                num_classes,
                backbone='densenet_121',
                output_stride=16,
                head='aspp',
                is_training=False,
                depth=256,
                dropout_rate=0.1,
                weight_decay=1e-4):
  """A semantic segmentation network on a DenseNet backbone.

  Args:
    images: `[batch, height, width, 3]` normalized images: a Tensor, or a
      numpy array or nested list (made a constant, as the DenseNet
      constructors do; same checks and messages, `densenet.layers.inputs`).
    num_classes: Number of classes (background included), >= 2.
    backbone: A `densenet.MODELS` name, a `densenet_X` config dict or a
      `densenet.spec.ModelSpec` (see `backbone_spec`).
    output_stride: Stride of the backbone output: 8, 16 or 32.
    head: One of `HEADS`.
    is_training: Python bool or bool Tensor for batch norm and dropout.
    depth: Channels of the ASPP and decoder.
    dropout_rate: ASPP dropout.
    weight_decay: L2 weight decay of every convolution.

  Returns:
    logits: `[batch, height, width, num_classes]` at the input resolution.
    end_points: dict, see the module docstring.

  Raises:
    ValueError: For a bad `head`, `output_stride`, `num_classes` or
      `backbone`.
  """
  images = inputs_lib.as_inputs(images)  # numpy and lists as the nets do.
  if head not in HEADS:
    raise ValueError('head must be one of %s, got %r.' % (HEADS, head))
  if output_stride not in OUTPUT_STRIDES:
    raise ValueError('output_stride must be one of %s, got %r.' %
                     (OUTPUT_STRIDES, output_stride))
  if not isinstance(num_classes, int) or num_classes < 2:
    raise ValueError('num_classes must be an int >= 2, got %r.' %
                     (num_classes,))
  spec = backbone_spec(backbone)
  network, scope = backbone_fn(spec)
  with spec.arg_scope(weight_decay=weight_decay), \
      slim.arg_scope([batch_norm, slim.dropout],
                     is_training=is_training):
    features, end_points = network(images, is_training, output_stride,
                                   weight_decay=weight_decay)
    end_points = dict(end_points)
    net = features
    if head in ('aspp', 'deeplabv3plus'):
      net = aspp(net, output_stride, depth=depth, dropout_rate=dropout_rate)
      end_points['aspp'] = net
    if head == 'deeplabv3plus':
      net = decoder(net, end_points[scope + '/dense_block1'], depth=depth)
      end_points['decoder'] = net
    logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                         normalizer_fn=None,
                         biases_initializer=tf.compat.v1.zeros_initializer(),
                         scope='logits')
  end_points['logits'] = logits
  logits = _resize(logits, tf.shape(images)[1:3])
  static = images.shape[1:3].as_list()
  logits.set_shape([images.shape[0]] + static + [num_classes])
  end_points['upsampled_logits'] = logits
  return logits, end_points


def net_fn(config):
  """`net_fn(images, is_training) -> logits` of a `segmentation.config.ModelConfig`
  (for `densenet.training`)."""
  spec = config.spec()
  backbone_spec(spec)  # Checked now, not inside a Keras layer's call.

  def network(images, is_training):
    logits, _ = build_model(
        images, config.num_classes, backbone=spec,
        output_stride=config.output_stride, head=config.head,
        is_training=is_training, depth=config.depth,
        dropout_rate=config.dropout_rate, weight_decay=config.weight_decay)
    return logits

  return network
