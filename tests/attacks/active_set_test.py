"""The active-set attacks return what their lock-step versions returned, for a fixed seed.

`tests/attacks/lockstep.py` holds frozen copies of the attacks before issue 22 (every query on
the whole batch, finished examples masked). The active-set versions run the model only on
the examples still active; an example attacked again after it finished, or an active one
dropped, changes its image, which these tests compare exactly (as far as the model gives the
same logits for a row whatever the batch around it; on this model it does, bit for bit).
Each test also checks that the batch mixes examples that finish early and late, so the
active set really shrinks.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import apgd
from tfadv.attacks import rays
from tfadv.attacks import square
from tests import testing
from tests.attacks import lockstep

EPS = 0.1
SEED = tf.constant([3, 11], tf.int64)


@pytest.fixture(scope="module")
def model_fn():
  model = testing.trained_undefended_model()
  return lambda z: model(z, training=False)


@pytest.fixture(scope="module")
def batch():
  _, _, xt, yt = testing.fashion_mnist_arrays()
  return tf.constant(xt[:48]), tf.constant(yt[:48].astype(np.int32))


def _fooled(model_fn, x_adv, y):
  return np.argmax(model_fn(x_adv).numpy(), -1) != y.numpy()


def _assert_same(new, old, model_fn, y):
  np.testing.assert_array_equal(new.numpy(), old.numpy())
  fooled = _fooled(model_fn, new, y)
  assert 0 < fooled.sum() < len(fooled), "expected a batch with fooled and robust examples"


def test_rays_matches_lockstep(model_fn, batch):
  x, y = batch
  attack = lambda f: tf.function(lambda x, y: f(model_fn, x, y, EPS, queries=300))(x, y)
  _assert_same(attack(rays.rays), attack(lockstep.rays), model_fn, y)


def _rows_queried(model_fn, attack, x, y):
  """Rows the model sees over a whole attack (summed batch sizes of its calls)."""
  total = tf.Variable(0, dtype=tf.int64)

  def counting(z):
    total.assign_add(tf.cast(tf.shape(z)[0], tf.int64))
    return model_fn(z)

  tf.function(lambda x, y: attack(counting, x, y))(x, y)
  return int(total.numpy())


def test_rays_queries_only_active_examples(model_fn, batch):
  x, y = batch
  attack = lambda f: lambda m, x, y: f(m, x, y, EPS, queries=300)
  active = _rows_queried(model_fn, attack(rays.rays), x, y)
  lock = _rows_queried(model_fn, attack(lockstep.rays), x, y)
  # Each example spends at most `queries` plus the rest of one bisection (<= 16 steps).
  assert active <= len(y) * (300 + 16)
  assert active < lock / 2


@pytest.mark.parametrize("norm,eps,rescale", [("linf", EPS, True), ("l2", 1.0, False)])
def test_square_matches_lockstep(model_fn, batch, norm, eps, rescale):
  x, y = batch
  attack = lambda f: tf.function(lambda x, y: f(
      model_fn, x, y, eps, norm, queries=150, rescale_schedule=rescale, seed=SEED))(x, y)
  _assert_same(attack(square.square), attack(lockstep.square), model_fn, y)


def test_apgd_t_matches_lockstep(model_fn, batch):
  x, y = batch
  attack = lambda f: tf.function(lambda x, y: f(
      model_fn, x, y, 0.05, steps=8, target_classes=4, seed=SEED))(x, y)
  _assert_same(attack(apgd.apgd_t), attack(lockstep.apgd_t), model_fn, y)


def _runner_up_unreachable(z):
  """Logits [0, -0.3, 10 (mean(z) - 0.8), -5, ...]: class 1 (runner-up while class 2 is
  below -0.3) cannot be reached, class 2 can, so APGD-T fools some examples only with its
  second target."""
  mean = tf.reduce_mean(z, axis=[1, 2, 3])
  const = tf.ones_like(mean)
  return tf.stack([0.0 * const, -0.3 * const, 10.0 * (mean - 0.8)] + [-5.0 * const] * 7, 1)


def test_apgd_t_attacks_later_targets_on_every_unfooled_example():
  # Mean intensities from 0.79 down to 0.3, the first two moved to the end, so that the
  # first and the last examples of the batch are fooled (an off-by-one shows).
  x = tf.roll(tf.linspace(0.79, 0.3, 48), -2, 0)[:, None, None, None] * tf.ones([1, 8, 8, 1])
  y = tf.zeros([48], tf.int32)
  attack = lambda f, targets: tf.function(lambda x, y: f(
      _runner_up_unreachable, x, y, 0.1, steps=4, target_classes=targets, seed=SEED))(x, y)
  new = attack(apgd.apgd_t, 2)
  np.testing.assert_array_equal(new.numpy(), attack(lockstep.apgd_t, 2).numpy())
  fooled = lambda x_adv: int(np.sum(np.argmax(_runner_up_unreachable(x_adv), -1) != 0))
  assert 0 < fooled(attack(lockstep.apgd_t, 1)) < fooled(new) < len(y)


def test_apgd_restarts_match_lockstep(model_fn, batch):
  x, y = batch
  attack = lambda f: tf.function(lambda x, y: f(
      model_fn, x, y, 0.05, steps=8, restarts=3, seed=SEED))(x, y)
  _assert_same(attack(apgd.apgd), attack(lockstep.apgd), model_fn, y)
