"""Attention preservation, L_p (Wu et al., "Attention, Please!", eq. 9).

`L_p = D(g(x), g(x_adv))` with `g` the Grad-CAM maps at the Grad-CAM layer's resolution
(no resizing, as in the paper) and `D` the l1 distance (the paper's choice, to encourage
sparsity). Each map is normalised per image to unit sum, i.e. compared as a spatial
distribution of evidence, so the term measures *where* the network looks, not how strongly:
`0 <= L_p <= 2` whatever the grid size or the scale of the logits. An all-zero map (no
evidence for the class) stays zero.

The maps come from `tfadv.attention.gradcam.gradcam`, whose inner gradient is recorded by
the training step's tape, so `L_p` reaches the weights through the second-order path.
"""

import tensorflow as tf


def normalize_distribution(cam):
  """Scales each map [B, h, w] to unit sum (zero maps stay zero): [B, h * w]."""
  flat = tf.reshape(cam, [tf.shape(cam)[0], -1])
  return tf.math.divide_no_nan(flat, tf.reduce_sum(flat, axis=1, keepdims=True))


def preservation(clean_cam, adv_cam):
  """l1 distance between the unit-sum Grad-CAM maps of clean and adversarial images: [B]."""
  return tf.reduce_sum(
      tf.abs(normalize_distribution(clean_cam) - normalize_distribution(adv_cam)), axis=1)


def preservation_term(forward):
  """L_p of a `Forward` record whose outputs carry Grad-CAM maps `cam`: [B]."""
  clean = forward.require("clean", "preservation")
  adv = forward.require("adv", "preservation")
  for which, out in (("clean", clean), ("adv", adv)):
    if "cam" not in out:
      raise ValueError(f"Loss term 'preservation' needs the {which} Grad-CAM maps (cam), "
                       "which this defense does not compute.")
  return preservation(clean["cam"], adv["cam"])
