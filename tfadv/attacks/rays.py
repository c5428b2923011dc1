"""RayS (Chen & Gu, 2020): a hard-label L-inf attack that searches ray directions.

Only the predicted class of the model is used (never logits, never gradients). For a sign
direction `d` in {-1, 1}^D the attack measures the smallest radius `r(d)` at which
`clip(x + r d)` is misclassified (the decision boundary along the ray). Starting from
`d = 1`, it flips the signs of blocks of `d` (1 block, then 2, 4, ... halves: a hierarchical
search) and keeps a flip when the new direction reaches the boundary sooner: one query at
the current best radius tells, then a bisection finds the new radius. An example is done
when its radius is at most `eps` (success) or its query budget is spent.

Our TensorFlow version, vectorised over the batch (every example flips the same block at
the same time, each with its own direction and radius).
"""

import math

import tensorflow as tf

from tfadv.attacks import common


def rays(model_fn, x, y, eps, norm="linf", queries=10000, bisection_steps=12):
  """RayS under an L-inf budget.

  Args:
    model_fn: images in [0, 1] -> logits; only the argmax is used (hard label).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: L-inf radius.
    norm: must be `linf`.
    queries: predictions per image (10000 in the paper's evaluations).
    bisection_steps: queries of each bisection of a radius.

  Returns:
    `x + r d` (clipped) for the examples whose radius reached `eps`, `x` for the others.
  """
  if common.norm_order(norm) != math.inf:
    raise ValueError(f"Invalid norm: expected 'linf' for rays; received norm={norm!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or queries == 0:
    return x
  y = tf.cast(y, tf.int32)
  shape = tf.shape(x)
  batch = shape[0]
  dim = int(x.shape[1] * x.shape[2] * x.shape[3])
  flat_x = tf.reshape(x, [batch, dim])

  def wrong(direction, radius):
    """One query per example: is clip(x + radius * direction) misclassified."""
    image = tf.clip_by_value(flat_x + radius[:, None] * direction, 0.0, 1.0)
    labels = tf.argmax(model_fn(tf.reshape(image, shape)), -1, output_type=tf.int32)
    return tf.not_equal(labels, y)

  def bisect(direction, hi, todo):
    """Smallest misclassified radius in (0, hi] along `direction` (hi is misclassified)."""
    lo = tf.zeros_like(hi)
    for _ in range(bisection_steps):
      mid = (lo + hi) / 2.0
      hit = wrong(direction, mid)
      hi = tf.where(tf.logical_and(todo, hit), mid, hi)
      lo = tf.where(tf.logical_and(todo, tf.logical_not(hit)), mid, lo)
    return hi

  direction = tf.ones([batch, dim])
  # Radius 1 reaches every image of the box along the ray; inf = no boundary found yet.
  start_hit = wrong(direction, tf.ones([batch]))
  radius = tf.where(start_hit, bisect(direction, tf.ones([batch]), start_hit), math.inf)
  used = 1 + tf.where(start_hit, bisection_steps, 0)
  index = tf.range(dim)

  def active(radius, used):
    return tf.logical_and(radius > eps, used + 1 + bisection_steps <= queries)

  def body(stage, block, direction, radius, used):
    blocks = tf.bitwise.left_shift(1, stage)
    size = (dim + blocks - 1) // blocks
    in_block = tf.logical_and(index >= block * size, index < (block + 1) * size)
    todo = active(radius, used)
    flipped = tf.where(in_block[None, :], -direction, direction)
    probe = tf.minimum(radius, 1.0)
    hit = tf.logical_and(todo, wrong(flipped, probe))
    used += tf.cast(todo, tf.int32)
    new_radius = bisect(flipped, probe, hit)
    used += tf.where(hit, bisection_steps, 0)
    better = tf.logical_and(hit, new_radius < radius)
    direction = tf.where(better[:, None], flipped, direction)
    radius = tf.where(better, new_radius, radius)
    block += 1
    next_stage = tf.where(block >= blocks, stage + 1, stage)
    block = tf.where(block >= blocks, 0, block)
    # Blocks smaller than one coordinate: start again from one block.
    next_stage = tf.where(tf.bitwise.left_shift(1, next_stage) > dim, 0, next_stage)
    return next_stage, block, direction, radius, used

  _, _, direction, radius, _ = tf.while_loop(
      lambda stage, block, direction, radius, used: tf.reduce_any(active(radius, used)),
      body, (tf.constant(0), tf.constant(0), direction, radius, used))
  success = radius <= eps
  x_adv = tf.clip_by_value(flat_x + tf.where(success, radius, 0.0)[:, None] * direction,
                           0.0, 1.0)
  return common.project(x, tf.reshape(x_adv, shape), eps, math.inf)
