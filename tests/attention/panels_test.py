"""Grad-CAM panels: layout, range, and the heat colour map."""

import keras
import numpy as np
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.attention import panels
from tfadv.models import taps as taps_lib


def test_heat_map_goes_black_red_yellow_white():
  colours = panels.heat(tf.constant([[[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]]])).numpy()[0, 0]
  np.testing.assert_allclose(colours, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]],
                             atol=1e-6)


def test_panel_layout_with_and_without_an_attack():
  keras.utils.set_random_seed(0)
  model, tapped = taps_lib.build_tapped(config_lib.ModelConfig(name="small_cnn", width=4),
                                        (12, 12, 1), 3)
  x = tf.random.stateless_uniform([2, 12, 12, 1], seed=[1, 2])
  y = tf.constant([0, 2])
  attack = registry.from_config(config_lib.AttackConfig(name="pgd", eps=0.1, steps=2))
  panel = panels.make_panel_fn(model, tapped, x, y, attack)().numpy()
  assert panel.shape == (2, 12, 48, 3)
  assert panel.min() >= 0.0 and panel.max() <= 1.0
  # The first column is the clean image itself, in grey RGB.
  np.testing.assert_allclose(panel[:, :, :12, 0], x.numpy()[..., 0], rtol=1e-6)
  np.testing.assert_allclose(panel[:, :, :12, 1], x.numpy()[..., 0], rtol=1e-6)
  # The third column is an adversarial image within the ball.
  assert np.abs(panel[:, :, 24:36, 0] - x.numpy()[..., 0]).max() <= 0.1 + 1e-6
  clean_only = panels.make_panel_fn(model, tapped, x, y)().numpy()
  assert clean_only.shape == (2, 12, 24, 3)
  np.testing.assert_allclose(clean_only, panel[:, :, :24], rtol=1e-5, atol=1e-6)
