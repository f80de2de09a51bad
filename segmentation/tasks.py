"""Train, evaluate, predict and the demo: the library behind `segmentation`.

A model directory holds `config.json` (the `ModelConfig`), the name-based
checkpoints of `densenet.training` and TensorBoard events (`train/`).

    from segmentation import tasks
    config = tasks.ModelConfig(num_classes=6, architecture='densenet_121')
    tasks.train('runs/seg', 'records/train-*.tfrecord', config,
                num_steps=2000, batch_size=8, crop_size=(321, 321))
    results = tasks.evaluate('runs/seg', 'records/val-*.tfrecord')
    tasks.predict('runs/seg', ['a.jpg'], 'masks/')
"""

import dataclasses
import os

import tensorflow as tf
import tf_keras

from densenet import training
from densenet.datasets import records
from densenet.serve import rewrite
from densenet.training import lock
from densenet.training import run as run_lib
from densenet.training import rundir
from densenet.training import schedules
from densenet.weights import checkpoints as weights_checkpoints
from densenet.weights import manifest
from segmentation import config as config_lib
from segmentation import data
from segmentation import evaluation
from segmentation import losses
from segmentation import model as model_lib
from segmentation import options
from segmentation import prediction
from segmentation.config import ModelConfig  # noqa: F401  (public here too)


def build_data(output_dir, voc_root=None, image_dir=None, label_dir=None,
               splits=('train', 'val'), num_shards=4, progress=True,
               num_classes=None, remap=None, strict=False, report=None):
  """Writes TFRecords from a VOC root (its splits) or one folder pair.

  Each split is written all or nothing (`data.write_tfrecords`): a split
  refused for its labels or, with `strict`, for a bad pair leaves that
  split's earlier records as they were, and stops before the next split.

  Args:
    output_dir: Directory of the shards (created).
    voc_root: A Pascal VOC layout root, or
    image_dir, label_dir: a folder pair (one split, `splits[0]`).
    splits: VOC splits.
    num_shards: Shards per split.
    progress: Whether to show progress bars.
    num_classes, remap, strict: See `data.write_tfrecords`.
    report: Optional `report(split, SplitRecords)`, called as each split
      lands.

  Returns:
    {split: `data.SplitRecords(paths, num_written, errors, histogram)`}.

  Raises:
    ValueError: Unless exactly one of `voc_root` or `image_dir`+`label_dir`
      is given; for a refused split (`data.LabelError` for its labels).
    rundir.OutputDirError: If `output_dir` cannot be written.
  """
  if bool(voc_root) == bool(image_dir and label_dir):
    raise ValueError('Give either voc_root or both image_dir and label_dir.')
  if voc_root:
    sources = {split: data.voc_pairs(voc_root, split) for split in splits}
  else:
    sources = {splits[0]: data.folder_pairs(image_dir, label_dir)}
  data.check_remap(remap)
  rundir.writable_dir(output_dir)
  results = {}
  for split, pairs in sources.items():
    with rundir.writing_to(output_dir):
      results[split] = data.write_tfrecords(
          pairs, output_dir, split, num_shards, progress,
          num_classes=num_classes, remap=remap, strict=strict)
    if report:
      report(split, results[split])
  return results


def _optimizer_fn(optimizer):
  if optimizer not in options.OPTIMIZERS:
    raise ValueError('optimizer must be one of %s, got %r.' %
                     (options.OPTIMIZERS, optimizer))
  if optimizer == 'adam':
    return lambda: tf_keras.optimizers.Adam(1e-3)
  return lambda: tf_keras.optimizers.SGD(0.01, momentum=0.9)


@data.label_errors()
@records.names_corrupt_shards
@rundir.writes_to('model_dir', 'model directory')
@lock.locks('model_dir')
def train(model_dir, train_pattern, config, num_steps, batch_size=8,
          crop_size=(128, 128), learning_rate=0.01, optimizer='momentum',
          warmup_steps=0, checkpoint_every=100, initial_checkpoint=None,
          class_weights=None, strategy=None, min_scale=0.5, max_scale=2.0,
          progress=True, log_every=0, log=print, memory_efficient=None,
          sync_batch_norm=False, eval_pattern=None, eval_every=None,
          eval_scales=options.DEFAULT_EVAL_SCALES, flip=False,
          partial_restore=False):
  """Trains (or resumes training) a segmentation model.

  The config is written to `model_dir` once the model has been built (and
  restored), so a failed first start does not lock the directory. With
  `initial_checkpoint`, the batch-norm epsilon, stem padding and
  normalization its metadata records (a `densenet.weights.convert`
  checkpoint) are the run's.

  Args:
    model_dir: Model directory; resumes from its latest checkpoint.
    train_pattern: Glob of the training TFRecords.
    config: A `ModelConfig` (saved to `model_dir`; a resumed run must
      match the saved one, `memory_efficient` aside).
    num_steps: Global step to reach.
    batch_size: Global batch size.
    crop_size: (height, width) of training crops.
    learning_rate: Base learning rate of the poly schedule.
    optimizer: 'momentum' (SGD, 0.9) or 'adam'.
    warmup_steps: Linear learning-rate warm-up.
    checkpoint_every: Steps between checkpoints.
    initial_checkpoint: Optional classification checkpoint initialising the
      backbone on a fresh start (its logits excluded); what was restored is
      reported through `log`. Every backbone variable must be in it with
      its shape, unless `partial_restore`.
    partial_restore: Restore only the backbone variables `initial_checkpoint`
      has with the right shape, leaving the others initialized (see
      `restore_backbone`).
    class_weights: Optional per-class loss weights.
    strategy: A `tf.distribute.Strategy` (default: `training.get_strategy`).
    min_scale, max_scale: Random scale range of the augmentation.
    progress: Whether to show a progress bar.
    log_every: Steps between 'step N loss L' lines on stderr (0: none).
    log: Where messages go.
    memory_efficient: Overrides `config.memory_efficient` (None: the
      config's, else the resumed run's, else False).
    sync_batch_norm: Whether batch norm uses the statistics of the global
      batch across replicas (see `densenet.training.Trainer`).
    eval_pattern: Optional glob of validation TFRecords, evaluated every
      `eval_every` steps and at `num_steps` into TensorBoard
      (`<model_dir>/eval`), keeping the best checkpoint by mean IoU in
      `<model_dir>/best` (`segmentation.evaluation.EvalCallback`).
    eval_every: Steps between evaluations (default `checkpoint_every`).
    eval_scales, flip: Options of those evaluations (see `evaluate`).

  Returns:
    `densenet.training.TrainResult`.

  Raises:
    ValueError: If `config` differs from the one saved in `model_dir`, or
      for a bad `eval_every` / `eval_pattern`.
    densenet.weights.WeightMismatchError: (a ValueError) If
      `initial_checkpoint` leaves backbone variables unrestored and not
      `partial_restore`.
    segmentation.data.LabelError: For a label that is neither below
      `config.num_classes` nor 255 (checked as the records are read).
    densenet.training.rundir.OutputDirError: If `model_dir` cannot be written.
    densenet.training.NaNLossError: If the loss becomes NaN.
    densenet.training.Interrupted: On SIGTERM / SIGINT, after saving the
      step reached (`densenet.training.Trainer.train`); re-running resumes.
  """
  strategy = strategy or training.get_strategy()
  run = run_lib.Run(model_dir, strategy, initial_checkpoint)
  if memory_efficient is not None:
    config = dataclasses.replace(config, memory_efficient=memory_efficient)
  config = dataclasses.replace(config, **run.settings(
      {name: getattr(config, name) for name in config_lib.RESOLVED}))
  model_dir = run.prepare(config)  # The chief's; see run_lib.
  dataset = data.make_dataset(train_pattern, True, batch_size, crop_size,
                              min_scale, max_scale, config.normalization,
                              num_classes=config.num_classes)

  def init_fn(model):
    if initial_checkpoint:
      restore_backbone(model, config.architecture, initial_checkpoint, log,
                       partial=partial_restore)

  def loss_fn(labels, logits):
    return losses.softmax_cross_entropy(labels, logits,
                                        class_weights=class_weights)

  callbacks = []
  if eval_pattern:
    callbacks.append(evaluation.EvalCallback(
        model_dir, eval_pattern, config,
        checkpoint_every if eval_every is None else eval_every,
        num_steps, eval_scales, flip, log))
  trainer = training.Trainer(
      model_lib.net_fn(config), loss_fn, model_dir, batch_size,
      strategy=strategy, optimizer_fn=_optimizer_fn(optimizer),
      learning_rate_fn=schedules.poly(
          learning_rate, num_steps, warmup_steps=warmup_steps),
      checkpoint_every=checkpoint_every, init_fn=init_fn, progress=progress,
      log_every=log_every, sync_batch_norm=sync_batch_norm,
      callbacks=callbacks)
  # Restores or initialises, then records the config.
  run.start(trainer, next(iter(dataset))[0], config)
  return trainer.train(dataset, num_steps)


def restore_backbone(model, architecture, checkpoint, log=print,
                     partial=False):
  """Initialises the backbone of `model` from a classification checkpoint.

  Restores every variable of the checkpoint with the same name and shape,
  except the backbone's classification logits, and reports through `log`
  what was restored and what was not.

  Args:
    model: A built `densenet.training.SlimModel` of a segmentation network.
    architecture: Its backbone's (see `segmentation.model.backbone_spec`).
    checkpoint: A checkpoint prefix or directory.
    log: Where the report goes.
    partial: Whether backbone variables may stay unrestored (missing from
      the checkpoint or of another shape there).

  Returns:
    The `densenet.training.RestoreReport`.

  Raises:
    densenet.weights.WeightMismatchError: (a ValueError) Unless `partial`,
      if a backbone variable is missing from the checkpoint or has another
      shape there; it says which model the checkpoint holds and how many of
      the backbone's variables matched (raised after assigning those).
  """
  scope = model_lib.backbone_spec(architecture).scope
  excluded = [scope + '/' + name for name in model_lib.BACKBONE_EXCLUDES]
  report = training.restore_by_name(
      model.variables_by_name(), checkpoint, exclude_scopes=excluded)
  if not partial:
    report.check(
        'initial checkpoint %s does not fit the %s backbone' % (checkpoint,
                                                               scope),
        allow_missing=excluded, scope=scope + '/', checkpoint=checkpoint,
        hint='to restore only the variables that fit, train with '
        '--partial-restore (partial_restore=True)')
  backbone_missing = [n for n in report.missing if n.startswith(scope + '/')]
  log('Initial checkpoint %s: restored %d variables; initialized '
      '%d head variables; backbone variables not in the checkpoint: %s; '
      'shape mismatches (not restored): %s; checkpoint tensors not used: %s.'
      % (checkpoint, len(report.restored),
         len(report.missing) - len(backbone_missing),
         ', '.join(backbone_missing) or 'none',
         ', '.join(report.mismatched) or 'none',
         ', '.join(report.unused) or 'none'))
  return report


def load_model(model_dir, checkpoint=None):
  """`(model, config, checkpoint_path, global_step)` restored from
  `model_dir`'s newest complete checkpoint (or `checkpoint`, a prefix or a
  directory; see `densenet.weights.checkpoints.latest`).
  global_step is None for a checkpoint that records none.

  Raises:
    ValueError: If there is no checkpoint or it does not match the config;
      `IncompleteCheckpointError` if its files are not whole.
  """
  config = ModelConfig.load(model_dir)
  if checkpoint is None and not manifest.on_disk(model_dir):
    raise ValueError('No checkpoint in %s.' % model_dir)
  # The newest complete one (said so when it is not the state file's).
  checkpoint = weights_checkpoints.latest(checkpoint or model_dir)
  model = training.SlimModel(model_lib.net_fn(config))
  model(tf.zeros([1, 64, 64, 3]), training=False)
  training.restore_by_name(model.variables_by_name(), checkpoint).check(
      'Checkpoint %s does not match %s' % (checkpoint, model_dir))
  return model, config, checkpoint, training.read_global_step(checkpoint)


@data.label_errors()
@records.names_corrupt_shards
def evaluate(model_dir, eval_pattern, checkpoint=None, progress=True,
             eval_scales=options.DEFAULT_EVAL_SCALES, flip=False,
             summary_dir=None):
  """Whole-image evaluation over every record of `eval_pattern`, at any
  image size, at one or several scales, with or without flips.

  Args:
    model_dir: A trained model directory.
    eval_pattern: Glob of TFRecords.
    checkpoint: A checkpoint prefix (default: the latest of `model_dir`).
    progress: Whether to show a progress bar.
    eval_scales: Input scales whose softmax is averaged at the input
      resolution (DeepLab: `options.DEEPLAB_EVAL_SCALES`).
    flip: Whether to add the left-right flip of every scale.
    summary_dir: Where the TensorBoard scalars (at the checkpoint's global
      step; 0 if it records none) and the per-class IoU bar chart go
      (default `<model_dir>/eval`; '' writes nothing).

  Returns:
    `ConfusionMatrix.results()` plus 'checkpoint', 'global_step' (None if
    the checkpoint records none), 'num_images', 'eval_scales', 'flip' and
    'chart' (the chart's path or None).

  Raises:
    segmentation.data.LabelError: For a label that is neither below the
      model's num_classes nor 255 (checked as the records are read).
  """
  model, config, checkpoint, step = load_model(model_dir, checkpoint)
  results = evaluation.evaluate_model(model, config, eval_pattern,
                                      eval_scales, flip, progress)
  if summary_dir is None:
    summary_dir = os.path.join(model_dir, evaluation.EVAL_DIR)
  chart = (evaluation.write_results(summary_dir, results, step)
           if summary_dir else None)
  results.update(checkpoint=checkpoint, global_step=step, chart=chart)
  return results


def predict(model_dir, image_paths, output_dir, checkpoint=None,
            progress=True, eval_scales=options.DEFAULT_EVAL_SCALES,
            flip=False, label_paths=None, errors=None):
  """Writes `<stem>.png` palette masks (input size) and `<stem>_overlay.png`
  pictures (`pictures.prediction_picture`: image | ground truth | prediction
  with a legend).

  Args:
    model_dir: A trained model directory.
    image_paths: Images of any size.
    output_dir: Where the PNGs go (created).
    checkpoint: A checkpoint prefix (default: the latest of `model_dir`).
    progress: Whether to show a progress bar.
    eval_scales, flip: See `evaluate`.
    label_paths: Optional ground-truth label PNGs, one per image (None
      entries allowed), shown in the pictures.
    errors: Optional dict: an image (or its label) that is missing or
      cannot be decoded is then recorded as `errors[path] = message` and
      skipped, and the others are still segmented; without it, the error
      is raised.

  Returns:
    `[(mask_path, picture_path)]` of the images segmented.

  Raises:
    ValueError: If `label_paths` does not match `image_paths` or a label's
      size differs from its image's.
    rundir.OutputDirError: If `output_dir` cannot be written.
  """
  rundir.writable_dir(output_dir)
  model, config, _, _ = load_model(model_dir, checkpoint)
  predict_fn = rewrite.optimize_function(evaluation.make_predict_fn(
      model, config, eval_scales, flip).get_concrete_function())

  def mask_of(pixels):
    inputs = config.spec().normalize(pixels[None])
    return predict_fn(tf.constant(inputs)).numpy()[0]

  return prediction.predict_files(mask_of, config.names(), image_paths,
                                  output_dir, progress, label_paths, errors)
