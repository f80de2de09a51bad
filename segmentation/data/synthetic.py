"""The embedded default dataset: synthetic scenes in the Pascal VOC layout.

`generate(root, num_train, num_val, size, seed)` renders, deterministically
for a seed, RGB scenes of five object classes on cluttered backgrounds:

  1 disc      round, reddish, radially shaded
  2 square    rotated square, bluish, striped
  3 triangle  rotated triangle, greenish, checkered
  4 ring      annulus, yellow-orange, speckled
  5 cross     plus sign, purple, dotted

Every scene has a low-frequency coloured background, clutter (lines, small
blobs and polygons of any colour, including the objects' hues, labelled
background), two to four objects of random size, pose, colour jitter and
brightness that occlude each other (the label is the frontmost object), and
pixel noise; images are saved as JPEG (quality 90), labels as VOC palette
PNGs, with `ImageSets/Segmentation/{train,val}.txt`. No download.
"""

import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from tqdm import tqdm

from segmentation.data import labels as labels_lib

CLASS_NAMES = ('background', 'disc', 'square', 'triangle', 'ring', 'cross')
NUM_CLASSES = len(CLASS_NAMES)

# class -> (base RGB colour, (min, max) size in fractions of the image side).
_OBJECTS = {
    1: ((200, 50, 45), (0.18, 0.34)),
    2: ((45, 80, 200), (0.20, 0.36)),
    3: ((50, 170, 60), (0.24, 0.40)),
    4: ((230, 175, 30), (0.18, 0.30)),
    5: ((150, 55, 170), (0.22, 0.38)),
}


def _rotated(points, angle, center):
  cos, sin = np.cos(angle), np.sin(angle)
  points = np.asarray(points, np.float64)
  rotated = points @ np.array([[cos, sin], [-sin, cos]])
  return [tuple(p) for p in rotated + center]


def _shape_mask(class_id, size, center, extent, angle, rng):
  """`[size, size]` bool mask of one object."""
  mask = Image.new('L', (size, size), 0)
  draw = ImageDraw.Draw(mask)
  r = extent / 2.0
  cx, cy = center
  if class_id == 1:
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
  elif class_id == 2:
    draw.polygon(_rotated([(-r, -r), (r, -r), (r, r), (-r, r)], angle,
                          center), fill=1)
  elif class_id == 3:
    corners = [(r * np.cos(a), r * np.sin(a))
               for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)]
    draw.polygon(_rotated(corners, angle, center), fill=1)
  elif class_id == 4:
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    inner = r * rng.uniform(0.35, 0.5)
    draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
  else:
    w = r * rng.uniform(0.28, 0.38)
    arm = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r),
           (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    draw.polygon(_rotated(arm, angle, center), fill=1)
  return np.asarray(mask, bool)


def _texture(class_id, size, center, extent, angle, rng):
  """`[size, size]` brightness multiplier of the class's texture."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  u = (x - center[0]) * np.cos(angle) + (y - center[1]) * np.sin(angle)
  v = -(x - center[0]) * np.sin(angle) + (y - center[1]) * np.cos(angle)
  period = max(extent / rng.uniform(3.0, 5.0), 3.0)
  if class_id == 1:    # Radial shading.
    distance = np.sqrt(u ** 2 + v ** 2) / (extent / 2.0)
    return 1.15 - 0.45 * np.clip(distance, 0, 1) ** 2
  if class_id == 2:    # Stripes.
    return np.where(np.sin(2 * np.pi * v / period) > 0, 1.15, 0.6)
  if class_id == 3:    # Checkerboard.
    return np.where((np.floor(u / period) + np.floor(v / period)) % 2, 1.15,
                    0.65)
  if class_id == 4:    # Speckles.
    return 1.0 + 0.25 * rng.standard_normal((size, size))
  dots = (np.sin(2 * np.pi * u / (period * 0.6)) *
          np.sin(2 * np.pi * v / (period * 0.6)))  # Dots.
  return np.where(dots > 0.4, 0.55, 1.1)


def _background(size, rng):
  coarse = rng.uniform(40, 215, (4, 4, 3)).astype(np.float32)
  image = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize(
      (size, size), Image.BICUBIC), np.float64)
  fine = rng.uniform(-25, 25, (16, 16, 3)).astype(np.float32)
  image += np.asarray(Image.fromarray((fine + 128).astype(np.uint8)).resize(
      (size, size), Image.BILINEAR), np.float64) - 128
  return image


def _clutter(image, size, rng):
  """Draws background clutter: lines, blobs and small polygons."""
  canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
  draw = ImageDraw.Draw(canvas)
  for _ in range(rng.randint(6, 14)):
    if rng.rand() < 0.5:  # Any colour, object hues included.
      color = tuple(int(c) for c in rng.randint(0, 256, 3))
    else:
      base = _OBJECTS[rng.randint(1, NUM_CLASSES)][0]
      color = tuple(int(np.clip(c + rng.randint(-30, 31), 0, 255))
                    for c in base)
    kind = rng.randint(3)
    x, y = rng.uniform(0, size, 2)
    extent = rng.uniform(0.04, 0.12) * size
    if kind == 0:
      end = (x + rng.uniform(-0.4, 0.4) * size, y + rng.uniform(-0.4, 0.4) *
             size)
      draw.line([(x, y), end], fill=color, width=int(rng.randint(1, 4)))
    elif kind == 1:
      draw.ellipse([x - extent, y - extent * rng.uniform(0.3, 1.0),
                    x + extent, y + extent * rng.uniform(0.3, 1.0)],
                   fill=color)
    else:
      points = [(x + extent * rng.uniform(-1, 1), y + extent *
                 rng.uniform(-1, 1)) for _ in range(rng.randint(3, 6))]
      draw.polygon(points, fill=color)
  return np.asarray(canvas, np.float64)


def render_scene(rng, size=128):
  """One scene: `(image [size, size, 3] uint8, label [size, size] uint8)`."""
  image = _clutter(_background(size, rng), size, rng)
  label = np.zeros((size, size), np.uint8)
  for _ in range(rng.randint(2, 5)):
    class_id = rng.randint(1, NUM_CLASSES)
    base, (low, high) = _OBJECTS[class_id]
    extent = rng.uniform(low, high) * size
    center = rng.uniform(0.1, 0.9, 2) * size
    angle = rng.uniform(0, 2 * np.pi)
    mask = _shape_mask(class_id, size, center, extent, angle, rng)
    if not mask.any():
      continue
    color = np.clip(np.asarray(base) + rng.randint(-35, 36, 3), 0, 255)
    shade = _texture(class_id, size, center, extent, angle, rng)
    brightness = rng.uniform(0.75, 1.2)
    pixels = color[None, None, :] * (shade * brightness)[..., None]
    image[mask] = pixels[mask]
    label[mask] = class_id
  image += rng.normal(0, 6, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8), label


def generate(root, num_train=320, num_val=80, size=128, seed=0,
             progress=True):
  """Writes the synthetic dataset in the VOC layout under `root`.

  Returns:
    `{'train': [ids], 'val': [ids]}`.
  """
  for folder in ('JPEGImages', 'SegmentationClass',
                 os.path.join('ImageSets', 'Segmentation')):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
  rng = np.random.RandomState(seed)
  splits = {'train': ['train_%05d' % i for i in range(num_train)],
            'val': ['val_%05d' % i for i in range(num_val)]}
  bar = tqdm(total=num_train + num_val, desc='synthetic scenes', unit='image',
             disable=not progress)
  for split, ids in splits.items():
    for image_id in ids:
      image, label = render_scene(rng, size)
      Image.fromarray(image).save(
          os.path.join(root, 'JPEGImages', image_id + '.jpg'), quality=90)
      labels_lib.save_label_png(
          os.path.join(root, 'SegmentationClass', image_id + '.png'), label)
      bar.update(1)
    with open(os.path.join(root, 'ImageSets', 'Segmentation', split + '.txt'),
              'w') as f:
      f.write('\n'.join(ids) + '\n')
  bar.close()
  return splits
