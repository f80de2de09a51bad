"""Training and evaluating DenseNet classifiers: the paper's CIFAR recipe.

    from densenet import classification, datasets

    datasets.create_tfrecords('CIFAR10', 'cifar-10-python.tar.gz', 'data/c10')
    results = classification.train('data/c10', 'runs/c10+',
                                   model='densenet_bc_100_k12', augment=True)
    results['test']['top1_error']          # the paper: 0.0451 on C10+

The defaults are the recipe of Huang et al. (CVPR 2017), Section 4.2: SGD
with Nesterov momentum 0.9, batch 64, learning rate 0.1 divided by 10 at 50%
and 75% of 300 epochs, weight decay 1e-4, dropout 0.2 after each convolution
when training without augmentation (none with it). Every one is an argument.

Training runs on `densenet.training.Trainer` (the project's one trainer:
tf.distribute, checkpoints every N steps and resume, tqdm progress,
TensorBoard summaries, NaN stop), which writes into `train_dir`:

    train_dir/
      config.json          the run's settings (read back by `evaluate`)
      model.ckpt-<step>.*  checkpoints with the slim variable names
      train/, eval/        TensorBoard events (loss, learning rate, error)
      results.json         final top-1 error on the evaluation split

Models: any name of `densenet.MODELS` (e.g. 'densenet_bc_100_k12',
'densenet_121'), or a CIFAR DenseNet spelled the same way with any depth and
growth rate: 'densenet_<L>_k<k>' or 'densenet_bc_<L>_k<k>' (e.g.
'densenet_bc_10_k4', a tiny one for tests).
"""

import functools
import json
import os
import re
import time

import numpy as np
import tensorflow as tf
import tf_keras
import tf_slim as slim

import densenet
from densenet import training
from densenet.datasets import pipeline
from densenet.datasets import tfrecords

# The paper's recipe (Huang et al. 2017, Section 4.2).
DEFAULTS = {
    'batch_size': 64,
    'epochs': 300,
    'learning_rate': 0.1,
    'learning_rate_decay_fractions': (0.5, 0.75),
    'learning_rate_decay': 0.1,
    'momentum': 0.9,
    'nesterov': True,
    'weight_decay': 1e-4,
    'dropout_rate_without_augmentation': 0.2,
}

CONFIG_FILE = 'config.json'
RESULTS_FILE = 'results.json'
_CIFAR_NAME = re.compile(r'^densenet_(bc_)?(\d+)_k(\d+)$')


def model_fn(name):
  """The constructor of model `name` (see the module docstring).

  Returns:
    `fn(images, num_classes, is_training, dropout_rate) -> (logits,
    end_points)`, its variables under the scope `name`.

  Raises:
    ValueError: If `name` is neither in `densenet.MODELS` nor a CIFAR
      DenseNet name.
  """
  if name in densenet.MODELS:
    return densenet.MODELS[name]
  match = _CIFAR_NAME.match(name)
  if match:
    return functools.partial(
        densenet.densenet_cifar, depth=int(match.group(2)),
        growth_rate=int(match.group(3)), bc=bool(match.group(1)), scope=name)
  raise ValueError('Unknown model %r; use one of %s, or densenet_<L>_k<k> / '
                   'densenet_bc_<L>_k<k> for a CIFAR DenseNet.' %
                   (name, ', '.join(sorted(densenet.MODELS))))


def make_net_fn(model, num_classes, dropout_rate=0.0,
                weight_decay=DEFAULTS['weight_decay']):
  """`net_fn(images, is_training) -> logits` for `densenet.training`.

  Args:
    model: A model name (see `model_fn`).
    num_classes: Number of classes of the logits.
    dropout_rate: Dropout after each convolution.
    weight_decay: L2 weight decay of the convolution kernels (slim's
      `l2_regularizer`: `weight_decay * sum(w ** 2) / 2`, whose gradient is
      the `weight_decay * w` of SGD weight decay).

  Returns:
    A function mapping `[batch, height, width, 3]` normalized images to
    `[batch, num_classes]` logits.
  """
  constructor = model_fn(model)

  def net_fn(images, is_training):
    with slim.arg_scope(densenet.densenet_arg_scope(
        weight_decay=weight_decay)):
      logits, _ = constructor(images, num_classes=num_classes,
                              is_training=is_training,
                              dropout_rate=dropout_rate)
    return logits

  return net_fn


def step_learning_rate(base_learning_rate, boundaries, decay=0.1):
  """A step schedule: `base * decay ** (number of boundaries <= step)`.

  Args:
    base_learning_rate: The rate before the first boundary.
    boundaries: Increasing global steps; at step `boundaries[i]` (the
      `boundaries[i] + 1`-th update) the rate is multiplied by `decay`.
    decay: The factor applied at each boundary.

  Returns:
    `fn(step) -> learning rate` (float32 scalar Tensor), as
    `densenet.training.Trainer` takes it.
  """
  boundaries = [int(b) for b in boundaries]
  if boundaries != sorted(boundaries):
    raise ValueError('boundaries must be increasing, got %r.' % (boundaries,))

  def learning_rate(step):
    step = tf.cast(step, tf.int64)
    num_decays = tf.add_n([tf.cast(step >= b, tf.float32)
                           for b in boundaries] + [tf.constant(0.0)])
    return base_learning_rate * tf.pow(tf.constant(decay, tf.float32),
                                       num_decays)

  return learning_rate


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
    `fn(step) -> learning rate`; see `step_learning_rate`.
  """
  num_steps = steps_per_epoch * epochs
  return step_learning_rate(
      base_learning_rate, [int(f * num_steps) for f in decay_fractions],
      decay)


def train(data_dir, train_dir, model='densenet_bc_100_k12', augment=True,
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
          sync_batch_norm=False):
  """Trains a classifier on a TFRecord dataset, then evaluates it.

  Re-running with the same `train_dir` resumes from its latest checkpoint.
  The run's settings are kept in `config.json`; a resumed run may change
  the length and the schedule (e.g. train more epochs; the learning-rate
  boundaries are recomputed for the new length), but a different model,
  dataset, batch size, augmentation, dropout, weight decay or normalization
  raises an error instead of silently mixing two runs.

  Args:
    data_dir: A directory written by `densenet.datasets` (CIFAR or an image
      folder): its 'train' split is trained on.
    train_dir: Where checkpoints, summaries, config.json and results.json go.
    model: A model name (see `model_fn`).
    augment: The standard augmentation (the paper's "+" datasets).
    batch_size: Global batch size (over all replicas).
    epochs: Epochs of training; the learning rate decays at
      `learning_rate_decay_fractions` of them.
    num_steps: Optional total steps overriding `epochs` (the schedule is
      then over `num_steps`).
    learning_rate, learning_rate_decay_fractions, learning_rate_decay: The
      step schedule (see `paper_learning_rate`).
    momentum, nesterov: SGD momentum.
    weight_decay: L2 weight decay (see `make_net_fn`).
    dropout_rate: Dropout after each convolution; default 0.2 without
      augmentation and 0 with it (the paper).
    normalization: Input normalization (see
      `densenet.datasets.pipeline.normalizer`); default the dataset's
      (CIFAR: its training-set mean/std; folders: 'torch').
    initial_checkpoint: Optional checkpoint (e.g. converted ImageNet weights)
      to start from on a fresh run; every variable but the logits must be in
      it (fine-tuning).
    eval_split: Split evaluated during and after training; default 'test',
      or 'validation' for datasets without a test split; None if neither.
    eval_every_epochs: Evaluate (TensorBoard `eval/`) every this many
      epochs; 0 only at the end.
    checkpoint_every: Steps between checkpoints.
    strategy: A `tf.distribute.Strategy` (default `training.get_strategy()`).
    shuffle_buffer: Shuffle buffer in images.
    seed: Optional seed of the shuffle and augmentation.
    progress: Whether to show progress bars.
    sync_batch_norm: Whether batch norm uses the statistics of the global
      batch across replicas (see `densenet.training.Trainer`).

  Returns:
    The results dict also written to `train_dir/results.json`: `config`,
    `start_step` (where this call resumed), `global_step`, `final_loss`,
    `train_seconds`, `checkpoint`, and under the name of the evaluation
    split its `evaluate_model` metrics (top-1 error ...). Only the returned
    dict has `losses`, the data loss of every step of this call.
  """
  metadata = tfrecords.read_metadata(data_dir)
  strategy = strategy or training.get_strategy()
  # Multi-worker: only the chief writes to train_dir (see chief_dir).
  train_dir = training.chief_dir(train_dir, strategy)
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
  config = {
      'data_dir': os.path.abspath(data_dir),
      'dataset': metadata['dataset'],
      'num_classes': metadata['num_classes'],
      'model': model,
      'augment': bool(augment),
      'batch_size': batch_size,
      'steps_per_epoch': steps_per_epoch,
      'num_steps': num_steps,
      'learning_rate': learning_rate,
      'learning_rate_boundaries': [int(f * num_steps) for f in
                                   learning_rate_decay_fractions],
      'learning_rate_decay': learning_rate_decay,
      'momentum': momentum,
      'nesterov': bool(nesterov),
      'weight_decay': weight_decay,
      'dropout_rate': (dropout_rate if dropout_rate is not None else
                       0.0 if augment else
                       DEFAULTS['dropout_rate_without_augmentation']),
      'normalization': normalization or metadata['normalization'],
      'initial_checkpoint': initial_checkpoint,
  }
  config = _save_or_check_config(train_dir, config)
  trainer = training.Trainer(
      make_net_fn(model, config['num_classes'], config['dropout_rate'],
                  weight_decay),
      _cross_entropy, train_dir, batch_size, strategy=strategy,
      optimizer_fn=lambda: tf_keras.optimizers.SGD(
          learning_rate, momentum=momentum, nesterov=nesterov),
      learning_rate_fn=step_learning_rate(
          learning_rate, config['learning_rate_boundaries'],
          learning_rate_decay),
      checkpoint_every=checkpoint_every,
      init_fn=(functools.partial(_restore_backbone, model=model,
                                 checkpoint=initial_checkpoint)
               if initial_checkpoint else None),
      progress=progress, sync_batch_norm=sync_batch_norm)
  dataset = pipeline.input_pipeline(
      tfrecords.read_split(data_dir, 'train', metadata), batch_size,
      config['normalization'], is_training=True, augment_images=augment,
      shuffle_buffer=shuffle_buffer, repeat=True, seed=seed)
  eval_dataset = eval_split and pipeline.input_pipeline(
      tfrecords.read_split(data_dir, eval_split, metadata), batch_size,
      config['normalization'], is_training=False)
  trainer.build(next(iter(dataset))[0])  # Restores the latest checkpoint.
  eval_writer = tf.summary.create_file_writer(os.path.join(train_dir, 'eval'))
  chunk = steps_per_epoch * eval_every_epochs or num_steps
  started, result, metrics = time.time(), None, None
  step = start_step = int(trainer.global_step.numpy())
  losses = []
  while step < num_steps or result is None:
    target = min(num_steps, (step // chunk + 1) * chunk)
    result = trainer.train(dataset, target, num_files=len(
        tfrecords.split_info(metadata, 'train')['files']))
    step = result.global_step
    losses += result.losses
    if eval_dataset is not None and (step % chunk == 0 or step == num_steps):
      metrics = evaluate_model(trainer.model, eval_dataset)
      with eval_writer.as_default():
        training.write_scalar('top1_error', metrics['top1_error'], step)
        training.write_scalar('loss', metrics['loss'], step)
      eval_writer.flush()
  results = {
      'config': config,
      'start_step': start_step,
      'global_step': step,
      'final_loss': losses[-1] if losses else None,
      'train_seconds': time.time() - started,
      'checkpoint': result.checkpoint,
  }
  if metrics is not None:
    results[eval_split] = metrics
  _write_json(os.path.join(train_dir, RESULTS_FILE), results)
  return dict(results, losses=losses)


def evaluate_model(model, dataset):
  """Top-1 error, accuracy and mean cross-entropy of `model` on `dataset`.

  Args:
    model: A `densenet.training.SlimModel` (or any callable `model(images,
      training=False) -> [batch, num_classes]` logits).
    dataset: Finite `tf.data.Dataset` of `(images, labels)` batches.

  Returns:
    {'top1_error', 'top1_accuracy', 'loss', 'num_examples'} (Python floats
    and int).
  """

  @tf.function
  def batch_metrics(images, labels):
    logits = model(images, training=False)
    labels = tf.cast(labels, tf.int64)
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, -1), labels), tf.int64))
    loss = tf.reduce_sum(_cross_entropy(labels, logits))
    return correct, loss

  correct, loss, count = 0, 0.0, 0
  for images, labels in dataset:
    batch_correct, batch_loss = batch_metrics(images, labels)
    correct += int(batch_correct)
    loss += float(batch_loss)
    count += int(labels.shape[0])
  if not count:
    raise ValueError('The evaluation dataset is empty.')
  accuracy = correct / count
  return {'top1_error': 1.0 - accuracy, 'top1_accuracy': accuracy,
          'loss': loss / count, 'num_examples': count}


def evaluate(train_dir=None, checkpoint=None, data_dir=None, split=None,
             model=None, num_classes=None, normalization=None, batch_size=100,
             output=None):
  """Evaluates a checkpoint: top-1 error on a dataset split.

  Everything not given is taken from `train_dir/config.json` (written by
  `train`), and the checkpoint defaults to the latest in `train_dir`.

  Args:
    train_dir: A training directory of `train`, or None.
    checkpoint: A checkpoint prefix or directory (default: `train_dir`).
    data_dir: A `densenet.datasets` directory (default: the training one).
    split: The split (default 'test', or 'validation' if there is no test).
    model: Model name (see `model_fn`).
    num_classes: Classes of the logits (default: the dataset's).
    normalization: Input normalization (default: training's, or the
      dataset's).
    batch_size: Evaluation batch size.
    output: Optional path of a JSON file for the results.

  Returns:
    {'top1_error', 'top1_accuracy', 'loss', 'num_examples', 'checkpoint',
    'global_step', 'model', 'data_dir', 'split'}.

  Raises:
    ValueError: If a setting is missing, or the checkpoint lacks a variable
      of the model or has another shape for it.
  """
  config = {}
  if train_dir is not None:
    config = _read_json(os.path.join(train_dir, CONFIG_FILE))
  checkpoint = checkpoint or train_dir
  data_dir = data_dir or config.get('data_dir')
  model = model or config.get('model')
  for name, value in (('checkpoint', checkpoint), ('data_dir', data_dir),
                      ('model', model)):
    if value is None:
      raise ValueError('%s is required (or a train_dir whose config.json '
                       'has it).' % name)
  if os.path.isdir(checkpoint):
    directory, checkpoint = checkpoint, tf.train.latest_checkpoint(checkpoint)
    if checkpoint is None:
      raise ValueError('No checkpoint in %r.' % (directory,))
  metadata = tfrecords.read_metadata(data_dir)
  if split is None:
    split = 'test' if 'test' in metadata['splits'] else 'validation'
  num_classes = num_classes or config.get('num_classes') or (
      metadata['num_classes'])
  normalization = normalization or config.get('normalization') or (
      metadata['normalization'])
  dataset = pipeline.input_pipeline(
      tfrecords.read_split(data_dir, split, metadata), batch_size,
      normalization, is_training=False)
  net = training.SlimModel(make_net_fn(model, num_classes))
  net(next(iter(dataset))[0][:1], training=False)  # Creates the variables.
  report = training.restore_by_name(net.variables_by_name(), checkpoint)
  if report.missing or report.mismatched:
    raise ValueError('Checkpoint %s does not match %s with %d classes: '
                     'missing %s; other shape %s.' %
                     (checkpoint, model, num_classes, report.missing[:5],
                      report.mismatched[:5]))
  results = evaluate_model(net, dataset)
  reader = tf.train.load_checkpoint(checkpoint)
  results.update(
      checkpoint=checkpoint, model=model, data_dir=os.path.abspath(data_dir),
      split=split,
      global_step=(int(reader.get_tensor(training.GLOBAL_STEP))
                   if reader.has_tensor(training.GLOBAL_STEP) else None))
  if output:
    _write_json(output, results)
  return results


def _cross_entropy(labels, logits):
  """Per-example softmax cross-entropy, `[batch]`."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.cast(labels, tf.int64), logits)


def _restore_backbone(net, model, checkpoint):
  """Fine-tuning start: every variable but the logits from `checkpoint`."""
  logits_scope = model + '/logits'  # Every model's scope is its name.
  report = training.restore_by_name(net.variables_by_name(), checkpoint,
                                    exclude_scopes=[logits_scope])
  missing = [n for n in report.missing if not n.startswith(logits_scope)]
  if missing or report.mismatched:
    raise ValueError('initial_checkpoint %s does not fit %s: missing %s; '
                     'other shape %s.' % (checkpoint, model, missing[:5],
                                          report.mismatched[:5]))
  print('Restored %d variables from %s (the logits start fresh).' %
        (len(report.restored), checkpoint))


# Settings a resumed run must share with the checkpoints it continues.
_FIXED_SETTINGS = ('dataset', 'num_classes', 'model', 'batch_size', 'augment',
                   'dropout_rate', 'weight_decay', 'normalization')


def _save_or_check_config(train_dir, config):
  """Writes config.json; on a resumed run first checks `_FIXED_SETTINGS`."""
  path = os.path.join(train_dir, CONFIG_FILE)
  config = json.loads(json.dumps(config))  # Tuples -> lists, as in the file.
  if os.path.isfile(path):
    saved = _read_json(path)
    different = [k for k in _FIXED_SETTINGS if saved.get(k) != config[k]]
    if different:
      raise ValueError(
          '%s was trained with other settings (%s): %s; use another '
          'train_dir or the same settings.' % (
              train_dir, ', '.join(different),
              '; '.join('%s=%r (now %r)' % (k, saved.get(k), config[k])
                        for k in different)))
  _write_json(path, config)
  return config


def _read_json(path):
  if not os.path.isfile(path):
    raise FileNotFoundError('%s does not exist.' % (path,))
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _write_json(path, data):
  """Writes `data` as JSON atomically (temporary file + os.replace)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
    f.write('\n')
  os.replace(path + '.tmp', path)


def _json_default(value):
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError('%r is not JSON serializable' % (value,))
