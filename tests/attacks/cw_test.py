"""CW-L2 against a case with a known answer, and CW-L-inf's margin objective."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import cw
from tfadv.attacks import objectives


def _linear_model(w, b):
  """Two-class linear model on 4x4 images: logits = [x . w + b, 0]."""
  inputs = keras.Input((4, 4, 1))
  flat = keras.layers.Flatten()(inputs)
  dense = keras.layers.Dense(2)
  model = keras.Model(inputs, dense(flat))
  kernel = np.zeros((16, 2), np.float32)
  kernel[:, 0] = w
  dense.set_weights([kernel, np.array([b, 0.0], np.float32)])
  return model


def test_cw_l2_finds_the_closed_form_minimal_perturbation():
  # For logits [w.x + b, 0] and label 0, the smallest L2 change that flips the decision is
  # (w.x + b) / ||w|| along -w (the box stays inactive for these small distances).
  rng = np.random.RandomState(0)
  w = rng.randn(16).astype(np.float32)
  model = _linear_model(w, -0.5 * np.sum(w))  # The grey image 0.5 is on the boundary.
  unit = w / np.linalg.norm(w)
  minimal = np.array([0.05, 0.1, 0.2], np.float32)
  x = (0.5 + minimal[:, None] * unit[None]).reshape(3, 4, 4, 1)
  x = x.astype(np.float32)
  assert 0.0 < x.min() and x.max() < 1.0
  y = tf.zeros([3], tf.int32)
  attack = tf.function(lambda x, y: cw.cw_l2(
      lambda z: model(z, training=False), x, y, binary_search_steps=9, max_iterations=500,
      learning_rate=1e-2))
  x_adv = attack(tf.constant(x), y)
  dist = np.linalg.norm((x_adv.numpy() - x).reshape(3, -1), axis=1)
  pred = np.argmax(model(x_adv).numpy(), axis=1)
  print("minimal", minimal, "found", dist)
  np.testing.assert_array_equal(pred, [1, 1, 1])
  assert np.all(dist >= minimal * (1 - 1e-3))
  assert np.all(dist <= minimal * 1.01)  # Measured within 0.1%.
  # Within a budget smaller than the minimal distance the attack must fail (x unchanged).
  budget = 0.09
  kept = tf.function(lambda x, y: cw.cw_l2(
      lambda z: model(z, training=False), x, y, eps=budget, binary_search_steps=5,
      max_iterations=200, learning_rate=1e-2))(tf.constant(x), y).numpy()
  np.testing.assert_array_equal(kept[1:], x[1:])  # Needs 0.1 and 0.2 > budget.
  assert np.linalg.norm(kept[0] - x[0]) <= budget + 1e-6


def test_cw_l2_confidence_requires_a_margin():
  w = np.random.RandomState(1).randn(16).astype(np.float32)
  model = _linear_model(w, 0.0)
  x = np.full((1, 4, 4, 1), 0.5, np.float32) + 0.05 * w.reshape(1, 4, 4, 1) / np.linalg.norm(w)
  x_adv = cw.cw_l2(lambda z: model(z, training=False), x, tf.zeros([1], tf.int32),
                   confidence=2.0, binary_search_steps=6, max_iterations=300,
                   learning_rate=1e-2)
  logits = model(x_adv).numpy()[0]
  assert logits[1] - logits[0] >= 2.0 - 1e-3


def test_cw_l2_rejects_linf():
  with pytest.raises(ValueError, match="norm"):
    cw.cw_l2(None, tf.zeros([1, 4, 4, 1]), tf.zeros([1], tf.int32), norm="linf")


def test_cw_margin_is_capped_and_signed():
  logits = tf.constant([[3.0, 1.0, 0.0], [0.0, 100.0, 0.0]])
  margin = objectives.cw_margin(tf.constant([0, 0]), logits, confidence=50.0).numpy()
  np.testing.assert_allclose(margin, [-2.0, 50.0])
