"""Tests of densenet.datasets: CIFAR archives, image folders, TFRecords,
tf.data.

The CIFAR archives are generated in the exact format of the real ones
(pickle protocol 2, bytes keys, planar uint8 rows, the same member names
inside a .tar.gz), with a few hundred images.
"""

import io
import os
import pickle
import tarfile

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import densenet  # noqa: F401  (applies the tf-slim compatibility fixes)
from densenet import datasets
from densenet import preprocessing
from densenet.datasets import cifar
from densenet.datasets import image_folder
from densenet.datasets import pipeline
from densenet.datasets import tfrecords


def cifar_row(image):
  """A CIFAR data row as documented: 1024 red, 1024 green, 1024 blue values,
  each 32x32 plane in row-major order."""
  return np.concatenate([image[:, :, 0].ravel(), image[:, :, 1].ravel(),
                         image[:, :, 2].ravel()])


def _pickled(obj):
  return pickle.dumps(obj, protocol=2)


def write_cifar(directory, name, num_train, num_test, seed=0, as_tar=True,
                learnable=False):
  """Writes a small CIFAR-10/100 archive; returns (path, expected).

  expected: {'train': (images, labels), 'test': (images, labels)} with
  [n, 32, 32, 3] uint8 images and, for CIFAR-100, the fine labels. With
  `learnable`, only the labels 0, 1, 2 occur and label c brightens
  channel c, so a network can learn them in a few steps.
  """
  rng = np.random.RandomState(seed)
  num_classes = 10 if name == 'CIFAR10' else 100
  expected, members = {}, {}
  for split, count in (('train', num_train), ('test', num_test)):
    images = rng.randint(0, 256, (count, 32, 32, 3)).astype(np.uint8)
    labels = rng.randint(0, num_classes, count)
    if learnable:
      labels = rng.randint(0, 3, count)
      images = images // 3
      images[np.arange(count), :, :, labels] += 150
    expected[split] = (images, labels)
  if name == 'CIFAR10':
    folder = 'cifar-10-batches-py'
    per_batch = num_train // 5
    assert per_batch * 5 == num_train and per_batch == num_test
    images, labels = expected['train']
    for i in range(5):
      part = slice(i * per_batch, (i + 1) * per_batch)
      members['data_batch_%d' % (i + 1)] = _pickled({
          b'batch_label': b'training batch %d of 5' % (i + 1),
          b'labels': [int(label) for label in labels[part]],
          b'data': np.stack([cifar_row(im) for im in images[part]]),
          b'filenames': [b'img_%d.png' % j for j in range(per_batch)]})
    images, labels = expected['test']
    members['test_batch'] = _pickled({
        b'batch_label': b'testing batch 1 of 1',
        b'labels': [int(label) for label in labels],
        b'data': np.stack([cifar_row(im) for im in images]),
        b'filenames': [b'img_%d.png' % j for j in range(num_test)]})
    members['batches.meta'] = _pickled({
        b'label_names': [b'class_%d' % i for i in range(10)],
        b'num_cases_per_batch': per_batch, b'num_vis': 3072})
  else:
    folder = 'cifar-100-python'
    for split in ('train', 'test'):
      images, labels = expected[split]
      members[split] = _pickled({
          b'batch_label': b'%s batch 1 of 1' % split.encode(),
          b'fine_labels': [int(label) for label in labels],
          b'coarse_labels': [int(label) // 5 for label in labels],
          b'data': np.stack([cifar_row(im) for im in images]),
          b'filenames': [b'img_%d.png' % j for j in range(len(labels))]})
    members['meta'] = _pickled({
        b'fine_label_names': [b'fine_%d' % i for i in range(100)],
        b'coarse_label_names': [b'coarse_%d' % i for i in range(20)]})
  if not as_tar:
    os.makedirs(os.path.join(directory, folder))
    for member, data in members.items():
      with open(os.path.join(directory, folder, member), 'wb') as f:
        f.write(data)
    return os.path.join(directory, folder), expected
  path = os.path.join(directory, cifar.DATASETS[name].archive_name)
  with tarfile.open(path, 'w:gz') as tar:
    for member, data in members.items():
      info = tarfile.TarInfo(folder + '/' + member)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path, expected


def read_records(data_dir, split):
  images, labels = zip(*[(image.numpy(), label.numpy()) for image, label
                         in tfrecords.read_split(data_dir, split)])
  return np.stack(images), np.array(labels)


@pytest.mark.parametrize('name', ['CIFAR10', 'CIFAR100'])
def test_cifar_round_trip(tmp_path, name):
  source, expected = write_cifar(str(tmp_path), name, 200, 40)
  output_dir = str(tmp_path / 'records')
  with pytest.warns(UserWarning, match=(
      'holds 40 test and 200 train images; the standard %s archive holds '
      '10000 test and 50000 train' % name)):
    metadata = cifar.create_tfrecords(name, source, output_dir,
                                      num_shards={'train': 3})
  for split, count in (('train', 200), ('test', 40)):
    images, labels = read_records(output_dir, split)
    np.testing.assert_array_equal(images, expected[split][0])
    np.testing.assert_array_equal(labels, expected[split][1])
    assert metadata['splits'][split]['num_examples'] == count
  assert len(metadata['splits']['train']['files']) == 3
  assert sorted(os.listdir(output_dir)) == sorted(
      ['metadata.json'] + metadata['splits']['train']['files'] +
      metadata['splits']['test']['files'])  # No temporary files left.
  num_classes = 10 if name == 'CIFAR10' else 100
  assert metadata['num_classes'] == num_classes
  assert len(metadata['class_names']) == num_classes
  assert metadata['class_names'][3] == (
      'class_3' if name == 'CIFAR10' else 'fine_3')
  train = expected['train'][0].astype(np.float64)
  for c in range(3):
    assert metadata['normalization']['mean'][c] == pytest.approx(
        train[..., c].mean(), rel=1e-12)
    assert metadata['normalization']['std'][c] == pytest.approx(
        train[..., c].std(), rel=1e-12)


def test_cifar_extracted_folder(tmp_path):
  folder, expected = write_cifar(str(tmp_path), 'CIFAR10', 50, 10,
                                 as_tar=False)
  for source in (folder, str(tmp_path)):  # The folder or its parent.
    images, labels = cifar.read_archive('CIFAR10', source, 'test')
    np.testing.assert_array_equal(images, expected['test'][0])
    np.testing.assert_array_equal(labels, expected['test'][1])


def test_cifar_bad_archives_are_named(tmp_path):
  source, _ = write_cifar(str(tmp_path), 'CIFAR10', 50, 10)
  with open(source, 'rb') as f:
    data = f.read()
  truncated = str(tmp_path / 'truncated.tar.gz')
  with open(truncated, 'wb') as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(ValueError, match='truncated.tar.gz is truncated'):
    cifar.create_tfrecords('CIFAR10', truncated, str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out' / 'metadata.json')
  missing = str(tmp_path / 'nowhere.tar.gz')
  with pytest.raises(FileNotFoundError, match='nowhere.tar.gz'):
    cifar.read_archive('CIFAR10', missing)
  # The CIFAR-10 archive given as CIFAR-100: named, with what is missing.
  with pytest.raises(ValueError, match=r'cifar-10-python.tar.gz is not a '
                     r'cifar-100-python.tar.gz archive: missing '
                     r'cifar-100-python/meta'):
    cifar.read_archive('CIFAR100', source)
  with pytest.raises(ValueError, match="Unknown CIFAR dataset 'CIFAR1'"):
    cifar.read_archive('CIFAR1', source)


def test_cifar_inconsistent_or_malicious_pickles(tmp_path):
  folder, _ = write_cifar(str(tmp_path), 'CIFAR10', 50, 10, as_tar=False)
  batch_path = os.path.join(folder, 'data_batch_2')
  with open(batch_path, 'rb') as f:
    batch = pickle.load(f, encoding='bytes')
  batch[b'labels'] = batch[b'labels'][:-1]
  with open(batch_path, 'wb') as f:
    f.write(_pickled(batch))
  with pytest.raises(ValueError, match='data_batch_2 has 10 images but 9'):
    cifar.read_archive('CIFAR10', folder)
  # A pickle that would run code is refused, not executed.
  with open(batch_path, 'wb') as f:
    f.write(pickle.dumps(os.system, protocol=2))
  with pytest.raises(ValueError, match='data_batch_2 is truncated or not a '
                     'CIFAR pickle.*refusing to load posix.system'):
    cifar.read_archive('CIFAR10', folder)


def test_pipeline_normalizes_with_dataset_statistics(tmp_path):
  source, expected = write_cifar(str(tmp_path), 'CIFAR10', 50, 10)
  with pytest.warns(UserWarning):
    metadata = cifar.create_tfrecords('CIFAR10', source, str(tmp_path / 'r'))
  batches = list(datasets.make_dataset(str(tmp_path / 'r'), 'test',
                                       batch_size=4, is_training=False))
  assert [b[0].shape.as_list() for b in batches] == [[4, 32, 32, 3]] * 2 + [
      [2, 32, 32, 3]]
  images = np.concatenate([b[0].numpy() for b in batches])
  mean = np.array(metadata['normalization']['mean'])
  std = np.array(metadata['normalization']['std'])
  np.testing.assert_allclose(images, (expected['test'][0] - mean) / std,
                             atol=1e-5)
  np.testing.assert_array_equal(
      np.concatenate([b[1].numpy() for b in batches]), expected['test'][1])


def test_pipeline_augmentation_is_a_padded_crop_maybe_flipped():
  rng = np.random.RandomState(1)
  images = rng.randint(0, 256, (12, 8, 8, 3)).astype(np.uint8)
  dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(12)))
  batches = list(pipeline.input_pipeline(
      dataset, 5, {'mean': [0, 0, 0], 'std': [1, 1, 1]}, is_training=True,
      augment_images=True, seed=3))
  assert [b[0].shape.as_list() for b in batches] == [[5, 8, 8, 3]] * 2
  labels = np.concatenate([b[1].numpy() for b in batches])
  assert len(set(labels)) == 10  # Shuffled, last partial batch dropped.
  offsets, flips = set(), set()
  for image, label in zip(np.concatenate([b[0].numpy() for b in batches]),
                          labels):
    padded = np.pad(images[label].astype(np.float32),
                    [(1, 1), (1, 1), (0, 0)])  # 4/32 of 8 pixels.
    matches = [(dy, dx, flip) for dy in range(3) for dx in range(3)
               for flip in (False, True)
               if np.array_equal(image, (lambda c: c[:, ::-1] if flip else c)(
                   padded[dy:dy + 8, dx:dx + 8]))]
    assert matches, 'not a crop of the padded image %d' % label
    offsets.update(m[:2] for m in matches)
    flips.update(m[2] for m in matches)
  assert len(offsets) > 1 and flips == {False, True}


def test_pipeline_bad_normalization():
  with pytest.raises(ValueError, match="Unknown normalization mode 'caffe'"):
    preprocessing.normalizer('caffe')
  with pytest.raises(ValueError, match='std must be > 0'):
    preprocessing.normalizer({'mean': [0, 0, 0], 'std': [1, 0, 1]})


def test_image_folder_round_trip(tmp_path):
  rng = np.random.RandomState(2)
  root = tmp_path / 'photos'
  expected = {}
  for name in ('dog', 'cat'):
    (root / name).mkdir(parents=True)
    for i in range(5):
      pixels = rng.randint(0, 256, (16, 16, 3)).astype(np.uint8)
      path = root / name / ('%d.png' % i)
      Image.fromarray(pixels).save(path)
      expected[pixels.tobytes()] = ['cat', 'dog'].index(name)
  gray = rng.randint(0, 256, (16, 16)).astype(np.uint8)
  Image.fromarray(gray, 'L').save(root / 'cat' / 'gray.png')
  expected[np.repeat(gray[..., None], 3, 2).tobytes()] = 0
  Image.new('RGB', (40, 20)).save(root / 'dog' / 'wide.jpg')  # Resized.
  (root / 'dog' / 'notes.txt').write_text('not an image')  # Ignored.
  metadata = image_folder.create_tfrecords(
      str(root), str(tmp_path / 'r'), image_size=16, validation_fraction=0.2)
  assert metadata['class_names'] == ['cat', 'dog']
  assert metadata['splits']['train']['num_examples'] == 10
  assert metadata['splits']['validation']['num_examples'] == 2
  seen = {}
  for split in ('train', 'validation'):
    images, labels = read_records(str(tmp_path / 'r'), split)
    assert images.shape[1:] == (16, 16, 3)
    for image, label in zip(images, labels):
      seen[image.tobytes()] = label
  wide = [k for k in seen if k not in expected]
  assert len(wide) == 1 and seen[wide[0]] == 1
  assert np.frombuffer(wide[0], np.uint8).max() == 0  # Black, as written.
  del seen[wide[0]]
  assert seen == expected


def test_image_folder_names_a_corrupt_image(tmp_path):
  (tmp_path / 'a').mkdir()
  Image.new('RGB', (8, 8)).save(tmp_path / 'a' / 'good.png')
  (tmp_path / 'a' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0garbage')
  with pytest.raises(ValueError, match='Cannot decode image .*broken.jpg'):
    image_folder.create_tfrecords(str(tmp_path), str(tmp_path / 'out'),
                                  image_size=8, validation_fraction=0.0)
  assert not os.path.exists(tmp_path / 'out' / 'metadata.json')
  assert not [f for f in os.listdir(tmp_path / 'out') if f.endswith('.tmp')]
