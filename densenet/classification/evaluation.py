"""Evaluating DenseNet classifiers: top-1 error of a model or a checkpoint.

    from densenet import classification
    classification.evaluate(train_dir='runs/c10+')   # its config and data

`evaluate_model` scores a live model on a `tf.data` split; `evaluate` builds
the network of a checkpoint (settings from the training run's config.json)
and scores it on a `densenet.datasets` split.
"""

import os

import tensorflow as tf

from densenet import spec as spec_lib
from densenet.datasets import pipeline
from densenet.datasets import tfrecords
from densenet.training import checkpoints as checkpoints_lib
from densenet.training import rundir
from densenet.training import slim_model
from densenet.weights import checkpoints

CONFIG_FILE = rundir.CONFIG_FILE

def evaluate_model(model, dataset, should_stop=None):
  """Top-1 error, accuracy and mean cross-entropy of `model` on `dataset`.

  Args:
    model: A `densenet.training.SlimModel` (or any callable `model(images,
      training=False) -> [batch, num_classes]` logits).
    dataset: Finite `tf.data.Dataset` of `(images, labels)` batches.
    should_stop: Optional `() -> bool`, asked before every batch; when True
      the evaluation stops and returns None (training's stop on a signal).

  Returns:
    {'top1_error', 'top1_accuracy', 'loss', 'num_examples'} (Python floats
    and int), or None if `should_stop` cut it short.
  """

  @tf.function
  def batch_metrics(images, labels):
    logits = model(images, training=False)
    labels = tf.cast(labels, tf.int64)
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, -1), labels), tf.int64))
    loss = tf.reduce_sum(cross_entropy(labels, logits))
    return correct, loss

  correct, loss, count = 0, 0.0, 0
  for images, labels in dataset:
    if should_stop is not None and should_stop():
      return None
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
    model: An architecture name or config (see `densenet.spec.resolve`).
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
    config = rundir.read_json(os.path.join(train_dir, CONFIG_FILE))
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
  spec = spec_lib.ModelSpec.from_config(config, architecture=model,
                                        num_classes=num_classes,
                                        normalization=normalization)
  net = slim_model.SlimModel(spec.net_fn())
  net(next(iter(dataset))[0][:1], training=False)  # Creates the variables.
  checkpoints.restore_by_name(net.variables_by_name(), checkpoint).check(
      'Checkpoint %s does not match %s with %d classes' %
      (checkpoint, model, num_classes))
  results = evaluate_model(net, dataset)
  reader = tf.train.load_checkpoint(checkpoint)
  results.update(
      checkpoint=checkpoint, model=model, data_dir=os.path.abspath(data_dir),
      split=split,
      global_step=(int(reader.get_tensor(checkpoints_lib.GLOBAL_STEP))
                   if reader.has_tensor(checkpoints_lib.GLOBAL_STEP) else None))
  if output:
    rundir.write_json(output, results)
  return results


def cross_entropy(labels, logits):
  """Per-example softmax cross-entropy, `[batch]`."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.cast(labels, tf.int64), logits)
