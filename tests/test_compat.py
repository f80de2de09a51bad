"""tf-slim 1.1.0 works on the installed TensorFlow after `import densenet`.

Each check runs in a fresh interpreter, so the patch is tested as a user meets
it (nothing imported before, either import order).
"""

import textwrap

import pytest

from conftest import run_python as run

SLIM_FEATURES = """
import numpy as np
import tensorflow as tf
import tf_slim as slim
from tf_slim.nets import resnet_v2
from densenet._env import compat
tf1 = tf.compat.v1

print('patched:', compat.PATCHED_NAMES)
with tf.Graph().as_default():
  x = tf.constant(np.random.RandomState(0).rand(2, 8, 8, 3), tf.float32)
  # slim.batch_norm on its default path (the tf-keras legacy layer).
  y = slim.batch_norm(x, is_training=True, scale=True)
  # ... and on its fused path with a list of update collections.
  z = slim.batch_norm(x, is_training=True, scope='fused',
                      updates_collections=[tf1.GraphKeys.UPDATE_OPS])
  loss = tf.reduce_mean(tf.square(y)) + tf.reduce_mean(tf.square(z))
  train_op = slim.learning.create_train_op(
      loss, tf1.train.GradientDescentOptimizer(0.1), clip_gradient_norm=1.0,
      summarize_gradients=True)
  images = tf.zeros([1, 64, 64, 3])
  with slim.arg_scope(resnet_v2.resnet_arg_scope()):
    logits, _ = resnet_v2.resnet_v2_50(images, 10, is_training=True)
  with tf1.Session() as sess:
    sess.run(tf1.global_variables_initializer())
    sess.run(train_op)
    assert sess.run(logits).shape == (1, 1, 1, 10)
print('OK')
"""


def run_python(code):
  return run('-c', textwrap.dedent(code)).stdout


@pytest.mark.parametrize('first_import', ['densenet', 'densenet_utils'])
def test_slim_features_work_after_import(first_import):
  out = run_python('import %s\n' % first_import + SLIM_FEATURES)
  assert out.rstrip().endswith('OK')
  # On TF >= 2.14 the patch had work to do; on older TF it adds nothing.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  major, minor = (int(p) for p in tf.__version__.split('.')[:2])
  if (major, minor) >= (2, 14):
    assert 'ops.Tensor' in out
    assert 'tf_keras.legacy_tf_layers -> tf_keras.src.legacy_tf_layers' in out


def test_apply_is_idempotent_and_changes_nothing_present():
  out = run_python("""
      import sys
      from densenet._env import compat
      compat.apply()
      before = list(compat.PATCHED_NAMES)
      finders = len(sys.meta_path)
      compat.apply()
      assert compat.PATCHED_NAMES == before, compat.PATCHED_NAMES
      assert len(sys.meta_path) == finders
      import tensorflow as tf
      from tensorflow.python.framework import ops
      assert ops.Tensor is tf.Tensor
      print('OK')
      """)
  assert out.strip() == 'OK'
