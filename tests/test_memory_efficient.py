"""`memory_efficient=True` is the same network as the plain one.

Same variables, same logits, same gradients, same batch-norm moving
statistics after a training step; only what is kept for the backward pass
changes. Tiny nets (k=4) on 32x32 inputs. The MirroredStrategy comparison
needs two logical CPU devices, configured before TensorFlow initializes: it
runs in a subprocess (this file run as a script).
"""

import collections
import contextlib
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from conftest import last_json_line
from conftest import run_python
import densenet
from densenet import densenet_arg_scope
from densenet.layers import recompute
import densenet_utils

tf1 = tf.compat.v1


def tiny(images, memory_efficient, output_stride=None, is_training=True,
         reuse=None):
  """ImageNet root, dense blocks of 2 and 3 units, growth rate 4."""
  return densenet.densenet_X(
      images, num_units_per_block=[2, 3], growth_rate=4,
      num_initial_filters=8, num_classes=5,
      is_training=is_training, output_stride=output_stride, scope='tiny',
      reuse=reuse, memory_efficient=memory_efficient)


def random_value(name, shape):
  """Deterministic per-variable values; BN statistics far from 0/1."""
  rng = np.random.RandomState(sum(map(ord, name)))
  if name.endswith(('moving_variance', 'gamma')):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  return rng.normal(0.0, 0.2, shape).astype(np.float32)


def train_step(memory_efficient, output_stride=None, arg_scope_value=False):
  """Builds the tiny net, sets known weights, runs one SGD step.

  Returns logits, gradients and variables (before and after the step) as
  numpy dicts keyed by variable name, and the number of update ops.
  """
  with tf.Graph().as_default():
    rng = np.random.RandomState(0)
    images = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    labels = tf.constant([1, 3])
    with slim.arg_scope(densenet_arg_scope(memory_efficient=arg_scope_value)):
      logits, end_points = tiny(images, memory_efficient, output_stride)
    loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
    trainable = tf1.trainable_variables()
    gradients = tf.gradients(loss, trainable)
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
      train_op = tf1.train.GradientDescentOptimizer(0.5).apply_gradients(
          zip(gradients, trainable))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for v in tf1.global_variables():
        v.load(random_value(v.op.name, v.shape.as_list()), sess)
      logits_value, end_point_values, gradient_values = sess.run(
          [logits, end_points, gradients])
      sess.run(train_op)
      after = {v.op.name: sess.run(v) for v in tf1.global_variables()}
  return dict(
      logits=logits_value,
      end_points=end_point_values,
      gradients={v.op.name: g for v, g in zip(trainable, gradient_values)},
      after=after,
      num_update_ops=len(update_ops))


@pytest.mark.parametrize('output_stride', [None, 8])
def test_same_numbers_as_plain(output_stride):
  plain = train_step(False, output_stride)
  efficient = train_step(True, output_stride)
  # Same variables (names and shapes), same end points (names and shapes).
  assert sorted(efficient['after']) == sorted(plain['after'])
  for name, value in plain['after'].items():
    assert efficient['after'][name].shape == value.shape, name
  assert sorted(efficient['end_points']) == sorted(plain['end_points'])
  for name, value in plain['end_points'].items():
    np.testing.assert_allclose(efficient['end_points'][name], value,
                               atol=1e-5, err_msg=name)
  np.testing.assert_allclose(efficient['logits'], plain['logits'], atol=1e-5)
  # Every trainable variable gets the same, non-zero gradient.
  assert sorted(efficient['gradients']) == sorted(plain['gradients'])
  # root conv + BN (3), 5 units x (2 BN x 2 + 2 convs), transition BN + conv
  # (3), postnorm (2), logits weights and biases (2).
  assert len(plain['gradients']) == 3 + 5 * 6 + 3 + 2 + 2
  for name, gradient in plain['gradients'].items():
    assert np.abs(gradient).max() > 0, name
    np.testing.assert_allclose(efficient['gradients'][name], gradient,
                               atol=1e-5, err_msg=name)
  # One moving-average update per batch norm, none duplicated by the
  # recomputation: 2 statistics x (root + 5 units x 2 + transition + postnorm).
  assert plain['num_update_ops'] == efficient['num_update_ops'] == 2 * 13
  for name, value in plain['after'].items():
    np.testing.assert_allclose(efficient['after'][name], value, atol=1e-5,
                               err_msg=name)
  # The moving statistics moved (decay 0.99: by 1 % towards the batch's).
  moved = [name for name in plain['after'] if 'moving_' in name and
           not np.allclose(plain['after'][name],
                           random_value(name, plain['after'][name].shape))]
  assert len(moved) == 2 * 13


def _dropout_masks(graph):
  """The random draws of the graph's dropout layers."""
  return [op.outputs[0] for op in graph.get_operations()
          if op.type.startswith('Random') and '/Dropout' in op.name]


def test_dropout_units_same_gradients_as_plain():
  # With dropout the recomputed part ends before the first dropout (the
  # bottleneck maps are kept): in training mode the forward pass draws every
  # mask and the backward pass draws none. Seeded alike, both graphs draw
  # the same masks, so the gradients must be plain's.
  results = []
  for memory_efficient in (False, True):
    with tf.Graph().as_default() as graph:
      tf1.set_random_seed(0)
      images = tf.constant(np.random.RandomState(3).uniform(
          -1, 1, (2, 32, 32, 3)), tf.float32)
      with slim.arg_scope(densenet_arg_scope()), \
          slim.arg_scope([slim.dropout], seed=1):
        logits, _ = densenet.densenet_X(
            images, num_units_per_block=[2, 2], growth_rate=4,
            num_initial_filters=8, num_classes=5, dropout_rate=0.2,
            is_training=True, scope='tiny', memory_efficient=memory_efficient)
      masks = _dropout_masks(graph)
      # After each convolution of the 4 units and of the transition.
      assert len(masks) == 4 * 2 + 1
      trainable = tf1.trainable_variables()
      gradients = tf.gradients(tf.reduce_sum(tf.square(logits)), trainable)
      assert len(_dropout_masks(graph)) == len(masks)  # None drawn anew.
      with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        for v in tf1.global_variables():
          v.load(random_value(v.op.name, v.shape.as_list()), sess)
        results.append(sess.run([logits, masks, gradients]))
  ((plain_logits, plain_masks, plain_grads),
   (me_logits, me_masks, me_grads)) = results
  for plain, efficient in zip(plain_masks, me_masks):
    np.testing.assert_array_equal(efficient, plain)
    assert 0.1 < (plain < 0.2).mean() < 0.3  # About 20 % dropped.
  np.testing.assert_allclose(me_logits, plain_logits, atol=1e-5)
  assert len(plain_grads) == 3 + 4 * 6 + 3 + 2 + 2
  for plain, efficient in zip(plain_grads, me_grads):
    assert np.abs(plain).max() > 0
    np.testing.assert_allclose(efficient, plain, atol=1e-5)


def test_arg_scope_sets_the_default():
  # memory_efficient=None leaves it to densenet_arg_scope(memory_efficient=).
  with tf.Graph().as_default():
    images = tf.zeros([1, 32, 32, 3])
    with slim.arg_scope(densenet_arg_scope(memory_efficient=True)):
      tiny(images, memory_efficient=None)
    recomputed = [op for op in tf1.get_default_graph().get_operations()
                  if op.type == 'IdentityN']
    # One recomputation per unit (5) and transition (1).
    assert len(recomputed) == 6
  with tf.Graph().as_default():
    images = tf.zeros([1, 32, 32, 3])
    with slim.arg_scope(densenet_arg_scope(memory_efficient=True)):
      tiny(images, memory_efficient=False)
    assert not [op for op in tf1.get_default_graph().get_operations()
                if op.type == 'IdentityN']


def test_units_keep_only_their_new_maps():
  # The block state is the list of feature maps: unit i's recomputed part
  # takes the block input and the i - 1 earlier k-channel maps, not their
  # concatenation, and hands on its k = 4 new maps and those maps.
  with tf.Graph().as_default():
    images = tf.zeros([1, 32, 32, 3])
    with slim.arg_scope(densenet_arg_scope()):
      tiny(images, memory_efficient=True)
    recomputed = [op for op in tf1.get_default_graph().get_operations()
                  if op.type == 'IdentityN']
    # IdentityN inputs: the output, the input maps, the variables' values.
    inputs = [[t.shape[-1] for t in op.inputs[1:]
               if t.op.type != 'ReadVariableOp'] for op in recomputed]
    # Block 1 input: 8 root filters; the transition takes block 1's maps;
    # block 2 input: the transition's (8 + 2 * 4) / 2 = 8.
    assert inputs == [[8], [8, 4], [8, 4, 4], [8], [8, 4], [8, 4, 4]]
    assert [op.outputs[0].shape[-1] for op in recomputed] == [4, 4, 8, 4, 4, 4]


def _backward_reads(memory_efficient):
  """Types of the tensors of units that the backward pass reads."""
  with tf.Graph().as_default() as graph:
    images = tf.zeros([2, 32, 32, 3])
    with slim.arg_scope(densenet_arg_scope()):
      logits, _ = tiny(images, memory_efficient)
    forward = set(graph.get_operations())
    tf.gradients(tf.reduce_sum(logits), tf1.trainable_variables())
    return {t.op.type for op in graph.get_operations() if op not in forward
            for t in op.inputs
            if t.op in forward and '/unit_' in t.op.name}


def test_backward_pass_reads_no_recomputed_tensor():
  # Inside units and transitions the backward pass reads only the handed-on
  # maps (IdentityN outputs) and the variables: the concatenations, BN-ReLUs
  # and convolutions are not kept, they are recomputed.
  assert _backward_reads(True) <= {'IdentityN', 'ReadVariableOp',
                                   'VarHandleOp'}
  assert {'ConcatV2', 'Relu', 'Conv2D'} <= _backward_reads(False)


def test_recomputation_inherits_no_update_dependencies(monkeypatch):
  # Built under tf.control_dependencies(UPDATE_OPS), a recomputed unit and
  # its gradient depend only on the unit's output gradient: no edge to an
  # update op (such edges would grow with units^2 x depth).
  rebuilt = []  # The ops built inside `depending_only_on`.
  depending_only_on = recompute.depending_only_on

  @contextlib.contextmanager
  def recorded(tensor):
    before = len(tensor.graph.get_operations())
    with depending_only_on(tensor):
      yield
    rebuilt.extend(tensor.graph.get_operations()[before:])

  monkeypatch.setattr(recompute, 'depending_only_on', recorded)
  with tf.Graph().as_default() as graph:
    images = tf.zeros([2, 32, 32, 3])
    with slim.arg_scope(densenet_arg_scope()):
      logits, _ = tiny(images, memory_efficient=True)
    forward = set(graph.get_operations())
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
      tf1.train.GradientDescentOptimizer(0.1).minimize(
          tf.reduce_sum(logits))
  updates = {op if isinstance(op, tf.Operation) else op.op
             for op in update_ops}

  def edges(ops):
    return sum(control in updates for op in ops
               for control in op.control_inputs)

  # 5 units (2 batch norms each) and the transition (1) were rebuilt and
  # differentiated.
  types = collections.Counter(op.type for op in rebuilt)
  assert types['FusedBatchNormV3'] == types['FusedBatchNormGradV3'] == 11
  assert types['Conv2DBackpropFilter'] == 11
  assert edges(rebuilt) == 0
  # The enclosing block was in force: the other ops of the backward pass
  # (e.g. the logits' gradients) have their edges.
  others = set(graph.get_operations()) - forward - set(rebuilt)
  assert edges(op for op in others if '/logits/' in op.name) > 0


def test_dense_unit_list_and_tensor_inputs_agree():
  with tf.Graph().as_default():
    rng = np.random.RandomState(1)
    maps = [tf.constant(rng.normal(size=(1, 6, 6, c)), tf.float32)
            for c in (5, 3)]
    with slim.arg_scope(densenet_arg_scope()), \
        slim.arg_scope([densenet_utils.batch_norm], is_training=False):
      from_list = densenet_utils.dense_unit(maps, growth_rate=2,
                                            memory_efficient=True, scope='u')
      with tf1.variable_scope('', reuse=True):
        from_tensor = densenet_utils.dense_unit(tf.concat(maps, 3),
                                                growth_rate=2, scope='u')
    assert isinstance(from_list, list) and len(from_list) == 3
    assert from_list[2].shape.as_list() == [1, 6, 6, 2]
    assert from_tensor.shape.as_list() == [1, 6, 6, 10]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      a, b = sess.run([tf.concat(from_list, 3), from_tensor])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bfloat16_inputs_keep_float32_variables():
  # bfloat16 inputs: the network computes in bfloat16 from the same float32
  # variables (cast on read), so one checkpoint serves both; the logits agree
  # with float32 to bfloat16 precision (8 significant bits).
  with tf.Graph().as_default():
    images = tf.constant(np.random.RandomState(2).uniform(
        -1, 1, (2, 32, 32, 3)), tf.float32)
    with slim.arg_scope(densenet_arg_scope()):
      logits, _ = tiny(images, False, is_training=False)
      names = sorted(v.op.name for v in tf1.global_variables())
      low, end_points = tiny(tf.cast(images, tf.bfloat16), False,
                             is_training=False, reuse=True)
    assert sorted(v.op.name for v in tf1.global_variables()) == names
    assert all(v.dtype.base_dtype == tf.float32
               for v in tf1.global_variables())
    assert low.dtype == tf.bfloat16
    assert end_points['tiny/dense_block2'].dtype == tf.bfloat16
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for v in tf1.global_variables():
        v.load(random_value(v.op.name, v.shape.as_list()), sess)
      high_value, low_value = sess.run([logits, tf.cast(low, tf.float32)])
    scale = np.abs(high_value).max()
    assert scale > 0.1
    np.testing.assert_allclose(low_value, high_value, atol=0.05 * scale)


def test_memory_efficient_in_tf2_trainer_model():
  """Under `densenet.training.SlimModel` in a tf.function (the TF2 path of
  the segmentation and classification trainers), the recomputed backward
  pass gives the plain network's loss and gradients."""
  from densenet import training  # pylint: disable=g-import-not-at-top
  images = tf.constant(np.random.RandomState(0).rand(2, 32, 32, 3),
                       tf.float32)
  results = []
  for memory_efficient in (False, True):

    def net_fn(inputs, is_training, memory_efficient=memory_efficient):
      with slim.arg_scope(densenet_arg_scope()):
        logits, _ = densenet.densenet_X(
            inputs, num_units_per_block=[2, 2], growth_rate=4,
            num_initial_filters=8,
            num_classes=3, is_training=is_training,
            memory_efficient=memory_efficient, scope='tiny')
      return logits

    model = training.SlimModel(net_fn)
    model(images)
    for variable in model.trainable_variables:
      variable.assign(random_value(variable.name.split(':')[0],
                                   tuple(variable.shape)))

    @tf.function(autograph=False)
    def step(inputs, model=model):
      with tf.GradientTape() as tape:
        logits = model(inputs, training=True)
        loss = tf.reduce_sum(tf.square(logits))
      return loss, tape.gradient(loss, model.trainable_variables)

    loss, gradients = step(images)
    batch_norms = sum(op.type == 'FusedBatchNormV3' for op in
                      step.get_concrete_function(images).graph.get_operations())
    results.append((loss.numpy(), [g.numpy() for g in gradients],
                    [v.name for v in model.trainable_variables], batch_norms))
  ((plain_loss, plain_grads, plain_names, plain_batch_norms),
   (me_loss, me_grads, me_names, me_batch_norms)) = results
  assert plain_names == me_names and len(plain_names) == 3 + 4 * 6 + 3 + 2 + 2
  # The tape ran the recomputing gradient: the batch norms of the 4 units
  # (2 each) and of the transition are built again in the backward pass.
  assert me_batch_norms == plain_batch_norms + 4 * 2 + 1
  np.testing.assert_allclose(me_loss, plain_loss, rtol=1e-6)
  for plain, efficient in zip(plain_grads, me_grads):
    assert np.abs(plain).max() > 0
    np.testing.assert_allclose(efficient, plain, atol=1e-5)


def test_mirrored_strategy_same_training_as_plain(tmp_path):
  results = last_json_line(run_python(os.path.abspath(__file__),
                                     tmp_path).stdout)
  assert results['num_replicas'] == 2
  # With and without synchronized batch norm (statistics of the global
  # batch, all-reduced between the replicas, and their gradient).
  for sync in ('', 'sync_'):
    assert len(results[sync + 'plain_losses']) == 3
    np.testing.assert_allclose(results[sync + 'memory_efficient_losses'],
                               results[sync + 'plain_losses'], atol=1e-5)
    # Every variable (weights, batch-norm moving statistics) moved, and by
    # the same amount in both modes.
    # Root conv + BN (5), 3 units x 10, transition (5), postnorm (4), logits.
    assert results[sync + 'num_variables'] == 5 + 3 * 10 + 5 + 4 + 2
    assert results[sync + 'min_change'] > 0
    assert results[sync + 'max_difference'] < 1e-5
  # Synchronized batch norm trains differently (2 images per replica).
  assert np.abs(np.subtract(results['sync_plain_losses'][1:],
                            results['plain_losses'][1:])).max() > 1e-4


def _train_mirrored(directory):
  """Trains plain and memory-efficient 3 steps under MirroredStrategy, with
  and without synchronized batch norm."""
  import tf_keras  # pylint: disable=g-import-not-at-top

  from densenet import training  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  rng = np.random.RandomState(0)
  images = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
  labels = rng.randint(0, 3, 4).astype(np.int32)
  data = tf.data.Dataset.from_tensors((images, labels)).repeat()
  strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  results = {'num_replicas': strategy.num_replicas_in_sync}
  for sync in (False, True):
    weights = {}
    for memory_efficient in (False, True):

      def net_fn(inputs, is_training, memory_efficient=memory_efficient):
        with slim.arg_scope(densenet_arg_scope()):
          logits, _ = densenet.densenet_X(
              inputs, num_units_per_block=[1, 2], growth_rate=4,
              num_initial_filters=8, num_classes=3, is_training=is_training,
              scope='tiny', memory_efficient=memory_efficient)
        return logits

      def loss_fn(labels, logits):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)

      name = ('sync_' if sync else '') + (
          'memory_efficient' if memory_efficient else 'plain')
      trainer = training.Trainer(
          net_fn, loss_fn, os.path.join(directory, name), 4,
          strategy=strategy, checkpoint_every=100, progress=False,
          sync_batch_norm=sync,
          optimizer_fn=lambda: tf_keras.optimizers.SGD(0.1, momentum=0.9))
      trainer.build(tf.constant(images[:1]))
      variables = trainer.model.variables_by_name()
      for key, variable in variables.items():
        variable.assign(random_value(key, tuple(variable.shape)))
      results[name + '_losses'] = [
          float(x) for x in trainer.train(data, num_steps=3).losses]
      weights[memory_efficient] = {k: v.numpy() for k, v in variables.items()}
    plain, efficient = weights[False], weights[True]
    assert sorted(plain) == sorted(efficient)
    prefix = 'sync_' if sync else ''
    results[prefix + 'num_variables'] = len(plain)
    results[prefix + 'min_change'] = float(min(
        np.abs(value - random_value(key, value.shape)).max()
        for key, value in plain.items()))
    results[prefix + 'max_difference'] = float(max(
        np.abs(plain[key] - efficient[key]).max() for key in plain))
  print(json.dumps(results))


if __name__ == '__main__':
  _train_mirrored(sys.argv[1])
