"""Tests of tfadv/models/noise.py: noise statistics, active at inference, flat model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import noise
from tfadv.models import taps


@pytest.mark.parametrize("distribution,excess_kurtosis", [("gaussian", 0.0), ("laplace", 3.0)])
@pytest.mark.parametrize("training", [False, True])
def test_noise_statistics(distribution, excess_kurtosis, training):
  layer = noise.NoiseInjection(distribution, scale=0.2)
  tf.random.set_seed(0)
  x = tf.fill((1000, 10, 10, 1), 0.5)
  delta = (layer(x, training=training) - x).numpy().ravel()  # 1e5 samples
  std = 0.2 if distribution == "gaussian" else 0.2 * np.sqrt(2.0)
  assert abs(delta.mean()) < 4 * std / np.sqrt(delta.size)
  assert delta.std() == pytest.approx(std, rel=0.03)
  kurtosis = np.mean((delta - delta.mean()) ** 4) / delta.var() ** 2 - 3.0
  # Standard error of the sample kurtosis: 0.015 (Gaussian), about 0.11 (Laplace).
  assert kurtosis == pytest.approx(excess_kurtosis, abs=0.7)  # tells the two apart


def test_fresh_noise_each_call_and_zero_scale_is_identity():
  x = tf.random.stateless_uniform((2, 4, 4, 3), seed=[0, 1])
  layer = noise.NoiseInjection("laplace", 0.1)
  fn = tf.function(lambda x: layer(x, training=False))
  assert not np.allclose(fn(x).numpy(), fn(x).numpy())
  np.testing.assert_array_equal(noise.NoiseInjection("gaussian", 0.0)(x).numpy(), x.numpy())


def test_rejects_invalid_options():
  with pytest.raises(ValueError, match="distribution"):
    noise.NoiseInjection("uniform", 0.1)
  with pytest.raises(ValueError, match="scale"):
    noise.NoiseInjection("gaussian", -0.1)
  with pytest.raises(ValueError, match="scale"):
    noise.build(config_lib.ModelConfig(name="small_cnn", width=2), (8, 8, 1), 3,
                scale=float("nan"))


def test_build_is_one_flat_noisy_model():
  keras.utils.set_random_seed(0)
  config = config_lib.ModelConfig(name="small_cnn", width=2)
  built = noise.build(config, (8, 8, 1), 3, distribution="gaussian", scale=0.3)
  names = [layer.name for layer in built.model.layers]
  assert names[:2] == ["images", "noise_injection"]
  assert set(built.tap_names) <= set(names)
  tapped = taps.tapped_model(built.model, built.tap_names, built.gradcam_name)
  x = tf.random.stateless_uniform((4, 8, 8, 1), seed=[2, 3])
  a = tapped(x, training=False)["logits"].numpy()
  b = tapped(x, training=False)["logits"].numpy()
  assert not np.allclose(a, b)
  quiet = noise.build(config, (8, 8, 1), 3, scale=0.0)
  np.testing.assert_array_equal(quiet.model(x).numpy(), quiet.model(x).numpy())
