"""Training and evaluating DenseNet classifiers: the paper's CIFAR recipe.

    from densenet import classification, datasets

    datasets.create_tfrecords('CIFAR10', 'cifar-10-python.tar.gz', 'data/c10')
    results = classification.train('data/c10', 'runs/c10+',
                                   architecture='densenet_bc_100_k12',
                                   augment=True)
    results['test']['top1_error']          # the paper: 0.0451 on C10+

The defaults are the recipe of Huang et al. (CVPR 2017), Section 4.2: SGD
with Nesterov momentum 0.9, batch 64, learning rate 0.1 divided by 10 at 50%
and 75% of 300 epochs, weight decay 1e-4, dropout 0.2 after each convolution
when training without augmentation (none with it). Every one is an argument.

Training runs on `densenet.training.Trainer` (the project's one trainer:
tf.distribute, checkpoints every N steps and resume, tqdm progress,
TensorBoard summaries, NaN stop), which writes into `model_dir`:

    model_dir/
      config.json          the run's settings (read back by `evaluate`)
      model.ckpt-<step>.*  checkpoints with the slim variable names
      train/, eval/        TensorBoard events (loss, learning rate, error)
      results.json         final top-1 error on the evaluation split

Architectures: any name of `densenet.MODELS` (e.g. 'densenet_bc_100_k12',
'densenet_121'), or a CIFAR DenseNet spelled the same way with any depth and
growth rate: 'densenet_<L>_k<k>' or 'densenet_bc_<L>_k<k>' (e.g.
'densenet_bc_10_k4', a tiny one for tests).
"""

import functools
import os
import time

import tensorflow as tf
import tf_keras

from densenet import spec as spec_lib
from densenet._env import lazy
from densenet.classification import config as config_lib
from densenet.classification import evaluation
from densenet.classification import recipe
from densenet.datasets import pipeline
from densenet.datasets import records
from densenet.datasets import tfrecords
from densenet.training import distribute
from densenet.training import lock
from densenet.training import run as run_lib
from densenet.training import rundir
from densenet.training import schedules
from densenet.training import signals
from densenet.training import summaries
from densenet.training import trainer as trainer_lib
from densenet.weights import checkpoints

# The paper's recipe (Huang et al. 2017, Section 4.2).
DEFAULTS = recipe.PAPER_RECIPE

CONFIG_FILE = config_lib.CONFIG_FILE
RESULTS_FILE = 'results.json'


def paper_learning_rate(steps_per_epoch, epochs=DEFAULTS['epochs'],
                        base_learning_rate=DEFAULTS['learning_rate'],
                        decay_fractions=DEFAULTS[
                            'learning_rate_decay_fractions'],
                        decay=DEFAULTS['learning_rate_decay']):
  """The paper's schedule: 0.1, divided by 10 at 50% and 75% of training.

  With CIFAR's 50,000 images at batch 64 (781 steps per epoch, the last
  partial batch dropped) and 300 epochs: 0.1 for steps [0, 117150), 0.01 for
  [117150, 175725), 0.001 from 175725 on.

  Returns:
    `fn(step) -> learning rate`; see `densenet.training.schedules.step`.
  """
  num_steps = steps_per_epoch * epochs
  return schedules.step(
      base_learning_rate, [int(f * num_steps) for f in decay_fractions],
      decay)


@lazy.renamed_arguments(train_dir='model_dir', model='architecture')
@records.names_corrupt_shards
@lock.locks('model_dir', 'model directory')
def train(data_dir, model_dir, architecture='densenet_bc_100_k12',
          augment=True,
          batch_size=DEFAULTS['batch_size'], epochs=DEFAULTS['epochs'],
          num_steps=None, learning_rate=DEFAULTS['learning_rate'],
          learning_rate_decay_fractions=DEFAULTS[
              'learning_rate_decay_fractions'],
          learning_rate_decay=DEFAULTS['learning_rate_decay'],
          momentum=DEFAULTS['momentum'], nesterov=DEFAULTS['nesterov'],
          weight_decay=DEFAULTS['weight_decay'], dropout_rate=None,
          normalization=None, initial_checkpoint=None, eval_split=None,
          eval_every_epochs=10, checkpoint_every=1000, strategy=None,
          shuffle_buffer=10000, seed=None, progress=True,
          memory_efficient=None, sync_batch_norm=False, log_every=0):
  """Trains a classifier on a TFRecord dataset, then evaluates it.

  Re-running with the same `model_dir` resumes from its latest checkpoint.
  The run's settings are kept in `config.json`; a resumed run may change
  the length and the schedule (e.g. train more epochs; the learning-rate
  boundaries are recomputed for the new length), but a different model,
  dataset, batch size, augmentation, dropout, weight decay or what the
  weights expect (normalization, batch-norm epsilon, stem padding) raises an
  error instead of silently mixing two runs. The config is written once the
  model has been built (and restored), so a failed first start does not lock
  `model_dir` (`densenet.training.run.Run`, shared with segmentation).

  Fine-tuning: the weights of `initial_checkpoint` define the contract. If
  its `densenet_metadata` (a `densenet.weights.convert` checkpoint) records a
  batch-norm epsilon, stem padding and input normalization, the run builds
  and normalizes with them and records them in its config.

  Args:
    data_dir: A directory written by `densenet.datasets` (CIFAR or an image
      folder): its 'train' split is trained on.
    model_dir: Where checkpoints, summaries, config.json and results.json go.
    architecture: An architecture name or `densenet_X` config dict (see
      `densenet.spec.resolve`).
    augment: The standard augmentation (the paper's "+" datasets).
    batch_size: Global batch size (over all replicas).
    epochs: Epochs of training; the learning rate decays at
      `learning_rate_decay_fractions` of them.
    num_steps: Optional total steps overriding `epochs` (the schedule is
      then over `num_steps`).
    learning_rate, learning_rate_decay_fractions, learning_rate_decay: The
      step schedule (see `paper_learning_rate`).
    momentum, nesterov: SGD momentum.
    weight_decay: L2 weight decay of the convolution kernels (slim's
      `l2_regularizer`: `weight_decay * sum(w ** 2) / 2`, whose gradient is
      the `weight_decay * w` of SGD weight decay).
    dropout_rate: Dropout after each convolution; default 0.2 without
      augmentation and 0 with it (the paper).
    normalization: Input normalization (see
      `densenet.preprocessing.normalizer`); default the initial
      checkpoint's, else a resumed run's, else the dataset's (CIFAR: its
      training-set mean/std; folders: 'torch').
    initial_checkpoint: Optional checkpoint (e.g. converted ImageNet weights)
      to start from on a fresh run; every variable but the logits must be in
      it (fine-tuning), and its metadata sets the contract (see above).
    eval_split: Split evaluated during and after training; default 'test',
      or 'validation' for datasets without a test split; None if neither.
    eval_every_epochs: Evaluate (TensorBoard `eval/`) every this many
      epochs; 0 only at the end.
    checkpoint_every: Steps between checkpoints.
    strategy: A `tf.distribute.Strategy` (default `distribute.get_strategy()`).
    shuffle_buffer: Shuffle buffer in images.
    seed: Optional seed of the shuffle and augmentation.
    progress: Whether to show progress bars.
    memory_efficient: Whether dense units recompute in the backward pass
      (same numbers, less memory); None keeps a resumed run's setting (else
      False). Recorded in the config.
    sync_batch_norm: Whether batch norm uses the statistics of the global
      batch across replicas (see `densenet.training.Trainer`).
    log_every: Steps between 'step N loss L' lines on stderr (0: none).
    The 0.1 names `train_dir` (`model_dir`) and `model` (`architecture`)
    still work for one release.

  Returns:
    The results dict also written to `model_dir/results.json`: `config`,
    `start_step` (where this call resumed), `global_step`, `final_loss`,
    `train_seconds`, `checkpoint`, and under the name of the evaluation
    split its `evaluate_model` metrics (top-1 error ...). Only the returned
    dict has `losses`, the data loss of every step of this call.

  Raises:
    densenet.training.Interrupted: On SIGTERM or SIGINT, during training
      (the step reached is saved) or during an evaluation between epochs
      (cut short; its step is already saved). Re-running resumes.
  """
  metadata = tfrecords.read_metadata(data_dir)
  strategy = strategy or distribute.get_strategy()
  num_train = tfrecords.split_info(metadata, 'train')['num_examples']
  if batch_size < 1 or batch_size > num_train:
    raise ValueError('batch_size must be in [1, %d] (the training images), '
                     'got %r.' % (num_train, batch_size))
  steps_per_epoch = num_train // batch_size
  if num_steps is None:
    num_steps = steps_per_epoch * epochs
  if eval_split is None:
    eval_split = next((s for s in ('test', 'validation')
                       if s in metadata['splits']), None)
  run = run_lib.Run(model_dir, strategy, initial_checkpoint)
  settings = run.settings(
      {'normalization': normalization, 'batch_norm_epsilon': None,
       'root_padding': None, 'memory_efficient': memory_efficient},
      dict(spec_lib.DEFAULTS, normalization=metadata['normalization']))
  config = config_lib.ClassificationConfig(
      spec=spec_lib.ModelSpec(architecture, metadata['num_classes'],
                              **settings),
      data_dir=os.path.abspath(data_dir),
      dataset=metadata['dataset'],
      augment=bool(augment),
      batch_size=batch_size,
      steps_per_epoch=steps_per_epoch,
      num_steps=num_steps,
      learning_rate=learning_rate,
      learning_rate_boundaries=[int(f * num_steps) for f in
                                learning_rate_decay_fractions],
      learning_rate_decay=learning_rate_decay,
      momentum=momentum,
      nesterov=bool(nesterov),
      weight_decay=weight_decay,
      dropout_rate=(dropout_rate if dropout_rate is not None else
                    0.0 if augment else
                    DEFAULTS['dropout_rate_without_augmentation']),
      initial_checkpoint=initial_checkpoint)
  directory = run.prepare(config)  # The chief's: model_dir.
  spec = config.spec
  trainer = trainer_lib.Trainer(
      spec.net_fn(weight_decay=weight_decay,
                  dropout_rate=config.dropout_rate),
      evaluation.cross_entropy, directory, batch_size, strategy=strategy,
      optimizer_fn=lambda: tf_keras.optimizers.SGD(
          learning_rate, momentum=momentum, nesterov=nesterov),
      learning_rate_fn=schedules.step(
          learning_rate, config.learning_rate_boundaries,
          learning_rate_decay),
      checkpoint_every=checkpoint_every,
      init_fn=(functools.partial(_restore_backbone, spec=spec,
                                 checkpoint=initial_checkpoint)
               if initial_checkpoint else None),
      progress=progress, sync_batch_norm=sync_batch_norm,
      log_every=log_every)
  dataset = pipeline.input_pipeline(
      tfrecords.read_split(data_dir, 'train', metadata), batch_size,
      spec.normalization, is_training=True, augment_images=augment,
      shuffle_buffer=shuffle_buffer, repeat=True, seed=seed)
  eval_dataset = eval_split and pipeline.input_pipeline(
      tfrecords.read_split(data_dir, eval_split, metadata), batch_size,
      spec.normalization, is_training=False)
  # Restores the latest checkpoint, then records the config.
  _, written = run.start(trainer, next(iter(dataset))[0], config)
  eval_writer = tf.summary.create_file_writer(os.path.join(directory, 'eval'))
  chunk = steps_per_epoch * eval_every_epochs or num_steps
  started, result, metrics = time.time(), None, None
  step = start_step = int(trainer.global_step.numpy())
  losses = []
  # One stop request for the whole loop: a signal during an evaluation
  # between epochs stops too (Trainer.train uses this request).
  with signals.stop_on_signals() as request:
    # One worker alone must not stop (the others would wait for it in the
    # next step): with several, the request goes into that step instead
    # (see Trainer.train), and evaluations run to their end.
    should_stop = ((lambda: request.signal_name is not None)
                   if distribute.num_workers(strategy) == 1 else None)
    while step < num_steps or result is None:
      target = min(num_steps, (step // chunk + 1) * chunk)
      result = trainer.train(dataset, target, num_files=len(
          tfrecords.split_info(metadata, 'train')['files']))
      step = result.global_step
      losses += result.losses
      if eval_dataset is not None and (step % chunk == 0 or
                                       step == num_steps):
        metrics = evaluation.evaluate_model(trainer.model, eval_dataset,
                                 should_stop=should_stop)
        if metrics is None:
          raise trainer_lib.Interrupted(request.signal_name, step,
                                     result.checkpoint)
        with eval_writer.as_default():
          summaries.write_scalar('top1_error', metrics['top1_error'], step)
          summaries.write_scalar('loss', metrics['loss'], step)
        eval_writer.flush()
  results = {
      'config': written,
      'start_step': start_step,
      'global_step': step,
      'final_loss': losses[-1] if losses else None,
      'train_seconds': time.time() - started,
      'checkpoint': result.checkpoint,
  }
  if metrics is not None:
    results[eval_split] = metrics
  rundir.write_json(os.path.join(directory, RESULTS_FILE), results)
  return dict(results, losses=losses)


def _restore_backbone(net, spec, checkpoint):
  """Fine-tuning start: every variable but the logits from `checkpoint`."""
  logits_scope = spec.scope + '/logits'
  report = checkpoints.restore_by_name(net.variables_by_name(), checkpoint,
                                    exclude_scopes=[logits_scope])
  report.check('initial_checkpoint %s does not fit %s' %
               (checkpoint, spec.architecture), allow_missing=[logits_scope],
               checkpoint=checkpoint)
  print('Restored %d variables from %s (the logits start fresh).' %
        (len(report.restored), checkpoint))
