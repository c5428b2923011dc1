"""Tests of tfadv/models/ensemble.py: one flat model, mean-softmax logits, member extras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.losses import adp
from tfadv.models import ensemble
from tfadv.models import taps

_CONFIG = config_lib.ModelConfig(name="small_cnn", width=2)


@pytest.fixture(scope="module")
def built():
  keras.utils.set_random_seed(0)
  return ensemble.build(_CONFIG, (8, 8, 1), 4, members=3)


def _tapped(built):
  return taps.tapped_model(built.model, built.tap_names, built.gradcam_name, built.extras)


def test_logits_are_the_log_mean_member_softmax(built):
  x = tf.random.stateless_uniform((5, 8, 8, 1), seed=[0, 1])
  out = _tapped(built)(x)
  members = out["members"].numpy()
  assert members.shape == (5, 3, 4)
  probs = tf.nn.softmax(members, axis=-1).numpy().mean(axis=1)
  np.testing.assert_allclose(tf.nn.softmax(out["logits"]).numpy(), probs, rtol=1e-5)
  np.testing.assert_allclose(out["logits"].numpy(), np.log(probs), rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(built.model(x).numpy(), out["logits"].numpy())
  # Independently initialised members disagree.
  assert not np.allclose(members[:, 0], members[:, 1])


def test_one_flat_model_with_member_zero_taps(built):
  names = [layer.name for layer in built.model.layers]
  assert len(names) == len(set(names))
  assert not any(isinstance(layer, keras.Model) for layer in built.model.layers)
  assert built.tap_names == tuple("member0_" + n for n in
                                  ("block1_conv", "block2_conv", "block3_conv", "block4_conv"))
  assert built.gradcam_name == "member0_block4_conv"
  for m in range(3):
    assert f"member{m}_logits" in names
  x = tf.random.stateless_uniform((2, 8, 8, 1), seed=[2, 3])
  out = _tapped(built)(x)
  assert out["taps"][3].shape[1:] == built.model.get_layer("member0_block4_conv").output.shape[1:]


def test_adp_loss_reaches_every_member(built):
  x = tf.random.stateless_uniform((4, 8, 8, 1), seed=[4, 5])
  y = tf.constant([0, 1, 2, 3])
  tapped = _tapped(built)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(adp.adp_loss(tapped(x, training=True)["members"], y))
  variables = built.model.trainable_variables
  grads = tape.gradient(loss, variables)
  for m in range(3):
    kernel = built.model.get_layer(f"member{m}_block1_conv").kernel
    g = grads[[id(v) for v in variables].index(id(kernel))]
    assert g is not None and float(tf.norm(g)) > 0


def test_rejects_fewer_than_two_members():
  with pytest.raises(ValueError, match="members"):
    ensemble.build(_CONFIG, (8, 8, 1), 4, members=1)
