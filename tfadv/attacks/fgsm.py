"""Fast gradient (sign) method, FGSM (Goodfellow et al., 2015), from cleverhans."""

from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
import tensorflow as tf

from tfadv.attacks import common


def fgsm(model_fn, x, y, eps, norm="linf", targeted=False):
  """One gradient step of size `eps` that increases the cross-entropy of `y`.

  Args:
    model_fn: callable mapping images [B, H, W, C] in [0, 1] to logits [B, K]
      (run the model with `training=False`).
    x: clean images, float32 in [0, 1].
    y: labels [B] (true labels when training, so no label leaking; the target class when
      `targeted`).
    eps: radius of the threat ball in [0, 1] pixel units (a Python float).
    norm: `linf` (the sign of the gradient) or `l2` (the normalised gradient).
    targeted: move towards `y` instead of away from it.

  Returns:
    Adversarial images within `eps` of `x` (in `norm`) and in [0, 1].
  """
  order = common.norm_order(norm)
  x = tf.convert_to_tensor(x, tf.float32)
  if common.is_zero(eps):
    return x
  x_adv = fast_gradient_method(
      model_fn, x, eps, order, clip_min=0.0, clip_max=1.0, y=y, targeted=targeted)
  # cleverhans clips to [0, 1] but for L2 the clipping cannot leave the ball; re-project
  # anyway so the contract holds bit-for-bit whatever cleverhans does.
  return common.project(x, x_adv, eps, order)
