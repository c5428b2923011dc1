"""Tests of tfadv/losses/adp.py on hand-made member outputs."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.losses import adp
from tfadv.losses import forward as forward_lib


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _logits_of(probs):
  """Logits whose softmax is `probs` (rows sum to one)."""
  return tf.constant(np.log(probs), tf.float64)


def test_members_cross_entropy_is_the_sum_over_members():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(2, 3, 4))
  y = np.array([1, 3])
  want = -np.log(_softmax(z)[np.arange(2)[:, None], np.arange(3)[None, :], y[:, None]])
  np.testing.assert_allclose(adp.members_cross_entropy(tf.constant(z), y).numpy(),
                             want.sum(1), rtol=1e-10)


def test_ensemble_entropy_of_the_mean_prediction():
  # Two confident members disagreeing: each has low entropy, their mean has log 2.
  probs = np.array([[[1 - 1e-9, 1e-9 / 2, 1e-9 / 2], [1e-9 / 2, 1 - 1e-9, 1e-9 / 2]]])
  got = adp.ensemble_entropy(_logits_of(probs)).numpy()
  np.testing.assert_allclose(got, [np.log(2)], rtol=1e-6)
  # Uniform members: log K.
  np.testing.assert_allclose(adp.ensemble_entropy(tf.zeros((1, 3, 5), tf.float64)).numpy(),
                             [np.log(5)], rtol=1e-10)


def test_non_maximal_predictions_drop_the_label_and_normalise():
  probs = np.array([[[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]])
  rest = adp.non_maximal_predictions(_logits_of(probs), np.array([1])).numpy()
  want = np.array([[0.5, 0.2], [0.1, 0.3]])
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  np.testing.assert_allclose(rest[0], want, rtol=1e-10)


def test_log_det_orthogonal_members_give_the_maximum():
  # Label 0; members put their non-label mass on disjoint classes -> orthogonal rows.
  eps = 1e-6
  probs = np.full((1, 3, 4), eps)
  probs[0, :, 0] = 0.5
  for m in range(3):
    probs[0, m, m + 1] = 0.5 - 2 * eps
  got = adp.log_det_diversity(_logits_of(probs), np.array([0])).numpy()
  np.testing.assert_allclose(got, [3 * np.log(1 + adp.LOG_DET_OFFSET)], atol=1e-4)


def test_log_det_identical_members_give_the_minimum():
  rng = np.random.default_rng(1)
  z = np.repeat(rng.normal(size=(2, 1, 5)), 3, axis=1)  # three identical members
  delta = adp.LOG_DET_OFFSET
  want = np.log(3 + delta) + 2 * np.log(delta)
  got = adp.log_det_diversity(tf.constant(z), np.array([0, 4])).numpy()
  np.testing.assert_allclose(got, [want, want], rtol=1e-6)
  # Any diverse ensemble lies strictly between the two extremes.
  diverse = adp.log_det_diversity(tf.constant(rng.normal(size=(2, 3, 5))),
                                  np.array([0, 4])).numpy()
  assert np.all(diverse > want) and np.all(diverse < 3 * np.log(1 + delta) + 1e-9)


def test_adp_loss_combines_with_the_paper_signs_and_defaults():
  rng = np.random.default_rng(2)
  z = tf.constant(rng.normal(size=(3, 3, 4)))
  y = np.array([0, 1, 3])
  ce = adp.members_cross_entropy(z, y)
  h = adp.ensemble_entropy(z)
  ld = adp.log_det_diversity(z, y)
  np.testing.assert_allclose(adp.adp_loss(z, y).numpy(), (ce - 2.0 * h - 0.5 * ld).numpy(),
                             rtol=1e-10)
  np.testing.assert_allclose(adp.adp_loss(z, y, alpha=0.0, beta=0.0).numpy(), ce.numpy())


def test_terms_read_members_of_the_chosen_pass():
  rng = np.random.default_rng(3)
  clean = tf.constant(rng.normal(size=(2, 3, 4)))
  adv = tf.constant(rng.normal(size=(2, 3, 4)))
  y = tf.constant([2, 0])
  fwd = forward_lib.Forward(labels=y, clean={"members": clean}, adv={"members": adv})
  np.testing.assert_allclose(adp.ensemble_entropy_term(fwd).numpy(),
                             -adp.ensemble_entropy(clean).numpy())
  np.testing.assert_allclose(adp.log_det_term(fwd, which="adv").numpy(),
                             -adp.log_det_diversity(adv, y).numpy())
  np.testing.assert_allclose(adp.members_ce_term(fwd, which="adv").numpy(),
                             adp.members_cross_entropy(adv, y).numpy())
  np.testing.assert_allclose(adp.adp_term(fwd, which="adv").numpy(),
                             adp.adp_loss(adv, y).numpy())
  with pytest.raises(ValueError, match="members"):
    adp.adp_term(forward_lib.Forward(labels=y, clean={"logits": clean[:, 0]}))
  with pytest.raises(ValueError, match="which"):
    adp.adp_term(fwd, which="both")


def test_gradient_of_log_det_term_pushes_members_apart():
  z = tf.Variable(np.array([[[0.0, 1.0, 0.5, 0.2], [0.0, 0.9, 0.6, 0.1]]]))
  y = tf.constant([0])
  before = float(adp.log_det_diversity(z, y)[0])
  for _ in range(20):
    with tf.GradientTape() as tape:
      loss = -adp.log_det_diversity(z, y)[0]
    z.assign_sub(0.5 * tape.gradient(loss, z))
  assert float(adp.log_det_diversity(z, y)[0]) > before + 1.0


def test_adversarial_terms_read_the_adversarial_pass_only():
  from tfadv.losses import registry  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  clean, adv = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
  y = tf.constant([0, 2])
  forward = forward_lib.Forward(labels=y, clean={adp.MEMBERS: tf.constant(clean)},
                                adv={adp.MEMBERS: tf.constant(adv)})
  for name, fn in (("adp_ce", adp.members_cross_entropy),
                   ("adp_entropy", lambda z, y: -adp.ensemble_entropy(z)),
                   ("adp_log_det", lambda z, y: -adp.log_det_diversity(z, y))):
    on_adv = registry.get(name + "_adv")
    assert on_adv.needs == frozenset({"adv", "members"})
    got = on_adv.bind(registry.resolve_options(name + "_adv", {}))(forward).numpy()
    np.testing.assert_allclose(got, fn(tf.constant(adv), y).numpy(), rtol=1e-6)
    assert not np.allclose(got, fn(tf.constant(clean), y).numpy())
