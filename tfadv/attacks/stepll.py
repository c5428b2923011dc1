"""StepLL and Iter-StepLL (Kurakin et al., 2017): steps towards the least-likely class.

Instead of increasing the loss of the true label, these attacks decrease the loss of the
class the model finds least likely on the clean image (fixed once, from `x`). They need no
label, which is why they were popular for adversarial training at scale, and the AAD paper
reports them for evaluation.
"""

import tensorflow as tf

from tfadv.attacks import common
from tfadv.attacks import fgsm as fgsm_lib
from tfadv.attacks import iterative
from tfadv.attacks import objectives


def stepll(model_fn, x, y, eps, norm="linf"):
  """One targeted FGM step of size `eps` towards each image's least-likely class.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B] (unused by the step: kept for the common attack signature).
    eps: radius of the threat ball.
    norm: `linf` or `l2`.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  del y  # The target is the least-likely class.
  x = tf.convert_to_tensor(x, tf.float32)
  if common.is_zero(eps):
    return x
  target = objectives.least_likely(model_fn, x)
  return fgsm_lib.fgsm(model_fn, x, target, eps, norm, targeted=True)


def iter_stepll(model_fn, x, y, eps, norm="linf", steps=10, step_size=None):
  """Iterated StepLL: BIM steps (no random start) towards the clean least-likely class.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B] (unused: kept for the common attack signature).
    eps: radius of the threat ball.
    norm: `linf` or `l2`.
    steps: iterations.
    step_size: per-step size; None means `2.5 * eps / steps`, capped at `eps`.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  del y
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or steps == 0:
    return x
  common.norm_order(norm)  # Validates the name.
  target = objectives.least_likely(model_fn, x)
  return iterative.bim(model_fn, x, target, eps, norm, steps, step_size, targeted=True)
