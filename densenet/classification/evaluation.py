"""Evaluating DenseNet classifiers: top-1 error of a model or a checkpoint.

    from densenet import classification
    classification.evaluate(model_dir='runs/c10+')   # its config and data
    classification.evaluate_folder('photos/test', checkpoint='runs/photos')

`evaluate_model` scores a live model on a `tf.data` split; `evaluate` builds
the network of a checkpoint (settings from what the checkpoint records or
its run's config.json) and scores it on a `densenet.datasets` split;
`evaluate_folder` scores weights on a folder of class sub-folders (a test
set kept as images) with per-class accuracy and a confusion matrix.
"""

import os

import numpy as np
import tensorflow as tf
import tqdm

from densenet import spec as spec_lib
from densenet._env import lazy
from densenet.classification import pictures
from densenet.datasets import image_folder as image_folder_lib
from densenet.datasets import pipeline
from densenet.datasets import records
from densenet.datasets import tfrecords
from densenet.serve import pretrained
from densenet.training import rundir
from densenet.training import slim_model
from densenet.weights import checkpoints
from densenet.weights import convert
from densenet.weights import runs

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


@lazy.renamed_arguments(train_dir='model_dir', model='architecture')
@records.names_corrupt_shards
def evaluate(model_dir=None, checkpoint=None, data_dir=None, split=None,
             architecture=None, num_classes=None, normalization=None,
             batch_size=100, output=None):
  """Evaluates a checkpoint: top-1 error on a dataset split.

  Everything not given is taken from `model_dir/config.json` (written by
  `train`), and the checkpoint defaults to the latest in `model_dir`.

  Args:
    model_dir: A model directory of `train`, or None.
    checkpoint: A checkpoint prefix or directory (default: `model_dir`).
    data_dir: A `densenet.datasets` directory (default: the training one).
    split: The split (default 'test', or 'validation' if there is no test).
    architecture: An architecture name or config (see
      `densenet.spec.resolve`).
    num_classes: Classes of the logits (default: the dataset's).
    normalization: Input normalization (default: training's, or the
      dataset's).
    batch_size: Evaluation batch size.
    output: Optional path of a JSON file for the results.
    (0.1's names `train_dir` and `model` still work for one release.)

  Returns:
    {'top1_error', 'top1_accuracy', 'loss', 'num_examples', 'checkpoint',
    'global_step', 'model', 'data_dir', 'split'}.

  Raises:
    ValueError: If a setting is missing, or the checkpoint lacks a variable
      of the model or has another shape for it.
  """
  if model_dir is not None:  # Its config.json must be there.
    rundir.read_json(os.path.join(model_dir, CONFIG_FILE))
  if checkpoint is None and model_dir is None:
    raise ValueError('checkpoint is required (or a model_dir whose '
                     'config.json has it).')
  # What the checkpoint records, or its run's config.json (issue 22 #7).
  checkpoint, described = runs.describe(checkpoint or model_dir, model_dir)
  if described['task'] == 'segmentation':
    runs.check_classifier(described, checkpoint)
  data_dir = data_dir or described.get('data_dir')
  model = architecture or described['model']
  for name, value in (('data_dir', data_dir), ('architecture', model)):
    if value is None:
      raise ValueError('%s is required (or a checkpoint or model_dir whose '
                       'config.json has it).' % name)
  metadata = tfrecords.read_metadata(data_dir)
  if split is None:
    split = 'test' if 'test' in metadata['splits'] else 'validation'
  num_classes = num_classes or described['num_classes'] or (
      metadata['num_classes'])
  if normalization is None and 'normalization' in described['recorded']:
    normalization = described['normalization']
  normalization = normalization or metadata['normalization']
  dataset = pipeline.input_pipeline(
      tfrecords.read_split(data_dir, split, metadata), batch_size,
      normalization, is_training=False)
  spec = spec_lib.ModelSpec.from_config(described, architecture=model,
                                        num_classes=num_classes,
                                        normalization=normalization)
  net = slim_model.SlimModel(spec.net_fn())
  net(next(iter(dataset))[0][:1], training=False)  # Creates the variables.
  checkpoints.restore_by_name(net.variables_by_name(), checkpoint).check(
      'Checkpoint %s does not match %s with %d classes' %
      (checkpoint, model, num_classes))
  results = evaluate_model(net, dataset)
  results.update(
      checkpoint=checkpoint, model=model, data_dir=os.path.abspath(data_dir),
      split=split, global_step=described['global_step'])
  if output:
    rundir.write_json(output, results)
  return results


def cross_entropy(labels, logits):
  """Per-example softmax cross-entropy, `[batch]`."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.cast(labels, tf.int64), logits)


@lazy.renamed_arguments(train_dir='model_dir', model='architecture')
def evaluate_folder(image_folder, checkpoint=None, model_dir=None,
                    architecture=None, image_size=None, batch_size=100,
                    output=None, confusion_png=None, progress=True):
  """Evaluates weights on a folder with one sub-folder of images per class.

  The sub-folders are named like the model's classes (those of its
  training dataset; a run trained on an image folder has its sub-folders'
  names). A class the model does not have is an error; a class of the model
  the folder lacks is fine (its row of the confusion matrix stays empty).
  Images are decoded and sized as training's image folder did
  (`densenet.datasets.image_folder`: shorter side resized to the training
  image size, centre square cropped) and no TFRecords are written.

  Args:
    image_folder: The folder (e.g. 'photos/test').
    checkpoint: Weights: anything `densenet.weights.convert.read_weights`
      reads, e.g. a training checkpoint or directory (default: `model_dir`).
    model_dir: The run directory whose config.json describes the
      checkpoint (default: the checkpoint's own directory).
    architecture: An architecture name or `densenet_X` config (default:
      what the checkpoint or its config.json records).
    image_size: Side images are resized and cropped to (default: the
      training image size, else 256 then the central 224).
    batch_size: Images per network run.
    output: Optional path of a JSON file for the results.
    confusion_png: Optional path of a PNG picture of the confusion matrix
      (`pictures.confusion_picture`).
    progress: Whether to show a progress bar (on stderr).
    (0.1's names `train_dir` and `model` still work for one release.)

  Returns:
    {'top1_accuracy', 'top1_error', 'top5_accuracy' (within the top
    min(5, classes)), 'loss' (mean cross-entropy), 'num_examples',
    'per_class' ({class: {'num_examples', 'correct', 'accuracy'}} for the
    folder's classes), 'missing_classes' (the model's classes the folder
    lacks), 'classes' and 'confusion_matrix' (rows true, columns predicted,
    over the classes that are in the folder or were predicted, in the
    model's order), 'image_folder', 'checkpoint', 'global_step', 'model',
    'image_size' ([resize, crop]), 'confusion_png'}.

  Raises:
    ValueError: For a folder class the model does not have, an image that
      cannot be decoded (named), or weights that are not a classifier's.
  """
  if checkpoint is None and model_dir is None:
    raise ValueError('checkpoint is required (or a model_dir).')
  if model_dir is not None:  # Its config.json must be there.
    rundir.read_json(os.path.join(model_dir, CONFIG_FILE))
  source = checkpoint or model_dir
  weights, metadata = convert.read_weights(source, architecture=architecture,
                                           run_dir=model_dir)
  runs.check_classifier(metadata, source)
  folder_classes, examples = image_folder_lib.list_images(image_folder)
  names = pretrained.names_of(metadata)
  unknown = [name for name in folder_classes if name not in names]
  if unknown:
    raise ValueError(
        '%s has class folder(s) %s that the model was not trained on; its '
        'classes are: %s.' % (image_folder, ', '.join(unknown),
                              ', '.join(names)))
  classifier = pretrained.Classifier(weights, metadata,
                                     architecture=architecture,
                                     resize_size=image_size,
                                     crop_size=image_size)
  try:
    logits = _folder_logits(classifier, [path for path, _ in examples],
                            batch_size, progress)
  finally:
    classifier.close()
  labels = np.array([names.index(folder_classes[label])
                     for _, label in examples], np.int64)
  results = classification_metrics(logits, labels, names)
  results.update(
      image_folder=os.path.abspath(image_folder),
      checkpoint=metadata.get('checkpoint') or str(source),
      global_step=metadata.get('global_step'), model=metadata['model'],
      image_size=[classifier.resize_size, classifier.crop_size],
      confusion_png=confusion_png and os.path.abspath(confusion_png))
  if confusion_png:
    with rundir.writing_to(os.path.dirname(results['confusion_png'])):
      pictures.save_confusion_picture(
          confusion_png, results['confusion_matrix'], results['classes'],
          title='%s: top-1 accuracy %.2f%% (%d images)' % (
              os.path.basename(os.path.normpath(image_folder)),
              100 * results['top1_accuracy'], results['num_examples']))
  if output:
    rundir.write_json(output, results)
  return results


def _folder_logits(classifier, paths, batch_size, progress):
  """`[len(paths), classes]` logits, the files decoded a batch at a time."""
  outputs = []
  with tqdm.tqdm(total=len(paths), desc='evaluate', unit='img',
                 disable=not progress) as bar:
    for start in range(0, len(paths), batch_size):
      batch = np.stack([
          image_folder_lib.load_image(path, classifier.resize_size,
                                      classifier.crop_size)
          for path in paths[start:start + batch_size]]).astype(np.float32)
      outputs.append(classifier.logits(batch))
      bar.update(len(batch))
  return np.concatenate(outputs)


def classification_metrics(logits, labels, class_names, top=5):
  """Accuracy, per-class accuracy and the confusion matrix of logits.

  Args:
    logits: `[examples, classes]` float logits.
    labels: `[examples]` true class indices.
    class_names: The name of each class index.
    top: k of the top-k accuracy (at most the number of classes).

  Returns:
    The metrics of `evaluate_folder` ('top1_accuracy' ... 'confusion_matrix').
  """
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels, np.int64)
  count, num_classes = logits.shape
  if not count:
    raise ValueError('There are no images to evaluate.')
  predictions = np.argmax(logits, axis=1)
  top = min(top, num_classes)
  ranked = np.argsort(-logits, axis=1, kind='stable')[:, :top]
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1,
                                                            keepdims=True))
  matrix = np.zeros([num_classes, num_classes], np.int64)
  np.add.at(matrix, (labels, predictions), 1)
  present = np.flatnonzero(matrix.sum(axis=1))
  shown = np.flatnonzero(matrix.sum(axis=1) + matrix.sum(axis=0))
  correct = int(np.sum(predictions == labels))
  return {
      'top1_accuracy': correct / count,
      'top1_error': 1.0 - correct / count,
      'top5_accuracy': float(np.mean(np.any(ranked == labels[:, None],
                                            axis=1))),
      'loss': float(-np.mean(log_probabilities[np.arange(count), labels])),
      'num_examples': int(count),
      'per_class': {
          class_names[i]: {'num_examples': int(matrix[i].sum()),
                           'correct': int(matrix[i, i]),
                           'accuracy': float(matrix[i, i] / matrix[i].sum())}
          for i in present},
      'missing_classes': [class_names[i] for i in range(num_classes)
                          if i not in present],
      'classes': [class_names[i] for i in shown],
      'confusion_matrix': matrix[np.ix_(shown, shown)].tolist(),
  }


def format_folder_results(results, max_classes=30):
  """The text `densenet evaluate --image-folder` prints: accuracy, a
  per-class table and the confusion matrix (up to `max_classes` classes)."""
  lines = ['top-1 accuracy %.2f%% (%d of %d images), top-5 accuracy %.2f%%, '
           'loss %.4f' % (100 * results['top1_accuracy'],
                          round(results['top1_accuracy'] *
                                results['num_examples']),
                          results['num_examples'],
                          100 * results['top5_accuracy'], results['loss'])]
  width = max([len(name) for name in results['classes']] + [5])
  lines.append('%-*s %7s %8s' % (width, 'class', 'images', 'accuracy'))
  for name, row in results['per_class'].items():
    lines.append('%-*s %7d %7.2f%%' % (width, name, row['num_examples'],
                                       100 * row['accuracy']))
  if results['missing_classes']:
    lines.append('not in the folder: %s' %
                 ', '.join(results['missing_classes']))
  classes = results['classes']
  if len(classes) > max_classes:
    lines.append('confusion matrix: %d classes (see --json or the picture)'
                 % len(classes))
    return '\n'.join(lines)
  lines.append('confusion matrix (rows: true class, columns: predicted)')
  cell = max([len(name) for name in classes] + [5])
  lines.append(' ' * width + ''.join(' %*s' % (cell, n) for n in classes))
  for name, row in zip(classes, results['confusion_matrix']):
    lines.append('%-*s' % (width, name) +
                 ''.join(' %*d' % (cell, value) for value in row))
  return '\n'.join(lines)
