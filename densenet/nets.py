"""DenseNets for ImageNet and CIFAR, in the style of tf-slim's resnet_v2.py.

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.

Typical use for classification at 224x224:

   import tf_slim as slim
   from densenet import densenet_121, densenet_arg_scope

   with slim.arg_scope(densenet_arg_scope()):
     logits, end_points = densenet_121(images, num_classes=1000,
                                       is_training=False)     # [B, 1000]

Typical use for dense prediction (semantic segmentation):

   with slim.arg_scope(densenet_arg_scope()):
     net, end_points = densenet_121(images, num_classes=None,
                                    is_training=False, global_pool=False,
                                    output_stride=16)   # [B, 14, 14, 1024]

With `output_stride` the late transitions keep the resolution and the later
3x3 convolutions become atrous; the variables do not change, so a checkpoint
trained for classification restores into the dense-prediction graph.

ImageNet models (`root='imagenet'`): explicit (3, 3) zero padding, 7x7/2
convolution with 2k filters, BN-ReLU, (1, 1) padding and a 3x3/2 max pool
(the padding Keras and torchvision use), four dense blocks with transitions
between them, BN-ReLU, global average pool, 1x1 convolution logits.
CIFAR models (`root='cifar'`): a 3x3 convolution with 16 (or 2k for
DenseNet-BC) filters, three dense blocks, BN-ReLU, global average pool, logits.

End points (public API; `S` is the model's scope, e.g. 'densenet_121'):
  S/conv1                               root convolution (after BN-ReLU for
                                        ImageNet models), stride 2 (1 for CIFAR)
  S/pool1                               root max pool, stride 4
                                        (only with initial_output_stride=4)
  S/dense_block{b}/unit_{i}/dense_unit  each dense unit (input + new maps)
  S/dense_block{b}/unit_{i}/dense_unit/conv{1,2}   its convolutions
  S/dense_block{b}                      each dense block's output
  S/transition{t}/unit_1/transition     each transition (and .../conv)
  S/transition{t}                       the same tensor, per block
  S/postnorm                            final BN-ReLU
  S/global_pool                         global average, [B, 1, 1, C]
  S/logits                              [B, 1, 1, num_classes] (or spatial)
  S/spatial_squeeze                     [B, num_classes]
  predictions                           softmax of the logits
With initial_output_stride 4, S/dense_block1 is the stride-4 feature map and
S/dense_block2 the stride-8 one (stride 2 and 4 with initial_output_stride 2).
"""

import contextlib
import numbers

import tensorflow as tf
import tf_slim as slim
from tf_slim.layers import utils as slim_utils

from densenet import architectures
from densenet import constructors
from densenet.layers import batch_norm as batch_norm_lib
from densenet.layers import blocks as blocks_lib
from densenet.layers import inputs as inputs_lib
from densenet.layers import root as root_lib
from densenet.layers import stack as stack_lib

# The stem, with its `padding` arg_scope (`slim.arg_scope([nets.root_block],
# padding='same')` for pudae's checkpoints).
root_block = root_lib.root_block
ROOT_PADDINGS = architectures.ROOT_PADDINGS

_ROOTS = ('imagenet', 'cifar')
_INITIAL_OUTPUT_STRIDES = (1, 2, 4)


def densenet(inputs,
             blocks,
             num_classes=None,
             is_training=True,
             global_pool=True,
             output_stride=None,
             initial_output_stride=4,
             root='imagenet',
             num_initial_filters=64,
             spatial_squeeze=True,
             reuse=None,
             scope=None,
             memory_efficient=None):
  """Generator for DenseNet models from a list of `Block`s.

  Args:
    inputs: A `[batch, height, width, channels]` Tensor, channels known, or
      a numpy array or nested list of numbers (made a constant, as slim
      layers do). The network computes in its dtype: float32, or bfloat16 /
      float16 for faster low-precision inference where the CPU supports it
      (oneDNN); any other dtype (uint8 images, float64 arrays, Python
      lists) is cast to float32. The variables stay float32 (cast on read)
      and batch norm keeps float32 statistics, so the same checkpoint serves
      every dtype.
    blocks: A list of `densenet_utils.Block`s (dense blocks and transitions).
    num_classes: Number of classes of the logits, or None to return the
      features (the output of the global pool, or of the final BN-ReLU when
      `global_pool` is False).
    is_training: Whether batch norm and dropout are in training mode (Python
      bool or bool Tensor), or None to leave them to the enclosing arg_scope.
    global_pool: Whether to average the final feature map to 1x1.
    output_stride: Stride of the final feature map relative to the input
      (atrous convolution after it is reached), or None for the nominal one.
    initial_output_stride: Stride of the root: 4 (conv/2 then max pool/2),
      2 (conv/2, no pool) or 1 (conv/1, no pool).
    root: 'imagenet' (padded 7x7 conv, BN-ReLU) or 'cifar' (3x3 conv).
    num_initial_filters: Filters of the root convolution.
    spatial_squeeze: Whether to squeeze globally pooled logits to
      `[batch, num_classes]`.
    reuse: Whether to reuse the variables of `scope`.
    scope: The variable scope.
    memory_efficient: Whether the dense units recompute their concatenation,
      BN-ReLU and first convolution in the backward pass instead of storing
      them (`densenet_utils.dense_unit`): training memory linear in depth
      instead of quadratic, for some extra time; same variables, outputs and
      gradients. None leaves it to the enclosing arg_scope
      (`densenet_arg_scope(memory_efficient=...)`, off by default).

  Returns:
    net: `[batch, num_classes]` logits (spatially squeezed), or
      `[batch, 1, 1, num_classes]`, or `[batch, h, w, num_classes]` without
      the global pool; features `[batch, (h, w | 1, 1), channels]` when
      `num_classes` is None.
    end_points: A dict from the end-point names listed in the module docstring
      to Tensors.

  Raises:
    ValueError: For a bad argument; the message names it.
  """
  inputs = inputs_lib.as_inputs(inputs)
  if root not in _ROOTS:
    raise ValueError('root must be one of %s, got %r.' % (_ROOTS, root))
  if initial_output_stride not in _INITIAL_OUTPUT_STRIDES:
    raise ValueError('initial_output_stride must be one of %s, got %r.' %
                     (_INITIAL_OUTPUT_STRIDES, initial_output_stride))
  if num_classes is not None and (not isinstance(num_classes, int) or
                                  isinstance(num_classes, bool) or
                                  num_classes < 1):
    raise ValueError('num_classes must be a positive int or None, got %r.' %
                     (num_classes,))
  batch_norm_lib.check_is_training(is_training, allow_none=True)
  inputs = inputs_lib.check_size(inputs, initial_output_stride * (
      stack_lib.minimum_input_size(blocks, output_stride,
                                   initial_output_stride) - 1) + 1,
                       output_stride, scope or 'densenet')
  with tf.compat.v1.variable_scope(
      scope, 'densenet', [inputs], reuse=reuse,
      custom_getter=inputs_lib.float32_variables(inputs.dtype)) as sc:
    end_points_collection = sc.original_name_scope + '_end_points'
    with slim.arg_scope(
        [slim.conv2d, slim.max_pool2d, blocks_lib.dense_unit,
         blocks_lib.transition],
        outputs_collections=end_points_collection), \
        _training_scope(is_training), \
        _arg_scope_unless_none(
            [blocks_lib.dense_unit, blocks_lib.transition],
            memory_efficient=memory_efficient):
      net = root_lib.root_block(inputs, root, num_initial_filters,
                       initial_output_stride)
      net = stack_lib.stack_blocks_dense(
          net, blocks, output_stride, input_stride=initial_output_stride,
          outputs_collections=end_points_collection)
      net = batch_norm_lib.batch_norm(
          net, activation_fn=tf.nn.relu, scope='postnorm',
          outputs_collections=end_points_collection)
      end_points = slim_utils.convert_collection_to_dict(
          end_points_collection)
      if global_pool:
        net = tf.reduce_mean(net, [1, 2], name='global_pool', keepdims=True)
        end_points[sc.name + '/global_pool'] = net
      if num_classes:
        net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                          normalizer_fn=None, scope='logits')
        end_points[sc.name + '/logits'] = net
        if spatial_squeeze and global_pool:
          net = tf.squeeze(net, [1, 2], name='spatial_squeeze')
          end_points[sc.name + '/spatial_squeeze'] = net
        end_points['predictions'] = slim.softmax(net, scope='predictions')
      return net, end_points


densenet.default_image_size = 224


def _training_scope(is_training):
  """arg_scope that sets `is_training` of batch norm and dropout."""
  return _arg_scope_unless_none([batch_norm_lib.batch_norm, slim.dropout],
                                is_training=is_training)


def _arg_scope_unless_none(list_ops, **kwargs):
  """`slim.arg_scope(list_ops, **kwargs)`, or no scope if the value is None."""
  (value,) = kwargs.values()
  if value is None:
    return contextlib.nullcontext()
  return slim.arg_scope(list_ops, **kwargs)


def densenet_X(inputs,
               num_classes=None,
               theta=constructors.Default(0.5),
               num_units_per_block=(6, 12, 24, 16),
               growth_rate=32,
               is_training=True,
               global_pool=True,
               output_stride=None,
               spatial_squeeze=True,
               initial_output_stride=4,
               reuse=None,
               scope='densenet_X',
               num_initial_filters=None,
               bottleneck=True,
               dropout_rate=0.0,
               root='imagenet',
               memory_efficient=None,
               compression=None):
  """A DenseNet with any number of dense blocks.

  The parameters up to `scope` are those of the original library
  (sthalles/dense-net), in its order; the rest are keywords of this one.

  Args:
    inputs: A `[batch, height, width, channels]` Tensor, numpy array or
      nested list (see `densenet` for dtypes).
    num_classes: Classes of the logits, or None for the features.
    theta: The paper's compression: channel fraction kept by transitions, in
      (0, 1].
    num_units_per_block: Dense units (layers) of each dense block, e.g.
      (6, 12, 24, 16) for DenseNet-121; a transition follows every block but
      the last.
    growth_rate: Feature maps each unit adds (k), >= 1.
    is_training, global_pool, output_stride, spatial_squeeze,
    initial_output_stride, reuse, scope: see `densenet`.
    num_initial_filters: Filters of the root convolution; default 2k.
    bottleneck: Whether units start with a 1x1 conv to 4k channels (-B).
    dropout_rate: Dropout after every convolution, in [0, 1).
    root, memory_efficient: see `densenet`.
    compression: Another name for `theta` (this library's earlier one);
      giving both with different values is an error.

  Returns:
    (net, end_points) as `densenet`.

  Raises:
    ValueError: For a bad argument; the message names it.
  """
  if isinstance(num_classes, (list, tuple)):
    raise ValueError(
        'num_classes must be a positive int or None, got %r; '
        'num_units_per_block is densenet_X\'s fourth parameter (the original '
        'library\'s order), pass it by keyword.' % (num_classes,))
  blocks = densenet_blocks(num_units_per_block, growth_rate,
                           _theta(theta, compression), bottleneck,
                           dropout_rate)
  if num_initial_filters is None:
    num_initial_filters = 2 * growth_rate
  return densenet(inputs, blocks, num_classes=num_classes,
                  is_training=is_training, global_pool=global_pool,
                  output_stride=output_stride,
                  initial_output_stride=initial_output_stride, root=root,
                  num_initial_filters=num_initial_filters,
                  spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope,
                  memory_efficient=memory_efficient)


densenet_X.default_image_size = 224


def _theta(theta, compression):
  """The compression of `theta` and its alias `compression`.

  Raises:
    ValueError: If both are given with different values.
  """
  if compression is None:
    return float(theta) if isinstance(theta, constructors.Default) else theta
  if not isinstance(theta, constructors.Default) and theta != compression:
    raise ValueError('theta and compression are the same setting (the '
                     'paper\'s compression); got theta=%r and compression=%r. '
                     'Give one of them.' % (theta, compression))
  return compression


def densenet_blocks(num_units_per_block, growth_rate, compression=0.5,
                    bottleneck=True, dropout_rate=0.0):
  """The `Block` list: dense_block1, transition1, ..., dense_block{n}.

  Raises:
    ValueError: If an argument is out of range; the message names it.
  """
  units = list(num_units_per_block or [])
  if not units or any(not isinstance(n, int) or n < 1 for n in units):
    raise ValueError('num_units_per_block must be a non-empty list of '
                     'positive ints, got %r.' % (num_units_per_block,))
  if not isinstance(growth_rate, int) or growth_rate < 1:
    raise ValueError('growth_rate must be an int >= 1, got %r.' %
                     (growth_rate,))
  if (not isinstance(compression, numbers.Real) or
      isinstance(compression, bool) or not 0.0 < compression <= 1.0):
    raise ValueError('compression (theta) must be in (0, 1], got %r.' %
                     (compression,))
  if not 0.0 <= dropout_rate < 1.0:
    raise ValueError('dropout_rate must be in [0, 1), got %r.' %
                     (dropout_rate,))
  blocks = []
  for i, num_units in enumerate(units):
    blocks.append(blocks_lib.densenet_block(
        'dense_block%d' % (i + 1), num_units, growth_rate, bottleneck,
        dropout_rate))
    if i + 1 < len(units):
      blocks.append(blocks_lib.transition_block(
          'transition%d' % (i + 1), compression, stride=2,
          dropout_rate=dropout_rate))
  return blocks


# The paper's CIFAR family by depth and growth rate, and every named
# constructor, by name, from the one table of architectures.
densenet_cifar = constructors.cifar_constructor(densenet_X)

MODELS = {name: constructors.named_constructor(densenet_X, name, architecture)
          for name, architecture in architectures.ARCHITECTURES.items()}

densenet_121 = MODELS['densenet_121']
densenet_169 = MODELS['densenet_169']
densenet_201 = MODELS['densenet_201']
densenet_161 = MODELS['densenet_161']
densenet_264 = MODELS['densenet_264']
densenet_40_k12 = MODELS['densenet_40_k12']
densenet_100_k12 = MODELS['densenet_100_k12']
densenet_100_k24 = MODELS['densenet_100_k24']
densenet_bc_100_k12 = MODELS['densenet_bc_100_k12']
densenet_bc_250_k24 = MODELS['densenet_bc_250_k24']
densenet_bc_190_k40 = MODELS['densenet_bc_190_k40']
