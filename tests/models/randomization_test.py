"""Tests of tfadv/models/randomization.py: fixed output shape, randomness, exact padding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import randomization
from tfadv.models import taps


def _box(image):
  """(top, left, height, width) of the nonzero region of a [H, W, C] image."""
  rows = np.flatnonzero(np.abs(image).sum(axis=(1, 2)) > 0)
  cols = np.flatnonzero(np.abs(image).sum(axis=(0, 2)) > 0)
  return rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_default_size_scales_the_paper():
  assert randomization.default_size(299) == 331
  assert randomization.default_size(28) == 31


def test_random_resize_and_pad_of_a_constant_image():
  layer = randomization.RandomResizePad((31, 31))
  x = tf.ones((2, 28, 28, 1))
  sizes, tops = set(), set()
  for _ in range(60):
    out = layer(x, training=False).numpy()
    assert out.shape == (2, 31, 31, 1)
    # One size and one offset per call: both images are placed identically.
    np.testing.assert_array_equal(out[0], out[1])
    top, left, h, w = _box(out[0])
    assert h == w and 28 <= h <= 30  # r in [H, S) as in the paper
    np.testing.assert_array_equal(out[0, top:top + h, left:left + w], 1.0)  # all ones
    assert out[0].sum() == h * w  # zeros everywhere else
    assert 0 <= top <= 31 - h and 0 <= left <= 31 - w
    sizes.add(h)
    tops.add(top)
  assert sizes == {28, 29, 30}
  assert len(tops) >= 3


def test_no_room_is_the_identity():
  x = tf.random.stateless_uniform((3, 8, 8, 2), seed=[0, 1])
  layer = randomization.RandomResizePad((8, 8))
  np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


def test_padding_only_places_the_image_unchanged():
  x = tf.random.stateless_uniform((2, 6, 6, 3), seed=[1, 2], minval=0.1, maxval=1.0)
  layer = randomization.RandomResizePad((9, 9), min_size=6, max_size=6)
  offsets = set()
  for _ in range(30):
    out = layer(x).numpy()
    top, left, h, w = _box(out[0])
    assert (h, w) == (6, 6)
    np.testing.assert_array_equal(out[:, top:top + 6, left:left + 6], x.numpy())
    assert np.abs(out).sum() == pytest.approx(float(tf.reduce_sum(x)), rel=1e-6)
    offsets.add((top, left))
  assert len(offsets) > 3


def test_random_in_graph_mode_and_differentiable():
  layer = randomization.RandomResizePad((11, 11))
  x = tf.random.stateless_uniform((1, 8, 8, 1), seed=[3, 4])
  fn = tf.function(lambda x: layer(x, training=False))
  outs = [fn(x).numpy() for _ in range(10)]
  assert all(o.shape == (1, 11, 11, 1) for o in outs)
  assert any(not np.array_equal(outs[0], o) for o in outs[1:])
  with tf.GradientTape() as tape:
    tape.watch(x)
    total = tf.reduce_sum(layer(x))
  grad = tape.gradient(total, x).numpy()
  assert grad.sum() > 0 and np.all(grad >= 0)


def test_rejects_invalid_sizes():
  config = config_lib.ModelConfig(name="small_cnn", width=2)
  with pytest.raises(ValueError, match="size"):
    randomization.build(config, (8, 8, 1), 3, size=7)
  with pytest.raises(ValueError, match="min_size"):
    randomization.build(config, (8, 8, 1), 3, size=10, min_size=9, max_size=8)
  with pytest.raises(ValueError, match="min_size"):
    randomization.build(config, (8, 8, 1), 3, size=10, max_size=11)


def test_build_is_one_flat_random_model():
  keras.utils.set_random_seed(0)
  config = config_lib.ModelConfig(name="small_cnn", width=2)
  built = randomization.build(config, (8, 8, 1), 3, size=12)
  assert built.model.input.shape == (None, 8, 8, 1)
  assert built.model.output.shape == (None, 3)
  names = [layer.name for layer in built.model.layers]
  assert "random_resize_pad" in names and set(built.tap_names) <= set(names)
  tapped = taps.tapped_model(built.model, built.tap_names, built.gradcam_name)
  x = tf.random.stateless_uniform((4, 8, 8, 1), seed=[5, 6])
  outs = [tapped(x, training=False) for _ in range(6)]
  assert outs[0]["taps"][0].shape[1:3] == (12, 12)  # the zoo model sees S x S images
  assert any(not np.allclose(outs[0]["logits"], o["logits"]) for o in outs[1:])
  # Without room the wrapper is deterministic.
  fixed = randomization.build(config, (8, 8, 1), 3, size=8)
  np.testing.assert_array_equal(fixed.model(x).numpy(), fixed.model(x).numpy())


def test_randomness_survives_savedmodel_export(tmp_path):
  config = config_lib.ModelConfig(name="small_cnn", width=2)
  built = randomization.build(config, (8, 8, 1), 3, size=12)
  archive = keras.export.ExportArchive()
  archive.track(built.model)
  archive.add_endpoint("serve", built.model.call,
                       input_signature=[tf.TensorSpec((None, 8, 8, 1), tf.float32)])
  archive.write_out(str(tmp_path / "m"), verbose=False)
  loaded = tf.saved_model.load(str(tmp_path / "m"))
  x = tf.random.stateless_uniform((4, 8, 8, 1), seed=[7, 8])
  outs = [loaded.serve(x).numpy() for _ in range(6)]
  assert outs[0].shape == (4, 3)
  assert any(not np.allclose(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("r", [8, 9, 10, 13])
def test_resize_matches_tf_image_resize_nearest(r):
  x = tf.random.stateless_uniform((2, 8, 8, 3), seed=[9, r])
  layer = randomization.RandomResizePad((r, r), min_size=r, max_size=r)
  np.testing.assert_array_equal(layer(x).numpy(),
                                tf.image.resize(x, (r, r), method="nearest").numpy())


def test_compiles_with_xla():
  layer = randomization.RandomResizePad((11, 11))
  x = tf.random.stateless_uniform((2, 8, 8, 1), seed=[1, 1], minval=0.1, maxval=1.0)
  fn = tf.function(lambda x: layer(x), jit_compile=True)
  outs = [fn(x).numpy() for _ in range(8)]
  assert all(o.shape == (2, 11, 11, 1) for o in outs)
  assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_per_example_draws():
  layer = randomization.RandomResizePad((31, 31), per_example=True)
  out = layer(tf.ones((40, 28, 28, 1))).numpy()
  boxes = {_box(image) for image in out}
  assert len(boxes) > 5  # different sizes/offsets within one batch
  for image, (top, left, h, w) in zip(out, map(_box, out)):
    assert h == w and 28 <= h <= 30 and top <= 31 - h and left <= 31 - w
    np.testing.assert_array_equal(image[top:top + h, left:left + w], 1.0)
    assert image.sum() == h * w
  assert randomization.build(config_lib.ModelConfig(name="small_cnn", width=2), (8, 8, 1), 3,
                             per_example=True).model.get_layer("random_resize_pad").per_example
