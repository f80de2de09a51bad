"""Recomputation in the backward pass (memory-efficient DenseNets).

Pleiss et al., "Memory-Efficient Implementation of DenseNets", 2017: a unit
built with `recompute_grad` keeps none of its intermediate tensors; its
gradient rebuilds them from the unit's inputs once the output's gradient
exists. `unit_scope` opens a unit's variable scope with a `VariableRecorder`
(the rebuild reuses exactly the variables the forward call got), and
`recomputing()` is True while a rebuild runs (batch norm then makes no
moving-average updates).
"""

import contextlib
import itertools
import threading

import tensorflow as tf
import tf_slim as slim

from densenet._env import compat


@contextlib.contextmanager
def unit_scope(scope, default_name, values, memory_efficient):
  """The variable scope of a unit; yields it and its `VariableRecorder`.

  A memory-efficient unit asks for resource variables and records the
  variables its forward call gets (the recorder is None otherwise).
  """
  recorder = VariableRecorder() if memory_efficient else None
  with tf.compat.v1.variable_scope(
      scope, default_name, values,
      use_resource=True if memory_efficient else None,
      custom_getter=recorder.record if recorder else None) as sc:
    yield sc, recorder


_RECOMPUTATION = threading.local()


def recomputing():
  """True while a memory-efficient unit is rebuilt for its gradients."""
  return getattr(_RECOMPUTATION, 'active', False)


@contextlib.contextmanager
def recomputation():
  previous = recomputing()
  _RECOMPUTATION.active = True
  try:
    yield
  finally:
    _RECOMPUTATION.active = previous


class VariableRecorder(object):
  """Custom getters: `record` the variables a call gets, `replay` them."""

  def __init__(self):
    self.variables = {}

  def record(self, getter, name, *args, **kwargs):
    self.variables[name] = getter(name, *args, **kwargs)
    return self.variables[name]

  def replay(self, getter, name, *args, **kwargs):
    del getter, args, kwargs
    return self.variables[name]


@contextlib.contextmanager
def depending_only_on(tensor):
  """Ops built inside depend on `tensor` and on no enclosing control scope.

  A training graph is often built under
  `tf.control_dependencies(UPDATE_OPS)`, and TensorFlow gives every op built
  there whose inputs come from outside the block a control edge to each of
  the ~2 x (number of batch norms) update ops. A recomputed unit takes all its
  inputs from outside, so inherited edges would grow with (units per block)^2
  x depth: gigabytes of graph at DenseNet-BC-250. Ordering needs one edge:
  recompute once the unit's output gradient exists. With control flow v1 the
  enclosing edges stay (clearing them would also clear the loop context).
  """
  if tf.compat.v1.control_flow_v2_enabled():
    with tf.control_dependencies(None), tf.control_dependencies([tensor]):
      yield
  else:
    with tf.control_dependencies([tensor]):
      yield


def recompute_grad(fn, recorder, quiet_ops, pass_on=False):
  """`fn(*tensors)`, recomputed in the backward pass instead of stored.

  The returned function builds `fn(*tensors)` and hands its output on
  through an `IdentityN` op whose gradient (for `tf.gradients`, and for
  `tf.GradientTape`, on which it is recorded) rebuilds `fn` once the output's
  gradient exists and differentiates the rebuilt ops with a tape. So no
  intermediate tensor of `fn` outlives the forward call, and building the
  gradient touches only the rebuilt ops: no search of the whole graph per
  unit. The rebuild runs in the forward call's variable and arg scopes with
  the variables `recorder.record` saw (in TF2, under
  `track_tf1_style_variables`, the forward call's variable store is gone by
  then); while it runs, batch norm makes no moving-average updates and the
  `quiet_ops` (slim.conv2d, batch norm) collect no end points.

  The `IdentityN` takes the output, `tensors` and the values of the variables
  (through which their gradients flow back to them). With `pass_on`, the
  outputs for `tensors` are returned too (no copies): later units take these,
  so the gradient of a feature map is summed unit by unit in the backward pass
  instead of held as one partial gradient per later unit until the last one
  arrives. (`tf.custom_gradient` would add a copy of every input that no one
  reads, and `tf.gradients` gives each unread output a zeros op that inherits
  every enclosing control dependency: a quadratic number of them.)

  Returns:
    `(*tensors) -> output`, or `(*tensors) -> (output, list of tensors)` with
    `pass_on`.
  """

  def call(*tensors):
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    variable_scope = tf.compat.v1.get_variable_scope()
    arg_scope = slim.current_arg_scope()
    output = fn(*tensors)
    # Gradients flow to the trainable variables (and tensors standing for
    # them, e.g. low-precision casts), not to the moving statistics.
    variables = [recorder.variables[name] for name in sorted(recorder.variables)
                 if getattr(recorder.variables[name], 'trainable', True)]
    values = [tf.convert_to_tensor(v) for v in variables]

    def gradient(output_gradient, *gradients):
      passed_on = gradients[:len(tensors)] if pass_on else ()
      if output_gradient is None:
        input_gradients = [None] * len(tensors)
        variable_gradients = [None] * len(variables)
      else:
        with depending_only_on(output_gradient):
          inputs = [tf.identity(t) for t in tensors]
          with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(inputs)
            tape.watch(variables)
            with recomputation(), \
                slim.arg_scope(arg_scope), \
                tf.compat.v1.variable_scope(variable_scope, reuse=True,
                                            custom_getter=recorder.replay), \
                slim.arg_scope(list(quiet_ops), outputs_collections=None):
              recomputed = fn(*inputs)
          sources = inputs + variables
          computed = tape.gradient(recomputed, sources,
                                   output_gradients=output_gradient)
        # Rejoin the enclosing control scope through a data input that is
        # already in it, so the ops built on these gradients inherit nothing.
        present = [g for g in computed if g is not None]
        joined = iter(tf.identity_n([output_gradient] + present)[1:])
        computed = [None if g is None else next(joined) for g in computed]
        input_gradients = computed[:len(tensors)]
        variable_gradients = computed[len(tensors):]
      for i, passed in enumerate(passed_on):
        if passed is not None:
          input_gradients[i] = (passed if input_gradients[i] is None else
                                input_gradients[i] + passed)
      return [None] + input_gradients + variable_gradients

    name = 'DenseNetRecompute_%d' % next(_GRADIENT_NAMES)
    tf.RegisterGradient(name)(lambda op, *grads: gradient(*grads))
    inputs = [output] + tensors + values
    with tf.compat.v1.get_default_graph().gradient_override_map(
        {'IdentityN': name}):
      outputs = tf.identity_n(inputs)
    compat.record_operation(name, outputs, inputs, gradient)
    if pass_on:
      return outputs[0], list(outputs[1:1 + len(tensors)])
    return outputs[0]

  return call


_GRADIENT_NAMES = itertools.count()
