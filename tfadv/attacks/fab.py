"""FAB-T (Croce & Hein, 2020): the targeted Fast Adaptive Boundary attack, L-inf and L2.

Our TensorFlow version of the published algorithm with the defaults of AutoAttack's
standard version (1 restart, so no random start; 100 iterations; 9 target classes;
alpha_max = 0.1, eta = 1.05, beta = 0.9). FAB looks for the adversarial example of
smallest L-inf norm: at each iterate `x1` it linearises the logit difference between the
true class `y` and the target `t` (`f(z) ~ f(x1) + g . (z - x1)`) and projects both `x1`
and the clean `x0` onto that linearised decision boundary, within the box [0, 1]. The
next iterate is the convex combination

    x1 <- clip((x1 + eta * d1) * (1 - alpha) + (x0 + eta * d2) * alpha, 0, 1),
    alpha = min(|d1| / (|d1| + |d2|), alpha_max),

which biases the search towards boundary points close to `x0` (`|.|` is the L-inf or the
L2 norm, and the projections are onto the hyperplane in that norm). Whenever the iterate is
misclassified it is kept if it is the closest one so far and pulled back towards `x0`
(`x0 + beta * (x1 - x0)`). The targets are the classes ranked 2nd, 3rd, ... by the clean
logits, each tried in turn on the examples still correctly classified; success, as in
AutoAttack, means misclassified (any class) at L-inf distance at most `eps`.
"""

import math

import tensorflow as tf

from tfadv.attacks import common


def _toward_hyperplane(p, w, b):
  """(w, c, room, |w|) with w flipped so that the hyperplane lies at `w . d = c >= 0`.

  `room_i` is the distance from `p_i` to the box edge [0, 1] in the direction of `sign(w_i)`.
  """
  c = b - tf.reduce_sum(w * p, axis=1)
  flip = tf.where(c < 0, -1.0, 1.0)
  w = w * flip[:, None]
  return w, c * flip, tf.where(w > 0, 1.0 - p, p), tf.abs(w)


def project_linf_hyperplane(p, w, b):
  """The smallest L-inf step onto the hyperplane `w . z = b` that stays in [0, 1].

  For a radius r the largest reachable `w . d` with `|d|_inf <= r` and `p + d` in the box
  is `g(r) = sum_i |w_i| min(r, room_i)`, where `room_i` is the distance from `p_i` to the
  box edge in the direction of `sign(w_i)`. `g` is piecewise linear and increasing, so
  after sorting the rooms the smallest `r` with `g(r) = c` (`c = b - w . p`, made
  non-negative by flipping `w`) is found from cumulative sums, and the step is
  `d_i = sign(w_i) min(r, room_i)`. When the hyperplane cannot be reached inside the box
  the step goes as far as the box allows.

  Args:
    p: points [N, D].
    w: hyperplane normals [N, D].
    b: offsets [N].

  Returns:
    Steps d [N, D] with `p + d` in [0, 1].
  """
  w, c, room, weight = _toward_hyperplane(p, w, b)
  order = tf.argsort(room, axis=1, stable=True)
  room_sorted = tf.gather(room, order, batch_dims=1)
  weight_sorted = tf.gather(weight, order, batch_dims=1)
  filled = tf.cumsum(weight_sorted * room_sorted, axis=1, exclusive=True)  # sum_{j<k}
  tail = tf.cumsum(weight_sorted, axis=1, reverse=True)  # sum_{j>=k}
  reach = filled + room_sorted * tail  # g(room_sorted[k])
  feasible = reach[:, -1] >= c
  k = tf.argmax(tf.cast(reach >= c[:, None], tf.int32), axis=1, output_type=tf.int32)
  filled_k = tf.gather(filled, k, batch_dims=1)
  tail_k = tf.gather(tail, k, batch_dims=1)
  radius = tf.maximum(c - filled_k, 0.0) / tf.maximum(tail_k, 1e-12)
  radius = tf.where(feasible, radius, math.inf)
  return tf.sign(w) * tf.minimum(radius[:, None], room)


def project_l2_hyperplane(p, w, b):
  """The smallest L2 step onto the hyperplane `w . z = b` that stays in [0, 1].

  The minimiser of `|d|_2` with `w . (p + d) = b` and `p + d` in the box is the clipped
  ray `d_i = sign(w_i) min(lam |w_i|, room_i)` for the smallest `lam >= 0` reaching the
  hyperplane (KKT), with `room_i` as in `project_linf_hyperplane`. The reach
  `g(lam) = sum_i |w_i| min(lam |w_i|, room_i)` is piecewise linear with breakpoints
  `room_i / |w_i|`; sorting them gives `lam` from cumulative sums, as the reference's
  `projection_l2` does with a bisection over the sorted breakpoints. When the hyperplane
  cannot be reached inside the box the step goes as far as the box allows.

  Args:
    p: points [N, D].
    w: hyperplane normals [N, D].
    b: offsets [N].

  Returns:
    Steps d [N, D] with `p + d` in [0, 1].
  """
  w, c, room, weight = _toward_hyperplane(p, w, b)
  live = weight > 1e-12
  breaks = tf.where(live, room / tf.maximum(weight, 1e-12), 1e30)
  order = tf.argsort(breaks, axis=1, stable=True)
  breaks_sorted = tf.gather(breaks, order, batch_dims=1)
  weight_sorted = tf.gather(weight, order, batch_dims=1)
  room_sorted = tf.gather(room, order, batch_dims=1)
  filled = tf.cumsum(weight_sorted * room_sorted, axis=1, exclusive=True)  # sum_{j<k}
  tail = tf.cumsum(weight_sorted * weight_sorted, axis=1, reverse=True)  # sum_{j>=k}
  reach = filled + tf.minimum(breaks_sorted, 1e15) * tail  # g(breaks_sorted[k])
  feasible = tf.reduce_sum(weight * room, axis=1) >= c
  k = tf.argmax(tf.cast(reach >= c[:, None], tf.int32), axis=1, output_type=tf.int32)
  filled_k = tf.gather(filled, k, batch_dims=1)
  tail_k = tf.gather(tail, k, batch_dims=1)
  lam = tf.maximum(c - filled_k, 0.0) / tf.maximum(tail_k, 1e-24)
  lam = tf.where(feasible, lam, math.inf)
  return tf.where(live, tf.sign(w) * tf.minimum(lam[:, None] * weight, room), 0.0)


def _linf(v):
  return tf.reduce_max(tf.abs(tf.reshape(v, [tf.shape(v)[0], -1])), axis=1)


def _l2(v):
  return tf.norm(tf.reshape(v, [tf.shape(v)[0], -1]), axis=1)


def _single_target(model_fn, x, y, target, steps, alpha_max, eta, beta, order=math.inf):
  """One FAB run towards `target`; returns (closest adversarial found or x, its distance)."""
  batch = tf.shape(x)[0]
  x0 = tf.reshape(x, [batch, -1])
  if order == math.inf:
    project, size, dist_fn = project_linf_hyperplane, _linf, _linf
  else:
    project, size, dist_fn = project_l2_hyperplane, _l2, _l2

  def body(i, x1, best, best_dist):
    with tf.GradientTape() as tape:
      tape.watch(x1)
      logits = model_fn(x1)
      diff = (tf.gather(logits, y, batch_dims=1) - tf.gather(logits, target, batch_dims=1))
    grad = tf.reshape(tape.gradient(diff, x1), [batch, -1])
    flat = tf.reshape(x1, [batch, -1])
    offset = tf.reduce_sum(grad * flat, axis=1) - diff
    steps_both = project(tf.concat([flat, x0], 0), tf.concat([grad, grad], 0),
                         tf.concat([offset, offset], 0))
    d1, d2 = steps_both[:batch], steps_both[batch:]
    a1 = tf.maximum(size(d1), 1e-8)
    a2 = tf.maximum(size(d2), 1e-8)
    alpha = tf.clip_by_value(a1 / (a1 + a2), 0.0, alpha_max)[:, None]
    flat = tf.clip_by_value((flat + eta * d1) * (1.0 - alpha) + (x0 + eta * d2) * alpha,
                            0.0, 1.0)
    x_new = tf.reshape(flat, tf.shape(x))
    wrong = tf.logical_not(common.is_correct(model_fn, x_new, y))
    dist = dist_fn(x_new - x)
    closer = tf.logical_and(wrong, dist < best_dist)
    best = tf.where(closer[:, None, None, None], x_new, best)
    best_dist = tf.where(closer, dist, best_dist)
    x_new = tf.where(wrong[:, None, None, None], x + beta * (x_new - x), x_new)
    return i + 1, x_new, best, best_dist

  state = (tf.constant(0), x, x, tf.fill([batch], math.inf))
  _, _, best, best_dist = tf.while_loop(lambda i, *_: i < steps, body, state)
  return best, best_dist


def fab_t(model_fn, x, y, eps, norm="linf", steps=100, target_classes=9, alpha_max=0.1,
          eta=1.05, beta=0.9):
  """FAB-T under an L-inf or L2 budget, on the examples the model classifies correctly.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball; an example counts as broken only when its closest
      adversarial point found is within `eps`.
    norm: `linf` or `l2` (the norm of the distances and of the projections).
    steps: iterations per target class (100).
    target_classes: how many of the top-ranked wrong classes to target (9).
    alpha_max: the largest weight of the step from the clean image (0.1).
    eta: overshoot of the projection steps (1.05).
    beta: backward step towards the clean image after a success (0.9).

  Returns:
    Images within `eps` of `x` and in [0, 1]: per example the closest adversarial point
    found by the first successful target, else `x`. Deterministic (no random start).
  """
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  y = tf.cast(y, tf.int32)
  logits = model_fn(x)
  ranked = tf.argsort(logits, axis=-1, direction="DESCENDING", stable=True)
  targets = tf.minimum(target_classes, common.num_classes(logits) - 1)
  robust = common.is_correct(model_fn, x, y)

  def one_target(t, x_adv, robust):
    # A graph loop (not a Python one) over the targets keeps the traced graph small.
    index = tf.where(robust)[:, 0]

    def attack_subset():
      xs, ys = tf.gather(x, index), tf.gather(y, index)
      target = tf.gather(tf.gather(ranked, t + 1, axis=1), index)
      adv, dist = _single_target(model_fn, xs, ys, target, steps, alpha_max, eta, beta,
                                 order)
      broken = dist <= eps
      update = tf.where(broken[:, None, None, None], adv, xs)
      return (tf.tensor_scatter_nd_update(x_adv, index[:, None], update),
              tf.tensor_scatter_nd_update(robust, index[:, None], tf.logical_not(broken)))

    x_adv, robust = tf.cond(tf.size(index) > 0, attack_subset, lambda: (x_adv, robust))
    return t + 1, x_adv, robust

  _, x_adv, _ = tf.while_loop(lambda t, *_: t < targets, one_target,
                              (tf.constant(0), x, robust))
  return common.project(x, x_adv, eps, order)
