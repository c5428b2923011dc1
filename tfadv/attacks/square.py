"""Square Attack (Andriushchenko et al., 2020), L-inf: score-based random search.

Our TensorFlow version of the published algorithm with AutoAttack's defaults: start from
vertical stripes of +-eps, then per query change one random square window of side
`round(sqrt(p * H * W))` to a random +-eps per channel, and keep the change when the
margin loss `z_y - max_{j != y} z_j` decreases; `p` starts at 0.8 and is halved on the
published schedule (at 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10000 queries,
rescaled to the query budget). Only the model's logits are used, never its gradients.
Examples already misclassified stop changing.
"""

import math

import tensorflow as tf

from tfadv.attacks import common

_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def _margin(model_fn, x, y):
  logits = model_fn(x)
  onehot = tf.one_hot(y, tf.shape(logits)[-1])
  true = tf.reduce_sum(onehot * logits, axis=-1)
  other = tf.reduce_max(logits - 1e9 * onehot, axis=-1)
  return true - other


def _p_at(i, queries, p_init):
  """p for query `i` (tensor) on the schedule, rescaled from 10000 queries to `queries`."""
  scaled = tf.cast(i, tf.float32) * 10000.0 / float(queries)
  halvings = tf.reduce_sum(tf.cast(scaled > tf.constant(_SCHEDULE, tf.float32), tf.float32))
  return p_init / tf.pow(2.0, halvings)


def square(model_fn, x, y, eps, norm="linf", queries=5000, p_init=0.8, seed=None):
  """Square Attack under an L-inf budget.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`); never differentiated.
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: L-inf radius.
    norm: must be `linf`.
    queries: model evaluations per image (5000 in AutoAttack).
    p_init: initial fraction of pixels changed per query.
    seed: optional int tensor [2] for a stateless (reproducible) search.

  Returns:
    Images within `eps` of `x` and in [0, 1].
  """
  if common.norm_order(norm) != math.inf:
    raise ValueError(f"Invalid norm: expected 'linf' for square; received norm={norm!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or queries == 0:
    return x
  y = tf.cast(y, tf.int32)
  shape = tf.shape(x)
  batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
  if seed is None:
    seed = tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int64)
  seed = tf.cast(seed, tf.int64)

  def signs(shape_, s):
    return tf.sign(tf.random.stateless_uniform(shape_, s, -1.0, 1.0)) * eps

  stripes = signs(tf.stack([batch, 1, width, channels]), seed)
  x_best = tf.clip_by_value(x + stripes, 0.0, 1.0)
  margin = _margin(model_fn, x_best, y)
  rows = tf.range(height)[None, :, None, None]
  cols = tf.range(width)[None, None, :, None]
  area = tf.cast(height * width, tf.float32)

  def body(i, x_best, margin):
    s_i = seed + tf.cast(tf.stack([0, 1 + 3 * i]), tf.int64)
    p = _p_at(i, queries, p_init)
    side = tf.cast(tf.round(tf.sqrt(p * area)), tf.int32)
    side = tf.clip_by_value(side, 1, tf.minimum(height, width) - 1)
    top = tf.random.stateless_uniform([batch], s_i, 0, height - side + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch], s_i + [0, 1], 0, width - side + 1,
                                       dtype=tf.int32)
    inside = tf.logical_and(
        tf.logical_and(rows >= top[:, None, None, None], rows < (top + side)[:, None, None, None]),
        tf.logical_and(cols >= left[:, None, None, None],
                       cols < (left + side)[:, None, None, None]))
    new_values = signs(tf.stack([batch, 1, 1, channels]), s_i + [0, 2])
    delta = tf.where(inside, new_values, x_best - x)
    candidate = tf.clip_by_value(x + delta, 0.0, 1.0)
    active = margin > 0  # Still correctly classified.
    new_margin = _margin(model_fn, candidate, y)
    accept = tf.logical_and(active, new_margin < margin)
    x_best = tf.ensure_shape(tf.where(accept[:, None, None, None], candidate, x_best),
                             x.shape)
    margin = tf.where(accept, new_margin, margin)
    return i + 1, x_best, margin

  _, x_best, _ = tf.while_loop(
      lambda i, x_best, margin: tf.logical_and(i < queries - 1, tf.reduce_any(margin > 0)),
      body, (tf.constant(0), x_best, margin))
  return common.project(x, x_best, eps, math.inf)
