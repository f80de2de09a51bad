"""Export to LiteRT (.tflite): float32, or quantized dynamic / int8 / float16.

    from densenet.serve import litert
    litert.export_classifier('ckpt/densenet_121/model.ckpt', 'd121.tflite')
    litert.export_classifier('ckpt/densenet_121/model.ckpt', 'd121_int8.tflite',
                             quantize='int8', calibration='photos/')

The network is the inference graph `densenet export` builds
(`pretrained.build_classifier`, then `rewrite.optimize`), at a fixed height
and width and any batch, converted by TensorFlow's `TFLiteConverter` with
builtin ops only (`TFLITE_BUILTINS`, `TFLITE_BUILTINS_INT8` for int8), so
the file runs on every LiteRT runtime (Android, iOS, `ai-edge-litert`); a
graph that would need Select TF ops fails to convert. Quantization is the
converter's post-training quantization (`optimizations=[DEFAULT]`):
'dynamic' (int8 weights, float activations), 'float16' (float16 weights),
'int8' (int8 weights and activations, float32 input and output, calibrated
on `calibration` images; the graph is first rewritten by
`int8_rewrite.for_int8`). The file carries `densenet.json` metadata
(`litert_runtime`); `segmentation.export` uses `convert` and `save` too.
"""

import os
import uuid

import numpy as np
import tensorflow as tf
from tqdm import tqdm

import densenet
from densenet import preprocessing
from densenet import spec as spec_lib
from densenet.serve import calibration as calibration_lib
from densenet.serve import int8_rewrite
from densenet.serve import litert_runtime
from densenet.serve import pretrained
from densenet.serve import rewrite
from densenet.weights import assign
from densenet.weights import convert as convert_lib
from densenet.weights import runs

QUANTIZATIONS = litert_runtime.QUANTIZATIONS
INPUT_NAME = litert_runtime.INPUT_NAME


class ConversionError(RuntimeError):
  """The converter could not make a builtin-ops LiteRT model."""


def check_export(output, quantize=None, calibration=None):
  """What can be checked before an export starts.

  Raises:
    ValueError: If `output` exists or is a directory, `quantize` is not one
      of `QUANTIZATIONS` (or None), or 'int8' has no `calibration`.
    ImportError: Without ai-edge-litert (`litert_runtime.INSTALL_HINT`).
  """
  if quantize is not None and quantize not in QUANTIZATIONS:
    raise ValueError('--quantize must be one of %s, got %r.' %
                     (', '.join(QUANTIZATIONS), quantize))
  if quantize == 'int8' and not calibration:
    raise ValueError('--quantize int8 needs --calibration: an image folder '
                     'or a TFRecord glob of ~100-500 representative images.')
  if calibration and quantize != 'int8':
    raise ValueError('--calibration is for --quantize int8 only.')
  if os.path.exists(output):
    raise ValueError('%s already exists; remove it or choose another path.'
                     % (output,))
  litert_runtime.require()


def _serving_function(graph_def, input_shape, outputs):
  """A concrete function `images -> {output: tensor}` of a frozen GraphDef."""

  def import_graph():
    tf.compat.v1.import_graph_def(graph_def, name='')

  wrapped = tf.compat.v1.wrap_function(import_graph, [])
  pruned = wrapped.prune(
      [wrapped.graph.get_tensor_by_name(INPUT_NAME + ':0')],
      {name: wrapped.graph.get_tensor_by_name(name + ':0')
       for name in outputs})

  @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32,
                                              name=INPUT_NAME)])
  def serve(images):
    return {name: tf.identity(tensor, name=name)
            for name, tensor in pruned(images).items()}

  holder = tf.Module()
  holder.pruned = pruned
  return serve.get_concrete_function(), holder


def convert(graph_def, input_size, outputs, quantize=None,
            calibration_images=None, progress=True):
  """A frozen inference GraphDef -> .tflite bytes (builtin ops only).

  Args:
    graph_def: Frozen (`rewrite.optimize`d) GraphDef whose float32 input
      Placeholder is named 'images' (`[batch, height, width, 3]`).
    input_size: `(height, width)` of the model's input (any batch).
    outputs: Names of the nodes to output, in the signature under those
      names.
    quantize: None (float32) or one of `QUANTIZATIONS`.
    calibration_images: For 'int8': a list of callables, each returning
      one float32 `[height, width, 3]` image (loaded as the converter asks).
    progress: Whether to show the calibration's progress.

  Returns:
    The flatbuffer (bytes), without metadata.

  Raises:
    ValueError: For 'int8' without `calibration_images`.
    ConversionError: If the graph needs ops outside LiteRT's builtins.
  """
  if quantize == 'int8':
    if not calibration_images:
      raise ValueError('int8 quantization needs calibration images.')
    graph_def = int8_rewrite.for_int8(graph_def, [INPUT_NAME] + list(outputs))
  function, holder = _serving_function(
      graph_def, [None] + list(input_size) + [3], outputs)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([function],
                                                              holder)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if quantize:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantize == 'float16':
    converter.target_spec.supported_types = [tf.float16]
  elif quantize == 'int8':
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    def representative_dataset():
      for load in tqdm(calibration_images, desc='calibrate', unit='image',
                       disable=not progress):
        yield [np.asarray(load(), np.float32)[None]]

    converter.representative_dataset = representative_dataset
  try:
    return converter.convert()
  except Exception as error:  # The converter's ConverterError (internal).
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if 'error:' in line] or lines or [
        type(error).__name__]
    raise ConversionError('LiteRT conversion (builtin ops only) failed: %s'
                          % reasons[0]) from error


def save(output, content, metadata):
  """Writes `content` with `metadata` (`litert_runtime.with_metadata`) to
  `output`, atomically (a temporary file renamed); creates its directory.

  Returns:
    `output`.
  """
  content = litert_runtime.with_metadata(content, dict(
      metadata, format_version=litert_runtime.FORMAT_VERSION,
      densenet_version=densenet.__version__))
  directory = os.path.dirname(os.path.abspath(output))
  os.makedirs(directory, exist_ok=True)
  temporary = os.path.join(directory, '.tmp-%s-%s' % (
      uuid.uuid4().hex[:8], os.path.basename(output)))
  try:
    with open(temporary, 'wb') as f:
      f.write(content)
    os.replace(temporary, output)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)
  return output


def calibration_loaders(calibration, size, prepare):
  """Loaders of up to `size` images of `calibration` (see
  `calibration.sources`), each `prepare(source)` -> float32 image."""
  return [lambda source=source: prepare(source)
          for source in calibration_lib.sources(calibration, size)]


def export_classifier(checkpoint, output, architecture=None, input_size=None,
                      quantize=None, calibration=None,
                      calibration_size=calibration_lib.DEFAULT_SIZE,
                      resize_size=None, crop_size=None, progress=True):
  """Writes a classifier as one .tflite file.

  Args:
    checkpoint: Anything `convert.read_weights` reads (a training run's
      directory too: its class names and image size are the file's).
    output: The .tflite path (must not exist).
    architecture: An architecture name or `densenet_X` config, or None to
      take it from the weights.
    input_size: `(height, width)`, a square (the centre crop); default
      `(crop_size, crop_size)`.
    quantize: None or one of `QUANTIZATIONS`.
    calibration: For 'int8': an image folder or TFRecord glob.
    calibration_size: How many calibration images at most.
    resize_size, crop_size: The geometry of `densenet classify` (recorded;
      calibration images get it too); default `pretrained.image_geometry`.
    progress: Whether to show the calibration's progress.

  Returns:
    The metadata written (see `litert_runtime`).

  Raises:
    ValueError: For bad arguments (see `check_export`), a non-square
      `input_size` or one below the network's minimum, bad weights or
      calibration data.
    ImportError: Without ai-edge-litert.
    ConversionError: If conversion fails.
  """
  check_export(output, quantize, calibration)
  if input_size is not None:
    input_size = tuple(int(side) for side in input_size)
    if len(input_size) != 2 or input_size[0] != input_size[1]:
      raise ValueError('--input-size of a classifier must be a square N,N '
                       '(its centre crop), got %s.' % (input_size,))
    if crop_size not in (None, input_size[0]):
      raise ValueError('--input-size %s and --crop-size %d differ: the input '
                       'is the crop.' % (input_size, crop_size))
    crop_size = input_size[0]
  sources = calibration and calibration_lib.sources(calibration,
                                                    calibration_size)
  weights, metadata = convert_lib.read_weights(checkpoint,
                                               architecture=architecture)
  architecture = architecture or metadata['model']
  runs.check_classifier(metadata, checkpoint)
  names = pretrained.names_of(metadata)
  resize_size, crop_size = pretrained.image_geometry(metadata, resize_size,
                                                     crop_size)
  if resize_size < crop_size:
    raise ValueError('--resize-size (%d) must be >= the crop (%d).' %
                     (resize_size, crop_size))
  input_size = (crop_size, crop_size)
  loaders = sources and [
      lambda source=source: preprocessing.load_image(source, resize_size,
                                                     crop_size)
      for source in sources]
  with tf.Graph().as_default() as graph:
    images = tf.compat.v1.placeholder(tf.float32, (None,) + input_size + (3,),
                                      name=INPUT_NAME)
    _, logits = pretrained.build_classifier(architecture, metadata, images)
    logits = tf.identity(logits, name='logits')
    probabilities = tf.nn.softmax(logits, name='probabilities')
    init_fn = assign.assign_fn(weights,
                               scope=spec_lib.resolve(architecture).scope)
    session = tf.compat.v1.Session(graph=graph)
    init_fn(session)
    session, _ = rewrite.optimize(session, (images, logits, probabilities))
    graph_def = session.graph.as_graph_def()
    session.close()
  outputs = litert_runtime.OUTPUTS['classification']
  content = convert(graph_def, input_size, outputs, quantize, loaders,
                    progress)
  description = {
      'task': 'classification',
      'architecture': architecture,
      'num_classes': metadata['num_classes'],
      'class_names': names,
      'normalization': metadata['normalization'],
      'input_size': list(input_size),
      'resize_size': resize_size,
      'outputs': list(outputs),
      'quantization': quantize or 'none',
      'calibration_images': len(loaders) if loaders else 0,
      'weights_source': metadata.get('source'),
  }
  save(output, content, description)
  return description
