"""Tests of zoo.Built/zoo.build, taps.tapped_model(extras=), graph.rebuild, layer configs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import denoise
from tfadv.models import ensemble
from tfadv.models import graph
from tfadv.models import noise
from tfadv.models import randomization
from tfadv.models import taps
from tfadv.models import zoo


def test_build_names_match_the_zoo():
  built = zoo.build(config_lib.ModelConfig(name="small_cnn", width=2), (8, 8, 1), 3)
  assert built.tap_names == zoo.tap_layer_names("small_cnn")
  assert built.gradcam_name == zoo.gradcam_layer_name("small_cnn")
  assert dict(built.extras) == {}
  assert built.model.output.shape == (None, 3)
  with pytest.raises(Exception):
    built.model = None  # frozen


def test_tapped_model_extras():
  built = zoo.build(config_lib.ModelConfig(name="small_cnn", width=2), (8, 8, 1), 3)
  tapped = taps.tapped_model(built.model, built.tap_names, built.gradcam_name,
                             extras={"features": "fc1"})
  x = tf.random.stateless_uniform((2, 8, 8, 1), seed=[0, 1])
  out = tapped(x)
  assert set(out) == {"logits", "taps", "gradcam", "features"}
  # The extra is the layer's own output: the head applied to it gives the logits.
  head = built.model.get_layer("logits")
  np.testing.assert_allclose(head(out["features"]).numpy(), out["logits"].numpy(),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="extras"):
    taps.tapped_model(built.model, built.tap_names, built.gradcam_name,
                      extras={"features": "no_such_layer"})
  with pytest.raises(ValueError, match="extras"):
    taps.tapped_model(built.model, built.tap_names, built.gradcam_name,
                      extras={"logits": "fc1"})


def test_rebuild_copies_weights():
  keras.utils.set_random_seed(0)
  model = zoo.build_model(config_lib.ModelConfig(name="resnet18", width=1), (8, 8, 3), 4)
  x = tf.random.stateless_uniform((2, 8, 8, 3), seed=[2, 3])
  inputs = keras.Input((8, 8, 3), name="images")
  same = keras.Model(inputs, graph.rebuild(model, inputs))
  np.testing.assert_allclose(same(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
  assert [layer.name for layer in same.layers] == [layer.name for layer in model.layers]
  # The layers are the clone's own: taps of the new graph can be built.
  taps.tapped_model(same, zoo.tap_layer_names("resnet18"), zoo.gradcam_layer_name("resnet18"))

  inputs = keras.Input((8, 8, 3))
  copy = keras.Model(inputs, graph.rebuild(model, inputs, prefix="m_"))
  assert all(layer.name.startswith("m_") for layer in copy.layers[1:])
  assert not {id(v) for v in copy.weights} & {id(v) for v in model.weights}
  np.testing.assert_allclose(copy(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)

  inputs = keras.Input((8, 8, 3))
  doubled = keras.Model(inputs, graph.rebuild(
      model, inputs, before=lambda t: keras.layers.Rescaling(0.0, name="zero")(t)))
  np.testing.assert_allclose(doubled(x).numpy(), model(tf.zeros_like(x)).numpy(),
                             rtol=1e-5, atol=1e-6)


def test_custom_layers_round_trip_their_config():
  cases = [
      (noise.NoiseInjection("laplace", 0.3), ("distribution", "scale")),
      (randomization.RandomResizePad((12, 13), min_size=9, max_size=11, per_example=True),
       ("size", "min_size", "max_size", "per_example")),
      (denoise.NonLocalMean(softmax=False), ("softmax",)),
      (ensemble.MeanSoftmaxLogits(), ()),
  ]
  for layer, fields in cases:
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer)
    for field in fields:
      assert getattr(clone, field) == getattr(layer, field), field
