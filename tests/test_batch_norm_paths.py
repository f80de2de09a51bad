"""One epsilon rule for the three batch-norm paths (issue 21).

`densenet_utils.batch_norm` normalizes in three ways: fused training (batch
statistics), synchronized training over the global batch of several
replicas, and inference (a multiply-add with the moving statistics). With
torchvision's epsilon 1e-5 the fused kernel raised it to 1.001e-5 while the
synchronized path used 1e-5 as given: on features of small variance the two
gave different numbers. Now every path uses `effective_epsilon`.
"""

import json

from conftest import last_json_line
from conftest import run_python

# Two logical CPUs must be configured before TensorFlow starts: a child.
CHILD = r'''
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import densenet_utils
from densenet import training

EPSILON = 1e-5  # torchvision's.
rng = np.random.RandomState(0)
# Variance ~1e-6: epsilon's rounding shows at ~5e-4 of the output. (Mean
# near 0: the synchronized path sums squares shifted by the moving mean, 0
# here, and a large mean would cost float32 precision there.)
images = (1e-3 * rng.randn(4, 3, 3, 2)).astype(np.float32)


def net_fn(synchronized):
  def fn(x, is_training):
    return densenet_utils.batch_norm(x, is_training=is_training,
                                     epsilon=EPSILON, scale=True,
                                     synchronized=synchronized)
  return fn


plain = training.SlimModel(net_fn(False))
fused = plain(tf.constant(images), training=True).numpy()

mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with mirrored.scope():
  sync_model = training.SlimModel(net_fn(True))
halves = mirrored.experimental_distribute_values_from_function(
    lambda context: tf.constant(images[2 * context.replica_id_in_sync_group:
                                       2 * context.replica_id_in_sync_group
                                       + 2]))
outputs = mirrored.run(tf.function(lambda x: sync_model(x, training=True)),
                       args=(halves,))
synchronized = np.concatenate(
    [t.numpy() for t in mirrored.experimental_local_results(outputs)])

mean = images.mean((0, 1, 2))
variance = images.var((0, 1, 2))  # Biased: what training normalizes with.
for variable in plain.variables:
  if 'moving_mean' in variable.name:
    variable.assign(mean)
  if 'moving_variance' in variable.name:
    variable.assign(variance)
inference = plain(tf.constant(images), training=False).numpy()


def reference(epsilon):
  return (images - mean) / np.sqrt(variance + epsilon)


print(json.dumps({
    'replicas': mirrored.num_replicas_in_sync,
    'effective': densenet_utils.effective_epsilon(EPSILON),
    'paths': {name: float(np.abs(value - reference(
        densenet_utils.effective_epsilon(EPSILON))).max())
              for name, value in (('fused', fused),
                                  ('synchronized', synchronized),
                                  ('inference', inference))},
    'epsilon_rounding': float(np.abs(reference(EPSILON) - reference(
        densenet_utils.effective_epsilon(EPSILON))).max()),
    'scale': float(np.abs(reference(EPSILON)).max()),
}))
'''


def test_three_paths_one_epsilon():
  result = last_json_line(run_python('-c', CHILD).stdout)
  assert result['replicas'] == 2
  assert result['effective'] == 1.001e-5
  # The rounding of epsilon is visible on these features, so a path using
  # another epsilon would fail the bound below by ~10x.
  assert result['epsilon_rounding'] > 5e-4 * result['scale'] / 2
  for name, difference in result['paths'].items():
    assert difference < 2e-5 * result['scale'], (name, json.dumps(result))
