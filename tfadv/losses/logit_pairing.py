"""Adversarial logit pairing, ALP (Kannan et al., 2018): `||f(x) - f(x_adv)||_2^2`."""

import tensorflow as tf


def logit_pairing(clean_logits, adv_logits):
  """Squared L2 distance between paired logits, per example: [B]."""
  return tf.reduce_sum(tf.square(clean_logits - adv_logits), axis=-1)


def logit_pairing_term(forward):
  """ALP of a `Forward` record: [B]."""
  return logit_pairing(forward.require("clean", "alp")["logits"],
                       forward.require("adv", "alp")["logits"])
