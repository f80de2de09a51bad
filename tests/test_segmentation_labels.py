"""Label values against --num-classes: build-data's histogram, refusal and
--remap; the check of train and evaluate in the input pipeline; the metric
and the loss that no longer drop out-of-range labels silently.

Tiny 32x32 images and one tiny model (1 unit per block, k=4) trained once
for the module.
"""

import json
import os
import re

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from conftest import TINY_2BLOCK
from conftest import error_line
from segmentation import cli
from segmentation import data
from segmentation import losses
from segmentation import metrics
from segmentation import tasks

TINY = dict(TINY_2BLOCK, scope='tiny')
NUM_IMAGES = 4
SIZE = 32


def write_pairs(root, make_label):
  """`NUM_IMAGES` random 32x32 PNGs in root/images and their labels
  `make_label(i)` as grayscale PNGs in root/labels; returns the labels."""
  rng = np.random.RandomState(0)
  labels = {}
  for folder in ('images', 'labels'):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
  for i in range(NUM_IMAGES):
    name = 'img%d' % i
    Image.fromarray(rng.randint(0, 256, (SIZE, SIZE, 3)).astype(
        np.uint8)).save(os.path.join(root, 'images', name + '.png'))
    label = make_label(i).astype(np.uint8)
    Image.fromarray(label, mode='L').save(
        os.path.join(root, 'labels', name + '.png'))
    labels[name + '.png'] = label
  return labels


def good_label(i):
  label = np.zeros((SIZE, SIZE), np.uint8)
  label[:, 10:20] = 1
  label[:, 20:] = 2
  label[i, :] = 255
  return label


def bad_label(i):
  """Classes 0 and 1, one 4x8 block of 7 or 9 (32 pixels), 255 borders."""
  label = good_label(i)
  label[label == 2] = 0
  label[4:8, 8:16] = 7 if i % 2 else 9
  return label


def binary_label(i):
  label = np.zeros((SIZE, SIZE), np.uint8)
  label[8:24, 4 + i:20 + i] = 255
  return label


def histogram(labels):
  values, counts = np.unique(np.concatenate(
      [label.reshape(-1) for label in labels.values()]), return_counts=True)
  return dict(zip(values.tolist(), counts.tolist()))


def build(root, output, *flags):
  return cli.main(['build-data', '--image-dir', os.path.join(root, 'images'),
                   '--label-dir', os.path.join(root, 'labels'),
                   '--output-dir', output, '--splits', 'train',
                   '--num-shards', '2'] + list(flags))


def read_labels(pattern):
  """{image file name: label} of every record of `pattern`."""
  return {name.numpy()[0].decode(): label.numpy()[0]
          for _, label, name in data.make_dataset(pattern, False)}


def snapshot(directory):
  """{file name: bytes} of a directory (hidden files included)."""
  return {name: open(os.path.join(directory, name), 'rb').read()
          for name in sorted(os.listdir(directory))}


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  """Pairs with good, bad (7, 9) and 0/255 labels; good records; a model
  with 3 classes trained 2 steps on them."""
  root = tmp_path_factory.mktemp('labels')
  sets = {}
  for name, make_label in (('good', good_label), ('bad', bad_label),
                           ('binary', binary_label)):
    sets[name] = write_pairs(str(root / name), make_label)
  records = str(root / 'good_records')
  tasks.build_data(records, image_dir=str(root / 'good' / 'images'),
                   label_dir=str(root / 'good' / 'labels'), splits=['train'],
                   num_shards=1, progress=False, num_classes=3)
  model_dir = str(root / 'model')
  tasks.train(model_dir, os.path.join(records, 'train-*'),
              tasks.ModelConfig(num_classes=3, backbone=TINY, head='fcn',
                                depth=8, output_stride=8), 2, batch_size=2,
              crop_size=(SIZE, SIZE), progress=False, log=lambda *_: None)
  return root, sets, model_dir


def test_build_data_prints_the_histogram_and_refuses_bad_values(
    workspace, tmp_path, capsys):
  root, sets, _ = workspace
  bad = str(root / 'bad')
  output = str(tmp_path / 'records')
  counts = histogram(sets['bad'])
  assert counts[7] == counts[9] == 2 * 32
  # Without --num-classes: written, histogram printed compactly.
  assert build(bad, output) == 0
  out = capsys.readouterr().out
  line = [text for text in out.splitlines()
          if text.startswith('train label pixels')]
  assert line == ['train label pixels: ' + ', '.join(
      '%d%s: %s' % (v, ' (ignore)' if v == 255 else '',
                    data.compact_count(c)) for v, c in sorted(counts.items()))]
  assert data.compact_count(counts[0]) == '%.3gk' % (counts[0] / 1000)
  with open(os.path.join(output, 'labels-train.json')) as f:
    assert {int(k): v for k, v in json.load(f)['histogram'].items()} == counts
  before = snapshot(output)
  # With --num-classes 3: refused, naming values, pixel counts and files;
  # the earlier records are untouched.
  assert build(bad, output, '--num-classes', '3') == 2
  message = error_line(capsys.readouterr().err)
  assert message.startswith('segmentation build-data: error: train: ')
  assert '7: %d pixels (e.g. img1.png, img3.png)' % counts[7] in message
  assert '9: %d pixels (e.g. img0.png, img2.png)' % counts[9] in message
  assert '--remap' in message and 'num_classes=3' in message
  assert snapshot(output) == before


def test_binary_masks_suggest_remap_and_remap_gives_0_and_1(
    workspace, tmp_path, capsys):
  root, sets, _ = workspace
  binary = str(root / 'binary')
  output = str(tmp_path / 'records')
  assert build(binary, output, '--num-classes', '2') == 2
  message = error_line(capsys.readouterr().err)
  assert 'labels look like 0/255 binary masks: use --remap 255:1' in message
  assert not os.path.exists(os.path.join(output, 'labels-train.json'))
  # No --num-classes: written, with a warning that says the same.
  assert build(binary, output) == 0
  assert data.BINARY_MASK_HINT in capsys.readouterr().out
  # --remap 255:1: the records hold 0 and 1 where the masks hold 0 and 255.
  assert build(binary, output, '--num-classes', '2', '--remap', '255:1') == 0
  counts = histogram(sets['binary'])
  assert 'train label pixels: 0: %s, 1: %s' % (
      data.compact_count(counts[0]), data.compact_count(counts[255])) in (
          capsys.readouterr().out)
  written = read_labels(os.path.join(output, 'train-*'))
  assert sorted(written) == sorted(sets['binary'])
  for name, label in sets['binary'].items():
    np.testing.assert_array_equal(written[name], (label == 255).astype(int))
  # Train reads them: labels {0, 1} in its batches.
  batches = data.make_dataset(os.path.join(output, 'train-*'), True, 2,
                              (SIZE, SIZE), num_classes=2)
  seen = set()
  for _, labels in batches.take(4):
    seen.update(np.unique(labels.numpy()).tolist())
  assert seen - {255} == {0, 1}


@pytest.mark.parametrize('remap,message', [
    (['255:x'], 'argument --remap: must be SRC:DST'),
    (['256:1'], 'argument --remap: must be SRC:DST'),
    (['1:2,3'], "got '3'"),
])
def test_bad_remap_is_a_usage_error(workspace, tmp_path, capsys, remap,
                                    message):
  root, _, _ = workspace
  with pytest.raises(SystemExit) as exit_info:
    build(str(root / 'binary'), str(tmp_path / 'r'), '--remap', *remap)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def bad_records(workspace, tmp_path, keep_histogram):
  root, sets, _ = workspace
  output = str(tmp_path / 'bad_records')
  tasks.build_data(output, image_dir=str(root / 'bad' / 'images'),
                   label_dir=str(root / 'bad' / 'labels'), splits=['train'],
                   num_shards=2, progress=False)
  if not keep_histogram:
    os.remove(os.path.join(output, 'labels-train.json'))
  return os.path.join(output, 'train-*'), histogram(sets['bad'])


@pytest.mark.parametrize('command', ['train', 'evaluate'])
def test_train_and_evaluate_check_labels_in_the_pipeline(
    workspace, tmp_path, capsys, command):
  _, _, model_dir = workspace
  pattern, counts = bad_records(workspace, tmp_path, keep_histogram=False)
  if command == 'train':
    argv = ['train', '--model-dir', str(tmp_path / 'model'), '--train',
            pattern, '--num-classes', '3', '--backbone', json.dumps(TINY),
            '--head', 'fcn', '--depth', '8', '--output-stride', '8',
            '--steps', '2', '--batch-size',
            '2', '--crop-size', str(SIZE), '--no-progress']
  else:
    argv = ['evaluate', '--model-dir', model_dir, '--eval', pattern]
  assert cli.main(argv) == 2
  message = error_line(capsys.readouterr().err)
  # The first bad record read: its image, its 32 bad pixels, its value.
  match = re.search(r'label check: record of image (img\d)\.png: (\d+) '
                    r'pixels have label values (\d+), neither < '
                    r'num_classes=3 nor 255 \(ignore\)', message)
  assert match, message
  index = int(match.group(1)[3:])
  assert int(match.group(2)) == counts[7] // 2 == 32
  assert int(match.group(3)) == (7 if index % 2 else 9)
  assert '--remap 255:1' in message
  if command == 'train':
    assert not os.path.exists(os.path.join(str(tmp_path / 'model'),
                                           'config.json'))


def training_batches(pattern, num_classes, count=4):
  """The labels of `count` training batches of 2: two passes over the 4
  records, each checked as it is read."""
  batches = data.make_dataset(pattern, True, 2, (SIZE, SIZE),
                              num_classes=num_classes)
  with data.label_errors():
    return [labels.numpy() for _, labels in batches.take(count)]


def test_train_reads_build_data_histograms_first(workspace, tmp_path):
  pattern, counts = bad_records(workspace, tmp_path, keep_histogram=True)
  # Refused before any record is read.
  with pytest.raises(data.LabelError) as error:
    data.make_dataset(pattern, True, num_classes=3)
  assert ('7: %d pixels; 9: %d pixels' % (counts[7], counts[9])) in str(
      error.value)
  # Enough classes: the histograms pass, and every record as it is read;
  # no num_classes: no check.
  for num_classes in (10, None):
    batches = training_batches(pattern, num_classes)
    assert [b.shape for b in batches] == [(2, SIZE, SIZE)] * 4
  # The records' own check: without the histograms, 9 >= 8 stops the
  # reading at the first record holding it.
  os.remove(os.path.join(os.path.dirname(pattern), 'labels-train.json'))
  data.make_dataset(pattern, True, num_classes=8)
  with pytest.raises(data.LabelError, match=r'pixels have label values 9, '
                     r'neither < num_classes=8'):
    training_batches(pattern, 8)


def test_evaluate_api_refuses_instead_of_a_perfect_score(workspace,
                                                         tmp_path):
  _, _, model_dir = workspace
  pattern, _ = bad_records(workspace, tmp_path, keep_histogram=False)
  with pytest.raises(data.LabelError, match='label check'):
    tasks.evaluate(model_dir, pattern, progress=False, summary_dir='')


def test_confusion_matrix_refuses_labels_out_of_range():
  confusion = metrics.ConfusionMatrix(3)
  confusion.update([0, 1, 2, 255], [0, 1, 1, 0])  # 255 is skipped.
  np.testing.assert_array_equal(confusion.matrix, [[1, 0, 0], [0, 1, 0],
                                                   [0, 1, 0]])
  with pytest.raises(ValueError, match=r'num_classes=3 or 255 \(ignore\), '
                     r'got 3 pixels with values 7, 9'):
    confusion.update([0, 7, 9, 9, 255], [0, 0, 0, 0, 0])
  with pytest.raises(ValueError, match='values -1'):
    confusion.update([-1], [0])
  assert confusion.matrix.sum() == 3  # Unchanged by the refused updates.


def test_loss_refuses_labels_out_of_range():
  logits = tf.zeros([1, 2, 2, 3])
  assert losses.softmax_cross_entropy(
      [[[0, 255], [2, 1]]], logits).numpy() == pytest.approx([np.log(3)])
  for bad in (3, 7, -1):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r'labels must be in \[0, num_classes=3\)'):
      losses.softmax_cross_entropy([[[0, bad], [2, 1]]], logits)
