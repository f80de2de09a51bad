"""Where image / label pairs come from: a Pascal VOC layout or a folder pair.

Pascal VOC layout (`voc_pairs`):
    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png      palette ('P') or grayscale ('L') PNG
    ROOT/ImageSets/Segmentation/{train,val}.txt   one <id> per line
or any folder pair (`folder_pairs`): images and label PNGs matched by stem.
"""

import os

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def voc_pairs(root, split):
  """`[(image_path, label_path)]` of a VOC split (ImageSets/Segmentation).

  Raises:
    ValueError: If the split file is missing.
  """
  list_file = os.path.join(root, 'ImageSets', 'Segmentation', split + '.txt')
  if not os.path.isfile(list_file):
    raise ValueError('No split file %s (VOC layout expected under %s).' %
                     (list_file, root))
  with open(list_file) as f:
    ids = [line.strip().split()[0] for line in f if line.strip()]
  return [(os.path.join(root, 'JPEGImages', i + '.jpg'),
           os.path.join(root, 'SegmentationClass', i + '.png')) for i in ids]


def folder_pairs(image_dir, label_dir):
  """Images of `image_dir` paired with `label_dir/<stem>.png` (sorted).

  Raises:
    ValueError: If no image has a label.
  """
  pairs = []
  for name in sorted(os.listdir(image_dir)):
    stem, extension = os.path.splitext(name)
    if extension.lower() in IMAGE_EXTENSIONS:
      label = os.path.join(label_dir, stem + '.png')
      if os.path.exists(label):
        pairs.append((os.path.join(image_dir, name), label))
  if not pairs:
    raise ValueError('No image in %s has a label <stem>.png in %s.' %
                     (image_dir, label_dir))
  return pairs
