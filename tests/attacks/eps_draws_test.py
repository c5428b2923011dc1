"""Drawn training eps (Kurakin et al.'s per-example half normal, ADP_AT's per-batch uniform):
the distributions, their defaults in the defense table, and the step attacking at them."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import eps_draws
from tfadv.defenses import recipes
from tfadv.training import step as step_lib

EPS = 0.1


def _phi(z):
  return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def test_half_normal_is_kurakins_truncated_normal_scaled_to_eps():
  eps = eps_draws.draw("half_normal", EPS, tf.zeros([20000, 2, 2, 1]), tf.constant([1, 2]))
  values = eps.numpy().ravel()
  assert eps.shape == (20000, 1, 1, 1)  # one eps per example
  assert values.min() >= 0 and values.max() <= EPS + 1e-7
  # |Z| for Z ~ N(0, 1) cut at +-2, times eps / 2: Kurakin's N(0, 8) on [0, 16] at eps 16.
  mass = math.erf(2 / math.sqrt(2))
  mean = 2 * (_phi(0) - _phi(2)) / mass * EPS / 2
  assert values.mean() == pytest.approx(mean, rel=0.02)  # 0.0361; uniform would be 0.05
  above_half = (mass - math.erf(1 / math.sqrt(2))) / mass  # P(|Z| > 1 | |Z| < 2) = 0.285
  assert (values > EPS / 2).mean() == pytest.approx(above_half, abs=0.015)


def test_uniform_batch_is_one_eps_per_batch_between_a_fifth_and_eps():
  x = tf.zeros([8, 2, 2, 1])
  values = np.array([eps_draws.draw("uniform_batch", EPS, x, tf.constant([s, 7])).numpy()
                     for s in range(400)])
  assert values.shape == (400,)  # a scalar per batch
  assert values.min() >= 0.2 * EPS and values.max() <= EPS
  # ADP_AT's U(0.01, 0.05) at eps = 0.05: mean 0.03, spread over the whole interval.
  assert values.mean() == pytest.approx(0.6 * EPS, rel=0.05)
  assert values.min() < 0.25 * EPS and values.max() > 0.95 * EPS


def test_draws_are_keyed_by_the_seed_and_fixed_draws_nothing():
  x = tf.zeros([16, 2, 2, 1])
  first = eps_draws.draw("half_normal", EPS, x, tf.constant([3, 4]))
  np.testing.assert_array_equal(first, eps_draws.draw("half_normal", EPS, x,
                                                      tf.constant([3, 4])))
  assert not np.array_equal(first, eps_draws.draw("half_normal", EPS, x, tf.constant([3, 5])))
  assert eps_draws.draw("fixed", EPS, x, tf.constant([3, 4])) is None


def test_the_defense_table_draws_as_the_papers_and_the_config_overrides_it():
  build = lambda name, **kw: recipes.build(config_lib.DefenseConfig(name=name, **kw))
  assert build("stepll_at").eps_draw == "half_normal"
  assert build("adp_at").eps_draw == "uniform_batch"
  assert build("pat").eps_draw == "fixed"
  assert build("stepll_at", eps_draw="fixed").eps_draw == "fixed"
  assert build("pat", eps_draw="uniform_batch").eps_draw == "uniform_batch"
  assert recipes.settings(config_lib.DefenseConfig(name="stepll_at"))[
      "attack.eps_draw"] == "half_normal"
  with pytest.raises(ValueError, match="Invalid eps_draw: expected one of"):
    build("pat", eps_draw="gaussian")
  with pytest.raises(ValueError, match="Invalid eps_draw: a drawn eps needs a training attack "
                     "among .*attack 'trades'"):
    build("trades", eps_draw="half_normal")


def _model():
  inputs = keras.Input([6, 6, 1])
  logits = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
  return keras.Model(inputs, logits)


def _linf(recipe, seed):
  """Per-example L-inf size of the step's training perturbation (images away from the box)."""
  model = _model()
  attack_fn = step_lib.make_attack_fn(model, recipe)
  x = tf.fill([32, 6, 6, 1], 0.5)
  y = tf.constant(np.arange(32) % 4, tf.int32)
  x_adv = tf.function(attack_fn)(x, y, tf.constant([seed, 0], tf.int64), tf.constant(0))
  return tf.reduce_max(tf.abs(tf.reshape(x_adv - x, [32, -1])), axis=1).numpy()


def test_stepll_at_step_attacks_each_example_at_its_own_drawn_eps():
  config = config_lib.DefenseConfig(name="stepll_at", attack=config_lib.AttackConfig(eps=EPS))
  sizes = _linf(recipes.build(config), seed=5)
  expected = eps_draws.draw("half_normal", EPS, tf.zeros([32, 6, 6, 1]),
                            tf.constant([5, 0], tf.int64)).numpy().ravel()
  np.testing.assert_allclose(sizes, expected, atol=1e-6)  # one signed step of eps_i each
  assert sizes.std() > 0.01
  fixed = _linf(recipes.build(config_lib.DefenseConfig(
      name="stepll_at", attack=config.attack, eps_draw="fixed")), seed=5)
  np.testing.assert_allclose(fixed, EPS, atol=1e-6)


def test_pgd_with_a_batch_eps_projects_every_example_on_the_same_drawn_ball():
  attack = config_lib.AttackConfig(eps=EPS, steps=5)
  recipe = recipes.build(config_lib.DefenseConfig(name="pat", attack=attack,
                                                  eps_draw="uniform_batch"))
  sizes = [_linf(recipe, seed=s) for s in (1, 2)]
  for seed, size in zip((1, 2), sizes):
    drawn = eps_draws.draw("uniform_batch", EPS, tf.zeros([32]),
                           tf.constant([seed, 0], tf.int64)).numpy()
    # PGD's sign steps reach the ball's face: every example at the batch's eps, none beyond.
    np.testing.assert_allclose(size, drawn, atol=1e-6)
  assert abs(sizes[0][0] - sizes[1][0]) > 1e-3  # another batch, another eps


def test_the_step_size_keeps_its_ratio_to_the_drawn_eps():
  # Two BIM steps of 0.01 at eps 0.1 on a linear model move every example by 0.02; at a
  # drawn eps e they move it by 0.02 * e / 0.1 (an unscaled step would move it by 0.02).
  attack = config_lib.AttackConfig(eps=EPS, steps=2, step_size=0.01, random_start=False)
  recipe = recipes.build(config_lib.DefenseConfig(name="pat", attack=attack,
                                                  eps_draw="uniform_batch"))
  size = _linf(recipe, seed=3)
  drawn = eps_draws.draw("uniform_batch", EPS, tf.zeros([32]),
                         tf.constant([3, 0], tf.int64)).numpy()
  assert drawn < 0.9 * EPS
  np.testing.assert_allclose(size, 0.02 * drawn / EPS, atol=1e-6)
