"""Tests of multi-scale + flip prediction at any size, evaluation to
TensorBoard, evaluation during training with the best checkpoint, and the
pictures.

A tiny DenseNet (1 unit per block, k=4) with an 8-channel ASPP; images of odd
sizes (37x45, 67x45) so padding and cropping are exercised.
"""

import glob
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from conftest import TINY_4BLOCK_THIN
from densenet import training
from segmentation import cli
from segmentation import data
from segmentation import evaluation
from segmentation import metrics
from segmentation import model as seg_model
from segmentation import multiscale
from segmentation import options
from segmentation import pictures
from segmentation import tasks
from segmentation.data import synthetic

TINY = dict(TINY_4BLOCK_THIN, scope='tiny')
NUM_CLASSES = synthetic.NUM_CLASSES


def config(output_stride=16, head='aspp'):
  return tasks.ModelConfig(num_classes=NUM_CLASSES, backbone=TINY,
                           output_stride=output_stride, head=head, depth=8,
                           class_names=list(synthetic.CLASS_NAMES))


def tiny_model(model_config, gain=10.0):
  """A built SlimModel whose logits vary across pixels and classes: the
  untrained logits, centred per class and multiplied by `gain`."""
  tf.random.set_seed(0)
  model = training.SlimModel(seg_model.net_fn(model_config))
  mean = model(odd_images(64, 64, seed=5), training=False).numpy().mean(
      (0, 1, 2))
  variables = model.variables_by_name()
  variables['logits/weights'].assign(variables['logits/weights'] * gain)
  variables['logits/biases'].assign(-gain * mean)
  return model


def odd_images(height=37, width=45, seed=0):
  rng = np.random.RandomState(seed)
  return rng.uniform(-2, 2, (1, height, width, 3)).astype(np.float32)


def softmax(logits):
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


def hand_probabilities(model, images, multiple, scales, flip):
  """The averaged softmax of DeepLab's multi-scale evaluation, step by step
  in numpy around single calls of the network on padded inputs."""
  height, width = images.shape[1:3]
  per_input = []
  for scale in scales:
    size = (max(1, int(round(height * scale))), max(1, int(round(width *
                                                                 scale))))
    scaled = tf.image.resize(images, size, 'bilinear').numpy()
    for flipped in ([False, True] if flip else [False]):
      inputs = scaled[:, :, ::-1] if flipped else scaled
      pad_h, pad_w = -size[0] % multiple, -size[1] % multiple
      padded = np.pad(inputs, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)])
      logits = model(padded, training=False).numpy()[:, :size[0], :size[1]]
      if flipped:
        logits = logits[:, :, ::-1]
      logits = tf.image.resize(logits, (height, width), 'bilinear').numpy()
      per_input.append(softmax(logits))
  return np.mean(per_input, 0), per_input


def test_multiscale_flip_equals_hand_computation():
  model = tiny_model(config(output_stride=16))

  def logits_fn(x):
    return model(x, training=False)

  images = odd_images()
  scales = (0.5, 1.0, 1.75)
  expected, per_input = hand_probabilities(model, images, 16, scales, True)
  assert len(per_input) == 6
  # The six inputs disagree: the average is none of them.
  for probabilities in per_input:
    assert np.abs(probabilities - expected).max() > 0.1
  actual = multiscale.averaged_probabilities(logits_fn, images, 16, scales,
                                             flip=True).numpy()
  assert actual.shape == (1, 37, 45, NUM_CLASSES)
  np.testing.assert_allclose(actual, expected, atol=1e-5)
  labels = multiscale.make_predict_fn(logits_fn, 16, scales, True)(
      tf.constant(images)).numpy()
  assert labels.shape == (1, 37, 45)
  top2 = np.sort(expected, -1)[..., -2:]
  clear = top2[..., 1] - top2[..., 0] > 1e-4
  assert clear.mean() > 0.9
  np.testing.assert_array_equal(labels[clear], expected.argmax(-1)[clear])
  # Flipping the input flips the flip-averaged prediction.
  mirrored = multiscale.averaged_probabilities(
      logits_fn, images[:, :, ::-1], 16, scales, flip=True).numpy()
  np.testing.assert_allclose(mirrored[:, :, ::-1], actual, atol=1e-5)


@pytest.mark.parametrize('output_stride,head', [(8, 'deeplabv3plus'),
                                                (32, 'aspp')])
def test_any_size_pads_to_output_stride_and_crops(output_stride, head):
  model = tiny_model(config(output_stride, head))

  def logits_fn(x):
    return model(x, training=False)

  images = odd_images(37, 45)
  padded_size = (-(-37 // output_stride) * output_stride,
                 -(-45 // output_stride) * output_stride)
  padded = np.zeros((1,) + padded_size + (3,), np.float32)
  padded[:, :37, :45] = images
  expected = model(padded, training=False).numpy()[:, :37, :45]
  actual = multiscale.logits_at_any_size(logits_fn, images,
                                         output_stride).numpy()
  assert actual.shape == (1, 37, 45, NUM_CLASSES)
  np.testing.assert_allclose(actual, expected, atol=1e-5)
  # A size that is already a multiple is not padded.
  aligned = odd_images(64, 32)
  np.testing.assert_allclose(
      multiscale.logits_at_any_size(logits_fn, aligned, 32).numpy(),
      model(aligned, training=False).numpy(), atol=1e-6)
  with pytest.raises(ValueError, match='multiple'):
    multiscale.make_predict_fn(logits_fn, 0)


def test_eval_options():
  assert options.check_scales([1, '0.5']) == (1.0, 0.5)
  assert options.parse_scales('0.5,0.75,1.0,1.25,1.5,1.75') == (
      options.DEEPLAB_EVAL_SCALES)
  for bad in ([], [0.5, 0], ['x']):
    with pytest.raises(ValueError, match='eval_scales'):
      options.check_scales(bad)
  assert options.describe((1.0,), False) == ''
  assert options.describe((1.0,), True) == 'scales_1_flip'
  assert options.describe((0.5, 1.0, 1.75), False) == (
      'scales_0.5-1-1.75')


def save_untrained(model_dir, model_config, step):
  """A model directory holding an untrained tiny model at `step`."""
  model_config.save(model_dir)
  model = tiny_model(model_config)
  global_step = tf.Variable(step, dtype=tf.int64)
  training.NameBasedCheckpointManager(
      training.checkpoint_variables(model, None, global_step),
      model_dir).save(step)


def odd_sized_pairs(root, count=2, height=67, width=45):
  """PNG images (decoded identically by PIL and TF) in `root/images`, their
  labels `root/labels/<stem>.png`."""
  for folder in ('images', 'labels'):
    os.makedirs(os.path.join(root, folder))
  rng = np.random.RandomState(1)
  pairs = []
  for i in range(count):
    image, label = synthetic.render_scene(rng, height)
    image, label = image[:, :width], label[:, :width]
    label[:3, :3] = 255
    image_path = os.path.join(root, 'images', 'scene_%d.png' % i)
    label_path = os.path.join(root, 'labels', 'scene_%d.png' % i)
    Image.fromarray(image).save(image_path)
    data.save_label_png(label_path, label)
    pairs.append((image_path, label_path))
  return pairs


def read_scalars(directory):
  """{tag: {step: value}} of every events file in `directory`."""
  scalars = {}
  for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        number = float(tf.make_ndarray(value.tensor))
        scalars.setdefault(value.tag, {})[event.step] = number
  return scalars


def test_evaluate_and_predict_odd_size_multiscale(tmp_path):
  model_dir = str(tmp_path / 'model')
  save_untrained(model_dir, config(), 7)
  pairs = odd_sized_pairs(str(tmp_path / 'scenes'))
  data.write_tfrecords(pairs, str(tmp_path / 'records'), 'val', 1,
                       progress=False)
  pattern = str(tmp_path / 'records' / 'val-*')
  results = tasks.evaluate(model_dir, pattern, progress=False,
                           eval_scales=(0.75, 1.0), flip=True)
  assert (results['global_step'], results['num_images']) == (7, 2)
  assert results['num_pixels'] == 2 * (67 * 45 - 9)  # 9 ignored each.
  assert results['eval_scales'] == [0.75, 1.0] and results['flip']

  # predict (through the CLI): full-size masks whose confusion matrix gives
  # exactly the results of evaluate.
  out_dir = str(tmp_path / 'out')
  assert cli.main(['predict'] + [p for p, _ in pairs] + [
      '--model-dir', model_dir, '--output-dir', out_dir, '--label-dir',
      str(tmp_path / 'scenes' / 'labels'), '--eval-scales', '0.75,1.0',
      '--flip']) == 0
  confusion = metrics.ConfusionMatrix(NUM_CLASSES)
  for image_path, _ in pairs:
    stem = os.path.splitext(os.path.basename(image_path))[0]
    mask = data.read_label(os.path.join(out_dir, stem + '.png'))
    assert mask.shape == (67, 45)
    label = data.read_label(os.path.join(tmp_path, 'scenes', 'labels',
                                         stem + '.png'))
    confusion.update(label, mask)
    with Image.open(os.path.join(out_dir, stem + '_overlay.png')) as picture:
      picture = np.asarray(picture.convert('RGB'))
    left, top, right, bottom = pictures.panel_box((45, 67), 3, 0, True)
    np.testing.assert_array_equal(picture[top:bottom, left:right],
                                  np.asarray(Image.open(image_path)))
  assert confusion.results(config().names())['mean_iou'] == pytest.approx(
      results['mean_iou'], abs=1e-12)

  # TensorBoard scalars under the options' suffix, and the chart.
  scalars = read_scalars(os.path.join(model_dir, 'eval'))
  suffix = '_scales_0.75-1_flip'
  assert scalars['mean_iou' + suffix] == {7: pytest.approx(
      results['mean_iou'])}
  assert scalars['pixel_accuracy' + suffix][7] == pytest.approx(
      results['pixel_accuracy'])
  for name, value in results['per_class_iou'].items():
    if value is not None:
      assert scalars['iou%s/%s' % (suffix, name)][7] == pytest.approx(value)
  with Image.open(results['chart']) as chart:
    assert chart.size[1] > 20 * NUM_CLASSES


def test_train_evaluates_and_keeps_best_checkpoint(voc_records, tmp_path):
  records = voc_records(num_train=8, num_val=4, size=32)
  model_dir = str(tmp_path / 'model')
  val = str(records / 'val-*')
  messages = []
  tf.random.set_seed(0)
  tasks.train(model_dir, str(records / 'train-*'), config(), 5,
              batch_size=2, crop_size=(32, 32), learning_rate=3e-3,
              optimizer='adam', checkpoint_every=5, progress=False,
              log=messages.append, eval_pattern=val, eval_every=2)
  scalars = read_scalars(os.path.join(model_dir, 'eval'))
  assert sorted(scalars['mean_iou']) == [2, 4, 5]  # Every 2 and the last.
  assert sorted(scalars['pixel_accuracy']) == [2, 4, 5]
  assert 'iou/background' in scalars
  best = evaluation.read_best(model_dir)
  # Only a strictly better mean IoU replaces the best: ties keep the first.
  best_step = max(sorted(scalars['mean_iou']), key=scalars['mean_iou'].get)
  assert best['step'] == best_step
  assert best['mean_iou'] == pytest.approx(scalars['mean_iou'][best_step])
  assert tf.train.latest_checkpoint(os.path.join(model_dir, 'best')) == (
      best['checkpoint'])
  assert tf.train.latest_checkpoint(model_dir).endswith('model.ckpt-5')
  # The best checkpoint holds the weights that scored its mean IoU.
  again = tasks.evaluate(model_dir, val, checkpoint=best['checkpoint'],
                         progress=False, summary_dir='')
  assert again['global_step'] == best_step and again['chart'] is None
  assert again['mean_iou'] == pytest.approx(best['mean_iou'], abs=1e-9)
  assert len([m for m in messages if 'eval mean IoU' in m]) == 3
  with pytest.raises(ValueError, match='eval_every'):
    tasks.train(model_dir, str(records / 'train-*'), config(), 6,
                eval_pattern=val, eval_every=0, progress=False)


def test_outline_overlay_and_contours_by_hand():
  mask = np.zeros((11, 12), np.int64)
  mask[2:9, 3:10] = 2
  edge = pictures.contours(mask, thickness=1)
  expected = np.zeros_like(edge)
  expected[2:9, 3:10] = True
  expected[3:8, 4:9] = False
  np.testing.assert_array_equal(edge, expected)
  np.testing.assert_array_equal(pictures.contours(mask, 2).sum(),
                                7 * 7 - 3 * 3)
  image = np.full((11, 12, 3), 100, np.uint8)
  image[..., 0] = 200
  out = pictures.outline_overlay(image, mask, thickness=1, muted=0.0)
  color = pictures.class_colors()[2]
  # The halo: pixels one step (8-neighbourhood) from the contour, off it.
  halo = np.zeros_like(edge)
  for y, x in zip(*np.nonzero(edge)):
    halo[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = True
  halo &= ~edge
  np.testing.assert_array_equal(out[edge], np.tile(color, (edge.sum(), 1)))
  assert (out[halo] == 255).all()  # White around the dark green contour.
  inside = (mask == 2) & ~edge & ~halo
  assert inside.sum() == 9
  np.testing.assert_array_equal(
      out[inside], np.round(0.65 * image[inside] + 0.35 * color))
  outside = (mask == 0) & ~halo
  np.testing.assert_array_equal(out[outside], image[outside])
  muted = pictures.outline_overlay(image, mask, muted=0.4)
  grey = image[0, 0] @ np.array([0.299, 0.587, 0.114])
  np.testing.assert_array_equal(muted[0, 0],
                                np.round(0.6 * image[0, 0] + 0.4 * grey))


def test_prediction_picture_panels_and_legend():
  rng = np.random.RandomState(0)
  image, label = synthetic.render_scene(rng, 48)
  image, label = image[:, :40], label[:, :40]
  prediction = np.zeros_like(label)
  prediction[5:20, 5:25] = 3
  names = list(synthetic.CLASS_NAMES)
  with_label = pictures.prediction_picture(image, prediction, names,
                                           label=label, title='x.png')
  without = pictures.prediction_picture(image, prediction, names)
  assert with_label.size[0] == 6 + 3 * (40 + 6)
  assert without.size[0] == 6 + 2 * (40 + 6)
  pixels = np.asarray(with_label)
  for index, mask in [(1, label), (2, prediction)]:
    left, top, right, bottom = pictures.panel_box((40, 48), 3, index, True)
    np.testing.assert_array_equal(pixels[top:bottom, left:right],
                                  pictures.outline_overlay(image, mask))
  left, top, right, bottom = pictures.panel_box((40, 48), 3, 0, True)
  np.testing.assert_array_equal(pixels[top:bottom, left:right], image)
  # The legend, below the panels, shows the colour of every class present.
  legend = pixels[bottom + 6:].reshape(-1, 3)
  colors = pictures.class_colors()
  for class_id in set(np.unique(label)) | {3}:
    found = (legend == colors[class_id]).all(1).any()
    assert found == (class_id != 0), class_id
  with pytest.raises(ValueError, match='prediction'):
    pictures.prediction_picture(image, prediction[:, 1:], names)


def test_iou_chart_bars():
  per_class = {'background': 0.9, 'disc': 0.5, 'square': None, 'ring': 0.0}
  chart = np.asarray(pictures.iou_chart(per_class, title='t', mean_iou=0.47,
                                        bar_width=200))
  colors = pictures.class_colors()
  lengths = []
  for class_id in (0, 1):
    rows = (chart == colors[class_id]).all(-1)
    columns = np.nonzero(rows.any(0))[0]
    lengths.append(columns.max() - columns.min())
  # Bar interiors: 0.9 and 0.5 of 200 pixels, less the 1-pixel outline.
  assert abs(lengths[0] - 178) <= 2 and abs(lengths[1] - 98) <= 2
