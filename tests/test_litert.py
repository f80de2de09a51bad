"""LiteRT: export (`--format litert`), run (`--litert`), bad input.

A tiny DenseNet classifier trained on a generated image folder (three
classes of stripes) and a tiny segmentation model directory; every .tflite
is converted once per module. Float32 files must give TensorFlow's numbers;
quantized ones must agree with float32 on the trained classifier.
"""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tf_slim as slim

import densenet
from densenet import cli
from densenet import preprocessing
from densenet.serve import calibration
from densenet.serve import litert_runtime
from densenet.serve import pretrained
from densenet.weights import assign
from densenet.weights import checkpoints

pytest.importorskip('ai_edge_litert')

TINY = {'num_units_per_block': [1, 2, 2, 1], 'growth_rate': 4}
SIZE = 32
CLASSES = ('horizontal', 'vertical', 'diagonal')
# Runs in a fresh interpreter with only ai_edge_litert: the model, its
# metadata and dynamic batches, no TensorFlow and no densenet.
_LITERT_ONLY = r'''
import json, sys
import numpy as np
from ai_edge_litert import interpreter, schema_py_generated as schema
path, inputs_path, outputs_path = sys.argv[1:]
content = open(path, 'rb').read()
model = schema.Model.GetRootAs(content, 0)
entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
           for i in range(model.MetadataLength())}
metadata = json.loads(model.Buffers(entries['densenet.json']).DataAsNumpy()
                      .tobytes())
runner = interpreter.Interpreter(model_path=path).get_signature_runner()
images = np.load(inputs_path)
batch = runner(images=images)['logits']
single = np.concatenate([runner(images=images[i:i + 1])['logits']
                         for i in range(len(images))])
assert not {'tensorflow', 'densenet'} & set(sys.modules)
np.savez(outputs_path, batch=batch, single=single,
         metadata=np.array(json.dumps(metadata)))
'''


def stripes(label, rng):
  """A `[SIZE, SIZE, 3]` uint8 image of class `label`'s stripes."""
  y, x = np.mgrid[0:SIZE, 0:SIZE]
  period = rng.uniform(5, 9)
  phase = {0: y, 1: x, 2: x + y}[label] * 2 * np.pi / period
  wave = np.sin(phase + rng.uniform(0, 2 * np.pi))[..., None]
  dark = rng.uniform(0, 100, 3)
  image = dark + rng.uniform(100, 155) * (wave + 1)
  return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(
      np.uint8)


def write_folder(root, per_class, seed):
  rng = np.random.RandomState(seed)
  paths, labels = [], []
  for label, name in enumerate(CLASSES):
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      paths.append(os.path.join(root, name, '%d.png' % i))
      Image.fromarray(stripes(label, rng)).save(paths[-1])
      labels.append(label)
  return paths, np.array(labels)


def train_tiny_classifier(paths, labels, steps=150):
  """`weights` of TINY trained on the images (Adam, batch 16; a fast batch
  norm decay, so its moving statistics converge in time)."""
  pixels = np.stack([preprocessing.load_image(p, None, None) for p in paths])
  rng = np.random.RandomState(0)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(0)
    images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3])
    targets = tf.compat.v1.placeholder(tf.int64, [None])
    with slim.arg_scope(densenet.densenet_arg_scope(
        weight_decay=0.0, batch_norm_decay=0.9)):
      logits, _ = densenet.densenet_X(preprocessing.normalize(images),
                                      num_classes=len(CLASSES),
                                      is_training=True, **TINY)
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(targets, logits)
    with tf.control_dependencies(tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS)):
      train_op = tf.compat.v1.train.AdamOptimizer(3e-3).minimize(loss)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      for _ in range(steps):
        batch = rng.choice(len(paths), 16)
        session.run(train_op, {images: pixels[batch],
                               targets: labels[batch]})
      return assign.session_weights(session, 'densenet_X', [
          v for v in tf.compat.v1.global_variables('densenet_X/')
          if 'Adam' not in v.op.name])


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
  """A trained tiny checkpoint, its image folders, fp32 and int8 files."""
  directory = tmp_path_factory.mktemp('litert_classifier')
  train_paths, train_labels = write_folder(str(directory / 'train'), 30, 0)
  test_paths, test_labels = write_folder(str(directory / 'test'), 10, 1)
  weights = train_tiny_classifier(train_paths, train_labels)
  metadata = {'model': TINY, 'num_classes': len(CLASSES),
              'batch_norm_epsilon': 1.001e-5, 'normalization': 'torch',
              'source': 'test'}
  checkpoint = checkpoints.save_checkpoint(
      weights, metadata, str(directory / 'ckpt' / 'model.ckpt'))
  geometry = ['--resize-size', str(SIZE), '--crop-size', str(SIZE)]
  files = {'fp32': str(directory / 'tiny.tflite'),
           'int8': str(directory / 'tiny_int8.tflite')}
  assert cli.main(['export', files['fp32'], '--checkpoint', checkpoint] +
                  geometry) == 0
  assert cli.main(['export', files['int8'], '--checkpoint', checkpoint,
                   '--format', 'litert', '--quantize', 'int8',
                   '--calibration', str(directory / 'train'),
                   '--calibration-size', '24'] + geometry) == 0
  model = pretrained.load_pretrained(None, checkpoint, resize_size=SIZE,
                                     crop_size=SIZE)
  batch = np.stack([preprocessing.load_image(p, None, None)
                    for p in test_paths]).astype(np.float32)
  logits = model.logits(batch)
  model.close()
  return {'directory': directory, 'checkpoint': checkpoint, 'files': files,
          'test_paths': test_paths, 'test_labels': test_labels,
          'batch': batch, 'logits': logits, 'geometry': geometry}


def test_fp32_file_runs_with_litert_alone_and_equals_tensorflow(classifier,
                                                                tmp_path):
  np.save(str(tmp_path / 'images.npy'), classifier['batch'][:3])
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)
  subprocess.run([sys.executable, '-c', _LITERT_ONLY,
                  classifier['files']['fp32'], str(tmp_path / 'images.npy'),
                  str(tmp_path / 'out.npz')], check=True, env=env,
                 cwd=str(tmp_path), timeout=120)
  out = np.load(str(tmp_path / 'out.npz'))
  expected = classifier['logits'][:3]
  np.testing.assert_allclose(out['batch'], expected, atol=1e-4, rtol=0)
  np.testing.assert_allclose(out['single'], expected, atol=1e-4, rtol=0)
  metadata = json.loads(str(out['metadata']))
  assert metadata['task'] == 'classification'
  assert metadata['architecture'] == TINY
  assert metadata['input_size'] == [SIZE, SIZE]
  assert metadata['resize_size'] == SIZE
  assert metadata['class_names'] == ['0', '1', '2']
  assert metadata['normalization'] == 'torch'
  assert metadata['quantization'] == 'none'
  assert metadata['outputs'] == ['logits', 'probabilities']
  assert metadata['format_version'] == litert_runtime.FORMAT_VERSION


def _classify(argv, capsys):
  assert cli.main(['classify'] + argv) == 0
  return capsys.readouterr().out


def test_classify_litert_prints_what_the_checkpoint_prints(classifier,
                                                           capsys):
  paths = classifier['test_paths'][:4]
  reference = _classify(paths + ['--checkpoint', classifier['checkpoint'],
                                 '--top', '2'] + classifier['geometry'],
                        capsys).splitlines()
  lines = _classify(paths + ['--litert', classifier['files']['fp32'],
                             '--top', '2', '--threads', '1'],
                    capsys).splitlines()
  assert len(lines) == len(reference) == 8
  for line, expected in zip(lines, reference):
    fields, expected = line.split('\t'), expected.split('\t')
    assert fields[:2] + fields[3:] == expected[:2] + expected[3:]
    assert abs(float(fields[2]) - float(expected[2])) <= 1e-4
  document = json.loads(_classify(paths[:1] + [
      '--litert', classifier['files']['fp32'], '--json', '--top', '2'],
                                   capsys))
  assert [(p['class'], '%.4f' % p['probability'])
          for p in document[0]['predictions']] == [
              (line.split('\t')[3], line.split('\t')[2])
              for line in lines[:2]]


def test_quantized_files_agree_with_float32(classifier, tmp_path):
  # The trained classifier: int8 (the file of the fixture, calibrated on
  # the training folder), dynamic range and float16 agree with float32.
  labels = classifier['test_labels']
  float32 = classifier['logits'].argmax(1)
  assert (float32 == labels).mean() >= 0.9  # It learned the classes.
  files = dict(classifier['files'])
  for kind in ('dynamic', 'float16'):
    files[kind] = str(tmp_path / ('%s.tflite' % kind))
    assert cli.main(['export', files[kind], '--checkpoint',
                     classifier['checkpoint'], '--quantize', kind] +
                    classifier['geometry']) == 0
  for kind, path in files.items():
    model = litert_runtime.LiteRTModel(path)
    assert model.metadata['quantization'] == (
        'none' if kind == 'fp32' else kind)
    logits = model.run(classifier['batch'])['logits']
    agreement = (logits.argmax(1) == float32).mean()
    assert agreement >= (1.0 if kind in ('fp32', 'float16') else 0.95), kind
    assert (logits.argmax(1) == labels).mean() >= (
        (float32 == labels).mean() - 0.05), kind
  int8 = litert_runtime.LiteRTModel(files['int8'])
  assert int8.metadata['calibration_images'] == 24
  # The int8 graph was rewritten (int8_rewrite.for_int8): no batch norm MUL (one
  # is the input's normalization), no average pool.
  ops = operators(files['int8'])
  assert ops['MUL'] == 1 and 'AVERAGE_POOL_2D' not in ops
  assert ops['DEPTHWISE_CONV_2D'] == 6 + 3 + 1 + 3
  assert os.path.getsize(files['int8']) < os.path.getsize(files['fp32'])


def test_files_store_equal_quantization_vectors_once(classifier, tmp_path):
  # The int8 file as written (zero points and shapes shared) against the
  # same model written the plain way: smaller, same results to the bit.
  from ai_edge_litert.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  path = classifier['files']['int8']
  with open(path, 'rb') as f:
    content = f.read()
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
  plain = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
  channels = sum(len(tensor.quantization.zeroPoint)
                 for tensor in model.subgraphs[0].tensors
                 if tensor.quantization is not None and
                 tensor.quantization.zeroPoint is not None)
  # Each int64 zero point written once would cost 8 bytes.
  assert len(plain) - len(content) > 4 * channels > 0
  unshared = str(tmp_path / 'plain.tflite')
  with open(unshared, 'wb') as f:
    f.write(plain)
  batch = classifier['batch'][:4]
  np.testing.assert_array_equal(
      litert_runtime.LiteRTModel(path, 1).run(batch)['logits'],
      litert_runtime.LiteRTModel(unshared, 1).run(batch)['logits'])


def operators(path):
  """{builtin operator name: count} of a .tflite."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    model = schema.ModelT.InitFromPackedBuf(bytearray(f.read()), 0)
  names = {value: name for name, value in vars(schema.BuiltinOperator).items()
           if not name.startswith('_')}
  counts = {}
  for operator in model.subgraphs[0].operators:
    code = model.operatorCodes[operator.opcodeIndex]
    name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
    counts[name] = counts.get(name, 0) + 1
  return counts


def test_calibration_sources_of_folders_and_records(classifier, tmp_path):
  from densenet.datasets import image_folder  # pylint: disable=g-import-not-at-top
  folder = str(classifier['directory'] / 'train')
  # Spread over the sorted files: every class of the tree.
  chosen = calibration.sources(folder, 6)
  assert [os.path.basename(os.path.dirname(p)) for p in chosen] == [
      'diagonal'] * 2 + ['horizontal'] * 2 + ['vertical'] * 2
  assert len(calibration.sources(folder, 1000)) == 90
  image_folder.create_tfrecords(folder, str(tmp_path / 'records'),
                                image_size=SIZE)
  images = calibration.sources(str(tmp_path / 'records' / '*.tfrecord'), 5)
  assert len(images) == 5
  assert all(image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
             for image in images)


def run_cli(main, argv, capsys):
  """(exit status, stderr lines) of a command expected to fail."""
  status = main(argv)
  return status, capsys.readouterr().err.strip().splitlines()


def test_bad_input_is_one_line_and_writes_nothing(classifier, tmp_path,
                                                  capsys, monkeypatch):
  checkpoint, output = classifier['checkpoint'], str(tmp_path / 'out.tflite')
  export = ['export', output, '--checkpoint', checkpoint]
  os.makedirs(str(tmp_path / 'empty' / 'sub'))
  not_ours = str(tmp_path / 'double.tflite')
  double = tf.function(lambda x: x * 2.0,
                       input_signature=[tf.TensorSpec([1, 4])])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [double.get_concrete_function()])
  with open(not_ours, 'wb') as f:
    f.write(converter.convert())
  truncated = str(tmp_path / 'truncated.tflite')
  with open(classifier['files']['fp32'], 'rb') as f:
    content = f.read()
  with open(truncated, 'wb') as f:
    f.write(content[:len(content) // 2])
  image = classifier['test_paths'][0]
  cases = [
      (export + ['--quantize', 'int8'], '--quantize int8 needs --calibration'),
      (export + ['--quantize', 'int8', '--calibration',
                 str(tmp_path / 'empty')], 'has no images'),
      (export + ['--quantize', 'int8', '--calibration',
                 str(tmp_path / 'none-*.tfrecord')],
       'neither an image folder nor a glob'),
      (export + ['--input-size', '16'], 'inputs are too small'),
      (export + ['--input-size', '32,40'], 'must be a square'),
      (['export', str(tmp_path / 'saved'), '--checkpoint', checkpoint,
        '--quantize', 'dynamic'], '--quantize: only for --format litert'),
      (['classify', image, '--litert', not_ours],
       'not one of this library (no densenet.json metadata'),
      (['classify', image, '--litert', truncated],
       'not a valid LiteRT model (truncated or corrupt?)'),
      (['classify', image, '--litert', classifier['files']['fp32'],
        '--crop-size', '24'], 'takes 32x32 crops'),
      (['classify', image], 'give either --checkpoint or --litert'),
  ]
  for argv, message in cases:
    status, lines = run_cli(cli.main, argv, capsys)
    assert status == 2 and len(lines) == 1 and message in lines[0], (
        argv, lines)
  # Without the extra: the LiteRT commands say how to install it.
  monkeypatch.setitem(sys.modules, 'ai_edge_litert', None)
  for argv in (export + ['--format', 'litert'],
               ['classify', image, '--litert', classifier['files']['fp32']]):
    status, lines = run_cli(cli.main, argv, capsys)
    assert status == 2 and lines == [
        'densenet %s: error: %s' % (argv[0], litert_runtime.INSTALL_HINT)]
  assert sorted(os.listdir(str(tmp_path))) == [
      'double.tflite', 'empty', 'truncated.tflite']
