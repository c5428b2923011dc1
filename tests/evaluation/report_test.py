"""The report's per-example sections: worst case over attacks, per class, confusion, errors."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tfadv.evaluation import plots
from tfadv.evaluation import report as report_lib
from tfadv.evaluation import robustness
from tfadv.evaluation import specs
from tests import testing


def _result():
  """10 examples, all correct clean; `a` fools 0-1, `b` fools 2-3 (AutoAttack's reading:
  6 of 10 survive both), `c` at another eps fools 0-4."""
  labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2], np.int32)
  a, b, c = labels.copy(), labels.copy(), labels.copy()
  a[[0, 1]] = [1, 2]
  b[[2, 3]] = [1, 2]
  c[:5] = [1, 1, 1, 0, 0]
  params = {"a": {"attack": "fgsm", "eps": 0.1, "norm": "linf"},
            "b": {"attack": "pgd", "eps": 0.1, "norm": "linf", "steps": 20},
            "c": {"attack": "pgd", "eps": 0.2, "norm": "linf", "steps": 20}}
  preds = {"a": a, "b": b, "c": c}
  return robustness.Result(10, 10, {k: int(np.sum(v == labels)) for k, v in preds.items()},
                           params, labels=labels, clean_predictions=labels.copy(),
                           attack_predictions=preds)


def test_worst_case_is_per_example_not_the_mean_or_min_of_accuracies():
  report = report_lib.build(_result(), "d", "m", "none", 0.1)
  worst = report["worst_case"]["linf@0.1"]
  # a and b each leave 8 of 10: their min is 0.8 and their mean 0.8, but only 6 examples
  # survive both.
  assert worst["accuracy"] == pytest.approx(0.6)
  assert worst["attacks"] == ["a", "b"] and worst["num_examples"] == 10
  assert worst["se"] == pytest.approx(math.sqrt(0.6 * 0.4 / 10))
  assert report["worst_case"]["linf@0.2"]["accuracy"] == pytest.approx(0.5)


def test_a_clean_error_is_not_robust():
  result = _result()
  result.clean_predictions[9] = 0  # wrong clean, "right" under every attack (a no-op)
  assert report_lib.worst_case(result)["linf@0.1"]["accuracy"] == pytest.approx(0.5)


def test_standard_error_beside_every_accuracy():
  report = report_lib.build(_result(), "d", "m", "none", 0.1)
  assert report["clean_se"] == 0.0
  for entry in report["attacks"].values():
    p = entry["accuracy"]
    assert entry["se"] == pytest.approx(math.sqrt(p * (1 - p) / 10))
  assert report["attacks"]["a"]["se"] == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
  md = report_lib.markdown(report)
  assert "| a | attack=fgsm, eps=0.1, norm=linf | 80.00% ± 12.65 |" in md


def test_per_class_and_confusion_under_the_strongest_attack():
  report = report_lib.build(_result(), "d", "m", "none", 0.1, class_names=("t", "u", "v"))
  classes = report["per_class"]
  assert list(classes) == ["t", "u", "v"]
  assert [classes[c]["num_examples"] for c in classes] == [3, 3, 4]
  assert classes["t"]["clean"]["accuracy"] == 1.0
  # Class t: a fools 0, 1 and b fools 2: none survives at eps 0.1; u: b fools 3.
  assert classes["t"]["robust"]["linf@0.1"]["accuracy"] == 0.0
  assert classes["u"]["robust"]["linf@0.1"]["accuracy"] == pytest.approx(2 / 3)
  assert classes["v"]["robust"]["linf@0.1"]["accuracy"] == 1.0
  confusion = report["confusion"]
  # The strongest attack at the report's eps (0.1): a and b tie at 0.8, the first is taken;
  # c (0.5, at eps 0.2) is another budget.
  assert confusion["attack"] == "a" and confusion["classes"] == ["t", "u", "v"]
  assert confusion["clean"] == [[3, 0, 0], [0, 3, 0], [0, 0, 4]]
  assert confusion["adversarial"] == [[1, 1, 1], [0, 3, 0], [0, 0, 4]]
  testing.assert_valid(report, "report")


def test_report_schema_rejects_what_it_should():
  report = report_lib.build(_result(), "d", "m", "none", 0.1)
  assert report["schema_version"] == report_lib.SCHEMA_VERSION == 2
  testing.assert_valid(report, "report")
  for broken in ({k: v for k, v in report.items() if k != "schema_version"},
                 dict(report, clean_accuracy=1.5),
                 dict(report, attacks={"a": {"accuracy": 0.8, "params": {}}})):
    with pytest.raises(AssertionError, match="does not match"):
      testing.assert_valid(broken, "report")


def test_evaluate_keeps_per_example_outcomes_and_example_limits(tmp_path):
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  data = tf.data.Dataset.from_tensor_slices((xt[:40], yt[:40]))
  attacks = specs.parse_attacks("fgsm,pgd:steps=2:num_examples=16", [0.1])
  result = robustness.evaluate(model, data, attacks, batch_size=16)
  assert list(result.labels) == list(yt[:40])
  assert result.examples("fgsm") == 40 and result.examples("pgd2") == 16
  for name in ("fgsm", "pgd2"):
    assert int(np.sum(result.correct(name))) == result.attack_correct[name]
  assert result.accuracy("pgd2") == result.attack_correct["pgd2"] / 16
  report = report_lib.build(result, "fashion_mnist", "m", "none", 0.1)
  assert report["attacks"]["pgd2"]["num_examples"] == 16
  assert report["attacks"]["pgd2"]["params"]["num_examples"] == 16
  assert "num_examples" not in report["attacks"]["fgsm"]
  worst = report["worst_case"]["linf@0.1"]
  assert worst["num_examples"] == 16
  expected = np.mean((result.clean_predictions[:16] == yt[:16]) & result.correct("fgsm")[:16]
                     & result.correct("pgd2"))
  assert worst["accuracy"] == pytest.approx(expected)
  report["plots"] = plots.write_all(report, str(tmp_path))
  assert report["plots"]["confusion"] == "confusion.png"
  with open(os.path.join(tmp_path, "confusion.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  testing.assert_valid(report, "report")


def test_example_limit_is_validated():
  with pytest.raises(ValueError, match="num_examples"):
    specs.parse_attacks("autoattack:num_examples=0", [0.1])
  (auto,) = specs.parse_attacks("autoattack:num_examples=1000", [0.1])
  assert auto.num_examples == 1000
  assert robustness.attack_label(auto) == "autoattack"


def test_default_evaluation_includes_autoattack_on_1000_examples():
  from tfadv import config as config_lib  # pylint: disable=g-import-not-at-top
  auto = [a for a in config_lib.EvalConfig().attacks if a.name == "autoattack"]
  assert [a.num_examples for a in auto] == [1000]
  from trainers import common_flags  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  assert '"fgsm,pgd:steps=20,autoattack:num_examples=1000"' in inspect.getsource(
      common_flags.define_eval_flags)
