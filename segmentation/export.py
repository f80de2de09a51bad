"""Export a trained segmentation model: a SavedModel, or one LiteRT file.

    from segmentation import export
    export.export_saved_model('runs/seg', 'export/seg/1')
    export.export_litert('runs/seg', 'seg.tflite', input_size=(513, 513),
                         quantize='int8', calibration='records/train-*')

Both hold the network of `tasks.predict` at one scale as
`densenet.serve.rewrite` optimizes it (weights constant, batch norm folded):
RGB images in [0, 255] are normalized, padded at the bottom and right to a
multiple of the output stride, and the logits cropped back
(`multiscale.logits_at_any_size`); the outputs are `classes` (int32 `[batch,
height, width]`, the argmax) and `probabilities` (float32 `[batch, height,
width, num_classes]`, the softmax), at the input size.

The SavedModel needs only TensorFlow. Its signatures:
  serving_default  inputs:  image_bytes  string `[batch]`, encoded JPEG /
                                         PNG / GIF / BMP (of one size per
                                         call: they are stacked)
  serving_images   inputs:  images       float32 `[batch, height, width, 3]`
                                         RGB in [0, 255], any size
The LiteRT file takes `images` of one size (`input_size`, default 513x513;
`litert_runtime` for its metadata); `segmentation predict --litert` resizes
other images to it and the class map back (nearest).
"""

import os

import tensorflow as tf

from densenet import preprocessing
from densenet.serve import calibration as calibration_lib
from densenet.serve import litert
from densenet.serve import litert_runtime
from densenet.serve import rewrite
from segmentation import litert as segmentation_litert
from segmentation import multiscale
from segmentation import tasks

DEFAULT_INPUT_SIZE = (513, 513)
OUTPUTS = litert_runtime.OUTPUTS['segmentation']
BYTES_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
IMAGES_SIGNATURE = 'serving_images'


def inference_graph_def(model_dir, checkpoint=None, input_size=None):
  """The frozen, optimized network of a model directory.

  Args:
    model_dir: A directory of `segmentation train`.
    checkpoint: A checkpoint prefix (default: the latest of `model_dir`).
    input_size: `(height, width)` of the input, or None for any size.

  Returns:
    `(graph_def, config, checkpoint, global_step)`: the GraphDef maps the
    Placeholder 'images' (float32 `[batch, height, width, 3]`, RGB in
    [0, 255]) to the nodes 'classes' and 'probabilities'.

  Raises:
    ValueError: No checkpoint, or `input_size` below the network's minimum.
  """
  model, config, checkpoint, step = tasks.load_model(model_dir, checkpoint)
  shape = [None] + (list(input_size) if input_size else [None, None]) + [3]
  normalize = config.spec().normalizer()

  @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32,
                                              name='images')],
               autograph=False)
  def network(images):
    logits = multiscale.logits_at_any_size(
        lambda inputs: model(inputs, training=False), normalize(images),
        config.output_stride)
    return (tf.identity(tf.argmax(logits, -1, output_type=tf.int32),
                        name='classes'),
            tf.identity(tf.nn.softmax(logits), name='probabilities'))

  frozen = rewrite.frozen_graph_def(network.get_concrete_function())
  return (rewrite.optimize_graph_def(frozen, ['images'] + list(OUTPUTS)),
          config, checkpoint, step)


def export_saved_model(model_dir, export_dir, checkpoint=None):
  """Writes a SavedModel segmenting encoded or float images of any size.

  Args:
    model_dir: A directory of `segmentation train`.
    export_dir: Directory to create (must not exist).
    checkpoint: A checkpoint prefix (default: the latest of `model_dir`).

  Returns:
    `export_dir`.

  Raises:
    ValueError: If `export_dir` exists or there is no checkpoint.
  """
  if os.path.exists(export_dir):
    raise ValueError('export_dir %r already exists.' % (export_dir,))
  graph_def, _, _, _ = inference_graph_def(model_dir, checkpoint)
  with tf.Graph().as_default() as graph:
    image_bytes = tf.compat.v1.placeholder(tf.string, [None],
                                           name='image_bytes')
    decoded = tf.map_fn(
        lambda data: tf.cast(preprocessing.tf_decode(data), tf.float32),
        image_bytes, fn_output_signature=tf.TensorSpec([None, None, 3],
                                                        tf.float32))
    # Feeding `images` cuts off the decoding branch: one network, two inputs.
    images = tf.compat.v1.placeholder_with_default(
        decoded, [None, None, None, 3], name='images')
    classes, probabilities = tf.compat.v1.import_graph_def(
        graph_def, input_map={'images:0': images},
        return_elements=[name + ':0' for name in OUTPUTS], name='network')
    outputs = {'classes': classes, 'probabilities': probabilities}
    signature = tf.compat.v1.saved_model.predict_signature_def
    with tf.compat.v1.Session(graph=graph) as session:
      builder = tf.compat.v1.saved_model.Builder(export_dir)
      builder.add_meta_graph_and_variables(
          session, [tf.saved_model.SERVING], signature_def_map={
              BYTES_SIGNATURE: signature({'image_bytes': image_bytes},
                                         outputs),
              IMAGES_SIGNATURE: signature({'images': images}, outputs)},
          strip_default_attrs=True)
      builder.save()
  return export_dir


def export_litert(model_dir, output, checkpoint=None,
                  input_size=DEFAULT_INPUT_SIZE, quantize=None,
                  calibration=None,
                  calibration_size=calibration_lib.DEFAULT_SIZE,
                  progress=True):
  """Writes the model as one .tflite file (see `densenet.serve.litert`).

  Args:
    model_dir: A directory of `segmentation train`.
    output: The .tflite path (must not exist).
    checkpoint: A checkpoint prefix (default: the latest of `model_dir`).
    input_size: `(height, width)` of the model's input.
    quantize: None or one of `litert.QUANTIZATIONS`.
    calibration: For 'int8': an image folder or TFRecord glob; the images
      are resized to `input_size`, as `predict --litert` does.
    calibration_size: How many calibration images at most.
    progress: Whether to show the calibration's progress.

  Returns:
    The metadata written (see `densenet.serve.litert_runtime`).

  Raises:
    ValueError: For bad arguments (`litert.check_export`), an `input_size`
      below the network's minimum, or bad calibration data.
    ImportError: Without ai-edge-litert.
    densenet.serve.litert.ConversionError: If conversion fails.
  """
  litert.check_export(output, quantize, calibration)
  input_size = tuple(int(side) for side in input_size)
  loaders = calibration and litert.calibration_loaders(
      calibration, calibration_size,
      lambda source: segmentation_litert.resize_image(source, input_size))
  graph_def, config, _, step = inference_graph_def(model_dir, checkpoint,
                                                   input_size)
  content = litert.convert(graph_def, input_size, OUTPUTS, quantize, loaders,
                           progress)
  description = {
      'task': 'segmentation',
      'architecture': config.architecture,
      'head': config.head,
      'output_stride': config.output_stride,
      'num_classes': config.num_classes,
      'class_names': config.names(),
      'normalization': config.normalization,
      'input_size': list(input_size),
      'outputs': list(OUTPUTS),
      'quantization': quantize or 'none',
      'calibration_images': len(loaders) if loaders else 0,
      'global_step': step,
  }
  litert.save(output, content, description)
  return description
