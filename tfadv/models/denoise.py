"""Feature denoising, FD (Xie et al., CVPR 2019): non-local means blocks after ResNet stages.

A denoising block computes, at every position i of a feature map x,

  y_i = (1 / C(x)) sum_j f(x_i, x_j) g(x_j)

over ALL positions j (non-local means), then a 1x1 convolution, BatchNorm and a residual
connection: `out = x + BN(conv1x1(y))`. As in the reference
(github:facebookresearch/ImageNet-Adversarial-Training, `resnet_model.py:denoising`):
  * softmax=True, embed=True (the paper's default, "Gaussian, embedded"):
    f = softmax_j(theta(x_i) . phi(x_j) / sqrt(d)), theta and phi 1x1 convolutions to
    d = C/2 channels (no bias, N(0, 0.01^2) init), g = identity;
  * softmax=True, embed=False ("Gaussian"): theta = phi = identity;
  * softmax=False ("dot product"): f = theta . phi, C(x) = N (the number of positions);
  * the 1x1 convolution has no bias (He fan-out init) and its BatchNorm's gamma starts
    at ZERO, so every block is the identity at initialisation.
The paper adds 4 blocks, after the last residual block of res2, res3, res4 and res5 (our
taps, stages 0..3). The softmax version costs O(N^2) memory per example (N = h*w).
"""

import numbers

import keras
from keras import layers
import tensorflow as tf

from tfadv.models import graph
from tfadv.models import sources
from tfadv.models import zoo

STAGES = (0, 1, 2, 3)


@keras.saving.register_keras_serializable(package="tfadv")
class NonLocalMean(layers.Layer):
  """The weighted mean over all positions of a block: inputs `[theta, phi, g]` ->
  `y_i = sum_j w_ij g_j`, with `w_i = softmax_j(theta_i . phi_j / sqrt(d))` (softmax) or
  `w_ij = theta_i . phi_j / N` (dot product). Shapes [B, h, w, d], [B, h, w, d],
  [B, h, w, c] -> [B, h, w, c]."""

  def __init__(self, softmax=True, **kwargs):
    super().__init__(**kwargs)
    self.softmax = bool(softmax)

  def call(self, inputs):
    theta, phi, g = inputs
    shape = tf.shape(g)
    batch, positions = shape[0], shape[1] * shape[2]
    theta = tf.reshape(theta, [batch, positions, theta.shape[-1]])
    phi = tf.reshape(phi, [batch, positions, phi.shape[-1]])
    values = tf.reshape(g, [batch, positions, g.shape[-1]])
    if self.softmax:
      depth = tf.cast(theta.shape[-1], theta.dtype)
      weights = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True) / tf.sqrt(depth))
      y = tf.matmul(weights, values)
    else:
      # theta (phi^T g) / N: the same as (theta phi^T) g / N without the N x N matrix.
      y = tf.matmul(theta, tf.matmul(phi, values, transpose_a=True))
      y = y / tf.cast(positions, y.dtype)
    return tf.reshape(y, shape)

  def compute_output_shape(self, input_shape):
    return input_shape[2]

  def get_config(self):
    return {**super().get_config(), "softmax": self.softmax}


def denoising_block(x, name, embed=True, softmax=True):
  """Appends a denoising block to the Keras tensor `x` [B, h, w, C]; returns its output.

  Layers: `{name}_theta`, `{name}_phi` (with embed), `{name}_nonlocal`, `{name}_conv`,
  `{name}_bn` (gamma initialised to zero) and `{name}_out` (the residual sum).
  """
  channels = x.shape[-1]
  if embed:
    embedding = dict(filters=max(channels // 2, 1), kernel_size=1, use_bias=False,
                     kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
    theta = layers.Conv2D(name=f"{name}_theta", **embedding)(x)
    phi = layers.Conv2D(name=f"{name}_phi", **embedding)(x)
  else:
    theta = phi = x
  y = NonLocalMean(softmax, name=f"{name}_nonlocal")([theta, phi, x])
  y = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv",
                    kernel_initializer=keras.initializers.VarianceScaling(
                        2.0, mode="fan_out", distribution="truncated_normal"))(y)
  # Tensorpack's BatchNorm defaults; gamma = 0 makes the block start as the identity.
  y = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer="zeros",
                                name=f"{name}_bn")(y)
  return layers.Add(name=f"{name}_out")([x, y])


def block_name(tap_name):
  """The layer-name prefix of the denoising block after the layer `tap_name`."""
  return f"{tap_name}_denoise"


def _check_stages(stages):
  """`stages` as a sorted tuple of distinct ints in 0..3, or a ValueError.

  A string such as "0/3" or "0,3" (a command-line wrapper option) is read as (0, 3).
  """
  if isinstance(stages, numbers.Integral) and not isinstance(stages, bool):
    stages = (stages,)  # "3" on the command line reads as the int 3
  try:
    if isinstance(stages, str):
      items = tuple(int(v) for v in stages.replace(",", "/").split("/") if v.strip())
    else:
      items = tuple(stages)
  except (TypeError, ValueError):
    items = ()
  if not (items and len(set(items)) == len(items) and all(
      isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 <= s <= 3
      for s in items)):
    raise ValueError(f"Invalid stages: expected a non-empty tuple of distinct stage "
                     f"indices in 0..3 (0 = conv2_x .. 3 = conv5_x); received "
                     f"stages={stages!r}")
  return tuple(sorted(int(s) for s in items))


def build(model_config, input_shape, num_classes, stages=STAGES, embed=True, softmax=True):
  """A zoo ResNet with a denoising block after each of the chosen stages, one flat model.

  Args:
    model_config: a `tfadv.config.ModelConfig` (`resnet18`, `resnet50`, `resnet101`,
      `resnet152`; `small_cnn` works too, after its conv blocks).
    input_shape: (height, width, channels) of the images.
    num_classes: number of logits K.
    stages: indices into the four stage ends (0 = conv2_x/res2 .. 3 = conv5_x/res5)
      followed by a block (or a string "0/1/2/3"); the paper's default is all four.
    embed: theta/phi 1x1 embeddings (embedded Gaussian) or identity.
    softmax: softmax (Gaussian) weights, or the dot product divided by N.

  Returns:
    A `tfadv.models.zoo.Built` whose taps are the block outputs where a block follows the
    stage (the stage output otherwise), Grad-CAM on the last tap. ImageNet weights of
    the backbone are kept.

  Raises:
    ValueError: invalid `stages`, or as `zoo.build_model`.
  """
  stages = _check_stages(stages)
  built = sources.build(model_config, input_shape, num_classes)
  model, stage_names = built.model, built.tap_names
  if max(stages) >= len(stage_names):
    raise ValueError(f"Invalid stages: expected indices below {len(stage_names)} (the stage "
                     f"taps of the model: {', '.join(stage_names)}); received stages={stages}")
  after = {stage_names[s]: (lambda t, n=block_name(stage_names[s]):
                            denoising_block(t, n, embed=embed, softmax=softmax))
           for s in stages}
  inputs = keras.Input(tuple(input_shape), dtype="float32", name="images")
  logits = graph.rebuild(model, inputs, after=after)
  tap_names = tuple(f"{block_name(n)}_out" if n in after else n for n in stage_names)
  return zoo.Built(keras.Model(inputs, logits, name=f"{model_config.name}_fd"),
                   tap_names, tap_names[-1], {}, built.notes)
