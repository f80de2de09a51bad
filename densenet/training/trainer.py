"""The one trainer of the project: slim networks on TF2's distribution engine.

    trainer = trainer_lib.Trainer(net_fn, loss_fn, model_dir='runs/cifar',
                                  global_batch_size=64,
                                  learning_rate_fn=schedules.poly(0.1, 1000))
    trainer.train(dataset, num_steps=1000)   # (images, labels) batches of 64

`net_fn(images, is_training) -> logits` is any slim network of the project;
it runs as a `slim_model.SlimModel` in a custom loop under the strategy
(`distribute`). The loss is averaged over the global batch and the slim
weight decay scaled by the replicas, so N replicas compute the one-device
step. Checkpoints every N steps and on exit (`checkpoints`), resume from the
latest, a stop on SIGTERM / SIGINT between steps (`signals`), NaN stop,
TensorBoard scalars (`summaries`). The README's "Several machines" section
says what happens with several workers.
"""

import collections
import contextlib
import math
import os
import sys
import time

import tensorflow as tf
import tf_keras
import tf_slim as slim
from tqdm import tqdm

from densenet.layers import batch_norm as batch_norm_lib
from densenet.training import checkpoints as checkpoints_lib
from densenet.training import distribute
from densenet.training import lock
from densenet.training import slim_model
from densenet.training import signals
from densenet.training import summaries

class NaNLossError(FloatingPointError):
  """Raised when the training loss stops being finite."""


# Training stopped by SIGTERM / SIGINT after saving (see `densenet.training.signals`).
Interrupted = signals.Interrupted


TrainResult = collections.namedtuple(
    'TrainResult', ['global_step', 'losses', 'checkpoint', 'start_step'])


class Trainer(object):
  """A custom training loop for a slim network under a distribution strategy.

  Args:
    net_fn: `net_fn(images, is_training) -> logits`, see `SlimModel`.
    loss_fn: `loss_fn(labels, logits) -> [batch]` per-example data losses.
    model_dir: Checkpoints (`model.ckpt-<step>`) and TensorBoard events
      (`train/`) go here; training resumes from its newest complete
      checkpoint (`checkpoints.NameBasedCheckpointManager`). While `build`
      and `train` run, the chief holds its lock (`lock`): a second trainer
      there raises `lock.LockedError`.
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
    self.strategy = strategy or distribute.get_strategy('auto')
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
    self._chief = distribute.is_chief(self.strategy)
    self._num_workers = distribute.num_workers(self.strategy)
    if sync_batch_norm:
      net_fn = _with_sync_batch_norm(net_fn)
    with self.strategy.scope():
      self.model = slim_model.SlimModel(net_fn)
      self.optimizer = (optimizer_fn() if optimizer_fn else
                        tf_keras.optimizers.SGD(0.01, momentum=0.9))
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name=checkpoints_lib.GLOBAL_STEP)
    self.checkpoints = None
    # What `build` restored (None: a fresh start, or not built yet).
    self.restored_checkpoint = None
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

    Only the first call builds; every call returns what it did.

    Returns:
      The checkpoint prefix restored (`restored_checkpoint`), or None on a
      fresh start (no checkpoint: `init_fn` was called). On other workers
      than the chief, None (they take the chief's values).
    """
    if self.checkpoints is not None:
      return self.restored_checkpoint
    with self._lock():
      return self._build(images)

  def _lock(self):
    """The model directory's lock (`lock.held`), on the chief only."""
    if not self._chief:
      return contextlib.nullcontext()
    return lock.held(self.model_dir)

  def _build(self, images):
    with self.strategy.scope():
      build = tf.function(lambda x: self.model(x, training=False),
                          autograph=False)
      self.strategy.run(build, (images[:1],))
      self.optimizer.build(self.model.trainable_variables)
    self.checkpoints = checkpoints_lib.NameBasedCheckpointManager(
        checkpoints_lib.checkpoint_variables(self.model, self.optimizer,
                                             self.global_step),
        self.model_dir, max_to_keep=self._max_to_keep, write=self._chief)
    restored = None
    if self._chief:  # Other workers get the chief's values just below.
      restored = self.checkpoints.restore()
      if restored is None and self._init_fn is not None:
        self._init_fn(self.model)
    if self._num_workers > 1:
      self._broadcast_from_chief()
    self.restored_checkpoint = restored
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
    except distribute.PEER_ERRORS as e:
      raise self._worker_lost(e, 'before training started') from e
    for variable, result in zip(variables, results):
      value = self.strategy.experimental_local_results(result)[0]
      variable.assign(tf.cast(value, variable.dtype), read_value=False)

  def _worker_lost(self, error, when):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if 'aborted by' in line or
              'unhealthy' in line or 'timed out' in line.lower()]
    cause = (causes or lines or [''])[0][:300]
    return distribute.WorkerLostError(
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
      options.experimental_distribute.auto_shard_policy = distribute.shard_policy(
          num_files, self._num_workers)
      dataset = dataset.with_options(options)
    with signals.stop_on_signals() as request, self._lock():
      self._request = request
      try:
        return self._train(dataset, num_steps)
      except distribute.PEER_ERRORS as e:
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
            summaries.write_scalar('loss', data_loss, step)
            summaries.write_scalar('total_loss', total_loss, step)
            summaries.write_scalar('learning_rate', learning_rate, step)
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
    with slim.arg_scope([batch_norm_lib.batch_norm], synchronized=True):
      return net_fn(images, is_training)

  return synchronized_net_fn
