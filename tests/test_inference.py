"""densenet.serve.rewrite: the optimized graph computes what the plain one does.

Every test compares against the plain graph of the same weights (random
convolutions and random batch-norm statistics, so a wrongly folded norm
shows), within 1e-4 absolute / 1e-5 relative, and checks that the rewrite
happened (no batch norm left after a convolution, transitions pool first).
"""

import collections

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from conftest import TINY_4BLOCK
from conftest import randomize_batch_norm
import densenet
from densenet import training
from densenet.serve import int8_rewrite
from densenet.serve import rewrite
from segmentation import model as seg_model
from segmentation import tasks

tf1 = tf.compat.v1
ATOL, RTOL = 1e-4, 1e-5
TINY = TINY_4BLOCK


def images(size=64, batch=2):
  return np.random.RandomState(1).uniform(
      -2, 2, (batch, size, size, 3)).astype(np.float32)


def session_of(build, shape=(None, None, None, 3)):
  """A Session on a new graph: `build()` -> tensors; variables randomized."""
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(0)
    inputs = tf1.placeholder(tf.float32, shape, name='images')
    with slim.arg_scope(densenet.densenet_arg_scope()):
      outputs = build(inputs)
    session = tf1.Session(graph=graph)
    session.run(tf1.global_variables_initializer())
    # One run for every variable: a run per variable costs ~0.1 s in a
    # DenseNet-121 graph (a new callable each).
    values = {}
    randomize_batch_norm(values.__setitem__, tf1.global_variables())
    session.run([v.initializer for v in values],
                {v.initializer.inputs[1]: x for v, x in values.items()})
  return session, inputs, outputs


def op_inputs(graph_def):
  nodes = {n.name: n for n in graph_def.node}
  def producer(node, i=0):
    return nodes[node.input[i].split(':')[0].lstrip('^')]
  return nodes, producer


def assert_rewritten(graph_def, num_unfoldable_norms):
  """Norms left only where a convolution has other readers; pools first.

  (After the reordering a transition ends with its convolution, which the
  next block both normalizes and concatenates: that norm cannot fold.)
  """
  nodes, producer = op_inputs(graph_def)
  # Inference batch norm is a multiply-add (densenet_utils.batch_norm).
  norms = [n for n in nodes.values()
           if n.op == 'Mul' or n.op.startswith('FusedBatchNorm')]
  assert len(norms) == num_unfoldable_norms
  readers = collections.Counter(
      i.split(':')[0] for n in nodes.values() for i in n.input)
  assert all(readers[producer(n).name] > 1 for n in norms
             if producer(n).op == 'Conv2D')
  for pool in (n for n in nodes.values() if n.op == 'AvgPool'):
    if list(pool.attr['strides'].list.i) == [1, 2, 2, 1]:
      assert producer(pool).op != 'Conv2D'
  readers_of_pools = [n for n in nodes.values() if n.op == 'Conv2D' and
                      producer(n).op == 'AvgPool']
  return readers_of_pools


def test_tiny_classifier_equal_and_rewritten():
  session, inputs, logits = session_of(lambda x: densenet.densenet_X(
      x, num_classes=7, is_training=False, **TINY)[0])
  expected = session.run(logits, {inputs: images()})
  new_session, (new_inputs, new_logits) = rewrite.optimize(
      session, (inputs, logits))
  assert new_inputs.name == inputs.name and new_logits.name == logits.name
  np.testing.assert_allclose(new_session.run(new_logits,
                                             {new_inputs: images()}),
                             expected, atol=ATOL, rtol=RTOL)
  graph_def = new_session.graph.as_graph_def()
  # Unfoldable: each unit's and transition's pre-activation norm, postnorm.
  pooling_convolutions = assert_rewritten(graph_def, 6 + 3 + 1)
  assert len(pooling_convolutions) == 3  # One per transition.
  counts = collections.Counter(n.op for n in graph_def.node)
  assert counts['BiasAdd'] == 6 + 1 + 1  # Bottlenecks, stem, logits.
  assert not counts['VariableV2'] and not counts['VarHandleOp']

  # for_int8: every remaining norm a 1x1 depthwise convolution (bias, ReLU),
  # every transition's pool a 2x2/2 depthwise one; the same logits (to
  # float32 rounding; measured bit-identical).
  int8_graph_def = int8_rewrite.for_int8(graph_def, [new_inputs.op.name,
                                                     new_logits.op.name])
  counts = collections.Counter(n.op for n in int8_graph_def.node)
  assert (counts['Mul'], counts['AvgPool']) == (0, 0)
  assert counts['DepthwiseConv2dNative'] == 6 + 3 + 1 + 3
  assert counts['BiasAdd'] == 6 + 1 + 1 + 6 + 3 + 1
  with tf.Graph().as_default() as graph:
    tf1.import_graph_def(int8_graph_def, name='')
    with tf1.Session(graph=graph) as int8_session:
      np.testing.assert_allclose(
          int8_session.run(new_logits.name, {new_inputs.name: images()}),
          new_session.run(new_logits, {new_inputs: images()}), rtol=0,
          atol=1e-6)


@pytest.mark.parametrize('output_stride,size', [(8, None), (16, None),
                                               (8, 72)])
def test_tiny_dense_features_at_output_stride(output_stride, size):
  # The stride-1 dilated transitions are not reordered; the norms still fold.
  # Each atrous convolution (SpaceToBatchND-Conv2D-BatchToSpaceND) becomes
  # one dilated Conv2D: SAME at a known size whose padding is SAME's, on a
  # Pad by paddings - crops at any size. 72 / 8 = 9 is odd: crops of 1.
  session, inputs, features = session_of(lambda x: densenet.densenet_X(
      x, is_training=False, global_pool=False, output_stride=output_stride,
      **TINY)[0], shape=(None, size, size, 3))
  sizes = [size] if size else [64, 72]
  expected = [session.run(features, {inputs: images(s)}) for s in sizes]
  assert expected[0].shape == (2, sizes[0] // output_stride,
                               sizes[0] // output_stride, features.shape[-1])
  before = collections.Counter(n.op for n in session.graph_def.node)
  new_session, (new_inputs, new_features) = rewrite.optimize(
      session, (inputs, features))
  for s, value in zip(sizes, expected):
    np.testing.assert_allclose(
        new_session.run(new_features, {new_inputs: images(s)}), value,
        atol=ATOL, rtol=RTOL)
  graph_def = new_session.graph.as_graph_def()
  assert_rewritten(graph_def, 6 + 3 + 1)
  after = collections.Counter(n.op for n in graph_def.node)
  dilated = [n for n in graph_def.node if n.op == 'Conv2D' and
             list(n.attr['dilations'].list.i) != [1, 1, 1, 1]]
  # 16: block 4's 3x3 (one unit); 8: also block 3's two. (At 8 the third
  # transition's 2x2 pool is dilated too, pooled in phases; it stays.)
  assert len(dilated) == (1 if output_stride == 16 else 3)
  assert before['SpaceToBatchND'] - after['SpaceToBatchND'] == len(dilated)
  assert after['SpaceToBatchND'] == (0 if output_stride == 16 else 2)
  # Any size: a Pad of the data, and one of the spatial paddings.
  assert after['Pad'] - before['Pad'] == (0 if size else 2 * len(dilated))


@pytest.mark.parametrize('name', ['densenet_121', 'densenet_169',
                                  'densenet_201', 'densenet_161'])
def test_named_models_equal(name):
  session, inputs, logits = session_of(lambda x: densenet.MODELS[name](
      x, num_classes=10, is_training=False)[0])
  batch = images(size=32)
  expected = session.run(logits, {inputs: batch})
  new_session, (new_inputs, new_logits) = rewrite.optimize(
      session, (inputs, logits))
  np.testing.assert_allclose(new_session.run(new_logits, {new_inputs: batch}),
                             expected, atol=ATOL, rtol=RTOL)
  units = sum(densenet.MODELS[name].num_units_per_block)
  assert_rewritten(new_session.graph.as_graph_def(), units + 3 + 1)


def test_optimize_function_segmentation_model(monkeypatch):
  # DeepLab v3+ at output stride 8: the norms after the ASPP's convolutions
  # (1x1, image pooling, projection, and the atrous branches, once each is
  # one dilated Conv2D) and the decoder's fold too.
  config = tasks.ModelConfig(num_classes=3, backbone=dict(TINY),
                             output_stride=8, head='deeplabv3plus', depth=8)
  model = training.SlimModel(seg_model.net_fn(config))
  model(tf.zeros([1, 64, 64, 3]), training=False)
  randomize_batch_norm(lambda v, x: v.assign(x), model.variables)
  function = tf.function(lambda x: model(x, training=False),
                         input_signature=[tf.TensorSpec([None, None, None, 3],
                                                        tf.float32)])
  batch = tf.constant(images())
  expected = function(batch).numpy()
  rewritten = []  # The GraphDef optimize_function runs.
  optimize_graph_def = rewrite.optimize_graph_def
  monkeypatch.setattr(rewrite, 'optimize_graph_def', lambda *args: (
      rewritten.append(optimize_graph_def(*args)) or rewritten[-1]))
  optimized = rewrite.optimize_function(function.get_concrete_function())
  np.testing.assert_allclose(optimized(batch).numpy(), expected, atol=ATOL,
                             rtol=RTOL)
  (graph_def,) = rewritten
  # Unfoldable: the backbone's pre-activation norms (6 units, 3
  # transitions, postnorm).
  pooling_convolutions = assert_rewritten(graph_def, 6 + 3 + 1)
  # Only the stride-2 transition pools first (2 and 3 are dilated).
  assert [n.name.split('/')[2] for n in pooling_convolutions] == [
      'transition1']
  nodes, producer = op_inputs(graph_def)

  def scopes(name):
    """The scopes below the model's own ('slim_model', or 'slim_model_1'
    in a process that built another SlimModel before)."""
    return name.split('/')[1:]

  assert not [n for n in nodes.values() if n.op == 'Mul' and
              scopes(n.name)[0] == 'aspp']
  assert sorted(scopes(n.name)[1] for n in nodes.values() if n.op == 'Conv2D'
                and scopes(n.name)[0] == 'aspp' and
                list(n.attr['dilations'].list.i) != [1, 1, 1, 1]) == [
                    'atrous_1', 'atrous_2', 'atrous_3']
  # Folded into a bias: the stem's and bottlenecks' norms (7), the ASPP's
  # 1x1, image pooling, projection and atrous ones (6) and the decoder's
  # (3); and the logits' own bias.
  folded = sorted(scopes(n.name)[0] for n in nodes.values()
                  if n.op == 'BiasAdd')
  assert folded == ['aspp'] * 6 + ['decoder'] * 3 + ['densenet_X'] * 7 + [
      'logits']
