"""The root (stem) of a DenseNet: `[B, H, W, C]` -> stride 1, 2 or 4.

ImageNet models: explicit (3, 3) zero padding, 7x7/2 convolution with 2k
filters, BN-ReLU, (1, 1) padding and a 3x3/2 max pool (the padding Keras and
torchvision use; pudae's checkpoints need TF's SAME padding instead:
`padding='same'`). CIFAR models: a 3x3 convolution.
"""

import tensorflow as tf
import tf_slim as slim

from densenet.architectures import ROOT_PADDINGS


@slim.add_arg_scope
def root_block(inputs, root='imagenet', num_filters=64, initial_output_stride=4,
               padding='symmetric'):
  """The root block: `[B, H, W, C]` -> `[B, H / s, W / s, num_filters]`.

  Args:
    inputs: A `[batch, height, width, channels]` Tensor.
    root: 'imagenet' (7x7 conv, BN-ReLU) or 'cifar' (3x3 conv).
    num_filters: Filters of the convolution.
    initial_output_stride: s: 4 (conv/2 then 3x3/2 max pool), 2 or 1.
    padding: 'symmetric' zero-pads (3, 3) before the 7x7 conv and (1, 1)
      before the max pool, as Keras and torchvision do (our default, and what
      their weights need); 'same' uses TF's SAME padding ((2, 3) and (0, 1)
      at even sizes), as pudae/tensorflow-densenet's checkpoints were built.
      Set it with `slim.arg_scope([nets.root_block], padding='same')`; the
      variables are the same either way.

  Raises:
    ValueError: If `padding` is not one of `ROOT_PADDINGS`.
  """
  if padding not in ROOT_PADDINGS:
    raise ValueError('root_block padding must be one of %s, got %r.' %
                     (ROOT_PADDINGS, padding))
  same = padding == 'same'

  def pad(net, amount):
    return net if same else _pad(net, amount)

  conv_stride = 1 if initial_output_stride == 1 else 2
  conv_padding = 'SAME' if same else 'VALID'
  if root == 'cifar':
    net = slim.conv2d(pad(inputs, 1), num_filters, [3, 3], stride=conv_stride,
                      padding=conv_padding, normalizer_fn=None,
                      activation_fn=None, biases_initializer=None,
                      scope='conv1')
  else:
    net = slim.conv2d(pad(inputs, 3), num_filters, [7, 7], stride=conv_stride,
                      padding=conv_padding, scope='conv1')
  if initial_output_stride == 4:
    # Zero padding is safe for the max pool: its input is post-ReLU.
    net = slim.max_pool2d(pad(net, 1), [3, 3], stride=2,
                          padding=conv_padding, scope='pool1')
  return net


def _pad(inputs, amount):
  """Zero-pads height and width by `amount` on each side (Keras' padding)."""
  return tf.pad(inputs, [[0, 0], [amount, amount], [amount, amount], [0, 0]])
