"""The TRADES inner maximisation: budget, box, replayable seeds, and it raises the KL."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.attacks import trades
from tfadv.losses import trades as trades_loss
from tests import testing


@pytest.fixture(scope="module")
def model():
  return testing.trained_undefended_model()


@pytest.fixture(scope="module")
def batch():
  _, _, xt, yt = testing.fashion_mnist_arrays()
  return tf.constant(xt[:128]), tf.constant(yt[:128])


def _mean_kl(model, x, x_adv):
  return float(tf.reduce_mean(trades_loss.kl_divergence(model(x), model(x_adv))))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.5)])
def test_stays_in_ball_and_box_and_raises_the_kl(model, batch, norm, eps):
  x, _ = batch
  x_adv = trades.trades(model, x, eps=eps, steps=5, norm=norm, seed=tf.constant([1, 2]))
  flat = tf.reshape(x_adv - x, [x.shape[0], -1])
  size = (tf.reduce_max(tf.abs(flat), axis=1) if norm == "linf" else tf.norm(flat, axis=1))
  assert np.all(size.numpy() <= eps * (1 + 1e-5) + 1e-6)
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
  # The maximised KL beats the KL of a random point of the same ball by far.
  noise = tf.random.stateless_uniform(x.shape, [3, 4], -eps, eps) if norm == "linf" else None
  if noise is not None:
    assert _mean_kl(model, x, x_adv) > 5.0 * _mean_kl(model, x, tf.clip_by_value(x + noise, 0, 1))
  assert _mean_kl(model, x, x_adv) > 0.1


def test_eps_zero_returns_x(model, batch):
  x, _ = batch
  np.testing.assert_array_equal(trades.trades(model, x, eps=0.0).numpy(), x.numpy())


def test_registry_binds_the_config_and_seed_replays_in_tf_function(model, batch):
  x, y = batch
  config = config_lib.AttackConfig(name="trades", eps=0.1, steps=3)
  attack = tf.function(lambda seed: registry.from_config(config, seed=seed)(model, x, y))
  first = attack(tf.constant([5, 6], tf.int64)).numpy()
  np.testing.assert_array_equal(first, attack(tf.constant([5, 6], tf.int64)).numpy())
  assert not np.array_equal(first, attack(tf.constant([5, 7], tf.int64)).numpy())
  assert registry.get("trades") is trades.trades
