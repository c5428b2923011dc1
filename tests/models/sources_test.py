"""Model sources: users' models adapted once into "[0, 1] images -> logits" with taps."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.defenses import models as defense_models
from tfadv.defenses import recipes
from tfadv.models import sources
from tfadv.models import taps as taps_lib


def _config(**kwargs):
  return config_lib.ModelConfig(name="user", **kwargs)


def _nested_mobilenet(softmax=True, size=32):
  keras.utils.set_random_seed(0)
  base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                        weights=None, alpha=0.35)
  inputs = keras.Input((size, size, 3))
  x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
  return keras.Model(inputs, keras.layers.Dense(
      10, activation="softmax" if softmax else None, name="head")(x))


def test_find_taps_takes_the_last_layer_of_each_resolution_in_order():
  """Known answer: stage ends at 16, 8 and 4 (padding and 1x1 grids skipped)."""
  x = inputs = keras.Input((16, 16, 1))
  x = keras.layers.Conv2D(2, 3, padding="same", name="a16")(x)
  x = keras.layers.Conv2D(2, 3, padding="same", name="b16")(x)
  x = keras.layers.ZeroPadding2D(1, name="pad")(x)  # 18x18: not a stage
  x = keras.layers.Conv2D(2, 3, strides=2, name="a8")(x)
  x = keras.layers.Conv2D(2, 3, padding="same", name="b8")(x)
  x = keras.layers.MaxPooling2D(name="pool4")(x)
  x = keras.layers.Conv2D(2, 3, padding="same", name="b4")(x)
  x = keras.layers.Conv2D(2, 4, name="one")(x)  # 1x1: no spatial attention
  x = keras.layers.Flatten()(x)
  model = keras.Model(inputs, keras.layers.Dense(3)(x))
  assert sources.find_taps(model) == (("b16", "b8", "b4"), "b4")
  assert sources.find_taps(model, max_taps=2) == (("b8", "b4"), "b4")


def test_nested_backbone_is_flattened_softmax_removed_and_taps_found():
  model = _nested_mobilenet()
  built = sources.build(_config(), (32, 32, 1), 10, model=model)
  flat = built.model
  assert all(sources.graph_of(layer) is None for layer in flat.layers)  # one flat graph
  x = np.random.default_rng(0).uniform(size=(3, 32, 32, 1)).astype("float32")
  logits = flat(x).numpy()
  # The same function, before the softmax, on the data's grayscale repeated to RGB.
  np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model(np.repeat(x, 3, -1)),
                             atol=1e-5)
  assert not np.allclose(logits.sum(-1), 1.0)  # logits, not probabilities
  assert len(built.tap_names) == 4 and built.gradcam_name == built.tap_names[-1]
  sizes = [flat.get_layer(n).output.shape[1] for n in built.tap_names]
  assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4  # shallow -> deep
  assert any("repeated to 3 channels" in n for n in built.notes)
  assert any("pre-softmax logits recovered" in n for n in built.notes)
  assert any("momentum 0.999 in" in n for n in built.notes)  # keras.applications' slow BN
  norms = [l for l in flat.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert norms and all(l.momentum == 0.999 for l in norms)
  tuned = sources.build(_config(bn_momentum=0.9), (32, 32, 1), 10, model=model).model
  norms = [l for l in tuned.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert norms and all(l.momentum == 0.9 for l in norms)
  # The taps are intermediate tensors of the same pass: the tapped model returns them.
  out = taps_lib.tapped_model(flat, built.tap_names, built.gradcam_name)(x)
  np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
  assert [t.shape[1] for t in out["taps"]] == sizes


def test_softmax_model_is_attacked_through_its_logits_closed_form():
  """A linear softmax classifier: grad_x CE = W^T (softmax(z) - onehot), z = W x + b."""
  rng = np.random.default_rng(1)
  w = rng.normal(scale=3.0, size=(16, 4)).astype("float32")
  b = rng.normal(size=(4,)).astype("float32")
  inputs = keras.Input((4, 4, 1))
  dense = keras.layers.Dense(4, activation="softmax")
  model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
  dense.set_weights([w, b])
  flat = sources.build(_config(), (4, 4, 1), 4, model=model).model
  x = rng.uniform(size=(5, 4, 4, 1)).astype("float32")
  y = np.array([0, 1, 2, 3, 0])
  z = x.reshape(5, 16) @ w + b
  np.testing.assert_allclose(flat(x), z, rtol=1e-5, atol=1e-5)
  xt = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(xt)
    loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, flat(xt)))
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  expected = ((p - np.eye(4)[y]) @ w.T).reshape(x.shape)
  np.testing.assert_allclose(tape.gradient(loss, xt), expected, rtol=1e-4, atol=1e-5)
  # FGSM through the registry moves each pixel by eps along that sign.
  attack = registry.from_config(config_lib.AttackConfig(name="fgsm", eps=0.01))
  x_adv = attack(lambda v: flat(v, training=False), tf.constant(x * 0.5 + 0.25),
                 tf.constant(y, tf.int32)).numpy()
  z2 = (x * 0.5 + 0.25).reshape(5, 16) @ w + b
  p2 = np.exp(z2 - z2.max(-1, keepdims=True))
  p2 /= p2.sum(-1, keepdims=True)
  np.testing.assert_allclose(x_adv - (x * 0.5 + 0.25),
                             0.01 * np.sign(((p2 - np.eye(4)[y]) @ w.T).reshape(x.shape)),
                             atol=1e-6)


def test_input_range_is_folded_in_front():
  keras.utils.set_random_seed(0)
  base = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), include_top=False,
                                           weights=None)
  inputs = keras.Input((32, 32, 3))
  model = keras.Model(inputs, keras.layers.Dense(3)(
      keras.layers.GlobalAveragePooling2D()(base(inputs))))
  assert sources.expected_input_range(model) == "0,255"  # EfficientNet's Rescaling(1/255)
  built = sources.build(_config(), (32, 32, 3), 3, model=model)
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
  np.testing.assert_allclose(built.model(x), model(255.0 * x), rtol=1e-4, atol=1e-4)
  small = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
  built = sources.build(_config(input_range="-1,1"), (4, 4, 1), 2, model=small)
  x = x[:, :4, :4, :1]
  np.testing.assert_allclose(built.model(x), small(2.0 * x - 1.0), rtol=1e-5, atol=1e-6)


def test_flat_model_without_adaptation_is_trained_in_place():
  model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3),
                            keras.layers.Flatten(), keras.layers.Dense(3)])
  assert sources.build(_config(), (8, 8, 1), 3, model=model).model is model


def test_saved_models_from_plain_keras_export(tmp_path):
  keras.utils.set_random_seed(0)
  logits_model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(4)])
  probs_model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(4, activation="softmax")])
  x = np.random.default_rng(0).uniform(size=(3, 6, 6, 1)).astype("float32")
  for name, model in (("logits", logits_model), ("probs", probs_model)):
    path = str(tmp_path / name)
    model.export(path, verbose=False)
    built = sources.build(_config(path=path), (6, 6, 1), 4)
    expected = model(x).numpy()
    if name == "probs":  # log-probabilities stand in for the logits, with a warning
      expected = np.log(expected)
      assert any("saturated probabilities can mask gradients" in n for n in built.notes)
    else:
      assert not built.notes
    np.testing.assert_allclose(built.model(x), expected, rtol=1e-5, atol=1e-5)
    assert built.tap_names == () and built.gradcam_name is None


def test_attention_defenses_need_taps_logit_defenses_do_not():
  class Subclassed(keras.Model):
    def __init__(self):
      super().__init__()
      self.flat, self.dense = keras.layers.Flatten(), keras.layers.Dense(3)

    def call(self, x):
      return self.dense(self.flat(x))

  shape = (6, 6, 1)
  for defense in ("pat", "trades"):
    built = defense_models.build_record(_config(), recipes.build(
        config_lib.DefenseConfig(name=defense)), shape, 3, model=Subclassed())
    assert built.tap_names == ()
  for defense in ("at_alp", "aad"):
    with pytest.raises(ValueError, match=f"defense {defense} needs"):
      defense_models.build_record(_config(), recipes.build(
          config_lib.DefenseConfig(name=defense)), shape, 3, model=Subclassed())


def test_at_uses_the_taps_the_model_has_and_refuses_missing_ones():
  two = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="c6"),
                          keras.layers.MaxPooling2D(name="p3"), keras.layers.Flatten(),
                          keras.layers.Dense(3)])
  built = defense_models.build_record(_config(), recipes.build(
      config_lib.DefenseConfig(name="at_alp")), (8, 8, 1), 3, model=two)
  assert built.tap_names == ("c6", "p3")
  bad = config_lib.DefenseConfig(name="at_alp", terms=(
      config_lib.TermConfig("at", 1.0, {"taps": (3,)}),))
  with pytest.raises(ValueError, match=r"Invalid at:taps: expected indices below 2"):
    defense_models.build_record(_config(), recipes.build(bad), (8, 8, 1), 3, model=two)


def test_named_taps_override_and_errors():
  model = _nested_mobilenet(softmax=False)
  built = sources.build(_config(taps=("block_3_expand_relu", "block_6_expand_relu"),
                                gradcam_layer="block_6_expand_relu"), (32, 32, 3), 10,
                        model=model)
  assert built.tap_names == ("block_3_expand_relu", "block_6_expand_relu")
  with pytest.raises(ValueError, match="Invalid taps: expected layer names"):
    sources.build(_config(taps=("nope",)), (32, 32, 3), 10, model=model)
  with pytest.raises(ValueError, match="Invalid gradcam_layer: expected a layer with a 4-D"):
    sources.build(_config(gradcam_layer="head"), (32, 32, 3), 10, model=model)


def test_persist_keeps_the_architecture_in_the_model_dir(tmp_path):
  model = _nested_mobilenet()
  path = str(tmp_path / "user.keras")
  model.save(path)
  config = sources.persist(_config(path=path), str(tmp_path / "run"))
  assert config.path == sources.RUN_MODEL_FILE
  os.remove(path)  # every later command works without the original file
  built = sources.build(sources.resolve_path(config, str(tmp_path / "run")), (32, 32, 3), 10)
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
  np.testing.assert_allclose(tf.nn.softmax(built.model(x)), model(x), atol=1e-5)
