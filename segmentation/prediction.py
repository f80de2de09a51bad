"""Writing predictions: a palette mask and a picture per image, atomically.

`predict_files` is the loop of `segmentation predict` for any model (the
TensorFlow graph of `tasks.predict`, a .tflite of `segmentation.litert`):
read each image (and its label), segment it, write `<stem>.png` and
`<stem>_overlay.png`; unreadable images are reported, not fatal.
"""

import os

import numpy as np
from tqdm import tqdm

from densenet import preprocessing
from densenet._env import atomic
from densenet.training import rundir
from segmentation import data
from segmentation import pictures


def predict_files(mask_fn, class_names, image_paths, output_dir,
                  progress=True, label_paths=None, errors=None):
  """The loop of `predict` (TensorFlow or LiteRT, `segmentation.litert`):
  reads each image (and label), `mask_fn(pixels [h, w, 3] uint8) -> [h, w]
  classes`, writes its mask and picture (`write_prediction`).

  Returns:
    `[(mask_path, picture_path)]` of the images segmented.

  Raises:
    ValueError: If `label_paths` does not match `image_paths`.
  """
  if label_paths is not None and len(label_paths) != len(image_paths):
    raise ValueError('label_paths must have one entry per image (%d), got '
                     '%d.' % (len(image_paths), len(label_paths)))
  written = []
  for i, path in enumerate(tqdm(image_paths, desc='predict', unit='image',
                                disable=not progress)):
    try:
      pixels = preprocessing.load_image(path, resize_size=None,
                                        crop_size=None)
      label = (data.read_label(label_paths[i]) if label_paths and
               label_paths[i] else None)
    except (OSError, ValueError) as error:
      if errors is None:
        raise
      errors[path] = str(error) or type(error).__name__
      continue
    mask = np.asarray(mask_fn(pixels)).astype(np.uint8)
    written.append(write_prediction(output_dir, path, pixels, mask,
                                    class_names, label))
  return written


def write_prediction(output_dir, path, pixels, mask, class_names, label=None):
  """Writes `<stem>.png` (the palette mask) and `<stem>_overlay.png` of the
  image at `path` (`pixels`, its `[height, width, 3]` RGB) into
  `output_dir`, each atomically; returns their paths."""
  stem = os.path.splitext(os.path.basename(path))[0]
  mask_path = os.path.join(output_dir, stem + '.png')
  picture_path = os.path.join(output_dir, stem + '_overlay.png')
  with rundir.writing_to(output_dir):
    atomic.write(mask_path, lambda temporary: data.save_label_png(
        temporary, mask))
    atomic.write(picture_path, lambda temporary: (
        pictures.save_prediction_picture(
            temporary, pixels, mask, class_names, label=label,
            title=os.path.basename(path))))
  return mask_path, picture_path
