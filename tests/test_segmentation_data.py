"""Tests of the segmentation data pipeline and the synthetic dataset."""

import os

import numpy as np
from PIL import Image
import tensorflow as tf

from densenet import preprocessing
from segmentation import data
from segmentation import tasks
from segmentation.data import synthetic


def write_voc(root, sizes, split='train'):
  """A VOC folder with random JPEGs and palette (and one grayscale) PNGs."""
  rng = np.random.RandomState(1)
  for folder in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
  ids, labels = [], {}
  palette = [int(v) for v in rng.randint(0, 256, 768)]  # Any palette.
  for i, (height, width) in enumerate(sizes):
    image_id = '%s_%d' % (split, i)
    Image.fromarray(rng.randint(0, 256, (height, width, 3)).astype(
        np.uint8)).save(os.path.join(root, 'JPEGImages', image_id + '.jpg'))
    label = rng.randint(0, 4, (height, width)).astype(np.uint8)
    label[:2, :3] = 255
    png = Image.fromarray(label, mode='P' if i else 'L')
    if i:
      png.putpalette(palette)
    png.save(os.path.join(root, 'SegmentationClass', image_id + '.png'))
    ids.append(image_id)
    labels[image_id + '.jpg'] = label
  with open(os.path.join(root, 'ImageSets', 'Segmentation',
                         split + '.txt'), 'w') as f:
    f.write('\n'.join(ids) + '\n')
  return labels


def test_voc_round_trip_labels_pixel_equal(tmp_path):
  root, records = str(tmp_path / 'voc'), str(tmp_path / 'records')
  labels = write_voc(root, [(20, 30), (17, 23), (32, 32)])
  paths, written, errors, _ = tasks.build_data(
      records, voc_root=root, splits=['train'], num_shards=2,
      progress=False)['train']
  assert (len(paths), written, errors) == (2, 3, [])
  assert sorted(os.listdir(records)) == ['labels-train.json',
                                         'train-00000-of-00002.tfrecord',
                                         'train-00001-of-00002.tfrecord']
  seen = {}
  for images, label, filename in data.make_dataset(
      os.path.join(records, 'train-*'), is_training=False):
    name = filename.numpy()[0].decode()
    seen[name] = label.numpy()[0]
    # The record holds the file's bytes, decoded to Pillow's pixels (as
    # `segmentation predict` decodes the file): libjpeg's accurate DCT.
    jpeg = np.asarray(preprocessing.decode_image(
        os.path.join(root, 'JPEGImages', name)))
    assert not np.array_equal(jpeg, tf.io.decode_jpeg(  # TF's default DCT.
        tf.io.read_file(os.path.join(root, 'JPEGImages', name)),
        channels=3).numpy())
    assert images.shape == (1,) + jpeg.shape
    np.testing.assert_allclose(images.numpy()[0],
                               preprocessing.normalize(jpeg), atol=1e-6)
  assert sorted(seen) == sorted(labels)
  for name, label in labels.items():
    np.testing.assert_array_equal(seen[name], label)


def test_corrupt_and_mismatched_pairs_reported_by_name(tmp_path):
  root = str(tmp_path / 'voc')
  write_voc(root, [(20, 30), (20, 30), (20, 30)])
  corrupt = os.path.join(root, 'JPEGImages', 'train_1.jpg')
  with open(corrupt, 'rb') as f:
    head = f.read(200)
  with open(corrupt, 'wb') as f:
    f.write(head)  # Truncated JPEG.
  mismatched = os.path.join(root, 'SegmentationClass', 'train_2.png')
  Image.fromarray(np.zeros((21, 30), np.uint8)).save(mismatched)
  records = str(tmp_path / 'records')
  _, written, errors, _ = data.write_tfrecords(
      data.voc_pairs(root, 'train'), records, 'train', 1, progress=False)
  assert written == 1
  assert len(errors) == 2
  assert 'train_1.jpg' in errors[0] and 'decode' in errors[0]
  assert 'train_2.png' in errors[1] and '30x20' in errors[1] and (
      '30x21' in errors[1])
  assert sorted(os.listdir(records)) == ['labels-train.json',
                                         'train-00000-of-00001.tfrecord']


def test_training_augmentation_keeps_image_and_label_aligned():
  # The label is the colour index, so after scale (1x), pad, crop and flip
  # every labelled pixel still shows its colour and padding shows 0 / 255.
  rng = np.random.RandomState(0)
  label = np.repeat(rng.randint(0, 3, (12, 1)), 10, 1)
  label[:, 5:] = 2 - label[:, 5:]
  image = np.stack([label * 1.0, -label * 1.0, label * 0.5], -1)
  tf.random.set_seed(3)
  flipped = 0
  for _ in range(8):
    out_image, out_label = data.augment(
        tf.constant(image, tf.float32), tf.constant(label, tf.int32),
        (16, 16), min_scale=1.0, max_scale=1.0)
    out_image, out_label = out_image.numpy(), out_label.numpy()
    assert out_image.shape == (16, 16, 3) and out_label.shape == (16, 16)
    valid = out_label != 255
    assert valid.sum() == 120
    np.testing.assert_array_equal(out_image[valid][:, 0], out_label[valid])
    np.testing.assert_array_equal(out_image[~valid], 0)
    rows = np.where(valid.any(1))[0]
    columns = np.where(valid.any(0))[0]
    block = out_label[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    flipped += np.array_equal(block, label[:, ::-1])
    assert np.array_equal(block, label) or np.array_equal(block,
                                                          label[:, ::-1])
  assert 0 < flipped < 8
  # Scaled batches come out at the crop size with labels in range.
  tf.random.set_seed(4)
  for _ in range(3):
    _, scaled = data.augment(tf.constant(image, tf.float32),
                             tf.constant(label, tf.int32), (8, 8))
    assert set(np.unique(scaled.numpy())) <= {0, 1, 2, 255}


def test_synthetic_dataset_is_deterministic_voc(tmp_path):
  first = synthetic.generate(str(tmp_path / 'a'), 3, 2, size=48, seed=5,
                             progress=False)
  synthetic.generate(str(tmp_path / 'b'), 3, 2, size=48, seed=5,
                     progress=False)
  assert first['val'] == ['val_00000', 'val_00001']
  pairs = data.voc_pairs(str(tmp_path / 'a'), 'train')
  assert len(pairs) == 3
  classes = set()
  for image_path, label_path in pairs:
    with Image.open(label_path) as label:
      assert label.mode == 'P' and label.size == (48, 48)
      np.testing.assert_array_equal(
          np.asarray(label.getpalette(), np.uint8)[:18],
          data.voc_palette()[:6].reshape(-1))
      classes |= set(np.unique(np.asarray(label)))
    other = label_path.replace(os.sep + 'a' + os.sep, os.sep + 'b' + os.sep)
    np.testing.assert_array_equal(np.asarray(Image.open(label_path)),
                                  np.asarray(Image.open(other)))
    assert Image.open(image_path).size == (48, 48)
  assert classes <= set(range(synthetic.NUM_CLASSES)) and len(classes) > 2


def test_voc_palette_matches_known_colours():
  palette = data.voc_palette()
  # Pascal VOC: background black, aeroplane (128,0,0), bicycle (0,128,0),
  # person (192,128,128), void 255 (224,224,192).
  np.testing.assert_array_equal(palette[[0, 1, 2, 15, 255]],
                                [[0, 0, 0], [128, 0, 0], [0, 128, 0],
                                 [192, 128, 128], [224, 224, 192]])
