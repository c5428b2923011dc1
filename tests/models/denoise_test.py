"""Tests of tfadv/models/denoise.py: non-local means in closed form, FD ResNet shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import denoise
from tfadv.models import taps
from tfadv.models import zoo


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("softmax", [True, False])
def test_non_local_mean_matches_numpy(softmax):
  rng = np.random.default_rng(0)
  theta, phi = rng.normal(size=(2, 2, 3, 2)), rng.normal(size=(2, 2, 3, 2))
  g = rng.normal(size=(2, 2, 3, 5))
  layer = denoise.NonLocalMean(softmax, dtype="float64")
  got = layer([tf.constant(theta), tf.constant(phi), tf.constant(g)]).numpy()
  t, p, v = theta.reshape(2, 6, 2), phi.reshape(2, 6, 2), g.reshape(2, 6, 5)
  scores = t @ p.transpose(0, 2, 1)
  weights = _softmax(scores / np.sqrt(2)) if softmax else scores / 6
  np.testing.assert_allclose(got, (weights @ v).reshape(g.shape), rtol=1e-10)


def _block_model(shape, embed, softmax, gamma, beta):
  inputs = keras.Input(shape)
  outputs = denoise.denoising_block(inputs, "blk", embed=embed, softmax=softmax)
  model = keras.Model(inputs, outputs)
  bn = model.get_layer("blk_bn")
  bn.gamma.assign(np.full(shape[-1], gamma))
  bn.beta.assign(np.full(shape[-1], beta))
  return model, model.get_layer("blk_conv").kernel.numpy()[0, 0]


@pytest.mark.parametrize("embed", [True, False])
def test_constant_input_non_local_mean_is_the_input(embed):
  # Softmax weights sum to one and every position is equal: the mean is the input, so
  # out = x + BN(conv1x1(x)) with BN at inference = gamma * z / sqrt(1 + eps) + beta.
  model, w = _block_model((3, 4, 6), embed, True, gamma=1.5, beta=0.2)
  v = np.random.default_rng(1).normal(size=6)
  x = np.broadcast_to(v, (2, 3, 4, 6)).astype(np.float32)
  want = v + 1.5 * (v @ w) / np.sqrt(1 + 1e-5) + 0.2
  got = model(tf.constant(x), training=False).numpy()
  np.testing.assert_allclose(got, np.broadcast_to(want, x.shape), rtol=1e-5, atol=1e-6)
  nonlocal_mean = keras.Model(model.inputs, model.get_layer("blk_nonlocal").output)
  np.testing.assert_allclose(nonlocal_mean(tf.constant(x)).numpy(), x, rtol=1e-6)


def test_constant_input_dot_product_version():
  # Without softmax or embedding: y_i = sum_j (x_i . x_j) x_j / N = (v . v) v.
  model, w = _block_model((2, 2, 3), False, False, gamma=-0.7, beta=0.0)
  v = np.array([0.5, -1.0, 2.0])
  x = np.broadcast_to(v, (1, 2, 2, 3)).astype(np.float32)
  want = v + (-0.7) * ((v @ v) * v @ w) / np.sqrt(1 + 1e-5)
  np.testing.assert_allclose(model(tf.constant(x), training=False).numpy()[0, 0, 0], want,
                             rtol=1e-5, atol=1e-6)


def test_blocks_start_as_the_identity():
  config = config_lib.ModelConfig(name="resnet18", width=1)
  x = tf.random.stateless_uniform((2, 16, 16, 3), seed=[0, 1])
  keras.utils.set_random_seed(3)
  plain = zoo.build_model(config, (16, 16, 3), 5)
  keras.utils.set_random_seed(3)
  built = denoise.build(config, (16, 16, 3), 5)
  for layer in built.model.layers:
    if layer.name.endswith("_denoise_bn"):
      np.testing.assert_array_equal(layer.gamma.numpy(), 0.0)
  np.testing.assert_allclose(built.model(x, training=False).numpy(),
                             plain(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
  # A trained block (gamma != 0) changes the logits and its embeddings get gradients.
  bn = built.model.get_layer("conv3_block2_out_denoise_bn")
  bn.gamma.assign(tf.ones_like(bn.gamma))
  with tf.GradientTape() as tape:
    logits = built.model(x, training=False)
    loss = tf.reduce_sum(tf.square(logits))
  theta = built.model.get_layer("conv3_block2_out_denoise_theta").kernel
  assert float(tf.norm(tape.gradient(loss, theta))) > 0
  assert not np.allclose(logits.numpy(), plain(x, training=False).numpy(), atol=1e-4)


def test_resnet18_shapes_and_block_count():
  config = config_lib.ModelConfig(name="resnet18", width=2)
  built = denoise.build(config, (16, 16, 3), 5)
  blocks = [l for l in built.model.layers if isinstance(l, denoise.NonLocalMean)]
  assert len(blocks) == 4
  assert built.tap_names == tuple(f"conv{s}_block2_out_denoise_out" for s in (2, 3, 4, 5))
  assert built.gradcam_name == "conv5_block2_out_denoise_out"
  tapped = taps.tapped_model(built.model, built.tap_names, built.gradcam_name)
  out = tapped(tf.zeros((2, 16, 16, 3)))
  assert [tuple(t.shape) for t in out["taps"]] == [(2, 16, 16, 4), (2, 8, 8, 8),
                                                     (2, 4, 4, 16), (2, 2, 2, 32)]
  # Each block's output has its stage's shape, and the next stage reads the block.
  for name in zoo.tap_layer_names("resnet18"):
    assert built.model.get_layer(f"{name}_denoise_out").output.shape == \
        built.model.get_layer(name).output.shape
  nxt = built.model.get_layer("conv3_block1_1_conv")
  assert nxt.input is built.model.get_layer("conv2_block2_out_denoise_out").output


def test_chosen_stages_and_dot_product_option():
  config = config_lib.ModelConfig(name="resnet18", width=1)
  built = denoise.build(config, (8, 8, 3), 5, stages=(3, 1), embed=False, softmax=False)
  blocks = [l for l in built.model.layers if isinstance(l, denoise.NonLocalMean)]
  assert [b.name for b in blocks] == ["conv3_block2_out_denoise_nonlocal",
                                      "conv5_block2_out_denoise_nonlocal"]
  assert not blocks[0].softmax
  assert not any(l.name.endswith("_theta") for l in built.model.layers)
  assert built.tap_names == ("conv2_block2_out", "conv3_block2_out_denoise_out",
                             "conv4_block2_out", "conv5_block2_out_denoise_out")


def test_keras_applications_resnet():
  config = config_lib.ModelConfig(name="resnet50")
  built = denoise.build(config, (32, 32, 3), 4, stages=(0, 3))
  blocks = [l for l in built.model.layers if isinstance(l, denoise.NonLocalMean)]
  assert [b.name for b in blocks] == ["conv2_block3_out_denoise_nonlocal",
                                      "conv5_block3_out_denoise_nonlocal"]
  theta = built.model.get_layer("conv2_block3_out_denoise_theta")
  assert theta.kernel.shape == (1, 1, 256, 128)  # C/2 embeddings
  assert built.model(tf.zeros((1, 32, 32, 3))).shape == (1, 4)


def test_stages_from_a_command_line_string():
  assert denoise._check_stages("3/1") == (1, 3)
  assert denoise._check_stages("0,2") == (0, 2)
  assert denoise._check_stages(2) == (2,)


@pytest.mark.parametrize("stages", [(), (4,), (0, 0), (True,), "0/a", "4", "", None])
def test_rejects_invalid_stages(stages):
  with pytest.raises(ValueError, match="stages"):
    denoise.build(config_lib.ModelConfig(name="resnet18", width=1), (8, 8, 3), 5,
                  stages=stages)
