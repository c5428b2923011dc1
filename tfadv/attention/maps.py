"""Activation-based spatial attention maps (Zagoruyko & Komodakis, 2017).

`F(A) = sum_c |A_c|^p` collapses a feature map over channels; its vectorised form is
L2-normalised so that maps of clean and adversarial images are compared by where the
network looks, not by how strongly it fires.
"""

import tensorflow as tf


@tf.custom_gradient
def _squared_energy(features):
  """`sum_c A_c^2` [B, h, w] with its gradient `2 A g` as one broadcast multiply.

  The value is TensorFlow's `reduce_sum(square(A))`; so is the gradient, bit for bit
  (scaling by 2 is exact). Autodiff builds it from three full-size tensors (g broadcast to
  the map's shape, `2 A`, their product); at AT's 28x28x32 taps that was a tenth of an
  AT+ALP training step on the CPU.
  """

  def grad(upstream):
    return features * (2.0 * upstream)[..., None]

  return tf.reduce_sum(tf.square(features), axis=-1), grad


def _energy(features, p):
  """`sum_c |A_c|^p`: [B, h, w]. p = 2 and p = 1 avoid `pow`, whose gradient also builds the
  exponent's (a log of every activation) and doubled the cost of an AT training step."""
  features = tf.convert_to_tensor(features)
  if p == 2:
    return _squared_energy(features)
  if p == 1:
    powered = tf.abs(features)
  else:
    powered = tf.pow(tf.abs(features), p)
  return tf.reduce_sum(powered, axis=-1)


def attention_map(features, p=2.0, normalize=True):
  """Spatial attention map of a batch of feature maps.

  Args:
    features: [B, h, w, c] activations of one stage.
    p: exponent of `|A_c|^p` (the paper uses 2).
    normalize: L2-normalise the flattened map (Q / ||Q||_2).

  Returns:
    [B, h * w] float32: `vec(F(A))`, unit L2 norm per example when `normalize` (an all-zero
    map stays zero).
  """
  energy = _energy(features, p)
  flat = tf.reshape(energy, [tf.shape(energy)[0], -1])
  if not normalize:
    return flat
  return tf.math.l2_normalize(flat, axis=1, epsilon=1e-12)


def attention_image(features, p=2.0):
  """`F(A)` as an image [B, h, w] scaled to [0, 1] per example, for plots and TensorBoard."""
  energy = _energy(features, p)
  peak = tf.reduce_max(energy, axis=[1, 2], keepdims=True)
  return tf.math.divide_no_nan(energy, peak)
