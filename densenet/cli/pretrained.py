"""`densenet convert`, `classify` and `export`: pretrained weights in use.

    densenet convert densenet121_weights_tf_dim_ordering_tf_kernels.h5 \\
        /tmp/densenet_121/model.ckpt
    densenet classify cat.jpg dog.png --checkpoint /tmp/densenet_121/model.ckpt
    densenet export --checkpoint /tmp/densenet_121/model.ckpt /tmp/export/1
    densenet export --checkpoint /tmp/densenet_121/model.ckpt d121.tflite
    densenet classify cat.jpg --litert d121.tflite

Registrars of `densenet.cli`; no TensorFlow at load time. `--model`, the
0.1 name of `--architecture`, still works for one release (hidden).
"""

import os

from densenet.cli import arguments
from densenet.cli import common
from densenet.cli import litert

# ---------------------------------------------------------------------------
# densenet convert


def add_convert_parser(subparsers):
  """`densenet convert SOURCE OUTPUT`: pretrained weights -> our checkpoint."""
  parser = common.add_command(
      subparsers, 'convert', run_convert,
      help='Convert Keras / pudae / torchvision DenseNet weights into a '
      'checkpoint of this library.',
      description='Convert pretrained DenseNet weights into a TF checkpoint '
      'of densenet_121/169/201/161 that records the BN epsilon and the input '
      'normalization of its source.')
  parser.add_argument(
      'source', type=arguments.checkpoint_path,
      help='Keras .h5/.keras file, pudae checkpoint prefix '
      '(tf-densenet121.ckpt), or torchvision state dict as .npz.')
  parser.add_argument('output', help='Output checkpoint prefix, e.g. '
                      '/tmp/densenet_121/model.ckpt.')
  parser.add_argument('--source-format', choices=('keras', 'pudae',
                                                  'torchvision'),
                      help='Format of SOURCE (default: detected).')
  common.add_renamed_argument(
      parser, '--architecture', ['--model'], type=arguments.architecture_name,
      help='Target architecture (default: inferred from the weights), e.g. '
      'densenet_121.')


def run_convert(args):
  if (args.source_format == 'pudae'
      and not os.path.isfile(args.source + '.index')):
    raise common.UsageError(
        '--source-format pudae needs a TF checkpoint prefix (%s.index does '
        'not exist).' % args.source)
  from densenet.weights import convert  # pylint: disable=g-import-not-at-top
  metadata = convert.convert(args.source, args.output,
                             source_format=args.source_format,
                             architecture=args.architecture, progress=True)
  print('Wrote %s: %s from %s weights (num_classes=%s, BN epsilon %g, '
        "normalization '%s')." % (args.output, metadata['model'],
                                  metadata['source'], metadata['num_classes'],
                                  metadata['batch_norm_epsilon'],
                                  metadata['normalization']))
  return 0


# ---------------------------------------------------------------------------
# densenet classify


def _add_weights_arguments(parser, required=True):
  parser.add_argument('--checkpoint', required=required,
                      type=arguments.checkpoint_path,
                      help='Converted or pudae checkpoint prefix, a Keras '
                      '.h5/.keras file, or a checkpoint of `densenet train` '
                      '(runs/x/model.ckpt-N, or the model directory for its '
                      'latest): its config.json gives the architecture and '
                      'its dataset the class names and image size.')
  common.add_renamed_argument(
      parser, '--architecture', ['--model'], type=arguments.architecture,
      help='A densenet.MODELS name or densenet_X JSON (default: from the '
      'checkpoint or its config.json), e.g. densenet_121.')
  parser.add_argument('--resize-size', type=arguments.positive_int,
                      help='Shorter side after resizing (default: the image '
                      'size the model was trained at, else 256).')
  parser.add_argument('--crop-size', type=arguments.positive_int,
                      help='Side of the central crop (default: the image '
                      'size the model was trained at, else 224).')


def add_classify_parser(subparsers):
  """`densenet classify IMAGE...`: top-k ImageNet classes of image files."""
  parser = common.add_command(
      subparsers, 'classify', run_classify,
      help='Print the top-k classes of images.',
      description='Classify image files (JPEG, PNG, WebP...) with pretrained '
      'weights. Prints one line per class: image, rank, probability, name. '
      'Files that are missing or cannot be decoded are reported on stderr '
      'and make the exit status 1; the others are still classified (as '
      '`segmentation predict` does).')
  parser.add_argument('images', nargs='+', metavar='IMAGE',
                      help='Image files to classify.')
  _add_weights_arguments(parser, required=False)
  litert.add_run_arguments(parser, '--checkpoint (its metadata gives the '
                           'classes and the crop; --resize-size overrides)')
  parser.add_argument('--top', type=arguments.positive_int,
                      help='Classes per image (default: 5, or all the '
                      'classes if fewer).')
  parser.add_argument('--batch-size', type=arguments.positive_int,
                      default=16, help='Images per network run.')
  parser.add_argument('--json', action='store_true',
                      help='Print one JSON document instead of lines.')


def run_classify(args):
  litert.check_run(args, args.checkpoint, '--checkpoint')
  # pylint: disable=g-import-not-at-top
  from densenet.serve import pretrained
  from densenet.weights import convert
  from densenet.weights import runs
  if args.litert:
    model = _litert_classifier(args)
    top = pretrained.check_top(args.top, len(model.class_names))
  else:
    weights, metadata = convert.read_weights(args.checkpoint,
                                             architecture=args.architecture)
    runs.check_classifier(metadata, args.checkpoint)
    top = pretrained.check_top(args.top, metadata['num_classes'])
    model = pretrained.Classifier(
        weights, metadata, architecture=args.architecture,
        resize_size=args.resize_size, crop_size=args.crop_size,
        batch_size=args.batch_size)
  try:
    results, errors = classify_images(model, args.images, top,
                                      args.batch_size)
  finally:
    model.close()
  if args.json:
    common.print_json(format_document(args.images, results, errors))
  elif results:
    print(format_lines(args.images, results))
  return common.report_unreadable('densenet classify', errors)


def _litert_classifier(args):
  """The `--litert` file; `--crop-size` must be its input size if given,
  `--resize-size` replaces the exported one if given."""
  from densenet.serve import litert_runtime  # pylint: disable=g-import-not-at-top
  if args.architecture:
    raise common.UsageError('--architecture is for --checkpoint (the .tflite '
                            'holds its network).')
  model = litert_runtime.LiteRTClassifier(args.litert, args.threads,
                                          args.batch_size, args.resize_size)
  if args.crop_size not in (None, model.crop_size):
    raise common.UsageError(
        '--crop-size %d: %s takes %dx%d crops (export it again with '
        '--input-size for another size).' % (
            args.crop_size, args.litert, model.crop_size, model.crop_size))
  if model.resize_size < model.crop_size:
    raise common.UsageError('--resize-size (%d) must be >= the crop (%d).' %
                            (model.resize_size, model.crop_size))
  return model


def classify_images(model, paths, top=None, batch_size=16):
  """Classifies image files in batches, collecting the unreadable ones.

  Args:
    model: A `densenet.serve.pretrained.Classifier`.
    paths: Image file paths.
    top: Classes per image.
    batch_size: Images per network run.

  Returns:
    `(results, errors)`: dicts from path to a list of `top` (name,
    probability) pairs, and from path to the error message.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top

  from densenet import preprocessing  # pylint: disable=g-import-not-at-top
  results, errors = {}, {}
  batch_paths, arrays = [], []

  def flush():
    if arrays:
      results.update(zip(batch_paths, model.predict(np.stack(arrays), top)))
      del batch_paths[:], arrays[:]

  for path in paths:
    try:
      arrays.append(preprocessing.load_image(path, model.resize_size,
                                             model.crop_size))
      batch_paths.append(path)
    except (OSError, ValueError) as error:
      errors[path] = str(error) or type(error).__name__
    if len(arrays) == batch_size:
      flush()
  flush()
  return results, errors


def format_lines(paths, results):
  """One 'path<TAB>rank<TAB>probability<TAB>name' line per class."""
  return '\n'.join('%s\t%d\t%.4f\t%s' % (path, rank, probability, name)
                   for path in paths
                   for rank, (name, probability) in enumerate(
                       results.get(path, ()), 1))


def format_json(paths, results, errors):
  """A JSON list: {image, predictions: [{class, probability}]} or
  {image, error}."""
  return common.json_text(format_document(paths, results, errors))


def format_document(paths, results, errors):
  """The list `format_json` writes."""
  document = []
  for path in paths:
    if path in errors:
      document.append({'image': path, 'error': errors[path]})
    else:
      document.append({'image': path, 'predictions': [
          {'class': name, 'probability': probability}
          for name, probability in results[path]]})
  return document


# ---------------------------------------------------------------------------
# densenet export


def add_export_parser(subparsers):
  """`densenet export EXPORT_DIR`: a SavedModel for TF Serving, or a
  LiteRT file."""
  parser = common.add_command(
      subparsers, 'export', run_export,
      help='Write a SavedModel (serving_default: encoded image bytes; '
      'serving_images: float images) or a LiteRT .tflite file.',
      description='Export a pretrained classifier as a SavedModel that runs '
      'without this library (tf.saved_model.load, TF Serving), or as one '
      'LiteRT .tflite file (--format litert).')
  parser.add_argument('export_dir', help='Directory to create, e.g. '
                      '/tmp/export/1 (TF Serving wants a version number); '
                      'with --format litert the .tflite file to write.')
  _add_weights_arguments(parser)
  parser.add_argument('--top', type=arguments.positive_int,
                      help='k of the top_k outputs of a SavedModel (default: '
                      '5, or all the classes if fewer).')
  litert.add_export_arguments(
      parser, 'Input height and width, a square (default: the crop size); '
      'any batch.')


def run_export(args):
  if litert.export_format(args, args.export_dir) == 'litert':
    from densenet.serve import litert as litert_export  # pylint: disable=g-import-not-at-top
    metadata = litert_export.export_classifier(
        args.checkpoint, args.export_dir, architecture=args.architecture,
        input_size=args.input_size, quantize=args.quantize,
        calibration=args.calibration,
        calibration_size=args.calibration_size,
        resize_size=args.resize_size, crop_size=args.crop_size)
    print(litert.describe(metadata, args.export_dir))
    return 0
  from densenet.serve import export  # pylint: disable=g-import-not-at-top
  export.export_saved_model(args.checkpoint, args.export_dir,
                            architecture=args.architecture, top=args.top,
                            resize_size=args.resize_size,
                            crop_size=args.crop_size)
  print('Wrote SavedModel %s.' % os.path.abspath(args.export_dir))
  return 0
