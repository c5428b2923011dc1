"""SPSA (Uesato et al., 2018): gradient-free L-inf attack with Adam on SPSA estimates.

cleverhans' `spsa` fails on Keras 3: its `SPSAAdam` subclasses `tf.optimizers.Adam` and
passes `lr=`, which Keras 3 rejects, and it needs a batch of one image. Its algorithm is
sound, so we keep its margin loss and its driver's steps (uniform random start in the
ball, an optimizer step, projection onto the ball and [0, 1]), with an optimizer of our own
(`init_state` / `minimize`) that estimates the gradient of a whole batch at once. Unlike
cleverhans' driver, which returns the last iterate, an example counts as broken when any
iterate fooled the model (the first fooling iterate is kept): the reference's early stop
at a loss below 0 does the same for one image.
"""

from cleverhans.tf2.attacks import spsa as cleverhans_spsa
import tensorflow as tf

from tfadv.attacks import common


class SpsaAdam:
  """Adam on SPSA gradient estimates, with the interface cleverhans' driver calls.

  The gradient of a per-example loss `L` at `x` is estimated from `samples` Rademacher
  directions `v` (mirrored: `+v` and `-v`), `mean(L(x + delta v) v) / delta`, averaged
  over `iters` independent draws.
  """

  def __init__(self, learning_rate=0.01, delta=0.01, samples=128, iters=1, beta_1=0.9,
               beta_2=0.999, epsilon=1e-7):
    if samples < 2 or samples % 2:
      raise ValueError(f"Invalid samples: expected an even number >= 2 (they are mirrored); "
                       f"received samples={samples}")
    self.learning_rate = learning_rate
    self.delta = delta
    self.half = samples // 2
    self.iters = iters
    self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

  def init_state(self, x):
    return {"t": 0.0, "m": [tf.zeros_like(v) for v in x], "u": [tf.zeros_like(v) for v in x]}

  def _gradient(self, loss_fn, x):
    grad = tf.zeros_like(x)
    for _ in range(self.iters):
      shape = tf.concat([[self.half], tf.shape(x)], axis=0)
      v = tf.sign(tf.random.uniform(shape, -1.0, 1.0))
      v = tf.concat([v, -v], axis=0)  # [2 * half, B, H, W, C]
      losses = loss_fn(x[None] + self.delta * v)  # [2 * half, B]
      grad += tf.reduce_mean(losses[:, :, None, None, None] * v, axis=0) / self.delta
    return grad / self.iters

  def minimize(self, loss_fn, x, state):
    """One Adam step on each tensor of the list `x` (a list of one perturbation)."""
    t = state["t"] + 1.0
    new_x, new_m, new_u = [], [], []
    for value, m, u in zip(x, state["m"], state["u"]):
      g = self._gradient(loss_fn, value)
      m = self.beta_1 * m + (1.0 - self.beta_1) * g
      u = self.beta_2 * u + (1.0 - self.beta_2) * g * g
      m_hat = m / (1.0 - tf.pow(self.beta_1, t))
      u_hat = u / (1.0 - tf.pow(self.beta_2, t))
      new_x.append(value - self.learning_rate * m_hat / (tf.sqrt(u_hat) + self.epsilon))
      new_m.append(m)
      new_u.append(u)
    return new_x, {"t": t, "m": new_m, "u": new_u}


def spsa(model_fn, x, y, eps, norm="linf", steps=100, learning_rate=0.01, delta=0.01,
         samples=128, iters=1, targeted=False):
  """SPSA attack on the margin loss, for a batch of images.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`); never differentiated.
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B] (the target when `targeted`).
    eps: L-inf radius.
    norm: must be `linf` (SPSA's projection is L-inf).
    steps: optimisation steps (cleverhans' `nb_iter`).
    learning_rate: Adam step size.
    delta: finite-difference scale of the SPSA directions.
    samples: model evaluations per gradient estimate (even; mirrored pairs).
    iters: independent estimates averaged per step.
    targeted: move towards `y`.

  Returns:
    Images within `eps` (L-inf) of `x` and in [0, 1]: per example the first iterate that
    fooled the model (reached `y` when `targeted`), else the last iterate.
  """
  if common.norm_order(norm) != common.norm_order("linf"):
    raise ValueError(f"Invalid norm: expected 'linf' for spsa; received norm={norm!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  y = tf.cast(y, tf.int32)
  sign = 1.0 if targeted else -1.0

  def loss_fn(images, labels):
    """Loss to minimise, per example: [B] for [B, ...], [N, B] for [N, B, ...]."""
    if images.shape.rank == 5:
      n = tf.shape(images)[0]
      flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], axis=0))
      logits = model_fn(flat)
      tiled = tf.tile(labels, [n])
      loss = cleverhans_spsa.margin_logit_loss(logits, tiled, nb_classes=logits.shape[-1])
      return sign * tf.reshape(loss, [n, -1])
    logits = model_fn(images)
    return sign * cleverhans_spsa.margin_logit_loss(logits, labels,
                                                    nb_classes=logits.shape[-1])

  optimizer = SpsaAdam(learning_rate, delta, samples, iters)

  def project(perturbation):
    return tf.clip_by_value(x + tf.clip_by_value(perturbation, -eps, eps), 0.0, 1.0) - x

  def success(perturbation):
    fooled = tf.logical_not(common.is_correct(model_fn, x + perturbation, y))
    return tf.logical_not(fooled) if targeted else fooled

  start = project(tf.random.uniform(tf.shape(x), -eps, eps))
  state = optimizer.init_state([start])
  fooled = success(start)

  def body(i, perturbation, flat_state, best, fooled):
    new, new_state = optimizer.minimize(lambda d: loss_fn(x + d, y), [perturbation],
                                        tf.nest.pack_sequence_as(state, flat_state))
    new = project(new[0])
    now = success(new)
    first = tf.logical_and(now, tf.logical_not(fooled))
    best = tf.where(first[:, None, None, None], new, best)
    return i + 1, new, tf.nest.flatten(new_state), best, tf.logical_or(fooled, now)

  _, last, _, best, fooled = tf.while_loop(
      lambda i, *_: i < steps, body,
      (tf.constant(0), start, tf.nest.flatten(state), start, fooled))
  x_adv = x + tf.where(fooled[:, None, None, None], best, last)
  return common.project(x, x_adv, eps, common.norm_order("linf"))
