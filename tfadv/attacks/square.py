"""Square Attack (Andriushchenko et al., 2020), L-inf and L2: score-based random search.

Our TensorFlow version of the published algorithm (the reference is AutoAttack's
`square.py`). Only the model's logits are used, never its gradients. Per query one random
square window of side `round(sqrt(p * H * W))` is changed and the change is kept when the
margin `z_y - max_{j != y} z_j` decreases; examples already misclassified stop changing,
and the model is queried only on the others (the candidates are still drawn for the whole
batch, so every example's random stream is the one of a lock-step run).

- L-inf: start from vertical stripes of +-eps; the window is set to a random +-eps per
  channel.
- L2: start from a 5x5 grid of windows, each holding the reference's pattern (two
  opposite-signed stacks of concentric squares, weights 1/k^2) with a random sign per
  channel; per query the perturbation's mass in a second random window moves into the
  first one, with a fresh pattern, and the whole perturbation is rescaled to norm `eps`.
  The side is at least 3 and odd.

`p` starts at 0.8 and is halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000
queries. AutoAttack's standard run uses this schedule as it is (its Square has 5000
queries, so the last two halvings never happen: `rescale_schedule=False`); the standalone
reference rescales the schedule to the budget (`i * 10000 / queries`, the default here,
which suits small budgets).
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


def p_at(i, queries, p_init, rescale_schedule=True):
  """p for query `i` (0-based, tensor or int) on the schedule, as the reference.

  Args:
    i: the query index.
    queries: the budget (used only when rescaling).
    p_init: the initial fraction.
    rescale_schedule: map `i` to `int(i * 10000 / queries)` first (the reference's
      `resc_schedule`); AutoAttack turns it off.
  """
  it = tf.cast(i, tf.float32)
  if rescale_schedule:
    it = tf.floor(it / float(queries) * 10000.0)
  halvings = tf.reduce_sum(tf.cast(it > tf.constant(_SCHEDULE, tf.float32), tf.float32))
  return p_init / tf.pow(2.0, halvings)


def _uniform_int(shape, seed, high):
  """Integers uniform in [0, high) (0 when high <= 0), like the reference's random_int."""
  u = tf.random.stateless_uniform(shape, seed)
  return tf.cast(tf.floor(u * tf.cast(tf.maximum(high, 0), tf.float32)), tf.int32)


def _sum_of_inverse_squares(n):
  """[n + 1] table: entry k is sum_{j=1..k} 1 / j^2."""
  k = tf.range(1, n + 1, dtype=tf.float32)
  return tf.concat([[0.0], tf.cumsum(1.0 / (k * k))], axis=0)


def _pattern_raw(lr, lc, s, table):
  """The reference's `eta(s)` before normalisation, at local coordinates (lr, lc) in [0, s).

  Rows `[0, s//2)` hold `eta_rectangles(s//2, s)`, the others its negation for
  `(s - s//2, s)`: concentric squares around the centre `(a//2, b//2)` of an `a x b`
  rectangle, the k-th (0-based) adding `1 / (k + 1)^2`, so a point at Chebyshev distance
  `m` from the centre holds `sum_{k=m}^{K-1} 1/(k+1)^2`, `K = max(a//2, b//2) + 1`.
  Returns (values, upper) with `upper` the rows of the first rectangle.
  """
  half = s // 2
  upper = lr < half
  a = tf.where(upper, half, s - half)
  rr = tf.where(upper, lr, lr - half)
  big = tf.maximum(a // 2, s // 2) + 1
  m = tf.maximum(tf.abs(rr - a // 2), tf.abs(lc - s // 2))
  values = tf.gather(table, big) - tf.gather(table, tf.minimum(m, big))
  return values, upper


def _pattern(lr, lc, s, transpose, table, size):
  """The reference's normalised `eta(s)` (unit L2 norm over the s x s window) at (lr, lc).

  Each rectangle is normalised on its own, then the whole; `transpose` swaps rows and
  columns (the reference's coin flip). Zero outside [0, s)^2.
  """
  inside = tf.logical_and(tf.logical_and(lr >= 0, lr < s), tf.logical_and(lc >= 0, lc < s))
  lr, lc = tf.where(transpose, lc, lr), tf.where(transpose, lr, lc)
  values, upper = _pattern_raw(tf.clip_by_value(lr, 0, size - 1),
                               tf.clip_by_value(lc, 0, size - 1), s, table)
  # The two rectangles' norms, from one canonical window (the same for every window).
  grid_r = tf.range(size)[:, None]
  grid_c = tf.range(size)[None, :]
  ref, ref_upper = _pattern_raw(grid_r, grid_c, s, table)
  ref = tf.where(tf.logical_and(grid_r < s, grid_c < s), ref, 0.0)
  norm_up = tf.sqrt(tf.reduce_sum(tf.where(ref_upper, ref * ref, 0.0)))
  norm_down = tf.sqrt(tf.reduce_sum(tf.where(ref_upper, 0.0, ref * ref)))
  total = tf.sqrt(tf.cast(norm_up > 0, tf.float32) + tf.cast(norm_down > 0, tf.float32))
  values = tf.where(upper, values / (norm_up + 1e-12), -values / (norm_down + 1e-12))
  return tf.where(inside, values / (total + 1e-12), 0.0)


def _l2(v):
  return tf.sqrt(tf.reduce_sum(v * v, axis=[1, 2, 3], keepdims=True))


def square(model_fn, x, y, eps, norm="linf", queries=5000, p_init=0.8, rescale_schedule=True,
           seed=None):
  """Square Attack under an L-inf or L2 budget.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`); never differentiated.
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball.
    norm: `linf` or `l2`.
    queries: model evaluations per image (5000 in AutoAttack).
    p_init: initial fraction of pixels changed per query (0.8).
    rescale_schedule: rescale the p schedule to `queries` (the standalone reference's
      default); AutoAttack's standard run passes False.
    seed: optional int tensor [2] for a stateless (reproducible) search.

  Returns:
    Images within `eps` of `x` and in [0, 1].
  """
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or queries == 0:
    return x
  y = tf.cast(y, tf.int32)
  shape = tf.shape(x)
  batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
  size = max(int(x.shape[1]), int(x.shape[2]))
  if seed is None:
    seed = tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int64)
  seed = tf.cast(seed, tf.int64)
  rows = tf.range(height)[None, :, None, None]
  cols = tf.range(width)[None, None, :, None]
  area = tf.cast(height * width, tf.float32)
  table = _sum_of_inverse_squares(size + 1)

  def signs(shape_, s):
    return tf.sign(tf.random.stateless_uniform(shape_, s, -1.0, 1.0))

  if order == math.inf:
    x_best = tf.clip_by_value(x + eps * signs(tf.stack([batch, 1, width, channels]), seed),
                              0.0, 1.0)
  else:
    # A grid of (H // s) x (W // s) windows of side s = H // 5, centred, each with the
    # pattern and a random sign per channel.
    side = max(int(x.shape[1]) // 5, 1)
    offset = (int(x.shape[1]) - 5 * side) // 2
    n_r, n_c = int(x.shape[1]) // side, int(x.shape[2]) // side
    lr, lc = (rows - offset) % side, (cols - offset) % side
    in_grid = tf.logical_and(
        tf.logical_and(rows >= offset, rows < offset + n_r * side),
        tf.logical_and(cols >= offset, cols < offset + n_c * side))
    window = ((rows - offset) // side) * n_c + (cols - offset) // side  # [1, H, W, 1]
    flips = tf.random.stateless_uniform(tf.stack([batch, n_r * n_c]), seed + [0, 7]) > 0.5
    window_signs = signs(tf.stack([batch, n_r * n_c, channels]), seed + [0, 8])
    index = tf.clip_by_value(window[..., 0], 0, n_r * n_c - 1)  # [1, H, W]
    flip_map = tf.gather(flips, index[0], axis=1)[..., None]  # [B, H, W, 1]
    sign_map = tf.gather(window_signs, index[0], axis=1)  # [B, H, W, C]
    eta = _pattern(lr, lc, side, flip_map, table, size)
    delta = tf.where(in_grid, eta * sign_map, 0.0)
    x_best = tf.clip_by_value(x + eps * delta / (_l2(delta) + 1e-12), 0.0, 1.0)
  margin = _margin(model_fn, x_best, y)

  def window_at(top, left, side):
    return tf.logical_and(
        tf.logical_and(rows >= top[:, None, None, None], rows < top[:, None, None, None] + side),
        tf.logical_and(cols >= left[:, None, None, None],
                       cols < left[:, None, None, None] + side))

  def linf_candidate(i, x_best, s_i):
    p = p_at(i, queries, p_init, rescale_schedule)
    side = tf.maximum(tf.cast(tf.round(tf.sqrt(p * area)), tf.int32), 1)
    side = tf.minimum(side, tf.minimum(height, width))
    top = _uniform_int([batch], s_i, height - side)
    left = _uniform_int([batch], s_i + [0, 1], width - side)
    new_values = eps * signs(tf.stack([batch, 1, 1, channels]), s_i + [0, 2])
    delta = tf.where(window_at(top, left, side), new_values, x_best - x)
    return tf.clip_by_value(x + delta, 0.0, 1.0)

  def l2_candidate(i, x_best, s_i):
    p = p_at(i, queries, p_init, rescale_schedule)
    side = tf.maximum(tf.cast(tf.round(tf.sqrt(p * area)), tf.int32), 3)
    side = tf.minimum(side + 1 - side % 2, tf.minimum(height, width))  # Odd.
    top = _uniform_int([batch], s_i, height - side)
    left = _uniform_int([batch], s_i + [0, 1], width - side)
    top2 = _uniform_int([batch], s_i + [0, 3], height - side)
    left2 = _uniform_int([batch], s_i + [0, 4], width - side)
    first = window_at(top, left, side)  # [B, H, W, 1]
    both = tf.logical_or(first, window_at(top2, left2, side))
    delta = x_best - x
    per_channel = lambda v: tf.sqrt(tf.reduce_sum(v * v, axis=[1, 2], keepdims=True))
    norm_first = per_channel(tf.where(first, delta, 0.0))  # [B, 1, 1, C]
    norm_both = per_channel(tf.where(both, delta, 0.0))
    flip = (tf.random.stateless_uniform([batch], s_i + [0, 5]) > 0.5)[:, None, None, None]
    eta = _pattern(rows - top[:, None, None, None], cols - left[:, None, None, None], side,
                   flip, table, size)
    new = (eta * signs(tf.stack([batch, 1, 1, channels]), s_i + [0, 2])
           + tf.where(first, delta, 0.0) / (1e-12 + norm_first))
    room = tf.maximum(eps * eps - _l2(delta) ** 2, 0.0) / tf.cast(channels, tf.float32)
    new = new / (per_channel(new) + 1e-12) * tf.sqrt(room + norm_both ** 2)
    delta = tf.where(first, new, tf.where(both, 0.0, delta))
    return tf.clip_by_value(x + eps * delta / (_l2(delta) + 1e-12), 0.0, 1.0)

  candidate_fn = linf_candidate if order == math.inf else l2_candidate

  def body(i, x_best, margin):
    s_i = seed + tf.cast(tf.stack([0, 1 + 9 * i]), tf.int64)
    # Candidates are drawn for the whole batch (each example keeps its random stream
    # whatever the others do); the model sees only the still correctly classified ones.
    candidate = candidate_fn(i, x_best, s_i)
    active = tf.where(margin > 0)[:, 0]
    candidate = tf.gather(candidate, active)
    new_margin = _margin(model_fn, candidate, tf.gather(y, active))
    accept = new_margin < tf.gather(margin, active)
    at = active[:, None]
    x_best = tf.tensor_scatter_nd_update(
        x_best, at, tf.where(accept[:, None, None, None], candidate, tf.gather(x_best, active)))
    margin = tf.tensor_scatter_nd_update(
        margin, at, tf.where(accept, new_margin, tf.gather(margin, active)))
    return i + 1, tf.ensure_shape(x_best, x.shape), margin

  _, x_best, _ = tf.while_loop(
      lambda i, x_best, margin: tf.logical_and(i < queries - 1, tf.reduce_any(margin > 0)),
      body, (tf.constant(0), x_best, margin))
  return common.project(x, x_best, eps, order)
