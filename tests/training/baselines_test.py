"""The baseline defenses through the product's trainer: they train under `default` and
`mirrored`, resume exactly after an interruption, and ensemble AT really uses its static
models."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.defenses import table
from tfadv.training import trainer

BASELINES = ("igr", "rat", "randomization", "fd", "adp", "adp_at", "stepll_at", "fgsm_rs", "n_fgsm")


def _data():
  return datasets.load(config_lib.DataConfig(name="digits"))


def _model(name):
  # FD's denoising blocks sit after ResNet stages: it needs a ResNet.
  if table.get(name).wrapper == "denoise":
    return config_lib.ModelConfig(name="resnet18", width=2)
  return config_lib.ModelConfig(name="small_cnn", width=4)


def _defense(name, **fields):
  attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=2)
  return config_lib.DefenseConfig(name=name, attack=attack, **fields)


def _train(name, model_dir, steps, strategy="default", **fields):
  train = config_lib.TrainConfig(model_dir=str(model_dir), batch_size=16, train_steps=steps,
                                 checkpoint_every=2, log_every=1, image_every=0,
                                 progress=False, seed=5, strategy=strategy,
                                 num_cpu_devices=2 if strategy == "mirrored" else 0)
  return trainer.train(_data(), _model(name), _defense(name, **fields), train)


def _weights(result):
  return [v.numpy() for v in result.model.weights]


@pytest.mark.slow
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_trains_and_resumes_exactly(tmp_path, name):
  whole = _train(name, tmp_path / "whole", 4)
  assert np.isfinite(whole.metrics["loss"])
  expected = {term[0] for term in table.get(name).terms}
  assert expected <= set(whole.metrics), (expected, whole.metrics)
  # The weights moved: the defense's loss trains the model (steps 3-4 changed them; the
  # split run's first half is that run's step 2, no extra run needed).
  half = _train(name, tmp_path / "split", 2)
  assert any(not np.allclose(a, b) for a, b in zip(_weights(half), _weights(whole)))
  resumed = _train(name, tmp_path / "split", 4)
  assert resumed.resumed_from and resumed.resumed_from.endswith("ckpt-2")
  for a, b in zip(_weights(whole), _weights(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_trains_under_mirrored(tmp_path, name):
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  result = _train(name, tmp_path, 2, strategy="mirrored")
  assert result.strategy.num_replicas_in_sync == 2
  assert np.isfinite(result.metrics["loss"])


@pytest.mark.slow
def test_ensemble_at_attacks_its_static_models(tmp_path):
  static_a = _train("pat", tmp_path / "a", 2)
  static_b = _train("none", tmp_path / "b", 3)
  del static_a, static_b
  runs = [_train("ensemble_at", tmp_path / f"ens_{d}", 2,
                 static_model_dirs=(str(tmp_path / d),)) for d in ("a", "b")]
  # Step 0 attacks the trained model itself, step 1 the static one: with another static
  # model the second step's adversarial examples, hence the weights, differ.
  assert any(not np.allclose(a, b) for a, b in zip(_weights(runs[0]), _weights(runs[1])))
  assert np.isfinite(runs[0].metrics["loss"])


def test_ensemble_at_without_static_models_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="Invalid static_model_dirs: defense ensemble_at"):
    _train("ensemble_at", tmp_path, 1)
