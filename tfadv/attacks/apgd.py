"""Auto-PGD (Croce & Hein, 2020): PGD with momentum and a step size that adapts itself.

Our TensorFlow implementation of the published algorithm and its defaults (the reference
code is PyTorch): start from a random point of the ball, step size 2*eps, momentum 0.75;
at checkpoints (22%, then shrinking by 3% down to 6% of the iterations apart) the step
size is halved, and the iterate reset to the best point so far, for every example whose
loss increased in at most 75% of the steps since the last checkpoint, or whose step size
was not reduced at the last checkpoint and whose best loss did not improve since. The
returned image is, per example, an adversarial iterate when one was found (else the last
iterate of the highest loss).

Losses: `ce` (APGD-CE), `dlr` (untargeted DLR) and the targeted DLR of APGD-T, which
attacks, one after the other, the classes ranked 2nd, 3rd, ... by the clean logits. Each
further target (and restart) runs only on the examples not fooled yet, as in the reference.
"""

import math

import tensorflow as tf

from tfadv.attacks import common
from tfadv.attacks import objectives


def _normalize_l2(v):
  flat = tf.reshape(v, [tf.shape(v)[0], -1])
  norm = tf.norm(flat, axis=1)
  return v / (tf.reshape(norm, [-1, 1, 1, 1]) + 1e-12)


def _project(x, x_adv, eps, order):
  if order == math.inf:
    return tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps), 0.0, 1.0)
  delta = x_adv - x
  norm = tf.norm(tf.reshape(delta, [tf.shape(x)[0], -1]), axis=1)
  scale = tf.minimum(1.0, eps / (norm + 1e-12))
  return tf.clip_by_value(x + delta * tf.reshape(scale, [-1, 1, 1, 1]), 0.0, 1.0)


def schedule(steps):
  """(first checkpoint, its decrement, the smallest spacing) in iterations, as the reference.

  The reference truncates the fractions 0.22, 0.03 and 0.06 of `steps` (int, not ceil):
  for 10 steps the first checkpoint comes after 2 iterations, not 3.
  """
  return (max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1))


def _noise(shape, order, seed):
  """The random start's direction: uniform in [-1, 1] (L-inf) or Gaussian (L2)."""
  if seed is None:
    return tf.random.uniform(shape, -1.0, 1.0) if order == math.inf else (
        tf.random.normal(shape))
  return (tf.random.stateless_uniform(shape, seed, -1.0, 1.0) if order == math.inf
          else tf.random.stateless_normal(shape, seed))


def _run(model_fn, x, y, eps, order, steps, loss_fn, seed, rho=0.75, eot_iter=1, noise=None):
  """One APGD run; returns (adversarial-or-best images, fooled [B]).

  `noise` (the start's direction, else drawn from `seed`) lets a run on some rows of a batch
  start where a run on the whole batch would have.
  """
  batch = tf.shape(x)[0]
  if noise is None:
    noise = _noise(tf.shape(x), order, seed)
  if order == math.inf:
    peak = tf.reduce_max(tf.abs(tf.reshape(noise, [batch, -1])), axis=1)
    start = x + eps * noise / tf.reshape(peak + 1e-12, [-1, 1, 1, 1])
  else:
    start = x + eps * _normalize_l2(noise)
  x_adv = tf.clip_by_value(start, 0.0, 1.0)

  def one_sample(z):
    with tf.GradientTape() as tape:
      tape.watch(z)
      logits = model_fn(z)
      loss = loss_fn(y, logits)
      total = tf.reduce_sum(loss)
    return logits, loss, tape.gradient(total, z)

  def loss_and_grad(z):
    if eot_iter == 1:
      return one_sample(z)
    # Expectation over transformation (randomized models): the gradient is averaged over
    # `eot_iter` model calls; logits and loss are those of the last call, as the reference.
    def body(j, logits, loss, grad_sum):
      del logits, loss
      logits, loss, grad = one_sample(z)
      return j + 1, logits, loss, grad_sum + grad

    logits, loss, grad = one_sample(z)
    _, logits, loss, grad = tf.while_loop(lambda j, *_: j < eot_iter, body,
                                          (tf.constant(1), logits, loss, grad))
    return logits, loss, grad / float(eot_iter)

  def step_dir(g):
    return tf.sign(g) if order == math.inf else _normalize_l2(g)

  first_check, size_decr, min_check = schedule(steps)

  logits, loss, grad = loss_and_grad(x_adv)
  fooled = tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), y)
  x_best_adv = x_adv
  x_best, grad_best, loss_best = x_adv, grad, loss
  step = tf.fill([batch], 2.0 * eps)
  # Ring of past losses (for the oscillation count), one row per iteration.
  history = tf.TensorArray(tf.float32, size=steps + 1, clear_after_read=False)
  history = history.write(0, loss)

  def body(i, x_adv, x_old, grad, step, x_best, grad_best, loss_best, x_best_adv, fooled,
           history, counter, k, best_at_check, reduced_at_check):
    momentum = 1.0 if steps == 1 else tf.where(i > 0, 0.75, 1.0)
    s = tf.reshape(step, [-1, 1, 1, 1])
    z = _project(x, x_adv + s * step_dir(grad), eps, order)
    x_new = _project(x, x_adv + momentum * (z - x_adv) + (1.0 - momentum) * (x_adv - x_old),
                     eps, order)
    logits, loss, grad_new = loss_and_grad(x_new)
    wrong = tf.not_equal(tf.argmax(logits, -1, output_type=tf.int32), y)
    x_best_adv = tf.where(wrong[:, None, None, None], x_new, x_best_adv)
    fooled = tf.logical_or(fooled, wrong)
    history = history.write(i + 1, loss)
    better = loss > loss_best
    b4 = better[:, None, None, None]
    x_best = tf.where(b4, x_new, x_best)
    grad_best = tf.where(b4, grad_new, grad_best)
    loss_best = tf.where(better, loss, loss_best)
    counter += 1

    def checkpoint():
      losses = history.gather(tf.range(i + 1 - k, i + 2))  # k + 1 rows
      increases = tf.reduce_sum(tf.cast(losses[1:] > losses[:-1], tf.float32), axis=0)
      oscillating = increases <= tf.cast(k, tf.float32) * rho
      stalled = tf.logical_and(tf.logical_not(reduced_at_check), best_at_check >= loss_best)
      reduce = tf.logical_or(oscillating, stalled)
      r4 = reduce[:, None, None, None]
      return (tf.where(reduce, step / 2.0, step), tf.where(r4, x_best, x_new),
              tf.where(r4, grad_best, grad_new), tf.constant(0),
              tf.maximum(k - size_decr, min_check), loss_best, reduce)

    def no_checkpoint():
      return step, x_new, grad_new, counter, k, best_at_check, reduced_at_check

    step, x_next, grad_next, counter, k, best_at_check, reduced_at_check = tf.cond(
        tf.equal(counter, k), checkpoint, no_checkpoint)
    return (i + 1, x_next, x_adv, grad_next, step, x_best, grad_best, loss_best, x_best_adv,
            fooled, history, counter, k, best_at_check, reduced_at_check)

  state = (tf.constant(0), x_adv, x_adv, grad, step, x_best, grad_best, loss_best, x_best_adv,
           fooled, history, tf.constant(0), tf.constant(first_check), loss_best,
           tf.ones([batch], tf.bool))
  state = tf.while_loop(lambda i, *_: i < steps, body, state)
  x_best, x_best_adv, fooled = state[5], state[8], state[9]
  return tf.where(fooled[:, None, None, None], x_best_adv, x_best), fooled


def _on_unfooled(model_fn, x, y, eps, order, steps, loss_on, seed, rho, eot_iter, best,
                 fooled):
  """One more run (a restart, a target) on the examples not fooled yet; (best, fooled).

  The model sees only those rows (as the reference's `ind_to_fool`); their random starts are
  drawn for the whole batch and gathered, so each example starts where a run on the whole
  batch would have. `loss_on(rows)` is the loss for those rows.
  """
  rows = tf.where(tf.logical_not(fooled))[:, 0]

  def attack_rows():
    noise = tf.gather(_noise(tf.shape(x), order, seed), rows)
    x_adv, now = _run(model_fn, tf.gather(x, rows), tf.gather(y, rows), eps, order, steps,
                      loss_on(rows), seed, rho, eot_iter, noise)
    at = rows[:, None]
    best_rows = tf.where(now[:, None, None, None], x_adv, tf.gather(best, rows))
    return (tf.tensor_scatter_nd_update(best, at, best_rows),
            tf.tensor_scatter_nd_update(fooled, at, now))

  # The model is never called on an empty batch (a Flatten layer fails on one).
  return tf.cond(tf.size(rows) > 0, attack_rows, lambda: (best, fooled))


def _seed(seed, offset):
  if seed is None:
    return None
  return tf.cast(seed, tf.int64) + tf.constant([0, offset], tf.int64)


def apgd(model_fn, x, y, eps, norm="linf", steps=100, restarts=1, loss="ce", rho=0.75,
         eot_iter=1, seed=None):
  """APGD-CE (`loss="ce"`) or APGD-DLR (`loss="dlr"`), untargeted.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball.
    norm: `linf` or `l2`.
    steps: iterations per restart (100 in AutoAttack).
    restarts: random restarts; per example the first adversarial one is kept.
    loss: `ce` or `dlr`.
    rho: the oscillation threshold of the step-size rule (0.75).
    eot_iter: model calls whose gradients are averaged per iteration (expectation over
      transformation, for randomized models: 20 in AutoAttack's `rand` version; 1 otherwise).
    seed: optional int tensor [2] making the random starts stateless.

  Returns:
    Images within `eps` of `x` and in [0, 1].
  """
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
  best, fooled = _run(model_fn, x, y, eps, order, steps, losses[loss], _seed(seed, 0), rho,
                      eot_iter)
  for restart in range(1, restarts):
    best, fooled = _on_unfooled(model_fn, x, y, eps, order, steps, lambda rows: losses[loss],
                                _seed(seed, restart), rho, eot_iter, best, fooled)
  return common.project(x, best, eps, order)


def apgd_t(model_fn, x, y, eps, norm="linf", steps=100, restarts=1, target_classes=9,
           rho=0.75, seed=None):
  """APGD-T: APGD on the targeted DLR loss, for each of the `target_classes` runner-ups.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball.
    norm: `linf` or `l2`.
    steps: iterations per target and restart (100 in AutoAttack).
    restarts: restarts per target (1 in AutoAttack's standard version).
    target_classes: how many of the top-ranked wrong classes to target (9).
    rho: the oscillation threshold of the step-size rule.
    seed: optional int tensor [2] making the random starts stateless.

  Returns:
    Images within `eps` of `x` and in [0, 1]; per example the first target that succeeds.
  """
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

      def loss_on(rows):
        row_target = tf.gather(target, rows)
        return lambda labels, logits: objectives.dlr_targeted(labels, logits, row_target)

      for restart in range(restarts):
        best, fooled = _on_unfooled(model_fn, x, y, eps, order, steps, loss_on,
                                    _seed(seed, 100 * (t + 1) + restart), rho, 1, best, fooled)
      return best, fooled

    if static:
      best, fooled = one_target()
    else:  # Class count known only at run time: skip the targets past the last class.
      best, fooled = tf.cond(t < num_classes - 1, one_target,
                             lambda best=best, fooled=fooled: (best, fooled))
  return common.project(x, best, eps, order)
