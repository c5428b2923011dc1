"""Image-classification datasets by name, as unbatched `tf.data` in the tfadv contract.

Every dataset comes back as a `DatasetInfo` whose `train` and `test` yield
`(image float32 [H, W, C] in [0, 1], label int32 scalar)`, unshuffled and unbatched: the
trainer shuffles (seeded) and batches per replica. Both splits have a deterministic
order for a given `DataConfig`.

Built-in names:
  * `fashion_mnist` (default): the idx `.gz` files of Fashion-MNIST, read from
    `data_dir`, Debian's `dataset-fashion-mnist` package or the Keras cache, so it works
    without network; tfds (which downloads) only when none of these has the files.
  * `digits`: scikit-learn's 1797 real 8x8 digits, split per class; for fast tests.
  * `folder`: an image folder under `data_dir` (see `tfadv.data.folder`); this is how
    17 Flowers, ImageNet subsets or Dogs-vs-Cats come in.
Any other name is a tfds image-classification dataset (`cifar10`, `mnist`, ...), read
from `data_dir` (tfds' data_dir) and downloaded there when not yet prepared.

Example:

  info = load(DataConfig(name="digits", image_size=(16, 16)))
  model = zoo.build_model(model_config, info.image_shape, info.num_classes)
  for images, labels in info.test.batch(256):
    ...
"""

import dataclasses
import difflib
import gzip
import os
from typing import Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from tfadv.data import folder as folder_lib
from tfadv.data import images as images_lib

BUILTIN_DATASETS = ("fashion_mnist", "digits", "folder")

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Where the idx files may already be, after `config.data_dir`: Debian's package, then
# the cache `keras.datasets.fashion_mnist.load_data()` fills.
FASHION_MNIST_DIRS = (
    "/usr/share/datasets/fashion-mnist",
    os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "datasets",
                 "fashion-mnist"),
)

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions.
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension.


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """A dataset split into train and test, with what a model needs to know about it.

  Attributes:
    name: the dataset name (`DataConfig.name`).
    train: unbatched tf.data of (image float32 [H, W, C] in [0, 1], label int32 []),
      deterministic order for a given config; not shuffled.
    test: the same for the test split.
    num_classes: number of classes K; labels are in [0, K).
    image_shape: (H, W, C) as Python ints.
    class_names: name of each label, as strings.
    num_train: number of training examples when known, else None.
    num_test: number of test examples when known, else None.
  """
  name: str
  train: tf.data.Dataset
  test: tf.data.Dataset
  num_classes: int
  image_shape: Tuple[int, int, int]
  class_names: Tuple[str, ...]
  num_train: Optional[int]
  num_test: Optional[int]


def available_datasets():
  """The built-in dataset names.

  Any tfds image-classification name (see `tfds.list_builders()`) is accepted by `load`
  too, as is a dataset already prepared in tfds format under `DataConfig.data_dir`.
  """
  return BUILTIN_DATASETS


def load(config):
  """Loads the dataset `config` names.

  Args:
    config: a `tfadv.config.DataConfig`; it is validated here.

  Returns:
    A `DatasetInfo`. Images are resized to `config.image_size` when set (bilinear, with
    antialiasing when shrinking, values kept in [0, 1]).

  Raises:
    ValueError: an invalid config, an unknown dataset name (the message lists the
      built-in names and suggests a close match), or bad files (a corrupt idx file, a
      malformed image folder; the message names the path).
  """
  config.validate()
  name = config.name
  if name == "fashion_mnist":
    return _load_fashion_mnist(config)
  if name == "digits":
    return _load_digits(config)
  if name == "folder":
    return _load_folder(config)
  return _load_tfds(config)


# --- Fashion-MNIST from idx files --------------------------------------------------------


def find_fashion_mnist(data_dir=None):
  """The first directory holding all four Fashion-MNIST idx files, or None."""
  candidates = ((data_dir,) if data_dir else ()) + FASHION_MNIST_DIRS
  wanted = FASHION_MNIST_FILES["train"] + FASHION_MNIST_FILES["test"]
  for directory in candidates:
    if all(os.path.isfile(os.path.join(directory, f)) for f in wanted):
      return directory
  return None


def read_idx(path, expected_magic):
  """Reads a gzipped idx file (the MNIST format) into a uint8 numpy array.

  Args:
    path: the `.gz` file.
    expected_magic: 2051 for images (N x H x W), 2049 for labels (N).

  Returns:
    The array, shaped by the dimensions in the file's header.

  Raises:
    ValueError: the file is not gzip, has another magic number, or holds fewer or more
      bytes than its header announces (a truncated download).
  """
  kind = "image" if expected_magic == _IDX_IMAGES_MAGIC else "label"
  try:
    with gzip.open(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:  # BadGzipFile is an OSError.
    raise ValueError(f"Invalid idx file {path!r}: expected a complete gzip-compressed idx "
                     f"{kind} file; could not decompress it ({e})") from None
  ndim = expected_magic - 2048
  header = 4 * (1 + ndim)
  if len(data) < header:
    raise ValueError(f"Invalid idx file {path!r}: expected a {header}-byte idx header; "
                     f"received a {len(data)}-byte file")
  magic = int.from_bytes(data[:4], "big")
  if magic != expected_magic:
    raise ValueError(f"Invalid idx file {path!r}: expected an idx {kind} file (magic "
                     f"number {expected_magic}); received magic number {magic}")
  shape = tuple(int.from_bytes(data[4 * (i + 1):4 * (i + 2)], "big") for i in range(ndim))
  expected = int(np.prod(shape))
  if len(data) - header != expected:
    raise ValueError(f"Invalid idx file {path!r}: expected {expected} bytes of data for "
                     f"shape {shape}; received {len(data) - header} (truncated or corrupt)")
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _check_fashion_mnist_dir(data_dir):
  """An explicit data_dir must hold the idx files (or a prepared tfds copy): never another
  copy of the data silently."""
  if not os.path.isdir(data_dir):
    raise NotADirectoryError(f"Invalid data_dir: expected a directory holding the "
                             f"Fashion-MNIST idx files; {data_dir!r} "
                             f"{'is a file' if os.path.exists(data_dir) else 'does not exist'}")
  if os.path.isdir(os.path.join(data_dir, "fashion_mnist")):
    return False  # A tfds data_dir with fashion_mnist prepared.
  wanted = FASHION_MNIST_FILES["train"] + FASHION_MNIST_FILES["test"]
  missing = [f for f in wanted if not os.path.isfile(os.path.join(data_dir, f))]
  if missing:
    raise FileNotFoundError(f"Invalid data_dir: expected the Fashion-MNIST idx files in "
                            f"{data_dir!r} (or a tfds data_dir with fashion_mnist/); missing "
                            f"{', '.join(missing)}")
  return True


def _load_fashion_mnist(config):
  if config.data_dir and not _check_fashion_mnist_dir(config.data_dir):
    return _load_tfds(config)
  directory = find_fashion_mnist(config.data_dir)
  if directory is None:
    logging.info("Fashion-MNIST idx files not found in %s; using tfds (downloads).",
                 ((config.data_dir,) if config.data_dir else ()) + FASHION_MNIST_DIRS)
    return _load_tfds(config)
  splits = {}
  for split, (images_file, labels_file) in FASHION_MNIST_FILES.items():
    images_path = os.path.join(directory, images_file)
    labels_path = os.path.join(directory, labels_file)
    images = read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, _IDX_LABELS_MAGIC)
    if len(images) != len(labels):
      raise ValueError(f"Invalid idx files {images_path!r}, {labels_path!r}: expected as many "
                       f"labels as images; received {len(labels)} labels for "
                       f"{len(images)} images")
    if labels.max(initial=0) >= len(FASHION_MNIST_CLASSES):
      raise ValueError(f"Invalid idx file {labels_path!r}: expected labels in [0, 10); "
                       f"received label {labels.max()}")
    splits[split] = (images[..., None], labels.astype(np.int32))
  return _from_arrays("fashion_mnist", splits, FASHION_MNIST_CLASSES, config.image_size)


# --- scikit-learn digits -----------------------------------------------------------------


def _load_digits(config):
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top  # Only here.
  digits = sk_datasets.load_digits()
  images = (digits.images / 16.0).astype(np.float32)[..., None]  # Pixels are 0..16.
  labels = digits.target.astype(np.int32)
  train, test = folder_lib.split_per_class(labels, config.test_fraction, config.seed)
  splits = {"train": (images[train], labels[train]), "test": (images[test], labels[test])}
  class_names = tuple(str(d) for d in range(10))
  return _from_arrays("digits", splits, class_names, config.image_size)


def _from_arrays(name, splits, class_names, image_size):
  """DatasetInfo from {"train"/"test": (images NHWC uint8 or float in [0, 1], labels)}."""
  datasets = {}
  for split, (images, labels) in splits.items():
    # Integer pixels stay uint8 in the graph (a quarter of the memory) until mapped.
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    datasets[split] = ds.map(lambda x, y: (_prepare_image(x, image_size), y),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  height, width, channels = splits["train"][0].shape[1:]
  if image_size:
    height, width = image_size
  return DatasetInfo(
      name=name, train=datasets["train"], test=datasets["test"],
      num_classes=len(class_names),
      image_shape=(int(height), int(width), int(channels)),
      class_names=tuple(class_names),
      num_train=len(splits["train"][1]), num_test=len(splits["test"][1]))


def _prepare_image(image, image_size):
  """float32 in [0, 1], resized if asked: the function the served signatures call too."""
  return images_lib.to_model_input(image, image_size)


# --- image folders -----------------------------------------------------------------------


def _load_folder(config):
  """An image folder as DatasetInfo; see `tfadv.data.folder` for the layouts.

  With `image_size` None, images keep their size when all share one; otherwise every
  image is resized to the size of the first training image (in the listing's order), and
  a warning says so. Channels: 1 when every image is grayscale, else 3 (RGB; alpha is
  dropped, palette GIFs are expanded).

  A plain tf.data pipeline over the file list is used rather than
  `tfds.folder_dataset.ImageFolder`: the files must be listed anyway to validate them and
  to split the class-folders layout per class with a seed (ImageFolder only knows the
  split-folders layout), and ImageFolder yields uint8 images of varying shape that would
  still need this same decode-convert-resize map.
  """
  listing = folder_lib.scan(config.data_dir, config.test_fraction, config.seed)
  size = tuple(config.image_size) if config.image_size else None
  if size is None and not listing.uniform_size:
    size = listing.first_size
    logging.warning("Images under %s have different sizes and image_size is not set: "
                    "resizing all to the first image's size %s.", config.data_dir, size)
  height, width = size or listing.first_size
  channels = listing.channels

  def decode(path, label):
    # decode_image reads JPEG/PNG/BMP/GIF by content; expand_animations=False keeps a
    # GIF's first frame as a 3-D image.
    image = _prepare_image(images_lib.decode(tf.io.read_file(path), channels), size)
    image.set_shape((height, width, channels))
    return image, label

  def dataset(files, labels):
    ds = tf.data.Dataset.from_tensor_slices((list(files), np.asarray(labels, np.int32)))
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  return DatasetInfo(
      name="folder",
      train=dataset(listing.train_files, listing.train_labels),
      test=dataset(listing.test_files, listing.test_labels),
      num_classes=len(listing.class_names),
      image_shape=(int(height), int(width), int(channels)),
      class_names=listing.class_names,
      num_train=len(listing.train_files),
      num_test=len(listing.test_files))


# --- tfds --------------------------------------------------------------------------------


def _load_tfds(config):
  """A tfds image-classification dataset: `train` and `test` (or a fallback) splits.

  The test split is `test`, else `validation`, else the last `test_fraction` of
  `train` (by record order, which tfds fixed when preparing the data). The builder API is
  used rather than `tfds.load` because the splits are chosen from the builder's info.
  """
  # tfds is imported here: it is heavy and only this path needs it.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  name = config.name
  _check_tfds_name(tfds, name, config.data_dir)
  builder = tfds.builder(name, data_dir=config.data_dir)
  if not builder.is_prepared():
    builder.download_and_prepare()  # Downloads: users only; tests prepare data offline.
  info = builder.info

  keys = info.supervised_keys
  if not (isinstance(keys, (tuple, list)) and len(keys) == 2
          and all(isinstance(k, str) for k in keys)):
    raise ValueError(f"Invalid dataset: expected an image-classification dataset with "
                     f"(image, label) supervised keys; received dataset={name!r} with "
                     f"supervised_keys={keys!r}")
  image_feature, label_feature = info.features[keys[0]], info.features[keys[1]]
  if (not isinstance(label_feature, tfds.features.ClassLabel)
      or len(image_feature.shape) != 3):
    raise ValueError(f"Invalid dataset: expected an image-classification dataset (an "
                     f"[H, W, C] image and a ClassLabel); received dataset={name!r} with "
                     f"{keys[0]}={image_feature!r}, {keys[1]}={label_feature!r}")
  height, width, channels = image_feature.shape
  if config.image_size:
    height, width = config.image_size
  if height is None or width is None or channels is None:
    raise ValueError(f"Invalid image_size: expected (height, width) because dataset {name!r} "
                     f"has images of varying shape {image_feature.shape}; "
                     f"received image_size={config.image_size!r}")

  splits = info.splits
  if "train" not in splits:
    raise ValueError(f"Invalid dataset: expected a 'train' split; received dataset={name!r} "
                     f"with splits {sorted(splits)}")
  train_split, test_split = "train", None
  for candidate in ("test", "validation"):
    if candidate in splits:
      test_split = candidate
      break
  if test_split is None:
    total = splits["train"].num_examples
    n_test = min(max(int(round(total * config.test_fraction)), 1), total - 1)
    train_split, test_split = f"train[:{total - n_test}]", f"train[{total - n_test}:]"
    logging.info("Dataset %s has no test or validation split: testing on %s.", name,
                 test_split)

  image_size = tuple(config.image_size) if config.image_size else None

  def prepare(image, label):
    image = _prepare_image(image, image_size)
    image.set_shape((height, width, channels))
    return image, tf.cast(label, tf.int32)

  def dataset(split):
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  train, test = dataset(train_split), dataset(test_split)
  return DatasetInfo(
      name=name, train=train, test=test,
      num_classes=int(label_feature.num_classes),
      image_shape=(int(height), int(width), int(channels)),
      class_names=tuple(str(n) for n in label_feature.names),
      num_train=_cardinality(train), num_test=_cardinality(test))


def _check_tfds_name(tfds, name, data_dir):
  """Raises a ValueError with the valid names unless tfds knows `name`.

  Known means a registered builder (`tfds.list_builders()`, without the community
  catalogue, which needs network) or a dataset already prepared under `data_dir`.
  `name` may carry a config and a version (`imagenet_resized/32x32:0.1.0`).
  """
  base = name.split(":")[0].split("/")[0]
  builders = tfds.list_builders(with_community_datasets=False)
  if base in builders:
    return
  if data_dir and os.path.isdir(os.path.join(data_dir, base)):
    return
  candidates = list(dict.fromkeys(list(BUILTIN_DATASETS) + list(builders)))  # Deduplicated.
  close = difflib.get_close_matches(base, candidates, n=3)
  hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
  raise ValueError(
      f"Invalid dataset: expected one of the built-in datasets "
      f"[{', '.join(BUILTIN_DATASETS)}] or a tfds image-classification name (see "
      f"tfds.list_builders(), e.g. cifar10, mnist); received dataset={name!r}.{hint}")


def _cardinality(dataset):
  n = int(dataset.cardinality())
  return n if n >= 0 else None
