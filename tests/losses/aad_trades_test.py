"""Rectification, preservation and TRADES-KL terms: closed forms and limiting cases."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.losses import forward
from tfadv.losses import preservation
from tfadv.losses import rectification
from tfadv.losses import trades

LOG3 = float(np.log(3.0))


def test_softmax_distance_matches_hand_computation():
  # softmax([0, 0]) = [.5, .5]; softmax([log 3, 0]) = [.75, .25]; l2 = .25 * sqrt(2).
  d = rectification.softmax_distance(tf.constant([[0.0, 0.0]]), tf.constant([[LOG3, 0.0]]))
  np.testing.assert_allclose(d.numpy(), [0.25 * np.sqrt(2.0)], rtol=1e-6)


def test_rectification_adds_both_distances_with_a_minus_sign():
  zero = tf.constant([[0.0, 0.0]])
  shifted = tf.constant([[LOG3, 0.0]])
  value = rectification.rectification(zero, shifted, zero, zero)
  np.testing.assert_allclose(value.numpy(), [-0.25 * np.sqrt(2.0)], rtol=1e-6)
  value = rectification.rectification(zero, shifted, shifted, zero)
  np.testing.assert_allclose(value.numpy(), [-0.5 * np.sqrt(2.0)], rtol=1e-6)


def test_rectification_decreases_as_the_masked_prediction_moves_away():
  clean = tf.constant([[2.0, 0.0, -1.0]])
  adv = tf.constant([[0.5, 0.3, 0.0]])
  away = tf.constant([[-1.0, 1.0, 0.5]])
  values = [float(rectification.rectification(clean, clean + t * away, adv, adv)[0])
            for t in np.linspace(0.0, 20.0, 21)]
  assert values[0] == 0.0  # masked prediction equal to the full one: nothing to rectify
  assert all(b < a for a, b in zip(values, values[1:]))
  assert values[-1] >= -2.0 * np.sqrt(2.0)  # bounded: softmax outputs are in the simplex


def test_rectification_is_bounded_for_any_logits():
  logits = 1e4 * tf.random.stateless_normal([64, 10], seed=[1, 2])
  other = 1e4 * tf.random.stateless_normal([64, 10], seed=[3, 4])
  value = rectification.rectification(logits, other, other, logits).numpy()
  assert np.all(np.isfinite(value))
  assert np.all(value >= -2.0 * np.sqrt(2.0) - 1e-6) and np.all(value <= 0.0)


def test_rectification_has_a_finite_gradient_at_identical_predictions():
  logits = tf.random.stateless_normal([4, 5], seed=[5, 6])
  with tf.GradientTape() as tape:
    tape.watch(logits)
    total = tf.reduce_sum(rectification.rectification(logits, logits, logits, logits))
  assert np.all(np.isfinite(tape.gradient(total, logits).numpy()))


def test_preservation_matches_hand_computation():
  clean = tf.constant([[[1.0, 1.0], [0.0, 0.0]]])
  adv = tf.constant([[[0.0, 2.0], [2.0, 0.0]]])
  # Raw maps (the paper's eq. 9): |1-0| + |1-2| + |0-2| + 0 = 4.
  np.testing.assert_allclose(preservation.preservation(clean, adv).numpy(), [4.0], rtol=1e-6)
  # Unit-sum maps [.5, .5, 0, 0] and [0, .5, .5, 0]: l1 distance 1.
  np.testing.assert_allclose(preservation.preservation(clean, adv, "unit_sum").numpy(),
                             [1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="Invalid normalize"):
    preservation.preservation(clean, adv, "max")


def test_preservation_is_zero_for_identical_or_rescaled_maps():
  cam = tf.random.stateless_uniform([3, 7, 7], seed=[7, 8])
  assert np.all(preservation.preservation(cam, cam).numpy() == 0.0)
  # Rescaling changes the raw maps' distance (3 * sum), not the unit-sum one.
  np.testing.assert_allclose(preservation.preservation(cam, 4.0 * cam).numpy(),
                             3.0 * tf.reduce_sum(cam, axis=[1, 2]).numpy(), rtol=1e-5)
  np.testing.assert_allclose(preservation.preservation(cam, 4.0 * cam, "unit_sum").numpy(),
                             0.0, atol=1e-6)


def test_preservation_is_bounded_and_finite_for_zero_maps():
  cam = tf.random.stateless_uniform([2, 3, 3], seed=[9, 9])
  zero = tf.zeros([2, 3, 3])
  with tf.GradientTape() as tape:
    tape.watch(zero)
    value = preservation.preservation(cam, zero, "unit_sum")
  np.testing.assert_allclose(value.numpy(), [1.0, 1.0], rtol=1e-6)  # a distribution vs 0
  assert np.all(np.isfinite(tape.gradient(value, zero).numpy()))
  disjoint = preservation.preservation(tf.constant([[[1.0, 0.0]]]), tf.constant([[[0.0, 1.0]]]),
                                       "unit_sum")
  np.testing.assert_allclose(disjoint.numpy(), [2.0])  # the maximum


def test_trades_kl_matches_hand_computation():
  # KL([.5, .5] || [.75, .25]) = .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3).
  kl = trades.kl_divergence(tf.constant([[0.0, 0.0]]), tf.constant([[LOG3, 0.0]]))
  np.testing.assert_allclose(kl.numpy(), [0.5 * np.log(4.0 / 3.0)], rtol=1e-6)


def test_trades_kl_is_zero_when_outputs_coincide():
  logits = tf.random.stateless_normal([8, 10], seed=[1, 1])
  np.testing.assert_allclose(trades.kl_divergence(logits, logits).numpy(), 0.0, atol=1e-6)
  # Softmax is shift-invariant: logits differing by a constant give the same outputs.
  np.testing.assert_allclose(trades.kl_divergence(logits, logits + 5.0).numpy(), 0.0,
                             atol=1e-5)


def test_trades_kl_is_finite_and_non_negative_for_saturated_outputs():
  logits = 500.0 * tf.random.stateless_normal([16, 10], seed=[2, 2])
  other = 500.0 * tf.random.stateless_normal([16, 10], seed=[3, 3])
  kl = trades.kl_divergence(logits, other).numpy()
  assert np.all(np.isfinite(kl)) and np.all(kl >= -1e-6)  # 0 up to float rounding


def test_terms_name_the_missing_inputs():
  logits = tf.zeros([1, 3])
  record = forward.Forward(labels=tf.zeros([1], tf.int32), clean={"logits": logits},
                           adv={"logits": logits})
  with pytest.raises(ValueError, match="rectification.*masked"):
    rectification.rectification_term(record)
  with pytest.raises(ValueError, match="preservation.*Grad-CAM"):
    preservation.preservation_term(record)
  with pytest.raises(ValueError, match="trades_kl.*adv"):
    trades.kl_term(forward.Forward(labels=tf.zeros([1], tf.int32), clean={"logits": logits}))
