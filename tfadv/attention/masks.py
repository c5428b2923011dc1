"""Attention areas and masked images (Wu et al., "Attention, Please!", eqs. 3 and 7).

The attention area of an image is the set of pixels whose Grad-CAM value reaches a
threshold: `Att(x) = g(x) >= kappa`, with `g` the Grad-CAM map of the Grad-CAM layer,
upsampled to the input size and scaled to [0, 1] per image, and `kappa` either the mean of
`g` over each image (the paper's default) or a fixed value in [0, 1]. The masked image
`x^m = x * (1 - Att(x))` keeps only what lies *outside* the attention area.

Gradients: `Att(x)` is a hard threshold, so it is a constant for differentiation (its
gradient is zero almost everywhere; we stop it explicitly). Through `mask_images` the
gradient with respect to `x` is the identity on kept pixels and zero on removed ones, and a
loss on `f(x^m)` reaches the weights through the forward pass on `x^m` only, never through
the Grad-CAM map that chose the mask.

These two functions are the shared vocabulary of the AAD defense (rectification loss) and
of the A^3 attack (attention-augmented attack), which compares `Att(x)` with `g(x_adv)`.

Example:

  cam, outputs = gradcam.gradcam(tapped, x, labels)
  area = attention_area(cam, size=x.shape[1:3])        # [B, H, W] in {0, 1}
  x_masked = mask_images(x, area)                       # attention area zeroed
"""

import tensorflow as tf

from tfadv.attention import gradcam


def attention_area(cam, size, kappa=None):
  """The binary attention area `Att(x) = g(x) >= kappa` at the input resolution.

  Args:
    cam: raw Grad-CAM maps [B, h, w] (non-negative, any scale), e.g. from
      `tfadv.attention.gradcam.gradcam`.
    size: (H, W) of the images the area applies to; the map is upsampled bilinearly to it
      (a no-op when it already has that size).
    kappa: threshold on the map scaled to [0, 1] per image (by its maximum). None (the
      paper's default) uses each image's mean of that scaled map, so the area is the set of
      pixels with above-average evidence; a float in [0, 1] is a fixed threshold.

  Returns:
    float32 [B, H, W] in {0, 1}: 1 inside the attention area, with no gradient. A map that
    is zero everywhere (no evidence for the class) has an empty area, whatever `kappa`:
    only pixels with `g > 0` can belong to it, so the mask never blanks a whole image for
    lack of evidence (for kappa > 0 this changes nothing).

  Raises:
    ValueError: `kappa` outside [0, 1], or `cam` not of rank 3.
  """
  if kappa is not None and not 0.0 <= float(kappa) <= 1.0:
    raise ValueError(f"Invalid kappa: expected None (per-image mean) or a threshold in "
                     f"[0, 1] on the max-scaled Grad-CAM map; received kappa={kappa!r}")
  cam = tf.convert_to_tensor(cam, tf.float32)
  if cam.shape.rank != 3:
    raise ValueError(f"Invalid cam: expected Grad-CAM maps of shape [B, h, w]; received "
                     f"shape {cam.shape}")
  g = gradcam.normalize_cam(tf.stop_gradient(cam), size=tuple(size))
  if kappa is None:
    threshold = tf.reduce_mean(g, axis=[1, 2], keepdims=True)
  else:
    threshold = tf.constant(float(kappa), tf.float32)
  inside = tf.logical_and(g >= threshold, g > 0.0)
  return tf.stop_gradient(tf.cast(inside, tf.float32))


def mask_images(x, area):
  """The masked images `x * (1 - Att(x))`: the attention area set to 0 in every channel.

  Args:
    x: images [B, H, W, C] in [0, 1].
    area: attention areas [B, H, W] (or [B, H, W, 1]) in {0, 1}, from `attention_area`.

  Returns:
    [B, H, W, C]: `x` outside the area, 0 inside. Differentiable in `x` (identity on kept
    pixels, zero on removed ones); `area` is treated as a constant.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  area = tf.stop_gradient(tf.convert_to_tensor(area, tf.float32))
  if area.shape.rank == 3:
    area = area[..., None]
  return x * (1.0 - area)
