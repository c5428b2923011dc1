"""tfadv-evaluate measures the threat the run was trained for unless told otherwise, and a
report or model card at another eps or norm says so."""

import os
import subprocess
import sys

import pytest

from serving import model_card
from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.evaluation import report as report_lib
from tfadv.training import trainer
from tests import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def l2_run(tmp_path_factory):
  """A few steps of L2 PGD training at eps = 0.05 (the figures do not matter here)."""
  model_dir = str(tmp_path_factory.mktemp("l2") / "run")
  data_config = config_lib.DataConfig(name="digits")
  attack = config_lib.AttackConfig(name="pgd", eps="1/20", norm="l2", steps=1)
  trainer.train(datasets.load(data_config), config_lib.ModelConfig(width=4),
                config_lib.DefenseConfig(name="pat", attack=attack),
                config_lib.TrainConfig(model_dir=model_dir, batch_size=32, train_steps=4,
                                       checkpoint_every=4, progress=False),
                data_config)
  return model_dir


def test_evaluate_defaults_to_the_training_threat_and_flags_another(l2_run, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  common = ["--attacks=fgsm", "--num_examples=16", "--noprogress", "--noresume"]
  runs = {name: subprocess.Popen(
      [sys.executable, "-m", "trainers.evaluate", f"--model_dir={l2_run}",
       f"--output_dir={tmp_path / name}", *common, *extra], cwd=ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for name, extra in (("default", []), ("other", ["--eps=0.1"]))}
  reports = {}
  for name, proc in runs.items():
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout + stderr
    reports[name] = testing.assert_valid(str(tmp_path / name / "report.json"))
    reports[name]["md"] = (tmp_path / name / "report.md").read_text()
  default, other = reports["default"], reports["other"]
  # Follows the training norm (the report names the attack fgsm_l2) and eps.
  assert default["attacks"]["fgsm_l2"]["params"]["eps"] == 0.05
  assert default["attacks"]["fgsm_l2"]["params"]["norm"] == "l2"
  assert default["training_threat"] == {"eps": 0.05, "norm": "l2"}
  assert default["off_training_threat"] == [] and "Note: evaluated at" not in default["md"]
  assert other["attacks"]["fgsm_l2"]["params"]["eps"] == 0.1
  assert other["off_training_threat"] == ["fgsm_l2"]
  assert "Note: evaluated at l2 eps = 0.1 (fgsm_l2), not at the training threat (l2 eps = " \
      "0.05)" in other["md"]


def _report(eps, norm="linf"):
  return {"dataset": "d", "model": "m", "defense": "pat", "eps": eps, "num_examples": 8,
          "clean_accuracy": 0.9,
          "attacks": {"pgd20": {"accuracy": 0.4, "params": {"eps": eps, "norm": norm}},
                      "pgd10": {"accuracy": 0.0, "params": {"eps": 1.0, "norm": "linf"}}}}


def test_report_and_model_card_name_another_eps_or_norm():
  meta = {"defense": {"name": "pat", "attack": {"eps": 8 / 255, "norm": "linf"}},
          "model_name": "m", "version": 1, "input_shape": [8, 8, 1]}
  for eps, norm, off in ((8 / 255, "linf", []), (0.1, "linf", ["pgd20"]),
                         (8 / 255, "l2", ["pgd20"])):
    report = _report(eps, norm)
    report.update(report_lib.training_threat(report, 8 / 255, "linf", skip=("pgd10",)))
    assert report["off_training_threat"] == off
    assert ("Note: evaluated at" in report_lib.markdown(report)) == bool(off)
    card = model_card.build(meta, report)
    assert card["robustness"]["off_training_threat"] == off  # eps = 1 is the sanity check.
    text = model_card.markdown(card)
    assert (f"Evaluated at {norm} eps={eps:.4g} (pgd20), not at the training threat (linf "
            f"eps=0.03137)" in text) == bool(off), text
