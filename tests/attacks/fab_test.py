"""FAB-T: the L-inf hyperplane projection (L2: reference_test.py), budget, box, eps = 0, strength."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import fab
from tests import testing


def _reach(p, w, radius):
  """Largest w . d with |d|_inf <= radius and p + d in [0, 1] (brute force, per row)."""
  lo = np.maximum(-radius, -p)
  hi = np.minimum(radius, 1.0 - p)
  return np.sum(np.where(w > 0, w * hi, w * lo), axis=1)


def test_projection_is_the_smallest_linf_step_onto_the_hyperplane_in_the_box():
  rng = np.random.default_rng(0)
  p = rng.uniform(0, 1, (64, 50)).astype(np.float32)
  w = rng.normal(size=(64, 50)).astype(np.float32)
  w[:, :5] = 0.0  # coordinates that do not matter must not move
  b = (np.sum(w * p, 1) + rng.normal(size=64) * 2.0).astype(np.float32)
  b[0] = np.sum(w[0] * p[0])  # already on the hyperplane
  b[1] = np.sum(w[1] * p[1]) + 1e3  # out of reach inside the box
  d = fab.project_linf_hyperplane(tf.constant(p), tf.constant(w), tf.constant(b)).numpy()
  z = p + d
  assert z.min() >= 0.0 and z.max() <= 1.0
  np.testing.assert_array_equal(d[:, :5], 0.0)
  np.testing.assert_allclose(d[0], 0.0, atol=1e-6)  # float rounding of w . p
  # Out of reach: as far as the box allows, towards the hyperplane.
  np.testing.assert_allclose(d[1], np.where(w[1] > 0, 1 - p[1], np.where(w[1] < 0, -p[1], 0)),
                             atol=1e-6)
  radius = np.abs(d).max(axis=1)
  sign = np.sign(b - np.sum(w * p, 1))
  for i in range(2, 64):
    # On the hyperplane, and no smaller radius gets there.
    np.testing.assert_allclose(np.dot(w[i], z[i]), b[i], atol=1e-3)
    short = _reach(p[i:i + 1], sign[i] * w[i:i + 1], radius[i] * (1 - 1e-3))[0]
    assert short < abs(b[i] - np.dot(w[i], p[i]))


@pytest.fixture(scope="module")
def undefended():
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  return (lambda z: model(z, training=False)), tf.constant(xt[:64]), tf.constant(yt[:64])


def test_in_ball_and_box_deterministic_and_eps_zero(undefended):
  model_fn, x, y = undefended
  attack = tf.function(lambda x, y, eps: fab.fab_t(model_fn, x, y, eps, steps=10,
                                                   target_classes=2))
  a = attack(x, y, 0.05)
  assert float(tf.reduce_max(tf.abs(a - x))) <= 0.05 + 1e-6
  assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 1.0
  np.testing.assert_array_equal(a.numpy(), attack(x, y, 0.05).numpy())  # no random start
  # Changed examples are exactly the ones it broke; the rest come back untouched.
  changed = np.any(a.numpy() != x.numpy(), axis=(1, 2, 3))
  fooled = np.argmax(model_fn(a).numpy(), -1) != y.numpy()
  assert changed.any()
  np.testing.assert_array_equal(changed, fooled & (np.argmax(model_fn(x).numpy(), -1)
                                                   == y.numpy()))
  np.testing.assert_array_equal(fab.fab_t(model_fn, x, y, 0.0).numpy(), x.numpy())
  with pytest.raises(ValueError, match="norm"):
    fab.fab_t(model_fn, x, y, 0.5, norm="l1")  # L-inf and L2 only.


def test_finds_small_perturbations(undefended):
  # A minimum-norm attack: with a generous budget the broken examples need far less.
  model_fn, x, y = undefended
  a = fab.fab_t(model_fn, x, y, 0.3, steps=20, target_classes=3)
  delta = np.abs(a.numpy() - x.numpy()).reshape(len(y), -1).max(axis=1)
  broken = delta > 0
  print("FAB-T L-inf norms of broken examples:", np.percentile(delta[broken], [10, 50, 90]))
  assert broken.mean() > 0.6
  assert np.median(delta[broken]) < 0.1


def test_lowers_accuracy_of_the_defended_model():
  model = testing.trained_defended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  x, y = tf.constant(xt[:128]), tf.constant(yt[:128])
  model_fn = lambda z: model(z, training=False)
  attack = tf.function(lambda x, y: fab.fab_t(model_fn, x, y, 0.1, steps=20,
                                              target_classes=3))
  clean = testing.accuracy(model, x, y)
  adv = testing.accuracy(model, attack(x, y), y)
  print(f"defended model, eps=0.1: clean {clean:.3f}, FAB-T {adv:.3f}")
  assert adv < clean - 0.1
