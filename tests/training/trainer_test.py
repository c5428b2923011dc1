"""The training loop: defenses train, strategies agree, runs resume where they stopped."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.training import trainer
from tfadv.training import strategy as strategy_lib
from tests import testing


def _data(num_train=1024):
  return testing.fashion_mnist_info(num_train)


MODEL = config_lib.ModelConfig(name="small_cnn", width=8)


def _defense(name, random_start=True, steps=3):
  attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=steps, random_start=random_start)
  return config_lib.DefenseConfig(name=name, attack=attack)


def _train_config(tmp_path, **kw):
  defaults = dict(model_dir=str(tmp_path), batch_size=32, train_steps=4, checkpoint_every=2,
                  log_every=2, progress=False, seed=3)
  defaults.update(kw)
  return config_lib.TrainConfig(**defaults)


def _weights(model):
  return [v.numpy() for v in model.weights]


@pytest.mark.parametrize("defense", ["none", "pat", "alp", "at", "at_alp"])
def test_each_defense_trains_and_logs_its_terms(tmp_path, defense):
  result = trainer.train(_data(), MODEL, _defense(defense), _train_config(tmp_path))
  assert result.steps == 4
  assert np.isfinite(result.metrics["loss"])
  expected = {"none": {"clean_ce"}, "pat": {"adv_ce"}, "alp": {"clean_ce", "adv_ce", "alp"},
              "at": {"clean_ce", "adv_ce", "at"},
              "at_alp": {"clean_ce", "adv_ce", "alp", "at"}}[defense]
  assert expected <= set(result.metrics)
  if defense != "none":
    assert "adv_accuracy" in result.metrics
  assert tf.train.latest_checkpoint(os.path.join(tmp_path, "checkpoints")).endswith("ckpt-4")
  events = tf.io.gfile.glob(os.path.join(tmp_path, "train", "events.out.tfevents.*"))
  assert events


def test_mirrored_step_matches_single_device(tmp_path):
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  # No random start: both runs must see identical adversarial examples.
  defense = _defense("at_alp", random_start=False, steps=2)
  single = trainer.train(_data(), MODEL, defense,
                         _train_config(tmp_path / "single", train_steps=1, batch_size=16))
  mirrored_strategy = strategy_lib.make_strategy("mirrored")
  mirrored = trainer.train(_data(), MODEL, defense,
                           _train_config(tmp_path / "mirrored", train_steps=1, batch_size=16),
                           strategy=mirrored_strategy)
  assert mirrored.strategy.num_replicas_in_sync == 2
  for a, b in zip(_weights(single.model), _weights(mirrored.model)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert abs(single.metrics["loss"] - mirrored.metrics["loss"]) < 1e-4


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
  defense = _defense("at_alp")  # random starts are stateless: replayable after a restart
  full = trainer.train(_data(), MODEL, defense, _train_config(tmp_path / "full", train_steps=6))
  part_dir = tmp_path / "part"
  first = trainer.train(_data(), MODEL, defense, _train_config(part_dir, train_steps=4))
  assert first.steps == 4 and first.resumed_from is None
  second = trainer.train(_data(), MODEL, defense, _train_config(part_dir, train_steps=6))
  assert second.resumed_from.endswith("ckpt-4")
  assert second.steps == 6
  for a, b in zip(_weights(full.model), _weights(second.model)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resuming_with_another_defense_is_refused(tmp_path):
  trainer.train(_data(), MODEL, _defense("pat"), _train_config(tmp_path, train_steps=1))
  with pytest.raises(ValueError, match="holds a run with another defense config"):
    trainer.train(_data(), MODEL, _defense("at_alp"), _train_config(tmp_path, train_steps=2))


def test_batch_must_split_across_replicas(tmp_path):
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  strategy = strategy_lib.make_strategy("mirrored")
  with pytest.raises(ValueError, match="multiple of the 2 replicas"):
    trainer.train(_data(), MODEL, _defense("pat"), _train_config(tmp_path, batch_size=33),
                  strategy=strategy)


def test_input_pipeline_is_a_function_of_seed_and_step():
  ds = tf.data.Dataset.range(10)
  full = [b.numpy().tolist() for b in trainer.input_pipeline(ds, 3, 10, seed=1).take(7)]
  resumed = [b.numpy().tolist() for b in
             trainer.input_pipeline(ds, 3, 10, seed=1, start_step=4).take(3)]
  assert resumed == full[4:]


def test_schedules_and_optimizers():
  cfg = config_lib.TrainConfig(schedule="piecewise", optimizer="sgd", learning_rate=0.1)
  opt = trainer.build_optimizer(cfg, 100)
  assert np.isclose(float(opt.learning_rate), 0.1)
  schedule = trainer.learning_rate(cfg, 100)
  assert np.isclose(float(schedule(80)), 0.001)
  cosine = trainer.learning_rate(dataclasses.replace(cfg, schedule="cosine"), 100)
  assert float(cosine(100)) < 1e-6
