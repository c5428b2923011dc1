"""Tests of tfadv/losses/igr.py: closed form on a linear model, double backprop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.losses import forward as forward_lib
from tfadv.losses import igr
from tfadv.models import taps


def _linear_model(d, k, seed=0):
  rng = np.random.default_rng(seed)
  inputs = keras.Input((d,), dtype="float64")
  dense = keras.layers.Dense(k, dtype="float64", name="logits")
  model = keras.Model(inputs, {"logits": dense(inputs)})
  dense.kernel.assign(rng.normal(size=(d, k)))
  dense.bias.assign(rng.normal(size=(k,)))
  return model, dense


def _closed_form(w, b, x, y):
  """||W (softmax(xW + b) - onehot(y))||^2 per example, by hand."""
  z = x @ w + b
  p = np.exp(z - z.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  grad = (p - np.eye(w.shape[1])[y]) @ w.T
  return np.sum(grad ** 2, axis=1)


def test_linear_model_closed_form():
  model, dense = _linear_model(5, 3)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 5))
  y = np.array([0, 2, 1, 2])
  got = igr.input_gradient_norm(model, tf.constant(x), tf.constant(y)).numpy()
  want = _closed_form(dense.kernel.numpy(), dense.bias.numpy(), x, y)
  assert got.shape == (4,)
  np.testing.assert_allclose(got, want, rtol=1e-10)
  # The penalty depends on the label (a term ignoring y would not).
  other = igr.input_gradient_norm(model, tf.constant(x), tf.constant((y + 1) % 3)).numpy()
  assert not np.allclose(other, got)


def test_bare_logits_model_and_outputs():
  inputs = keras.Input((2,), dtype="float64")
  model = keras.Model(inputs, keras.layers.Dense(2, dtype="float64")(inputs))
  x = tf.constant([[1.0, -1.0]], tf.float64)
  outputs, norm = igr.input_gradient_forward(model, x, tf.constant([1]))
  np.testing.assert_array_equal(outputs["logits"].numpy(), model(x).numpy())
  assert norm.shape == (1,)


def test_outer_gradient_is_nonzero_and_matches_finite_differences():
  model, dense = _linear_model(4, 3, seed=2)
  rng = np.random.default_rng(3)
  x = tf.constant(rng.normal(size=(3, 4)))
  y = tf.constant([1, 0, 2])
  with tf.GradientTape() as tape:
    penalty = tf.reduce_sum(igr.input_gradient_norm(model, x, y))
  grad_w, grad_b = tape.gradient(penalty, [dense.kernel, dense.bias])
  assert float(tf.norm(grad_w)) > 1e-3 and float(tf.norm(grad_b)) > 1e-3
  w0, b0 = dense.kernel.numpy(), dense.bias.numpy()
  h = 1e-6
  numeric = np.zeros_like(w0)
  for i in range(w0.shape[0]):
    for j in range(w0.shape[1]):
      e = np.zeros_like(w0)
      e[i, j] = h
      plus = _closed_form(w0 + e, b0, x.numpy(), y.numpy()).sum()
      minus = _closed_form(w0 - e, b0, x.numpy(), y.numpy()).sum()
      numeric[i, j] = (plus - minus) / (2 * h)
  np.testing.assert_allclose(grad_w.numpy(), numeric, rtol=1e-5, atol=1e-8)


def test_inside_tf_function():
  model, dense = _linear_model(3, 2, seed=4)
  x = tf.constant([[0.5, -0.2, 0.1]], tf.float64)
  y = tf.constant([1])
  step = tf.function(lambda x, y: igr.input_gradient_norm(model, x, y))
  want = _closed_form(dense.kernel.numpy(), dense.bias.numpy(), x.numpy(), y.numpy())
  np.testing.assert_allclose(step(x, y).numpy(), want, rtol=1e-10)


def test_term_reads_the_clean_pass():
  norm = tf.constant([1.0, 2.0])
  fwd = forward_lib.Forward(labels=tf.constant([0, 1]),
                            clean={"logits": tf.zeros((2, 2)), "input_grad_norm": norm})
  np.testing.assert_array_equal(igr.igr_term(fwd).numpy(), [1.0, 2.0])
  with pytest.raises(ValueError, match="input_grad_norm"):
    igr.igr_term(forward_lib.Forward(labels=tf.constant([0]),
                                     clean={"logits": tf.zeros((1, 2))}))
  with pytest.raises(ValueError, match="clean"):
    igr.igr_term(forward_lib.Forward(labels=tf.constant([0])))


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_double_backprop_through_zoo_models(name):
  keras.utils.set_random_seed(0)
  model, tapped = taps.build_tapped(config_lib.ModelConfig(name=name, width=2), (8, 8, 1), 3)
  x = tf.random.stateless_uniform((4, 8, 8, 1), seed=[0, 1])
  y = tf.constant([0, 1, 2, 0])

  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      _, norm = igr.input_gradient_forward(tapped, x, y, training=True)
      penalty = tf.reduce_mean(norm)
    return norm, tape.gradient(penalty, model.trainable_variables)

  norm, grads = step(x, y)
  assert norm.shape == (4,) and np.all(norm.numpy() > 0)
  assert all(g is not None for g in grads)
  assert float(tf.norm(grads[0])) > 0  # first convolution: the penalty reaches it
