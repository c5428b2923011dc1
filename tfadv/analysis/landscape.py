"""Loss landscapes around inputs (as in the AT+ALP paper and Tramèr et al., 2018).

The loss is evaluated on a grid `x + a * d_adv + b * d_rand`, with `d_adv` the sign of the
input gradient (the direction FGSM takes) and `d_rand` a random sign direction, both in L-inf
units of [0, 1] pixels. A robust model has a flat, smooth surface; a sharp rise near the
origin along `d_adv` with a flat random axis is the picture of gradient masking it does not
have (a model that masks gradients looks flat along `d_adv` only very close to the origin).
"""

import tensorflow as tf


def directions(model_fn, x, y, seed=0):
  """(d_adv, d_rand): the input-gradient sign and a seeded random sign direction."""
  x = tf.convert_to_tensor(x, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y, tf.int32), logits=model_fn(x))
  d_adv = tf.sign(tape.gradient(loss, x))
  d_rand = tf.sign(tf.random.stateless_uniform(tf.shape(x), [seed, 0], -1.0, 1.0))
  return d_adv, d_rand


def loss_surface(model_fn, x, y, radius=0.1, points=11, seed=0):
  """Mean cross-entropy on a `points` x `points` grid of offsets in [-radius, radius]^2.

  Args:
    model_fn: images in [0, 1] -> logits.
    x: images [B, H, W, C] in [0, 1].
    y: labels [B].
    radius: largest offset along each direction (L-inf, pixel units).
    points: grid points per axis (odd, so the grid holds the origin).
    seed: seed of the random direction.

  Returns:
    (offsets [points], losses [points, points]) with `losses[i, j]` the mean loss at
    `x + offsets[i] * d_adv + offsets[j] * d_rand`, clipped to [0, 1].

  Raises:
    ValueError: `points` even or < 3, or `radius` not positive.
  """
  if points < 3 or points % 2 == 0:
    raise ValueError(f"Invalid points: expected an odd integer >= 3; received {points!r}")
  if not radius > 0:
    raise ValueError(f"Invalid radius: expected radius > 0; received {radius!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.cast(y, tf.int32)
  d_adv, d_rand = directions(model_fn, x, y, seed)
  offsets = tf.linspace(-float(radius), float(radius), points)

  @tf.function
  def row(a):
    def at(b):
      moved = tf.clip_by_value(x + a * d_adv + b * d_rand, 0.0, 1.0)
      return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=y, logits=model_fn(moved)))
    return tf.map_fn(at, offsets)

  losses = tf.stack([row(a) for a in tf.unstack(offsets)])
  return offsets, losses
