"""`segmentation export` (SavedModel, LiteRT) and predict / evaluate --litert.

A tiny DeepLab v3+ model directory (untrained, logits centred and scaled so
the class map varies across pixels) and two 67x45 scenes in TFRecords; the
references are TensorFlow's own predictions of the model directory.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from densenet import cli as densenet_cli
from densenet import preprocessing
from segmentation import cli
from segmentation import data
from segmentation import litert as segmentation_litert
from segmentation import metrics
from segmentation import multiscale
from segmentation import tasks
from test_segmentation_eval import config  # pylint: disable=g-bad-import-order
from test_segmentation_eval import odd_sized_pairs
from test_segmentation_eval import save_untrained

NUM_CLASSES = config().num_classes
# Runs in a fresh interpreter: TensorFlow only, never this library.
_LOADER = r'''
import sys
import numpy as np
import tensorflow as tf
export_dir, inputs_path, outputs_path = sys.argv[1:]
inputs = np.load(inputs_path)
model = tf.saved_model.load(export_dir)
from_bytes = model.signatures['serving_default'](
    image_bytes=tf.constant([bytes(inputs['file0']), bytes(inputs['file1'])]))
from_images = model.signatures['serving_images'](
    images=tf.constant(inputs['images']))
assert not {'densenet', 'segmentation', 'tf_slim'} & set(sys.modules)
np.savez(outputs_path, **{'%s_%s' % (prefix, k): v.numpy()
                          for prefix, out in (('bytes', from_bytes),
                                              ('images', from_images))
                          for k, v in out.items()})
'''


@pytest.fixture(scope='module')
def segmenter(tmp_path_factory):
  """A model directory, scenes and records, and TensorFlow's predictions."""
  directory = tmp_path_factory.mktemp('segmentation_export')
  model_dir = str(directory / 'model')
  save_untrained(model_dir, config(head='deeplabv3plus'), 7)
  pairs = odd_sized_pairs(str(directory / 'scenes'))
  data.write_tfrecords(pairs, str(directory / 'records'), 'val', 1,
                       progress=False)
  model, model_config, _, _ = tasks.load_model(model_dir)

  def reference(pixels):
    """TF's (classes, probabilities) of RGB images in [0, 255]."""
    def logits_fn(x):
      return model(x, training=False)

    normalized = model_config.spec().normalize(np.asarray(pixels, np.float32))
    probabilities = multiscale.averaged_probabilities(
        logits_fn, normalized, model_config.output_stride).numpy()
    return probabilities.argmax(-1), probabilities

  return {'directory': directory, 'model_dir': model_dir, 'pairs': pairs,
          'records': str(directory / 'records' / 'val-*'),
          'reference': reference}


def test_saved_model_serves_any_size_without_the_library(segmenter,
                                                         tmp_path):
  export_dir = str(tmp_path / 'export' / '1')
  assert cli.main(['export', '--model-dir', segmenter['model_dir'],
                   export_dir]) == 0
  scenes = [np.asarray(Image.open(path)) for path, _ in segmenter['pairs']]
  encoded = {}
  for i, scene in enumerate(scenes):  # A PNG and a JPEG.
    buffer = io.BytesIO()
    Image.fromarray(scene).save(buffer, ('PNG', 'JPEG')[i], quality=90)
    encoded['file%d' % i] = np.frombuffer(buffer.getvalue(), np.uint8)
    # The reference decodes as `segmentation predict` does (Pillow).
    scenes[i] = np.asarray(preprocessing.decode_image(buffer.getvalue()))
  images = np.random.RandomState(3).uniform(0, 255, (1, 37, 50, 3)).astype(
      np.float32)
  np.savez(str(tmp_path / 'inputs.npz'), images=images, **encoded)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)  # The library must not be needed.
  subprocess.run([sys.executable, '-c', _LOADER, export_dir,
                  str(tmp_path / 'inputs.npz'), str(tmp_path / 'out.npz')],
                 check=True, env=env, cwd=str(tmp_path), timeout=300)
  out = np.load(str(tmp_path / 'out.npz'))
  for prefix, pixels in (('bytes', np.stack(scenes)), ('images', images)):
    classes, probabilities = segmenter['reference'](pixels)
    assert out[prefix + '_classes'].dtype == np.int32
    assert out[prefix + '_classes'].shape == pixels.shape[:3]
    assert out[prefix + '_probabilities'].shape == pixels.shape[:3] + (
        NUM_CLASSES,)
    np.testing.assert_allclose(out[prefix + '_probabilities'], probabilities,
                               atol=1e-4)
    assert (out[prefix + '_classes'] == classes).mean() >= 0.999
    assert len(np.unique(classes)) >= 3  # A map worth comparing.


def test_litert_predict_and_evaluate(segmenter, tmp_path, capsys):
  output = str(tmp_path / 'seg.tflite')
  # 40x56: padded to 48x64 (output stride 16) and cropped in the model.
  assert cli.main(['export', '--model-dir', segmenter['model_dir'], output,
                   '--input-size', '40,56']) == 0
  model = segmentation_litert.load(output, threads=1)
  assert model.metadata['output_stride'] == 16
  assert model.metadata['head'] == 'deeplabv3plus'
  assert model.metadata['global_step'] == 7
  assert model.class_names == config().names()
  pixels = np.random.RandomState(4).uniform(0, 255, (2, 40, 56, 3))
  got = model.run(pixels)
  classes, probabilities = segmenter['reference'](pixels)
  np.testing.assert_allclose(got['probabilities'], probabilities, atol=1e-4)
  assert (got['classes'] == classes).mean() >= 0.999

  # predict: the 67x45 scenes resized to 40x56 (bilinear), their class maps
  # back to 67x45 (nearest).
  out_dir = str(tmp_path / 'masks')
  assert cli.main(['predict', '--litert', output, '--output-dir', out_dir] +
                  [path for path, _ in segmenter['pairs']]) == 0
  confusion = metrics.ConfusionMatrix(NUM_CLASSES)
  for image_path, label_path in segmenter['pairs']:
    stem = os.path.splitext(os.path.basename(image_path))[0]
    mask = data.read_label(os.path.join(out_dir, stem + '.png'))
    resized = segmentation_litert.resize_image(image_path, (40, 56))
    expected = Image.fromarray(segmenter['reference'](resized[None])[0][
        0].astype(np.uint8)).resize((45, 67), Image.NEAREST)
    assert mask.shape == (67, 45)
    assert (mask == np.asarray(expected)).mean() >= 0.999
    confusion.update(data.read_label(label_path), mask)
  capsys.readouterr()

  # evaluate: the confusion matrix of those masks.
  assert cli.main(['evaluate', '--litert', output, '--eval',
                   segmenter['records'], '--json']) == 0
  results = json.loads(capsys.readouterr().out)
  assert results['num_images'] == 2 and results['litert'] == output
  assert results['num_pixels'] == 2 * (67 * 45 - 9)
  assert results['mean_iou'] == pytest.approx(
      confusion.results()['mean_iou'], abs=1e-12)

  # int8, calibrated on the records; a classifier command refuses the file.
  int8 = str(tmp_path / 'seg_int8.tflite')
  assert cli.main(['export', '--model-dir', segmenter['model_dir'], int8,
                   '--input-size', '40,56', '--quantize', 'int8',
                   '--calibration', segmenter['records']]) == 0
  model = segmentation_litert.load(int8)
  assert model.metadata['quantization'] == 'int8'
  assert model.metadata['calibration_images'] == 2
  classes = model.run(pixels)['classes']
  assert classes.shape == (2, 40, 56) and classes.dtype == np.int32
  assert 0 <= classes.min() and classes.max() < NUM_CLASSES
  capsys.readouterr()
  for main, argv, message in (
      (densenet_cli.main, ['classify', segmenter['pairs'][0][0], '--litert',
                           output], 'is a segmentation model'),
      (cli.main, ['evaluate', '--litert', output, '--eval',
                  segmenter['records'], '--flip'], 'a .tflite runs one scale'),
      (cli.main, ['predict', segmenter['pairs'][0][0], '--litert', output,
                  '--model-dir', segmenter['model_dir'], '--output-dir',
                  str(tmp_path / 'never')], 'not both')):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
  assert not os.path.exists(str(tmp_path / 'never'))
