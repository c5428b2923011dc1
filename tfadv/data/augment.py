"""Training-time augmentation as a pure function of (seed, step).

Random crop after zero padding and a horizontal flip (the CIFAR recipe of Madry et al.,
TRADES, Rice et al.: `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`), drawn with
stateless random ops keyed by `(seed, step)`: batch `step` of a run is augmented the same
way in every run, so a resumed run replays exactly the batches an uninterrupted one sees.
Everything is batched tensor math (no per-example Python), safe inside `tf.data.map`.
"""

import tensorflow as tf

from tfadv import config as config_lib

# Padding of the CIFAR recipe: 4 pixels on a 32x32 image.
_PAD_AT_32 = 4


def crop_padding(height, width):
  """Padding of the random crop for an image size: 4 px at 32x32, scaled with the size.

  Examples: 28x28 -> 4 (3.5 rounded up), 32x32 -> 4, 64x64 -> 8, 224x224 -> 28.
  """
  return max(1, int(_PAD_AT_32 * min(height, width) / 32 + 0.5))


def _keys(seed, step):
  """Two independent stateless seeds (crop, flip) of batch `step` of a run seeded `seed`."""
  base = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
  return tf.random.experimental.stateless_split(base, num=2)


def random_crop_flip(images, seed, step, padding=None, flip=True):
  """Randomly crops (after zero padding) and flips a batch, as a function of (seed, step).

  Args:
    images: [B, H, W, C] images (any float dtype; padding is zeros, as torchvision's).
    seed: the run's seed (int or scalar tensor).
    step: the global index of the batch (int or scalar tensor).
    padding: pixels of zero padding on each side; None uses `crop_padding(H, W)`.
    flip: also flip each image left-right with probability 1/2.

  Returns:
    A batch of the same shape and dtype: each image a window of its padded copy at a
    uniformly random offset in [0, 2 * padding]^2, flipped or not.
  """
  images = tf.convert_to_tensor(images)
  height, width = images.shape[1], images.shape[2]
  if padding is None:
    padding = crop_padding(height, width)
  batch = tf.shape(images)[0]
  crop_key, flip_key = tf.unstack(_keys(seed, step))
  offsets = tf.random.stateless_uniform([batch, 2], crop_key, minval=0,
                                        maxval=2 * padding + 1, dtype=tf.int32)
  padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
  # Per-example windows by gathering rows then columns (one crop offset per image).
  rows = offsets[:, :1] + tf.range(height)[None, :]  # [B, H]
  cols = offsets[:, 1:] + tf.range(width)[None, :]  # [B, W]
  out = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W + 2p, C]
  out = tf.gather(out, cols, axis=2, batch_dims=1)  # [B, H, W, C]
  if flip:
    flips = tf.random.stateless_uniform([batch], flip_key) < 0.5
    out = tf.where(flips[:, None, None, None], tf.reverse(out, axis=[2]), out)
  return out


def augment_fn(kind, seed):
  """`fn(step, (images, labels)) -> (images, labels)` for `tf.data.map`, or None for `none`.

  Args:
    kind: a `tfadv.config.Augment` (or its string value).
    seed: the run's seed.
  """
  kind = config_lib.Augment(kind) if not isinstance(kind, config_lib.Augment) else kind
  if kind is config_lib.Augment.NONE:
    return None

  def fn(step, batch):
    images, labels = batch
    return random_crop_flip(images, seed, step), labels

  return fn
