"""Attention areas and masked images: exact thresholds, shapes and gradient flow."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attention import masks


def _cam():
  # One 4x4 map, max 8: scaled map g = cam / 8.
  return tf.constant([[[0.0, 1.0, 2.0, 3.0],
                       [4.0, 5.0, 6.0, 7.0],
                       [8.0, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 2.0]]])


def test_fixed_kappa_selects_exactly_the_pixels_at_or_above_it():
  # g >= 0.5  <=>  cam >= 4 (cam = 4 is exactly on the threshold and belongs to the area).
  area = masks.attention_area(_cam(), size=(4, 4), kappa=0.5)
  expected = (_cam().numpy() >= 4.0).astype(np.float32)
  np.testing.assert_array_equal(area.numpy(), expected)
  assert area.numpy().sum() == 5


def test_default_kappa_is_the_per_image_mean():
  cam = tf.concat([_cam(), 3.0 * tf.reverse(_cam(), axis=[2])], axis=0)
  area = masks.attention_area(cam, size=(4, 4))
  # mean of cam = 38 / 16 = 2.375, so the area is cam >= 2.375 (scale-free: the second
  # image, a scaled mirror image, gets the mirrored area).
  expected = (_cam().numpy()[0] >= 38.0 / 16.0).astype(np.float32)
  np.testing.assert_array_equal(area.numpy()[0], expected)
  np.testing.assert_array_equal(area.numpy()[1], expected[:, ::-1])


def test_mask_removes_exactly_the_attention_area_in_every_channel():
  x = tf.random.stateless_uniform([1, 4, 4, 3], seed=[1, 2], minval=0.1, maxval=1.0)
  area = masks.attention_area(_cam(), size=(4, 4), kappa=0.5)
  masked = masks.mask_images(x, area).numpy()
  inside = _cam().numpy()[0] >= 4.0
  assert np.all(masked[0][inside] == 0.0)
  np.testing.assert_array_equal(masked[0][~inside], x.numpy()[0][~inside])


def test_all_zero_map_has_an_empty_area():
  area = masks.attention_area(tf.zeros([2, 3, 3]), size=(6, 6))
  assert area.shape == (2, 6, 6)
  assert np.all(area.numpy() == 0.0)
  x = tf.ones([2, 6, 6, 1])
  np.testing.assert_array_equal(masks.mask_images(x, area).numpy(), x.numpy())


def test_coarse_map_is_upsampled_bilinearly_before_thresholding():
  cam = tf.constant([[[5.0, 0.0], [0.0, 0.0]]])  # evidence in the top-left cell only
  area = masks.attention_area(cam, size=(8, 8)).numpy()[0]
  # Half-pixel-centre bilinear 2 -> 8: output i samples input coordinate (i + 0.5) / 4 - 0.5
  # (clamped), so the weight of cell 0 along each axis is w; the scaled map is outer(w, w),
  # its mean (sum w)^2 / 64 = 0.25 is the threshold.
  w = np.array([1.0, 1.0, 0.875, 0.625, 0.375, 0.125, 0.0, 0.0])
  np.testing.assert_array_equal(area, (np.outer(w, w) >= 0.25).astype(np.float32))


def test_gradient_flows_to_kept_pixels_only_and_not_to_the_map():
  cam = _cam()
  x = tf.random.stateless_uniform([1, 4, 4, 1], seed=[3, 4])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, cam])
    area = masks.attention_area(cam, size=(4, 4), kappa=0.5)
    total = tf.reduce_sum(masks.mask_images(x, area))
  grad_x = tape.gradient(total, x).numpy()[0, ..., 0]
  np.testing.assert_array_equal(grad_x, 1.0 - area.numpy()[0])
  assert tape.gradient(total, cam) is None


@pytest.mark.parametrize("kappa", [-0.1, 1.5])
def test_kappa_outside_unit_interval_is_rejected(kappa):
  with pytest.raises(ValueError, match="Invalid kappa"):
    masks.attention_area(_cam(), size=(4, 4), kappa=kappa)
