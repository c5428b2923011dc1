"""Attention preservation, L_p (Wu et al., "Attention, Please!", eq. 9).

`L_p = D(g(x), g(x_adv))` with `g` the Grad-CAM maps at the Grad-CAM layer's resolution
(no resizing, as in the paper) and `D` the l1 distance (the paper's choice, to encourage
sparsity). By default the raw maps are compared, as in the paper; `normalize="unit_sum"`
scales each map per image to unit sum first, i.e. compares spatial distributions of
evidence, so the term measures *where* the network looks, not how strongly, and
`0 <= L_p <= 2` whatever the grid size or the scale of the logits (an all-zero map stays
zero).

The maps come from `tfadv.attention.gradcam.gradcam`, whose inner gradient is recorded by
the training step's tape, so `L_p` reaches the weights through the second-order path.
"""

import tensorflow as tf


def normalize_distribution(cam):
  """Scales each map [B, h, w] to unit sum (zero maps stay zero): [B, h * w]."""
  flat = tf.reshape(cam, [tf.shape(cam)[0], -1])
  return tf.math.divide_no_nan(flat, tf.reduce_sum(flat, axis=1, keepdims=True))


def preservation(clean_cam, adv_cam, normalize="none"):
  """l1 distance between the Grad-CAM maps of clean and adversarial images: [B].

  Args:
    clean_cam: Grad-CAM maps [B, h, w] of the clean images.
    adv_cam: the same on the adversarial images.
    normalize: `none` compares the raw maps (the paper's eq. 9); `unit_sum` scales each map
      to unit sum first, so the term is in [0, 2] whatever the grid size or logit scale.
  """
  if normalize == "unit_sum":
    clean, adv = normalize_distribution(clean_cam), normalize_distribution(adv_cam)
  elif normalize == "none":
    clean = tf.reshape(clean_cam, [tf.shape(clean_cam)[0], -1])
    adv = tf.reshape(adv_cam, [tf.shape(adv_cam)[0], -1])
  else:
    raise ValueError(f"Invalid normalize: expected none or unit_sum; received {normalize!r}")
  return tf.reduce_sum(tf.abs(clean - adv), axis=1)


def preservation_term(forward, normalize="none"):
  """L_p of a `Forward` record whose outputs carry Grad-CAM maps `cam`: [B]."""
  clean = forward.require("clean", "preservation")
  adv = forward.require("adv", "preservation")
  for which, out in (("clean", clean), ("adv", adv)):
    if "cam" not in out:
      raise ValueError(f"Loss term 'preservation' needs the {which} Grad-CAM maps (cam), "
                       "which this defense does not compute.")
  return preservation(clean["cam"], adv["cam"], normalize)
