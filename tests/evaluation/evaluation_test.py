"""evaluate_model end to end in process: report schema, plots, and resuming after a crash."""

import json
import os
import types

import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv import workflow
from tfadv.evaluation import partial
from tfadv.evaluation import report as report_lib
from tfadv.evaluation import robustness
from tfadv.evaluation import specs
from tests import testing


@pytest.fixture(scope="module")
def data():
  _, _, xt, yt = testing.fashion_mnist_arrays()
  test = tf.data.Dataset.from_tensor_slices((xt[:64], yt[:64]))
  return types.SimpleNamespace(name="fashion_mnist", test=test, num_test=64)


def _config(text, eps=(0.05, 0.1)):
  return config_lib.EvalConfig(attacks=specs.parse_attacks(text, list(eps)), batch_size=32)


class Interrupt(Exception):
  pass


def test_report_plots_and_resume(data, tmp_path):
  model = testing.trained_undefended_model()
  directory = str(tmp_path)
  fingerprint = {"checkpoint": "ckpt-1"}
  first = _config("fgsm,pgd:steps=2")

  def crash_after_fgsm(label, done):
    if label.startswith("pgd"):
      raise Interrupt(label)

  with pytest.raises(Interrupt):  # Killed while PGD runs, after clean and FGSM finished.
    workflow.evaluate_model(model, data, first, "small_cnn", "none", 0.1, directory,
                            progress=crash_after_fgsm, fingerprint=fingerprint)
  cache = partial.PartialResults(directory, dict(fingerprint, num_examples=None,
                                                 dataset="fashion_mnist",
                                                 threat_model="white"))
  assert cache.finished == ["clean", "fgsm@0.05", "fgsm@0.1"]
  assert not os.path.exists(os.path.join(directory, "report.json"))

  # Mark the stored FGSM count so that reuse (not recomputation) is visible.
  with open(cache.path) as f:
    stored = json.load(f)
  stored["entries"]["fgsm@0.1"]["correct"] = 7
  with open(cache.path, "w") as f:
    json.dump(stored, f)

  computed = []
  record = lambda label, done: computed.append(label)
  report = workflow.evaluate_model(model, data, _config("fgsm,pgd:steps=2,pgd:steps=6"),
                                   "small_cnn", "none", 0.1, directory, progress=record,
                                   fingerprint=fingerprint)
  assert set(computed) == {"pgd2@0.05", "pgd2@0.1", "pgd6@0.05", "pgd6@0.1"}
  assert report["attacks"]["fgsm@0.1"]["accuracy"] == 7 / 64
  assert report["threat_model"] == "white" and isinstance(report["warnings"], list)
  assert report["plots"] == {"accuracy_vs_steps": "accuracy_vs_steps.png",
                             "accuracy_vs_eps": "accuracy_vs_eps.png",
                             "confusion": "confusion.png"}
  for name in report["plots"].values():
    with open(os.path.join(directory, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  written = report_lib.read(os.path.join(directory, "report.json"))
  testing.assert_valid(written, "report")
  # Resumed attacks keep their per-example outcomes: the worst case covers every attack.
  assert written["worst_case"]["linf@0.1"]["attacks"] == ["fgsm@0.1", "pgd2@0.1", "pgd6@0.1"]
  assert written["attacks"]["pgd6@0.1"]["params"]["steps"] == 6
  markdown = open(os.path.join(directory, "report.md")).read()
  assert "Threat model: white box" in markdown and "## Sanity checks" in markdown
  assert "![accuracy_vs_steps](accuracy_vs_steps.png)" in markdown
  for section in ("## Worst case over attacks", "## Per class", "## Confusion"):
    assert section in markdown

  # Another checkpoint: nothing is reused.
  computed.clear()
  workflow.evaluate_model(model, data, _config("fgsm", eps=(0.1,)), "small_cnn", "none", 0.1,
                          directory, progress=record, fingerprint={"checkpoint": "ckpt-2"})
  assert set(computed) == {"clean", "fgsm"}


def test_issue_attack_list_parses_and_a3_runs_in_the_evaluation(data):
  attacks = specs.parse_attacks(
      "fgsm,pgd:steps=200:restarts=5,cw_linf:steps=100,autoattack,rays:queries=10000,"
      "a3:sigma=10", [0.1])
  labels = [robustness.attack_label(a) for a in attacks]
  assert labels == ["fgsm", "pgd200x5", "cw_linf100", "autoattack", "rays", "a3"]
  cheap = specs.parse_attacks("a3:sigma=10:steps=2:base=pgd", [0.1])
  result = robustness.evaluate(testing.trained_undefended_model(), data.test.take(16), cheap)
  assert set(result.attack_correct) == {"a3_pgd2"}
  assert result.attack_correct["a3_pgd2"] < result.clean_correct
