"""Grad-CAM panels for TensorBoard: where the model looks on clean vs adversarial images.

Each row of a panel is one example: `[clean image | its Grad-CAM overlay | adversarial
image | its Grad-CAM overlay]` (or the first two columns alone without an attack), with the
maps of the true class upsampled to the image size and drawn in a "hot" colour map over a
dimmed grey copy of the image. Watching these panels over training shows attention being
rectified (clean maps covering the object) and preserved (adversarial maps matching them).
"""

import tensorflow as tf

from tfadv.attention import gradcam


def heat(cam):
  """A "hot" colour map of maps [B, H, W] in [0, 1]: RGB [B, H, W, 3] (black-red-yellow-white)."""
  return tf.stack([tf.clip_by_value(3.0 * cam - k, 0.0, 1.0) for k in range(3)], axis=-1)


def _rgb(x):
  return tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x[..., :3]


def overlay(x, cam):
  """Blends the heat map of `cam` [B, h, w] (any scale) over images `x` [B, H, W, C]."""
  g = gradcam.normalize_cam(cam, size=tuple(x.shape[1:3]))
  grey = tf.reduce_mean(_rgb(x), axis=-1, keepdims=True)
  return 0.4 * tf.image.grayscale_to_rgb(grey) + 0.6 * heat(g)


def gradcam_panel(tapped, x, y, x_adv=None):
  """Rows `[x | Grad-CAM(x) | x_adv | Grad-CAM(x_adv)]` as RGB images [B, H, 4W, 3] in [0, 1].

  Args:
    tapped: the tapped model (`logits`, `gradcam`), run in inference mode.
    x: images [B, H, W, C] in [0, 1] (static H, W, C).
    y: int labels [B]; the maps show the evidence for the true class.
    x_adv: adversarial images of `x`, or None for the two clean columns only.
  """
  columns = [_rgb(x), overlay(x, gradcam.gradcam(tapped, x, y)[0])]
  if x_adv is not None:
    columns += [_rgb(x_adv), overlay(x_adv, gradcam.gradcam(tapped, x_adv, y)[0])]
  return tf.clip_by_value(tf.concat(columns, axis=2), 0.0, 1.0)


def make_panel_fn(model, tapped, x, y, attack=None):
  """A `tf.function` `() -> panel` for fixed examples, attacked afresh at every call.

  Args:
    model: the classifier (logits), attacked in inference mode.
    tapped: its tapped twin (same weights).
    x: a few fixed images [N, H, W, C] in [0, 1].
    y: their labels [N].
    attack: `(model_fn, x, y) -> x_adv` (the defense's training attack), or None.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.cast(tf.convert_to_tensor(y), tf.int32)

  @tf.function
  def panel():
    x_adv = None
    if attack is not None:
      x_adv = attack(lambda images: model(images, training=False), x, y)
    return gradcam_panel(tapped, x, y, x_adv)

  return panel
