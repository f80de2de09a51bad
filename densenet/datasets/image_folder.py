"""Classification datasets stored as one sub-folder of images per class.

    source/
      cat/  0001.jpg 0002.png ...
      dog/  ...

    from densenet.datasets import image_folder

    image_folder.create_tfrecords('photos/', 'data/photos', image_size=224)

The class names are the sub-folder names in sorted order (label 0 is the
first). Each image is decoded with Pillow (EXIF orientation applied;
grayscale, palette and RGBA converted to RGB), its shorter side resized to
`image_size` and its centre cropped to `image_size x image_size`, then
stored as raw pixels in the same TFRecord format as CIFAR (see
`densenet.datasets.tfrecords`), so the same input pipeline reads it. A
deterministic per-class fraction is held out as the 'validation' split. The
recorded normalization is a `densenet.preprocessing` mode ('torch' by
default, the one of Keras' ImageNet weights), so a pretrained `densenet_121`
is fine-tuned on the inputs it was trained with.
"""

import os

import numpy as np

from densenet import preprocessing
from densenet.datasets import tfrecords

IMAGE_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png', '.ppm', '.tif',
                    '.tiff', '.webp')


def list_images(source):
  """`(class_names, [(path, label), ...])` of a one-folder-per-class tree.

  Raises:
    FileNotFoundError: If `source` is not a directory.
    ValueError: If it has no class sub-folder, or a class has no image.
  """
  if not os.path.isdir(source):
    raise FileNotFoundError('Image folder %r does not exist.' % (source,))
  class_names = sorted(
      d for d in os.listdir(source)
      if not d.startswith('.') and os.path.isdir(os.path.join(source, d)))
  if not class_names:
    raise ValueError('%s has no class sub-folders (expected one folder of '
                     'images per class).' % (source,))
  examples = []
  for label, name in enumerate(class_names):
    folder = os.path.join(source, name)
    files = sorted(f for f in os.listdir(folder)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise ValueError('Class folder %s has no images (extensions: %s).' %
                       (folder, ' '.join(IMAGE_EXTENSIONS)))
    examples.extend((os.path.join(folder, f), label) for f in files)
  return class_names, examples


def load_image(path, image_size, crop_size=None):
  """Decodes an image file to `[image_size, image_size, 3]` uint8 RGB.

  `densenet.preprocessing.load_image` with the shorter side resized to
  `image_size` and the centre square cropped (EXIF orientation, RGB): of
  `crop_size` (default `image_size`: the whole shorter side).

  Raises:
    ValueError: If `path` cannot be decoded as an image; names the file.
  """
  try:
    return preprocessing.load_image(path, resize_size=image_size,
                                    crop_size=crop_size or image_size)
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError('Cannot decode image %s: %s' % (path, e)) from e


def create_tfrecords(source, output_dir, image_size=224,
                     validation_fraction=0.1, normalization='torch',
                     images_per_shard=1000, seed=0):
  """Converts a one-folder-per-class image tree into sharded TFRecords.

  Args:
    source: The root folder (one sub-folder of images per class).
    output_dir: Where to write the shards and `metadata.json`.
    image_size: Side of the stored square images (224 for ImageNet nets).
    validation_fraction: Fraction of each class held out as 'validation'
      (rounded; 0 writes no validation split).
    normalization: The `densenet.preprocessing` mode recorded for the
      pipeline (that of the weights to fine-tune).
    images_per_shard: Approximate shard size.
    seed: Seed of the deterministic split and of the shuffled file order.

  Returns:
    The metadata dict (as written to `output_dir/metadata.json`).

  Raises:
    FileNotFoundError, ValueError: See `list_images`; a file that is not an
      image is named in the error.
    ValueError: If `validation_fraction` holds out every image of a class
      (naming those classes and their image counts); nothing is written.
  """
  if not 0.0 <= validation_fraction < 1.0:
    raise ValueError('validation_fraction must be in [0, 1), got %r.' %
                     (validation_fraction,))
  preprocessing.normalization(normalization)  # Validates the mode.
  class_names, examples = list_images(source)
  rng = np.random.RandomState(seed)
  splits = {'train': [], 'validation': []}
  emptied = []  # (class name, images) left without a training image.
  for label in range(len(class_names)):
    files = [e for e in examples if e[1] == label]
    order = rng.permutation(len(files))
    num_validation = int(round(len(files) * validation_fraction))
    if num_validation >= len(files):
      emptied.append((class_names[label], len(files)))
    splits['validation'] += [files[i] for i in order[:num_validation]]
    splits['train'] += [files[i] for i in order[num_validation:]]
  if emptied:
    raise ValueError(
        'validation_fraction=%g holds out every image of %d class(es), '
        'leaving them no training image: %s; lower the validation fraction '
        'or add images (a class of n images keeps n - round(n * fraction) '
        'for training).' % (validation_fraction, len(emptied), ', '.join(
            '%s (%d image%s, all to validation)' % (
                name, count, '' if count == 1 else 's')
            for name, count in emptied)))
  written = {}
  for split, files in splits.items():
    if not files:
      continue
    files = [files[i] for i in rng.permutation(len(files))]
    names = tfrecords.write_split(
        ((load_image(path, image_size), label) for path, label in files),
        output_dir, split, len(files),
        num_shards=-(-len(files) // images_per_shard),
        description='%s %s' % (os.path.basename(os.path.normpath(source)),
                               split))
    written[split] = {'num_examples': len(files), 'files': names}
  tfrecords.write_metadata(output_dir, {
      'dataset': os.path.abspath(source),
      'num_classes': len(class_names),
      'class_names': class_names,
      'image_shape': [image_size, image_size, 3],
      'normalization': {'mode': normalization},
      'splits': written,
  })
  return tfrecords.read_metadata(output_dir)
