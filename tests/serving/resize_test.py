"""One resize for training and serving: an image file gets the same logits from the served
`predict_images` signature as from the training input pipeline (tfadv.data.images)."""

import os

import numpy as np
from PIL import Image
import pytest
from sklearn import datasets as sk_datasets
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.data import folder as folder_lib


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
  """Grayscale 40x48 crops of scikit-learn's two real photos as PNG files, one class each:
  5x shrinking to the served model's 8x8, where antialiasing changes the pixels."""
  root = tmp_path_factory.mktemp("photos")
  for cls, photo in zip(("china", "flower"), sk_datasets.load_sample_images().images):
    for split, indices in (("train", range(2)), ("test", range(2, 6))):
      directory = root / split / cls
      os.makedirs(directory, exist_ok=True)
      for i in indices:
        crop = photo[31 * i:31 * i + 40, 53 * i:53 * i + 48]
        Image.fromarray(crop).convert("L").save(directory / f"img{i}.png")
  return str(root)


def test_predict_images_gives_the_logits_of_the_training_pipeline(served, photo_folder):
  height, width, channels = (int(d) for d in served.model.input_shape[1:])
  config = config_lib.DataConfig(name="folder", data_dir=photo_folder,
                                 image_size=(height, width))
  info = datasets.load(config)
  assert info.image_shape == (height, width, channels)
  pipeline = next(iter(info.test.batch(64)))[0]
  files = folder_lib.scan(photo_folder, config.test_fraction, config.seed).test_files
  blobs = [open(f, "rb").read() for f in files]
  assert len(blobs) == int(pipeline.shape[0]) == 8

  served_logits = tf.saved_model.load(served.version_dir).signatures["predict_images"](
      image_bytes=tf.constant(blobs))["logits"].numpy()
  pipeline_logits = served.model(pipeline, training=False).numpy()
  np.testing.assert_allclose(served_logits, pipeline_logits, rtol=1e-5, atol=1e-5)

  # The check has teeth: plain bilinear (what predict_images did) gives other pixels and
  # other logits on these 5x-shrunk photos.
  plain = tf.stack([tf.image.resize(tf.io.decode_png(b, channels=1), (height, width),
                                    method="bilinear") / 255.0 for b in blobs])
  assert float(tf.reduce_max(tf.abs(plain - pipeline))) > 0.02
  plain_logits = served.model(plain, training=False).numpy()
  assert np.abs(plain_logits - pipeline_logits).max() > 1e-3
