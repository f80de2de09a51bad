"""`densenet train` and `densenet evaluate`: thin layers over `classification`.

Reproduce the paper's DenseNet-BC (L=100, k=12) on C10+ from the standard
archive (its TFRecords are written on the first run):

    densenet train --dataset C10+ --source cifar-10-python.tar.gz \
        --data-dir data/cifar10 --model-dir runs/c10plus
    densenet evaluate --model-dir runs/c10plus

Fine-tune a pretrained densenet_121 on a folder of images (one sub-folder per
class):

    densenet train --image-folder photos/ --data-dir data/photos \
        --model-dir runs/photos --architecture densenet_121 \
        --initial-checkpoint densenet_121.ckpt --epochs 30 \
        --learning-rate 0.01 --batch-size 32

SIGTERM and Ctrl-C stop training between steps after saving the step reached
(exit 143 / 130, one line; `densenet.training.signals`); the same command
resumes.

`add_train_parser(subparsers)` and `add_evaluate_parser(subparsers)` are
registrars of `densenet.cli` (see there). This module imports no
TensorFlow at load time: the library is imported when a command runs.

Option names of 0.1 still work for one release, hidden from `--help`:
`--train-dir` (now `--model-dir`), `--model` (`--architecture`),
`--num-steps` (`--steps`).
"""

import argparse
import os

from densenet.classification import recipe
from densenet.cli import arguments
from densenet.cli import common

PAPER_DATASETS = recipe.PAPER_DATASETS
# densenet.datasets.tfrecords.METADATA_FILE, checked before loading TensorFlow.
_METADATA_FILE = 'metadata.json'


def add_train_parser(subparsers):
  """Adds the `train` sub-command to an argparse `subparsers` object."""
  defaults = recipe.PAPER_RECIPE
  positive_int = arguments.positive_int
  parser = common.add_command(
      subparsers, 'train', run_train,
      help='Train a DenseNet classifier (the paper\'s CIFAR recipe by '
      'default).',
      description='Train a DenseNet classifier on a densenet.datasets '
      'TFRecord directory, building it first from a CIFAR archive or an '
      'image folder when it does not exist yet. Resumes from the latest '
      'checkpoint of --model-dir. Defaults: the DenseNet paper\'s recipe '
      '(SGD, Nesterov momentum 0.9, batch 64, learning rate 0.1 divided by '
      '10 at 50% and 75% of 300 epochs, weight decay 1e-4, dropout 0.2 '
      'without augmentation).')
  data = parser.add_argument_group('data')
  data.add_argument('--data-dir', required=True,
                    help='TFRecord dataset directory (with metadata.json); '
                    'written from --source or --image-folder if missing.')
  data.add_argument('--dataset', choices=sorted(PAPER_DATASETS),
                    help='The paper\'s CIFAR datasets; "+" means standard '
                    'augmentation (sets --augment).')
  data.add_argument('--source', type=arguments.existing_path,
                    help='cifar-10-python.tar.gz / cifar-100-python.tar.gz '
                    'or its extracted folder (with --dataset).')
  data.add_argument('--image-folder', type=arguments.existing_dir,
                    help='A folder with one sub-folder of images per class.')
  data.add_argument('--image-size', type=positive_int, default=224,
                    help='Side of the images stored from --image-folder.')
  data.add_argument('--validation-fraction', type=float, default=0.1,
                    help='Share of each class of --image-folder held out.')
  data.add_argument('--augment', action=argparse.BooleanOptionalAction,
                    default=None,
                    help='Pad, random crop and flip (default: on, except '
                    'for C10/C100 without "+").')
  data.add_argument('--normalization',
                    help='A densenet.preprocessing mode (e.g. torch) '
                    'instead of the dataset\'s own normalization.')
  model = parser.add_argument_group('model and recipe')
  common.add_renamed_argument(
      model, '--model-dir', ['--train-dir'], required=True,
      help='Checkpoints, TensorBoard events, config.json, results.json.')
  common.add_renamed_argument(
      model, '--architecture', ['--model'], default='densenet_bc_100_k12',
      type=arguments.architecture,
      help='A densenet.MODELS name, densenet[_bc]_<L>_k<k>, or a densenet_X '
      'config as JSON, e.g. \'{"num_units_per_block": [6, 6, 6], '
      '"growth_rate": 12}\'.')
  model.add_argument('--initial-checkpoint', type=arguments.checkpoint_path,
                     help='Start from these weights (all but the logits).')
  model.add_argument('--memory-efficient', action='store_true',
                     help='Recompute activations in the backward pass '
                     'instead of keeping them: same numbers, less memory, '
                     'slower steps.')
  model.add_argument('--batch-size', type=positive_int,
                     default=defaults['batch_size'],
                     help='Global batch size (over all replicas).')
  model.add_argument('--epochs', type=positive_int,
                     default=defaults['epochs'], help='Epochs of training.')
  common.add_renamed_argument(model, '--steps', ['--num-steps'],
                              type=positive_int,
                              help='Total steps, overriding --epochs.')
  model.add_argument('--learning-rate', type=arguments.non_negative_float,
                     default=defaults['learning_rate'],
                     help='Learning rate before the first decay.')
  model.add_argument('--learning-rate-decay-fractions', type=float,
                     nargs='+',
                     default=list(defaults['learning_rate_decay_fractions']),
                     help='Fractions of training at which the learning rate '
                     'is multiplied by --learning-rate-decay.')
  model.add_argument('--learning-rate-decay', type=float,
                     default=defaults['learning_rate_decay'],
                     help='Factor applied at each decay.')
  model.add_argument('--momentum', type=float, default=defaults['momentum'],
                     help='SGD momentum.')
  model.add_argument('--nesterov', action=argparse.BooleanOptionalAction,
                     default=defaults['nesterov'],
                     help='Nesterov momentum.')
  model.add_argument('--weight-decay', type=arguments.non_negative_float,
                     default=defaults['weight_decay'],
                     help='L2 weight decay of the convolution kernels.')
  model.add_argument('--dropout-rate', type=arguments.non_negative_float,
                     help='Dropout after each convolution (default: 0.2 '
                     'without augmentation, 0 with it).')
  run = parser.add_argument_group('run')
  run.add_argument('--eval-every-epochs', type=arguments.non_negative_int,
                   default=10,
                   help='Evaluate every N epochs (0: only at the end).')
  run.add_argument('--checkpoint-every', type=positive_int, default=1000,
                   help='Steps between checkpoints.')
  arguments.add_run_arguments(run)
  run.add_argument('--seed', type=int,
                   help='Seed of the shuffle and augmentation.')
  run.add_argument('--json', action='store_true',
                   help='Print the results as JSON.')
  return parser


def add_evaluate_parser(subparsers):
  """Adds the `evaluate` sub-command to an argparse `subparsers` object."""
  parser = common.add_command(
      subparsers, 'evaluate', run_evaluate,
      help='Accuracy of a classifier checkpoint on a dataset split or a '
      'folder of images.',
      description='Evaluate a checkpoint on a densenet.datasets split, or '
      'with --image-folder on a folder of class sub-folders (per-class '
      'accuracy and a confusion matrix, also drawn as a PNG). Settings not '
      'given come from what the checkpoint records: --model-dir\'s (or '
      'the checkpoint directory\'s) config.json.')
  common.add_renamed_argument(parser, '--model-dir', ['--train-dir'],
                              type=arguments.existing_dir,
                              help='A directory of `densenet train`.')
  parser.add_argument('--checkpoint', type=arguments.checkpoint_path,
                      help='Checkpoint prefix or directory (default: the '
                      'latest in --model-dir).')
  parser.add_argument('--data-dir', type=arguments.existing_dir,
                      help='TFRecord dataset directory (default: the one '
                      'of --model-dir).')
  parser.add_argument('--split',
                      help='Split to evaluate (default: test, or '
                      'validation).')
  parser.add_argument('--image-folder', type=arguments.existing_dir,
                      help='Evaluate on this folder of class sub-folders '
                      '(e.g. test/, named like the training classes) '
                      'instead of a TFRecord split.')
  parser.add_argument('--image-size', type=arguments.positive_int,
                      help='With --image-folder: side images are resized '
                      'and cropped to (default: the training image size, '
                      'else 256 then a 224 crop).')
  parser.add_argument('--confusion-png',
                      help='With --image-folder: where to draw the '
                      'confusion matrix (default: next to --output, else '
                      '<model directory>/eval/confusion_<folder>.png).')
  common.add_renamed_argument(
      parser, '--architecture', ['--model'], type=arguments.architecture,
      help='The architecture (default: the one of --model-dir or of the '
      'checkpoint).')
  parser.add_argument('--normalization',
                      help='A densenet.preprocessing mode (default: the one '
                      'of --model-dir, or the dataset\'s).')
  parser.add_argument('--batch-size', type=arguments.positive_int,
                      default=100, help='Images per evaluation step.')
  parser.add_argument('--output', help='Also write the results JSON here.')
  parser.add_argument('--json', action='store_true',
                      help='Print the results as JSON.')
  parser.add_argument('--no-progress', action='store_true',
                      help='Show no progress bar (--image-folder).')
  return parser


def run_train(args):
  """Runs `densenet train` from parsed arguments; returns the exit status."""
  augment = args.augment
  if args.dataset:
    cifar_name, paper_augment = PAPER_DATASETS[args.dataset]
    augment = paper_augment if augment is None else augment
  augment = True if augment is None else augment
  has_data = os.path.isfile(os.path.join(args.data_dir, _METADATA_FILE))
  if not (has_data or (args.dataset and args.source) or args.image_folder):
    raise common.UsageError(
        '%s holds no dataset; give --dataset and --source (a CIFAR archive) '
        'or --image-folder to build it.' % args.data_dir)
  # pylint: disable=g-import-not-at-top
  from densenet import classification
  from densenet import datasets
  from densenet import training
  if not has_data and args.dataset and args.source:
    datasets.create_tfrecords(cifar_name, args.source, args.data_dir)
  elif not has_data:
    datasets.create_image_folder_tfrecords(
        args.image_folder, args.data_dir, image_size=args.image_size,
        validation_fraction=args.validation_fraction)
  strategy = training.get_strategy(args.strategy,
                                   cluster_timeout=args.cluster_timeout)
  results = classification.train(
      args.data_dir, args.model_dir, architecture=args.architecture,
      augment=augment, batch_size=args.batch_size, epochs=args.epochs,
      num_steps=args.steps, learning_rate=args.learning_rate,
      learning_rate_decay_fractions=args.learning_rate_decay_fractions,
      learning_rate_decay=args.learning_rate_decay, momentum=args.momentum,
      nesterov=args.nesterov, weight_decay=args.weight_decay,
      dropout_rate=args.dropout_rate, normalization=args.normalization,
      initial_checkpoint=args.initial_checkpoint,
      eval_every_epochs=args.eval_every_epochs,
      checkpoint_every=args.checkpoint_every, strategy=strategy,
      seed=args.seed, progress=not args.no_progress,
      memory_efficient=args.memory_efficient,
      sync_batch_norm=args.sync_batch_norm, log_every=args.log_every)
  _print_results(results, args.json, os.path.join(
      args.model_dir, classification.RESULTS_FILE))
  return 0


def run_evaluate(args):
  """Runs `densenet evaluate` from parsed arguments; returns exit status."""
  if not (args.model_dir or args.checkpoint):
    raise common.UsageError('give --model-dir or --checkpoint.')
  if args.image_folder:
    return _evaluate_folder(args)
  for option in ('image_size', 'confusion_png'):
    if getattr(args, option) is not None:
      raise common.UsageError('--%s goes with --image-folder.' %
                              option.replace('_', '-'))
  from densenet import classification  # pylint: disable=g-import-not-at-top
  results = classification.evaluate(
      model_dir=args.model_dir, checkpoint=args.checkpoint,
      data_dir=args.data_dir, split=args.split,
      architecture=args.architecture,
      normalization=args.normalization, batch_size=args.batch_size,
      output=args.output)
  _print_results(results, args.json, args.output)
  return 0


def _evaluate_folder(args):
  """`densenet evaluate --image-folder`: accuracy, per class, confusion."""
  for option in ('data_dir', 'split', 'normalization'):
    if getattr(args, option) is not None:
      raise common.UsageError(
          '--%s is for TFRecord datasets, not --image-folder (the model\'s '
          'own normalization is used).' % option.replace('_', '-'))
  confusion_png = args.confusion_png or _default_confusion_png(args)
  # pylint: disable=g-import-not-at-top
  from densenet.classification import evaluation
  results = evaluation.evaluate_folder(
      args.image_folder, checkpoint=args.checkpoint, model_dir=args.model_dir,
      architecture=args.architecture, image_size=args.image_size,
      batch_size=args.batch_size, output=args.output,
      confusion_png=confusion_png, progress=not args.no_progress)
  if args.json:
    common.print_json(results, sort_keys=True)
    return 0
  print(evaluation.format_folder_results(results))
  print('confusion matrix picture: %s' % results['confusion_png'])
  if args.output:
    print('results: %s' % args.output)
  return 0


def _default_confusion_png(args):
  """Next to --output, else in the model directory's eval/."""
  folder = os.path.basename(os.path.normpath(args.image_folder))
  if args.output:
    return os.path.splitext(args.output)[0] + '_confusion.png'
  model_dir = args.model_dir or args.checkpoint
  if not os.path.isdir(model_dir):
    model_dir = os.path.dirname(model_dir)
  return os.path.join(model_dir, 'eval', 'confusion_%s.png' % folder)


def _print_results(results, as_json, path):
  if as_json:
    common.print_json(results, sort_keys=True)
    return
  metrics = results
  for split in ('test', 'validation'):
    metrics = results.get(split, metrics)
  if 'top1_error' in metrics:
    print('top-1 error %.2f%% (%d of %d images wrong), loss %.4f' % (
        100 * metrics['top1_error'],
        round(metrics['top1_error'] * metrics['num_examples']),
        metrics['num_examples'], metrics['loss']))
  if path:
    print('results: %s' % path)
