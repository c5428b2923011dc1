"""Crop + flip augmentation: a pure function of (seed, step), exact on resume, real crops."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import augment
from tfadv.data import datasets
from tfadv.training import trainer


def _images(n=16, size=8, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0.1, 1.0, (n, size, size, channels)).astype(np.float32)


def _candidates(image, padding):
  """Every window of the zero-padded image and of its flip: what a crop+flip may return."""
  h, w = image.shape[:2]
  padded = np.pad(image, [(padding, padding), (padding, padding), (0, 0)])
  out = []
  for dy in range(2 * padding + 1):
    for dx in range(2 * padding + 1):
      window = padded[dy:dy + h, dx:dx + w]
      out += [window, window[:, ::-1]]
  return out


def test_padding_scales_with_image_size():
  assert augment.crop_padding(32, 32) == 4
  assert augment.crop_padding(64, 64) == 8
  assert augment.crop_padding(224, 224) == 28
  assert augment.crop_padding(28, 28) == 4
  assert augment.crop_padding(8, 8) == 1


def test_same_seed_and_step_same_batch_other_step_or_seed_another():
  x = _images()
  a = augment.random_crop_flip(x, seed=1, step=5).numpy()
  b = augment.random_crop_flip(x, seed=1, step=5).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, augment.random_crop_flip(x, seed=1, step=6).numpy())
  assert not np.array_equal(a, augment.random_crop_flip(x, seed=2, step=5).numpy())


def test_each_output_is_a_window_of_the_padded_image_or_its_flip():
  x = _images(n=32, size=6)
  out = augment.random_crop_flip(x, seed=0, step=0, padding=2).numpy()
  assert out.shape == x.shape and out.dtype == x.dtype
  changed = 0
  for image, result in zip(x, out):
    assert any(np.array_equal(result, c) for c in _candidates(image, 2))
    changed += not np.array_equal(result, image)
  # 50 candidates, one of them the identity: nearly all images must change.
  assert changed >= 28
  # Both flipped and unflipped images occur, and crops that reveal the zero padding.
  assert (out == 0).any()


def test_offsets_cover_the_whole_range():
  # One constant-free image, many steps: every offset in [0, 2p] (and both flips) is drawn.
  image = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)
  seen = set()
  for step in range(300):  # P(missing one of 18) < 18 * (17/18)^300 ~ 1e-6
    result = augment.random_crop_flip(image, seed=3, step=step, padding=1).numpy()[0]
    for i, c in enumerate(_candidates(image[0], 1)):
      if np.array_equal(result, c):
        seen.add(i)
  assert len(seen) == 18  # 3 x 3 offsets x 2 flips


def test_pipeline_augments_and_resumes_exactly():
  x = _images(n=24, size=8)
  y = np.arange(24, dtype=np.int32)
  ds = tf.data.Dataset.from_tensor_slices((x, y))
  crop_flip = config_lib.Augment.CROP_FLIP
  full = list(trainer.input_pipeline(ds, 4, 24, seed=1, augment=crop_flip).take(9))
  resumed = list(trainer.input_pipeline(ds, 4, 24, seed=1, start_step=5,
                                        augment=crop_flip).take(4))
  for (xa, ya), (xb, yb) in zip(full[5:], resumed):
    np.testing.assert_array_equal(xa.numpy(), xb.numpy())
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
  plain = list(trainer.input_pipeline(ds, 4, 24, seed=1).take(9))
  for (xa, ya), (xp, yp) in zip(full, plain):
    np.testing.assert_array_equal(ya.numpy(), yp.numpy())  # same order, labels untouched
    assert not np.array_equal(xa.numpy(), xp.numpy())
    # The augmentation of batch k is the one keyed by (seed, k): not the epoch's position.
  epoch_two = full[6]  # batch 6 = first batch of the second epoch of 6 batches
  assert not np.array_equal(epoch_two[0].numpy(), full[0][0].numpy())


def test_none_leaves_the_pipeline_alone():
  assert augment.augment_fn("none", 0) is None
  with pytest.raises(ValueError):
    config_lib.TrainConfig(augment="cutout")


def test_the_trainer_steps_on_the_augmented_batch(tmp_path):
  """`TrainConfig.augment` reaches training: one SGD step of the trainer equals the step
  computed here on crop_flip(first batch, seed, step 0); not on the plain batch (ignored
  option), not on a twice-augmented one."""
  from tests import testing  # pylint: disable=g-import-not-at-top
  data_config = config_lib.DataConfig(name="digits", shuffle_buffer=1)  # batches in order
  data = datasets.load(data_config)
  model = config_lib.ModelConfig(name="small_cnn", width=4)
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path), batch_size=32, train_steps=1, optimizer="sgd",
      learning_rate=0.5, augment="crop_flip", seed=7, checkpoint_every=10, image_every=0,
      progress=False)
  result = trainer.train(data, model, config_lib.DefenseConfig(name="none"), config,
                         data_config)
  x, y = next(iter(data.train.batch(32)))
  crops = augment.random_crop_flip(x, seed=7, step=0)
  testing.assert_weights(result.model, testing.first_sgd_step(model, data, crops, y, 7, 0.5))
  assert testing.differs(result.model, testing.first_sgd_step(model, data, x, y, 7, 0.5))
  twice = augment.random_crop_flip(crops, seed=7, step=0)
  assert testing.differs(result.model, testing.first_sgd_step(model, data, twice, y, 7, 0.5))
