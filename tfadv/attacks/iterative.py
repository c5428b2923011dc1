"""BIM (Kurakin et al., 2017) and MIM (Dong et al., 2018), from cleverhans.

Both start at `x` (no random start). cleverhans' `sanity_checks` are Python asserts that break
in graph mode, so they are off; the contract (ball and box) is re-established by projecting the
result, which is a no-op when cleverhans already respected it.
"""

from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method
import tensorflow as tf

from tfadv.attacks import common


def bim(model_fn, x, y, eps, norm="linf", steps=10, step_size=None, targeted=False):
  """Basic iterative method: `steps` FGM steps of `step_size`, projected each time.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B] (the target when `targeted`).
    eps: radius of the threat ball (pixel units of [0, 1]).
    norm: `linf` or `l2`.
    steps: iterations.
    step_size: per-step size; None means `eps / steps * 2.5`, capped at `eps`.
    targeted: move towards `y`.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  step_size = min(float(step_size or 2.5 * eps / steps), float(eps))
  x_adv = basic_iterative_method(model_fn, x, eps, step_size, steps, order, clip_min=0.0,
                                 clip_max=1.0, y=y, targeted=targeted, sanity_checks=False)
  return common.project(x, x_adv, eps, order)


def mim(model_fn, x, y, eps, norm="linf", steps=10, step_size=None, decay=1.0,
        targeted=False):
  """Momentum iterative method: steps along an L1-normalised gradient momentum.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B] (the target when `targeted`).
    eps: radius of the threat ball.
    norm: `linf` or `l2`.
    steps: iterations.
    step_size: per-step size; None means `eps / steps` (Dong et al.).
    decay: momentum decay factor mu (1.0 in the paper).
    targeted: move towards `y`.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  step_size = min(float(step_size or eps / steps), float(eps))
  x_adv = momentum_iterative_method(model_fn, x, eps, step_size, steps, order, clip_min=0.0,
                                    clip_max=1.0, y=y, targeted=targeted, decay_factor=decay,
                                    sanity_checks=False)
  return common.project(x, x_adv, eps, order)
