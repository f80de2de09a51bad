"""The `segmentation` command: a thin layer over `segmentation.tasks`.

    segmentation demo                              # the whole main job
    segmentation build-data --voc-root VOC --output-dir records
    segmentation train --model-dir runs/seg --train 'records/train-*' \
        --num-classes 21 --backbone densenet_121 --steps 20000
    segmentation evaluate --model-dir runs/seg --eval 'records/val-*' --json \
        --eval-scales 0.5,0.75,1.0,1.25,1.5,1.75 --flip
    segmentation predict a.jpg b.jpg --model-dir runs/seg --output-dir out
"""

import argparse
import json
import os
import sys

from segmentation import eval_options


def _crop(text):
  parts = [int(p) for p in text.lower().split('x')]
  if len(parts) == 1:
    parts *= 2
  if len(parts) != 2 or min(parts) < 1:
    raise argparse.ArgumentTypeError('crop size must be N or HxW, got %r.' %
                                     text)
  return tuple(parts)


def _backbone(text):
  """A MODELS name, or a densenet_X JSON dict."""
  text = text.strip()
  return json.loads(text) if text.startswith('{') else text


def _parser():
  from segmentation import model as model_lib  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog='segmentation',
      description='Semantic segmentation with DenseNet backbones.')
  commands = parser.add_subparsers(dest='command', required=True)

  build = commands.add_parser(
      'build-data', help='VOC layout or folder pair -> sharded TFRecords.')
  build.add_argument('--voc-root', help='A Pascal VOC layout root.')
  build.add_argument('--image-dir', help='Images (with --label-dir).')
  build.add_argument('--label-dir', help='Label PNGs named <image stem>.png.')
  build.add_argument('--splits', default='train,val',
                     help='VOC splits (or the one split name of a folder '
                     'pair).')
  build.add_argument('--output-dir', required=True)
  build.add_argument('--num-shards', type=int, default=4)
  build.add_argument('--strict', action='store_true',
                     help='Exit with an error if any pair is bad.')

  train = commands.add_parser('train', help='Train or resume training.')
  train.add_argument('--model-dir', required=True)
  train.add_argument('--train', required=True, dest='train_pattern',
                     help='Glob of the training TFRecords.')
  train.add_argument('--num-classes', type=int, required=True)
  train.add_argument('--class-names', help='Comma-separated class names.')
  train.add_argument('--backbone', type=_backbone, default='densenet_121',
                     help='A densenet.MODELS name or a densenet_X JSON '
                     'config, e.g. \'{"num_units_per_block": [2, 2, 2, 2], '
                     '"growth_rate": 12}\'.')
  train.add_argument('--output-stride', type=int, default=16,
                     choices=model_lib.OUTPUT_STRIDES)
  train.add_argument('--head', default='aspp', choices=model_lib.HEADS)
  train.add_argument('--depth', type=int, default=256)
  train.add_argument('--steps', type=int, required=True,
                     help='Global step to reach.')
  train.add_argument('--batch-size', type=int, default=8)
  train.add_argument('--crop-size', type=_crop, default=(321, 321))
  train.add_argument('--learning-rate', type=float, default=0.01)
  train.add_argument('--optimizer', default='momentum',
                     choices=('momentum', 'adam'))
  train.add_argument('--warmup-steps', type=int, default=0)
  train.add_argument('--weight-decay', type=float, default=1e-4)
  train.add_argument('--checkpoint-every', type=int, default=100)
  train.add_argument('--initial-checkpoint',
                     help='Classification checkpoint for the backbone.')
  train.add_argument('--class-weights',
                     help='Comma-separated loss weight per class.')
  train.add_argument('--strategy', default='auto',
                     choices=('auto', 'default', 'mirrored', 'multi_worker'))
  train.add_argument('--no-progress', action='store_true')
  train.add_argument('--log-every', type=int, default=0,
                     help='Print "step N loss L" lines every N steps.')
  eval_options.add_train_arguments(train)

  evaluate = commands.add_parser('evaluate', help='mIoU on a TFRecord set.')
  evaluate.add_argument('--model-dir', required=True)
  evaluate.add_argument('--eval', required=True, dest='eval_pattern')
  evaluate.add_argument('--checkpoint')
  evaluate.add_argument('--json', action='store_true',
                        help='Print the results as JSON.')
  eval_options.add_arguments(evaluate)

  predict = commands.add_parser('predict', help='Masks and overlays.')
  predict.add_argument('images', nargs='+')
  predict.add_argument('--model-dir', required=True)
  predict.add_argument('--output-dir', required=True)
  predict.add_argument('--checkpoint')
  predict.add_argument('--label-dir',
                       help='Ground-truth <image stem>.png labels to show '
                       'next to the predictions.')
  eval_options.add_arguments(predict)

  demo = commands.add_parser(
      'demo', help='Synthetic dataset -> train DenseNet + DeepLab v3+ -> '
      'mIoU.')
  demo.add_argument('--work-dir', default=os.path.join('runs', 'demo'))
  demo.add_argument('--steps', type=int, default=600)
  demo.add_argument('--batch-size', type=int, default=16)
  demo.add_argument('--json', action='store_true')
  return parser


def main(argv=None):
  args = _parser().parse_args(argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # pylint: disable=g-import-not-at-top
  from densenet import training
  from segmentation import tasks
  try:
    if args.command == 'build-data':
      results = tasks.build_data(args.output_dir, voc_root=args.voc_root,
                                 image_dir=args.image_dir,
                                 label_dir=args.label_dir,
                                 splits=args.splits.split(','),
                                 num_shards=args.num_shards)
      failed = False
      for split, (paths, written, errors) in results.items():
        print('%s: %d records in %d shards' % (split, written, len(paths)))
        for error in errors:
          print('  skipped: ' + error)
        failed = failed or bool(errors)
      return 1 if failed and args.strict else 0
    if args.command == 'train':
      config = tasks.ModelConfig(
          num_classes=args.num_classes, backbone=args.backbone,
          output_stride=args.output_stride, head=args.head, depth=args.depth,
          weight_decay=args.weight_decay,
          class_names=(args.class_names.split(',') if args.class_names
                       else None))
      weights = ([float(w) for w in args.class_weights.split(',')]
                 if args.class_weights else None)
      result = tasks.train(
          args.model_dir, args.train_pattern, config, args.steps,
          batch_size=args.batch_size, crop_size=args.crop_size,
          learning_rate=args.learning_rate, optimizer=args.optimizer,
          warmup_steps=args.warmup_steps,
          checkpoint_every=args.checkpoint_every,
          initial_checkpoint=args.initial_checkpoint, class_weights=weights,
          strategy=training.get_strategy(args.strategy),
          progress=not args.no_progress, log_every=args.log_every,
          eval_pattern=args.eval_pattern, eval_every=args.eval_every,
          eval_scales=args.eval_scales, flip=args.flip)
      print('Trained from step %d to %d; checkpoint %s' %
            (result.start_step, result.global_step, result.checkpoint))
      return 0
    if args.command == 'evaluate':
      results = tasks.evaluate(args.model_dir, args.eval_pattern,
                               args.checkpoint, eval_scales=args.eval_scales,
                               flip=args.flip)
      print(json.dumps(results, indent=2) if args.json else
            tasks.format_results(results))
      if not args.json:
        print('Per-class IoU chart: %s' % results['chart'])
      return 0
    if args.command == 'predict':
      labels = None
      if args.label_dir:  # <stem>.png where it exists.
        labels = [os.path.join(args.label_dir, os.path.splitext(
            os.path.basename(image))[0] + '.png') for image in args.images]
        labels = [path if os.path.isfile(path) else None for path in labels]
      for mask, overlay in tasks.predict(args.model_dir, args.images,
                                         args.output_dir, args.checkpoint,
                                         eval_scales=args.eval_scales,
                                         flip=args.flip, label_paths=labels):
        print(mask, overlay)
      return 0
    results = tasks.demo(args.work_dir, num_steps=args.steps,
                         batch_size=args.batch_size)
    if args.json:
      print(json.dumps(results, indent=2))
    else:
      print(tasks.format_results(results))
      print('Overlays: %s' % os.path.dirname(results['overlays'][0]))
      print('Validation mean IoU: %.4f (%d images, step %d, %.0f s)' %
            (results['mean_iou'], results['num_images'],
             results['global_step'], results['wall_time_s']))
    return 0
  except training.NaNLossError as e:
    print('error: %s' % e, file=sys.stderr)
    return 1
  except ValueError as e:
    print('error: %s' % e, file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
