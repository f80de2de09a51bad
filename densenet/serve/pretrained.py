"""Classify images with pretrained weights in three lines (notebook helpers).

    from densenet.serve.pretrained import load_pretrained
    model = load_pretrained('densenet_121', '/tmp/densenet_121/model.ckpt')
    model.predict(['cat.jpg', 'dog.png'])   # [[('tabby', 0.61), ...], ...]

`load_pretrained` accepts anything `densenet.weights.convert.read_weights`
reads: a converted checkpoint (its metadata gives the model, BN epsilon and
input normalization), a training run's checkpoint or directory (its
config.json gives them, its dataset the class names and image size), a pudae
checkpoint, a Keras `.h5`/`.keras` file or model, or a torchvision state
dict. The network runs in its own `tf.Graph` and `tf.compat.v1.Session`, as
`densenet.serve.rewrite.optimize` rewrites it (batch norm folded, weights
constant).
"""

import importlib.resources

import numpy as np
from PIL import Image
import tensorflow as tf

from densenet import preprocessing
from densenet import spec as spec_lib
from densenet._env import lazy
from densenet.serve import rewrite
from densenet.weights import assign
from densenet.weights import convert
from densenet.weights import runs

IMAGENET_CLASSES_FILE = 'data/imagenet_classes.txt'


def imagenet_class_names():
  """The 1000 ImageNet class names (Keras' `decode_predictions` names), by
  index."""
  text = importlib.resources.files('densenet').joinpath(
      IMAGENET_CLASSES_FILE).read_text(encoding='utf-8')
  names = text.splitlines()
  if len(names) != 1000:
    raise RuntimeError('%s has %d names, expected 1000.' %
                       (IMAGENET_CLASSES_FILE, len(names)))
  return names


def class_names(num_classes):
  """ImageNet names for 1000 classes, else the class indices as strings."""
  if num_classes == 1000:
    return imagenet_class_names()
  return [str(i) for i in range(num_classes)]


def names_of(metadata):
  """The class names of weights: those their run's dataset recorded
  (`metadata['class_names']`), else `class_names(num_classes)`.

  Raises:
    ValueError: If the recorded names are not one per class.
  """
  names = metadata.get('class_names')
  if names is None:
    return class_names(metadata['num_classes'])
  if len(names) != metadata['num_classes']:
    raise ValueError('The weights have %d classes but their dataset names %d '
                     '(%s).' % (metadata['num_classes'], len(names),
                                ', '.join(names)))
  return list(names)


def image_geometry(metadata, resize_size=None, crop_size=None):
  """`(resize_size, crop_size)` for images given to weights.

  A model trained here on `image_size` images (`metadata['image_size']`,
  from its dataset) sees files as its training did: the shorter side
  resized to that size, the centre square cropped
  (`densenet.datasets.image_folder.load_image`). Otherwise the ImageNet
  evaluation geometry: 256, then the central 224 crop. Given values win.
  """
  size = metadata.get('image_size')
  if resize_size is None:
    resize_size = size or preprocessing.DEFAULT_RESIZE_SIZE
  if crop_size is None:
    crop_size = size or preprocessing.DEFAULT_CROP_SIZE
  return resize_size, crop_size


DEFAULT_TOP = 5


def check_top(top, num_classes):
  """Checks `top` (`--top`: classes per image) against the model's classes.

  Returns:
    `top`, or for None `DEFAULT_TOP` or all the classes if fewer (a model
    trained on 3 classes shows 3).

  Raises:
    ValueError: Unless 1 <= top <= num_classes; one message for every
      entry point (`classify`, `export`, `Classifier.predict`).
  """
  if not num_classes:
    raise ValueError('--top needs a model with classes, got num_classes=%r.'
                     % (num_classes,))
  if top is None:
    return min(DEFAULT_TOP, num_classes)
  if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or (
      top < 1):
    raise ValueError('--top must be a positive integer, got %r.' % (top,))
  if top > num_classes:
    raise ValueError("--top must be <= the model's %d classes, got %d." %
                     (num_classes, top))
  return top


@lazy.renamed_arguments(model_name='architecture')
def build_classifier(architecture, metadata, images=None):
  """Builds the inference network in the current graph.

  Args:
    architecture: An architecture name or `densenet_X` config, or None for
      the metadata's 'model'.
    metadata: Dict with 'batch_norm_epsilon', 'normalization',
      'num_classes' and optionally 'root_padding' (from
      `convert.read_weights`); see `densenet.spec.ModelSpec.from_metadata`.
    images: float32 `[batch, height, width, 3]` RGB in [0, 255], or None for
      a placeholder of that shape.

  Returns:
    `(images, logits)`: the input Tensor and the `[batch, num_classes]`
    logits.
  """
  spec = spec_lib.ModelSpec.from_metadata(metadata, architecture=architecture)
  runs.check_classifier(metadata, spec.scope)
  if images is None:
    images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3],
                                      name='images')
  logits, _ = spec.build(spec.normalize(images), is_training=False)
  return images, logits


class Classifier(object):
  """A pretrained DenseNet in its own graph and session.

  Attributes:
    architecture: e.g. 'densenet_121' (`model_name`: its 0.1 name).
    metadata: The weights' metadata (BN epsilon, normalization, source...).
    class_names: Name of every class index (`names_of`: the run's dataset's,
      ImageNet's for 1000 classes, else the indices).
    resize_size, crop_size: Geometry used for files (see
      `preprocessing.load_image`; default `image_geometry`: a trained
      model's image size, else 256 and 224).
  """

  @lazy.renamed_arguments(model_name='architecture')
  def __init__(self, weights, metadata, architecture=None, resize_size=None,
               crop_size=None, batch_size=16):
    self.architecture = architecture or metadata['model']
    self.metadata = dict(metadata)
    runs.check_classifier(self.metadata, self.architecture)
    self.class_names = names_of(self.metadata)
    self.resize_size, self.crop_size = image_geometry(
        metadata, resize_size, crop_size)
    self.batch_size = batch_size
    self.graph = tf.Graph()
    with self.graph.as_default():
      self._images, self._logits = build_classifier(self.architecture,
                                                    metadata)
      self._probabilities = tf.nn.softmax(self._logits)
      init_fn = assign.assign_fn(weights, scope=spec_lib.resolve(
          self.architecture).scope)
      self.graph.finalize()
    self.session = tf.compat.v1.Session(graph=self.graph)
    init_fn(self.session)
    self.session, (self._images, self._logits, self._probabilities) = (
        rewrite.optimize(self.session, (self._images, self._logits,
                                          self._probabilities)))
    self.graph = self.session.graph
    self.graph.finalize()

  @property
  def model_name(self):
    """0.1's name of `architecture`."""
    return self.architecture

  def close(self):
    self.session.close()

  def preprocess(self, images):
    """Files, PIL images or arrays -> float32 `[batch, crop, crop, 3]`.

    A 4-D array is taken as a ready batch of RGB images in [0, 255] (any
    real dtype: uint8, float64... become float32); a 3-D array is one image
    (resized and cropped like a file).

    Raises:
      ValueError: For an array that is not `[height, width, 3]` or
        `[batch, height, width, 3]` real numbers.
    """
    if isinstance(images, np.ndarray):
      if images.ndim not in (3, 4) or images.shape[-1] != 3 or not (
          np.issubdtype(images.dtype, np.number) and
          not np.issubdtype(images.dtype, np.complexfloating)):
        raise ValueError('images must be a [height, width, 3] or [batch, '
                         'height, width, 3] array of RGB values in [0, 255], '
                         'got shape %s and dtype %s.' % (images.shape,
                                                         images.dtype))
      if images.ndim == 4:
        return images.astype(np.float32)
    if isinstance(images, (str, bytes, np.ndarray, Image.Image)) or hasattr(
        images, 'read'):
      images = [images]
    return np.stack([
        preprocessing.load_image(image, self.resize_size, self.crop_size)
        for image in images]).astype(np.float32)

  def _run(self, tensor, images):
    batch = self.preprocess(images)
    outputs = [self.session.run(
        tensor, {self._images: batch[i:i + self.batch_size]})
               for i in range(0, len(batch), self.batch_size)]
    return np.concatenate(outputs)

  def logits(self, images):
    """float32 `[batch, num_classes]` logits (see `preprocess` for inputs)."""
    return self._run(self._logits, images)

  def probabilities(self, images):
    """float32 `[batch, num_classes]` softmax probabilities."""
    return self._run(self._probabilities, images)

  def predict(self, images, top=None):
    """Top-`top` `(class name, probability)` pairs for each image.

    Args:
      images: A path, or a list of paths / file objects / PIL images /
        `[height, width, 3]` arrays (decoded, resized and cropped), or a
        `[batch, height, width, 3]` RGB array in [0, 255] used as is.
      top: How many classes per image (default 5, or all if fewer).

    Returns:
      A list with, per image, a list of `top` (name, probability) pairs,
      most probable first.
    """
    return self.decode(self.probabilities(images), top)

  def decode(self, probabilities, top=None):
    """`[batch, num_classes]` probabilities -> top-k (name, probability)."""
    top = check_top(top, probabilities.shape[-1])
    result = []
    for row in probabilities:
      order = np.argsort(-row, kind='stable')[:top]
      result.append([(self.class_names[i], float(row[i])) for i in order])
    return result


@lazy.renamed_arguments(model_name='architecture')
def load_pretrained(architecture, checkpoint, **kwargs):
  """A `Classifier` for pretrained weights.

  Args:
    architecture: An architecture name ('densenet_121'...) or `densenet_X`
      config, or None to take it from the weights.
    checkpoint: Anything `convert.read_weights` reads (converted or pudae
      checkpoint prefix, a training run's checkpoint or directory, Keras
      file or model, torchvision state dict).
    **kwargs: `resize_size`, `crop_size`, `batch_size` of `Classifier`.

  Returns:
    A `Classifier`; `predict(images)` gives the top-5 names and
    probabilities.
  """
  weights, metadata = convert.read_weights(checkpoint,
                                           architecture=architecture)
  return Classifier(weights, metadata, architecture=architecture, **kwargs)
