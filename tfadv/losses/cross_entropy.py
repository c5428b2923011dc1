"""Softmax cross-entropy on clean, adversarial or mixed logits."""

import tensorflow as tf


def cross_entropy(logits, labels, label_smoothing=0.0):
  """Per-example softmax cross-entropy: [B].

  With `label_smoothing` s the target is (1 - s) one-hot + s / K uniform (Szegedy et al.).
  """
  labels = tf.cast(labels, tf.int32)
  if not label_smoothing:
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  classes = tf.shape(logits)[-1]
  target = tf.one_hot(labels, classes, dtype=logits.dtype)
  target = (1.0 - label_smoothing) * target + label_smoothing / tf.cast(classes, logits.dtype)
  return tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)


def clean_cross_entropy(forward, label_smoothing=0.0):
  """CE(f(x), y) [B]."""
  return cross_entropy(forward.require("clean", "clean_ce")["logits"], forward.labels,
                       label_smoothing)


def adversarial_cross_entropy(forward, label_smoothing=0.0):
  """CE(f(x_adv), y) [B]."""
  return cross_entropy(forward.require("adv", "adv_ce")["logits"], forward.labels,
                       label_smoothing)
