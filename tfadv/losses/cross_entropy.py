"""Softmax cross-entropy on clean, adversarial or mixed logits."""

import tensorflow as tf


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy: [B]."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=logits)


def clean_cross_entropy(forward):
  """CE(f(x), y) [B]."""
  return cross_entropy(forward.require("clean", "clean_ce")["logits"], forward.labels)


def adversarial_cross_entropy(forward):
  """CE(f(x_adv), y) [B]."""
  return cross_entropy(forward.require("adv", "adv_ce")["logits"], forward.labels)
