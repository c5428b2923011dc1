"""AutoAttack and its parts on an adversarially trained model; RayS/Square never differentiate."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import apgd
from tfadv.attacks import autoattack
from tfadv.attacks import pgd
from tfadv.attacks import rays
from tfadv.attacks import square
from tests import testing

SEED = tf.constant([5, 6], tf.int64)


@pytest.fixture(scope="module")
def defended():
  model = testing.trained_defended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  return (lambda z: model(z, training=False)), tf.constant(xt[:256]), tf.constant(yt[:256])


def _accuracy(model_fn, x, y):
  return float(np.mean(np.argmax(model_fn(x).numpy(), -1) == y.numpy()))


def test_apgd_ce_at_least_as_strong_as_pgd_with_the_same_steps(defended):
  model_fn, x, y = defended
  attack_pgd = tf.function(lambda x, y: pgd.pgd(model_fn, x, y, 0.1, steps=10, seed=SEED))
  attack_apgd = tf.function(lambda x, y: apgd.apgd(model_fn, x, y, 0.1, steps=10, seed=SEED))
  acc_pgd = _accuracy(model_fn, attack_pgd(x, y), y)
  acc_apgd = _accuracy(model_fn, attack_apgd(x, y), y)
  print(f"defended model, eps=0.1, 10 steps: PGD {acc_pgd:.3f}, APGD-CE {acc_apgd:.3f}")
  assert acc_apgd <= acc_pgd + 1 / 256


@pytest.mark.slow
def test_autoattack_no_weaker_than_any_part(defended):
  model_fn, x, y = defended
  x, y = x[:64], y[:64]
  options = dict(steps=5, queries=100, seed=SEED)
  full = tf.function(lambda x, y: autoattack.autoattack(model_fn, x, y, 0.1, **options))
  acc = {"autoattack": _accuracy(model_fn, full(x, y), y)}
  for part in autoattack.VERSIONS["standard"].split("+"):
    alone = tf.function(lambda x, y, part=part: autoattack.autoattack(
        model_fn, x, y, 0.1, parts=part, **options))
    acc[part] = _accuracy(model_fn, alone(x, y), y)
  print("defended model, eps=0.1:", acc)
  # APGD-CE runs first on the same points with the same seed: the ensemble can only add.
  assert acc["autoattack"] <= acc["apgd_ce"]
  assert acc["autoattack"] <= min(acc.values()) + 1 / 64
  assert acc["autoattack"] < _accuracy(model_fn, x, y)


def _gradient_trap(model):
  """The model, but asking for any input gradient raises."""

  @tf.custom_gradient
  def guarded(z):
    def grad(upstream):
      raise RuntimeError("the gradient was requested")
    return tf.identity(z), grad

  return lambda z: model(guarded(z), training=False)


def test_rays_and_square_never_call_the_gradient():
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  x, y = tf.constant(xt[:8]), tf.constant(yt[:8])
  trapped = _gradient_trap(model)
  with pytest.raises(RuntimeError, match="gradient was requested"):
    pgd.pgd(trapped, x, y, 0.1, steps=1)  # The trap works...
  # ... and the gradient-free attacks run through it, eagerly and in graph mode.
  x_rays = tf.function(lambda x, y: rays.rays(trapped, x, y, 0.1, queries=200))(x, y)
  x_square = square.square(trapped, x, y, 0.1, queries=30)
  for x_adv in (x_rays, x_square):
    assert float(tf.reduce_max(tf.abs(x_adv - x))) <= 0.1 + 1e-6
  assert _accuracy(trapped, x_rays, y) < _accuracy(trapped, x, y)


def test_rays_uses_only_the_predicted_class():
  # Rescaling the logits (an exact power of two: the same argmax, bit for bit) changes the
  # scores every score-based attack sees, and nothing RayS does.
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  x, y = tf.constant(xt[:8]), tf.constant(yt[:8])
  a = rays.rays(lambda z: model(z, training=False), x, y, 0.1, queries=100)
  b = rays.rays(lambda z: 64.0 * model(z, training=False), x, y, 0.1, queries=100)
  np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_autoattack_rejects_unknown_parts():
  with pytest.raises(ValueError, match="parts"):
    autoattack.autoattack(None, tf.zeros([1, 4, 4, 1]), tf.zeros([1], tf.int32), 0.1,
                          parts="apgd_ce+fab")
