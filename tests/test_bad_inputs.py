"""Bad inputs to the Python API: a ValueError naming the argument, never a
crash deep inside TensorFlow and never a silent wrong result.

The command-line side of the same checks is in tests/test_cli.py's
ERROR_TABLE (exit status, one line, no traceback).
"""

import inspect

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import densenet
import densenet_utils
from densenet import architectures
from densenet.serve import rewrite
from densenet import nets
from densenet.layers import inputs as inputs_lib
from densenet.serve import pretrained
from densenet import spec as spec_lib

tf1 = tf.compat.v1

# Four blocks, as the ImageNet DenseNets: 1 + 2 + 2 + 1 units, k=4.
TINY = {'num_units_per_block': [1, 2, 2, 1], 'growth_rate': 4,
        'num_initial_filters': 8}


def build(inputs, **kwargs):
  """A tiny densenet_X in a fresh graph; returns its static output shape."""
  with tf.Graph().as_default():
    if callable(inputs):
      inputs = inputs()
    with slim.arg_scope(densenet.densenet_arg_scope()):
      net, _ = densenet.densenet_X(inputs, **dict(TINY, **kwargs))
    return net.shape.as_list()


def image(size=64, dtype=np.float32, batch=1):
  return np.zeros([batch, size, size, 3], dtype)


# (id, call, substring of the ValueError's message).
API_ERRORS = [
    ('rank 3', lambda: build(np.zeros([64, 64, 3], np.float32)),
     'inputs must be a rank-4 [batch, height, width, channels]'),
    ('rank 5', lambda: build(np.zeros([1, 1, 64, 64, 3], np.float32)),
     'inputs must be a rank-4'),
    ('unknown channels', lambda: build(
        lambda: tf1.placeholder(tf.float32, [None, 64, 64, None])),
     'inputs must have a known channel count'),
    ('num_classes=True', lambda: build(image(), num_classes=True),
     'num_classes must be a positive int or None, got True'),
    ('num_classes=0', lambda: build(image(), num_classes=0),
     'num_classes must be a positive int or None, got 0'),
    ('num_classes=2.0', lambda: build(image(), num_classes=2.0),
     'num_classes must be a positive int or None, got 2.0'),
    ('num_units_per_block as num_classes',
     lambda: densenet.densenet_X(image(), [1, 2]),
     'pass it by keyword'),
    ('is_training="no"', lambda: build(image(), is_training='no'),
     "is_training must be a Python bool or a bool Tensor (or None), got 'no'"),
    ('is_training=1', lambda: build(image(), is_training=1),
     'is_training must be a Python bool or a bool Tensor'),
    ('is_training float tensor', lambda: build(
        image(), is_training=tf.constant(1.0)),
     'is_training must be a Python bool or a bool Tensor'),
    ('theta=0', lambda: build(image(), theta=0),
     'compression (theta) must be in (0, 1], got 0'),
    ('theta=1.5', lambda: build(image(), theta=1.5),
     'compression (theta) must be in (0, 1], got 1.5'),
    ('theta=True', lambda: build(image(), theta=True),
     'compression (theta) must be in (0, 1], got True'),
    ('compression leaving no channel', lambda: build(image(),
                                                      compression=0.01),
     'keeps int(0.01 * 12) = 0 of the 12 channels entering '
     'densenet_X/transition1/unit_1/transition'),
    ('theta and compression differ', lambda: build(image(), theta=0.5,
                                                    compression=0.25),
     'theta and compression are the same setting'),
    ('growth_rate=0', lambda: build(image(), growth_rate=0),
     'growth_rate must be an int >= 1, got 0'),
    ('output_stride unreachable', lambda: build(image(), output_stride=12),
     'output_stride=12 cannot be reached; valid values: 4, 8, 16, 32'),
    ('too small, static', lambda: build(image(28)),
     'inputs are too small: densenet_X needs images of at least 29x29 '
     'pixels (output_stride None), got 28x28'),
    ('too small in width only', lambda: build(np.zeros([1, 64, 20, 3],
                                                       np.float32)),
     'got 64x20 (height x width)'),
    ('too small at output_stride 8', lambda: build(
        image(4), output_stride=8, global_pool=False),
     'at least 5x5 pixels (output_stride 8), got 4x4'),
    ('root', lambda: build(image(), root='resnet'),
     "root must be one of ('imagenet', 'cifar'), got 'resnet'"),
    ('initial_output_stride', lambda: build(image(), initial_output_stride=3),
     'initial_output_stride must be one of (1, 2, 4), got 3'),
    ('spec: unknown dict key', lambda: spec_lib.ModelSpec(
        {'num_units_per_block': [1, 1], 'k': 4}),
     "Unknown key(s) 'k' in the architecture dict"),
    ('spec: dict without units', lambda: spec_lib.ModelSpec(
        {'growth_rate': 4}), 'An architecture dict needs num_units_per_block'),
    ('spec: num_classes=True', lambda: spec_lib.ModelSpec(
        'densenet_121', num_classes=True),
     'num_classes must be None or an int >= 1, got True'),
    ('spec: unknown name', lambda: spec_lib.ModelSpec('densenet_7'),
     "Unknown architecture 'densenet_7'"),
    ('keras_model: unknown dict key', lambda: densenet.keras_model(
        {'num_units_per_block': [1, 1], 'growth': 4}),
     "Unknown key(s) 'growth'"),
    ('keras_model: rank 3', lambda: densenet.keras_model(
        dict(TINY), num_classes=3)(np.zeros([64, 64, 3], np.float32)),
     'inputs must be a rank-4'),
    ('keras_model: too small', lambda: densenet.keras_model(
        dict(TINY), num_classes=3)(image(16)),
     'at least 29x29 pixels'),
    ('classifier: 2-D array', lambda: pretrained.Classifier.preprocess(
        None, np.zeros([64, 64])), 'got shape (64, 64)'),
    ('classifier: 1 channel', lambda: pretrained.Classifier.preprocess(
        None, np.zeros([2, 64, 64, 1])), 'got shape (2, 64, 64, 1)'),
    ('classifier: strings', lambda: pretrained.Classifier.preprocess(
        None, np.array([[[['a', 'b', 'c']]]])), 'and dtype <U1'),
]


@pytest.mark.parametrize('call,message', [row[1:] for row in API_ERRORS],
                         ids=[row[0] for row in API_ERRORS])
def test_bad_argument_is_a_value_error_naming_it(call, message):
  with pytest.raises(ValueError) as raised:
    call()
  assert message in str(raised.value)


def test_bool_and_bool_tensor_is_training_are_accepted():
  assert build(image(), num_classes=3, is_training=False) == [1, 3]
  assert build(image(), num_classes=3,
               is_training=np.bool_(True)) == [1, 3]
  assert build(lambda: image(), num_classes=3,
               is_training=tf1.placeholder_with_default(False, [])) == [1, 3]


def test_uint8_and_float64_images_give_the_float32_logits():
  """Integer and double images are cast to float32, as preprocessing does."""
  pixels = np.random.RandomState(0).randint(0, 256, [2, 32, 32, 3])
  logits = {}
  with tf.Graph().as_default():
    with slim.arg_scope(densenet.densenet_arg_scope()):
      for dtype in (np.float32, np.uint8, np.float64):
        logits[dtype], _ = densenet.densenet_X(
            pixels.astype(dtype), num_classes=3, is_training=False,
            reuse=tf1.AUTO_REUSE, **TINY)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      values = session.run(logits)
  assert logits[np.uint8].dtype == tf.float32
  np.testing.assert_array_equal(values[np.uint8], values[np.float32])
  np.testing.assert_array_equal(values[np.float64], values[np.float32])


@pytest.mark.parametrize('kwargs,geometry', [
    ({}, 'nominal'),
    ({'output_stride': 16, 'global_pool': False}, 'os16'),
    ({'output_stride': 8, 'global_pool': False}, 'os8'),
    ({'initial_output_stride': 2}, 'root stride 2'),
    ({'initial_output_stride': 1, 'root': 'cifar'}, 'cifar root'),
])
def test_minimum_size_is_exact(kwargs, geometry):
  """At the minimum the output has pixels; one less and, without the check,
  TensorFlow's own shape inference finds a map shrunk to nothing."""
  del geometry
  config = dict(TINY, **kwargs)
  blocks = nets.densenet_blocks(config['num_units_per_block'],
                                config['growth_rate'])
  stride = config.get('initial_output_stride', 4)
  minimum = stride * (densenet_utils.minimum_input_size(
      blocks, config.get('output_stride'), stride) - 1) + 1
  shape = build(image(minimum), num_classes=3, **kwargs)
  assert min(shape[1:-1] or [1]) >= 1
  with pytest.raises(ValueError, match='at least %dx%d pixels' %
                     (minimum, minimum)):
    build(image(minimum - 1), num_classes=3, **kwargs)
  # The check is not stricter than the network: remove it and the smaller
  # image fails inside TensorFlow.
  original = inputs_lib.check_size
  inputs_lib.check_size = lambda inputs, *args: inputs
  try:
    with pytest.raises(ValueError, match='Negative dimension size'):
      build(image(minimum - 1), num_classes=3, **kwargs)
  finally:
    inputs_lib.check_size = original


def test_dynamic_size_too_small_fails_at_run_time_through_the_inference_graph():
  """A placeholder (load_pretrained, the SavedModel's serving_images): small
  images stop with the size and the minimum, not NaN logits."""
  with tf.Graph().as_default():
    images, logits = pretrained.build_classifier(
        dict(TINY), {'num_classes': 3})
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      session, (images, logits) = rewrite.optimize(session,
                                                     (images, logits))
  with session:
    good = session.run(logits, {images: np.full([1, 29, 33, 3], 128.0)})
    assert good.shape == (1, 3) and np.isfinite(good).all()
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
      session.run(logits, {images: np.full([1, 28, 40, 3], 128.0)})
  assert ('inputs are too small: densenet_X needs images of at least 29x29 '
          'pixels (output_stride None), got (height, width):] [28 40]'
          in raised.value.message)


def test_config_keys_are_densenet_x_parameters():
  parameters = inspect.signature(nets.densenet_X).parameters
  assert set(architectures.CONFIG_KEYS) <= set(parameters)
  # Not per-call settings, which a spec or the caller gives.
  assert not set(architectures.CONFIG_KEYS) & {
      'inputs', 'num_classes', 'is_training', 'reuse', 'output_stride',
      'global_pool', 'spatial_squeeze', 'memory_efficient'}
