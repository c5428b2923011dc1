"""Shared fixtures of the serving tests: one briefly hardened digits model and its export.

The model is a small_cnn trained by `tfadv.training.trainer.train` with the at_alp defense
(PGD-2) for a few dozen steps on scikit-learn's digits: enough to have real, distinct
predictions, cheap enough (~5 s) for every serving test to share.
"""

import dataclasses
import os

import numpy as np
import pytest

from serving import export as export_lib
from tfadv import config as config_lib
from tfadv import workflow
from tfadv.data import datasets
from tfadv.models import zoo
from tfadv.training import trainer

MODEL_NAME = "digits_at_alp"


@dataclasses.dataclass
class Served:
  model: object
  model_dir: str
  export_base: str
  model_name: str
  version_dir: str
  run_config: dict
  report: dict
  x: np.ndarray
  y: np.ndarray
  class_names: tuple

  @property
  def base_path(self):
    return os.path.join(self.export_base, self.model_name)


@pytest.fixture(scope="session")
def served(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving")
  data_config = config_lib.DataConfig(name="digits")
  data = datasets.load(data_config)
  model_config = config_lib.ModelConfig(name="small_cnn", width=8)
  defense = config_lib.DefenseConfig(
      name="at_alp", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=2))
  train_config = config_lib.TrainConfig(model_dir=str(root / "run"), batch_size=64,
                                        train_steps=40, checkpoint_every=40, progress=False)
  result = trainer.train(data, model_config, defense, train_config, data_config)
  x, y = next(iter(data.test.batch(64)))
  x, y = x.numpy(), y.numpy()
  accuracy = float(np.mean(np.argmax(result.model(x).numpy(), -1) == y))
  report = {"clean_accuracy": accuracy, "eps": 0.1, "num_examples": 64,
            "attacks": {"pgd5": {"accuracy": 0.25, "params": {"eps": 0.1, "steps": 5}},
                        "autoattack": {"accuracy": 0.125, "params": {"eps": 0.1}}},
            "defense_settings": {"alp_weight": 0.5, "at_weight": 1.0},
            "warnings": ["PGD-100 is not below PGD-20 (example warning)"]}
  run_config = trainer.read_run_config(train_config.model_dir)
  export_base = str(root / "models")
  version_dir = export_lib.export(
      result.model, export_base, MODEL_NAME,
      metadata=workflow.export_metadata(run_config, report),
      tap_names=zoo.tap_layer_names("small_cnn"),
      gradcam_name=zoo.gradcam_layer_name("small_cnn"), report=report, accept_uint8=True)
  return Served(result.model, train_config.model_dir, export_base, MODEL_NAME, version_dir,
                run_config, report, x, y, tuple(data.class_names))
