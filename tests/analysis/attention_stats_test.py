"""Attention IoU, top-fraction masks and key-region activation: closed forms and a real model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.analysis import attention_stats
from tfadv.models import taps as taps_lib
from tests import testing


def test_top_fraction_mask_keeps_the_most_attended_pixels():
  attention = tf.constant([[[0.1, 0.9], [0.5, 0.3]]])
  np.testing.assert_array_equal(attention_stats.top_fraction_mask(attention, 0.5)[0],
                                [[0, 1], [1, 0]])
  np.testing.assert_array_equal(attention_stats.top_fraction_mask(attention, 0.25)[0],
                                [[0, 1], [0, 0]])
  with pytest.raises(ValueError, match="Invalid fraction"):
    attention_stats.top_fraction_mask(attention, 0.0)


def test_iou_closed_forms():
  a = tf.constant([[[1.0, 1.0], [0.0, 0.0]]])
  b = tf.constant([[[0.0, 1.0], [1.0, 0.0]]])
  np.testing.assert_allclose(attention_stats.iou(a, a), [1.0])
  np.testing.assert_allclose(attention_stats.iou(a, b), [1.0 / 3.0])
  np.testing.assert_allclose(attention_stats.iou(a, 1.0 - a), [0.0])
  np.testing.assert_allclose(attention_stats.iou(0.0 * a, 0.0 * a), [1.0])
  # Same top pixels, whatever the scale: IoU 1; moved attention: lower.
  m = tf.constant([[[0.1, 0.9], [0.5, 0.3]]])
  np.testing.assert_allclose(attention_stats.attention_iou(m, 3.0 * m, 0.5), [1.0])
  np.testing.assert_allclose(attention_stats.attention_iou(m, m[:, ::-1, :], 0.5), [0.0])


def test_key_region_activation_is_the_energy_share_inside_the_area():
  features = np.zeros((1, 2, 2, 2), np.float32)
  features[0, 0, 0] = [1.0, 1.0]  # energy 2
  features[0, 1, 1] = [0.0, 2.0]  # energy 4
  area = tf.constant([[[1.0, 0.0], [0.0, 0.0]]])
  share = attention_stats.key_region_activation(tf.constant(features), area)
  np.testing.assert_allclose(share, [2.0 / 6.0], rtol=1e-6)
  # An area at the input resolution (4x4) is brought to the stage's 2x2 grid.
  big = tf.image.resize(area[..., None], (4, 4), method="nearest")[..., 0]
  np.testing.assert_allclose(attention_stats.key_region_activation(features, big),
                             [2.0 / 6.0], rtol=1e-6)
  np.testing.assert_allclose(
      attention_stats.key_region_activation(features, tf.ones((1, 2, 2))), [1.0])


def test_compare_same_and_moved_attention_on_a_real_model():
  keras.utils.set_random_seed(0)
  _, tapped = taps_lib.build_tapped(config_lib.ModelConfig(name="small_cnn", width=8),
                                    (28, 28, 1), 10)
  _, _, xt, yt = testing.fashion_mnist_arrays()
  x, y = tf.constant(xt[:32]), tf.constant(yt[:32], tf.int32)
  same = attention_stats.compare(tapped, x, x, y)
  expected = {"gradcam_iou"} | {f"stage{j}_{k}" for j in range(4)
                                for k in ("iou", "key_clean", "key_adv")}
  assert set(same) == expected
  for key, value in same.items():
    if key.endswith("iou"):
      np.testing.assert_allclose(value, 1.0)  # the same image attends the same pixels
    else:
      assert np.all((value.numpy() >= 0) & (value.numpy() <= 1 + 1e-6))
  np.testing.assert_allclose(same["stage0_key_clean"], same["stage0_key_adv"])
  noise = tf.random.stateless_uniform(x.shape, [1, 2], -0.3, 0.3)
  moved = attention_stats.compare(tapped, x, tf.clip_by_value(x + noise, 0.0, 1.0), y)
  assert float(tf.reduce_mean(moved["stage0_iou"])) < 0.9
