"""Objectives the attacks ascend: margins on the logits (CW, DLR) and least-likely labels.

Every objective has cleverhans' loss signature `loss(labels=, logits=) -> [B]`, so it can
be handed to an FGM/PGD step as `loss_fn`.
"""

import tensorflow as tf


def _true_and_best_other(labels, logits):
  """(logit of `labels`, largest other logit), each [B]."""
  labels = tf.cast(labels, tf.int32)
  num_classes = tf.shape(logits)[-1]
  onehot = tf.one_hot(labels, num_classes, dtype=logits.dtype)
  true = tf.reduce_sum(onehot * logits, axis=-1)
  other = tf.reduce_max(logits - onehot * 1e9, axis=-1)
  return true, other


def cw_margin(labels, logits, confidence=50.0):
  """Carlini-Wagner margin `min(max_{j != y} z_j - z_y, confidence)` (larger = more wrong).

  Args:
    labels: int [B].
    logits: [B, K].
    confidence: kappa; the margin stops growing beyond it (Madry et al. use 50), so steps
      go to examples that are not yet misclassified with that confidence.
  """
  true, other = _true_and_best_other(labels, logits)
  return tf.minimum(other - true, confidence)


def dlr(labels, logits):
  """Difference of logits ratio (Croce & Hein, 2020), untargeted; larger = more wrong.

  `-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)` with z sorted decreasingly; invariant to
  shifting and scaling the logits, so saturated or rescaled logits do not mask it. With 2
  classes (no z_pi3) the plain margin.
  """
  true, other = _true_and_best_other(labels, logits)
  top = _top(logits, 3)
  scale = tf.where(tf.shape(logits)[-1] >= 3, top[:, 0] - top[:, 2], 1.0)
  return -(true - other) / (scale + 1e-12)


def dlr_targeted(labels, logits, targets):
  """Targeted DLR: `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`; larger = closer to `t`.

  With fewer than 4 classes (undefined in the reference) the plain margin `-(z_y - z_t)`.
  """
  labels = tf.cast(labels, tf.int32)
  true = tf.gather(logits, labels, axis=1, batch_dims=1)
  target = tf.gather(logits, tf.cast(targets, tf.int32), axis=1, batch_dims=1)
  top = _top(logits, 4)
  scale = tf.where(tf.shape(logits)[-1] >= 4, top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]), 1.0)
  return -(true - target) / (scale + 1e-12)


def _top(logits, k):
  """The `k` largest logits, decreasing, padded with the smallest for fewer classes.

  The DLR denominators need 3 (untargeted) or 4 (targeted) classes; the reference refuses
  smaller models. Here the loss falls back to the plain margin there (scale 1): APGD's
  sign or normalised steps do not depend on the loss's scale, so the attack still works.
  """
  classes = tf.shape(logits)[-1]
  top = tf.math.top_k(logits, k=tf.minimum(k, classes)).values
  last = top[:, -1:]
  return tf.concat([top, tf.repeat(last, tf.maximum(k - classes, 0), axis=1)], axis=1)


def least_likely(model_fn, x):
  """The class each image is least likely to be (argmin of the logits), int32 [B]."""
  return tf.argmin(model_fn(x), axis=-1, output_type=tf.int32)
