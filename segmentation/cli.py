"""The `segmentation` command: a thin layer over `segmentation.tasks`.

    segmentation demo                              # the whole main job
    segmentation build-data --voc-root VOC --output-dir records
    segmentation train --model-dir runs/seg --train 'records/train-*' \\
        --num-classes 21 --architecture densenet_121 --steps 20000
    segmentation evaluate --model-dir runs/seg --eval 'records/val-*' --json \\
        --eval-scales 0.5,0.75,1.0,1.25,1.5,1.75 --flip
    segmentation predict a.jpg b.jpg --model-dir runs/seg --output-dir out
    segmentation export --model-dir runs/seg export/seg/1      # SavedModel
    segmentation export --model-dir runs/seg seg.tflite         # LiteRT
    segmentation predict a.jpg --litert seg.tflite --output-dir out

Built like `densenet.cli` (registrars on `densenet.cli.common`); no TensorFlow
until a command runs. `train --backbone` (0.1's `--architecture`) works for
one release, hidden from `--help`.
"""

import argparse
import os
import sys

from densenet.cli import arguments
from densenet.cli import common
from densenet.cli import litert
from segmentation import options


def _architecture(text):
  """`arguments.architecture`, with segmentation's root stride (`options`)."""
  architecture = arguments.architecture(text)
  try:
    options.check_backbone(architecture)
  except ValueError as error:
    raise argparse.ArgumentTypeError(str(error))
  return architecture


def add_build_data_parser(subparsers):
  """`segmentation build-data`: VOC layout or folder pair -> TFRecords."""
  parser = common.add_command(
      subparsers, 'build-data', run_build_data,
      help='VOC layout or folder pair -> sharded TFRecords.',
      description='Write sharded TFRecords from a Pascal VOC layout '
      '(--voc-root) or from a pair of folders (--image-dir and --label-dir).')
  parser.add_argument('--voc-root', type=arguments.existing_dir,
                      help='A Pascal VOC layout root.')
  parser.add_argument('--image-dir', type=arguments.existing_dir,
                      help='Images (with --label-dir).')
  parser.add_argument('--label-dir', type=arguments.existing_dir,
                      help='Label PNGs named <image stem>.png.')
  parser.add_argument('--splits', default='train,val',
                      help='VOC splits (or the one split name of a folder '
                      'pair).')
  parser.add_argument('--output-dir', required=True,
                      help='Directory of the TFRecord shards.')
  parser.add_argument('--num-shards', type=arguments.positive_int,
                      default=4, help='Shards per split.')
  parser.add_argument('--strict', action='store_true',
                      help='If any pair of a split is bad, write nothing for '
                      'it (its earlier records stay) and exit with status '
                      '1.')
  parser.add_argument('--num-classes', type=arguments.positive_int,
                      help='Refuse a split (write nothing for it) whose '
                      'labels hold values that are neither < N nor 255 '
                      '(ignore), or only 0 and 255.')
  parser.add_argument('--remap', type=options.remap, action='append',
                      metavar='SRC:DST[,SRC:DST]',
                      help='Map label values before writing (repeatable), '
                      'e.g. 255:1 for 0/255 binary masks.')


def run_build_data(args):
  if bool(args.voc_root) == bool(args.image_dir and args.label_dir):
    raise common.UsageError('give either --voc-root or both --image-dir '
                                'and --label-dir.')
  # pylint: disable=g-import-not-at-top
  from segmentation import data
  from segmentation import tasks
  remap = {}
  for item in args.remap or ():
    remap.update(item)

  def report(split, result):
    print('%s: %d records in %d shards' % (split, result.num_written,
                                           len(result.paths)))
    print('%s label pixels: %s' % (split,
                                   data.format_histogram(result.histogram)))
    if args.num_classes is None and data.looks_binary(result.histogram):
      print('%s: warning: %s' % (split, data.BINARY_MASK_HINT))
    for error in result.errors:
      print('  skipped: ' + error)

  try:
    tasks.build_data(args.output_dir, voc_root=args.voc_root,
                     image_dir=args.image_dir, label_dir=args.label_dir,
                     splits=args.splits.split(','),
                     num_shards=args.num_shards, num_classes=args.num_classes,
                     remap=remap, strict=args.strict, report=report)
  except data.BadPairsError as error:
    for message in error.errors:
      print('  bad: ' + message)
    print('segmentation build-data: error: %s: %d bad pairs (--strict): '
          'nothing written for it, its earlier records stay.' %
          (error.split, len(error.errors)), file=sys.stderr)
    return common.EXIT_FAILURE


def add_train_parser(subparsers):
  """`segmentation train`: train or resume a segmentation model."""
  positive_int = arguments.positive_int
  parser = common.add_command(
      subparsers, 'train', run_train, help='Train or resume training.',
      description='Train a DenseNet segmentation model on TFRecords of '
      '`segmentation build-data`; resumes from the latest checkpoint of '
      '--model-dir, whose config.json must match.')
  parser.add_argument('--model-dir', required=True,
                      help='Checkpoints, config.json, TensorBoard events.')
  parser.add_argument('--train', required=True, dest='train_pattern',
                      type=options.records_glob,
                      help='Glob of the training TFRecords.')
  parser.add_argument('--num-classes', type=positive_int, required=True,
                      help='Classes, background included.')
  parser.add_argument('--class-names', type=arguments.comma_list(str),
                      help='Comma-separated class names.')
  common.add_renamed_argument(
      parser, '--architecture', ['--backbone'], type=_architecture,
      default='densenet_121',
      help='The backbone\'s: a densenet.MODELS name or a densenet_X JSON '
      'config, e.g. \'{"num_units_per_block": [2, 2, 2, 2], '
      '"growth_rate": 12}\'.')
  parser.add_argument('--output-stride', type=int, default=16,
                      choices=options.OUTPUT_STRIDES,
                      help='Stride of the backbone output.')
  parser.add_argument('--head', default='aspp', choices=options.HEADS,
                      help='Segmentation head.')
  parser.add_argument('--depth', type=positive_int, default=256,
                      help='Channels of the ASPP and decoder.')
  parser.add_argument('--memory-efficient', action='store_true',
                      help='Recompute the backbone\'s activations in the '
                      'backward pass instead of keeping them: same numbers, '
                      'less memory, slower steps.')
  parser.add_argument('--steps', type=positive_int, required=True,
                      help='Global step to reach.')
  parser.add_argument('--batch-size', type=positive_int, default=8,
                      help='Global batch size.')
  parser.add_argument('--crop-size', type=arguments.height_width,
                      default='321x321',
                      help='Training crops: N or HxW.')
  parser.add_argument('--learning-rate', type=arguments.non_negative_float,
                      default=0.01,
                      help='Base learning rate of the poly schedule.')
  parser.add_argument('--optimizer', default='momentum',
                      choices=options.OPTIMIZERS,
                      help='SGD with momentum 0.9, or Adam.')
  parser.add_argument('--warmup-steps', type=arguments.non_negative_int,
                      default=0, help='Linear learning-rate warm-up.')
  parser.add_argument('--weight-decay', type=arguments.non_negative_float,
                      default=1e-4, help='L2 weight decay.')
  parser.add_argument('--checkpoint-every', type=positive_int, default=100,
                      help='Steps between checkpoints.')
  parser.add_argument('--initial-checkpoint',
                      type=arguments.checkpoint_path,
                      help='Classification checkpoint for the backbone: '
                      'every backbone variable must be in it (logits '
                      'aside), else it is an error.')
  parser.add_argument('--partial-restore', action='store_true',
                      help='Restore only the backbone variables '
                      '--initial-checkpoint has with the right shape; '
                      'report the others and train them from scratch.')
  parser.add_argument('--class-weights', type=arguments.comma_list(float),
                      help='Comma-separated loss weight per class.')
  arguments.add_run_arguments(parser)
  options.add_train_arguments(parser, records_type=options.records_glob,
                                   steps_type=positive_int)


def run_train(args):
  # pylint: disable=g-import-not-at-top
  from segmentation.config import ModelConfig
  # Checked before TensorFlow loads (e.g. an output stride the backbone
  # cannot reach).
  config = ModelConfig(
      num_classes=args.num_classes, architecture=args.architecture,
      output_stride=args.output_stride, head=args.head, depth=args.depth,
      weight_decay=args.weight_decay, class_names=args.class_names,
      memory_efficient=args.memory_efficient)
  from densenet import training
  from segmentation import tasks
  result = tasks.train(
      args.model_dir, args.train_pattern, config, args.steps,
      batch_size=args.batch_size, crop_size=args.crop_size,
      learning_rate=args.learning_rate, optimizer=args.optimizer,
      warmup_steps=args.warmup_steps, checkpoint_every=args.checkpoint_every,
      initial_checkpoint=args.initial_checkpoint,
      class_weights=args.class_weights,
      strategy=training.get_strategy(args.strategy,
                                     cluster_timeout=args.cluster_timeout),
      progress=not args.no_progress, log_every=args.log_every,
      sync_batch_norm=args.sync_batch_norm,
      eval_pattern=args.eval_pattern, eval_every=args.eval_every,
      eval_scales=args.eval_scales, flip=args.flip,
      partial_restore=args.partial_restore)
  print('Trained from step %d to %d; checkpoint %s' %
        (result.start_step, result.global_step, result.checkpoint))


def _add_model_dir_arguments(parser, litert_too=False):
  parser.add_argument('--model-dir', required=not litert_too,
                      type=arguments.existing_dir,
                      help='A directory of `segmentation train`.')
  parser.add_argument('--checkpoint', type=arguments.checkpoint_path,
                      help='Checkpoint prefix (default: the latest in '
                      '--model-dir).')
  if litert_too:
    litert.add_run_arguments(parser, '--model-dir (one scale: images of '
                             'another size than its input are resized to it '
                             'and the class map back)')


def _check_litert_run(args):
  """With --litert: no --model-dir / --checkpoint, one scale, no flips."""
  litert.check_run(args, args.model_dir, '--model-dir')
  if args.litert and (args.checkpoint or args.flip or tuple(
      args.eval_scales) != tuple(options.DEFAULT_EVAL_SCALES)):
    raise common.UsageError('--checkpoint, --eval-scales and --flip are for '
                            '--model-dir (a .tflite runs one scale).')


def add_evaluate_parser(subparsers):
  """`segmentation evaluate`: mIoU on a TFRecord set."""
  parser = common.add_command(
      subparsers, 'evaluate', run_evaluate, help='mIoU on a TFRecord set.')
  _add_model_dir_arguments(parser, litert_too=True)
  parser.add_argument('--eval', required=True, dest='eval_pattern',
                      type=options.records_glob,
                      help='Glob of the TFRecords to score.')
  parser.add_argument('--json', action='store_true',
                      help='Print the results as JSON.')
  options.add_arguments(parser)


def run_evaluate(args):
  _check_litert_run(args)
  # pylint: disable=g-import-not-at-top
  from segmentation import evaluation
  from segmentation import litert as litert_run
  from segmentation import tasks
  if args.litert:
    results = litert_run.evaluate(args.litert, args.eval_pattern,
                                  args.threads)
  else:
    results = tasks.evaluate(args.model_dir, args.eval_pattern,
                             args.checkpoint, eval_scales=args.eval_scales,
                             flip=args.flip)
  if args.json:
    common.print_json(results)
    return
  print(evaluation.format_results(results))
  if results['chart']:
    print('Per-class IoU chart: %s' % results['chart'])


def add_predict_parser(subparsers):
  """`segmentation predict IMAGE...`: masks and overlays."""
  parser = common.add_command(
      subparsers, 'predict', run_predict, help='Masks and overlays.',
      description='Write a class-index mask PNG and a colour overlay per '
      'image; prints their paths. An image that is missing or cannot be '
      'decoded is reported on stderr and makes the exit status 1; the '
      'others are still segmented.')
  parser.add_argument('images', nargs='+', metavar='IMAGE',
                      help='Image files to segment.')
  _add_model_dir_arguments(parser, litert_too=True)
  parser.add_argument('--output-dir', required=True,
                      help='Where the masks and overlays go.')
  parser.add_argument('--label-dir', type=arguments.existing_dir,
                      help='Ground-truth <image stem>.png labels to show '
                      'next to the predictions.')
  options.add_arguments(parser)


def run_predict(args):
  _check_litert_run(args)
  # pylint: disable=g-import-not-at-top
  from segmentation import litert as litert_run
  from segmentation import tasks
  labels = None
  if args.label_dir:  # <stem>.png where it exists.
    labels = [os.path.join(args.label_dir, os.path.splitext(
        os.path.basename(image))[0] + '.png') for image in args.images]
    labels = [path if os.path.isfile(path) else None for path in labels]
  errors = {}
  if args.litert:
    written = litert_run.predict(args.litert, args.images, args.output_dir,
                                 args.threads, label_paths=labels,
                                 errors=errors)
  else:
    written = tasks.predict(args.model_dir, args.images, args.output_dir,
                            args.checkpoint, eval_scales=args.eval_scales,
                            flip=args.flip, label_paths=labels,
                            errors=errors)
  for mask, overlay in written:
    print(mask, overlay)
  return common.report_unreadable('segmentation predict', errors)


def add_export_parser(subparsers):
  """`segmentation export OUT`: a SavedModel, or a LiteRT file."""
  parser = common.add_command(
      subparsers, 'export', run_export,
      help='Write a SavedModel (encoded or float images of any size) or a '
      'LiteRT .tflite file.',
      description='Export a trained model. A SavedModel (runs without this '
      'library): serving_default takes image_bytes, serving_images takes '
      'float images in [0, 255], both of any size, and return classes '
      '(int32 [batch, height, width]) and probabilities. --format litert: '
      'one .tflite of a fixed input size.')
  parser.add_argument('output', help='SavedModel directory to create, or the '
                      '.tflite file (--format litert).')
  parser.add_argument('--model-dir', required=True, type=arguments.existing_dir,
                      help='A directory of `segmentation train`.')
  parser.add_argument('--checkpoint', type=arguments.checkpoint_path,
                      help='Checkpoint prefix (default: the latest in '
                      '--model-dir).')
  litert.add_export_arguments(
      parser, 'Input height and width of the .tflite (default: 513,513; '
      'predict / evaluate --litert resize other images to it); any batch.')


def run_export(args):
  # pylint: disable=g-import-not-at-top
  if litert.export_format(args, args.output) == 'litert':
    from segmentation import export
    metadata = export.export_litert(
        args.model_dir, args.output, args.checkpoint,
        input_size=args.input_size or export.DEFAULT_INPUT_SIZE,
        quantize=args.quantize, calibration=args.calibration,
        calibration_size=args.calibration_size)
    print(litert.describe(metadata, args.output))
    return
  from segmentation import export
  export.export_saved_model(args.model_dir, args.output, args.checkpoint)
  print('Wrote SavedModel %s.' % os.path.abspath(args.output))


def add_demo_parser(subparsers):
  """`segmentation demo`: synthetic data -> train -> mIoU."""
  parser = common.add_command(
      subparsers, 'demo', run_demo,
      help='Synthetic dataset -> train DenseNet + DeepLab v3+ -> mIoU.')
  parser.add_argument('--work-dir', default=os.path.join('runs', 'demo'),
                      help='Where the data, model and overlays go.')
  parser.add_argument('--steps', type=arguments.positive_int, default=600,
                      help='Training steps.')
  parser.add_argument('--batch-size', type=arguments.positive_int,
                      default=16, help='Training batch size.')
  parser.add_argument('--json', action='store_true',
                      help='Print the results as JSON.')


def run_demo(args):
  from segmentation import demo  # pylint: disable=g-import-not-at-top
  from segmentation import evaluation  # pylint: disable=g-import-not-at-top
  results = demo.demo(args.work_dir, num_steps=args.steps,
                       batch_size=args.batch_size)
  if args.json:
    common.print_json(results)
    return
  print(evaluation.format_results(results))
  print('Overlays: %s' % os.path.dirname(results['overlays'][0]))
  print('Validation mean IoU: %.4f (%d images, step %d, %.0f s)' %
        (results['mean_iou'], results['num_images'], results['global_step'],
         results['wall_time_s']))


REGISTRARS = [
    add_demo_parser,
    add_build_data_parser,
    add_train_parser,
    add_evaluate_parser,
    add_predict_parser,
    add_export_parser,
]


def build_parser(registrars=None):
  """The argument parser with one subcommand per registrar."""
  return common.build_parser(
      'segmentation', 'Semantic segmentation with DenseNet backbones.',
      REGISTRARS if registrars is None else registrars)


def main(argv=None):
  """Entry point of the `segmentation` console script; returns the status."""
  return common.main(build_parser(), argv)


if __name__ == '__main__':
  sys.exit(main())
