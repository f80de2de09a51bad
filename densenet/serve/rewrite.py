"""Inference graphs: variables frozen, batch norm folded, transitions reordered.

    from densenet.serve import rewrite
    session, (images, logits) = rewrite.optimize(session, (images, logits))
    session.run(logits, {images: batch})          # same logits, faster

    predict = rewrite.optimize_function(tf_function.get_concrete_function())

`optimize` takes a Session whose graph is built in inference mode
(`is_training=False`) and whose variables hold their values, and returns a
new Session on a rewritten copy of the graph, with the given tensors (any
nest: placeholders, outputs) looked up in it under the same names. The
rewrite (`optimize_graph_def`) keeps the network's function and changes only
how it is computed:

- variables become constants (`convert_variables_to_constants`) and every
  value computed from them alone is evaluated once (`fold_constants`);
- a batch norm in inference mode (`x * scale + shift`, as
  `densenet_utils.batch_norm` builds it) right after a convolution (each
  dense unit's 1x1 bottleneck, the ImageNet stem's 7x7 (its padding comes before
  the convolution, so it does not matter), every `slim.conv2d` of the
  segmentation heads) is folded into that convolution: weights scaled per
  output channel, the shift a bias, so Grappler fuses Conv2D+BiasAdd+Relu.
  The pre-activation batch norms (before a ReLU
  and a convolution) cannot be folded and stay multiply-adds;
- an atrous convolution (SpaceToBatchND, Conv2D, BatchToSpaceND: how TF
  builds one) becomes one Conv2D with dilations (`atrous_to_dilated`);
- a transition's 1x1 convolution followed by its 2x2/2 average pool is
  computed pool-first (both are linear and the convolution is pointwise, so
  the result is the same), with 4x fewer convolution FLOPs.

Logits equal the plain graph's to float32 rounding (tests: within 1e-4).

`densenet.serve.int8_rewrite.for_int8` rewrites such a graph further for
int8 LiteRT models.
"""

import numpy as np
import tensorflow as tf

from densenet._env import compat


def optimize(session, tensors):
  """A faster Session computing the same `tensors` as `session`.

  Args:
    session: A `tf.compat.v1.Session` whose graph computes `tensors` in
      inference mode, its variables initialized or restored.
    tensors: A nest (tuple, list, dict) of `tf.Tensor`s of `session.graph`:
      the inputs that will be fed and the outputs that will be fetched.

  Returns:
    `(new_session, new_tensors)`: a Session on the optimized graph and the
    tensors of the same names in it, in the structure of `tensors`. The old
    session is closed (its variables' memory freed).
  """
  flat = tf.nest.flatten(tensors)
  keep = sorted({t.op.name for t in flat})
  frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
      session, session.graph.as_graph_def(), keep)
  graph_def = optimize_graph_def(frozen, keep)
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.import_graph_def(graph_def, name='')
  new_session = tf.compat.v1.Session(graph=graph, config=session._config)  # pylint: disable=protected-access
  session.close()
  new_flat = [graph.get_tensor_by_name(t.name) for t in flat]
  return new_session, tf.nest.pack_sequence_as(tensors, new_flat)


def optimize_function(concrete_function):
  """A faster callable computing what a `tf.function`'s concrete function does.

  Args:
    concrete_function: `fn.get_concrete_function(...)` of a `tf.function`
      running a network in inference mode; its variables hold their values.

  Returns:
    A function taking the same Tensor arguments and returning the outputs
    (a list of Tensors if the concrete function has several, else one).
  """
  frozen = compat.convert_variables_to_constants(concrete_function)
  inputs = [t.name for t in frozen.inputs]
  outputs = [t.name for t in frozen.outputs]
  graph_def = optimize_graph_def(frozen.graph.as_graph_def(),
                                 [_node_name(n) for n in inputs + outputs])

  def import_graph():
    tf.compat.v1.import_graph_def(graph_def, name='')

  wrapped = tf.compat.v1.wrap_function(import_graph, [])
  pruned = wrapped.prune(
      [wrapped.graph.get_tensor_by_name(n) for n in inputs],
      [wrapped.graph.get_tensor_by_name(n) for n in outputs])
  if len(outputs) == 1:
    return lambda *args: pruned(*args)[0]
  return pruned


def frozen_graph_def(concrete_function):
  """The GraphDef of a concrete function with its variables as constants
  (its nodes keep their names: its arguments' Placeholders, `tf.identity(...,
  name=...)` outputs); for `optimize_graph_def`."""
  return compat.convert_variables_to_constants(
      concrete_function).graph.as_graph_def()


def optimize_graph_def(graph_def, keep):
  """Folds constants and batch norms into convolutions; reorders transitions.

  Args:
    graph_def: A frozen `GraphDef` (weights are `Const` nodes, possibly
      behind `Identity` nodes) in inference mode.
    keep: Names of the nodes that must survive with their names (inputs and
      outputs); everything they do not need is dropped.

  Returns:
    A new `GraphDef` with the same outputs for the same inputs.
  """
  return GraphRewriter.apply(graph_def, keep, (
      GraphRewriter.fold_constants, GraphRewriter.atrous_to_dilated,
      GraphRewriter.pool_before_pointwise_convolution,
      GraphRewriter.fold_multiply_adds))


# Ops whose value is a constant when all their inputs are (what inference
# batch norm computes from its variables; see densenet_utils.batch_norm).
_CONSTANT_FOLDABLE = frozenset([
    'Identity', 'Mul', 'AddV2', 'Add', 'Sub', 'Rsqrt', 'Sqrt', 'Cast',
    'RealDiv', 'Maximum', 'Neg', 'Reshape'])


def _node_name(tensor_name):
  return tensor_name.lstrip('^').split(':')[0]


def _output_index(tensor_name):
  parts = tensor_name.split(':')
  return int(parts[1]) if len(parts) > 1 else 0


class GraphRewriter(object):
  """In-place rewrites of a frozen GraphDef (also `int8_rewrite`'s base)."""

  def __init__(self, graph_def, keep):
    self.graph_def = graph_def
    self.keep = keep
    self.nodes = {node.name: node for node in graph_def.node}

  @classmethod
  def apply(cls, graph_def, keep, steps):
    """A copy of `graph_def` rewritten by `steps` (methods of `cls`, in
    order), pruned to what the nodes named in `keep` need."""
    graph_def_copy = tf.compat.v1.GraphDef()
    graph_def_copy.CopyFrom(graph_def)
    rewriter = cls(graph_def_copy, set(keep))
    for step in steps:
      rewriter.index_consumers()
      step(rewriter)
    return tf.compat.v1.graph_util.extract_sub_graph(rewriter.graph_def,
                                                     sorted(keep))

  def _computed_from_constants(self, name, memo):
    if name not in memo:
      node = self.nodes[name]
      memo[name] = node.op == 'Const' or (
          node.op in _CONSTANT_FOLDABLE and bool(node.input) and
          all(self._computed_from_constants(_node_name(i), memo)
              for i in node.input))
    return memo[name]

  def fold_constants(self):
    """Replaces every value computed from constants only by a `Const`."""
    memo = {}
    for name in self.nodes:
      self._computed_from_constants(name, memo)
    targets = [name for name, constant in memo.items()
               if constant and self.nodes[name].op != 'Const']
    if not targets:
      return
    graph = tf.Graph()
    with graph.as_default():
      tf.compat.v1.import_graph_def(self.graph_def, name='')
    with tf.compat.v1.Session(graph=graph) as session:
      values = session.run([name + ':0' for name in targets])
    for name, value in zip(targets, values):
      node = self.nodes[name]
      del node.input[:]
      node.op = 'Const'
      node.ClearField('attr')
      node.attr['dtype'].type = tf.as_dtype(value.dtype).as_datatype_enum
      node.attr['value'].tensor.CopyFrom(tf.make_tensor_proto(value))

  def index_consumers(self):
    """Indexes who reads what; call again after rewiring inputs."""
    self._consumers = {}
    for node in self.graph_def.node:
      for i, tensor in enumerate(node.input):
        if not tensor.startswith('^'):
          self._consumers.setdefault(_node_name(tensor), []).append(
              (node, i, _output_index(tensor)))

  def consumers(self, name):
    """[(consumer node, input position, output index)] of node `name`."""
    return self._consumers.get(name, [])

  def constant(self, tensor_name):
    """The value of a `Const` (through `Identity` nodes), or None."""
    node = self.nodes.get(_node_name(tensor_name))
    while node is not None and node.op == 'Identity':
      node = self.nodes.get(_node_name(node.input[0]))
    if node is None or node.op != 'Const':
      return None
    return tf.make_ndarray(node.attr['value'].tensor)

  def add_constant(self, name, value, dtype=np.float32):
    node = self.graph_def.node.add()
    node.name = name
    node.op = 'Const'
    node.attr['dtype'].type = tf.as_dtype(dtype).as_datatype_enum
    node.attr['value'].tensor.CopyFrom(
        tf.make_tensor_proto(np.asarray(value, dtype)))
    self.nodes[name] = node
    return name

  def _only_consumer(self, producer, consumer):
    """Whether `consumer` is the only reader of `producer` (output 0)."""
    consumers = self.consumers(producer.name)
    return (producer.name not in self.keep and len(consumers) == 1 and
            consumers[0][0] is consumer and consumers[0][2] == 0)

  def _pointwise_convolution(self, node):
    """Whether `node` is an NHWC stride-1 1x1 Conv2D without dilation."""
    if node.op != 'Conv2D' or node.attr['data_format'].s not in (b'', b'NHWC'):
      return False
    weights = self.constant(node.input[1])
    dilations = list(node.attr['dilations'].list.i) or [1, 1, 1, 1]
    return (weights is not None and weights.shape[:2] == (1, 1) and
            list(node.attr['strides'].list.i) == [1, 1, 1, 1] and
            dilations == [1, 1, 1, 1])

  def _transition_pool(self, node):
    """Whether `node` is a rewritable NHWC 2x2/2 VALID average pool."""
    return (node.op == 'AvgPool' and node.name not in self.keep and
            list(node.attr['ksize'].list.i) == [1, 2, 2, 1] and
            list(node.attr['strides'].list.i) == [1, 2, 2, 1] and
            node.attr['padding'].s == b'VALID' and
            node.attr['data_format'].s in (b'', b'NHWC'))

  def pool_before_pointwise_convolution(self):
    """Conv1x1 -> AvgPool 2x2/2 VALID becomes AvgPool -> Conv1x1."""
    for pool in list(self.graph_def.node):
      if not self._transition_pool(pool):
        continue
      conv = self.nodes.get(_node_name(pool.input[0]))
      if (conv is None or _output_index(pool.input[0]) != 0 or
          not self._pointwise_convolution(conv) or
          not self._only_consumer(conv, pool)):
        continue
      readers = self.consumers(pool.name)
      pool.input[0] = conv.input[0]
      conv.input[0] = pool.name
      for reader, position, _ in readers:
        reader.input[position] = conv.name

  def atrous_to_dilated(self):
    """SpaceToBatchND -> Conv2D -> BatchToSpaceND becomes one dilated Conv2D.

    TensorFlow builds an atrous convolution (rate r) as a VALID convolution
    of the input padded by `paddings`, split into r x r phases, cropped by
    `crops` (the form it can differentiate on a CPU): the VALID convolution
    with dilation r of the input padded by `paddings - crops` (SAME if that
    is SAME's padding; a Pad, computed at run time where sizes are). Faster
    in TensorFlow and LiteRT; a batch norm after it folds. Returns the count.
    """
    count = 0
    for crop in list(self.graph_def.node):
      conv = self.nodes.get(_node_name(crop.input[0])) if (
          crop.op == 'BatchToSpaceND') else None
      split = conv is not None and self.nodes.get(_node_name(conv.input[0]))
      if (not split or split.op != 'SpaceToBatchND' or conv.op != 'Conv2D' or
          conv.attr['padding'].s != b'VALID' or
          conv.attr['data_format'].s not in (b'', b'NHWC') or
          list(conv.attr['strides'].list.i) != [1, 1, 1, 1] or
          list(conv.attr['dilations'].list.i) not in ([], [1, 1, 1, 1]) or
          not self._only_consumer(split, conv) or
          not self._only_consumer(conv, crop)):
        continue
      rate = self.constant(split.input[1])
      weights = self.constant(conv.input[1])
      if (rate is None or weights is None or rate.shape != (2,) or
          not np.array_equal(rate, self.constant(crop.input[1]))):
        continue
      paddings, crops = (self.constant(split.input[2]),
                         self.constant(crop.input[2]))
      data = split.input[0]
      if paddings is None or crops is None:  # Sizes known at run time.
        data = self._pad(crop.name, data, split.input[2], crop.input[2],
                         tf.as_dtype(split.attr['Tpaddings'].type))
        padding = b'VALID'
      else:
        padding = (paddings - crops).astype(np.int64)
        total = (np.array(weights.shape[:2]) - 1) * rate
        if (padding < 0).any():
          continue
        if np.array_equal(padding, np.stack([total // 2, total - total // 2],
                                            1)):
          padding = b'SAME'
        else:
          data = self._pad(crop.name, data, self.add_constant(
              crop.name + '/padding', np.pad(padding, ((1, 1), (0, 0))),
              np.int32))
          padding = b'VALID'
      self.retype(crop, 'Conv2D', [data, conv.input[1]])
      for attr in ('strides', 'data_format', 'use_cudnn_on_gpu'):
        if attr in conv.attr:
          crop.attr[attr].CopyFrom(conv.attr[attr])
      crop.attr['padding'].s = padding
      crop.attr['dilations'].list.i.extend([1] + [int(r) for r in rate] + [1])
      count += 1
    return count

  def _pad(self, name, data, paddings, crops=None, dtype=tf.int32):
    """A `Pad` of NHWC `data`: by `paddings` (`[4, 2]`), or by the spatial
    `paddings - crops` (`[2, 2]` tensors of `dtype`)."""
    if crops is not None:
      spatial = self._add_node(name + '/spatial_padding', 'Sub',
                               [paddings, crops], T=dtype)
      paddings = self._add_node(name + '/padding', 'Pad', [
          spatial, self.add_constant(name + '/batch_and_channels',
                                     [[1, 1], [0, 0]], dtype.as_numpy_dtype)
      ], T=dtype, Tpaddings=dtype)
    return self._add_node(name + '/pad', 'Pad', [data, paddings],
                          T=tf.float32, Tpaddings=dtype)

  def _add_node(self, name, op, inputs, **types):
    node = self.graph_def.node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    for attr, dtype in types.items():
      node.attr[attr].type = dtype.as_datatype_enum
    self.nodes[name] = node
    return name

  def _multiply_add(self, add):
    """`(mul, scale, shift)` if `add` computes a per-channel float32
    `x * scale + shift` (an inference batch norm), else None."""
    if add.op not in ('Add', 'AddV2') or add.name in self.keep:
      return None
    mul = self.nodes.get(_node_name(add.input[0]))
    shift = self.constant(add.input[1])
    if (mul is None or mul.op != 'Mul' or shift is None or
        shift.ndim != 1 or shift.dtype != np.float32 or
        not self._only_consumer(mul, add)):
      return None
    scale = self.constant(mul.input[1])
    if scale is None or scale.shape != shift.shape or scale.dtype != np.float32:
      return None
    return mul, scale, shift

  def fold_multiply_adds(self):
    """Per-channel `x * scale + shift` after a Conv2D that only feeds it.

    Becomes scaled weights + BiasAdd. The others stay a multiply-add: with
    oneDNN that beats one FusedBatchNormV3 fused with the ReLU (measured
    1.4x at batch 1, 1.1x at batch 16 for the whole network).
    """
    for add in list(self.graph_def.node):
      norm = self._multiply_add(add)
      if norm is None:
        continue
      mul, scale, shift = norm
      data = mul.input[0]
      conv = self.nodes.get(_node_name(data))
      weights = (self.constant(conv.input[1]) if conv is not None and
                 conv.op == 'Conv2D' else None)
      if (weights is None or _output_index(data) != 0 or
          conv.attr['data_format'].s not in (b'', b'NHWC') or
          weights.shape[-1] != scale.size or
          not self._only_consumer(conv, mul)):
        continue
      conv.input[1] = self.add_constant(
          conv.name + '/folded_weights',
          weights.astype(np.float64) * scale.astype(np.float64))
      self._to_bias_add(add, data, add.name + '/folded_bias', shift)

  def retype(self, node, op, inputs):
    """Makes `node` an `op` of `inputs` (same name and readers; attrs: T)."""
    node.op = op
    del node.input[:]
    node.input.extend(inputs)
    for attr in list(node.attr):
      if attr != 'T':
        del node.attr[attr]

  def _to_bias_add(self, node, data, name, bias):
    """Turns `node` into an NHWC BiasAdd of `data` and the constant `bias`."""
    self.retype(node, 'BiasAdd', [data, self.add_constant(name, bias)])
    node.attr['data_format'].s = b'NHWC'
