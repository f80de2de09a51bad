"""Evaluation of a live model: mIoU over TFRecords, TensorBoard, best model.

`tasks.evaluate` (a checkpoint) and training's periodic evaluation (the
model being trained, `EvalCallback`) share `evaluate_model` and
`write_results`:

    results = evaluation.evaluate_model(model, config, 'records/val-*',
                                        eval_scales=(0.75, 1.0, 1.25),
                                        flip=True)
    evaluation.write_results('runs/seg/eval', results, step=1000)

TensorBoard (`<model_dir>/eval`): `mean_iou`, `pixel_accuracy` and
`iou/<class name>` at the checkpoint's global step; options other than one
scale without flips add their `options.describe` name as a suffix
(`mean_iou_scales_0.5-0.75-1-1.25-1.5-1.75_flip`), so both curves can live
side by side. Next to the events: `per_class_iou.png`, a bar chart of the
latest results (`pictures.iou_chart`).

Training with `--eval` keeps the best checkpoint by mean IoU in
`<model_dir>/best/` (`model.ckpt-<step>`, the usual `checkpoint` file, and
`best.json`: step, mean_iou, pixel_accuracy, eval_pattern, eval_scales,
flip), next to the latest checkpoints of `<model_dir>`.
"""

import json
import math
import os

import tensorflow as tf
from tqdm import tqdm

from densenet import training
from densenet._env import atomic
from segmentation import data
from segmentation import metrics
from segmentation import multiscale
from segmentation import options
from segmentation import pictures

EVAL_DIR = 'eval'
BEST_DIR = 'best'
BEST_FILE = 'best.json'
CHART_FILE = 'per_class_iou.png'


def make_predict_fn(model, config, eval_scales=options.DEFAULT_EVAL_SCALES,
                    flip=False):
  """`images [batch, h, w, 3] -> labels [batch, h, w]` of a built
  `SlimModel` at any size (see `segmentation.multiscale`)."""
  return multiscale.make_predict_fn(
      lambda images: model(images, training=False), config.output_stride,
      eval_scales, flip)


def evaluate_model(model, config, eval_pattern,
                   eval_scales=options.DEFAULT_EVAL_SCALES, flip=False,
                   progress=True, predict_fn=None, should_stop=None):
  """Whole-image evaluation of `model` over every record of `eval_pattern`.

  Args:
    model: A built `densenet.training.SlimModel` of `config`'s network.
    config: Its `tasks.ModelConfig` (classes, output stride, normalization).
    eval_pattern: Glob of TFRecords (`segmentation.data`).
    eval_scales: Input scales whose softmax is averaged.
    flip: Whether to add left-right flips.
    progress: Whether to show a progress bar.
    predict_fn: Optional `make_predict_fn(model, config, eval_scales, flip)`
      to reuse (one trace for repeated evaluations).
    should_stop: Optional `() -> bool`, asked before every image; when True
      the evaluation stops and returns None (training's stop on a signal).

  Returns:
    `ConfusionMatrix.results()` plus 'num_images', 'eval_scales', 'flip';
    None if `should_stop` cut it short.

  Raises:
    ValueError: If no file matches `eval_pattern` or `eval_scales` is bad.
  """
  scales = options.check_scales(eval_scales)
  predict_fn = predict_fn or make_predict_fn(model, config, scales, flip)
  confusion = metrics.ConfusionMatrix(config.num_classes)
  dataset = data.make_dataset(eval_pattern, False,
                              normalization=config.normalization,
                              num_classes=config.num_classes)
  num_images = 0
  for images, labels, _ in tqdm(dataset, desc='evaluate', unit='image',
                                disable=not progress):
    if should_stop is not None and should_stop():
      return None
    confusion.update(labels.numpy(), predict_fn(images).numpy())
    num_images += 1
  results = confusion.results(config.names())
  results.update(num_images=num_images, eval_scales=list(scales),
                 flip=bool(flip))
  return results


def _tag(name, results):
  suffix = options.describe(results['eval_scales'], results['flip'])
  if not suffix:
    return name
  head, _, tail = name.partition('/')
  return '%s_%s%s' % (head, suffix, '/' + tail if tail else '')


def write_results(directory, results, step, title=None):
  """Writes `results` of `evaluate_model` as TensorBoard scalars at `step`
  (0 if None: a checkpoint without a global step) and as a bar chart
  `per_class_iou.png` in `directory`.

  Returns:
    The chart's path.
  """
  tf.io.gfile.makedirs(directory)
  at = 'step %d' % step if step is not None else 'no global step'
  step = step or 0
  writer = tf.summary.create_file_writer(directory)
  with writer.as_default():
    for name in ('mean_iou', 'pixel_accuracy'):
      if not math.isnan(results[name]):
        training.write_scalar(_tag(name, results), results[name], step)
    for name, value in results['per_class_iou'].items():
      if value is not None:
        training.write_scalar(_tag('iou/' + name, results), value, step)
  writer.flush()
  writer.close()
  scales = ','.join('%g' % s for s in results['eval_scales'])
  chart = pictures.iou_chart(
      results['per_class_iou'],
      title=title or 'Per-class IoU, %s, %d images, scales %s%s' % (
          at, results['num_images'], scales,
          ', flip' if results['flip'] else ''),
      mean_iou=None if math.isnan(results['mean_iou']) else
      results['mean_iou'])
  path = os.path.join(directory, CHART_FILE)
  chart.save(path)
  return path


def read_best(model_dir):
  """The `best.json` record of `model_dir/best`, or None."""
  path = os.path.join(model_dir, BEST_DIR, BEST_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


class EvalCallback(object):
  """Evaluates during training and keeps the best checkpoint by mean IoU.

  A `densenet.training.Trainer` callback: called as `callback(trainer,
  step)` after every step, it evaluates the trainer's model on
  `eval_pattern` every `eval_every` steps and at `num_steps`, writes the
  results to `<model_dir>/eval` (`write_results`), and when the mean IoU
  beats the best so far (also across resumed runs, read from `best.json`)
  writes the model's checkpoint to `<model_dir>/best/`. Only the chief
  writes; other workers skip the evaluation. A SIGTERM / SIGINT during an
  evaluation cuts it short (`trainer.stop_requested`): nothing is recorded
  for that step, and the trainer saves it and stops.

  Args:
    model_dir: The training's model directory.
    eval_pattern: Glob of validation TFRecords.
    config: The `tasks.ModelConfig`.
    eval_every: Steps between evaluations, >= 1.
    num_steps: The last step of the training (always evaluated).
    eval_scales, flip: See `evaluate_model`.
    log: Where a one-line summary of each evaluation goes.

  Raises:
    ValueError: If `eval_every` < 1 or no file matches `eval_pattern`.
  """

  def __init__(self, model_dir, eval_pattern, config, eval_every, num_steps,
               eval_scales=options.DEFAULT_EVAL_SCALES, flip=False,
               log=print):
    if not isinstance(eval_every, int) or eval_every < 1:
      raise ValueError('eval_every must be an int >= 1, got %r.' %
                       (eval_every,))
    if not tf.io.gfile.glob(eval_pattern):
      raise ValueError('No TFRecord file matches the eval pattern %r.' %
                       eval_pattern)
    self.model_dir = model_dir
    self.eval_pattern = eval_pattern
    self.config = config
    self.eval_every = eval_every
    self.num_steps = num_steps
    self.eval_scales = options.check_scales(eval_scales)
    self.flip = flip
    self.log = log
    self.history = []   # [(step, results)] of this run.
    self._best_manager = None
    self._predict_fn = None

  def __call__(self, trainer, step):
    if step % self.eval_every and step != self.num_steps:
      return
    if not training.is_chief(trainer.strategy):
      return
    if self._predict_fn is None:
      self._predict_fn = make_predict_fn(trainer.model, self.config,
                                         self.eval_scales, self.flip)
    results = evaluate_model(
        trainer.model, self.config, self.eval_pattern, self.eval_scales,
        self.flip, progress=False, predict_fn=self._predict_fn,
        should_stop=lambda: trainer.stop_requested is not None)
    if results is None:  # The trainer saves this step and stops.
      self.log('step %d: evaluation cut short by %s (not recorded)' %
               (step, trainer.stop_requested))
      return
    results['global_step'] = step
    self.history.append((step, results))
    write_results(os.path.join(self.model_dir, EVAL_DIR), results, step)
    best = read_best(self.model_dir)
    improved = not math.isnan(results['mean_iou']) and (
        best is None or results['mean_iou'] > best['mean_iou'])
    if improved:
      self._save_best(trainer, step, results)
      best = read_best(self.model_dir)
    self.log('step %d: eval mean IoU %.4f, pixel accuracy %.4f; best %.4f '
             'at step %d' % (step, results['mean_iou'],
                             results['pixel_accuracy'], best['mean_iou'],
                             best['step']))

  def _save_best(self, trainer, step, results):
    directory = os.path.join(self.model_dir, BEST_DIR)
    if self._best_manager is None:
      self._best_manager = training.NameBasedCheckpointManager(
          training.checkpoint_variables(trainer.model, trainer.optimizer,
                                        trainer.global_step),
          directory, max_to_keep=1)
    checkpoint = self._best_manager.save(step)
    record = {'step': step, 'mean_iou': results['mean_iou'],
              'pixel_accuracy': results['pixel_accuracy'],
              'per_class_iou': results['per_class_iou'],
              'checkpoint': checkpoint, 'eval_pattern': self.eval_pattern,
              'eval_scales': list(self.eval_scales), 'flip': self.flip}
    atomic.write_json(os.path.join(directory, BEST_FILE), record)
    write_results(directory, results, step)


def format_results(results):
  """A per-class IoU table with pixel accuracy and mean IoU."""
  lines = ['%-16s %s' % ('class', 'IoU')]
  for name, value in results['per_class_iou'].items():
    lines.append('%-16s %s' % (name, 'absent' if value is None else
                               '%.4f' % value))
  lines.append('%-16s %.4f' % ('pixel accuracy', results['pixel_accuracy']))
  lines.append('%-16s %.4f' % ('mean IoU', results['mean_iou']))
  return '\n'.join(lines)
