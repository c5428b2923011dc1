"""Carlini-Wagner attacks: CW-L-inf (PGD on the CW margin) and CW-L2 (Carlini & Wagner, 2017).

cleverhans' `carlini_wagner_l2` fails on Keras 3 (it calls `optimizer.variables()` and
applies a Keras optimizer to a raw `tf.Variable`), and it is eager-only (numpy, Python
comparisons of tensors), so CW-L2 is written here from the paper: tanh change of variables,
Adam on the modifier (state reset per constant), abort-early, a binary search on the
constant `c` per example, and the best (smallest) adversarial example kept. It follows the
reference implementation (and cleverhans' defaults) except that the confidence is added to
the true logit before the argmax, as in Carlini's code (cleverhans adds it to every logit,
which makes `confidence` a no-op in its success test).
"""

import functools

import tensorflow as tf

from tfadv.attacks import common
from tfadv.attacks import objectives
from tfadv.attacks import pgd as pgd_lib


def cw_linf(model_fn, x, y, eps, norm="linf", steps=10, step_size=None, random_start=True,
            restarts=1, confidence=50.0, seed=None):
  """PGD on the CW margin loss `min(max_{j != y} z_j - z_y, confidence)`: the AAD paper's CWk.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball.
    norm: `linf` (the paper's setting) or `l2`.
    steps: PGD iterations (CW10 ... CW100).
    step_size: None means `2.5 * eps / steps`.
    random_start: start from a uniform point of the ball.
    restarts: independent random starts.
    confidence: kappa of the margin (Madry et al.'s MNIST challenge uses 50).
    seed: optional int tensor [2] for stateless random starts.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  loss_fn = functools.partial(objectives.cw_margin, confidence=float(confidence))
  return pgd_lib.pgd(model_fn, x, y, eps, step_size, steps, norm, random_start, restarts,
                     seed=seed, loss_fn=loss_fn)


def _to_tanh_space(x):
  return tf.atanh((2.0 * x - 1.0) * 0.999999)


def _from_tanh_space(w):
  return (tf.tanh(w) + 1.0) / 2.0


def cw_l2(model_fn, x, y, eps=None, norm="l2", binary_search_steps=5, max_iterations=1000,
          learning_rate=5e-3, initial_const=1e-2, confidence=0.0, abort_early=True):
  """Carlini-Wagner L2: the smallest L2 perturbation found that changes the prediction.

  Minimises `||x' - x||_2^2 + c * max(z_y - max_{j != y} z_j + confidence, 0)` over
  `x' = (tanh(w) + 1) / 2` with Adam, and searches `c` per example by bisection
  (multiplying by 10 until a first success).

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: L2 budget. An example whose smallest adversarial perturbation found is larger
      than `eps` is returned unchanged (the attack failed within the budget); None keeps
      every adversarial example found (the minimum-norm attack itself).
    norm: must be `l2` (CW-L2 is an L2 attack).
    binary_search_steps: rounds of the search on `c`.
    max_iterations: Adam steps per round.
    learning_rate: Adam step size.
    initial_const: first `c`.
    confidence: kappa: require `z_y` to lose by this margin.
    abort_early: stop a round when the total loss has not improved by 0.01% over a tenth
      of `max_iterations` steps.

  Returns:
    Images in [0, 1] within `eps` (L2) of `x`: adversarial where the attack succeeded.
  """
  if common.norm_order(norm) != 2:
    raise ValueError(f"Invalid norm: expected 'l2' for cw_l2 (an L2 attack); received "
                     f"norm={norm!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  if eps is not None and eps == 0:
    return x
  y = tf.cast(y, tf.int32)
  batch = tf.shape(x)[0]
  w0 = _to_tanh_space(x)
  x0 = _from_tanh_space(w0)  # What a zero modifier maps to (x up to 1e-6).
  check_every = max(max_iterations // 10, 1)

  def step_loss(modifier, const):
    x_new = _from_tanh_space(w0 + modifier)
    logits = model_fn(x_new)
    true, other = objectives._true_and_best_other(y, logits)  # pylint: disable=protected-access
    l2sq = tf.reduce_sum(tf.square(x_new - x0), axis=[1, 2, 3])
    loss = l2sq + const * tf.maximum(true - other + confidence, 0.0)
    return loss, x_new, logits, l2sq

  def success(logits):
    shifted = logits + confidence * tf.one_hot(y, tf.shape(logits)[-1])
    return tf.not_equal(tf.argmax(shifted, axis=-1, output_type=tf.int32), y)

  lower = tf.zeros([batch])
  upper = tf.fill([batch], 1e10)
  const = tf.fill([batch], float(initial_const))
  best_l2 = tf.fill([batch], 1e10)
  best_adv = x
  beta1, beta2, adam_eps = 0.9, 0.999, 1e-7
  for outer in range(binary_search_steps):
    if binary_search_steps >= 10 and outer == binary_search_steps - 1:
      const = tf.where(upper < 1e9, upper, const)  # The reference's final repeat.

    def body(i, modifier, m, v, prev, stop, round_l2, best_l2, best_adv, const=const):
      with tf.GradientTape() as tape:
        tape.watch(modifier)
        loss, x_new, logits, l2sq = step_loss(modifier, const)
        total = tf.reduce_sum(loss)
      grad = tape.gradient(total, modifier)
      t = tf.cast(i + 1, tf.float32)
      m = beta1 * m + (1 - beta1) * grad
      v = beta2 * v + (1 - beta2) * tf.square(grad)
      lr_t = learning_rate * tf.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
      modifier = modifier - lr_t * m / (tf.sqrt(v) + adam_eps)
      ok = success(logits)
      round_l2 = tf.where(tf.logical_and(ok, l2sq < round_l2), l2sq, round_l2)
      better = tf.logical_and(ok, l2sq < best_l2)
      best_l2 = tf.where(better, l2sq, best_l2)
      best_adv = tf.where(better[:, None, None, None], x_new, best_adv)
      if abort_early:
        check = tf.equal(i % check_every, 0)
        stop = tf.logical_and(check, total > prev * 0.9999)
        prev = tf.where(check, total, prev)
      return i + 1, modifier, m, v, prev, stop, round_l2, best_l2, best_adv

    zeros = tf.zeros_like(x)
    loop = tf.while_loop(
        lambda i, *state: tf.logical_and(i < max_iterations, tf.logical_not(state[4])),
        body,
        (tf.constant(0), zeros, zeros, zeros, tf.constant(1e30), tf.constant(False),
         tf.fill([batch], 1e10), best_l2, best_adv))
    round_l2, best_l2, best_adv = loop[6], loop[7], loop[8]
    found = round_l2 < 1e10
    upper = tf.where(found, tf.minimum(upper, const), upper)
    lower = tf.where(found, lower, tf.maximum(lower, const))
    const = tf.where(upper < 1e9, (lower + upper) / 2.0,
                     tf.where(found, const, const * 10.0))

  if eps is not None:
    dist = tf.norm(tf.reshape(best_adv - x, [batch, -1]), axis=1)
    keep = tf.logical_and(best_l2 < 1e10, dist <= eps)
    best_adv = tf.where(keep[:, None, None, None], best_adv, x)
    return common.project(x, best_adv, eps, 2)
  return tf.clip_by_value(best_adv, 0.0, 1.0)
