"""Projected gradient descent, PGD (Madry et al., 2018), built on cleverhans' FGM step.

cleverhans' `projected_gradient_descent` draws its random start from TensorFlow's stateful
RNG, so a resumed training run cannot replay it; here the random start can be stateless
(seeded per step) and the iterations are cleverhans' own FGM step and `clip_eta` projection,
which is exactly its PGD loop. Restarts keep, per example, the first start that fools the
model, as evaluations (Madry et al., AutoAttack) do.
"""

from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
import tensorflow as tf

from tfadv.attacks import common


def pgd(model_fn, x, y, eps, step_size=None, steps=10, norm="linf", random_start=True,
        restarts=1, targeted=False, seed=None, loss_fn=None):
  """Iterated gradient steps, each projected back onto the `eps`-ball and [0, 1].

  Args:
    model_fn: callable mapping images in [0, 1] to logits (`training=False`).
    x: clean images [B, H, W, C], float32 in [0, 1].
    y: labels [B] (true labels; the target when `targeted`).
    eps: radius of the threat ball, Python float in pixel units of [0, 1] (or a tensor
      broadcastable to [B, 1, 1, 1]: a drawn training eps, `tfadv.attacks.eps_draws`).
    step_size: size of each step; None means 2.5 * eps / steps (Madry et al.). Steps larger
      than `eps` are clamped to `eps`.
    steps: number of iterations (Python int; unrolled up to `common.UNROLL_MAX_STEPS`,
      else one graph loop whose traced graph does not grow with `steps`).
    norm: `linf` or `l2`.
    random_start: start from a uniform point of the ball (Madry) instead of `x` (BIM).
    restarts: independent random starts; per example the first adversarial one is kept.
    targeted: move towards `y`.
    seed: optional int tensor [2] making the random starts stateless (restart `r` uses
      `seed + [0, r]`).
    loss_fn: the objective `loss_fn(labels=, logits=) -> [B]` each step ascends (descends
      when `targeted`); None is the cross-entropy. CW-L-inf passes the CW margin here.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if common.is_zero(eps) or steps == 0:
    return x
  if step_size is None:
    step_size = 2.5 * eps / steps
  step_size = common.clamp_step(step_size, eps)

  best = None
  fooled = None
  for restart in range(restarts):
    if random_start:
      restart_seed = None if seed is None else (
          tf.cast(seed, tf.int64) + tf.constant([0, restart], tf.int64))
      x_adv = common.random_start(x, eps, order, restart_seed)
    else:
      x_adv = x
    def step(z):
      z = fast_gradient_method(model_fn, z, step_size, order, loss_fn=loss_fn, clip_min=0.0,
                               clip_max=1.0, y=y, targeted=targeted)
      return common.project(x, z, eps, order)

    x_adv = common.iterate(step, x_adv, steps)
    if restarts == 1:
      return x_adv
    success = tf.logical_not(common.is_correct(model_fn, x_adv, y))
    if targeted:
      success = tf.logical_not(success)
    if best is None:
      best, fooled = x_adv, success
    else:
      take = tf.logical_and(success, tf.logical_not(fooled))
      best = tf.where(take[:, None, None, None], x_adv, best)
      fooled = tf.logical_or(fooled, success)
  return best
