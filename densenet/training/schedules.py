"""Learning-rate schedules: `fn(global_step) -> learning rate` for the trainer.

    from densenet.training import schedules
    trainer = training.Trainer(..., learning_rate_fn=schedules.poly(
        0.01, num_steps=30000, warmup_steps=100))

Each returns a function of the (int64) global step giving a float32 scalar
Tensor, evaluated every step inside the training `tf.function`.
`densenet.classification.paper_learning_rate` is the paper's step schedule
built from `step`.
"""

import tensorflow as tf


def step(base_learning_rate, boundaries, decay=0.1):
  """A step schedule: `base * decay ** (number of boundaries <= step)`.

  Args:
    base_learning_rate: The rate before the first boundary.
    boundaries: Increasing global steps; at step `boundaries[i]` (the
      `boundaries[i] + 1`-th update) the rate is multiplied by `decay`.
    decay: The factor applied at each boundary.

  Returns:
    `fn(step) -> learning rate` (float32 scalar Tensor).

  Raises:
    ValueError: If `boundaries` are not increasing.
  """
  boundaries = [int(b) for b in boundaries]
  if boundaries != sorted(boundaries):
    raise ValueError('boundaries must be increasing, got %r.' % (boundaries,))

  def learning_rate(global_step):
    global_step = tf.cast(global_step, tf.int64)
    num_decays = tf.add_n([tf.cast(global_step >= b, tf.float32)
                           for b in boundaries] + [tf.constant(0.0)])
    return base_learning_rate * tf.pow(tf.constant(decay, tf.float32),
                                       num_decays)

  return learning_rate


def poly(base_learning_rate, num_steps, power=0.9, warmup_steps=0,
         end_learning_rate=0.0):
  """DeepLab's 'poly' schedule, with an optional linear warm-up.

  `(base - end) * (1 - step / num_steps) ** power + end`, times
  `min(1, (step + 1) / warmup_steps)` during the warm-up.

  Returns:
    `fn(step) -> learning rate` (float32 scalar Tensor).
  """

  def learning_rate(global_step):
    global_step = tf.cast(global_step, tf.float32)
    fraction = tf.minimum(global_step / float(max(num_steps, 1)), 1.0)
    rate = (base_learning_rate - end_learning_rate) * (
        1.0 - fraction) ** power + end_learning_rate
    if warmup_steps:
      rate *= tf.minimum(1.0, (global_step + 1.0) / float(warmup_steps))
    return rate

  return learning_rate
