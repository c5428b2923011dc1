"""Batched, differentiable Grad-CAM (Selvaraju et al., 2017).

`g(x) = ReLU(sum_k alpha_k A^k)` with `alpha_k` the spatial mean of d y_c / d A^k, for the
feature map `A` of the Grad-CAM layer and the logit `y_c` of each example's class `c`.
The inner gradient is taken with its own tape; when an outer tape is recording (a training
step), that gradient computation is itself recorded, so a loss on the maps backpropagates
to the weights through the second-order path (the "nested tape" of the AAD losses).
"""

import tensorflow as tf


def gradcam(tapped_model, x, classes=None, training=False):
  """Grad-CAM maps of a batch, with the forward outputs they came from.

  Args:
    tapped_model: a model from `tfadv.models.taps.tapped_model` whose call returns a dict with
      `logits` [B, K] and `gradcam` [B, h, w, c].
    x: images [B, H, W, C] in [0, 1].
    classes: int [B] class whose evidence is mapped; None uses the predicted class.
    training: forwarded to the model call.

  Returns:
    (cam, outputs): cam [B, h, w] non-negative (not normalised: see `normalize_cam`), and
    the model's output dict (so callers reuse the forward pass).
  """
  x = tf.convert_to_tensor(x)
  with tf.GradientTape() as tape:
    tape.watch(x)  # The Grad-CAM "layer" of a model without feature maps is its input.
    outputs = tapped_model(x, training=training)
    features = outputs["gradcam"]
    logits = outputs["logits"]
    if classes is None:
      classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
    score = tf.gather(logits, tf.cast(classes, tf.int32), axis=1, batch_dims=1)
  # Each example's score depends only on its own features, so the gradient of the sum
  # is the per-example gradient.
  grads = tape.gradient(score, features)
  return cam_from_gradients(features, grads), outputs


def cam_from_gradients(features, grads):
  """`ReLU(sum_k mean_ij(grads)_k * features_k)`: [B, h, w]."""
  weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
  return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))


def normalize_cam(cam, size=None):
  """Scales each map to [0, 1] by its maximum, optionally resized to `size` (H, W)."""
  if size is not None:
    cam = tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]
  peak = tf.reduce_max(cam, axis=[1, 2], keepdims=True)
  return tf.math.divide_no_nan(cam, peak)
