"""Loss surfaces: the origin is the clean loss, the gradient-sign axis climbs on a real model."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.analysis import landscape
from tests import testing


@pytest.fixture(scope="module")
def model_and_batch():
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  return model, tf.constant(xt[:64]), tf.constant(yt[:64], tf.int32)


def test_origin_is_the_clean_loss_and_the_gradient_axis_climbs(model_and_batch):
  model, x, y = model_and_batch
  model_fn = lambda z: model(z, training=False)
  offsets, losses = landscape.loss_surface(model_fn, x, y, radius=0.1, points=5)
  np.testing.assert_allclose(offsets, [-0.1, -0.05, 0.0, 0.05, 0.1], atol=1e-7)
  clean = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model_fn(x)))
  np.testing.assert_allclose(losses[2, 2], clean, rtol=1e-5)
  # Undefended model: stepping along the gradient sign raises the loss far more than a random
  # sign direction of the same size.
  assert losses[4, 2] > losses[2, 2] + 1.0
  assert losses[4, 2] > losses[2, 4] + 1.0


def test_directions_are_signs_and_seeded(model_and_batch):
  model, x, y = model_and_batch
  model_fn = lambda z: model(z, training=False)
  d_adv, d_rand = landscape.directions(model_fn, x, y, seed=3)
  assert set(np.unique(d_rand.numpy())) <= {-1.0, 1.0}
  assert set(np.unique(d_adv.numpy())) <= {-1.0, 0.0, 1.0}
  np.testing.assert_array_equal(d_rand, landscape.directions(model_fn, x, y, seed=3)[1])


@pytest.mark.parametrize("kwargs,fragment", [({"points": 4}, "Invalid points"),
                                             ({"radius": 0.0}, "Invalid radius")])
def test_bad_grids_are_rejected(model_and_batch, kwargs, fragment):
  model, x, y = model_and_batch
  with pytest.raises(ValueError, match=fragment):
    landscape.loss_surface(lambda z: model(z), x, y, **kwargs)
