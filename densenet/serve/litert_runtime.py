"""LiteRT (.tflite) files of this library: their metadata, checks, running.

    from densenet.serve import litert_runtime
    model = litert_runtime.LiteRTModel('densenet_121.tflite')  # all cores
    model.metadata['class_names'][:2], model.input_size   # [...], (224, 224)
    model.run(images)   # {'logits': [batch, classes], 'probabilities': ...}

A file of `densenet export --format litert` or `segmentation export
--format litert` has one signature whose input `images` is float32
`[batch, height, width, 3]` RGB in [0, 255] (normalized in the model, any
batch, the height and width of `input_size`), and a `Model.metadata` entry
`densenet.json` (the flatbuffer schema's named buffers) holding UTF-8 JSON:
`format_version`, `task` ('classification' or 'segmentation'),
`architecture`, `num_classes`, `class_names`, `normalization` (applied in the
model), `input_size` [height, width], `outputs`, `quantization`, and per
task `resize_size` (classification: the shorter side before the centre
crop) or `output_stride`, `head` (segmentation). This module needs only
numpy and the optional `ai-edge-litert` package, not TensorFlow.
"""

import json
import os

import numpy as np

METADATA_NAME = 'densenet.json'
FORMAT_VERSION = 1
INPUT_NAME = 'images'
# The outputs of each task's signature.
OUTPUTS = {'classification': ('logits', 'probabilities'),
           'segmentation': ('classes', 'probabilities')}
# Export options (`densenet.serve.litert`), here for the command line: it
# must not load TensorFlow.
QUANTIZATIONS = ('dynamic', 'int8', 'float16')
DEFAULT_CALIBRATION_SIZE = 200
INSTALL_HINT = ('LiteRT needs the optional ai-edge-litert package: pip '
                'install "densenet[litert]" (or pip install ai-edge-litert).')
_IDENTIFIER = b'TFL3'  # A .tflite flatbuffer's file identifier, bytes 4-8.


class NotALiteRTModelError(ValueError):
  """A file that is not a readable LiteRT model of this library."""


def require():
  """The `ai_edge_litert.interpreter` module.

  Raises:
    ImportError: With `INSTALL_HINT`, if ai-edge-litert is not installed.
  """
  try:
    from ai_edge_litert import interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(INSTALL_HINT) from None
  return interpreter


def default_threads():
  """The CPU cores this process may use (LiteRT's thread count)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def _check_identifier(content, name):
  if len(content) < 8 or bytes(content[4:8]) != _IDENTIFIER:
    raise NotALiteRTModelError(
        '%s is not a LiteRT model (no TFL3 flatbuffer identifier; %d bytes).'
        % (name, len(content)))


def with_metadata(content, metadata):
  """The model bytes with `metadata` as `densenet.json`, tensors renamed.

  Replaces an earlier `densenet.json` entry, and names each signature's
  input and output tensors by their signature keys (the converter names
  them e.g. 'serving_default_images:0', 'PartitionedCall:0'), so
  `get_input_details()` shows 'images' too.

  Args:
    content: A .tflite flatbuffer (bytes).
    metadata: A JSON-able dict.

  Returns:
    The new flatbuffer (bytes).
  """
  require()
  # pylint: disable=g-import-not-at-top
  from ai_edge_litert import schema_py_generated as schema
  from ai_edge_litert.tools import flatbuffer_utils
  _check_identifier(content, 'the converted model')
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
  for signature in model.signatureDefs or []:
    tensors = model.subgraphs[signature.subgraphIndex].tensors
    for item in list(signature.inputs or []) + list(signature.outputs or []):
      tensors[item.tensorIndex].name = item.name
  buffer = schema.BufferT()
  buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(
      'utf-8'), np.uint8)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name = METADATA_NAME
  entry.buffer = len(model.buffers) - 1
  model.metadata = [m for m in model.metadata or []
                    if _text(m.name) != METADATA_NAME] + [entry]
  return _pack(model)


def _pack(model):
  """A `ModelT` -> flatbuffer bytes, equal small vectors stored once.

  The converter writes a per-channel quantized tensor's zero points (int64,
  all 0) as a vector of its own, and a bias its twin: 0.6 of 1.1 MB of
  quantization parameters in an int8 DenseNet-121 (94,991 channels). A
  flatbuffer may point several tables at one vector (as at a shared
  string), so each distinct non-byte vector (zero points, scales, shapes) is
  written once; weight buffers (bytes) are written as they are. The model
  is unchanged: the same tensors, values and results (tests/test_litert.py).
  """
  import flatbuffers  # pylint: disable=g-import-not-at-top

  class SharingBuilder(flatbuffers.Builder):

    def __init__(self, size):
      super(SharingBuilder, self).__init__(size)
      self.written = {}

    def CreateNumpyVector(self, x):  # pylint: disable=invalid-name
      if x.dtype == np.uint8:  # Buffers: data, written as they are.
        return super(SharingBuilder, self).CreateNumpyVector(x)
      key = (x.dtype.str, x.tobytes())
      if key not in self.written:
        self.written[key] = super(SharingBuilder, self).CreateNumpyVector(x)
      return self.written[key]

  builder = SharingBuilder(1024)
  builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
  return bytes(builder.Output())


def _text(value):
  return value.decode('utf-8') if isinstance(value, bytes) else value


def read_metadata(content, name='the model'):
  """The `densenet.json` metadata of a .tflite flatbuffer.

  Args:
    content: The file's bytes (verified by an Interpreter first: Python's
      flatbuffers reader does not check offsets).
    name: What to call it in errors (its path).

  Returns:
    The metadata dict.

  Raises:
    NotALiteRTModelError: If it is not a .tflite, is corrupt, or has no
      `densenet.json` of a format this version reads.
  """
  require()
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  _check_identifier(content, name)
  data = None
  try:
    model = schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
      entry = model.Metadata(i)
      if _text(entry.Name()) == METADATA_NAME:
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        metadata = json.loads(bytes(data).decode('utf-8'))
  except Exception as error:  # struct.error, IndexError, JSON errors...
    raise NotALiteRTModelError('%s is corrupt (%s: %s).' % (
        name, type(error).__name__, error)) from None
  if data is None:
    raise NotALiteRTModelError(
        '%s is a LiteRT model but not one of this library (no %s metadata; '
        'write one with densenet export / segmentation export --format '
        'litert).' % (name, METADATA_NAME))
  version = metadata.get('format_version') if isinstance(metadata,
                                                         dict) else None
  if not isinstance(version, int) or version > FORMAT_VERSION or (
      metadata.get('task') not in OUTPUTS):
    raise NotALiteRTModelError(
        '%s has %s metadata this version of densenet does not read '
        '(format_version %r, task %r).' % (
            name, METADATA_NAME, version,
            metadata.get('task') if isinstance(metadata, dict) else None))
  return metadata


class LiteRTModel(object):
  """A .tflite file of this library in a LiteRT Interpreter (XNNPACK).

  Attributes:
    path: The file.
    metadata: Its `densenet.json` (see the module docstring).
    task: 'classification' or 'segmentation'.
    input_size: `(height, width)` of its input.
    class_names: One name per class.
    threads: The Interpreter's thread count.
  """

  def __init__(self, path, threads=None, task=None):
    """Loads and checks `path`.

    Args:
      path: A .tflite file of this library.
      threads: Interpreter threads (default: `default_threads()`).
      task: If given, the task the file must be for.

    Raises:
      ImportError: Without ai-edge-litert (`INSTALL_HINT`).
      FileNotFoundError: If `path` does not exist.
      NotALiteRTModelError: If it is not a LiteRT model of this library (or
        not of `task`), or is truncated or corrupt.
    """
    interpreter = require()
    if os.path.isdir(path) or not os.path.exists(path):
      raise FileNotFoundError('No such .tflite file: %s' % (path,))
    with open(path, 'rb') as f:
      content = f.read()
    _check_identifier(content, path)
    self.path = path
    self.threads = threads or default_threads()
    try:  # The C++ flatbuffer verifier: truncated or corrupt files fail.
      self._interpreter = interpreter.Interpreter(model_content=content,
                                                  num_threads=self.threads)
    except ValueError as error:
      message = ' '.join(str(error).split())
      raise NotALiteRTModelError('%s is not a valid LiteRT model (truncated '
                                 'or corrupt?): %s' % (path, message)) from None
    self.metadata = read_metadata(content, path)
    self.task = self.metadata['task']
    if task is not None and self.task != task:
      raise NotALiteRTModelError(
          '%s is a %s model; this needs a %s one.' % (path, self.task, task))
    signatures = self._interpreter.get_signature_list()
    runner = (self._interpreter.get_signature_runner(next(iter(signatures)))
              if len(signatures) == 1 else None)
    inputs = runner.get_input_details() if runner else {}
    outputs = runner.get_output_details() if runner else {}
    if set(inputs) != {INPUT_NAME} or not set(OUTPUTS[self.task]) <= set(
        outputs):
      raise NotALiteRTModelError(
          '%s does not have the signature its metadata describes (input %r, '
          'outputs %s).' % (path, INPUT_NAME, ', '.join(OUTPUTS[self.task])))
    self._input = inputs[INPUT_NAME]['index']
    self._outputs = {name: outputs[name]['index']
                     for name in OUTPUTS[self.task]}
    self.input_size = tuple(self.metadata['input_size'])
    self.class_names = list(self.metadata['class_names'])
    self._batch = None

  def run(self, images):
    """Runs the model on a batch.

    Args:
      images: `[batch, height, width, 3]` RGB in [0, 255] (any real dtype),
        at `input_size`.

    Returns:
      {output name: numpy array}: `logits`, `probabilities` `[batch,
      classes]` (classification); `classes` int32 `[batch, height, width]`,
      `probabilities` `[batch, height, width, classes]` (segmentation).

    Raises:
      ValueError: If `images` is not `[batch, height, width, 3]` at
        `input_size`.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != self.input_size + (3,) or (
        not images.shape[0]):
      raise ValueError('%s takes images of [batch, %d, %d, 3], got %s.' % (
          self.path, self.input_size[0], self.input_size[1], images.shape))
    if images.shape[0] != self._batch:
      self._interpreter.resize_tensor_input(self._input, images.shape)
      self._interpreter.allocate_tensors()
      self._batch = images.shape[0]
    self._interpreter.set_tensor(self._input, images)
    self._interpreter.invoke()
    return {name: self._interpreter.get_tensor(index).copy()
            for name, index in self._outputs.items()}


class LiteRTClassifier(LiteRTModel):
  """A classification .tflite with the interface of `pretrained.Classifier`
  that `densenet classify` uses (`resize_size`, `crop_size`, `predict`).

  Attributes:
    resize_size, crop_size: The geometry its images get (from the
      metadata; `preprocessing.load_image`).
  """

  def __init__(self, path, threads=None, batch_size=16, resize_size=None):
    super().__init__(path, threads, task='classification')
    if self.input_size[0] != self.input_size[1]:
      raise NotALiteRTModelError('%s takes %dx%d images; classification '
                                 'crops squares.' % ((path,) + self.input_size))
    self.crop_size = self.input_size[0]
    self.resize_size = resize_size or self.metadata['resize_size']
    self.batch_size = batch_size

  def close(self):
    """Nothing to release (the Interpreter goes with the object)."""

  def probabilities(self, images):
    """`[batch, classes]` probabilities of `[batch, crop, crop, 3]` images."""
    return np.concatenate([
        self.run(images[i:i + self.batch_size])['probabilities']
        for i in range(0, len(images), self.batch_size)])

  def predict(self, images, top=5):
    """Top-`top` `(class name, probability)` pairs for each image of a
    `[batch, crop, crop, 3]` array (as `pretrained.Classifier.predict`)."""
    if not 1 <= top <= len(self.class_names):
      raise ValueError("--top must be between 1 and the model's %d classes, "
                       'got %r.' % (len(self.class_names), top))
    result = []
    for row in self.probabilities(images):
      order = np.argsort(-row, kind='stable')[:top]
      result.append([(self.class_names[i], float(row[i])) for i in order])
    return result
