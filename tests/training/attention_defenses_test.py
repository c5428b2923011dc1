"""AAD and TRADES defenses train for a few hundred steps, under one device and mirrored,
without NaNs, and the chief writes Grad-CAM panels to TensorBoard."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
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
@pytest.mark.parametrize("strategy", ["default", "mirrored"])
@pytest.mark.parametrize("defense", ["aad", "alp_aad", "trades", "at_alp_aad"])
def test_defense_trains_a_few_hundred_steps_without_nans(tmp_path, defense, strategy):
  image_every = 100 if defense == "at_alp_aad" else 0
  result = _train(tmp_path, defense, steps=200, batch_size=16, image_every=image_every,
                  strategy=_mirrored() if strategy == "mirrored" else None)
  assert result.strategy.num_replicas_in_sync == (2 if strategy == "mirrored" else 1)
  _check_trained(result, defense, 200)
  if image_every:
    # [clean | cam | adversarial | cam] panels of 28x28 images, at steps 100 and 200, from
    # the chief (the only writer under both strategies).
    assert _image_summaries(str(tmp_path)) == [
        (100, "gradcam/clean_vs_adv", 112, 28), (200, "gradcam/clean_vs_adv", 112, 28)]
