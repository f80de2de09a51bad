"""Where training runs: `tf.distribute` strategies, workers and the chief.

    strategy = distribute.get_strategy('auto')   # multi-worker with TF_CONFIG
    if distribute.is_chief(strategy): ...         # writes checkpoints, events

`get_strategy('auto')` is `MultiWorkerMirroredStrategy` when the TF_CONFIG
environment variable names several workers (checked, and every worker
waited for, by `cluster`), `MirroredStrategy` with several
GPUs, else the default strategy. Only the chief writes into the model
directory (`chief_dir`); the input is sharded by file when there are enough
files (`shard_policy`); a collective that a lost peer never joins fails with
one of `PEER_ERRORS`, which the trainer turns into `WorkerLostError`.
"""

import atexit
import shutil
import tempfile

import tensorflow as tf

from densenet import spec as spec_lib
from densenet.training import cluster

STRATEGIES = spec_lib.STRATEGIES
CLUSTER_TIMEOUT_SECONDS = cluster.CLUSTER_TIMEOUT_SECONDS
ClusterTimeoutError = cluster.ClusterTimeoutError
TFConfigError = cluster.TFConfigError
is_chief_task = cluster.is_chief_task
# Default limit of one multi-worker collective (see `get_strategy`).
COLLECTIVE_TIMEOUT_SECONDS = 600


def get_strategy(kind='auto', timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS,
                 cluster_timeout=CLUSTER_TIMEOUT_SECONDS):
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
    cluster_timeout: Multi-worker only: seconds to wait for every other
      worker of TF_CONFIG to answer on its port before the strategy is
      created (`cluster.wait_for_peers`: progress on stderr, then
      `ClusterTimeoutError` naming the missing workers).

  Raises:
    ValueError: If `kind` or `timeout_seconds` is bad, or TF_CONFIG is
      malformed (`cluster.TFConfigError`).
    ClusterTimeoutError: If some workers did not answer in time.
  """
  if kind not in STRATEGIES:
    raise ValueError('strategy must be one of %s, got %r.' %
                     (', '.join(STRATEGIES), kind))
  if timeout_seconds is not None and not timeout_seconds > 0:
    raise ValueError('timeout_seconds must be > 0 or None, got %r.' %
                     (timeout_seconds,))
  config = cluster.read_tf_config() if kind in ('auto', 'multi_worker') else (
      None)
  if kind == 'auto':
    if cluster.num_workers(config) > 1:
      kind = 'multi_worker'
    elif len(tf.config.list_logical_devices('GPU')) > 1:
      kind = 'mirrored'
    else:
      kind = 'default'
  if kind == 'multi_worker':
    cluster.wait_for_peers(config, cluster_timeout)
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
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError, tf.errors.CancelledError,
                tf.errors.FailedPreconditionError, tf.errors.InternalError)
