"""Export a pretrained classifier as a SavedModel for serving.

    from densenet.serve import export
    export.export_saved_model('/tmp/densenet_121/model.ckpt', '/tmp/export/1')

The SavedModel holds only core TensorFlow ops (no tf-slim, no Python code),
and the network as `densenet.serve.rewrite.optimize` rewrites it (weights
constant, batch norm folded),
so `tf.saved_model.load` and TF Serving run it. Its signatures:

  serving_default  inputs:  image_bytes  string `[batch]`, encoded JPEG / PNG
                                         / GIF / BMP / WebP (decoded, shorter
                                         side resized, centre-cropped in the
                                         graph; see
                                         `preprocessing.tf_decode_and_crop`)
  serving_images   inputs:  images       float32 `[batch, height, width, 3]`
                                         RGB in [0, 255], already resized and
                                         cropped (normalized in the graph)
  Both return: logits `[batch, num_classes]`, probabilities
  `[batch, num_classes]`, top_k_indices int32 `[batch, k]`,
  top_k_probabilities `[batch, k]`, top_k_names string `[batch, k]`.

The input name `image_bytes` ends in `_bytes`, so TF Serving's REST API
accepts `{"instances": [{"b64": "..."}]}`.
"""

import os

import tensorflow as tf

from densenet.weights import assign
from densenet.weights import convert
from densenet.weights import runs
from densenet.serve import rewrite
from densenet import preprocessing
from densenet.serve import pretrained
from densenet import spec as spec_lib
from densenet._env import lazy

BYTES_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
IMAGES_SIGNATURE = 'serving_images'


@lazy.renamed_arguments(model_name='architecture')
def export_saved_model(checkpoint, export_dir, architecture=None, top=None,
                       resize_size=None, crop_size=None):
  """Writes a SavedModel classifying images with pretrained weights.

  Args:
    checkpoint: Anything `convert.read_weights` reads (a training run's
      directory too: its class names are the export's top_k_names).
    export_dir: Directory to create (must not exist).
    architecture: An architecture name or `densenet_X` config, or None to
      take it from the weights.
    top: k of the top_k outputs (default 5, or all the classes if fewer).
    resize_size, crop_size: Geometry of the `image_bytes` signature
      (default `pretrained.image_geometry`: a trained model's image size,
      else 256 and 224).

  Returns:
    `export_dir`.

  Raises:
    ValueError: If `export_dir` exists, or for bad weights.
  """
  if os.path.exists(export_dir):
    raise ValueError('export_dir %r already exists.' % (export_dir,))
  weights, metadata = convert.read_weights(checkpoint,
                                           architecture=architecture)
  architecture = architecture or metadata['model']
  runs.check_classifier(metadata, checkpoint)
  top = pretrained.check_top(top, metadata['num_classes'])
  names = pretrained.names_of(metadata)
  resize_size, crop_size = pretrained.image_geometry(metadata, resize_size,
                                                     crop_size)
  with tf.Graph().as_default() as graph:
    image_bytes = tf.compat.v1.placeholder(tf.string, [None],
                                           name='image_bytes')
    decoded = tf.map_fn(
        lambda data: preprocessing.tf_decode_and_crop(data, resize_size,
                                                      crop_size),
        image_bytes, fn_output_signature=tf.float32)
    # Feeding `images` cuts off the decoding branch: one network, two inputs.
    images = tf.compat.v1.placeholder_with_default(
        decoded, [None, None, None, 3], name='images')
    _, logits = pretrained.build_classifier(architecture, metadata, images)
    probabilities = tf.nn.softmax(logits)
    top_probabilities, top_indices = tf.nn.top_k(probabilities, k=top)
    names = tf.constant(names)
    outputs = {
        'logits': logits,
        'probabilities': probabilities,
        'top_k_indices': top_indices,
        'top_k_probabilities': top_probabilities,
        'top_k_names': tf.gather(names, top_indices),
    }
    init_fn = assign.assign_fn(weights,
                                scope=spec_lib.resolve(architecture).scope)
    with tf.compat.v1.Session(graph=graph) as session:
      init_fn(session)
      session, (image_bytes, images, outputs) = rewrite.optimize(
          session, (image_bytes, images, outputs))
      signature = tf.compat.v1.saved_model.predict_signature_def
      signatures = {
          BYTES_SIGNATURE: signature({'image_bytes': image_bytes}, outputs),
          IMAGES_SIGNATURE: signature({'images': images}, outputs),
      }
      with session.graph.as_default():
        builder = tf.compat.v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(
            session, [tf.saved_model.SERVING], signature_def_map=signatures,
            strip_default_attrs=True)
        builder.save()
      session.close()
  return export_dir
