"""Tests for `densenet export`: the SavedModel runs without this library.

Its bytes signature decodes, resizes and crops in TensorFlow; the reference
is the classifier's Pillow path (`preprocessing.load_image`), which agrees
to within 1 grey level (tests/test_preprocessing_images.py).
"""

import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import tensorflow as tf
import tf_slim as slim

from conftest import randomize_batch_norm
import densenet
from densenet import cli
from densenet import preprocessing
from densenet.serve import pretrained
from densenet.weights import assign
from densenet.weights import checkpoints

# Runs in a fresh interpreter: loads the SavedModel with TensorFlow only.
_LOADER = r'''
import sys
import numpy as np
import tensorflow as tf
export_dir, inputs_path, outputs_path = sys.argv[1:]
inputs = np.load(inputs_path)
model = tf.saved_model.load(export_dir)
from_images = model.signatures['serving_images'](
    images=tf.constant(inputs['images']))
from_bytes = model.signatures['serving_default'](
    image_bytes=tf.constant([bytes(inputs['png']), bytes(inputs['jpeg'])]))
assert 'tf_slim' not in sys.modules and 'densenet' not in sys.modules
def arrays(prefix, outputs):
  return {prefix + k: v.numpy().astype(bytes) if v.dtype == tf.string
          else v.numpy() for k, v in outputs.items()}
np.savez(outputs_path, **arrays('images_', from_images),
         **arrays('bytes_', from_bytes))
'''


def test_export_reloads_in_fresh_process(tmp_path):
  rng = np.random.RandomState(0)
  y, x = np.mgrid[0:240, 0:300]
  pixels = np.stack([x * 0.8, y, (x + y) * 0.4], -1).astype(np.uint8)
  encoded = {}
  for kind in ('png', 'jpeg'):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind.upper())
    encoded[kind] = np.frombuffer(buffer.getvalue(), np.uint8)
  float_images = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
  # What the bytes signature should feed the network: Pillow's decoding,
  # resize (shorter side 256: 320x256) and centre crop (left 48, top 16);
  # and the crop one pixel to the right, a geometry slightly wrong.
  resized = [preprocessing.load_image(encoded[kind].tobytes(), 256, None)
             for kind in ('png', 'jpeg')]
  decoded = np.stack([image[16:240, 48:272] for image in resized])
  for kind, image in zip(('png', 'jpeg'), decoded):
    np.testing.assert_array_equal(
        preprocessing.load_image(encoded[kind].tobytes()), image)
  shifted = np.stack([image[16:240, 49:273] for image in resized])

  metadata = {'model': 'densenet_121', 'num_classes': 1000,
              'batch_norm_epsilon': 1.1e-5, 'normalization': 'pudae',
              'source': 'test'}
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(0)
    images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3])
    with slim.arg_scope(densenet.densenet_arg_scope(batch_norm_epsilon=1.1e-5)):
      logits, _ = densenet.densenet_121(
          preprocessing.normalize(images, 'pudae'), num_classes=1000,
          is_training=False)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      values = {}  # Batch-norm statistics far from 0 and 1, in one run.
      randomize_batch_norm(values.__setitem__,
                           tf.compat.v1.global_variables())
      session.run([v.initializer for v in values],
                  {v.initializer.inputs[1]: x for v, x in values.items()})
      weights = assign.session_weights(session, 'densenet_121')
      expected_images, expected_bytes, off_by_one = [
          session.run(logits, {images: batch})
          for batch in (float_images, decoded, shifted)]
  checkpoint = checkpoints.save_checkpoint(weights, metadata,
                                       str(tmp_path / 'ckpt' / 'model.ckpt'))

  export_dir = str(tmp_path / 'export' / '1')
  assert cli.main(['export', export_dir, '--checkpoint', checkpoint,
                   '--top', '3']) == 0
  np.savez(str(tmp_path / 'inputs.npz'), images=float_images, **encoded)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)  # The library must not be needed.
  subprocess.run([sys.executable, '-c', _LOADER, export_dir,
                  str(tmp_path / 'inputs.npz'), str(tmp_path / 'out.npz')],
                 check=True, env=env, cwd=str(tmp_path))
  out = np.load(str(tmp_path / 'out.npz'))

  # The export folds the (random) norms into the convolutions, which rounds
  # differently: the tolerance of tests/test_inference.py.
  np.testing.assert_allclose(out['images_logits'], expected_images,
                             atol=1e-4, rtol=1e-5)
  # TensorFlow's resize and Pillow's differ by < 1 grey level; here that
  # moves the logits by 0.3e-3 (PNG) and 0.7e-3 (JPEG) of their scale, a
  # crop 1 px off by 2.1e-3 and 2.3e-3: the tolerance is 1.5e-3.
  tolerance = 1.5e-3 * np.abs(expected_bytes).max()
  print('bytes signature vs Pillow: max |logit difference| %s, tolerance '
        '%.3g, a crop 1 px off: %s' % (
            np.abs(out['bytes_logits'] - expected_bytes).max(1), tolerance,
            np.abs(off_by_one - expected_bytes).max(1)))
  np.testing.assert_allclose(out['bytes_logits'], expected_bytes, rtol=0,
                             atol=tolerance)
  assert (np.abs(off_by_one - expected_bytes).max(1) > tolerance).all()
  names = pretrained.imagenet_class_names()
  # (The bytes path's ranks: of its own logits, which are within the
  # tolerance of Pillow's.)
  for prefix, expected in (('images_', expected_images),
                           ('bytes_', out['bytes_logits'])):
    top = np.argsort(-expected, axis=1)[:, :3]
    np.testing.assert_array_equal(out[prefix + 'top_k_indices'], top)
    assert [[n.decode() for n in row] for row in out[prefix + 'top_k_names']
           ] == [[names[i] for i in row] for row in top]
    np.testing.assert_allclose(out[prefix + 'probabilities'].sum(1), 1.0,
                               rtol=1e-5)
