"""Pieces shared by the attacks: norms, projection onto the threat ball, random starts."""

import math

from cleverhans.tf2.utils import clip_eta
import tensorflow as tf

from tfadv import config as config_lib


def norm_order(norm):
  """Maps `linf`/`l2` (or a `config.Norm`, or inf/2) to the order cleverhans expects."""
  if isinstance(norm, (int, float)) and norm in (math.inf, 2):
    return norm
  return config_lib._choice(config_lib.Norm, norm, "norm").order  # pylint: disable=protected-access


def is_zero(eps):
  """True for a Python eps of 0 (nothing to attack); a drawn eps (a tensor) never is here."""
  return not tf.is_tensor(eps) and eps == 0


def clamp_step(step_size, eps):
  """The step size, at most eps (a Python float, or a tensor when eps is drawn)."""
  if tf.is_tensor(step_size) or tf.is_tensor(eps):
    return tf.minimum(tf.cast(step_size, tf.float32), tf.cast(eps, tf.float32))
  return min(float(step_size), float(eps))


def project(x, x_adv, eps, order):
  """Projects `x_adv` onto the `eps`-ball around `x` and onto the box [0, 1]."""
  eta = clip_eta(x_adv - x, order, eps)
  return tf.clip_by_value(x + eta, 0.0, 1.0)


def random_start(x, eps, order, seed=None):
  """A uniform random point of the `eps`-ball around `x`, clipped to [0, 1].

  Args:
    x: images [B, H, W, C].
    eps: ball radius.
    order: math.inf or 2.
    seed: optional int tensor of shape [2] for a stateless draw (so a resumed or replayed
      training step draws the same start); None uses TensorFlow's stateful RNG.
  """
  shape = tf.shape(x)
  if seed is None:
    uniform = lambda s, lo, hi: tf.random.uniform(s, lo, hi, dtype=x.dtype)
    normal = lambda s: tf.random.normal(s, dtype=x.dtype)
  else:
    seed = tf.cast(seed, tf.int64)
    seed2 = seed + tf.constant([0, 1 << 40], tf.int64)
    uniform = lambda s, lo, hi: tf.random.stateless_uniform(s, seed, lo, hi, dtype=x.dtype)
    normal = lambda s: tf.random.stateless_normal(s, seed2, dtype=x.dtype)
  if order == math.inf:
    eta = uniform(shape, -eps, eps)
  else:
    # Uniform in the L2 ball: a Gaussian direction and a radius ~ eps * U^(1/d).
    direction = normal(shape)
    direction = tf.math.l2_normalize(tf.reshape(direction, [shape[0], -1]), axis=1)
    dim = tf.cast(tf.reduce_prod(shape[1:]), x.dtype)
    radius = eps * uniform([shape[0], 1], 0.0, 1.0) ** (1.0 / dim)
    eta = tf.reshape(direction * radius, shape)
  return tf.clip_by_value(x + eta, 0.0, 1.0)


def is_correct(model_fn, x, y):
  """Boolean [B]: does the model predict `y` on `x`."""
  return tf.equal(tf.argmax(model_fn(x), axis=-1, output_type=tf.int32),
                  tf.cast(y, tf.int32))


def num_classes(logits):
  """The class count of `logits` [B, K]: a Python int when static, else an int32 tensor."""
  static = logits.shape[-1]
  return int(static) if static is not None else tf.shape(logits)[-1]


# Loops of at most this many steps are unrolled (see `iterate`).
UNROLL_MAX_STEPS = 10


def iterate(step, x_adv, steps):
  """`steps` applications of `step` to `x_adv`: unrolled when short, else a graph loop.

  Up to `UNROLL_MAX_STEPS` steps (the training attacks: PGD-7/10, TRADES-10) the Python loop
  is unrolled into the graph, as cleverhans' PGD is. Inside a `tf.while_loop` body oneDNN's
  graph rewrite sometimes (from one process to the next) leaves `MaxPoolGrad` as TensorFlow's
  generic kernel, about 10x slower than oneDNN's: measured here, that made a PGD-7 training
  step of a pooling CNN 1.0x or 1.5x the floor at random; unrolled it was 1.0x every time.
  Longer loops (evaluation: PGD-50, PGD-200) stay one `tf.while_loop`, whose traced graph
  does not grow with `steps` (PGD-200 unrolled traced for minutes). Both give bit-identical
  results. The loop keeps the static shape of `x_adv`.
  """
  if steps <= UNROLL_MAX_STEPS:
    for _ in range(steps):
      x_adv = tf.ensure_shape(step(x_adv), x_adv.shape)
    return x_adv
  _, x_adv = tf.while_loop(
      lambda i, _: i < steps,
      lambda i, z: (i + 1, tf.ensure_shape(step(z), x_adv.shape)),
      (tf.constant(0), x_adv))
  return x_adv
