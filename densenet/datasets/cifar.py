"""CIFAR-10 and CIFAR-100 from the standard python archives.

    from densenet.datasets import cifar

    cifar.create_tfrecords('CIFAR10', '~/cifar-10-python.tar.gz', 'data/c10')
    images, labels = cifar.read_archive('CIFAR10', 'data/cifar-10-batches-py',
                                        'test')   # [10000, 32, 32, 3], [10000]

`source` is the archive as distributed (`cifar-10-python.tar.gz`,
`cifar-100-python.tar.gz`) or its extracted folder (`cifar-10-batches-py`,
`cifar-100-python`, or a directory containing it).

The archives hold pickles written by Python 2 (protocol 2, `bytes` keys):
CIFAR-10 `data_batch_1` ... `data_batch_5` (training) and `test_batch`,
each `{b'data': uint8 [n, 3072], b'labels': [n ints], ...}`, and
`batches.meta` (`b'label_names'`, `b'num_cases_per_batch'`); CIFAR-100
`train` and `test` with `b'fine_labels'` and `b'coarse_labels'`, and `meta`
(`b'fine_label_names'`, `b'coarse_label_names'`). A row of `b'data'` is the
1024 red values, then the 1024 green, then the 1024 blue ones of a 32x32
image, each plane in row-major order. We use the fine labels of CIFAR-100.

The pickles are read with an unpickler that only accepts numpy arrays and
builtin values, so a doctored archive cannot run code.
"""

import codecs
import collections
import io
import os
import pickle
import tarfile
import warnings
import zlib

import numpy as np

from densenet.datasets import tfrecords

IMAGE_SHAPE = (32, 32, 3)

CifarFormat = collections.namedtuple('CifarFormat', [
    'folder',          # top-level folder inside the archive
    'archive_name',    # the file as distributed
    'splits',          # split -> tuple of pickle member names
    'label_key',       # key of the labels in a data pickle
    'meta',            # name of the metadata pickle
    'class_names_key',  # key of the class names in it
    'num_classes',
    'num_examples',    # split -> count of the standard archive
    'num_shards',      # split -> shards written by create_tfrecords
])

DATASETS = {
    'CIFAR10': CifarFormat(
        folder='cifar-10-batches-py',
        archive_name='cifar-10-python.tar.gz',
        splits={'train': tuple('data_batch_%d' % i for i in range(1, 6)),
                'test': ('test_batch',)},
        label_key=b'labels',
        meta='batches.meta',
        class_names_key=b'label_names',
        num_classes=10,
        num_examples={'train': 50000, 'test': 10000},
        num_shards={'train': 10, 'test': 2}),
    'CIFAR100': CifarFormat(
        folder='cifar-100-python',
        archive_name='cifar-100-python.tar.gz',
        splits={'train': ('train',), 'test': ('test',)},
        label_key=b'fine_labels',
        meta='meta',
        class_names_key=b'fine_label_names',
        num_classes=100,
        num_examples={'train': 50000, 'test': 10000},
        num_shards={'train': 10, 'test': 2}),
}


def dataset_format(name):
  """The `CifarFormat` of 'CIFAR10' or 'CIFAR100' (ValueError otherwise)."""
  if name not in DATASETS:
    raise ValueError('Unknown CIFAR dataset %r; known: %s.' %
                     (name, ', '.join(sorted(DATASETS))))
  return DATASETS[name]


def create_tfrecords(name, source, output_dir, num_shards=None):
  """Converts a CIFAR archive into sharded TFRecords with `metadata.json`.

  Reads every pickle of the archive, checks it (see `read_archive`), writes
  the training and test splits (see `densenet.datasets.tfrecords`), reads the
  records back to verify their counts, and writes the metadata last: the
  class names and the per-channel mean and standard deviation of the
  training images (the paper's normalisation).

  Args:
    name: 'CIFAR10' or 'CIFAR100'.
    source: The `.tar.gz` archive or its extracted folder.
    output_dir: Where to write the shards and `metadata.json`.
    num_shards: Optional `{split: shards}` overriding `DATASETS[name]`.

  Returns:
    The metadata dict (as written to `output_dir/metadata.json`).

  Raises:
    FileNotFoundError: If `source` does not exist.
    ValueError: If `source` is truncated, not a CIFAR archive, the other
      CIFAR's archive, or inconsistent; the message names the file.
  """
  spec = dataset_format(name)
  num_shards = dict(spec.num_shards, **(num_shards or {}))
  data, class_names = _read(name, source, sorted(spec.splits))
  counts = {split: len(labels) for split, (_, labels) in data.items()}
  if counts != spec.num_examples:
    warnings.warn('%s holds %s images; the standard %s archive holds %s.' %
                  (source, _describe(counts), name,
                   _describe(spec.num_examples)))
  splits = {}
  for split, (images, labels) in data.items():
    files = tfrecords.write_split(
        zip(images, labels), output_dir, split, len(images),
        num_shards[split], description='%s %s' % (name, split))
    splits[split] = {'num_examples': len(images), 'files': files}
  train_images = data['train'][0].reshape(-1, IMAGE_SHAPE[-1])
  train_images = train_images.astype(np.float64)
  metadata = {
      'dataset': name,
      'num_classes': spec.num_classes,
      'class_names': class_names,
      'image_shape': list(IMAGE_SHAPE),
      'normalization': {'mean': train_images.mean(0).tolist(),
                        'std': train_images.std(0).tolist()},
      'splits': splits,
  }
  tfrecords.write_metadata(output_dir, metadata)
  return tfrecords.read_metadata(output_dir)


def _describe(counts):
  return ' and '.join('%d %s' % (counts[s], s) for s in sorted(counts))


def read_archive(name, source, split=None):
  """Reads the images and labels of a CIFAR archive.

  Checks that every pickle is present and readable, that its data is
  `[n, 3072]` uint8 with `n` labels in `[0, num_classes)`, and for CIFAR-10
  that each batch holds `num_cases_per_batch` (from `batches.meta`) images.

  Args:
    name: 'CIFAR10' or 'CIFAR100'.
    source: The `.tar.gz` archive or its extracted folder.
    split: 'train' or 'test', or None for both.

  Returns:
    `(images, labels)`: `[n, 32, 32, 3]` uint8 and `[n]` int64 numpy arrays,
    in archive order; or `{split: (images, labels)}` when `split` is None.

  Raises:
    FileNotFoundError: If `source` does not exist.
    ValueError: If `source` is truncated, not a CIFAR archive, the other
      CIFAR's archive, or inconsistent; the message names the file.
  """
  spec = dataset_format(name)
  if split is not None and split not in spec.splits:
    raise ValueError('split must be one of %s or None, got %r.' %
                     (', '.join(sorted(spec.splits)), split))
  data, _ = _read(name, source, [split] if split else sorted(spec.splits))
  return data[split] if split else data


def read_class_names(name, source):
  """The class names of a CIFAR archive (fine labels for CIFAR-100)."""
  return _read(name, source, [])[1]


def _read(name, source, splits):
  """`({split: (images, labels)}, class_names)` of a CIFAR archive."""
  spec = dataset_format(name)
  members = [spec.meta] + [m for s in splits for m in spec.splits[s]]
  pickles = _load_pickles(name, source, members)
  meta = pickles[spec.meta]
  names = meta.get(spec.class_names_key) if isinstance(meta, dict) else None
  if not isinstance(names, list) or len(names) != spec.num_classes:
    raise ValueError('%s: %s is not the %s metadata (needs a list of %d %r).'
                     % (source, spec.meta, name, spec.num_classes,
                        spec.class_names_key))
  class_names = [n.decode('utf-8') if isinstance(n, bytes) else str(n)
                 for n in names]
  cases_per_batch = meta.get(b'num_cases_per_batch')
  data = {}
  for split in splits:
    images, labels = [], []
    for member in spec.splits[split]:
      batch_images, batch_labels = _check_batch(
          name, source, member, pickles[member], spec)
      if cases_per_batch is not None and len(batch_labels) != cases_per_batch:
        raise ValueError('%s: %s holds %d images but %s says %d per batch.' %
                         (source, member, len(batch_labels), spec.meta,
                          cases_per_batch))
      images.append(batch_images)
      labels.append(batch_labels)
    data[split] = (np.concatenate(images), np.concatenate(labels))
  return data, class_names


def _check_batch(name, source, member, batch, spec):
  """`(images [n, 32, 32, 3] uint8, labels [n] int64)` of one data pickle."""
  if not isinstance(batch, dict) or b'data' not in batch or (
      spec.label_key not in batch):
    raise ValueError('%s: %s is not a %s data batch (needs the keys '
                     "b'data' and %r)." % (source, member, name,
                                           spec.label_key))
  data = np.asarray(batch[b'data'])
  labels = np.asarray(batch[spec.label_key], dtype=np.int64)
  if data.dtype != np.uint8 or data.ndim != 2 or (
      data.shape[1] != np.prod(IMAGE_SHAPE)):
    raise ValueError('%s: %s data must be uint8 [n, 3072], got %s %s.' %
                     (source, member, data.dtype, data.shape))
  if labels.shape != (len(data),):
    raise ValueError('%s: %s has %d images but %d labels.' %
                     (source, member, len(data), labels.size))
  if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
    raise ValueError('%s: %s has labels outside [0, %d): is it a %s archive?'
                     % (source, member, spec.num_classes, name))
  # [n, 3072] = [n, channel, row, column] -> [n, row, column, channel].
  height, width, channels = IMAGE_SHAPE
  images = data.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def _load_pickles(name, source, members):
  """Unpickles `members` of the archive or folder `source`."""
  spec = dataset_format(name)
  source = os.path.expanduser(os.fspath(source))
  if not os.path.exists(source):
    raise FileNotFoundError('%s source %r does not exist (expected %s or its '
                            'extracted folder %s).' %
                            (name, source, spec.archive_name, spec.folder))
  if os.path.isdir(source):
    contents = _read_folder(source, spec, members)
  else:
    contents = _read_tar(source, spec, members)
  result = {}
  for member in members:
    try:
      result[member] = _RestrictedUnpickler(
          io.BytesIO(contents[member]), encoding='bytes').load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError) as e:
      raise ValueError('%s: %s is truncated or not a CIFAR pickle (%s).' %
                       (source, member, e)) from e
  return result


def _read_folder(source, spec, members):
  """Bytes of `members` from an extracted folder (or its parent)."""
  folder = source
  if not os.path.isfile(os.path.join(folder, members[0])):
    folder = os.path.join(source, spec.folder)
  missing = [m for m in members
             if not os.path.isfile(os.path.join(folder, m))]
  if missing:
    raise ValueError('%s is not an extracted %s folder: missing %s.' %
                     (source, spec.archive_name, ', '.join(missing)))
  contents = {}
  for member in members:
    with open(os.path.join(folder, member), 'rb') as f:
      contents[member] = f.read()
  return contents


def _read_tar(source, spec, members):
  """Bytes of `members` (under `spec.folder/`) from a .tar.gz archive."""
  wanted = {spec.folder + '/' + m: m for m in members}
  contents, seen = {}, []
  try:
    with tarfile.open(source, 'r:*') as tar:
      for info in tar:
        seen.append(info.name)
        if info.name in wanted and info.isfile():
          contents[wanted[info.name]] = tar.extractfile(info).read()
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    raise ValueError('%s is truncated or not a %s archive (%s).' %
                     (source, spec.archive_name, e)) from e
  missing = [m for m in members if m not in contents]
  if missing:
    raise ValueError('%s is not a %s archive: missing %s (it holds %s).' %
                     (source, spec.archive_name,
                      ', '.join(spec.folder + '/' + m for m in missing),
                      ', '.join(seen[:6]) + (' ...' if len(seen) > 6 else '')
                      or 'nothing'))
  return contents


def _numpy_reconstruct():
  core = getattr(np, '_core', None) or np.core
  return core.multiarray._reconstruct  # pylint: disable=protected-access


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles numpy arrays, dtypes and builtins; refuses everything else."""

  _ALLOWED = {
      ('numpy.core.multiarray', '_reconstruct'): _numpy_reconstruct,
      ('numpy._core.multiarray', '_reconstruct'): _numpy_reconstruct,
      ('numpy', 'ndarray'): lambda: np.ndarray,
      ('numpy', 'dtype'): lambda: np.dtype,
      ('_codecs', 'encode'): lambda: codecs.encode,
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError('refusing to load %s.%s' % (module, name))
    return self._ALLOWED[(module, name)]()
