"""AAD and TRADES defenses train for a few hundred steps without NaNs; two mirrored
replicas take exactly the single device's steps; the chief writes Grad-CAM panels."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.models import zoo
from tfadv.training import trainer
from tfadv.training import strategy as strategy_lib
from tests import testing

MODEL = config_lib.ModelConfig(name="small_cnn", width=8)
TERMS = {"aad": {"adv_ce", "rectification", "preservation"},
         "alp_aad": {"clean_ce", "adv_ce", "alp", "rectification", "preservation"},
         "trades": {"clean_ce", "trades_kl"},
         "at_alp_aad": {"clean_ce", "adv_ce", "alp", "at", "rectification", "preservation"}}


def _data(num_train=4096):
  return testing.fashion_mnist_info(num_train)


def _train(tmp_path, defense, steps, batch_size, strategy=None, image_every=0):
  attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=2)
  train_config = config_lib.TrainConfig(
      model_dir=str(tmp_path), batch_size=batch_size, train_steps=steps, log_every=50,
      checkpoint_every=steps, image_every=image_every, progress=False, seed=1)
  return trainer.train(_data(), MODEL, config_lib.DefenseConfig(name=defense, attack=attack),
                       train_config, strategy=strategy)


def _check_trained(result, defense, steps):
  assert result.steps == steps
  assert TERMS[defense] <= set(result.metrics)
  for name, value in result.metrics.items():
    assert np.isfinite(value), (name, value)
  for variable in result.model.weights:
    assert np.all(np.isfinite(variable.numpy())), variable.path
  # It learned something (chance is 0.1) despite the attack in the loop.
  assert result.metrics["accuracy"] > 0.4, result.metrics
  if "rectification" in result.metrics:
    assert -2 * np.sqrt(2) <= result.metrics["rectification"] < 0.0
    assert 0.0 < result.metrics["preservation"] <= 2.0


def _mirrored():
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  return strategy_lib.make_strategy("mirrored")


def _image_summaries(model_dir):
  tags = []
  for path in glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "images":
          width, height = (int(v) for v in tf.make_ndarray(value.tensor)[:2])
          tags.append((event.step, value.tag, width, height))
  return tags


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["aad", "alp_aad", "trades", "at_alp_aad"])
def test_defense_trains_a_few_hundred_steps_without_nans(tmp_path, defense):
  image_every = 100 if defense == "at_alp_aad" else 0
  result = _train(tmp_path, defense, steps=200, batch_size=16, image_every=image_every)
  assert result.strategy.num_replicas_in_sync == 1
  _check_trained(result, defense, 200)
  if image_every:
    # [clean | cam | adversarial | cam] panels of 28x28 images, at steps 100 and 200.
    assert _image_summaries(str(tmp_path)) == [
        (100, "gradcam/clean_vs_adv", 112, 28), (200, "gradcam/clean_vs_adv", 112, 28)]


# at_alp_aad's passes and terms include aad's and alp_aad's; trades has the separate passes.
@pytest.mark.parametrize("defense", ["trades", "at_alp_aad"])
def test_mirrored_steps_equal_the_single_device_steps(tmp_path, defense):
  """Two replicas take the single device's steps (same weights, same metrics): the 200-step
  run above then holds under mirrored too. Attacks without random start, so that both runs
  see the same adversarial images (TRADES starts from x + 0.001 N(0, 1) noise drawn per
  replica: a looser tolerance there); SGD, whose step scales with the gradient (Adam's
  does not), so a loss averaged over the replica's batch instead of the global one
  fails; the chief alone writes the Grad-CAM panels."""
  attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=2, random_start=False)
  defense_config = config_lib.DefenseConfig(name=defense, attack=attack)
  data = _data(512)
  panels = 1 if defense == "at_alp_aad" else 0  # the mirrored run's chief writes them
  runs = {}
  keras.utils.set_random_seed(1)  # the initial weights, as trainer.train builds them
  initial = [w.numpy() for w in zoo.build_model(MODEL, data.image_shape,
                                                  data.num_classes).weights]
  for name, strategy in (("single", None), ("mirrored", _mirrored())):
    runs[name] = trainer.train(data, MODEL, defense_config, config_lib.TrainConfig(
        model_dir=str(tmp_path / name), batch_size=16, train_steps=2, log_every=2,
        checkpoint_every=2, image_every=panels if strategy else 0, progress=False, seed=1,
        optimizer="sgd", learning_rate=0.05),
        strategy=strategy)
  single, mirrored = runs["single"], runs["mirrored"]
  assert mirrored.strategy.num_replicas_in_sync == 2
  assert TERMS[defense] <= set(mirrored.metrics)
  # TRADES measured: KL 11 % apart, adversarial accuracy one image of 32 apart.
  noisy = {"trades_kl": (0.3, 0), "adv_accuracy": (0, 2 / 32)} if defense == "trades" else {}
  for key, value in single.metrics.items():
    rtol, atol = noisy.get(key, (1e-4, 1e-6))
    np.testing.assert_allclose(mirrored.metrics[key], value, rtol=rtol, atol=atol, err_msg=key)
  moved = 0
  for a, b, w0 in zip(single.model.weights, mirrored.model.weights, initial):
    step_single, step_mirrored = a.numpy() - w0, b.numpy() - w0
    # TRADES measured: steps up to 5 % of the largest apart (a 2x step would be 100 %).
    share = 0.15 if defense == "trades" else 1e-3
    np.testing.assert_allclose(step_mirrored, step_single, rtol=1e-3 if share < 0.01 else 0,
                               atol=share * np.abs(step_single).max(), err_msg=a.path)
    moved += np.abs(step_single).max() > 1e-4
  assert moved >= 4
  if panels:
    assert _image_summaries(str(tmp_path / "mirrored")) == [
        (1, "gradcam/clean_vs_adv", 112, 28), (2, "gradcam/clean_vs_adv", 112, 28)]
