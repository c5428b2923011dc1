"""Tests of tfadv/models/zoo.py: shapes, names, errors, weights loading and saving."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import zoo

_NETWORK_ERROR = ("URL fetch failure on https://storage.googleapis.com/tensorflow/"
                  "keras-applications/resnet/{}: None -- [Errno -3] Temporary failure in "
                  "name resolution")


def _build(name, shape, num_classes=10, seed=0, **kwargs):
  keras.utils.set_random_seed(seed)
  return zoo.build_model(config_lib.ModelConfig(name=name, **kwargs), shape, num_classes)


def _images(shape, n=3, seed=0):
  return tf.random.stateless_uniform((n,) + tuple(shape), seed=[seed, 1])


@pytest.mark.parametrize("name, shape, width", [
    ("small_cnn", (28, 28, 1), 32),
    ("small_cnn", (32, 32, 3), 8),
    ("small_cnn", (8, 8, 1), 8),
    ("resnet18", (32, 32, 3), 8),
    ("resnet18", (28, 28, 1), 8),
])
def test_small_models_map_images_to_logits(name, shape, width):
  model = _build(name, shape, num_classes=7, width=width)
  logits = model(_images(shape), training=False)
  assert model.name == name
  assert tuple(model.input.shape) == (None,) + shape
  assert model.input.dtype == "float32"
  assert logits.shape == (3, 7)
  assert np.all(np.isfinite(logits.numpy()))


@pytest.mark.parametrize("name, shape, expected", [
    ("small_cnn", (28, 28, 1), [(28, 28, 32), (14, 14, 64), (7, 7, 64), (7, 7, 64)]),
    ("resnet18", (32, 32, 3), [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)]),
])
def test_tap_layers_are_the_stage_ends(name, shape, expected):
  model = _build(name, shape)
  shapes = [tuple(model.get_layer(n).output.shape[1:]) for n in zoo.tap_layer_names(name)]
  assert shapes == expected
  assert zoo.gradcam_layer_name(name) == zoo.tap_layer_names(name)[-1]


def test_small_cnn_width_and_no_batch_norm():
  model = _build("small_cnn", (28, 28, 1), width=4)
  assert model.get_layer("block1_conv").filters == 4
  assert model.get_layer("block4_conv").filters == 8
  assert not [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


def test_resnet18_is_cifar_style():
  model = _build("resnet18", (32, 32, 3), width=8)
  convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
  # Stem + 8 blocks x 2 convs + 3 projection shortcuts; a 3x3 stem and no max-pool.
  assert len(convs) == 1 + 16 + 3
  assert model.get_layer("conv1_conv").kernel_size == (3, 3)
  assert model.get_layer("conv2_block1_1_conv").filters == 16
  assert model.get_layer("conv5_block2_2_conv").filters == 128
  assert not [l for l in model.layers if isinstance(l, keras.layers.MaxPooling2D)]
  assert len([l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]) == 20


def test_resnet18_standardises_inside_the_model():
  model = _build("resnet18", (8, 8, 3), width=2)
  x = tf.constant([[[[0.4914, 0.4822, 0.4465]]]]) * tf.ones([1, 8, 8, 3])
  standardised = keras.Model(model.input, model.get_layer("standardize").output)(x)
  np.testing.assert_allclose(standardised.numpy(), 0.0, atol=1e-5)


@pytest.fixture(scope="module")
def applications_models():
  """ResNet-50/101/152 at 32x32, each built once (resnet101 on grayscale input)."""
  shapes = {"resnet50": (32, 32, 3), "resnet101": (32, 32, 1), "resnet152": (32, 32, 3)}
  return {name: (_build(name, shape, num_classes=5), shape) for name, shape in shapes.items()}


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_applications_resnets(applications_models, name):
  model, shape = applications_models[name]
  assert model(_images(shape, n=2), training=False).shape == (2, 5)
  shapes = [tuple(model.get_layer(n).output.shape[1:]) for n in zoo.tap_layer_names(name)]
  assert shapes == [(8, 8, 256), (4, 4, 512), (2, 2, 1024), (1, 1, 2048)]
  # The taps are the last block of each stage of keras.applications.
  names = {l.name for l in model.layers}
  for tap in zoo.tap_layer_names(name):
    stage, block = tap.split("_")[:2]
    next_block = f"{stage}_block{int(block[len('block'):]) + 1}_out"
    assert next_block not in names


def test_caffe_preprocessing_matches_keras_applications():
  x = _images((5, 5, 3))
  layer = zoo.CaffePreprocessing()
  expected = keras.applications.resnet.preprocess_input(255.0 * x.numpy())
  np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_unknown_model_lists_names():
  for call in (lambda: zoo.build_model(config_lib.ModelConfig(name="vgg"), (32, 32, 3), 10),
               lambda: zoo.tap_layer_names("vgg"),
               lambda: zoo.gradcam_layer_name("vgg")):
    with pytest.raises(ValueError, match="Invalid model") as info:
      call()
    for name in zoo.MODEL_NAMES:
      assert name in str(info.value)
    assert "'vgg'" in str(info.value)


@pytest.mark.parametrize("name, shape, match", [
    ("resnet50", (31, 31, 3), "height, width >= 32 for resnet50.*too small"),
    ("resnet152", (32, 16, 3), "height, width >= 32"),
    ("small_cnn", (3, 3, 1), "height, width >= 4 for small_cnn"),
    ("resnet18", (4, 4, 3), "height, width >= 8 for resnet18"),
    ("resnet50", (32, 32, 4), "1 \\(grayscale\\) or 3 \\(RGB\\) channels"),
    ("small_cnn", (28, 28), "Invalid input_shape"),
])
def test_invalid_input_shape(name, shape, match):
  with pytest.raises(ValueError, match=match):
    zoo.build_model(config_lib.ModelConfig(name=name), shape, 10)


def test_invalid_num_classes_and_weights():
  with pytest.raises(ValueError, match="Invalid num_classes"):
    zoo.build_model(config_lib.ModelConfig(), (28, 28, 1), 0)
  with pytest.raises(ValueError, match="Invalid weights.*small_cnn"):
    zoo.build_model(config_lib.ModelConfig(weights="imagenet"), (28, 28, 1), 10)
  assert zoo.build_model(config_lib.ModelConfig(), (28, 28, 1), np.int64(3)).output.shape[-1] == 3


def test_imagenet_weights_offline_error_says_where_to_put_the_file(monkeypatch):
  calls = []

  def offline_get_file(fname, origin=None, **unused_kwargs):
    calls.append(fname)
    raise Exception(_NETWORK_ERROR.format(fname))  # What get_file raises without network.

  monkeypatch.setattr(keras.utils, "get_file", offline_get_file)
  monkeypatch.delenv("KERAS_HOME", raising=False)
  with pytest.raises(ValueError) as info:
    zoo.build_model(config_lib.ModelConfig(name="resnet50", weights="imagenet"), (32, 32, 3),
                    10)
  assert len(calls) == 1  # Fails at once: no retry loop.
  message = str(info.value)
  file_name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
  assert "weights='imagenet'" in message
  assert os.path.join("~", ".keras", "models", file_name) in message
  assert "Temporary failure in name resolution" in message


def test_imagenet_weights_load_from_the_cached_file(monkeypatch, tmp_path):
  # A stand-in for the ImageNet file: a keras.applications ResNet-50 in the legacy h5 format.
  keras.utils.set_random_seed(3)
  source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
  path = str(tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
  source.save(path)
  requested = []
  monkeypatch.setattr(keras.utils, "get_file",
                      lambda fname, origin=None, **kwargs: requested.append(fname) or path)
  model = _build("resnet50", (40, 40, 1), num_classes=3, weights="imagenet")
  assert requested == [os.path.basename(path)]
  for layer in ("conv1_conv", "conv3_block4_2_conv", "conv5_block3_3_bn"):
    for got, want in zip(model.get_layer(layer).weights, source.get_layer(layer).weights):
      np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_layer_names_are_deterministic():
  for name in ("small_cnn", "resnet18"):
    first = _build(name, (32, 32, 3), width=4, seed=1)
    second = _build(name, (32, 32, 3), width=4, seed=2)
    assert [l.name for l in first.layers] == [l.name for l in second.layers]
    assert first.layers[0].name == "images"
    assert first.layers[-1].name == "logits"


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_checkpoint_round_trip(name, tmp_path):
  shape = (16, 16, 3)
  model = _build(name, shape, width=4, seed=1)
  x = _images(shape, n=8)
  model(x, training=True)  # Moves the BatchNorm statistics away from their initial values.
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
  other = _build(name, shape, width=4, seed=2)
  assert not np.allclose(other(x).numpy(), model(x).numpy())
  tf.train.Checkpoint(model=other).read(path).assert_consumed()
  np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def test_exported_saved_model_reproduces_the_model(tmp_path):
  # resnet18 covers Normalization and BatchNorm; the small model the ImageNet preprocessing.
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Concatenate()([inputs] * 3)
  x = zoo.CaffePreprocessing(name="caffe_preprocessing")(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  preprocessing = keras.Model(inputs, keras.layers.Dense(2)(x))
  for model, shape in ((_build("resnet18", (16, 16, 3), width=2), (16, 16, 3)),
                       (preprocessing, (8, 8, 1))):
    x = _images(shape, n=2)
    expected = model(x, training=False).numpy()
    path = str(tmp_path / model.name)
    model.export(path, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(path)  # Held: the endpoint needs its variables alive.
    np.testing.assert_allclose(loaded.serve(x).numpy(), expected, rtol=1e-5, atol=1e-5)
