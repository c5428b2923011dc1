"""Tests of the attacks' shared pieces: the step loop (unrolled or a graph loop)."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import common
from tfadv.attacks import pgd
from tfadv.attacks import trades


@pytest.mark.parametrize("steps", [0, 1, common.UNROLL_MAX_STEPS,
                                   common.UNROLL_MAX_STEPS + 1, 3 * common.UNROLL_MAX_STEPS])
def test_iterate_applies_the_step_exactly_steps_times(steps):
  # A non-commuting step (x -> 2x + 1 gives 2^n - 1 from 0) catches an off-by-one on
  # either side of the unrolling threshold.
  run = tf.function(lambda x: common.iterate(lambda z: 2.0 * z + 1.0, x, steps))
  out = run(tf.zeros([2, 3], tf.float64)).numpy()
  np.testing.assert_array_equal(out, np.full([2, 3], 2.0 ** steps - 1.0))


def test_iterate_keeps_the_static_shape_in_both_forms():
  for steps in (2, common.UNROLL_MAX_STEPS + 2):
    @tf.function
    def run(x, steps=steps):
      out = common.iterate(lambda z: tf.reshape(z + 1.0, [-1, 4]), x, steps)
      assert out.shape.as_list() == [3, 4], out.shape
      return out
    run(tf.zeros([3, 4]))


def _tiny_model():
  tf.keras.utils.set_random_seed(0)
  model = tf.keras.Sequential([
      tf.keras.Input([8, 8, 1]),
      tf.keras.layers.Conv2D(4, 3, activation="relu"),
      tf.keras.layers.MaxPooling2D(),
      tf.keras.layers.Flatten(),
      tf.keras.layers.Dense(3),
  ])
  return lambda z: model(z, training=False)


@pytest.mark.parametrize("attack", ["pgd", "trades"])
def test_unrolled_and_graph_loop_attacks_agree(attack, monkeypatch):
  model_fn = _tiny_model()
  rng = np.random.default_rng(0)
  x = tf.constant(rng.uniform(size=[16, 8, 8, 1]), tf.float32)
  y = tf.constant(rng.integers(0, 3, size=[16]), tf.int32)
  seed = tf.constant([3, 4], tf.int64)

  def run():
    if attack == "pgd":
      return tf.function(lambda: pgd.pgd(model_fn, x, y, 0.1, steps=7, seed=seed))()
    return tf.function(lambda: trades.trades(model_fn, x, eps=0.1, steps=7, seed=seed))()

  unrolled = run().numpy()
  monkeypatch.setattr(common, "UNROLL_MAX_STEPS", 0)
  looped = run().numpy()
  np.testing.assert_allclose(unrolled, looped, atol=1e-6)
  # Both moved: a loop that ran no step would agree with the other only by accident.
  assert np.abs(unrolled - x.numpy()).max() > 0.05
