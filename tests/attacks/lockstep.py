"""Frozen lock-step versions of the attacks, the specification of the active-set ones.

Copies of `tfadv.attacks.{rays,square,apgd}` as they were before issue 22: every query and
every step runs the model on the whole batch and masks the finished examples. The active-set
versions must return exactly the same images for the same seed (tests/attacks/
active_set_test.py). Helpers that did not change are taken from the library modules.
"""

import math

import tensorflow as tf

from tfadv.attacks import apgd as apgd_lib
from tfadv.attacks import common
from tfadv.attacks import objectives
from tfadv.attacks import rays as rays_lib
from tfadv.attacks import square as square_lib


def rays(model_fn, x, y, eps, norm="linf", queries=10000, tolerance=None):
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
  flat_x = rays_lib._to_flat(x)

  def wrong(direction, radius):
    """One query per example: is clip(x + radius * direction) misclassified."""
    image = tf.clip_by_value(flat_x + radius[:, None] * direction, 0.0, 1.0)
    labels = tf.argmax(model_fn(rays_lib._from_flat(image, shape)), -1, output_type=tf.int32)
    return tf.not_equal(labels, y)

  def bisect(direction, hi, todo, used):
    """Smallest misclassified radius in (0, hi] along `direction` (hi is misclassified)."""

    def body(lo, hi, used):
      search = tf.logical_and(todo, hi - lo > tol)
      mid = (lo + hi) / 2.0
      hit = wrong(direction, mid)
      used += tf.cast(search, tf.int32)
      hi = tf.where(tf.logical_and(search, hit), mid, hi)
      lo = tf.where(tf.logical_and(search, tf.logical_not(hit)), mid, lo)
      return lo, hi, used

    _, hi, used = tf.while_loop(
        lambda lo, hi, used: tf.reduce_any(tf.logical_and(todo, hi - lo > tol)), body,
        (tf.zeros_like(hi), hi, used))
    return hi, used

  def active(radius, used):
    return tf.logical_and(radius > eps, used < queries)

  def body(stage, block, direction, radius, used):
    start, end = rays_lib.block_bounds(stage, block, dim)
    index = tf.range(dim)
    in_block = tf.logical_and(index >= start, index < end)
    todo = active(radius, used)
    flipped = tf.where(in_block[None, :], -direction, direction)
    # Radius 1 reaches the corner of the box along any ray (the reference's infinity).
    probe = tf.minimum(radius, 1.0)
    hit = tf.logical_and(todo, wrong(flipped, probe))
    used += tf.cast(todo, tf.int32)
    new_radius, used = bisect(flipped, probe, hit, used)
    better = tf.logical_and(hit, new_radius < radius)
    direction = tf.where(better[:, None], flipped, direction)
    radius = tf.where(better, new_radius, radius)
    stage, block = rays_lib.next_block(stage, block, end, dim)
    return stage, block, direction, radius, used

  state = (tf.constant(0), tf.constant(0), tf.ones([batch, dim]), tf.fill([batch], math.inf),
           tf.zeros([batch], tf.int32))
  _, _, direction, radius, _ = tf.while_loop(
      lambda stage, block, direction, radius, used: tf.reduce_any(active(radius, used)),
      body, state)
  success = radius <= eps
  flat_adv = tf.clip_by_value(flat_x + tf.where(success, radius, 0.0)[:, None] * direction,
                              0.0, 1.0)
  return common.project(x, rays_lib._from_flat(flat_adv, shape), eps, math.inf)


def square(model_fn, x, y, eps, norm="linf", queries=5000, p_init=0.8, rescale_schedule=True,
           seed=None):
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
  table = square_lib._sum_of_inverse_squares(size + 1)

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
    eta = square_lib._pattern(lr, lc, side, flip_map, table, size)
    delta = tf.where(in_grid, eta * sign_map, 0.0)
    x_best = tf.clip_by_value(x + eps * delta / (square_lib._l2(delta) + 1e-12), 0.0, 1.0)
  margin = square_lib._margin(model_fn, x_best, y)

  def window_at(top, left, side):
    return tf.logical_and(
        tf.logical_and(rows >= top[:, None, None, None], rows < top[:, None, None, None] + side),
        tf.logical_and(cols >= left[:, None, None, None],
                       cols < left[:, None, None, None] + side))

  def linf_candidate(i, x_best, s_i):
    p = square_lib.p_at(i, queries, p_init, rescale_schedule)
    side = tf.maximum(tf.cast(tf.round(tf.sqrt(p * area)), tf.int32), 1)
    side = tf.minimum(side, tf.minimum(height, width))
    top = square_lib._uniform_int([batch], s_i, height - side)
    left = square_lib._uniform_int([batch], s_i + [0, 1], width - side)
    new_values = eps * signs(tf.stack([batch, 1, 1, channels]), s_i + [0, 2])
    delta = tf.where(window_at(top, left, side), new_values, x_best - x)
    return tf.clip_by_value(x + delta, 0.0, 1.0)

  def l2_candidate(i, x_best, s_i):
    p = square_lib.p_at(i, queries, p_init, rescale_schedule)
    side = tf.maximum(tf.cast(tf.round(tf.sqrt(p * area)), tf.int32), 3)
    side = tf.minimum(side + 1 - side % 2, tf.minimum(height, width))  # Odd.
    top = square_lib._uniform_int([batch], s_i, height - side)
    left = square_lib._uniform_int([batch], s_i + [0, 1], width - side)
    top2 = square_lib._uniform_int([batch], s_i + [0, 3], height - side)
    left2 = square_lib._uniform_int([batch], s_i + [0, 4], width - side)
    first = window_at(top, left, side)  # [B, H, W, 1]
    both = tf.logical_or(first, window_at(top2, left2, side))
    delta = x_best - x
    per_channel = lambda v: tf.sqrt(tf.reduce_sum(v * v, axis=[1, 2], keepdims=True))
    norm_first = per_channel(tf.where(first, delta, 0.0))  # [B, 1, 1, C]
    norm_both = per_channel(tf.where(both, delta, 0.0))
    flip = (tf.random.stateless_uniform([batch], s_i + [0, 5]) > 0.5)[:, None, None, None]
    eta = square_lib._pattern(rows - top[:, None, None, None],
                              cols - left[:, None, None, None], side, flip, table, size)
    new = (eta * signs(tf.stack([batch, 1, 1, channels]), s_i + [0, 2])
           + tf.where(first, delta, 0.0) / (1e-12 + norm_first))
    room = tf.maximum(eps * eps - square_lib._l2(delta) ** 2, 0.0) / tf.cast(channels, tf.float32)
    new = new / (per_channel(new) + 1e-12) * tf.sqrt(room + norm_both ** 2)
    delta = tf.where(first, new, tf.where(both, 0.0, delta))
    return tf.clip_by_value(x + eps * delta / (square_lib._l2(delta) + 1e-12), 0.0, 1.0)

  candidate_fn = linf_candidate if order == math.inf else l2_candidate

  def body(i, x_best, margin):
    s_i = seed + tf.cast(tf.stack([0, 1 + 9 * i]), tf.int64)
    candidate = candidate_fn(i, x_best, s_i)
    active = margin > 0  # Still correctly classified.
    new_margin = square_lib._margin(model_fn, candidate, y)
    accept = tf.logical_and(active, new_margin < margin)
    x_best = tf.ensure_shape(tf.where(accept[:, None, None, None], candidate, x_best),
                             x.shape)
    margin = tf.where(accept, new_margin, margin)
    return i + 1, x_best, margin

  _, x_best, _ = tf.while_loop(
      lambda i, x_best, margin: tf.logical_and(i < queries - 1, tf.reduce_any(margin > 0)),
      body, (tf.constant(0), x_best, margin))
  return common.project(x, x_best, eps, order)


def apgd(model_fn, x, y, eps, norm="linf", steps=100, restarts=1, loss="ce", rho=0.75,
         eot_iter=1, seed=None):
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  y = tf.cast(y, tf.int32)
  losses = {"ce": lambda labels, logits: tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels, logits), "dlr": objectives.dlr}
  if loss not in losses:
    raise ValueError(f"Invalid loss: expected one of [ce, dlr] for apgd; received "
                     f"loss={loss!r}")
  best, fooled = x, tf.zeros([tf.shape(x)[0]], tf.bool)
  for restart in range(restarts):
    x_adv, now = apgd_lib._run(model_fn, x, y, eps, order, steps, losses[loss],
                               apgd_lib._seed(seed, restart), rho, eot_iter)
    take = tf.logical_and(now, tf.logical_not(fooled))
    best = tf.where(take[:, None, None, None], x_adv, best if restart else x_adv)
    fooled = tf.logical_or(fooled, now)
  return common.project(x, best, eps, order)


def apgd_t(model_fn, x, y, eps, norm="linf", steps=100, restarts=1, target_classes=9,
           rho=0.75, seed=None):
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  y = tf.cast(y, tf.int32)
  ranked = tf.argsort(model_fn(x), axis=-1, direction="DESCENDING", stable=True)
  num_classes = common.num_classes(ranked)
  static = isinstance(num_classes, int)
  targets = min(target_classes, num_classes - 1) if static else target_classes
  best, fooled = x, tf.zeros([tf.shape(x)[0]], tf.bool)
  for t in range(targets):
    # When the clean prediction is wrong the runner-up may be the true class: the loss is
    # then 0 and the (already misclassified) example stays as it is.
    def one_target(t=t, best=best, fooled=fooled):
      target = ranked[:, t + 1]
      loss_fn = lambda labels, logits: objectives.dlr_targeted(labels, logits, target)
      for restart in range(restarts):
        x_adv, now = apgd_lib._run(model_fn, x, y, eps, order, steps, loss_fn,
                                   apgd_lib._seed(seed, 100 * (t + 1) + restart), rho)
        take = tf.logical_and(now, tf.logical_not(fooled))
        best = tf.where(take[:, None, None, None], x_adv, best)
        fooled = tf.logical_or(fooled, now)
      return best, fooled

    if static:
      best, fooled = one_target()
    else:  # Class count known only at run time: skip the targets past the last class.
      best, fooled = tf.cond(t < num_classes - 1, one_target,
                             lambda best=best, fooled=fooled: (best, fooled))
  return common.project(x, best, eps, order)
