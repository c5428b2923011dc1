import keras
import numpy as np
import tensorflow as tf

from tfadv.attention import gradcam


def _toy_tapped(seed=0):
  """Conv(2 filters) -> global average pool -> dense(3): Grad-CAM has a closed form."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((6, 6, 1))
  features = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="feat")(inputs)
  pooled = keras.layers.GlobalAveragePooling2D()(features)
  logits = keras.layers.Dense(3, name="head")(pooled)
  return keras.Model(inputs, {"logits": logits, "taps": (features,) * 4, "gradcam": features})


def _images(n=4):
  return tf.random.stateless_uniform([n, 6, 6, 1], seed=[5, 6])


def test_gradcam_matches_closed_form():
  model = _toy_tapped()
  x = _images()
  classes = tf.constant([0, 1, 2, 1])
  cam, outputs = gradcam.gradcam(model, x, classes)
  # d logit_c / d A_k(i, j) = W[k, c] / (h * w) for GAP + dense, so alpha_k = W[k, c] / 36.
  w = model.get_layer("head").kernel.numpy()
  a = outputs["gradcam"].numpy()
  alpha = w[:, classes.numpy()].T / 36.0  # [B, K]
  expected = np.maximum(np.einsum("bijk,bk->bij", a, alpha), 0.0)
  np.testing.assert_allclose(cam.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_gradcam_defaults_to_predicted_class():
  model = _toy_tapped()
  x = _images()
  pred = tf.argmax(model(x)["logits"], axis=-1, output_type=tf.int32)
  np.testing.assert_allclose(gradcam.gradcam(model, x)[0].numpy(),
                             gradcam.gradcam(model, x, pred)[0].numpy())


def test_gradcam_is_differentiable_wrt_weights_in_tf_function():
  model = _toy_tapped(seed=1)
  x = _images()
  target = tf.random.stateless_uniform([4, 6, 6], seed=[9, 9])

  @tf.function
  def grads():
    with tf.GradientTape() as tape:
      cam, _ = gradcam.gradcam(model, x, tf.constant([0, 1, 2, 0]), training=True)
      loss = tf.reduce_sum(tf.abs(gradcam.normalize_cam(cam) - target))
    return tape.gradient(loss, model.trainable_variables)

  by_name = {v.path: g for v, g in zip(model.trainable_variables, grads())}
  # The map does not depend on the head's bias (alpha_k = W[k, c] / hw); every kernel it
  # depends on gets a finite, non-zero gradient through the second-order path.
  for name in ("feat/kernel", "feat/bias", "head/kernel"):
    grad = by_name[name].numpy()
    assert np.all(np.isfinite(grad)), name
    assert np.abs(grad).sum() > 0, name


def test_normalize_cam_resizes_to_unit_peak():
  cam = tf.random.stateless_uniform([2, 3, 3], seed=[7, 8])
  out = gradcam.normalize_cam(cam, size=(12, 12))
  assert out.shape == (2, 12, 12)
  np.testing.assert_allclose(tf.reduce_max(out, axis=[1, 2]).numpy(), [1.0, 1.0], rtol=1e-6)
