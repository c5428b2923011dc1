"""RayS (Chen & Gu, 2020): a hard-label L-inf attack that searches ray directions.

Only the predicted class of the model is used (never logits, never gradients). For a sign
direction `d` in {-1, 1}^D the attack measures the smallest radius `r(d)` at which
`clip(x + r d)` is misclassified (the decision boundary along the ray). Starting from
`d = 1` it flips the signs of blocks of `d`: the whole vector, then each half, each
quarter, ... (a hierarchical search), and keeps a flip when the new direction reaches the
boundary sooner: one query at the current best radius tells, then a bisection (down to a
tolerance) finds the new radius.

As in the reference code (uclaml/RayS): the input is flattened channel-major (C, H, W)
like a PyTorch tensor, so on RGB images a block covers whole rows of one channel; a stage
ends at the last block that holds coordinates (`ceil(D / 2^stage)` coordinates each, the
last one shorter), so no query is spent on empty blocks; once blocks are single
coordinates the search keeps flipping single coordinates, in order, until the budget is
spent. An example stops when its radius is at most `eps` (success; the reference goes on
shrinking it, which does not change robust accuracy) or when it has used `queries`
predictions (the bisection under way finishes, as in the reference).

Our TensorFlow version, vectorised over the batch: every example flips the same block at
the same time, each with its own direction, radius and query count. As in the reference,
the model sees only the examples that still need a query: each flip queries the active
examples (radius above `eps`, queries left), and each bisection step only the examples
whose probe hit and whose interval is still wider than the tolerance (gathered, then
scattered back). Each example's result is the one of the lock-step version that ran every
query on the whole batch and masked the finished examples.
"""

import math

import tensorflow as tf

from tfadv.attacks import common


def _to_flat(x):
  """[B, H, W, C] -> [B, C*H*W], channel-major (the reference's PyTorch order)."""
  return tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [tf.shape(x)[0], -1])


def _from_flat(flat, shape):
  """Inverse of `_to_flat` for images of `shape` [B, H, W, C]."""
  chw = tf.reshape(flat, tf.stack([shape[0], shape[3], shape[1], shape[2]]))
  return tf.transpose(chw, [0, 2, 3, 1])


def block_bounds(stage, block, dim):
  """[start, end) of block `block` of stage `stage` (2^stage blocks of ceil(dim/2^stage))."""
  blocks = tf.bitwise.left_shift(1, stage)
  size = (dim + blocks - 1) // blocks
  start = block * size
  return start, tf.minimum(dim, start + size)


def next_block(stage, block, end, dim):
  """The (stage, block) after `block`: a stage ends at its last block or at `end == dim`.

  Stages stop growing once blocks are single coordinates (2^stage >= dim): the search
  then cycles over single coordinates.
  """
  last_stage = max(int(math.ceil(math.log2(dim))), 0) if dim > 1 else 0
  block = block + 1
  done = tf.logical_or(tf.equal(block, tf.bitwise.left_shift(1, stage)), tf.equal(end, dim))
  stage = tf.where(done, tf.minimum(stage + 1, last_stage), stage)
  return stage, tf.where(done, 0, block)


def rays(model_fn, x, y, eps, norm="linf", queries=10000, tolerance=None):
  """RayS under an L-inf budget.

  Args:
    model_fn: images in [0, 1] -> logits; only the argmax is used (hard label).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: L-inf radius.
    norm: must be `linf`.
    queries: predictions per image (10000 in the paper's evaluations).
    tolerance: the bisection stops when the radius is known to within this (L-inf units);
      None is the reference's 1e-3 along the unit-L2 ray, i.e. `1e-3 / sqrt(D)`.

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
  tol = 1e-3 / math.sqrt(dim) if tolerance is None else float(tolerance)
  flat_x = _to_flat(x)
  image_shape = [int(x.shape[1]), int(x.shape[2]), int(x.shape[3])]

  def wrong(flat, labels, direction, radius):
    """One query per row: is clip(flat + radius * direction) misclassified."""
    image = tf.clip_by_value(flat + radius[:, None] * direction, 0.0, 1.0)
    rows = tf.concat([tf.shape(flat)[:1], image_shape], 0)
    predicted = tf.argmax(model_fn(_from_flat(image, rows)), -1, output_type=tf.int32)
    return tf.not_equal(predicted, labels)

  def bisect(flat, labels, direction, hi):
    """Smallest misclassified radius in (0, hi] along each row's direction (hi misclassified).

    Each step queries only the rows whose interval is still wider than `tol`. Returns the
    radii and the queries each row spent.
    """

    def body(lo, hi, spent):
      rows = tf.where(hi - lo > tol)[:, 0]
      lo_s, hi_s = tf.gather(lo, rows), tf.gather(hi, rows)
      mid = (lo_s + hi_s) / 2.0
      hit = wrong(tf.gather(flat, rows), tf.gather(labels, rows), tf.gather(direction, rows),
                  mid)
      at = rows[:, None]
      return (tf.tensor_scatter_nd_update(lo, at, tf.where(hit, lo_s, mid)),
              tf.tensor_scatter_nd_update(hi, at, tf.where(hit, mid, hi_s)),
              tf.tensor_scatter_nd_add(spent, at, tf.ones_like(rows, tf.int32)))

    _, hi, spent = tf.while_loop(
        lambda lo, hi, spent: tf.reduce_any(hi - lo > tol), body,
        (tf.zeros_like(hi), hi, tf.zeros_like(hi, tf.int32)))
    return hi, spent

  def active(radius, used):
    return tf.logical_and(radius > eps, used < queries)

  def body(stage, block, direction, radius, used):
    start, end = block_bounds(stage, block, dim)
    index = tf.range(dim)
    in_block = tf.logical_and(index >= start, index < end)
    todo = tf.where(active(radius, used))[:, 0]
    flipped = tf.where(in_block[None, :], -tf.gather(direction, todo),
                       tf.gather(direction, todo))
    # Radius 1 reaches the corner of the box along any ray (the reference's infinity).
    probe = tf.minimum(tf.gather(radius, todo), 1.0)
    hit = tf.where(wrong(tf.gather(flat_x, todo), tf.gather(y, todo), flipped, probe))[:, 0]
    used = tf.tensor_scatter_nd_add(used, todo[:, None], tf.ones_like(todo, tf.int32))
    # The bisection runs on the examples whose probe hit (`rows` of the batch).
    rows = tf.gather(todo, hit)
    flipped = tf.gather(flipped, hit)
    new_radius, spent = bisect(tf.gather(flat_x, rows), tf.gather(y, rows), flipped,
                               tf.gather(probe, hit))
    used = tf.tensor_scatter_nd_add(used, rows[:, None], spent)
    better = new_radius < tf.gather(radius, rows)
    at = rows[:, None]
    direction = tf.tensor_scatter_nd_update(
        direction, at, tf.where(better[:, None], flipped, tf.gather(direction, rows)))
    radius = tf.tensor_scatter_nd_update(
        radius, at, tf.where(better, new_radius, tf.gather(radius, rows)))
    stage, block = next_block(stage, block, end, dim)
    return stage, block, direction, radius, used

  state = (tf.constant(0), tf.constant(0), tf.ones([batch, dim]), tf.fill([batch], math.inf),
           tf.zeros([batch], tf.int32))
  _, _, direction, radius, _ = tf.while_loop(
      lambda stage, block, direction, radius, used: tf.reduce_any(active(radius, used)),
      body, state)
  success = radius <= eps
  flat_adv = tf.clip_by_value(flat_x + tf.where(success, radius, 0.0)[:, None] * direction,
                              0.0, 1.0)
  return common.project(x, _from_flat(flat_adv, shape), eps, math.inf)
