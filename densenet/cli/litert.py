"""LiteRT options of both console scripts: exporting and running .tflite files.

    densenet export --checkpoint CK --format litert --quantize int8 \\
        --calibration photos/ d121_int8.tflite
    densenet classify --litert d121_int8.tflite cat.jpg
    segmentation export --model-dir runs/seg --format litert seg.tflite
    segmentation predict --litert seg.tflite --output-dir masks a.jpg

`add_export_arguments` adds `--format`, `--input-size`, `--quantize`,
`--calibration`, `--calibration-size` to an export command and
`export_format` checks them; `add_run_arguments` adds `--litert` and
`--threads`. Every mistake is a `common.UsageError` (exit status 2), the
missing `ai-edge-litert` extra included. No TensorFlow at load time.
"""

from densenet.cli import arguments
from densenet.cli import common
from densenet.serve import litert_runtime

FORMATS = ('savedmodel', 'litert')
_LITERT_ONLY = ('input_size', 'quantize', 'calibration')


def add_export_arguments(parser, input_size_help):
  """Adds the LiteRT export options to an export command's parser."""
  group = parser.add_argument_group(
      'LiteRT', 'One .tflite file (builtin ops only) with the metadata '
      'classify / predict / evaluate --litert read.')
  group.add_argument('--format', choices=FORMATS,
                     help='What to write (default: litert if the output '
                     'ends with .tflite, else savedmodel).')
  group.add_argument('--input-size', type=arguments.height_width,
                     metavar='H,W',
                     help=input_size_help)
  group.add_argument('--quantize', choices=litert_runtime.QUANTIZATIONS,
                     help='Post-training quantization (TFLiteConverter): '
                     'dynamic (int8 weights), int8 (int8 weights and '
                     'activations, float input/output; needs '
                     '--calibration) or float16 (float16 weights).')
  group.add_argument('--calibration', metavar='FOLDER|GLOB',
                     help='int8 calibration images: an image folder '
                     '(searched recursively) or a glob of TFRecords of this '
                     'library (classification or segmentation).')
  group.add_argument('--calibration-size', type=arguments.positive_int,
                     default=litert_runtime.DEFAULT_CALIBRATION_SIZE,
                     help='Calibration images at most (~100-500).')


def export_format(args, output):
  """The format to write ('savedmodel' or 'litert'), the options checked.

  Raises:
    common.UsageError: For LiteRT options without the LiteRT format, int8
      without --calibration (or --calibration without int8), or a missing
      ai-edge-litert.
  """
  chosen = args.format or ('litert' if output.endswith('.tflite') else
                           'savedmodel')
  if chosen != 'litert':
    given = ['--' + name.replace('_', '-') for name in _LITERT_ONLY
             if getattr(args, name) is not None]
    if given:
      raise common.UsageError('%s: only for --format litert.' %
                              ', '.join(given))
    return chosen
  if args.quantize == 'int8' and not args.calibration:
    raise common.UsageError(
        '--quantize int8 needs --calibration: an image folder or a TFRecord '
        'glob of ~100-500 representative images.')
  if args.calibration and args.quantize != 'int8':
    raise common.UsageError('--calibration is for --quantize int8 only.')
  require()
  return chosen


def add_run_arguments(parser, instead_of):
  """Adds `--litert FILE` (run a .tflite instead of `instead_of`) and
  `--threads`."""
  parser.add_argument('--litert', type=arguments.existing_file, metavar='FILE',
                      help='Run this .tflite (of an export --format litert) '
                      'instead of %s.' % instead_of)
  parser.add_argument('--threads', type=arguments.positive_int,
                      help='LiteRT threads (default: the cores available).')


def check_run(args, alternative, option):
  """Checks that exactly one of `--litert` and `option` was given.

  Args:
    args: The parsed arguments.
    alternative: The value of `option` (None if not given).
    option: Its flag, e.g. '--checkpoint'.

  Raises:
    common.UsageError: If both or neither were given, `--threads` without
      `--litert`, or ai-edge-litert is missing with `--litert`.
  """
  if bool(args.litert) == bool(alternative):
    raise common.UsageError('give either %s or --litert%s.' % (
        option, ', not both' if args.litert else ''))
  if args.threads and not args.litert:
    raise common.UsageError('--threads is for --litert.')
  if args.litert:
    require()


def require():
  """Raises `common.UsageError` (one line) unless ai-edge-litert imports."""
  try:
    litert_runtime.require()
  except ImportError as error:
    raise common.UsageError(str(error)) from None


def describe(metadata, path):
  """'Wrote LiteRT model PATH (...)' for an export's metadata."""
  import os  # pylint: disable=g-import-not-at-top
  size = os.path.getsize(path)
  return ('Wrote LiteRT model %s: %s, input %dx%d, %s, %s.' % (
      os.path.abspath(path), metadata['task'], metadata['input_size'][0],
      metadata['input_size'][1],
      'float32' if metadata['quantization'] == 'none' else
      metadata['quantization'] + ' quantized',
      '%.1f MB' % (size / 1e6) if size >= 1e6 else '%d KB' % (size // 1000)))
