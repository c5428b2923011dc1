"""Noise injection on the input, for RAT (Araujo et al., 2019, "Robust Neural Networks
using Randomized Adversarial Training").

RAT adds random noise, Gaussian or Laplace, to the input of the network at training AND
at inference, and trains it adversarially (the attack sees the noisy network). The layer
lives inside the model, so the exported SavedModel is randomised the same way; evaluate
it with EOT / AutoAttack's `rand` version. The noisy images are not clipped to [0, 1]:
the noise is part of the network, not of the image.
"""

import math

import keras
from keras import layers
import tensorflow as tf

from tfadv.models import graph
from tfadv.models import sources
from tfadv.models import zoo

DISTRIBUTIONS = ("gaussian", "laplace")


def _check(distribution, scale):
  if distribution not in DISTRIBUTIONS:
    raise ValueError(f"Invalid distribution: expected one of [{', '.join(DISTRIBUTIONS)}]; "
                     f"received distribution={distribution!r}")
  if not (isinstance(scale, (int, float)) and not isinstance(scale, bool)
          and math.isfinite(scale) and scale >= 0):
    raise ValueError(f"Invalid scale: expected a finite number >= 0 (in [0, 1] pixel "
                     f"units); received scale={scale!r}")


def sample_noise(shape, distribution, scale, dtype=tf.float32, seed=None):
  """Zero-mean noise: Gaussian with std `scale`, or Laplace with scale `scale`
  (density `exp(-|t|/scale) / (2 scale)`, std `sqrt(2) * scale`).

  `seed` is a `keras.random.SeedGenerator` (or None): its state is a variable of the layer,
  saved in checkpoints, so a resumed run draws the same noise as an uninterrupted one.
  """
  if distribution == "gaussian":
    return scale * keras.random.normal(shape, dtype=dtype, seed=seed)
  # Inverse CDF of the Laplace distribution on u uniform in (-1/2, 1/2).
  tiny = 1e-7
  u = keras.random.uniform(shape, -0.5 + tiny, 0.5, dtype=dtype, seed=seed)
  return -scale * tf.sign(u) * tf.math.log1p(-2.0 * tf.abs(u))


@keras.saving.register_keras_serializable(package="tfadv")
class NoiseInjection(layers.Layer):
  """Adds fresh zero-mean noise to its input on every call, whatever `training` is.

  Args:
    distribution: `gaussian` or `laplace`.
    scale: Gaussian standard deviation, or Laplace scale b (std `sqrt(2) b`).
  """

  def __init__(self, distribution="gaussian", scale=0.1, **kwargs):
    super().__init__(**kwargs)
    _check(distribution, scale)
    self.distribution = distribution
    self.scale = float(scale)
    self.seed_generator = keras.random.SeedGenerator(seed=None, name="noise_seed")

  def call(self, inputs, training=None):
    del training  # random at inference too: it is the defense
    return inputs + sample_noise(tf.shape(inputs), self.distribution, self.scale,
                                 inputs.dtype, self.seed_generator)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "distribution": self.distribution, "scale": self.scale}


def build(model_config, input_shape, num_classes, distribution="gaussian", scale=0.1):
  """A zoo model with noise injected on its input, as one flat functional model.

  Args:
    model_config: a `tfadv.config.ModelConfig`.
    input_shape: (height, width, channels) of the images.
    num_classes: number of logits K.
    distribution: `gaussian` or `laplace`.
    scale: Gaussian std, or Laplace scale, in [0, 1] pixel units.

  Returns:
    A `tfadv.models.zoo.Built` with the zoo model's tap and Grad-CAM names.

  Raises:
    ValueError: invalid distribution or scale, or as `zoo.build_model`.
  """
  _check(distribution, scale)
  built = sources.build(model_config, input_shape, num_classes)
  inputs = keras.Input(tuple(input_shape), dtype="float32", name="images")
  noise = NoiseInjection(distribution, scale, name="noise_injection", dtype="float32")
  logits = graph.rebuild(built.model, inputs, before=noise)
  return zoo.Built(keras.Model(inputs, logits, name=f"{model_config.name}_noise"),
                   built.tap_names, built.gradcam_name, {}, built.notes)
