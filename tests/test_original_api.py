"""The original library's API (sthalles/dense-net), and the graph-mode guard.

The two README snippets of the original library run word for word, apart
from TF2 spelling (`tf_slim`, `tf.compat.v1.Session`,
`tf.compat.v1.global_variables_initializer`).
"""

import inspect

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from conftest import TINY_2BLOCK
import densenet
from densenet import architectures
from densenet_utils import densenet_arg_scope

tf1 = tf.compat.v1
TINY = TINY_2BLOCK


def test_original_readme_snippets():
  with tf.Graph().as_default():
    fake_input = np.zeros((1, 224, 224, 3), dtype=np.float32)

    with slim.arg_scope(densenet_arg_scope()):
      net, end_points = densenet.densenet_121(inputs=fake_input,
                                              num_classes=1000,
                                              theta=0.5,
                                              is_training=True,
                                              scope='DenseNet_121')
      print(net.shape)  # (1, 1000)
    first_shape = tuple(net.shape)

    with slim.arg_scope(densenet_arg_scope()):

      net, end_points = densenet.densenet_121(fake_input,
                                              num_classes=21,
                                              theta=0.5,
                                              is_training=True,
                                              global_pool=False,
                                              output_stride=16,
                                              initial_output_stride=2,
                                              spatial_squeeze=False)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        logits = sess.run(net)
        print(logits.shape)  # (1, 14, 14, 21)
  assert first_shape == (1, 1000)
  assert logits.shape == (1, 14, 14, 21)
  assert end_points['densenet_121/logits'].shape.as_list() == [1, 14, 14, 21]


def test_densenet_x_parameter_order_is_the_original():
  names = list(inspect.signature(densenet.densenet_X).parameters)
  assert names[:12] == [
      'inputs', 'num_classes', 'theta', 'num_units_per_block', 'growth_rate',
      'is_training', 'global_pool', 'output_stride', 'spatial_squeeze',
      'initial_output_stride', 'reuse', 'scope']
  with tf.Graph().as_default():
    images = tf.zeros([1, 32, 32, 3])
    net, _ = densenet.densenet_X(images, 5, 0.5, [1, 1], 4, False, True,
                                 None, True, 4, None, 'positional')
    assert net.shape.as_list() == [1, 5]
    with pytest.raises(ValueError, match='num_units_per_block'):
      densenet.densenet_X(images, [1, 1])  # The earlier order.


@pytest.mark.parametrize('name', sorted(densenet.MODELS))
def test_named_constructors_take_theta_in_the_original_order(name):
  parameters = inspect.signature(densenet.MODELS[name]).parameters
  assert list(parameters)[:10] == [
      'inputs', 'num_classes', 'theta', 'is_training', 'global_pool',
      'output_stride', 'spatial_squeeze', 'initial_output_stride', 'reuse',
      'scope']
  architecture = architectures.ARCHITECTURES[name]
  assert parameters['theta'].default == architecture['compression']
  assert parameters['scope'].default == name
  assert parameters['num_classes'].default == architecture['num_classes']


def _transition_channels(build, **kwargs):
  with tf.Graph().as_default():
    _, end_points = build(tf.zeros([1, 32, 32, 3]), **kwargs)
    transition = [v for k, v in end_points.items()
                  if k.endswith('/transition1')][0]
    return transition.shape.as_list()[-1]


CONSTRUCTORS = [
    # (constructor, fixed arguments, channels entering transition1)
    (densenet.densenet_X, TINY, 8 + 4),
    (densenet.densenet_cifar, dict(depth=10, growth_rate=4, bc=True), 8 + 4),
    (densenet.densenet_40_k12, {}, 16 + 12 * 12),
    (densenet.densenet_121, {}, 64 + 6 * 32),
]


@pytest.mark.parametrize('constructor,fixed,channels', CONSTRUCTORS)
def test_theta_is_the_compression(constructor, fixed, channels):
  assert _transition_channels(constructor, **fixed, theta=0.25) == (
      channels // 4)
  with pytest.raises(ValueError, match='theta.*compression'):
    _transition_channels(constructor, **fixed, theta=0.5, compression=0.25)


def test_compression_is_an_alias_of_theta():
  channels = 8 + 4
  for kwargs, kept in ((dict(compression=0.25), 0.25),
                       (dict(theta=0.25, compression=0.25), 0.25),
                       (dict(theta=1.0), 1.0), ({}, 0.5)):
    assert _transition_channels(densenet.densenet_X, **TINY, **kwargs) == (
        int(channels * kept))


@pytest.mark.parametrize('theta', [0.0, 1.5, -0.5, True, 'half'])
def test_bad_theta_names_theta(theta):
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match='theta'):
      densenet.densenet_X(tf.zeros([1, 32, 32, 3]), theta=theta, **TINY)


def test_numpy_and_list_inputs():
  """Arrays and nested lists become constants; non-float32 ones float32."""
  rng = np.random.RandomState(0)
  array = rng.randint(0, 256, (2, 32, 32, 3)).astype(np.float32)
  with tf.Graph().as_default():
    with slim.arg_scope(densenet_arg_scope()):
      from_tensor, _ = densenet.densenet_X(tf.constant(array), 3,
                                           is_training=False, scope='t', **TINY)
      outputs = [densenet.densenet_X(inputs, 3, is_training=False, scope='t',
                                     reuse=True, **TINY)[0]
                 for inputs in (array, array.tolist(),
                                array.astype(np.float64),
                                array.astype(np.uint8))]
    assert [o.dtype for o in outputs] == [tf.float32] * 4
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      expected, *values = sess.run([from_tensor] + outputs)
  assert expected.shape == (2, 3) and np.abs(expected).max() > 0.01
  for value in values:
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)


def test_constructors_refuse_eager_and_plain_tf_function():
  images = tf.zeros([1, 32, 32, 3])
  message = r'densenet\.keras_model.*tf\.compat\.v1'
  with pytest.raises(RuntimeError, match=message):
    densenet.densenet_121(images, 1000, is_training=False)

  @tf.function
  def plain(images):
    return densenet.densenet_X(images, 3, **TINY)[0]

  for _ in range(2):  # A failed call leaves no state that lets a later pass.
    with pytest.raises(RuntimeError, match=message):
      plain(images)
