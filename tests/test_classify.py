"""Tests for `densenet classify` and densenet.serve.pretrained."""


import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from PIL import Image

import densenet
from densenet import cli
from densenet.weights import assign
from densenet.weights import checkpoints
from densenet import preprocessing
from densenet.serve import pretrained
from test_faults import strict_json  # pylint: disable=g-bad-import-order

METADATA = {'model': 'densenet_121', 'num_classes': 1000,
            'batch_norm_epsilon': 1.001e-5, 'normalization': 'torch',
            'source': 'test'}


@pytest.fixture(scope='module')
def model(tmp_path_factory):
  """A random densenet_121 checkpoint, images, and their reference logits."""
  directory = tmp_path_factory.mktemp('classify')
  rng = np.random.RandomState(0)
  paths = {}
  y, x = np.mgrid[0:300, 0:400]
  photo = np.stack([x * 0.6, y * 0.8, rng.uniform(0, 255, x.shape)], -1)
  paths['photo'] = str(directory / 'photo.jpg')
  Image.fromarray(photo.astype(np.uint8)).save(paths['photo'], quality=90)
  paths['gray'] = str(directory / 'gray.png')
  Image.fromarray(rng.randint(0, 255, (256, 320)).astype(np.uint8),
                  'L').save(paths['gray'])
  paths['truncated'] = str(directory / 'truncated.jpg')
  data = open(paths['photo'], 'rb').read()
  open(paths['truncated'], 'wb').write(data[:len(data) // 2])
  paths['missing'] = str(directory / 'missing.png')

  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3])
    with slim.arg_scope(densenet.densenet_arg_scope()):
      logits, _ = densenet.densenet_121(
          preprocessing.normalize(images, 'torch'), num_classes=1000,
          is_training=False)
    batch = np.stack([preprocessing.load_image(paths[name])
                      for name in ('photo', 'gray')]).astype(np.float32)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      weights = assign.session_weights(session, 'densenet_121')
      # Spread the classes apart so the top-k order is clear.
      weights['logits/biases'] = rng.normal(0, 3, 1000).astype(np.float32)
      assign.assign_fn(weights, 'densenet_121')(session)
      reference = session.run(logits, {images: batch})
  checkpoint = checkpoints.save_checkpoint(weights, METADATA,
                                       str(directory / 'ckpt' / 'model.ckpt'))
  return {'checkpoint': checkpoint, 'paths': paths,
          'logits': {'photo': reference[0], 'gray': reference[1]}}


def _top(logits, k):
  probabilities = np.exp(logits - logits.max())
  probabilities /= probabilities.sum()
  names = pretrained.imagenet_class_names()
  order = np.argsort(-probabilities)[:k]
  return [names[i] for i in order], probabilities[order]


def test_imagenet_class_names():
  names = pretrained.imagenet_class_names()
  assert len(names) == 1000
  assert names[0] == 'tench'
  assert names[1] == 'goldfish'
  assert names[207] == 'golden_retriever'
  assert names[281] == 'tabby'
  assert names[999] == 'toilet_tissue'


def test_classify_command(model, capsys):
  paths = model['paths']
  status = cli.main(['classify', paths['photo'], paths['truncated'],
                     paths['missing'], paths['gray'], '--checkpoint',
                     model['checkpoint'], '--top', '3', '--batch-size', '1'])
  out, err = capsys.readouterr()
  assert status == 1  # Files missing or that cannot be decoded.
  assert err.count('densenet classify: cannot read ') == 2, err
  assert paths['truncated'] in err and paths['missing'] in err
  assert 'Traceback' not in err
  lines = [line.split('\t') for line in out.splitlines()]
  assert len(lines) == 6  # 3 per readable image.
  for i, name in enumerate(('photo', 'gray')):
    expected_names, expected_probabilities = _top(model['logits'][name], 3)
    rows = lines[3 * i:3 * i + 3]
    assert [row[0] for row in rows] == [paths[name]] * 3
    assert [row[1] for row in rows] == ['1', '2', '3']
    assert [row[3] for row in rows] == expected_names
    np.testing.assert_allclose([float(row[2]) for row in rows],
                               expected_probabilities, atol=1e-4)


def test_load_pretrained_predict_and_json(model):
  classifier = pretrained.load_pretrained('densenet_121', model['checkpoint'])
  paths = model['paths']
  predictions = classifier.predict([paths['photo'], paths['gray']])
  for prediction, name in zip(predictions, ('photo', 'gray')):
    expected_names, expected_probabilities = _top(model['logits'][name], 5)
    assert [n for n, _ in prediction] == expected_names
    np.testing.assert_allclose([p for _, p in prediction],
                               expected_probabilities, rtol=1e-4)
  batch = preprocessing.load_image(paths['photo'])[None].astype(np.float32)
  np.testing.assert_allclose(classifier.logits(batch)[0],
                             model['logits']['photo'], atol=1e-5)
  with pytest.raises(ValueError, match='top'):
    classifier.predict(batch, top=0)

  # What `densenet classify --json` prints.
  order = [paths['gray'], paths['missing'], paths['photo']]
  results, errors = cli.pretrained.classify_images(classifier, order, top=5,
                                        batch_size=2)
  document = strict_json(cli.pretrained.format_json(order, results,
                                                    errors))
  assert [entry['image'] for entry in document] == order
  assert 'error' in document[1] and 'predictions' not in document[1]
  for entry, name in ((document[0], 'gray'), (document[2], 'photo')):
    expected_names, expected_probabilities = _top(model['logits'][name], 5)
    assert [p['class'] for p in entry['predictions']] == expected_names
    np.testing.assert_allclose([p['probability'] for p in entry['predictions']],
                               expected_probabilities, rtol=1e-4)
  classifier.close()


def test_top_beyond_the_classes_is_refused_alike_by_classify_and_export(
    model, tmp_path, capsys):
  # classify used to clamp it silently, export refused it: now one check.
  export_dir = str(tmp_path / 'export' / '1')
  for argv in (['classify', model['paths']['photo']], ['export', export_dir]):
    assert cli.main(argv + ['--checkpoint', model['checkpoint'], '--top',
                            '5000']) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "densenet %s: error: --top must be <= the model's 1000 classes, got "
        "5000." % argv[0])
  assert not (tmp_path / 'export').exists()
  with pytest.raises(ValueError, match="--top must be <= the model's 1000 "
                     'classes, got 1001'):
    pretrained.check_top(1001, 1000)
