"""Listing, validating and splitting an image folder (one sub-folder per class).

Two layouts are accepted under the root:

  root/train/<class>/<image>  and  root/test/<class>/<image>   (a given split)
  root/<class>/<image>                                         (split here, per class)

Everything a user can get wrong is checked when the folder is scanned, before any
TensorFlow op runs, so a bad folder fails at once with the path at fault rather than
halfway through an epoch. This module is pure Python (PIL and numpy); decoding into
`tf.data` lives in `tfadv.data.datasets`.
"""

import dataclasses
import os
from typing import Tuple

import numpy as np
from PIL import Image

# Formats both PIL (to verify) and `tf.io.decode_image` (to decode) read.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
# PIL modes without colour: a folder of only these is read with one channel.
_GRAY_MODES = frozenset(("1", "L", "LA", "I", "I;16", "I;16B", "I;16L"))


@dataclasses.dataclass(frozen=True)
class FolderListing:
  """The files of a validated image folder, split into train and test.

  Attributes:
    class_names: sorted class folder names; a label is an index into it.
    train_files: paths of the training images.
    train_labels: int labels of `train_files`.
    test_files: paths of the test images.
    test_labels: int labels of `test_files`.
    first_size: (height, width) of the first training image (in listing order).
    uniform_size: True when every image has the size `first_size`.
    channels: 1 when every image is grayscale, else 3.
  """
  class_names: Tuple[str, ...]
  train_files: Tuple[str, ...]
  train_labels: Tuple[int, ...]
  test_files: Tuple[str, ...]
  test_labels: Tuple[int, ...]
  first_size: Tuple[int, int]
  uniform_size: bool
  channels: int


def split_per_class(labels, fraction, seed):
  """Seeded per-class split: indices of train and test examples, each ascending.

  Each class keeps `round(n * fraction)` of its `n` examples for testing, at least one
  and at most `n - 1` when it has two or more, so every class appears on both sides
  whenever it can; a single-example class stays in train.

  Args:
    labels: 1-D int array-like.
    fraction: fraction of each class held out, in (0, 1).
    seed: seed of the random choice.

  Returns:
    (train_indices, test_indices), int64 numpy arrays.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  test = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    n = len(members)
    n_test = min(max(int(round(n * fraction)), 1), n - 1) if n >= 2 else 0
    test.append(rng.permutation(members)[:n_test])
  test = np.sort(np.concatenate(test)) if test else np.zeros([0], np.int64)
  train = np.setdiff1d(np.arange(len(labels)), test)
  return train.astype(np.int64), test.astype(np.int64)


def scan(root, test_fraction=0.2, seed=0):
  """Lists, checks and splits the image folder at `root`.

  The train order is a seeded permutation (so a trainer's finite shuffle buffer sees
  every class even in a folder of 100k class-sorted files); the test order takes the
  classes in turn, so the first `n` test examples (a quick evaluation) are balanced.

  Args:
    root: the folder, in either layout described in the module docstring.
    test_fraction: for the class-folders layout, fraction of each class held out for testing.
    seed: seed of that split and of the train order.

  Returns:
    A `FolderListing`.

  Raises:
    ValueError: `root` is missing, has no class folders, has a class folder without
      images, has train/ and test/ with different classes (or only one of them), or
      holds an image file PIL cannot read.
  """
  if not root or not os.path.isdir(root):
    raise ValueError(
        "Invalid data_dir: expected an existing image folder (one sub-folder per class, "
        f"or train/ and test/ sub-folders holding them) for dataset='folder'; "
        f"received data_dir={root!r}")
  has_train = os.path.isdir(os.path.join(root, "train"))
  has_test = os.path.isdir(os.path.join(root, "test"))
  if has_train != has_test:
    present, absent = ("train", "test") if has_train else ("test", "train")
    raise ValueError(
        f"Invalid image folder {root!r}: expected both train/ and test/ sub-folders or "
        f"neither; found {present}/ without {absent}/")

  if has_train:
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    class_names = _class_folders(train_dir)
    test_classes = _class_folders(test_dir)
    if class_names != test_classes:
      only_train = sorted(set(class_names) - set(test_classes))
      only_test = sorted(set(test_classes) - set(class_names))
      raise ValueError(
          f"Invalid image folder {root!r}: expected the same class folders in train/ and "
          f"test/; only in train/: {only_train}, only in test/: {only_test}")
    train_files, train_labels = _list_images(train_dir, class_names)
    test_files, test_labels = _list_images(test_dir, class_names)
  else:
    class_names = _class_folders(root)
    files, labels = _list_images(root, class_names)
    train_idx, test_idx = split_per_class(labels, test_fraction, seed)
    train_files, train_labels = [files[i] for i in train_idx], [labels[i] for i in train_idx]
    test_files, test_labels = [files[i] for i in test_idx], [labels[i] for i in test_idx]

  order = np.random.default_rng(seed).permutation(len(train_files))
  train_files = [train_files[i] for i in order]
  train_labels = [train_labels[i] for i in order]
  order = _round_robin(test_labels)
  test_files = [test_files[i] for i in order]
  test_labels = [test_labels[i] for i in order]

  sizes, modes = [], []
  for path in list(train_files) + list(test_files):
    size, mode = _verify(path)
    sizes.append(size)
    modes.append(mode)
  return FolderListing(
      class_names=tuple(class_names),
      train_files=tuple(train_files),
      train_labels=tuple(int(label) for label in train_labels),
      test_files=tuple(test_files),
      test_labels=tuple(int(label) for label in test_labels),
      first_size=sizes[0],
      uniform_size=all(size == sizes[0] for size in sizes),
      channels=1 if all(mode in _GRAY_MODES for mode in modes) else 3)


def _class_folders(directory):
  names = sorted(entry.name for entry in os.scandir(directory)
                 if entry.is_dir() and not entry.name.startswith("."))
  if not names:
    raise ValueError(
        f"Invalid image folder {directory!r}: expected one sub-folder of images per class; "
        "found no sub-folders")
  return names


def _list_images(directory, class_names):
  """Sorted image paths of every class folder and their labels; no class may be empty."""
  files, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(directory, name)
    images = sorted(
        entry.path for entry in os.scandir(class_dir)
        if entry.is_file() and not entry.name.startswith(".")
        and entry.name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
      raise ValueError(
          f"Invalid image folder: expected at least one image "
          f"({', '.join(IMAGE_EXTENSIONS)}) in class folder {class_dir!r}; found none")
    files.extend(images)
    labels.extend([label] * len(images))
  return files, labels


def _verify(path):
  """(height, width) and PIL mode of an image file, after PIL's cheap integrity check.

  `verify()` parses the file's structure without decoding pixels (for PNG it checks
  every chunk's CRC, which catches truncation); the extension is not trusted, the
  content's format is.
  """
  try:
    with Image.open(path) as image:
      image_format, size, mode = image.format, image.size, image.mode
      image.verify()
  except Exception as e:  # pylint: disable=broad-except  # PIL raises many types.
    raise ValueError(
        f"Invalid image file {path!r}: expected a readable JPEG, PNG, BMP or GIF image; "
        f"PIL reported {type(e).__name__}: {e}") from None
  if image_format not in _PIL_FORMATS:
    raise ValueError(
        f"Invalid image file {path!r}: expected a JPEG, PNG, BMP or GIF image; "
        f"received a {image_format} image")
  width, height = size
  return (height, width), mode


def _round_robin(labels):
  """Indices that take one example of each class in turn, keeping order within a class."""
  labels = np.asarray(labels)
  rank = np.zeros(len(labels), np.int64)  # position of each example within its class
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    rank[members] = np.arange(len(members))
  return np.lexsort((labels, rank))
