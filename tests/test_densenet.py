"""Tests of the DenseNet models, modeled on tf-slim's resnet_v2_test.

Tiny nets everywhere except where a full architecture is the point (exact
parameter counts, the documented 224x224 shapes).
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import densenet
from densenet import densenet_arg_scope
import densenet_utils

tf1 = tf.compat.v1


def create_test_input(batch_size, height, width, channels):
  """A deterministic meshgrid input (as resnet_v2_test), or a placeholder."""
  if None in (batch_size, height, width):
    return tf1.placeholder(tf.float32, (batch_size, height, width, channels))
  h = np.arange(height, dtype=np.float32).reshape(height, 1)
  w = np.arange(width, dtype=np.float32).reshape(1, width)
  image = np.reshape(h + w, (1, height, width, 1))
  image = np.tile(image, (batch_size, 1, 1, channels))
  return tf.constant(image / (height + width) - 0.5)


def tiny(inputs, num_classes=None, is_training=False, global_pool=True,
         output_stride=None, spatial_squeeze=True, reuse=None, scope='tiny',
         **kwargs):
  """A four-block ImageNet-root DenseNet with 1, 2, 2, 1 units and k=4."""
  return densenet.densenet_X(
      inputs, num_units_per_block=[1, 2, 2, 1], growth_rate=4,
      num_initial_filters=8,
      num_classes=num_classes, is_training=is_training,
      global_pool=global_pool, output_stride=output_stride,
      spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope, **kwargs)


def trainable_parameter_count():
  return int(sum(np.prod(v.shape) for v in tf1.trainable_variables()))


def variable_by_name(name):
  return next(v for v in tf1.global_variables() if v.op.name == name)


def variable_shapes():
  return {v.op.name: v.shape.as_list() for v in tf1.global_variables()}


# Trainable parameters with 1000 (ImageNet) or 10 (CIFAR) classes: the
# figures torchvision publishes and Keras reports, and the paper's.
PARAMETER_COUNTS = [
    ('densenet_121', 224, 1000, 7978856),
    ('densenet_169', 224, 1000, 14149480),
    ('densenet_201', 224, 1000, 20013928),
    ('densenet_161', 224, 1000, 28681000),
    ('densenet_264', 224, 1000, 33337704),
    ('densenet_40_k12', 32, 10, 1019722),
    ('densenet_100_k12', 32, 10, 6979642),
    ('densenet_100_k24', 32, 10, 27249082),
    ('densenet_bc_100_k12', 32, 10, 769162),
    ('densenet_bc_250_k24', 32, 10, 15324406),
    ('densenet_bc_190_k40', 32, 10, 25624430),
]


@pytest.mark.parametrize('name,size,num_classes,expected', PARAMETER_COUNTS)
def test_parameter_count_and_logits_shape(name, size, num_classes, expected):
  model = densenet.MODELS[name]
  assert model.default_image_size == size
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [2, size, size, 3])
    with slim.arg_scope(densenet_arg_scope()):
      logits, end_points = model(images, num_classes, is_training=False)
    assert trainable_parameter_count() == expected
    assert logits.shape.as_list() == [2, num_classes]
    assert end_points['predictions'].shape.as_list() == [2, num_classes]
    # Convolutions followed by batch norm have no biases: only the logits do.
    biases = [v.op.name for v in tf1.global_variables()
              if v.op.name.endswith('biases')]
    assert biases == [name + '/logits/biases']


def test_densenet_121_dense_prediction_224():
  """The documented example: 224x224 at output_stride 16 is 14x14x1024."""
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [1, 224, 224, 3])
    with slim.arg_scope(densenet_arg_scope()):
      net, end_points = densenet.densenet_121(
          images, None, is_training=False, global_pool=False,
          output_stride=16)
    assert net.shape.as_list() == [1, 14, 14, 1024]
    assert end_points['densenet_121/dense_block1'].shape.as_list() == [
        1, 56, 56, 256]
    assert end_points['densenet_121/dense_block2'].shape.as_list() == [
        1, 28, 28, 512]


@pytest.mark.parametrize('output_stride,side', [(32, 7), (16, 14), (8, 28),
                                                (4, 56), (None, 7)])
def test_four_block_output_stride_at_224(output_stride, side):
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [1, 224, 224, 3])
    with slim.arg_scope(densenet_arg_scope()):
      net, _ = tiny(images, global_pool=False, output_stride=output_stride)
    assert net.shape.as_list() == [1, side, side, 11]


def _shapes(end_points, names):
  return {name: end_points[name].shape.as_list() for name in names}


def test_end_point_names():
  with tf.Graph().as_default():
    images = create_test_input(2, 64, 64, 3)
    with slim.arg_scope(densenet_arg_scope()):
      _, end_points = densenet.densenet_X(
          images, num_units_per_block=[1, 2], growth_rate=4,
          num_initial_filters=8,
          num_classes=5, scope='tiny')
  assert sorted(end_points) == sorted([
      'tiny/conv1',
      'tiny/pool1',
      'tiny/dense_block1/unit_1/dense_unit/conv1',
      'tiny/dense_block1/unit_1/dense_unit/conv2',
      'tiny/dense_block1/unit_1/dense_unit',
      'tiny/dense_block1',
      'tiny/transition1/unit_1/transition/conv',
      'tiny/transition1/unit_1/transition',
      'tiny/transition1',
      'tiny/dense_block2/unit_1/dense_unit/conv1',
      'tiny/dense_block2/unit_1/dense_unit/conv2',
      'tiny/dense_block2/unit_1/dense_unit',
      'tiny/dense_block2/unit_2/dense_unit/conv1',
      'tiny/dense_block2/unit_2/dense_unit/conv2',
      'tiny/dense_block2/unit_2/dense_unit',
      'tiny/dense_block2',
      'tiny/postnorm',
      'tiny/global_pool',
      'tiny/logits',
      'tiny/spatial_squeeze',
      'predictions',
  ])


# Channels: root 8; block1 8+4=12; transition1 6; block2 6+8=14;
# transition2 7; block3 7+8=15; transition3 7; block4 7+4=11.
CLASSIFICATION_SHAPES = {
    'tiny/conv1': [2, 32, 32, 8],
    'tiny/pool1': [2, 16, 16, 8],
    'tiny/dense_block1/unit_1/dense_unit/conv1': [2, 16, 16, 16],
    'tiny/dense_block1/unit_1/dense_unit/conv2': [2, 16, 16, 4],
    'tiny/dense_block1': [2, 16, 16, 12],
    'tiny/transition1': [2, 8, 8, 6],
    'tiny/dense_block2/unit_1/dense_unit': [2, 8, 8, 10],
    'tiny/dense_block2': [2, 8, 8, 14],
    'tiny/transition2': [2, 4, 4, 7],
    'tiny/dense_block3': [2, 4, 4, 15],
    'tiny/transition3': [2, 2, 2, 7],
    'tiny/dense_block4': [2, 2, 2, 11],
    'tiny/postnorm': [2, 2, 2, 11],
    'tiny/global_pool': [2, 1, 1, 11],
    'tiny/logits': [2, 1, 1, 10],
    'tiny/spatial_squeeze': [2, 10],
    'predictions': [2, 10],
}


def test_classification_end_point_shapes():
  with tf.Graph().as_default():
    images = create_test_input(2, 64, 64, 3)
    with slim.arg_scope(densenet_arg_scope()):
      logits, end_points = tiny(images, num_classes=10)
    assert logits.shape.as_list() == [2, 10]
    assert _shapes(end_points, CLASSIFICATION_SHAPES) == CLASSIFICATION_SHAPES


def test_fully_convolutional_end_point_shapes():
  with tf.Graph().as_default():
    images = create_test_input(2, 96, 64, 3)
    with slim.arg_scope(densenet_arg_scope()):
      logits, end_points = tiny(images, num_classes=10, global_pool=False)
  assert logits.shape.as_list() == [2, 3, 2, 10]
  expected = {
      'tiny/pool1': [2, 24, 16, 8],
      'tiny/dense_block1': [2, 24, 16, 12],
      'tiny/dense_block2': [2, 12, 8, 14],
      'tiny/dense_block3': [2, 6, 4, 15],
      'tiny/dense_block4': [2, 3, 2, 11],
      'tiny/logits': [2, 3, 2, 10],
      'predictions': [2, 3, 2, 10],
  }
  assert _shapes(end_points, expected) == expected
  assert 'tiny/spatial_squeeze' not in end_points


def test_atrous_end_point_shapes():
  with tf.Graph().as_default():
    images = create_test_input(2, 64, 64, 3)
    with slim.arg_scope(densenet_arg_scope()):
      net, end_points = tiny(images, global_pool=False, output_stride=8)
  assert net.shape.as_list() == [2, 8, 8, 11]
  expected = {
      'tiny/dense_block1': [2, 16, 16, 12],
      'tiny/transition1': [2, 8, 8, 6],
      'tiny/dense_block2': [2, 8, 8, 14],
      'tiny/transition2': [2, 8, 8, 7],
      'tiny/dense_block3': [2, 8, 8, 15],
      'tiny/transition3': [2, 8, 8, 7],
      'tiny/dense_block4': [2, 8, 8, 11],
  }
  assert _shapes(end_points, expected) == expected


def test_unknown_batch_height_width():
  with tf.Graph().as_default():
    images = create_test_input(None, None, None, 3)
    with slim.arg_scope(densenet_arg_scope()):
      logits, _ = tiny(images, num_classes=10)
      features, _ = tiny(images, global_pool=False, output_stride=16,
                         reuse=True)
    assert logits.shape.as_list() == [None, 10]
    assert features.shape.as_list() == [None, None, None, 11]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      feed = {images: np.random.RandomState(0).rand(3, 64, 96, 3)}
      logits_value, features_value = sess.run([logits, features], feed)
    assert logits_value.shape == (3, 10)
    assert features_value.shape == (3, 4, 6, 11)


@pytest.mark.parametrize('output_stride', [4, 8, 16, None])
def test_atrous_values_equal_nominal(output_stride):
  """Dense features subsampled to the nominal stride equal the nominal ones."""
  nominal_stride = 32
  with tf.Graph().as_default():
    # Random batch-norm statistics, so the check sees every layer.
    initializers = {
        'moving_mean': tf1.random_uniform_initializer(-0.5, 0.5, seed=1),
        'moving_variance': tf1.random_uniform_initializer(0.5, 1.5, seed=2),
        'gamma': tf1.random_uniform_initializer(0.5, 1.5, seed=3),
        'beta': tf1.random_uniform_initializer(-0.5, 0.5, seed=4),
    }
    images = create_test_input(2, 128, 96, 3)
    with slim.arg_scope(densenet_arg_scope()), \
        slim.arg_scope([densenet_utils.batch_norm],
                       param_initializers=initializers):
      dense, _ = tiny(images, global_pool=False, output_stride=output_stride)
      nominal, _ = tiny(images, global_pool=False, reuse=True)
    factor = nominal_stride // (output_stride or nominal_stride)
    subsampled = dense[:, ::factor, ::factor, :]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      subsampled_value, nominal_value = sess.run([subsampled, nominal])
  assert nominal_value.shape == (2, 4, 3, 11)
  assert np.abs(nominal_value).max() > 0.1
  np.testing.assert_allclose(subsampled_value, nominal_value, atol=1e-4)


def test_variables_same_for_every_output_stride():
  shapes = []
  for output_stride in (None, 32, 16, 8, 4):
    with tf.Graph().as_default():
      images = create_test_input(1, 64, 64, 3)
      with slim.arg_scope(densenet_arg_scope()):
        tiny(images, num_classes=3, global_pool=False,
             output_stride=output_stride)
      shapes.append(variable_shapes())
  # Root 5, units 10 each, transitions 5 each, postnorm 4, logits 2.
  assert len(shapes[0]) == 5 + 10 * (1 + 2 + 2 + 1) + 5 * 3 + 4 + 2
  for other in shapes[1:]:
    assert other == shapes[0]


def test_initial_output_stride_two_and_one():
  with tf.Graph().as_default():
    images = create_test_input(1, 64, 64, 3)
    with slim.arg_scope(densenet_arg_scope()):
      net2, ep2 = tiny(images, global_pool=False, initial_output_stride=2)
      net1, ep1 = tiny(images, global_pool=False, initial_output_stride=1,
                       output_stride=8, scope='tiny1')
  assert 'tiny/pool1' not in ep2
  assert ep2['tiny/dense_block1'].shape.as_list() == [1, 32, 32, 12]
  assert net2.shape.as_list() == [1, 4, 4, 11]
  assert ep1['tiny1/dense_block1'].shape.as_list() == [1, 64, 64, 12]
  assert net1.shape.as_list() == [1, 8, 8, 11]


def test_cifar_model_shapes_and_dropout():
  with tf.Graph().as_default():
    images = create_test_input(4, 32, 32, 3)
    with slim.arg_scope(densenet_arg_scope()):
      logits, end_points = densenet.densenet_cifar(
          images, depth=10, growth_rate=4, bc=True, num_classes=10,
          dropout_rate=0.2, is_training=False)
      train_logits, _ = densenet.densenet_cifar(
          images, depth=10, growth_rate=4, bc=True, num_classes=10,
          dropout_rate=0.2, is_training=True, reuse=True)
    assert end_points['densenet_bc_10_k4/conv1'].shape.as_list() == [
        4, 32, 32, 8]
    assert end_points['densenet_bc_10_k4/dense_block2'].shape.as_list() == [
        4, 16, 16, 10]
    assert end_points['densenet_bc_10_k4/dense_block3'].shape.as_list() == [
        4, 8, 8, 9]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      first, second = sess.run(logits), sess.run(logits)
      train_first, train_second = sess.run(train_logits), sess.run(train_logits)
  np.testing.assert_array_equal(first, second)  # No dropout at inference.
  assert np.abs(train_first - train_second).max() > 1e-6  # Dropout on.


def test_moving_statistics_update_with_update_ops():
  with tf.Graph().as_default():
    # Two different images: dense_block4 is 1x1 here, and two equal ones
    # would normalize to zero there (its conv1's batch mean stays 0).
    images = create_test_input(2, 32, 32, 3) * tf.constant(
        [1.0, -2.0], shape=[2, 1, 1, 1])
    labels = tf.constant([1, 2])
    with slim.arg_scope(densenet_arg_scope()):
      logits, _ = tiny(images, num_classes=3, is_training=True)
    loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = slim.learning.create_train_op(
        loss, tf1.train.GradientDescentOptimizer(0.1))
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    moving = [v for v in tf1.global_variables() if 'moving_' in v.op.name]
    # 17 batch norms: root, 2 per unit (6 units), 3 transitions, postnorm.
    assert len(update_ops) == len(moving) == 2 * 17
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      before = sess.run(moving)
      sess.run(train_op)
      after = sess.run(moving)
    changed = [np.abs(a - b).max() > 1e-7 for a, b in zip(before, after)]
    assert all(changed)


def test_batch_norm_matches_slim_fused_batch_norm():
  """Our batch norm gives slim's fused batch norm numbers, bit for bit."""
  rng = np.random.RandomState(0)
  batches = [rng.randn(4, 6, 6, 5).astype(np.float32) * 3 + 1
             for _ in range(3)]
  results = []
  for norm in (densenet_utils.batch_norm, slim.batch_norm):
    with tf.Graph().as_default():
      x = tf1.placeholder(tf.float32, [4, 6, 6, 5])
      # A list of collections selects slim's fused path (the default one goes
      # through the tf-keras layer instead).
      y = norm(x, decay=0.9, epsilon=1e-3, scale=True, is_training=True,
               updates_collections=[tf1.GraphKeys.UPDATE_OPS])
      updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
      stats = [v for v in tf1.global_variables() if 'moving' in v.op.name]
      names = sorted(v.op.name for v in tf1.global_variables())
      with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        outputs = [sess.run([y] + updates, {x: b})[0] for b in batches]
        results.append((names, outputs, sess.run(stats)))
  assert results[0][0] == results[1][0] == [
      'BatchNorm/beta', 'BatchNorm/gamma', 'BatchNorm/moving_mean',
      'BatchNorm/moving_variance']
  for ours, theirs in zip(results[0][1] + results[0][2],
                          results[1][1] + results[1][2]):
    np.testing.assert_array_equal(ours, theirs)


BAD_ARGUMENTS = [
    (dict(num_units_per_block=[]), 'num_units_per_block'),
    (dict(num_units_per_block=[2, 0]), 'num_units_per_block'),
    (dict(growth_rate=0), 'growth_rate'),
    (dict(compression=0.0), 'compression'),
    (dict(compression=1.5), 'compression'),
    (dict(dropout_rate=1.0), 'dropout_rate'),
    (dict(initial_output_stride=3), 'initial_output_stride'),
    (dict(output_stride=12), r'output_stride=12 .*4, 8, 16, 32'),
    (dict(output_stride=2), 'output_stride'),
    (dict(output_stride=64), 'output_stride'),
    (dict(root='resnet'), 'root'),
    (dict(num_classes=0), 'num_classes'),
]


@pytest.mark.parametrize('kwargs,message', BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error(kwargs, message):
  arguments = dict(num_units_per_block=[1, 1, 1, 1], growth_rate=4)
  arguments.update(kwargs)
  with tf.Graph().as_default():
    images = create_test_input(1, 64, 64, 3)
    with pytest.raises(ValueError, match=message):
      densenet.densenet_X(images, **arguments)


@pytest.mark.parametrize('shape,message', [
    ([2, 32, 32], 'rank-4'),
    ([2, 1, 32, 32, 3], 'rank-4'),
    ([2, 32, 32, None], 'channel'),
])
def test_bad_inputs_raise_value_error(shape, message):
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, shape)
    with pytest.raises(ValueError, match=message):
      tiny(images)


def test_cifar_bad_depth():
  with tf.Graph().as_default():
    images = create_test_input(1, 32, 32, 3)
    with pytest.raises(ValueError, match='depth'):
      densenet.densenet_cifar(images, depth=41, growth_rate=12, bc=True)


def test_root_block_same_padding_equals_tf_same_ops():
  """padding='same' (pudae's graph) is TF's SAME conv and max pool; the
  default pads symmetrically like Keras; the variables are the same."""
  with tf.Graph().as_default():
    images = create_test_input(1, 64, 64, 3)
    with slim.arg_scope(densenet_arg_scope()):
      _, symmetric = tiny(images)
      with slim.arg_scope([densenet.nets.root_block], padding='same'):
        _, same = tiny(images, reuse=True)
      with pytest.raises(ValueError, match='padding'):
        with slim.arg_scope([densenet.nets.root_block], padding='valid'):
          tiny(images, reuse=True)
    weights = variable_by_name('tiny/conv1/weights')
    # Inference batch norm with its initial statistics: x / sqrt(1 + eps).
    expected = tf.nn.max_pool2d(
        tf.nn.relu(tf.nn.conv2d(images, weights, 2, 'SAME') /
                   np.sqrt(1.0 + 1.001e-5)), 3, 2, 'SAME')
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      same_pool, symmetric_pool, expected_pool = sess.run(
          # The reused network's name scope (end-point prefix) is 'tiny_1'.
          [same['tiny_1/pool1'], symmetric['tiny/pool1'], expected])
  assert same_pool.shape == symmetric_pool.shape == (1, 16, 16, 8)
  np.testing.assert_allclose(same_pool, expected_pool, rtol=1e-5, atol=1e-5)
  assert np.abs(same_pool - symmetric_pool).max() > 1e-3
