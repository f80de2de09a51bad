"""Predict and evaluate with a LiteRT file of `segmentation export`.

    from segmentation import litert
    litert.predict('seg.tflite', ['a.jpg'], 'masks/')
    results = litert.evaluate('seg.tflite', 'records/val-*')

The file takes images of one size (its `input_size`). An image of another
size is resized to it (bilinear, Pillow's, as its int8 calibration images
were) and the class map resized back to the image's size (nearest), so the
masks, the pictures and the confusion matrix are at the image's size, as
with `tasks.predict` / `tasks.evaluate`. One scale, no flips.
"""

import numpy as np
from PIL import Image
from tqdm import tqdm

from densenet import preprocessing
from densenet.serve import litert_runtime
from densenet.training import rundir
from segmentation import data
from segmentation import metrics
from segmentation import prediction


def load(path, threads=None):
  """A `litert_runtime.LiteRTModel` of a segmentation .tflite.

  Raises:
    ImportError: Without ai-edge-litert.
    litert_runtime.NotALiteRTModelError: If `path` is not a segmentation
      model of this library.
  """
  return litert_runtime.LiteRTModel(path, threads, task='segmentation')


def resize_image(source, size):
  """float32 `[height, width, 3]` RGB of an image resized to `size`.

  Args:
    source: What `preprocessing.load_image` reads (a path, encoded bytes,
      an RGB array...).
    size: `(height, width)`.
  """
  pixels = preprocessing.load_image(source, resize_size=None, crop_size=None)
  if pixels.shape[:2] != tuple(size):
    pixels = np.asarray(Image.fromarray(pixels).resize(
        (size[1], size[0]), Image.BILINEAR))
  return pixels.astype(np.float32)


def class_map(model, pixels):
  """`[height, width]` int32 classes of one RGB image of any size."""
  height, width = pixels.shape[:2]
  classes = model.run(resize_image(pixels, model.input_size)[None])[
      'classes'][0]
  if classes.shape != (height, width):
    classes = np.asarray(Image.fromarray(classes.astype(np.int32)).resize(
        (width, height), Image.NEAREST))
  return classes.astype(np.int32)


def predict(litert_path, image_paths, output_dir, threads=None,
            progress=True, label_paths=None, errors=None):
  """`tasks.predict` with a .tflite: writes `<stem>.png` palette masks and
  `<stem>_overlay.png` pictures at each image's size.

  Args:
    litert_path: A .tflite of `segmentation export --format litert`.
    image_paths: Images of any size.
    output_dir: Where the PNGs go (created).
    threads: Interpreter threads (default: every core available).
    progress, label_paths, errors: See `tasks.predict`.

  Returns:
    `[(mask_path, picture_path)]` of the images segmented.
  """
  model = load(litert_path, threads)
  rundir.writable_dir(output_dir)
  return prediction.predict_files(
      lambda pixels: class_map(model, pixels), model.class_names,
      image_paths, output_dir, progress, label_paths, errors)


@data.label_errors()
def evaluate(litert_path, eval_pattern, threads=None, progress=True):
  """`tasks.evaluate` with a .tflite: whole-image mIoU over every record of
  `eval_pattern`, one scale.

  Returns:
    `ConfusionMatrix.results()` plus 'litert', 'global_step' (of the
    exported checkpoint), 'num_images', 'eval_scales' ([1.0]), 'flip'
    (False), 'quantization' and 'chart' (None: nothing is written).

  Raises:
    segmentation.data.LabelError: For a label that is neither below the
      model's num_classes nor 255.
  """
  model = load(litert_path, threads)
  num_classes = model.metadata['num_classes']
  confusion = metrics.ConfusionMatrix(num_classes)
  dataset = data.make_dataset(eval_pattern, False, normalization=None,
                              num_classes=num_classes)
  num_images = 0
  for images, labels, _ in tqdm(dataset, desc='evaluate', unit='image',
                                disable=not progress):
    pixels = np.clip(images.numpy()[0], 0, 255).astype(np.uint8)
    confusion.update(labels.numpy()[0], class_map(model, pixels))
    num_images += 1
  results = confusion.results(model.class_names)
  results.update(litert=litert_path, num_images=num_images, eval_scales=[1.0],
                 flip=False, global_step=model.metadata.get('global_step'),
                 quantization=model.metadata['quantization'], chart=None)
  return results
