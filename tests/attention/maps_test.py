import numpy as np
import pytest
import tensorflow as tf

from tfadv.attention import maps


def test_attention_map_matches_hand_computation():
  # One example, 2x1 spatial, 2 channels: F = sum_c |A_c|^2 = [1 + 4, 9 + 0] = [5, 9].
  features = tf.constant([[[[1.0, -2.0]], [[3.0, 0.0]]]])
  unnormalized = maps.attention_map(features, p=2, normalize=False)
  np.testing.assert_allclose(unnormalized.numpy(), [[5.0, 9.0]])
  normalized = maps.attention_map(features, p=2)
  np.testing.assert_allclose(normalized.numpy(), [[5 / np.sqrt(106), 9 / np.sqrt(106)]],
                             rtol=1e-6)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_maps_are_unit_l2(p):
  features = tf.random.stateless_normal([4, 5, 6, 7], seed=[1, 2])
  q = maps.attention_map(features, p=p)
  assert q.shape == (4, 30)
  np.testing.assert_allclose(tf.norm(q, axis=1).numpy(), np.ones(4), rtol=1e-5)
  assert np.all(q.numpy() >= 0)


def test_zero_map_stays_zero_with_finite_gradient():
  features = tf.zeros([2, 3, 3, 4])
  with tf.GradientTape() as tape:
    tape.watch(features)
    q = maps.attention_map(features)
    total = tf.reduce_sum(q)
  assert np.all(q.numpy() == 0)
  grad = tape.gradient(total, features)
  assert np.all(np.isfinite(grad.numpy()))


def test_attention_image_is_scaled_to_unit_peak():
  features = tf.random.stateless_normal([3, 4, 4, 2], seed=[3, 4])
  image = maps.attention_image(features)
  np.testing.assert_allclose(tf.reduce_max(image, axis=[1, 2]).numpy(), np.ones(3), rtol=1e-6)
