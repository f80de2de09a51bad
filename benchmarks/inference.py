"""Inference images/s: our densenet_121 against Keras' DenseNet121.

Both run in this process, alternately, `--rounds` times: each round times
`--iterations` batches of ours (a TF1 graph in a Session, the house style),
then of Keras (`keras.applications.DenseNet121(weights=None)` called in a
`tf.function`), on the same random images. The JSON line per batch size
gives the median images/s of each and their ratio (ours / Keras), and the
per-round ratios.

With `--bfloat16` our network is also built with bfloat16 inputs (same
float32 variables, cast on read) and timed in the same rotation; the line then
has its images/s and its top-1 / top-5 agreement with float32 on the same
images. The weights are random (He initialization) with randomized
batch-norm statistics, since nothing here may download trained weights.

  python benchmarks/inference.py                   # batch 1 and 16, 224x224
  python benchmarks/inference.py --bfloat16
  python benchmarks/inference.py --smoke           # tiny, for the tests
"""

import argparse
import time

import numpy as np

import common


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 16])
  parser.add_argument('--image-size', type=int, default=224)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--iterations', type=int, default=0,
                      help='batches per round; default: about 32 images')
  parser.add_argument('--bfloat16', action='store_true',
                      help='also time our network in bfloat16 and compare '
                           'its top-5 with float32')
  parser.add_argument('--smoke', action='store_true',
                      help='32x32, batch 2, 1 round of 1 batch (tests)')
  args = parser.parse_args(argv)
  if args.smoke:
    args.batch_sizes, args.image_size, args.rounds = [2], 32, 1
    args.iterations = 1
  return args


class Ours(object):
  """densenet_121 in a Session; float32 logits and optional bfloat16 ones."""

  def __init__(self, image_size, bfloat16):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    from densenet import spec as spec_lib  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    spec = spec_lib.ModelSpec('densenet_121', num_classes=1000)
    self.graph = tf.Graph()
    with self.graph.as_default():
      self.images = tf1.placeholder(tf.float32,
                                    [None, image_size, image_size, 3])
      self.logits = {'float32': spec.build(self.images, is_training=False)[0]}
      if bfloat16:
        logits, _ = spec.build(tf.cast(self.images, tf.bfloat16),
                               is_training=False, reuse=True)
        self.logits['bfloat16'] = tf.cast(logits, tf.float32)
      self.session = tf1.Session(graph=self.graph)
      self.session.run(tf1.global_variables_initializer())
      randomize_batch_norm_statistics(self.session, tf1.global_variables())

  def __call__(self, images, dtype='float32'):
    return self.session.run(self.logits[dtype], {self.images: images})


def randomize_batch_norm_statistics(session, variables):
  """Moving means N(0, 0.1), variances U(0.5, 1.5), gammas U(0.5, 1.5)."""
  rng = np.random.RandomState(0)
  values = {}
  for v in variables:
    shape = v.shape.as_list()
    if v.op.name.endswith('moving_mean'):
      values[v] = rng.normal(0, 0.1, shape).astype(np.float32)
    elif v.op.name.endswith(('moving_variance', 'gamma')):
      values[v] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
  # One run: a run per variable costs ~0.1 s in a DenseNet-121 graph.
  session.run([v.initializer for v in values],
              {v.initializer.inputs[1]: x for v, x in values.items()})


class Keras(object):
  """keras.applications.DenseNet121(weights=None) in a tf.function."""

  def __init__(self, image_size):
    import keras  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.model = keras.applications.DenseNet121(
        weights=None, input_shape=(image_size, image_size, 3))
    self.predict = tf.function(lambda x: self.model(x, training=False))
    self.tf = tf

  def __call__(self, images):
    return self.predict(images).numpy()


def agreement(reference, other):
  """Top-1 agreement and mean top-5 overlap of two `[batch, classes]` arrays."""
  top5_ref = np.argsort(-reference, axis=1)[:, :5]
  top5_other = np.argsort(-other, axis=1)[:, :5]
  overlap = [len(set(a) & set(b)) / 5.0 for a, b in zip(top5_ref, top5_other)]
  return {
      'top1_agreement': float(np.mean(top5_ref[:, 0] == top5_other[:, 0])),
      'top5_overlap': float(np.mean(overlap)),
      'top1_in_top5': float(np.mean([a[0] in b for a, b in
                                     zip(top5_ref, top5_other)])),
      'max_abs_logit_difference': float(np.abs(reference - other).max()),
  }


def images_per_second(fn, images, iterations):
  start = time.perf_counter()
  for _ in range(iterations):
    fn(images)
  return iterations * len(images) / (time.perf_counter() - start)


def main(argv=None):
  args = parse_args(argv)
  ours = Ours(args.image_size, args.bfloat16)
  keras_model = Keras(args.image_size)
  rng = np.random.RandomState(0)
  records = []
  for batch_size in args.batch_sizes:
    images = rng.uniform(-2, 2, (batch_size, args.image_size,
                                 args.image_size, 3)).astype(np.float32)
    keras_images = keras_model.tf.constant(images)
    candidates = {'ours': ours, 'keras': lambda x: keras_model(keras_images)}
    if args.bfloat16:
      candidates['ours_bfloat16'] = lambda x: ours(x, 'bfloat16')
    iterations = args.iterations or max(1, 32 // batch_size)
    for fn in candidates.values():  # Warm-up: graph optimization, caches.
      fn(images)
    rates = {name: [] for name in candidates}
    for _ in range(args.rounds):
      for name, fn in candidates.items():
        rates[name].append(images_per_second(fn, images, iterations))
    record = {
        'benchmark': 'inference',
        'model': 'densenet_121',
        'image_size': args.image_size,
        'batch_size': batch_size,
        'rounds': args.rounds,
        'iterations_per_round': iterations,
        'images_per_second': {n: round(float(np.median(r)), 3)
                              for n, r in rates.items()},
        'ratio_ours_to_keras': round(float(
            np.median(rates['ours']) / np.median(rates['keras'])), 3),
        'ratio_ours_to_keras_per_round': [
            round(a / b, 3) for a, b in zip(rates['ours'], rates['keras'])],
    }
    if args.bfloat16:
      record['ratio_bfloat16_to_float32'] = round(float(
          np.median(rates['ours_bfloat16']) / np.median(rates['ours'])), 3)
      probe = rng.uniform(-2, 2, (max(batch_size, 16), args.image_size,
                                  args.image_size, 3)).astype(np.float32)
      record['bfloat16_vs_float32'] = agreement(ours(probe),
                                                ours(probe, 'bfloat16'))
    records.append(common.emit(record))
  return records


if __name__ == '__main__':
  main()
