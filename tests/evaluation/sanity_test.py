"""Sanity checks: they fire on a gradient-masked model and stay quiet on an honest defense."""

import tensorflow as tf

from tfadv.evaluation import report as report_lib
from tfadv.evaluation import robustness
from tfadv.evaluation import sanity
from tfadv.evaluation import specs
from tfadv import workflow
from tests import testing

ATTACKS = "fgsm,pgd:steps=5,pgd:steps=10,spsa:steps=20:samples=32:learning_rate=0.02"


class RoundedLogits:
  """The undefended model with its logits rounded to 0.01: the same decisions, but the
  rounding is flat almost everywhere, so every input gradient is zero (masked gradients,
  like a non-differentiable preprocessing)."""

  def __init__(self, model):
    self.model = model

  def __call__(self, x, training=False):
    logits = self.model(x, training=training)
    rounded = tf.round(logits * 100.0) / 100.0
    return tf.stop_gradient(rounded) + 0.0 * logits  # Zero (not None) gradients.


def _report(model, count=64):
  _, _, xt, yt = testing.fashion_mnist_arrays()
  data = tf.data.Dataset.from_tensor_slices((xt[:count], yt[:count]))
  attacks = specs.parse_attacks(ATTACKS, [0.1]) + (workflow.UNBOUNDED_CHECK,)
  result = robustness.evaluate(model, data, attacks, batch_size=count)
  report = report_lib.build(result, "fashion_mnist", "small_cnn", "test", 0.1)
  print({k: v["accuracy"] for k, v in report["attacks"].items()})
  return report


def test_warnings_fire_on_a_gradient_masked_model():
  report = _report(RoundedLogits(testing.trained_undefended_model()))
  warnings = sanity.check(report)
  print("\n".join(warnings))
  # Measured on 64 images: clean 0.66, FGSM 0.66, PGD-5/10 0.67 (zero gradients), SPSA
  # 0.45, PGD-10 at eps=1 0.36 (only the random start moves the images).
  assert any("gradient-free attack beats every gradient attack" in w for w in warnings)
  assert any("unbounded attack" in w for w in warnings)


def test_quiet_on_an_adversarially_trained_model():
  # Measured: clean 0.70, FGSM 0.64, PGD-5 0.58, PGD-10 0.56, SPSA 0.67, PGD-10@1 0.0.
  report = _report(testing.trained_defended_model())
  warnings = sanity.check(report)
  assert warnings == [], warnings


def _fake_report(accuracies, n=1000):
  """A report dict with the given {label: (params, accuracy)} (for the pure checks)."""
  return {"num_examples": n, "attacks": {
      label: {"accuracy": acc, "params": params} for label, (params, acc) in accuracies.items()}}


def test_monotonicity_and_autoattack_checks():
  pgd = lambda steps, eps=0.1: {"attack": "pgd", "eps": eps, "norm": "linf", "steps": steps,
                                "step_size": 2.5 * eps / steps, "restarts": 1}
  report = _fake_report({
      "pgd10": (pgd(10), 0.40), "pgd100": (pgd(100), 0.45),
      "pgd10@0.2": (pgd(10, 0.2), 0.42),
      "autoattack": ({"attack": "autoattack", "eps": 0.1, "norm": "linf"}, 0.47)})
  warnings = sanity.check(report)
  assert any("more iterations" in w and "pgd100" in w for w in warnings)
  assert any("larger eps" in w and "pgd10@0.2" in w for w in warnings)
  assert any("AutoAttack is weaker than PGD" in w for w in warnings)
  honest = _fake_report({"pgd10": (pgd(10), 0.40), "pgd100": (pgd(100), 0.395)})
  assert sanity.check(honest) == []


def test_transfer_stronger_than_white_box_fires():
  params = {"attack": "pgd", "eps": 0.1, "norm": "linf", "steps": 10}
  white = _fake_report({"pgd10": (params, 0.60)})
  black = dict(_fake_report({"pgd10": (params, 0.30)}), threat_model="black")
  assert any("black-box attack pgd10" in w for w in sanity.check(black, white))
  assert sanity.check(dict(black, attacks=white["attacks"]), white) == []
