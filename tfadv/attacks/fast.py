"""Single-step training attacks of fast adversarial training: FGSM-RS and N-FGSM.

Both take one gradient-sign step from a random point, which makes adversarial training cost
about two forward/backward passes per batch instead of k + 1:

- FGSM-RS (Wong et al., 2020, "Fast is better than free"): a uniform start in the eps-ball,
  one step of 1.25 eps, projected back onto the ball and [0, 1].
- N-FGSM (de Jorge et al., 2022, "Make some noise"): a uniform start in a ball of radius
  k * eps (k = 2), one step of eps, and *no* projection onto the eps-ball (only [0, 1]): the
  training perturbation is up to 3 eps in L-inf. The larger noise and the missing clipping
  are what avoid catastrophic overfitting at large eps.

These are training attacks; evaluate with PGD or AutoAttack. The random start is stateless
when `seed` is given, so a resumed run replays the same examples.
"""

import tensorflow as tf

from tfadv.attacks import common


def _gradient_sign(model_fn, x, y):
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y, tf.int32), logits=model_fn(x))
  return tf.sign(tape.gradient(loss, x))


def _uniform(x, radius, seed):
  shape = tf.shape(x)
  if seed is None:
    return tf.random.uniform(shape, -radius, radius)
  return tf.random.stateless_uniform(shape, tf.cast(seed, tf.int64), -radius, radius)


def fgsm_rs(model_fn, x, y, eps, norm="linf", step_scale=1.25, seed=None):
  """FGSM from a uniform random start in the eps-ball, step `step_scale * eps`, projected.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: L-inf radius.
    norm: `linf` (the only norm of the method).
    step_scale: the step as a multiple of eps (Wong et al.: 1.25).
    seed: optional int tensor [2] for a stateless random start.

  Returns:
    Images within eps of `x` (L-inf) and in [0, 1].
  """
  common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0:
    return x
  start = tf.clip_by_value(x + _uniform(x, eps, seed), 0.0, 1.0)
  x_adv = start + step_scale * eps * _gradient_sign(model_fn, start, y)
  return common.project(x, tf.clip_by_value(x_adv, 0.0, 1.0), eps, common.norm_order(norm))


def n_fgsm(model_fn, x, y, eps, norm="linf", noise_scale=2.0, step_scale=1.0, seed=None):
  """N-FGSM: uniform noise of radius `noise_scale * eps`, one step of `step_scale * eps`.

  Unlike every evaluation attack, the result is NOT projected onto the eps-ball (that is the
  method): it lies within `(noise_scale + step_scale) * eps` of `x` and in [0, 1].

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: the nominal L-inf radius.
    norm: `linf`.
    noise_scale: radius of the uniform noise as a multiple of eps (de Jorge et al.: 2).
    step_scale: the step as a multiple of eps (1).
    seed: optional int tensor [2] for stateless noise.
  """
  common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0:
    return x
  noisy = tf.clip_by_value(x + _uniform(x, noise_scale * eps, seed), 0.0, 1.0)
  return tf.clip_by_value(noisy + step_scale * eps * _gradient_sign(model_fn, noisy, y),
                          0.0, 1.0)
