"""Weight EMA: the closed-form average, every strategy, checkpointed, exact on resume."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import zoo
from tfadv.training import ema as ema_lib
from tfadv.training import trainer
from tfadv.training import strategy as strategy_lib
from tests import testing


def _closed_form(trajectory, decay):
  """sum_k c_k w_k with c_0 = prod_j d_j and c_k = (1 - d_k) prod_{j > k} d_j (no recursion)."""
  n = len(trajectory) - 1
  d = [min(decay, (1 + t) / (10 + t)) for t in range(n)]  # decay of update k+1 uses t=k
  coefficients = [np.prod(d)] + [(1 - d[k - 1]) * np.prod(d[k:]) for k in range(1, n + 1)]
  assert np.isclose(sum(coefficients), 1.0)
  return sum(c * w for c, w in zip(coefficients, trajectory))


def _toy_model():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  return model


def test_warmup_decay():
  assert np.isclose(float(ema_lib.warmup_decay(0.995, 0)), 0.1)
  assert np.isclose(float(ema_lib.warmup_decay(0.995, 8)), 0.5)
  assert np.isclose(float(ema_lib.warmup_decay(0.5, 100)), 0.5)


@pytest.mark.parametrize("decay", [0.5, 0.9])
def test_equals_the_closed_form_average_of_the_trajectory(decay):
  model = _toy_model()
  weights = ema_lib.averaged_weights(model)
  rng = np.random.default_rng(0)
  trajectory = [[w.numpy() for w in weights]]
  ema = ema_lib.WeightEMA(weights, decay)
  for _ in range(15):
    for w in weights:
      w.assign(rng.normal(size=w.shape).astype(np.float32))
    trajectory.append([w.numpy() for w in weights])
    ema.update(weights)
  assert int(ema.num_updates.numpy()) == 15
  for i, average in enumerate(ema.averages):
    expected = _closed_form([t[i] for t in trajectory], decay)
    np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-6)
  # copy_to puts the averages into the model; swap twice restores.
  last = [w.numpy() for w in weights]
  ema.swap(weights)
  np.testing.assert_allclose(weights[0].numpy(),
                             _closed_form([t[0] for t in trajectory], decay), rtol=1e-5)
  ema.swap(weights)
  np.testing.assert_array_equal(weights[0].numpy(), last[0])


def test_update_under_mirrored_strategy_inside_the_replica_function():
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  strategy = strategy_lib.make_strategy("mirrored")
  with strategy.scope():
    model = _toy_model()
    weights = ema_lib.averaged_weights(model)
    ema = ema_lib.WeightEMA(weights, 0.9)
  start = weights[0].numpy()

  @tf.function
  def step():
    def replica():
      weights[0].assign_add(tf.ones_like(weights[0]))
      ema.update(weights)
    strategy.run(replica)

  for _ in range(3):
    step()
  # Weights after k steps: start + k. Every replica's copy holds the same average.
  expected = _closed_form([start + k for k in range(4)], 0.9)
  for value in strategy.experimental_local_results(ema.averages[0]):
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
  assert int(ema.num_updates.numpy()) == 3


MODEL = config_lib.ModelConfig(name="small_cnn", width=8)
DEFENSE = config_lib.DefenseConfig(
    name="pat", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=2))


def _config(model_dir, **kw):
  fields = dict(model_dir=str(model_dir), batch_size=32, train_steps=6, checkpoint_every=2,
                log_every=2, image_every=0, progress=False, seed=3, ema_decay=0.9,
                learning_rate=3e-3)
  fields.update(kw)
  return config_lib.TrainConfig(**fields)


def _weights(model):
  return [v.numpy() for v in model.weights]


def test_trained_model_holds_the_ema_and_the_checkpoint_the_raw_weights(tmp_path):
  data = testing.fashion_mnist_info(512)
  result = trainer.train(data, MODEL, DEFENSE, _config(tmp_path))
  assert result.weights == "ema"
  raw = keras.models.clone_model(result.model)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(tmp_path / "checkpoints"))
  names = reader.get_variable_to_shape_map()
  assert any(n.startswith("ema/averages/") for n in names)
  assert int(reader.get_tensor("ema/num_updates/.ATTRIBUTES/VARIABLE_VALUE")) == 6
  tf.train.Checkpoint(model=raw).restore(
      tf.train.latest_checkpoint(tmp_path / "checkpoints")).expect_partial(
      ).assert_existing_objects_matched()
  averaged = ema_lib.averaged_weights(result.model)
  raw_weights = ema_lib.averaged_weights(raw)
  # The returned model is the average, not the raw weights (which are in the checkpoint).
  assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(averaged, raw_weights))
  for i, a in enumerate(averaged):
    np.testing.assert_allclose(
        a.numpy(), reader.get_tensor(f"ema/averages/{i}/.ATTRIBUTES/VARIABLE_VALUE"),
        rtol=1e-6)


def test_interrupted_run_resumes_to_the_same_average(tmp_path):
  data = testing.fashion_mnist_info(512)
  full = trainer.train(data, MODEL, DEFENSE, _config(tmp_path / "full"))
  first = trainer.train(data, MODEL, DEFENSE, _config(tmp_path / "part", train_steps=4))
  second = trainer.train(data, MODEL, DEFENSE, _config(tmp_path / "part"))
  assert second.resumed_from.endswith("ckpt-4")
  assert not np.allclose(_weights(first.model)[0], _weights(full.model)[0])
  for a, b in zip(_weights(full.model), _weights(second.model)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ema_under_mirrored_matches_single_device(tmp_path):
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  data = testing.fashion_mnist_info(512)
  defense = config_lib.DefenseConfig(name="pat", attack=config_lib.AttackConfig(
      name="pgd", eps=0.1, steps=2, random_start=False))
  single = trainer.train(data, MODEL, defense, _config(tmp_path / "one", train_steps=3))
  mirrored = trainer.train(data, MODEL, defense, _config(tmp_path / "two", train_steps=3),
                           strategy=strategy_lib.make_strategy("mirrored"))
  for a, b in zip(_weights(single.model), _weights(mirrored.model)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_trainer_average_follows_the_decay_past_the_warm_up(tmp_path):
  """`ema_decay` reaches the trainer's average: between consecutive checkpoints the average
  moves as a_{k+1} = d_k a_k + (1 - d_k) w_{k+1}, d_k = min(ema_decay, (1 + k)/(10 + k)).
  With ema_decay 0.3 the cap binds from k = 4 on (5/14 > 0.3), so an ignored decay (or
  one applied twice, or without the warm-up) breaks the recursion at some step."""
  data = testing.fashion_mnist_info(512)
  decay, steps = 0.3, 7
  trainer.train(data, MODEL, DEFENSE, _config(
      tmp_path, ema_decay=decay, train_steps=steps, checkpoint_every=1, keep_checkpoints=10,
      learning_rate=1e-2))
  raw = zoo.build_model(MODEL, data.image_shape, data.num_classes)
  state = tf.train.get_checkpoint_state(os.path.join(tmp_path, "checkpoints"))
  paths = {int(p.rsplit("-", 1)[1]): p for p in state.all_model_checkpoint_paths}
  assert sorted(paths) == list(range(1, steps + 1))

  def load(step):
    tf.train.Checkpoint(model=raw).restore(paths[step]).expect_partial()
    reader = tf.train.load_checkpoint(paths[step])
    weights = [w.numpy() for w in ema_lib.averaged_weights(raw)]
    averages = [reader.get_tensor(f"ema/averages/{i}/.ATTRIBUTES/VARIABLE_VALUE")
                for i in range(len(weights))]
    return weights, averages

  capped = 0
  _, previous = load(1)
  for k in range(1, steps):
    weights, averages = load(k + 1)
    d = min(decay, (1 + k) / (10 + k))
    capped += d == decay
    for a_prev, w, a in zip(previous, weights, averages):
      np.testing.assert_allclose(a, d * a_prev + (1 - d) * w, rtol=1e-5, atol=1e-7)
    # The test can tell decays apart: 0.999 (or the uncapped warm-up) is far from d here.
    gap = max(np.abs(a_prev - w).max() for a_prev, w in zip(previous, weights))
    assert gap > 1e-3
    previous = averages
  assert capped >= 3
