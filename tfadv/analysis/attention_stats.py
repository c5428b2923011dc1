"""How attention moves under attack: per-stage maps, attention IoU, activation on key regions.

The AT+ALP paper shows per-stage attention maps of clean and adversarial images and argues
that a robust model keeps looking at the same places; these functions put numbers on that:

* `attention_iou`: overlap of the most attended pixels of two maps (1: same place, 0: none).
* `key_region_activation`: the share of a stage's activation energy `sum_c |A_c|^p` that falls
  inside the key region (the Grad-CAM attention area of the clean image).
"""

import tensorflow as tf

from tfadv.attention import gradcam as gradcam_lib
from tfadv.attention import maps
from tfadv.attention import masks


def top_fraction_mask(attention, fraction=0.2):
  """The `fraction` most attended pixels of each map, as {0, 1} float32 [B, h, w].

  Ties at the threshold are all kept, so at least `ceil(fraction * h * w)` pixels are in.

  Raises:
    ValueError: `fraction` outside (0, 1].
  """
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"Invalid fraction: expected 0 < fraction <= 1; received {fraction!r}")
  attention = tf.convert_to_tensor(attention, tf.float32)
  flat = tf.reshape(attention, [tf.shape(attention)[0], -1])
  k = tf.cast(tf.math.ceil(fraction * tf.cast(tf.shape(flat)[1], tf.float32)), tf.int32)
  kth = tf.math.top_k(flat, k=k).values[:, -1]
  return tf.cast(attention >= kth[:, None, None], tf.float32)


def iou(mask_a, mask_b):
  """Intersection over union of two {0, 1} masks [B, h, w]: [B] (1 when both are empty)."""
  inter = tf.reduce_sum(mask_a * mask_b, axis=[1, 2])
  union = tf.reduce_sum(tf.maximum(mask_a, mask_b), axis=[1, 2])
  return tf.where(union > 0, inter / tf.maximum(union, 1.0), 1.0)


def attention_iou(clean_attention, adv_attention, fraction=0.2):
  """IoU of the top-`fraction` pixels of the clean and the adversarial maps: [B]."""
  return iou(top_fraction_mask(clean_attention, fraction),
             top_fraction_mask(adv_attention, fraction))


def key_region_activation(features, area, p=2.0):
  """Share of `sum_c |A_c|^p` of one stage inside `area`, per image: [B] in [0, 1].

  Args:
    features: [B, h, w, c] activations of a stage.
    area: {0, 1} [B, H, W] key region at any resolution (resized to h x w by nearest
      neighbour).
    p: the attention exponent.
  """
  energy = maps.attention_map(features, p, normalize=False)
  h, w = features.shape[1], features.shape[2]
  area = tf.image.resize(tf.convert_to_tensor(area, tf.float32)[..., None], (h, w),
                         method="nearest")
  area = tf.reshape(area, tf.shape(energy))
  return tf.math.divide_no_nan(tf.reduce_sum(energy * area, axis=1),
                               tf.reduce_sum(energy, axis=1))


def stage_attention(tapped, x, p=2.0):
  """Per-stage attention images `F(A)` scaled to [0, 1]: a list of [B, h_j, w_j]."""
  outputs = tapped(x, training=False)
  return [maps.attention_image(t, p) for t in outputs["taps"]]


def compare(tapped, x, x_adv, y, fraction=0.2, p=2.0, kappa=None):
  """Attention statistics of clean vs adversarial images, per example.

  Args:
    tapped: a tapped model (`tfadv.models.taps.tapped_model`).
    x: clean images [B, H, W, C] in [0, 1].
    x_adv: their adversarial twins.
    y: true labels [B] (Grad-CAM maps the true class on both images).
    fraction: share of most attended pixels compared by the IoUs.
    p: attention exponent.
    kappa: Grad-CAM attention-area threshold (None: per-image mean), for the key region.

  Returns:
    dict of [B] tensors: `stage{j}_iou` (attention-map IoU of stage j), `gradcam_iou`,
    `stage{j}_key_clean` / `stage{j}_key_adv` (activation share inside the clean image's
    Grad-CAM area).
  """
  cam_clean, clean = gradcam_lib.gradcam(tapped, x, y)
  cam_adv, adv = gradcam_lib.gradcam(tapped, x_adv, y)
  size = x.shape[1:3]
  area = masks.attention_area(cam_clean, size, kappa)
  stats = {"gradcam_iou": attention_iou(gradcam_lib.normalize_cam(cam_clean),
                                        gradcam_lib.normalize_cam(cam_adv), fraction)}
  for j, (a_clean, a_adv) in enumerate(zip(clean["taps"], adv["taps"])):
    stats[f"stage{j}_iou"] = attention_iou(maps.attention_image(a_clean, p),
                                           maps.attention_image(a_adv, p), fraction)
    stats[f"stage{j}_key_clean"] = key_region_activation(a_clean, area, p)
    stats[f"stage{j}_key_adv"] = key_region_activation(a_adv, area, p)
  return stats
