"""Tests of tfadv.data.datasets and tfadv.data.folder on real pixels, without network.

Fashion-MNIST comes from Debian's `dataset-fashion-mnist` files, digits and photos from
scikit-learn, and the tfds path reads datasets prepared here offline with
`tfds.dataset_builders.store_as_tfds_dataset` into a temporary data_dir.
"""

import contextlib
import gzip
import os
import socket

import numpy as np
from PIL import Image
import pytest
from sklearn import datasets as sk_datasets
import tensorflow as tf

from tfadv.config import DataConfig
from tfadv.data import datasets
from tfadv.data import folder as folder_lib

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


@contextlib.contextmanager
def _network_disabled():
  """Python-level connection attempts fail at once instead of retrying for minutes."""

  def refuse(*args, **kwargs):
    raise OSError("network access is disabled in tests")

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(socket.socket, "connect", refuse)
    patch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture(autouse=True)
def no_network():
  with _network_disabled():
    yield


def _arrays(dataset):
  """All (images, labels) of an unbatched dataset as numpy arrays."""
  batches = list(dataset.batch(10_000).as_numpy_iterator())
  return (np.concatenate([images for images, _ in batches]),
          np.concatenate([labels for _, labels in batches]))


def _write_idx(path, array, magic):
  header = magic.to_bytes(4, "big") + b"".join(
      d.to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _write_small_fashion_mnist(directory, n_train=100, n_test=50):
  """The first examples of the real files, re-written as idx files in `directory`."""
  for split, n in (("train", n_train), ("test", n_test)):
    images_file, labels_file = datasets.FASHION_MNIST_FILES[split]
    images = datasets.read_idx(os.path.join(DEBIAN_DIR, images_file), 2051)[:n]
    labels = datasets.read_idx(os.path.join(DEBIAN_DIR, labels_file), 2049)[:n]
    _write_idx(os.path.join(directory, images_file), images, 2051)
    _write_idx(os.path.join(directory, labels_file), labels, 2049)


def test_available_datasets():
  assert datasets.available_datasets() == ("fashion_mnist", "digits", "folder")


# --- Fashion-MNIST -----------------------------------------------------------------------


def test_fashion_mnist_loads_from_debian_files():
  assert datasets.find_fashion_mnist() == DEBIAN_DIR
  info = datasets.load(DataConfig(name="fashion_mnist"))
  assert info.name == "fashion_mnist"
  assert info.image_shape == (28, 28, 1)
  assert info.num_classes == 10
  assert info.class_names[:2] == ("T-shirt/top", "Trouser")
  assert info.class_names[-1] == "Ankle boot" and len(info.class_names) == 10
  assert (info.num_train, info.num_test) == (60_000, 10_000)

  x, y = _arrays(info.train)
  xt, yt = _arrays(info.test)
  assert x.shape == (60_000, 28, 28, 1) and x.dtype == np.float32
  assert xt.shape == (10_000, 28, 28, 1)
  assert y.dtype == np.int32 and y.shape == (60_000,)
  for images in (x, xt):
    assert images.min() == 0.0 and images.max() == 1.0
  # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
  np.testing.assert_array_equal(np.bincount(y, minlength=10), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(yt, minlength=10), [1000] * 10)
  # File order is kept: the pixels are the file's bytes / 255.
  raw = datasets.read_idx(os.path.join(DEBIAN_DIR, "t10k-images-idx3-ubyte.gz"), 2051)
  np.testing.assert_allclose(xt[:100, ..., 0], raw[:100] / 255.0, atol=1e-6)
  assert yt[0] == 9  # The first test image is an ankle boot.


def test_fashion_mnist_data_dir_comes_first_and_resizes(tmp_path):
  _write_small_fashion_mnist(tmp_path)
  info = datasets.load(DataConfig(name="fashion_mnist", data_dir=str(tmp_path),
                                  image_size=(14, 20)))
  assert (info.num_train, info.num_test) == (100, 50)
  assert info.image_shape == (14, 20, 1)
  x, y = _arrays(info.train)
  assert x.shape == (100, 14, 20, 1)
  assert 0.0 <= x.min() and x.max() <= 1.0
  full = datasets.load(DataConfig(name="fashion_mnist"))
  x_full, y_full = _arrays(full.train.take(100))
  np.testing.assert_array_equal(y, y_full)
  np.testing.assert_allclose(
      x, tf.image.resize(x_full, (14, 20), antialias=True).numpy().clip(0, 1), atol=1e-6)


def _truncate_gzip(path):
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


def _drop_pixels(path):
  with gzip.open(path, "rb") as f:
    data = f.read()
  with gzip.open(path, "wb") as f:
    f.write(data[:-28 * 28 - 5])


def _swap_magic(path):
  with gzip.open(path, "rb") as f:
    data = f.read()
  with gzip.open(path, "wb") as f:
    f.write((2049).to_bytes(4, "big") + data[4:])


@pytest.mark.parametrize("corrupt, message", [
    (_truncate_gzip, "expected a complete gzip-compressed idx image file"),
    (_drop_pixels, r"expected 78400 bytes of data for shape \(100, 28, 28\)"),
    (_swap_magic, r"expected an idx image file \(magic number 2051\); received magic "
                  r"number 2049"),
])
def test_corrupt_idx_file_names_file_and_expectation(tmp_path, corrupt, message):
  _write_small_fashion_mnist(tmp_path)
  bad = os.path.join(tmp_path, "train-images-idx3-ubyte.gz")
  corrupt(bad)
  with pytest.raises(ValueError, match=message) as error:
    datasets.load(DataConfig(name="fashion_mnist", data_dir=str(tmp_path)))
  assert bad in str(error.value)


# --- digits ------------------------------------------------------------------------------


def test_digits_split_sizes_values_and_determinism():
  # 0.3, not the default 0.2: a fraction ignored in favour of the default fails here.
  config = DataConfig(name="digits", test_fraction=0.3, seed=3)
  info = datasets.load(config)
  assert info.image_shape == (8, 8, 1) and info.num_classes == 10
  assert info.class_names == tuple("0123456789")
  assert info.num_train + info.num_test == 1797
  x, y = _arrays(info.train)
  xt, yt = _arrays(info.test)
  assert len(x) == info.num_train and len(xt) == info.num_test
  assert 0.0 <= x.min() and x.max() == 1.0  # 16 / 16 occurs.
  # Stratified: each class holds out round(30%) of its examples.
  all_labels = sk_datasets.load_digits().target
  expected_test = np.round(np.bincount(all_labels) * 0.3).astype(int)
  np.testing.assert_array_equal(np.bincount(yt, minlength=10), expected_test)
  # The two sides partition the real images.
  every = sk_datasets.load_digits().images.reshape(1797, -1) / 16.0
  split = np.concatenate([x, xt]).reshape(1797, -1)
  assert sorted(map(bytes, np.float32(every))) == sorted(map(bytes, np.float32(split)))

  again_x, again_y = _arrays(datasets.load(config).train)
  np.testing.assert_array_equal(x, again_x)
  np.testing.assert_array_equal(y, again_y)
  other_xt, _ = _arrays(datasets.load(DataConfig(name="digits", test_fraction=0.3, seed=4)).test)
  assert other_xt.shape == xt.shape and not np.array_equal(other_xt, xt)


def test_digits_resized():
  info = datasets.load(DataConfig(name="digits", image_size=(16, 16)))
  x, _ = _arrays(info.test)
  assert info.image_shape == (16, 16, 1) and x.shape[1:] == (16, 16, 1)
  assert 0.0 <= x.min() and x.max() <= 1.0


def test_split_per_class_keeps_every_class_on_both_sides():
  labels = np.array([0] * 10 + [1] * 2 + [2])
  train, test = folder_lib.split_per_class(labels, 0.2, seed=0)
  assert sorted(np.concatenate([train, test])) == list(range(13))
  np.testing.assert_array_equal(np.bincount(labels[test], minlength=3), [2, 1, 0])


# --- image folders -----------------------------------------------------------------------

_FORMATS = (("png", "PNG"), ("bmp", "BMP"), ("jpg", "JPEG"), ("gif", "GIF"))


@pytest.fixture(scope="module")
def photos():
  """scikit-learn's two real photos (china, flower), uint8 427x640x3."""
  return dict(zip(("china", "flower"), sk_datasets.load_sample_images().images))


def _crop(photo, index, size):
  top, left = 13 * index, 29 * index
  return photo[top:top + size[0], left:left + size[1]]


def _write_class(directory, photo, count, size=(40, 48), formats=_FORMATS, start=0,
                 mode=None):
  """Saves `count` crops of `photo` into `directory`; returns {file name: crop array}."""
  os.makedirs(directory, exist_ok=True)
  written = {}
  for i in range(count):
    crop = _crop(photo, start + i, size)
    extension, image_format = formats[i % len(formats)]
    name = f"img{start + i:03d}.{extension}"
    image = Image.fromarray(crop)
    if mode:
      image = image.convert(mode)
    image.save(os.path.join(directory, name), format=image_format)
    written[name] = np.asarray(image)
  return written


def _split_folder(root, photos, train=6, test=4, **kwargs):
  for cls, photo in photos.items():
    _write_class(os.path.join(root, "train", cls), photo, train, **kwargs)
    _write_class(os.path.join(root, "test", cls), photo, test, start=train, **kwargs)


def test_folder_with_train_and_test_reads_real_pixels(tmp_path, photos):
  _split_folder(tmp_path, photos, formats=(("png", "PNG"), ("bmp", "BMP")))
  info = datasets.load(DataConfig(name="folder", data_dir=str(tmp_path)))
  assert info.class_names == ("china", "flower")
  assert info.image_shape == (40, 48, 3)  # All one size: kept.
  assert (info.num_train, info.num_test) == (12, 8)
  xt, yt = _arrays(info.test)
  # Test order takes the classes in turn; lossless files decode to their exact pixels.
  np.testing.assert_array_equal(yt, [0, 1] * 4)
  np.testing.assert_allclose(xt[0], _crop(photos["china"], 6, (40, 48)) / 255.0, atol=1e-6)
  np.testing.assert_allclose(xt[1], _crop(photos["flower"], 6, (40, 48)) / 255.0,
                             atol=1e-6)
  x, y = _arrays(info.train)
  assert sorted(y) == [0] * 6 + [1] * 6 and x.dtype == np.float32
  again, _ = _arrays(datasets.load(DataConfig(name="folder", data_dir=str(tmp_path))).train)
  np.testing.assert_array_equal(x, again)


def test_folder_resizes_all_formats(tmp_path, photos):
  _split_folder(tmp_path, photos, train=8, test=4)  # PNG, BMP, JPEG and GIF files.
  info = datasets.load(DataConfig(name="folder", data_dir=str(tmp_path), image_size=(16, 24)))
  assert info.image_shape == (16, 24, 3)
  x, y = _arrays(info.train)
  assert x.shape == (16, 16, 24, 3)
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
  # Each resized image is close to the resized original crop (JPEG/GIF are lossy).
  xt, yt = _arrays(info.test)
  expected = tf.image.resize(_crop(photos["china"], 8, (40, 48)) / 255.0, (16, 24),
                             antialias=True).numpy()
  assert np.abs(xt[0] - expected).mean() < 0.01  # img008 is a PNG.


def test_folder_of_class_folders_is_split_per_class_with_seed(tmp_path, photos):
  for cls, photo in photos.items():
    _write_class(os.path.join(tmp_path, cls), photo, 10)
  (tmp_path / "notes.txt").write_text("not a class folder")  # Files at the root: ignored.
  config = DataConfig(name="folder", data_dir=str(tmp_path), test_fraction=0.3,
                      seed=1, image_size=(20, 20))
  info = datasets.load(config)
  assert (info.num_train, info.num_test) == (14, 6)
  _, y = _arrays(info.train)
  xt, yt = _arrays(info.test)
  assert sorted(y) == [0] * 7 + [1] * 7 and list(yt) == [0, 1] * 3
  again, _ = _arrays(datasets.load(config).test)
  np.testing.assert_array_equal(xt, again)
  other, _ = _arrays(datasets.load(DataConfig(
      name="folder", data_dir=str(tmp_path), test_fraction=0.3, seed=2,
      image_size=(20, 20))).test)
  assert not np.array_equal(other, xt)


def test_folder_of_mixed_sizes_uses_first_image_size(tmp_path, photos):
  _write_class(tmp_path / "china", photos["china"], 3, size=(30, 50))
  _write_class(tmp_path / "flower", photos["flower"], 3, size=(60, 40))
  info = datasets.load(DataConfig(name="folder", data_dir=str(tmp_path), seed=5))
  first = folder_lib.scan(str(tmp_path), 0.2, 5).first_size
  assert first in ((30, 50), (60, 40))
  assert info.image_shape == first + (3,)
  x, _ = _arrays(info.train)
  assert x.shape[1:] == first + (3,)


def test_grayscale_folder_has_one_channel(tmp_path, photos):
  for cls, photo in photos.items():
    _write_class(tmp_path / cls, photo, 4, formats=(("png", "PNG"),), mode="L")
  info = datasets.load(DataConfig(name="folder", data_dir=str(tmp_path)))
  assert info.image_shape == (40, 48, 1)
  x, _ = _arrays(info.test)
  assert x.shape[1:] == (40, 48, 1)


def _missing(root, photos):
  missing = str(root / "does_not_exist")
  return missing, missing, "expected an existing image folder"


def _no_classes(root, photos):
  (root / "readme.txt").write_text("no class folders here")
  return str(root), str(root), "found no sub-folders"


def _empty_class(root, photos):
  _write_class(root / "china", photos["china"], 2)
  os.makedirs(root / "flower")
  (root / "flower" / "list.txt").write_text("not an image")
  return str(root), str(root / "flower"), "expected at least one image"


def _corrupt_image(root, photos):
  _write_class(root / "china", photos["china"], 2)
  _write_class(root / "flower", photos["flower"], 2)
  (root / "flower" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
  return str(root), str(root / "flower" / "broken.jpg"), "expected a readable JPEG, PNG, BMP or GIF"


def _truncated_png(root, photos):
  _write_class(root / "china", photos["china"], 2, formats=(("png", "PNG"),))
  _write_class(root / "flower", photos["flower"], 2, formats=(("png", "PNG"),))
  path = root / "flower" / "img001.png"
  path.write_bytes(path.read_bytes()[:-200])
  return str(root), str(path), "expected a readable JPEG, PNG, BMP or GIF"


def _mismatch(root, photos):
  _write_class(root / "train" / "china", photos["china"], 2)
  _write_class(root / "train" / "flower", photos["flower"], 2)
  _write_class(root / "test" / "china", photos["china"], 2)
  _write_class(root / "test" / "flowers", photos["flower"], 2)
  return str(root), str(root), (r"expected the same class folders in train/ and test/; only in "
                     r"train/: \['flower'\], only in test/: \['flowers'\]")


def _train_without_test(root, photos):
  _write_class(root / "train" / "china", photos["china"], 2)
  return str(root), str(root), "expected both train/ and test/ sub-folders or neither"


@pytest.mark.parametrize("make_bad_folder", [
    _missing, _no_classes, _empty_class, _corrupt_image, _truncated_png, _mismatch,
    _train_without_test])
def test_bad_folder_raises_naming_path(tmp_path, photos, make_bad_folder):
  data_dir, path, message = make_bad_folder(tmp_path, photos)
  with pytest.raises(ValueError, match=message) as error:
    datasets.load(DataConfig(name="folder", data_dir=data_dir))
  assert path in str(error.value)


def test_folder_without_data_dir_raises():
  with pytest.raises(ValueError, match="received data_dir=None"):
    datasets.load(DataConfig(name="folder"))


# --- tfds --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory, photos):
  """A tfds data_dir prepared offline: `mnist` (train/test), `tf_flowers` (train only)."""
  with _network_disabled():
    return _prepare_tfds_dir(str(tmp_path_factory.mktemp("tfds")), photos)


def _prepare_tfds_dir(data_dir, photos):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Heavy import.
  digits = sk_datasets.load_digits()
  # Real handwritten digits at MNIST's size and dtype.
  images = tf.image.resize(digits.images[:120, ..., None] * 16, (28, 28)).numpy()
  images = images.clip(0, 255).astype(np.uint8)
  labels = digits.target[:120].astype(np.int64)
  mnist = tfds.builder("mnist", data_dir=data_dir)
  tfds.dataset_builders.store_as_tfds_dataset(
      name="mnist", version=str(mnist.version), features=mnist.info.features,
      split_datasets={
          "train": tf.data.Dataset.from_tensor_slices({"image": images[:90],
                                                       "label": labels[:90]}),
          "test": tf.data.Dataset.from_tensor_slices({"image": images[90:],
                                                      "label": labels[90:]})},
      data_dir=data_dir, disable_shuffling=True)

  flowers = tfds.builder("tf_flowers", data_dir=data_dir)
  crops = [_crop(photos["flower" if i % 2 else "china"], i, (30 + i, 40)) for i in range(20)]
  tfds.dataset_builders.store_as_tfds_dataset(
      name="tf_flowers", version=str(flowers.version), features=flowers.info.features,
      split_datasets={"train": tf.data.Dataset.from_generator(
          lambda: ({"image": c, "label": i % 5} for i, c in enumerate(crops)),
          output_signature={"image": tf.TensorSpec((None, 40, 3), tf.uint8),
                            "label": tf.TensorSpec((), tf.int64)})},
      data_dir=data_dir, disable_shuffling=True)

  # An unregistered, non-classification dataset, prepared from files only.
  tfds.dataset_builders.store_as_tfds_dataset(
      name="my_pixels", version="1.0.0",
      features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(8, 8, 1)),
                                           "value": tfds.features.Scalar(np.float32)}),
      split_datasets={"train": tf.data.Dataset.from_tensor_slices(
          {"image": images[:4, :8, :8], "value": np.zeros(4, np.float32)})},
      data_dir=data_dir)
  return data_dir, images, labels


def test_tfds_dataset_loads_offline(tfds_dir):
  data_dir, images, labels = tfds_dir
  info = datasets.load(DataConfig(name="mnist", data_dir=data_dir))
  assert info.image_shape == (28, 28, 1) and info.num_classes == 10
  assert info.class_names == tuple("0123456789")
  assert (info.num_train, info.num_test) == (90, 30)
  x, y = _arrays(info.train)
  xt, yt = _arrays(info.test)
  assert x.dtype == np.float32 and y.dtype == np.int32
  np.testing.assert_allclose(xt, images[90:] / 255.0, atol=1e-6)
  np.testing.assert_array_equal(yt, labels[90:])
  np.testing.assert_array_equal(y, labels[:90])

  resized = datasets.load(DataConfig(name="mnist", data_dir=data_dir, image_size=(32, 32)))
  assert resized.image_shape == (32, 32, 1)
  assert next(iter(resized.test))[0].shape == (32, 32, 1)


def test_tfds_without_test_split_holds_out_end_of_train(tfds_dir):
  data_dir, _, _ = tfds_dir
  info = datasets.load(DataConfig(name="tf_flowers", data_dir=data_dir, image_size=(24, 24),
                                  test_fraction=0.25))
  assert info.class_names[0] == "dandelion" and info.num_classes == 5
  assert (info.num_train, info.num_test) == (15, 5)
  x, y = _arrays(info.train)
  xt, yt = _arrays(info.test)
  assert x.shape == (15, 24, 24, 3) and xt.shape == (5, 24, 24, 3)
  np.testing.assert_array_equal(np.concatenate([y, yt]), np.arange(20) % 5)
  assert 0.0 <= xt.min() and xt.max() <= 1.0


def test_tfds_images_of_varying_size_need_image_size(tfds_dir):
  data_dir, _, _ = tfds_dir
  with pytest.raises(ValueError, match="Invalid image_size: expected .*'tf_flowers'"):
    datasets.load(DataConfig(name="tf_flowers", data_dir=data_dir))


def test_tfds_dataset_without_labels_is_rejected(tfds_dir):
  data_dir, _, _ = tfds_dir
  with pytest.raises(ValueError, match="expected an image-classification dataset"):
    datasets.load(DataConfig(name="my_pixels", data_dir=data_dir))


@pytest.mark.parametrize("name, suggestion", [("fashon_mnist", "fashion_mnist"),
                                              ("cifar_10", "cifar10"),
                                              ("digit", "digits")])
def test_unknown_dataset_lists_valid_names(name, suggestion):
  with pytest.raises(ValueError) as error:
    datasets.load(DataConfig(name=name))
  message = str(error.value)
  assert f"received dataset={name!r}" in message
  assert "[fashion_mnist, digits, folder]" in message
  assert "tfds" in message
  assert f"Did you mean {suggestion!r}" in message
