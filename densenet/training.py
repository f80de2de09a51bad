"""The one trainer of the project: slim networks on TF2's distribution engine.

Any network of this project is a function `net_fn(images, is_training) ->
logits` built with tf-slim (variables named `densenet_121/conv1/weights`,
...). This module runs it the TF2 way, for classification and segmentation
alike:

    import tf_slim as slim
    import densenet
    from densenet import training

    def net_fn(images, is_training):
      with slim.arg_scope(densenet.densenet_arg_scope()):
        logits, _ = densenet.densenet_121(images, num_classes=10,
                                          is_training=is_training)
      return logits                                  # [batch, 10]

    def loss_fn(labels, logits):                     # -> [batch]
      return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)

    trainer = training.Trainer(net_fn, loss_fn, model_dir='runs/cifar',
                               global_batch_size=64,
                               learning_rate_fn=training.poly_learning_rate(
                                   0.1, num_steps=1000))
    trainer.train(dataset, num_steps=1000)     # dataset: (images, labels)
                                               # batches of 64, repeated

Keras users get the same network as a tf-keras model:

    model = training.SlimModel(net_fn)
    model.compile(tf_keras.optimizers.SGD(0.1, momentum=0.9),
                  tf_keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(dataset, epochs=1)

Public API (stable; the classification and segmentation commands use it):

  SlimModel(net_fn, name=None)
      tf-keras Model whose `call(images, training=False)` runs `net_fn`
      under `track_tf1_style_variables`: eagerly, in `tf.function`, in
      `Model.fit` and in a `tf.distribute` replica. The variables keep their
      slim names; regularization losses of the arg_scope are `model.losses`.
      `model.variables_by_name()` -> {slim name: variable}. `compile`
      refuses Keras 3 (`keras`, `tf.keras`) optimizers, losses and metrics
      with a message pointing to tf_keras.
  get_strategy(kind='auto', timeout_seconds=600) -> tf.distribute.Strategy
      'auto' = 'multi_worker' when TF_CONFIG names several workers, else
      'mirrored' with several GPUs, else 'default'.
  is_chief(strategy) -> bool, num_workers(strategy) -> int
  chief_dir(model_dir, strategy) -> model_dir on the chief, else a
      temporary directory removed at exit (for run files such as configs)
  shard_policy(num_files, workers) -> tf.data AutoShardPolicy
  Trainer(net_fn, loss_fn, model_dir, global_batch_size, strategy=None,
          optimizer_fn=None, learning_rate_fn=None, checkpoint_every=100,
          summary_every=10, max_to_keep=3, init_fn=None, progress=True,
          log_every=0, sync_batch_norm=False, callbacks=())
      .model, .optimizer, .global_step, .strategy, .checkpoints
      .train(dataset, num_steps, num_files=None) -> TrainResult(
          global_step, losses, checkpoint, start_step)
      .stop_requested: the signal asking `train` to stop, or None
  Interrupted (a KeyboardInterrupt subclass, `densenet.signals`): `train`
      stopped on SIGTERM / SIGINT after saving the step reached;
      `.signal_name`, `.step`, `.checkpoint`
  NameBasedCheckpointManager(variables, directory, max_to_keep=3,
                             prefix='model.ckpt')
      .save(step) -> path, .restore(path=None) -> path or None,
      .latest_checkpoint
  checkpoint_variables(model, optimizer, global_step) -> {name: variable}
  restore_by_name(variables, checkpoint, exclude_scopes=())
      -> RestoreReport(restored, missing, mismatched, unused, shapes);
      `report.check(context)` raises `WeightMismatchError`
      (both from `densenet.weights`, the one restorer)
  poly_learning_rate(base_learning_rate, num_steps, power=0.9,
                     warmup_steps=0) -> fn(step) -> learning rate
      (`densenet.schedules.poly`)
  STRATEGIES: the kinds `get_strategy` takes (`densenet.spec.STRATEGIES`)
  write_scalar(tag, value, step)   TensorBoard scalar (no tensorboard import)
  per_example_mean(losses) -> [batch] mean over all but the first axis
  NaNLossError (a FloatingPointError subclass)
  WorkerLostError (a RuntimeError subclass): a peer worker is gone

Decisions worth knowing:

* Checkpoints are name-based: the keys are the slim variable names
  (`densenet_121/conv1/weights`), plus `global_step` and `optimizer/<slot>`.
  `tf.train.Checkpoint` would key them by object path instead, and its
  `Saver`-based alternative cannot save distributed variables eagerly, so
  `NameBasedCheckpointManager` writes TF's V2 checkpoint format with
  `SaveV2` (`densenet.weights.save`). The files are read by `tf.train.load_checkpoint`, restore into
  a plain slim graph with `slim.assign_from_checkpoint_fn` or a TF1
  `Saver` by name, and a TF1 classification checkpoint initialises
  `SlimModel` with `restore_by_name`. Each save goes to a temporary prefix
  whose files are then renamed into place, the `checkpoint` state file last,
  so a killed run never leaves a half-written latest checkpoint.
* Batch norm: `densenet_utils.batch_norm` puts its moving-average updates in
  UPDATE_OPS. Under `track_tf1_style_variables` the net runs eagerly or in
  a `tf.function`, where those `assign_sub` ops execute with the forward
  pass (stateful ops always run in TF2), so no UPDATE_OPS bookkeeping is
  needed and none happens in inference (`training=False`). Under a
  `MirroredStrategy` each replica normalizes with its own batch statistics
  and keeps its own moving statistics (ON_READ variables); reading or saving
  them gives their mean over replicas. With `Trainer(sync_batch_norm=True)`
  every replica normalizes with the global batch's statistics (one
  all-reduce per layer) and makes the same update: one device's numbers.
* Signals: while `Trainer.train` runs, SIGTERM and SIGINT (main thread
  only; `densenet.signals.stop_on_signals`) only record a stop request. The
  loop looks at it between steps, saves the checkpoint of the step reached
  and raises `Interrupted`; a second signal does not interrupt that save.
  Callbacks may look at `trainer.stop_requested` to cut a long evaluation
  short. With several workers the request is summed over the workers in the
  next step's reduction, so every worker stops after that same step and
  joins the (collective) save.
* Multi-worker: see `Trainer`. Collectives must be issued in the same order
  on every worker, so whatever reads a moving statistic in cross-replica
  context (a save, `.numpy()`) runs on every worker, and decisions such as
  "save now" depend only on numbers all workers share (the global step).
* Losses: `loss_fn(labels, logits)` returns one loss per example; the
  trainer averages them over the *global* batch
  (`tf.nn.compute_average_loss`) and adds the slim weight decay scaled by
  the number of replicas, so gradients summed over replicas equal the
  one-device gradients at the same global batch.
* `SlimModel` called eagerly traces `net_fn` in a `tf.function` (tf-slim's
  pooling layers need graph name scopes); the numbers are the same.
"""

import atexit
import collections
import inspect
import math
import os
import shutil
import sys
import tempfile
import time
import types

import tensorflow as tf
import tf_keras
import tf_slim as slim
from tqdm import tqdm
from tensorflow.core.framework import summary_pb2

import densenet_utils
from densenet import compat
from densenet import schedules
from densenet import signals
from densenet import spec as spec_lib
from densenet import weights

compat.apply()

GLOBAL_STEP = 'global_step'
OPTIMIZER_PREFIX = weights.OPTIMIZER_PREFIX
STRATEGIES = spec_lib.STRATEGIES
# The one checkpoint restorer and its report (see `densenet.weights`).
restore_by_name = weights.restore_by_name
RestoreReport = weights.RestoreReport
poly_learning_rate = schedules.poly
# Default limit of one multi-worker collective (see `get_strategy`).
COLLECTIVE_TIMEOUT_SECONDS = 600


# What TensorBoard's `tf.summary.scalar` writes, without needing the
# tensorboard package at training time.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name='scalars')).SerializeToString()


def write_scalar(tag, value, step):
  """Writes a TensorBoard scalar to the default summary writer."""
  tf.summary.write(tag, tf.cast(value, tf.float32), step=step,
                   metadata=_SCALAR_METADATA)


class NaNLossError(FloatingPointError):
  """Raised when the training loss stops being finite."""


# Training stopped by SIGTERM / SIGINT after saving (see `densenet.signals`).
Interrupted = signals.Interrupted


def _variable_name(variable):
  return variable.name.split(':')[0]


class SlimModel(tf_keras.Model):
  """A tf-keras Model running a tf-slim network function.

  Args:
    net_fn: `net_fn(images, is_training) -> logits` (or `(logits,
      end_points)`), building its variables with tf-slim /
      `tf.compat.v1.get_variable`. `images` is `[batch, height, width, 3]`.
    name: Optional Keras name of the model.
  """

  def __init__(self, net_fn, name=None):
    super().__init__(name=name)
    self._net_fn = net_fn
    # tf-slim's pooling layers need a graph name scope; eager calls trace.
    # No autograph: slim code has no tensor-dependent Python control flow,
    # and converting it would only slow the trace down. Held in a plain
    # namespace, not as a tf.function attribute, which SavedModel would
    # export and re-trace outside the variable store (it saves `call`).
    self._eager = types.SimpleNamespace(
        net=tf.function(self._run_net, autograph=False))

  def _run_net(self, images, training):
    # Each build numbers default-named scopes as a fresh graph would.
    with compat.fresh_variable_scope_counts():
      outputs = self._net_fn(images, training)
    if isinstance(outputs, (tuple, list)):
      outputs = outputs[0]
    return outputs

  @compat.track_tf1_style_variables
  def call(self, inputs, training=False):  # pylint: disable=arguments-differ
    """`[batch, height, width, 3]` images -> the logits of `net_fn`."""
    if tf.executing_eagerly():
      return self._eager.net(inputs, bool(training))
    return self._run_net(inputs, training)

  def compile(self, optimizer='rmsprop', loss=None, metrics=None, **kwargs):
    """tf_keras' `Model.compile`, refusing Keras 3 objects with a clear error.

    Raises:
      ValueError: If `optimizer`, `loss` or a metric is a Keras 3 object
        (`keras.*`, which `tf.keras` is in TensorFlow >= 2.16).
    """
    for argument, value in (('optimizer', optimizer), ('loss', loss),
                            ('metrics', metrics),
                            ('weighted_metrics',
                             kwargs.get('weighted_metrics'))):
      for item in tf.nest.flatten(value):
        origin = _keras3_origin(item)
        if origin:
          raise ValueError(
              '%s is a Keras 3 object (%s; tf.keras is Keras 3 in TensorFlow '
              '>= 2.16), but this model is a tf_keras model: `import tf_keras` '
              'and pass tf_keras objects, e.g. tf_keras.optimizers.SGD(0.01), '
              'tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)'
              ', or their string names.' % (argument, origin))
    super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

  def variables_by_name(self):
    """{slim variable name: variable} of every variable of the network."""
    return {_variable_name(v): v for v in self.variables}


def _keras3_origin(item):
  """'module.Name' of a Keras 3 object, function or class, else None."""
  kind = item if inspect.isfunction(item) or isinstance(item, type) else (
      type(item))
  module = getattr(kind, '__module__', None) or ''
  if module.split('.')[0] != 'keras':
    return None
  return '%s.%s' % (module, kind.__qualname__)


def get_strategy(kind='auto', timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS):
  """The `tf.distribute.Strategy` for this process.

  Args:
    kind: 'auto' (MultiWorkerMirroredStrategy when the TF_CONFIG environment
      variable names several workers, MirroredStrategy with several GPUs,
      else the default strategy), 'default', 'mirrored' (all local GPUs, or
      all logical CPU devices when there is no GPU) or 'multi_worker'.
    timeout_seconds: Multi-worker only: a collective (an all-reduce of a
      step) that has not completed after this many seconds fails instead of
      waiting forever for a worker that is gone (None: no limit). It must
      exceed the longest time one worker may wait for the slowest one,
      start-up and checkpoint writes included. TF's coordination service
      usually notices a dead worker sooner, from its missed heartbeats.

  Raises:
    ValueError: If `kind` or `timeout_seconds` is bad.
  """
  if kind not in STRATEGIES:
    raise ValueError('strategy must be one of %s, got %r.' %
                     (', '.join(STRATEGIES), kind))
  if timeout_seconds is not None and not timeout_seconds > 0:
    raise ValueError('timeout_seconds must be > 0 or None, got %r.' %
                     (timeout_seconds,))
  if kind == 'auto':
    cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = cluster.cluster_spec().as_dict()
    num_workers = len(spec.get('worker', [])) + len(spec.get('chief', []))
    if num_workers > 1:
      kind = 'multi_worker'
    elif len(tf.config.list_logical_devices('GPU')) > 1:
      kind = 'mirrored'
    else:
      kind = 'default'
  if kind == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=timeout_seconds))
  if kind == 'mirrored':
    devices = tf.config.list_logical_devices('GPU') or (
        tf.config.list_logical_devices('CPU'))
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  return tf.distribute.get_strategy()


def is_chief(strategy):
  """Whether this worker writes checkpoints and summaries."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return resolver.task_type == 'worker' and resolver.task_id == 0 and (
      not has_chief)


def num_workers(strategy):
  """Worker processes training together (1 unless multi-worker)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None:
    return 1
  spec = resolver.cluster_spec().as_dict()
  return max(1, len(spec.get('worker', [])) + len(spec.get('chief', [])))


def chief_dir(model_dir, strategy):
  """Where this worker writes files meant for `model_dir`.

  `model_dir` on the chief; on every other worker a new temporary directory,
  removed when the process exits, so that code writing run files (configs,
  results, summaries) runs unchanged on every worker while only the chief's
  files reach `model_dir`.
  """
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  path = tempfile.mkdtemp(prefix='densenet-%s%d-' % (resolver.task_type,
                                                     resolver.task_id))
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


def shard_policy(num_files, workers):
  """How `Trainer.train` splits the input between workers.

  FILE (each worker reads its own files: no wasted reads) when there are at
  least as many input files as workers, else DATA (every worker reads all
  the data and keeps its part of each global batch).

  Args:
    num_files: Input files of the dataset (e.g. TFRecord shards), or None
      if unknown (then DATA).
    workers: Worker processes.

  Returns:
    A `tf.data.experimental.AutoShardPolicy`.
  """
  policy = tf.data.experimental.AutoShardPolicy
  if num_files is not None and num_files >= workers:
    return policy.FILE
  return policy.DATA


class WorkerLostError(RuntimeError):
  """Raised when a peer worker of a multi-worker run stops answering."""


# What collectives raise when a peer is gone: the coordination service's
# heartbeat or the collective timeout aborted them.
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError, tf.errors.CancelledError,
                tf.errors.FailedPreconditionError, tf.errors.InternalError)


def checkpoint_variables(model, optimizer=None, global_step=None):
  """{checkpoint key: variable}: slim names, `global_step`, `optimizer/*`."""
  variables = model.variables_by_name()
  if global_step is not None:
    variables[GLOBAL_STEP] = global_step
  if optimizer is not None:
    for variable in optimizer.variables:
      variables[OPTIMIZER_PREFIX + _variable_name(variable)] = variable
  return variables


class NameBasedCheckpointManager(object):
  """Saves and restores `{name: variable}` as TF checkpoints, by name.

  Checkpoints are `<directory>/<prefix>-<step>` in TF's V2 format, with the
  usual `checkpoint` state file, so `tf.train.latest_checkpoint`,
  `tf.train.load_checkpoint`, TF1 `Saver`s and `slim.assign_from_checkpoint_fn`
  all read them.

  Args:
    variables: {checkpoint key: variable} (see `checkpoint_variables`).
    directory: Where checkpoints live.
    max_to_keep: Newest checkpoints kept; older ones are deleted.
    prefix: Basename of the checkpoints.
    write: Whether this process writes files (False on non-chief workers;
      they still read every variable, which MultiWorkerMirroredStrategy
      needs for its collective reads).
  """

  def __init__(self, variables, directory, max_to_keep=3, prefix='model.ckpt',
               write=True):
    if max_to_keep < 1:
      raise ValueError('max_to_keep must be >= 1, got %r.' % (max_to_keep,))
    self._variables = dict(variables)
    self._directory = directory
    self._prefix = prefix
    self._max_to_keep = max_to_keep
    self._write = write

  @property
  def directory(self):
    return self._directory

  @property
  def variables(self):
    """{checkpoint key: variable} (a copy)."""
    return dict(self._variables)

  @property
  def latest_checkpoint(self):
    """Prefix of the newest checkpoint, or None."""
    return tf.train.latest_checkpoint(self._directory)

  def _all_checkpoints(self):
    state = tf.train.get_checkpoint_state(self._directory)
    return list(state.all_model_checkpoint_paths) if state else []

  def save(self, step):
    """Writes the checkpoint of global step `step`; returns its prefix."""
    keys = sorted(self._variables)
    tensors = [tf.convert_to_tensor(self._variables[k]) for k in keys]
    path = os.path.join(self._directory, '%s-%d' % (self._prefix, step))
    if not self._write:
      return path
    weights.save(dict(zip(keys, tensors)), path)
    kept = [p for p in self._all_checkpoints() if p != path] + [path]
    for old in kept[:-self._max_to_keep]:
      for name in tf.io.gfile.glob(old + '.*'):
        tf.io.gfile.remove(name)
    kept = kept[-self._max_to_keep:]
    tf.compat.v1.train.update_checkpoint_state(
        self._directory, path, all_model_checkpoint_paths=kept)
    return path

  def restore(self, path=None):
    """Restores `path` (default: the latest); returns it, or None if none.

    Raises:
      densenet.weights.WeightMismatchError: If the checkpoint lacks a
        variable or has another shape.
    """
    path = path or self.latest_checkpoint
    if path is None:
      return None
    restore_by_name(self._variables, path).check(
        'checkpoint %s does not match the model' % path)
    return path


TrainResult = collections.namedtuple(
    'TrainResult', ['global_step', 'losses', 'checkpoint', 'start_step'])
TrainResult.__doc__ = """What `Trainer.train` did.

  global_step: The global step reached.
  losses: The data loss of every step run in this call (floats).
  checkpoint: Prefix of the checkpoint written at exit.
  start_step: The global step training resumed from (0 for a fresh start).
"""


class Trainer(object):
  """A custom training loop for a slim network under a distribution strategy.

  Args:
    net_fn: `net_fn(images, is_training) -> logits`, see `SlimModel`.
    loss_fn: `loss_fn(labels, logits) -> [batch]` per-example data losses.
    model_dir: Checkpoints (`model.ckpt-<step>`) and TensorBoard events
      (`train/`) go here; training resumes from its latest checkpoint.
    global_batch_size: Examples per step over all replicas (the dataset's
      batch size).
    strategy: A `tf.distribute.Strategy`, default `get_strategy('auto')`.
    optimizer_fn: `() -> tf_keras optimizer`, called in the strategy scope;
      default SGD with momentum 0.9.
    learning_rate_fn: `fn(global_step) -> learning rate`, evaluated every
      step (e.g. `poly_learning_rate`); None keeps the optimizer's own.
    checkpoint_every: Steps between checkpoints (one is also written when
      `train` returns or is interrupted).
    summary_every: Steps between TensorBoard scalars.
    max_to_keep: Checkpoints kept.
    init_fn: `init_fn(model)` called once on a fresh start (no checkpoint in
      `model_dir`), e.g. to restore a backbone with `restore_by_name`.
    progress: Whether to show a tqdm progress bar.
    log_every: If > 0, also print `step N loss L steps/s S` lines to stderr
      every `log_every` steps (for logs without a terminal).
    callbacks: Callables `callback(trainer, step)` run on every worker after
      each step (and after that step's checkpoint), e.g. a periodic
      evaluation (`segmentation.evaluation.EvalCallback`); a long one may
      return early once `trainer.stop_requested` is set.
    sync_batch_norm: Whether batch norm (`densenet_utils.batch_norm`)
      normalizes with, and averages, the statistics of the global batch
      across replicas instead of each replica's own batch. Same variables.

  Multi-worker training (`MultiWorkerMirroredStrategy`, see README): every
  worker runs the same program with its own TF_CONFIG. Only the chief
  reads `model_dir`'s checkpoint (or calls `init_fn`) and writes
  checkpoints and TensorBoard events; it then broadcasts every variable
  (weights, moving statistics, optimizer slots, global step) to the other
  workers, which therefore need no access to `model_dir`. Each worker reads
  its own shard of the input (see `train`). A worker that dies makes the
  others raise `WorkerLostError`; restarting all of them resumes from the
  chief's latest checkpoint. A SIGTERM or SIGINT to any worker stops every
  worker after the next step, all saving it together (see `train`).
  """

  def __init__(self, net_fn, loss_fn, model_dir, global_batch_size,
               strategy=None, optimizer_fn=None, learning_rate_fn=None,
               checkpoint_every=100, summary_every=10, max_to_keep=3,
               init_fn=None, progress=True, log_every=0,
               sync_batch_norm=False, callbacks=()):
    if global_batch_size < 1:
      raise ValueError('global_batch_size must be >= 1, got %r.' %
                       (global_batch_size,))
    if checkpoint_every < 1:
      raise ValueError('checkpoint_every must be >= 1, got %r.' %
                       (checkpoint_every,))
    self.strategy = strategy or get_strategy('auto')
    self.model_dir = model_dir
    self.global_batch_size = global_batch_size
    self._loss_fn = loss_fn
    self._learning_rate_fn = learning_rate_fn
    self._checkpoint_every = checkpoint_every
    self._summary_every = summary_every
    self._max_to_keep = max_to_keep
    self._init_fn = init_fn
    self._progress = progress
    self._log_every = log_every
    self._callbacks = list(callbacks)
    self._chief = is_chief(self.strategy)
    self._num_workers = num_workers(self.strategy)
    if sync_batch_norm:
      net_fn = _with_sync_batch_norm(net_fn)
    with self.strategy.scope():
      self.model = SlimModel(net_fn)
      self.optimizer = (optimizer_fn() if optimizer_fn else
                        tf_keras.optimizers.SGD(0.01, momentum=0.9))
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name=GLOBAL_STEP)
    self.checkpoints = None
    self._train_step = None
    self._completed_step = 0
    self._request = None  # The `signals.StopRequest` while `train` runs.

  @property
  def stop_requested(self):
    """The name of the signal asking `train` to stop ('SIGTERM',
    'SIGINT'), or None. Callbacks may look at it to return early."""
    return self._request.signal_name if self._request else None

  def build(self, images):
    """Creates the variables from one batch of `[batch, h, w, 3]` images and
    restores the latest checkpoint of `model_dir` (or calls `init_fn`).

    Returns:
      The restored checkpoint prefix, or None on a fresh start.
    """
    if self.checkpoints is not None:
      return None
    with self.strategy.scope():
      build = tf.function(lambda x: self.model(x, training=False),
                          autograph=False)
      self.strategy.run(build, (images[:1],))
      self.optimizer.build(self.model.trainable_variables)
    self.checkpoints = NameBasedCheckpointManager(
        checkpoint_variables(self.model, self.optimizer, self.global_step),
        self.model_dir, max_to_keep=self._max_to_keep, write=self._chief)
    restored = None
    if self._chief:  # Other workers get the chief's values just below.
      restored = self.checkpoints.restore()
      if restored is None and self._init_fn is not None:
        self._init_fn(self.model)
    if self._num_workers > 1:
      self._broadcast_from_chief()
    return restored

  def _broadcast_from_chief(self):
    """Gives every variable of every worker the chief's value.

    One SUM all-reduce to which only replica 0 (on the chief) contributes,
    in float64 (exact for float32 values and integers below 2**53).
    """
    by_key = self.checkpoints.variables
    variables = [by_key[k] for k in sorted(by_key)]

    def replica_fn():
      context = tf.distribute.get_replica_context()
      first = tf.equal(context.replica_id_in_sync_group, 0)
      values = []
      for variable in variables:
        value = tf.cast(variable, tf.float64)
        values.append(tf.where(first, value, tf.zeros_like(value)))
      return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

    try:
      results = tf.function(lambda: self.strategy.run(replica_fn),
                            autograph=False)()
    except _PEER_ERRORS as e:
      raise self._worker_lost(e, 'before training started') from e
    for variable, result in zip(variables, results):
      value = self.strategy.experimental_local_results(result)[0]
      variable.assign(tf.cast(value, variable.dtype), read_value=False)

  def _worker_lost(self, error, when):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if 'aborted by' in line or
              'unhealthy' in line or 'timed out' in line.lower()]
    cause = (causes or lines or [''])[0][:300]
    return WorkerLostError(
        'Training stopped %s: a worker of the %d-worker cluster stopped '
        'answering (%s: %s). Restart every worker with the same TF_CONFIG '
        'to resume from the latest checkpoint of %s.' % (
            when, self._num_workers, type(error).__name__, cause,
            self.model_dir))

  def _make_train_step(self):
    model, optimizer, strategy = self.model, self.optimizer, self.strategy
    global_batch_size = self.global_batch_size

    def replica_step(images, labels):
      with tf.GradientTape() as tape:
        logits = model(images, training=True)
        per_example = self._loss_fn(labels, logits)
        data_loss = tf.nn.compute_average_loss(
            per_example, global_batch_size=global_batch_size)
        total_loss = data_loss
        if model.losses:
          total_loss += tf.nn.scale_regularization_loss(
              tf.add_n(model.losses))
      gradients = tape.gradient(total_loss, model.trainable_variables)
      optimizer.apply_gradients(zip(gradients, model.trainable_variables))
      return data_loss, total_loss

    def replica_outputs(images, labels, stop):
      data_loss, total_loss = replica_step(images, labels)
      # Every replica reports whether its worker was asked to stop: the sum
      # over replicas tells every worker, after the same step.
      return tf.stack([tf.cast(data_loss, tf.float32),
                       tf.cast(total_loss, tf.float32),
                       tf.cast(stop, tf.float32)])

    @tf.function(autograph=False)
    def train_step(inputs, stop):
      """One step; returns (data loss, total loss, learning rate, stop):
      `stop` > 0 when some worker's `stop` input was True."""
      if self._learning_rate_fn is not None:
        optimizer.learning_rate.assign(
            self._learning_rate_fn(self.global_step))
      outputs = strategy.run(replica_outputs, args=tuple(inputs) + (stop,))
      self.global_step.assign_add(1)
      data_loss, total_loss, stop = tf.unstack(
          strategy.reduce(tf.distribute.ReduceOp.SUM, outputs, None))
      return (data_loss, total_loss,
              tf.convert_to_tensor(optimizer.learning_rate), stop)

    return train_step

  def train(self, dataset, num_steps, num_files=None):
    """Trains until the global step reaches `num_steps`.

    Args:
      dataset: A `tf.data.Dataset` of `(images, labels)` batches of
        `global_batch_size` (repeat it; training stops at `num_steps`).
        With several replicas each step splits every batch between them;
        with several workers each worker reads its own shard of `dataset`:
        by FILE when `num_files >= workers`, else by DATA (see
        `shard_policy`), unless the dataset's options already set an
        `auto_shard_policy`.
      num_steps: The global step to reach (resumed runs do the rest).
      num_files: Input files `dataset` reads (e.g. TFRecord shards), if
        known.

    Returns:
      A `TrainResult`.

    Raises:
      Interrupted: On SIGTERM or SIGINT (caught while `train` runs, in the
        main thread; the previous handlers come back when it returns or
        raises): the loop stops between steps, saves the checkpoint of the
        step reached (unless that step's is already written) and raises.
        A second signal does not interrupt the save. With several workers a
        signal to any of them stops all after the next step, and all join
        the save (a collective), so no worker is left waiting.
      NaNLossError: If the loss is NaN or infinite; the checkpoint of that
        step is not written, the latest good one stays the latest.
      WorkerLostError: If a peer worker died or stopped answering.
    """
    automatic = tf.data.experimental.AutoShardPolicy.AUTO
    if dataset.options().experimental_distribute.auto_shard_policy == (
        automatic):
      options = tf.data.Options()
      options.experimental_distribute.auto_shard_policy = shard_policy(
          num_files, self._num_workers)
      dataset = dataset.with_options(options)
    with signals.stop_on_signals() as request:
      self._request = request
      try:
        return self._train(dataset, num_steps)
      except _PEER_ERRORS as e:
        if self._num_workers == 1:
          raise
        raise self._worker_lost(
            e, 'after global step %d' % self._completed_step) from e
      finally:
        self._request = None

  def _stop(self, step, last_saved):
    """Saves `step` if not yet saved; returns the `Interrupted` to raise."""
    checkpoint = self.checkpoints.latest_checkpoint
    if step != last_saved:
      checkpoint = self.checkpoints.save(step)
    return Interrupted(self.stop_requested, step, checkpoint)

  def _train(self, dataset, num_steps):
    distributed = self.strategy.experimental_distribute_dataset(dataset)
    iterator = iter(distributed)
    first = next(iterator)
    images = self.strategy.experimental_local_results(first[0])[0]
    self.build(images)
    if self._train_step is None:
      self._train_step = self._make_train_step()
    start_step = int(self.global_step.numpy())
    writer = (tf.summary.create_file_writer(os.path.join(self.model_dir,
                                                         'train'))
              if self._chief else tf.summary.create_noop_writer())
    bar = tqdm(total=num_steps, initial=start_step, unit='step',
               disable=not self._progress or not self._chief,
               dynamic_ncols=True)
    losses = []
    step = self._completed_step = start_step
    last_saved = start_step
    started = time.time()
    batch = first
    # Single worker: stop before the next step. Several: the request goes
    # into the next step, whose reduction tells every worker to stop.
    local_stop = self._num_workers == 1
    stop = False
    try:
      while step < num_steps:
        if local_stop and self.stop_requested:
          stop = True
          break
        if batch is None:
          batch = next(iterator)
        data_loss, total_loss, learning_rate, stop = self._train_step(
            batch, tf.constant(self.stop_requested is not None))
        stop = float(stop.numpy()) > 0
        batch = None
        data_loss = float(data_loss.numpy())
        step = int(self.global_step.numpy())
        self._completed_step = step
        if not math.isfinite(data_loss) or not math.isfinite(
            float(total_loss.numpy())):
          raise NaNLossError(
              'Training stopped: the loss became %s at global step %d. No '
              'checkpoint was written for it; the latest good checkpoint is '
              '%s. Lower the learning rate or check the data.' %
              (data_loss, step, self.checkpoints.latest_checkpoint))
        losses.append(data_loss)
        steps_per_s = len(losses) / max(time.time() - started, 1e-9)
        bar.update(1)
        bar.set_postfix(loss='%.4f' % data_loss,
                        steps_per_s='%.2f' % steps_per_s)
        if self._log_every and step % self._log_every == 0 and self._chief:
          print('step %d loss %.4f steps/s %.2f' % (step, data_loss,
                                                   steps_per_s),
                file=sys.stderr, flush=True)
        if step % self._summary_every == 0 or step == num_steps:
          with writer.as_default(step=step):
            write_scalar('loss', data_loss, step)
            write_scalar('total_loss', total_loss, step)
            write_scalar('learning_rate', learning_rate, step)
        if step % self._checkpoint_every == 0:
          self.checkpoints.save(step)
          last_saved = step
        for callback in self._callbacks:
          callback(self, step)
        if stop:  # Every worker knows it after the same step.
          break
    except KeyboardInterrupt as e:
      # Not from our handlers (e.g. raised by a callback). Saving reads the
      # moving statistics with collectives, which would wait forever for
      # workers that were not interrupted.
      if (not isinstance(e, Interrupted) and step != last_saved and
          self._num_workers == 1):
        self.checkpoints.save(step)
      raise
    finally:
      bar.close()
      writer.flush()
    if stop and step < num_steps:  # Done anyway: saved and returned below.
      raise self._stop(step, last_saved)
    # Decided from numbers every worker shares: a save is a collective.
    checkpoint = self.checkpoints.latest_checkpoint
    if step != last_saved or step == 0:
      checkpoint = self.checkpoints.save(step)
    return TrainResult(step, losses, checkpoint, start_step)


def _with_sync_batch_norm(net_fn):
  """`net_fn` with `densenet_utils.batch_norm(synchronized=True)`."""

  def synchronized_net_fn(images, is_training):
    with slim.arg_scope([densenet_utils.batch_norm], synchronized=True):
      return net_fn(images, is_training)

  return synchronized_net_fn


def per_example_mean(losses):
  """Averages `[batch, ...]` losses to `[batch]` (a helper for loss_fns)."""
  losses = tf.convert_to_tensor(losses)
  return tf.reduce_mean(tf.reshape(losses, [tf.shape(losses)[0], -1]), 1)


__all__ = [
    'SlimModel', 'get_strategy', 'is_chief', 'Trainer', 'TrainResult',
    'NameBasedCheckpointManager', 'checkpoint_variables', 'restore_by_name',
    'RestoreReport', 'poly_learning_rate', 'write_scalar', 'NaNLossError', 'per_example_mean',
    'num_workers', 'chief_dir', 'shard_policy', 'WorkerLostError',
    'COLLECTIVE_TIMEOUT_SECONDS', 'Interrupted',
]
