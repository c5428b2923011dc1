"""Tests of tfadv/models/taps.py: shared weights, exact logits, differentiable taps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import taps
from tfadv.models import zoo
from tfadv.training import strategy as strategy_lib

# (name, input shape, width): the two fast architectures plus one keras.applications ResNet.
_CASES = [("small_cnn", (28, 28, 1), 8), ("resnet18", (32, 32, 3), 4),
          ("resnet50", (32, 32, 3), 32)]


@pytest.fixture(scope="module", params=_CASES, ids=[c[0] for c in _CASES])
def built(request):
  name, shape, width = request.param
  keras.utils.set_random_seed(0)
  model, tapped = taps.build_tapped(config_lib.ModelConfig(name=name, width=width), shape, 10)
  x = tf.random.stateless_uniform((4,) + shape, seed=[1, 2])
  y = tf.constant([0, 3, 5, 9])
  return name, model, tapped, x, y


def test_outputs_structure_and_tap_order(built):
  name, _, tapped, x, _ = built
  out = tapped(x, training=False)
  assert set(out) == {"logits", "taps", "gradcam"}
  assert isinstance(out["taps"], tuple) and len(out["taps"]) == 4
  assert out["logits"].shape == (4, 10)
  sizes = []
  for tap, layer_name in zip(out["taps"], zoo.tap_layer_names(name)):
    assert tap.shape.rank == 4 and tap.shape[0] == 4
    assert tap.shape[1:] == tapped.get_layer(layer_name).output.shape[1:]
    sizes.append(tap.shape[1] * tap.shape[2])
  assert sizes == sorted(sizes, reverse=True)
  np.testing.assert_array_equal(out["gradcam"].numpy(), out["taps"][3].numpy())


@pytest.mark.parametrize("training", [False, True])
def test_logits_equal_the_plain_model(built, training):
  _, model, tapped, x, _ = built
  np.testing.assert_array_equal(tapped(x, training=training)["logits"].numpy(),
                                model(x, training=training).numpy())


def test_shares_variables_with_the_plain_model(built):
  _, model, tapped, x, _ = built
  assert {id(v) for v in tapped.weights} == {id(v) for v in model.weights}
  before = model(x).numpy()
  kernel = model.get_layer("logits").kernel
  original = kernel.numpy()
  kernel.assign(original + 0.5)
  try:
    after = model(x).numpy()
    assert not np.allclose(after, before)
    np.testing.assert_array_equal(tapped(x)["logits"].numpy(), after)
  finally:
    kernel.assign(original)


def test_tap_losses_reach_the_weights(built):
  _, model, tapped, x, _ = built
  for j in range(4):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(tapped(x, training=True)["taps"][j]))
    grads = tape.gradient(loss, model.trainable_variables)
    # The first convolution feeds every tap; the head feeds none.
    assert float(tf.norm(grads[0])) > 0, (j, model.trainable_variables[0].path)
    head = model.get_layer("logits").kernel
    assert grads[[id(v) for v in model.trainable_variables].index(id(head))] is None


def _score_gradient(tapped, x, y):
  with tf.GradientTape() as tape:
    out = tapped(x, training=False)
    score = tf.gather(out["logits"], y, axis=1, batch_dims=1)
  return tape.gradient(score, out["gradcam"])


def test_logits_differentiate_with_respect_to_the_gradcam_layer(built):
  _, _, tapped, x, y = built
  eager = _score_gradient(tapped, x, y)
  graph = tf.function(_score_gradient)(tapped, x, y)
  assert eager.shape == tapped(x)["gradcam"].shape
  for grads in (eager, graph):
    per_example = tf.reduce_sum(tf.abs(grads), axis=[1, 2, 3]).numpy()
    assert np.all(per_example > 0)
  np.testing.assert_allclose(graph.numpy(), eager.numpy(), rtol=1e-4, atol=1e-6)


def test_gradcam_losses_backpropagate_through_the_inner_gradient():
  """The AAD pattern: a loss on Grad-CAM maps (an inner gradient) trains the weights."""
  keras.utils.set_random_seed(0)
  model, tapped = taps.build_tapped(config_lib.ModelConfig(width=4), (28, 28, 1), 10)
  x = tf.random.stateless_uniform((4, 28, 28, 1), seed=[3, 4])
  y = tf.constant([1, 2, 3, 4])

  @tf.function
  def grads_of_cam_loss():
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        out = tapped(x, training=True)
        score = tf.gather(out["logits"], y, axis=1, batch_dims=1)
      features = out["gradcam"]
      alpha = tf.reduce_mean(inner.gradient(score, features), axis=[1, 2], keepdims=True)
      cam = tf.nn.relu(tf.reduce_sum(alpha * features, axis=-1))
      loss = tf.reduce_sum(cam)
    return outer.gradient(loss, model.trainable_variables)

  grads = grads_of_cam_loss()
  # Every weight but the output bias (a constant offset of the score) shapes the maps.
  missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
  assert missing == [model.get_layer("logits").bias.path]
  # (fc1's bias acts on the inner gradient only through ReLU masks: zero almost surely.)
  for v, g in zip(model.trainable_variables, grads):
    if v.path.endswith("kernel"):
      assert float(tf.norm(g)) > 0, v.path


def test_build_under_mirrored_strategy():
  devices = tf.config.list_logical_devices("CPU")
  if len(devices) < 2:
    pytest.skip("needs the two logical CPU devices of conftest.py")
  strategy = strategy_lib.make_strategy("mirrored")
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model, tapped = taps.build_tapped(config_lib.ModelConfig(width=4), (28, 28, 1), 10)
  x = tf.random.stateless_uniform((4, 28, 28, 1), seed=[5, 6])

  @tf.function
  def replica_fn(x):
    with tf.GradientTape() as tape:
      out = tapped(x, training=True)
      loss = tf.reduce_sum(out["logits"]) + tf.reduce_sum(out["taps"][0])
    return tf.linalg.global_norm(tape.gradient(loss, model.trainable_variables))

  dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
  batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
  norms = strategy.experimental_local_results(strategy.run(replica_fn, args=(batch,)))
  assert len(norms) == 2 and all(float(n) > 0 for n in norms)


def test_tapped_model_errors():
  keras.utils.set_random_seed(0)
  model = zoo.build_model(config_lib.ModelConfig(width=2), (8, 8, 1), 3)
  with pytest.raises(ValueError, match="Invalid tap_names.*'no_such_layer'"):
    taps.tapped_model(model, ("block1_conv", "no_such_layer"), "block4_conv")
  with pytest.raises(ValueError, match="Invalid gradcam_name.*'nope'"):
    taps.tapped_model(model, zoo.tap_layer_names("small_cnn"), "nope")
  # No taps and no Grad-CAM layer (a user model without feature maps): logits only.
  logits_only = taps.tapped_model(model, (), None)
  assert set(logits_only(tf.zeros([1, 8, 8, 1]))) == {"logits", "taps"}
  tapped = taps.tapped_model(model, ["block2_conv", "block3_conv"], "block2_conv")
  assert len(tapped(tf.zeros([1, 8, 8, 1]))["taps"]) == 2
