"""Tests of the segmentation heads, the loss and the metrics."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from conftest import TINY_4BLOCK_THIN
import densenet
import segmentation
from segmentation import model as model_lib

tf1 = tf.compat.v1

TINY = dict(TINY_4BLOCK_THIN, scope='tiny')


def build(head, output_stride, size=64, depth=16, backbone=TINY):
  images = tf.constant(np.linspace(-1, 1, 2 * size * size * 3, dtype=np.float32)
                       .reshape(2, size, size, 3))
  return segmentation.build_model(images, 5, backbone=backbone,
                                  output_stride=output_stride, head=head,
                                  depth=depth, is_training=False)


@pytest.mark.parametrize('output_stride', [8, 16])
@pytest.mark.parametrize('head', ['fcn', 'aspp', 'deeplabv3plus'])
def test_head_shapes(head, output_stride):
  with tf.Graph().as_default():
    logits, end_points = build(head, output_stride)
    features = 64 // output_stride
    expected = {
        'upsampled_logits': [2, 64, 64, 5],
        'tiny/dense_block1': [2, 16, 16, 8 + 4],
        'tiny/postnorm': [2, features, features, None],
    }
    if head != 'fcn':
      expected['aspp'] = [2, features, features, 16]
    if head == 'deeplabv3plus':
      expected['decoder'] = [2, 16, 16, 16]
      expected['logits'] = [2, 16, 16, 5]
    else:
      expected['logits'] = [2, features, features, 5]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run({k: end_points[k] for k in expected})
      assert sess.run(logits).shape == (2, 64, 64, 5)
    for name, shape in expected.items():
      actual = list(values[name].shape)
      assert actual[:3] == shape[:3], name
      if shape[3] is not None:
        assert actual[3] == shape[3], name
    assert logits.shape.as_list() == [2, 64, 64, 5]
    assert ('aspp' in end_points) == (head != 'fcn')


def atrous_rate(graph, scope):
  """The dilation of the one convolution under `scope` (TF runs atrous
  convolutions as Conv2D with `dilations`, or as SpaceToBatchND + Conv2D)."""
  ops = [op for op in graph.get_operations() if op.name.startswith(scope)]
  convs = [op for op in ops if op.type == 'Conv2D']
  assert len(convs) == 1
  dilation = list(convs[0].get_attr('dilations'))[1:3]
  for op in ops:
    if op.type == 'SpaceToBatchND':
      dilation = list(tf.get_static_value(op.inputs[1]))
  assert dilation[0] == dilation[1]
  return int(dilation[0])


@pytest.mark.parametrize('output_stride,rates', [(16, (6, 12, 18)),
                                                 (8, (12, 24, 36))])
def test_aspp_rates_follow_output_stride(output_stride, rates):
  assert model_lib.aspp_rates(output_stride) == rates
  with tf.Graph().as_default() as graph:
    build('aspp', output_stride)
    for branch, rate in enumerate(rates):
      assert atrous_rate(graph, 'aspp/atrous_%d/' % (branch + 1)) == rate
    assert atrous_rate(graph, 'aspp/conv_1x1/') == 1
  with pytest.raises(ValueError, match='output_stride'):
    model_lib.aspp_rates(4)


def test_variables_same_for_every_output_stride():
  names = []
  for output_stride in (8, 16):
    with tf.Graph().as_default():
      build('deeplabv3plus', output_stride)
      names.append({v.op.name: v.shape.as_list()
                    for v in tf1.global_variables()})
  assert names[0] == names[1]


@pytest.mark.parametrize('backbone', ['densenet_121', 'tiny'])
def test_backbone_variable_names_equal_classification(backbone):
  config = 'densenet_121' if backbone == 'densenet_121' else TINY

  def images():
    return tf1.placeholder(tf.float32, [1, 64, 64, 3])

  with tf.Graph().as_default():
    segmentation.build_model(images(), 5, backbone=config, head='aspp')
    segmentation_names = {v.op.name: v.shape.as_list()
                          for v in tf1.global_variables()
                          if v.op.name.startswith(backbone + '/')}
    head_names = {v.op.name.split('/')[0] for v in tf1.global_variables()
                  if not v.op.name.startswith(backbone + '/')}
  with tf.Graph().as_default():
    with slim.arg_scope(densenet.densenet_arg_scope()):
      if backbone == 'densenet_121':
        densenet.densenet_121(images(), num_classes=1000)
      else:
        kwargs = dict(TINY)
        densenet.densenet_X(images(), num_classes=1000, **kwargs)
    classification_names = {v.op.name: v.shape.as_list()
                            for v in tf1.global_variables()
                            if '/logits/' not in v.op.name}
  assert segmentation_names == classification_names
  assert head_names == {'aspp', 'logits'}


def test_bad_arguments():
  images = tf.zeros([1, 32, 32, 3])
  for kwargs, name in [({'head': 'pspnet'}, 'head'),
                       ({'output_stride': 4}, 'output_stride'),
                       ({'backbone': 'resnet_50'}, 'backbone'),
                       ({'backbone': {'growth_rate': 4}},
                        'num_units_per_block')]:
    with tf.Graph().as_default(), pytest.raises(ValueError, match=name):
      segmentation.build_model(images, 3, **kwargs)


def numpy_cross_entropy(labels, logits, weights=None):
  """Per-image mean over labelled pixels, by hand."""
  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  out = []
  for b in range(labels.shape[0]):
    valid = labels[b] != 255
    picked = -log_probs[b][valid, labels[b][valid]]
    if weights is not None:
      picked = picked * np.asarray(weights)[labels[b][valid]]
    out.append(picked.sum() / max(valid.sum(), 1))
  return np.array(out)


def test_loss_ignores_255_and_weights_classes():
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 3, (2, 6, 5))
  labels[0, :2] = 255
  labels[1, 3, 4] = 255
  logits = rng.randn(2, 6, 5, 3).astype(np.float32)
  changed = logits.copy()
  changed[labels == 255] = rng.randn(int((labels == 255).sum()), 3) * 100

  def loss_and_gradient(values, **kwargs):
    variable = tf.Variable(values)
    with tf.GradientTape() as tape:
      loss = segmentation.softmax_cross_entropy(labels, variable, **kwargs)
      total = tf.reduce_sum(loss)
    return loss.numpy(), tape.gradient(total, variable).numpy()

  loss, gradient = loss_and_gradient(logits)
  loss_changed, gradient_changed = loss_and_gradient(changed)
  np.testing.assert_allclose(loss, numpy_cross_entropy(labels, logits),
                             rtol=1e-5)
  np.testing.assert_allclose(loss_changed, loss, rtol=1e-6)
  np.testing.assert_allclose(gradient_changed, gradient, atol=1e-7)
  assert np.all(gradient[labels == 255] == 0)
  weights = [0.5, 2.0, 1.0]
  weighted, _ = loss_and_gradient(logits, class_weights=weights)
  np.testing.assert_allclose(
      weighted, numpy_cross_entropy(labels, logits, weights), rtol=1e-5)
  all_ignored = np.full((1, 2, 2), 255)
  assert segmentation.softmax_cross_entropy(
      all_ignored, np.zeros((1, 2, 2, 3), np.float32)).numpy()[0] == 0.0


def test_confusion_matrix_metrics_by_hand():
  # 4 classes; class 3 appears in neither labels nor predictions.
  labels = np.array([[0, 0, 1, 1], [2, 2, 255, 0]])
  predictions = np.array([[0, 1, 1, 1], [2, 0, 3, 0]])
  confusion = segmentation.ConfusionMatrix(4)
  # Accumulate over two "images" (the rows).
  confusion.update(labels[0], predictions[0])
  confusion.update(labels[1], predictions[1])
  # Labelled pixels (label, prediction): (0,0) (0,1) (1,1) (1,1) (2,2) (2,0)
  # (0,0); the 255 pixel predicted 3 is ignored.
  expected = np.array([[2, 1, 0, 0],
                       [0, 2, 0, 0],
                       [1, 0, 1, 0],
                       [0, 0, 0, 0]])
  np.testing.assert_array_equal(confusion.matrix, expected)
  assert confusion.pixel_accuracy() == pytest.approx(5 / 7)
  # IoU = TP / (TP + FP + FN): class 0: 2 / (2 + 1 + 1); class 1:
  # 2 / (2 + 1 + 0); class 2: 1 / (1 + 0 + 1); class 3 absent.
  iou = confusion.iou()
  np.testing.assert_allclose(iou[:3], [0.5, 2 / 3, 0.5])
  assert np.isnan(iou[3])
  assert confusion.mean_iou() == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
  results = confusion.results(['bg', 'a', 'b', 'c'])
  assert results['per_class_iou']['c'] is None
  assert results['num_pixels'] == 7


def test_initial_checkpoint_restores_backbone_and_reports(tmp_path):
  from densenet import training  # pylint: disable=g-import-not-at-top
  from segmentation import model as seg_model  # pylint: disable=g-import-not-at-top
  from segmentation import tasks  # pylint: disable=g-import-not-at-top

  def classifier(images, is_training):
    with slim.arg_scope(densenet.densenet_arg_scope()):
      return densenet.densenet_X(images, num_classes=10,
                                 is_training=is_training, **TINY)[0]

  images = tf.zeros([1, 32, 32, 3])
  source = training.SlimModel(classifier)
  source(images)
  path = training.NameBasedCheckpointManager(
      source.variables_by_name(), str(tmp_path)).save(1)
  config = tasks.ModelConfig(num_classes=3, backbone=TINY, depth=8)
  target = training.SlimModel(seg_model.net_fn(config))
  target(images)
  messages = []
  report = tasks.restore_backbone(target, TINY, path, messages.append)
  backbone = sorted(n for n in source.variables_by_name()
                    if not n.startswith('tiny/logits/'))
  assert report.restored == backbone
  assert report.unused == ['tiny/logits/biases', 'tiny/logits/weights']
  assert report.mismatched == []
  assert {n.split('/')[0] for n in report.missing} == {'aspp', 'logits'}
  for name in backbone:
    np.testing.assert_array_equal(target.variables_by_name()[name].numpy(),
                                  source.variables_by_name()[name].numpy())
  assert len(messages) == 1
  assert 'restored %d variables' % len(backbone) in messages[0]
  assert 'not in the checkpoint: none' in messages[0]
  assert 'tiny/logits/weights' in messages[0]
