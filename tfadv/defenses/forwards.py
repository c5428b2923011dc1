"""Forward hooks: extra passes a defense needs inside the training step's tape.

A `Recipe` may carry a `forward(tapped, x, x_adv, y) -> (clean, adv)` hook that replaces the
trainer's plain forward pass. It returns the tapped model's output dicts on the clean and
adversarial images, extended with what its loss terms read; the loss terms stay pure
functions of the resulting `Forward` record. Hooks run under the step's `GradientTape`, in a
replica context, inside `tf.function`.
"""

import tensorflow as tf

from tfadv.attention import gradcam
from tfadv.attention import masks


def _split(outputs, n):
  """Splits every tensor of an output dict at batch index `n`."""
  return (tf.nest.map_structure(lambda t: t[:n], outputs),
          tf.nest.map_structure(lambda t: t[n:], outputs))


def attention_forward(tapped, x, x_adv, y, kappa=None, masked=True, training=True):
  """The AAD passes: Grad-CAM on clean and adversarial images, then their masked twins.

  One Grad-CAM pass (forward plus the inner gradient to the Grad-CAM layer, recorded by the
  outer tape so `L_p` is differentiable) runs on `concat(x, x_adv)` for the true classes;
  when `masked`, a second forward runs on the images with their attention areas removed
  (`masks.attention_area`, `masks.mask_images`; the mask itself carries no gradient).

  Args:
    tapped: the tapped model (`logits`, `taps`, `gradcam`).
    x: clean images [B, H, W, C] (static H, W).
    x_adv: adversarial images, same shape.
    y: int labels [B]: the class whose evidence Grad-CAM maps (no label leaking: these are
      the training labels the loss uses anyway).
    kappa: attention threshold (None: per-image mean of the map; see `masks`).
    masked: also run the masked forward (the rectification term needs it).
    training: forwarded to the model calls.

  Returns:
    (clean, adv): the tapped model's output dicts on `x` and `x_adv`, each with `cam`
    ([B, h, w] raw Grad-CAM maps) and, when `masked`, `masked_logits` ([B, K], logits on
    the masked images).
  """
  n = tf.shape(x)[0]
  both = tf.concat([x, x_adv], 0)
  labels = tf.cast(tf.concat([y, y], 0), tf.int32)
  cam, outputs = gradcam.gradcam(tapped, both, labels, training=training)
  outputs = dict(outputs, cam=cam)
  if masked:
    area = masks.attention_area(cam, size=tuple(x.shape[1:3]), kappa=kappa)
    outputs["masked_logits"] = tapped(masks.mask_images(both, area), training=training)["logits"]
  return _split(outputs, n)
