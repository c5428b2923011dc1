"""ALP and AT loss terms: closed forms, zero on identical pairs, finite gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.losses import attention_pairing
from tfadv.losses import cross_entropy
from tfadv.losses import forward
from tfadv.losses import logit_pairing


def test_logit_pairing_matches_hand_computation():
  clean = tf.constant([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  adv = tf.constant([[1.0, 0.0, 4.0], [1.0, -1.0, 2.0]])
  # (0 + 4 + 1) and (1 + 1 + 4)
  np.testing.assert_allclose(logit_pairing.logit_pairing(clean, adv).numpy(), [5.0, 6.0])


def test_logit_pairing_is_zero_for_identical_pairs():
  logits = tf.random.stateless_normal([8, 10], seed=[1, 1])
  assert np.all(logit_pairing.logit_pairing(logits, logits).numpy() == 0.0)


def test_attention_pairing_matches_hand_computation():
  # One stage, 1x2 spatial, 1 channel. Clean A = [3, 4] -> F = [9, 16] -> /||.|| = [9, 16]/337^.5
  # Adv A = [1, 0] -> F = [1, 0] -> [1, 0]. L_AT = ||[1, 0] - [9, 16]/sqrt(337)||_2.
  clean = tf.constant([[[[3.0], [4.0]]]])
  adv = tf.constant([[[[1.0], [0.0]]]])
  q = np.array([9.0, 16.0]) / np.sqrt(337.0)
  expected = np.linalg.norm(np.array([1.0, 0.0]) - q)
  value = attention_pairing.attention_pairing([clean], [adv], p=2)
  np.testing.assert_allclose(value.numpy(), [expected], rtol=1e-6)
  # Two stages add up.
  twice = attention_pairing.attention_pairing([clean, clean], [adv, adv], p=2)
  np.testing.assert_allclose(twice.numpy(), [2 * expected], rtol=1e-6)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_pairing_is_zero_with_finite_gradient_for_identical_pairs(p):
  taps = [tf.random.stateless_normal([4, 6, 6, 3], seed=[2, i]) for i in range(4)]
  with tf.GradientTape() as tape:
    tape.watch(taps)
    value = attention_pairing.attention_pairing(taps, taps, p=p)
    total = tf.reduce_sum(value)
  assert np.all(value.numpy() == 0.0)
  for grad in tape.gradient(total, taps):
    assert np.all(np.isfinite(grad.numpy()))


def test_attention_pairing_is_scale_invariant():
  tap = tf.random.stateless_normal([2, 5, 5, 3], seed=[3, 3])
  value = attention_pairing.attention_pairing([tap], [3.0 * tap], p=2)
  np.testing.assert_allclose(value.numpy(), [0.0, 0.0], atol=1e-6)


def test_attention_pairing_rejects_mismatched_taps():
  tap = tf.zeros([1, 2, 2, 1])
  with pytest.raises(ValueError, match="same non-zero number"):
    attention_pairing.attention_pairing([tap], [tap, tap])


def test_terms_read_forward_records_and_name_what_is_missing():
  labels = tf.constant([0, 1])
  logits = tf.constant([[2.0, 0.0], [0.0, 2.0]])
  taps = tuple(tf.ones([2, 2, 2, 1]) for _ in range(4))
  out = {"logits": logits, "taps": taps, "gradcam": taps[-1]}
  record = forward.Forward(labels=labels, clean=out, adv=out)
  expected_ce = -np.log(np.exp(2.0) / (np.exp(2.0) + 1.0))
  np.testing.assert_allclose(cross_entropy.clean_cross_entropy(record).numpy(),
                             [expected_ce] * 2, rtol=1e-6)
  np.testing.assert_allclose(logit_pairing.logit_pairing_term(record).numpy(), [0.0, 0.0])
  np.testing.assert_allclose(attention_pairing.make_term((0, 3), 2.0)(record).numpy(),
                             [0.0, 0.0])
  with pytest.raises(ValueError, match="'alp' needs the adv forward pass"):
    logit_pairing.logit_pairing_term(forward.Forward(labels=labels, clean=out))


def test_at_term_on_the_joint_batch_equals_the_two_passes_with_the_same_gradient():
  joint = [tf.random.stateless_normal([6, s, s, c], seed=[4, i])
           for i, (s, c) in enumerate([(6, 3), (3, 5), (3, 2), (1, 4)])]
  clean = {"taps": tuple(t[:3] for t in joint)}
  adv = {"taps": tuple(t[3:] for t in joint)}
  term = attention_pairing.make_term((0, 1, 3), 2.0)
  labels = tf.constant([0, 1, 2])

  def value_and_grads(use_joint):
    with tf.GradientTape() as tape:
      tape.watch(joint)
      # The record's halves are slices of `joint` (the defense's forward splits it the same).
      halves = forward.Forward(labels=labels, clean={"taps": tuple(t[:3] for t in joint)},
                               adv={"taps": tuple(t[3:] for t in joint)},
                               joint={"taps": tuple(joint)} if use_joint else None)
      value = term(halves)
      weighted = tf.reduce_sum(value * tf.constant([1.0, 2.0, 3.0]))
    return value.numpy(), [g if g is None else g.numpy() for g in tape.gradient(weighted, joint)]

  split_value, split_grads = value_and_grads(use_joint=False)
  joint_value, joint_grads = value_and_grads(use_joint=True)
  np.testing.assert_allclose(joint_value, split_value, rtol=1e-6)
  np.testing.assert_allclose(
      split_value, attention_pairing.attention_pairing(
          [clean["taps"][i] for i in (0, 1, 3)], [adv["taps"][i] for i in (0, 1, 3)]).numpy(),
      rtol=1e-6)
  assert split_value.min() > 0  # different halves: a term that returned 0 would fail above
  for a, b in zip(split_grads, joint_grads):
    if a is None:  # tap 2 is not chosen
      assert b is None
    else:
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
