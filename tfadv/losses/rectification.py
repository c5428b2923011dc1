"""Attention rectification, L_r (Wu et al., "Attention, Please!", eq. 8).

`L_r = -[D(f(x), f(x^m)) + D(f(x_adv), f(x_adv^m))]` with `x^m = x * (1 - Att(x))` the image
with its attention area removed (`tfadv.attention.masks`) and `D` the l2 distance between
the softmax outputs (the paper's choice). Minimising `L_r` pushes the prediction on what lies
outside the attention area away from the prediction on the whole image: everything the
network needs must be inside its attention area.

Boundedness: both arguments of `D` are probability vectors, so
`0 <= D <= ||p - q||_2 <= sqrt(2)` and `-2 sqrt(2) <= L_r <= 0`. Unlike a distance between
logits, the term cannot run away by inflating logits; its gradient vanishes as the softmax
outputs saturate, so it cannot dominate the classification loss.
"""

import tensorflow as tf


def _safe_l2(v):
  """||v||_2 along the last axis, with a zero (not NaN) gradient at v = 0."""
  squared = tf.reduce_sum(tf.square(v), axis=-1)
  positive = squared > 0
  return tf.where(positive, tf.sqrt(tf.where(positive, squared, 1.0)), 0.0)


def softmax_distance(logits, other_logits):
  """l2 distance between the softmax outputs of two logit batches: [B], in [0, sqrt(2)]."""
  return _safe_l2(tf.nn.softmax(logits) - tf.nn.softmax(other_logits))


def rectification(clean_logits, clean_masked_logits, adv_logits, adv_masked_logits):
  """`-[D(f(x), f(x^m)) + D(f(x_adv), f(x_adv^m))]` per example: [B], in [-2 sqrt(2), 0]."""
  return -(softmax_distance(clean_logits, clean_masked_logits)
           + softmax_distance(adv_logits, adv_masked_logits))


def rectification_term(forward):
  """L_r of a `Forward` record whose outputs carry `masked_logits`: [B]."""
  clean = forward.require("clean", "rectification")
  adv = forward.require("adv", "rectification")
  for which, out in (("clean", clean), ("adv", adv)):
    if "masked_logits" not in out:
      raise ValueError(f"Loss term 'rectification' needs the {which} masked forward pass "
                       "(masked_logits), which this defense does not compute.")
  return rectification(clean["logits"], clean["masked_logits"], adv["logits"],
                       adv["masked_logits"])
