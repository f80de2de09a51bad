"""Training: the one trainer, its Keras model, strategies and run directories.

    from densenet import training
    trainer = training.Trainer(net_fn, loss_fn, model_dir='runs/cifar',
                               global_batch_size=64)
    trainer.train(dataset, num_steps=1000)       # (images, labels) batches

    model = training.SlimModel(net_fn)           # a tf_keras.Model: fit, save

Modules (their public names are also importable from this package, on first
use, so `import densenet.training` loads no TensorFlow):
  trainer:      `Trainer`, `TrainResult`, `NaNLossError`, `Interrupted`.
  slim_model:   `SlimModel` (any slim `net_fn` as a tf_keras model) and
                `keras_model(...)`, the TF2 face of the networks.
  distribute:   `get_strategy`, `is_chief`, `num_workers`, `chief_dir`,
                `shard_policy`, `WorkerLostError`.
  cluster:      TF_CONFIG read and checked, the wait for the other workers
                (no TensorFlow).
  lock:         one training run per model directory (its `.lock` file;
                no TensorFlow).
  checkpoints:  `NameBasedCheckpointManager`, `checkpoint_variables`,
                `read_global_step`.
  run:          `Run`: how a run starts in its model directory (resolve,
                check against config.json, chief_dir, build, write config).
  summaries:    `write_scalar` (TensorBoard without the tensorboard package).
  schedules:    learning rates (`step`, `poly`).
  signals:      SIGTERM / SIGINT -> a stop between steps (no TensorFlow).
  rundir:       a run directory's config.json and output checks (no
                TensorFlow).
"""

from densenet._env import lazy


def _names(module, *names):
  return {name: 'densenet.training.' + module for name in names}


_PUBLIC = dict(
    **_names('trainer', 'Trainer', 'TrainResult', 'NaNLossError',
             'Interrupted'),
    **_names('slim_model', 'SlimModel', 'keras_model'),
    **_names('distribute', 'get_strategy', 'is_chief', 'num_workers',
             'chief_dir', 'shard_policy', 'WorkerLostError', 'STRATEGIES',
             'COLLECTIVE_TIMEOUT_SECONDS'),
    **_names('cluster', 'read_tf_config', 'is_chief_task', 'wait_for_peers',
             'TFConfigError', 'ClusterTimeoutError',
             'CLUSTER_TIMEOUT_SECONDS'),
    **_names('lock', 'LockedError'),
    **_names('checkpoints', 'NameBasedCheckpointManager',
             'checkpoint_variables', 'GLOBAL_STEP', 'OPTIMIZER_PREFIX',
             'read_global_step'),
    **_names('run', 'Run'),
    **_names('summaries', 'write_scalar'),
    restore_by_name='densenet.weights.checkpoints',
    RestoreReport='densenet.weights.checkpoints',
)

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
