"""Image bytes and pixels as a model sees them: one function for training and for serving.

The training input pipeline (`tfadv.data.datasets`) and the served `predict_images` /
`classify` signatures (`serving.export`) both call these, so the same image file gives the
same pixels, hence the same logits, in evaluation and in production.
"""

import tensorflow as tf


def decode(data, channels):
  """Encoded PNG/JPEG/GIF/BMP bytes -> uint8 [H, W, channels] (a GIF's first frame).

  Colour images become grayscale for `channels=1` and grayscale ones RGB for 3; alpha is
  dropped.
  """
  return tf.io.decode_image(data, channels=channels, expand_animations=False, dtype=tf.uint8)


def to_model_input(image, size=None):
  """float32 [H, W, C] in [0, 1], resized to `size` = (height, width) when given.

  Integer pixels are scaled by their dtype's maximum. The resize is bilinear with
  antialiasing: it only matters when shrinking (a photo to 32x32, say), where plain bilinear
  would alias; at the same size it is the identity. The triangle kernel keeps values inside
  [0, 1] up to rounding, which the clip removes.
  """
  image = tf.image.convert_image_dtype(image, tf.float32)
  if size:
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
  return image
