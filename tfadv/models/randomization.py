"""Randomization defense (Xie et al., ICLR 2018): random resizing and random padding.

Before the classifier, each call resizes the images to a random `r x r` (nearest
neighbour) with `r` uniform in `[H, S)`, then zero-pads them to a fixed `S x S` at a random
offset. The paper (299x299 Inception inputs) uses `S = 331`; here `S = round(H * 331/299)`
by default. By default one size and one offset are drawn per call (per batch), as in the
reference (github:cihangxie/NIPS2017_adv_challenge_defense, `defense.py`);
`per_example=True` draws them for each image.

The layer is random at inference AND in training: it is the defense, so it lives inside
the model (and in the exported SavedModel, whose served predictions are randomised the
same way). Attacks differentiate through it (nearest-neighbour resizing and padding have
gradients); evaluate it with EOT / AutoAttack's `rand` version.
"""

import numbers

import keras
from keras import layers
import tensorflow as tf

from tfadv.models import graph
from tfadv.models import sources
from tfadv.models import zoo

# The paper's sizes: 299 -> [299, 331) -> 331.
PAPER_INPUT = 299
PAPER_PADDED = 331


def default_size(height):
  """The padded size for inputs of height `height`: `round(height * 331 / 299)`."""
  return int(round(height * PAPER_PADDED / PAPER_INPUT))


@keras.saving.register_keras_serializable(package="tfadv")
class RandomResizePad(layers.Layer):
  """Random nearest-neighbour resize to `r x r'`, then random zero-padding to `size`.

  The height `r` is uniform over the integers of `[min_size, max_size]`; the width keeps
  the aspect ratio (`r' = round(r * W / H)`, capped by the padded width). Active whatever
  `training` is.

  Args:
    size: (height, width) of the output.
    min_size: smallest resized height (default: the input height).
    max_size: largest resized height (default: `size[0] - 1`, the paper's half-open
      range; the input height when that is smaller).
    per_example: draw the size and offset for each image instead of once per call.
  """

  def __init__(self, size, min_size=None, max_size=None, per_example=False, **kwargs):
    super().__init__(**kwargs)
    self.size = tuple(int(s) for s in size)
    self.min_size = None if min_size is None else int(min_size)
    self.max_size = None if max_size is None else int(max_size)
    self.per_example = bool(per_example)
    # Its state is a variable of the layer, saved in checkpoints: a resumed run draws the
    # same sizes and offsets as an uninterrupted one.
    self.seed_generator = keras.random.SeedGenerator(seed=None, name="randomization_seed")

  def build(self, input_shape):
    height, width = int(input_shape[1]), int(input_shape[2])
    self._input_hw = (height, width)
    self._range = _resize_range(height, self.size[0], self.min_size, self.max_size)
    if self.size[1] < width:
      raise ValueError(f"Invalid size: expected a padded size at least the input size "
                       f"{(height, width)}; received size={self.size}")

  def call(self, images, training=None):
    del training  # random in training and at inference: it is the defense
    height, width = self._input_hw
    low, high = self._range
    out_h, out_w = self.size
    batch = tf.shape(images)[0]
    draws = [batch] if self.per_example else [1]
    r = keras.random.randint(draws, low, high + 1, dtype="int32", seed=self.seed_generator)
    r_w = tf.cast(tf.round(tf.cast(r, tf.float32) * (width / height)), tf.int32)
    r_w = tf.clip_by_value(r_w, 1, out_w)
    # Uniform integer offsets in [0, S - r] (a per-image upper bound).
    top = tf.cast(tf.floor(keras.random.uniform(draws, seed=self.seed_generator) * tf.cast(out_h - r + 1, tf.float32)),
                  tf.int32)
    left = tf.cast(tf.floor(keras.random.uniform(draws, seed=self.seed_generator) * tf.cast(out_w - r_w + 1, tf.float32)),
                   tf.int32)
    # Resize and pad as one gather onto the fixed output grid: every shape is static, so
    # the layer also compiles with XLA (a resize to a random size does not).
    rows, row_mask = _source_indices(out_h, top, r, height)  # [draws, S]
    cols, col_mask = _source_indices(out_w, left, r_w, width)
    rows = tf.broadcast_to(rows, [batch, out_h])
    cols = tf.broadcast_to(cols, [batch, out_w])
    placed = tf.gather(images, rows, axis=1, batch_dims=1)
    placed = tf.gather(placed, cols, axis=2, batch_dims=1)
    mask = row_mask[:, :, None] & col_mask[:, None, :]
    return placed * tf.cast(mask, images.dtype)[..., None]

  def compute_output_shape(self, input_shape):
    return (input_shape[0],) + self.size + (input_shape[-1],)

  def get_config(self):
    return {**super().get_config(), "size": self.size, "min_size": self.min_size,
            "max_size": self.max_size, "per_example": self.per_example}


def _source_indices(out_size, offset, resized, in_size):
  """For each output index: the input index nearest-neighbour resizing reads, and whether
  it falls inside the resized image placed at `offset` (outside: zero padding).

  The same rule as `tf.image.resize(method="nearest")` (half-pixel centres):
  `floor((i + 0.5) * in_size / resized)`, clamped to the image. `offset` and `resized`
  are int [n] (one per draw); returns int [n, out_size] and bool [n, out_size].
  """
  i = tf.range(out_size)[None, :] - offset[:, None]
  scale = tf.cast(in_size, tf.float32) / tf.cast(resized[:, None], tf.float32)
  source = tf.cast(tf.floor((tf.cast(i, tf.float32) + 0.5) * scale), tf.int32)
  return tf.clip_by_value(source, 0, in_size - 1), (i >= 0) & (i < resized[:, None])


def _resize_range(height, padded_height, min_size, max_size):
  """The inclusive range of resized heights, validated."""
  low = height if min_size is None else min_size
  high = max(low, padded_height - 1) if max_size is None else max_size
  if not low <= high <= padded_height or low < 1:
    raise ValueError(f"Invalid min_size/max_size: expected 1 <= min_size <= max_size <= "
                     f"size = {padded_height}; received min_size={low}, max_size={high}")
  return low, high


def build(model_config, input_shape, num_classes, size=None, min_size=None, max_size=None,
          per_example=False):
  """A zoo model behind a `RandomResizePad` layer, as one flat functional model.

  Args:
    model_config: a `tfadv.config.ModelConfig`.
    input_shape: (height, width, channels) of the images the model takes.
    num_classes: number of logits K.
    size: the padded side S (an int, or (height, width)); default
      `round(H * 331 / 299)` per side. The zoo model is built for S x S inputs.
    min_size, max_size: the inclusive range of the random resized height (default
      `[H, S - 1]`, the paper's `[299, 331)` scaled).
    per_example: draw size and offset per image (default: once per batch, as the
      reference).

  Returns:
    A `tfadv.models.zoo.Built` with the zoo model's tap and Grad-CAM names.

  Raises:
    ValueError: invalid sizes, or as `zoo.build_model`.
  """
  height, width, channels = (int(s) for s in input_shape)
  if size is None:
    size = (default_size(height), default_size(width))
  elif isinstance(size, numbers.Integral):
    size = (int(size), int(size))
  size = tuple(int(s) for s in size)
  if len(size) != 2 or size[0] < height or size[1] < width:
    raise ValueError(f"Invalid size: expected the padded (height, width) >= the input "
                     f"size {(height, width)}; received size={size!r}")
  _resize_range(height, size[0], min_size, max_size)
  built = sources.build(model_config, size + (channels,), num_classes)
  inputs = keras.Input((height, width, channels), dtype="float32", name="images")
  randomize = RandomResizePad(size, min_size, max_size, per_example,
                              name="random_resize_pad", dtype="float32")
  logits = graph.rebuild(built.model, inputs, before=randomize)
  return zoo.Built(keras.Model(inputs, logits, name=f"{model_config.name}_randomization"),
                   built.tap_names, built.gradcam_name, {}, built.notes)
