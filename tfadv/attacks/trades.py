"""The TRADES inner maximisation (Zhang et al., 2019): PGD on `KL(f(x) || f(x_adv))`.

Unlike Madry's PGD, the objective ignores the labels: the attack looks for the point of the
threat ball whose prediction differs most (in KL) from the prediction on the clean image.
As in the reference implementation the search starts from `x + 0.001 * N(0, I)` and the
clean prediction is a constant.
"""

import math

import tensorflow as tf

from tfadv.attacks import common
from tfadv.losses import trades as trades_loss


def trades(model_fn, x, y=None, eps=0.1, step_size=None, steps=10, norm="linf", seed=None):
  """Gradient ascent on the KL to the clean prediction, projected onto the ball and [0, 1].

  Args:
    model_fn: callable mapping images in [0, 1] to logits (`training=False`).
    x: clean images [B, H, W, C], float32 in [0, 1].
    y: unused (the objective needs no labels); accepted for the common calling convention.
    eps: radius of the threat ball, Python float in pixel units of [0, 1].
    step_size: size of each step; None means 2.5 * eps / steps. Clamped to `eps`.
    steps: number of iterations (Python int; see `common.iterate`).
    norm: `linf` (signed gradient steps) or `l2` (normalised gradient steps).
    seed: optional int tensor [2] making the small Gaussian start stateless (replayable
      training steps); None uses TensorFlow's stateful RNG.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  del y
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  if step_size is None:
    step_size = 2.5 * eps / steps
  step_size = min(float(step_size), float(eps))
  clean_logits = tf.stop_gradient(model_fn(x))
  if seed is None:
    noise = tf.random.normal(tf.shape(x))
  else:
    noise = tf.random.stateless_normal(tf.shape(x), tf.cast(seed, tf.int64))
  x_adv = common.project(x, x + 0.001 * noise, eps, order)

  def step(x_adv):
    with tf.GradientTape() as tape:
      tape.watch(x_adv)
      kl = tf.reduce_sum(trades_loss.kl_divergence(clean_logits, model_fn(x_adv)))
    grad = tape.gradient(kl, x_adv)
    if order == math.inf:
      direction = tf.sign(grad)
    else:
      flat = tf.reshape(grad, [tf.shape(grad)[0], -1])
      direction = tf.reshape(tf.math.l2_normalize(flat, axis=1, epsilon=1e-12), tf.shape(x))
    return common.project(x, tf.stop_gradient(x_adv + step_size * direction), eps, order)

  return common.iterate(step, x_adv, steps)
