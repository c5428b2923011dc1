"""Robustness reports: `report.json` (for tools) and `report.md` (for people).

The JSON Schema is `docs/report.schema.json` (tests validate every report they write
against it); in short (extra keys may be added, none removed):
  {"schema_version": 2, "dataset": str, "model": str, "defense": str, "eps": float,
   "num_examples": int, "clean_accuracy": float, "clean_se": float,
   "attacks": {"<name>": {"accuracy": float, "se": float, "params": {...},
                          "num_examples": int (only when the attack had a limit)}},
   # Per example (schema_version >= 2):
   "worst_case": {"<norm>@<eps>": {"norm", "eps", "attacks": [names], "num_examples",
                                    "accuracy", "se"}},
   "per_class": {"<class>": {"num_examples", "clean": {"accuracy", "se"},
                             "robust": {"<norm>@<eps>": {"accuracy", "se", "num_examples"}}}},
   "confusion": {"attack": name, "num_examples", "classes": [names],
                 "clean": [[int]], "adversarial": [[int]]}  (rows: true, columns: predicted),
   # Added by the evaluation suite (optional when reading):
   "threat_model": "white" | "gray" | "black", "source_model": str (gray/black),
   "training_threat": {"eps": float, "norm": str} (the training attack's budget),
   "off_training_threat": [attack names evaluated at another eps or norm than it],
   "warnings": [str, ...] (tfadv.evaluation.sanity), "plots": {kind: "file.png"}}

Every accuracy has its binomial standard error `sqrt(p (1 - p) / n)` beside it. The worst
case at a budget is per example, as AutoAttack and RobustBench read robustness: an example
counts as robust only if it is classified correctly clean and under *every* attack run at
that norm and eps (not the lowest of the attacks' accuracies, which can be higher when the
attacks fool different examples). Attacks with an example limit (`num_examples`) enter the
worst case on the examples they ran on: its `num_examples` is the smallest limit.
Files are written to a temporary name and renamed, so a crash never leaves half a report.
"""

import json
import math
import os

import numpy as np
import tensorflow as tf

from tfadv import io_utils

# 1: reports before per-example sections and standard errors (no `schema_version` key).
SCHEMA_VERSION = 2


def standard_error(accuracy, n):
  """The binomial standard error of an accuracy over `n` examples: sqrt(p (1 - p) / n)."""
  return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / max(n, 1))


def _figure(correct):
  """{accuracy, se, num_examples} of a boolean array of per-example outcomes."""
  n = int(np.size(correct))
  accuracy = float(np.mean(correct)) if n else 0.0
  return {"accuracy": accuracy, "se": standard_error(accuracy, n), "num_examples": n}


def budget_key(norm, eps):
  """The key of a threat budget in `worst_case` and `per_class`: `linf@0.1`."""
  return f"{norm}@{float(eps):g}"


def budgets(result):
  """{budget key: [attack names]} in the order the attacks ran (norm and eps of each)."""
  groups = {}
  for name, params in result.attack_params.items():
    key = budget_key(params.get("norm", "linf"), params.get("eps", 0.0))
    groups.setdefault(key, []).append(name)
  return groups


def robust_examples(result, names):
  """Boolean [n]: clean-correct and correct under every attack of `names`, per example.

  n is the fewest examples any of them ran on (attacks with a limit cover a prefix).
  """
  n = min(result.examples(name) for name in names)
  robust = np.asarray(result.clean_predictions)[:n] == np.asarray(result.labels)[:n]
  for name in names:
    robust &= result.correct(name)[:n]
  return robust


def worst_case(result):
  """Per budget, the accuracy under the worst case of all its attacks, per example."""
  out = {}
  for key, names in budgets(result).items():
    norm, eps = result.attack_params[names[0]].get("norm", "linf"), key.split("@")[1]
    out[key] = {"norm": norm, "eps": float(eps), "attacks": list(names),
                **_figure(robust_examples(result, names))}
  return out


def _class_names(result, class_names):
  count = 1 + int(max(np.max(result.labels), np.max(result.clean_predictions),
                      *(np.max(p) for p in result.attack_predictions.values() if len(p))))
  names = [str(c) for c in (class_names or ())]
  if len(names) < count or len(set(names)) != len(names):
    names = [str(i) for i in range(max(count, len(names)))]
  return names


def per_class(result, class_names=None):
  """Per class (true label): clean accuracy and the worst-case accuracy at each budget."""
  names = _class_names(result, class_names)
  labels = np.asarray(result.labels)
  clean = np.asarray(result.clean_predictions) == labels
  robust = {key: robust_examples(result, group) for key, group in budgets(result).items()}
  out = {}
  for index, name in enumerate(names):
    members = labels == index
    if not members.any():
      continue
    entry = _figure(clean[members])
    out[name] = {"num_examples": entry["num_examples"],
                 "clean": {"accuracy": entry["accuracy"], "se": entry["se"]},
                 "robust": {key: _figure(r[members[:len(r)]]) for key, r in robust.items()}}
  return out


def strongest_attack(result, eps=None):
  """The attack with the lowest accuracy, among those at `eps` when any ran at it."""
  names = list(result.attack_correct)
  at_eps = [n for n in names if eps is not None
            and math.isclose(float(result.attack_params[n].get("eps", -1)), float(eps))]
  candidates = at_eps or names
  return min(candidates, key=result.accuracy) if candidates else None


def confusion(result, attack, class_names=None):
  """Confusion matrices (rows: true class, columns: predicted) clean and under `attack`.

  Both over the examples the attack ran on, so the two matrices count the same images.
  """
  names = _class_names(result, class_names)
  adv = np.asarray(result.attack_predictions[attack])
  n = len(adv)
  labels = np.asarray(result.labels)[:n]

  def matrix(pred):
    m = np.zeros((len(names), len(names)), np.int64)
    np.add.at(m, (labels, np.asarray(pred)[:n]), 1)
    return m.tolist()

  return {"attack": attack, "num_examples": n, "classes": names,
          "clean": matrix(result.clean_predictions), "adversarial": matrix(adv)}


def _attack_entry(result, name):
  entry = {"accuracy": result.accuracy(name),
           "se": standard_error(result.accuracy(name), result.examples(name)),
           "params": result.attack_params[name]}
  if result.examples(name) != result.num_examples:
    entry["num_examples"] = result.examples(name)
  return entry


def build(result, dataset, model, defense, eps, extra=None, class_names=None):
  """The report dict of a `robustness.Result`.

  Args:
    class_names: names of the classes by label (the per-class keys and the confusion
      matrices' labels); None names them by index.
  """
  report = {
      "schema_version": SCHEMA_VERSION,
      "dataset": dataset,
      "model": model,
      "defense": defense,
      "eps": eps,
      "num_examples": result.num_examples,
      "clean_accuracy": result.clean_accuracy,
      "clean_se": standard_error(result.clean_accuracy, result.num_examples),
      "attacks": {name: _attack_entry(result, name) for name in result.attack_correct},
  }
  per_example = (result.labels is not None and result.clean_predictions is not None
                 and set(result.attack_predictions) == set(result.attack_correct))
  if per_example:
    report["per_class"] = per_class(result, class_names)
    if result.attack_correct:
      report["worst_case"] = worst_case(result)
      report["confusion"] = confusion(result, strongest_attack(result, eps), class_names)
  if extra:
    report.update(extra)
  return report


def training_threat(report, eps, norm, skip=()):
  """Fields saying whether the report's attacks ran at the training attack's eps and norm.

  A model trained at eps = 8/255 but evaluated at 0.1 measures another threat than the one
  it was trained for; the report (and the model card) then say so.

  Args:
    report: a report dict (its `attacks` with their `params`).
    eps, norm: the training attack's budget.
    skip: attack names that are sanity checks, not robustness figures (eps = 1).

  Returns:
    {"training_threat": {"eps", "norm"}, "off_training_threat": [names]}.
  """
  off = [name for name, entry in report["attacks"].items()
         if name not in skip and (
             not math.isclose(float(entry["params"].get("eps", eps)), eps, rel_tol=1e-9)
             or entry["params"].get("norm", norm) != norm)]
  return {"training_threat": {"eps": eps, "norm": norm}, "off_training_threat": off}


def _training_threat_lines(report):
  off = report.get("off_training_threat")
  if not off:
    return []
  threat = report["training_threat"]
  budgets = sorted({(report["attacks"][n]["params"].get("norm", threat["norm"]),
                     _fmt(float(report["attacks"][n]["params"].get("eps", threat["eps"]))))
                    for n in off})
  return [f"Note: evaluated at {', '.join(f'{n} eps = {e}' for n, e in budgets)} "
          f"({', '.join(off)}), not at the training threat ({threat['norm']} eps = "
          f"{_fmt(float(threat['eps']))}): those figures measure another threat than the one "
          "the model was trained for.", ""]


def markdown(report):
  """A Markdown table of a report."""
  lines = [
      f"# Robustness report: {report['model']} / {report['defense']} on {report['dataset']}",
      "",
      f"{report['num_examples']} test examples, eps = {report['eps']} (images in [0, 1]).",
      "",
      *_threat_lines(report),
      *_training_threat_lines(report),
  ]
  # `defense_settings`: only what the recipe reads; older reports have `defense_config` only.
  weights = report.get("defense_settings")
  if weights is None and report.get("defense_config"):
    weights = {k: v for k, v in report["defense_config"].items() if k not in ("name", "attack")}
  if weights:
    lines += ["Defense settings: " + ", ".join(f"{k}={_fmt(v)}" for k, v in weights.items()),
              ""]
  layers = report.get("model_layers")
  if layers:
    taps = ", ".join(layers.get("taps") or []) or "none"
    lines += [f"Layers read: taps ({len(layers.get('taps') or [])}) {taps}; Grad-CAM "
              f"{layers.get('gradcam_layer') or 'none'}."]
    lines += [f"Model adapted: {note}." for note in layers.get("notes") or []] + [""]
  measured = []
  if report.get("weights"):
    measured.append(f"weights: {report['weights']}")
  if report.get("checkpoint"):
    measured.append(f"checkpoint: {report['checkpoint']}")
  if report.get("best_step") is not None:
    measured.append(f"best validation step {report['best_step']} (PGD accuracy "
                    f"{100 * report.get('best_validation_adv_accuracy', 0):.2f}%)")
  if measured:
    lines += ["Measured " + "; ".join(measured) + ".", ""]
  randomized = report.get("randomized")
  if randomized:
    lines += [f"Randomized defense: {randomized['note']} (EOT: "
              f"{', '.join(randomized['eot']) or 'none'}; upper bounds: "
              f"{', '.join(randomized['without_eot']) or 'none'}).", ""]
  lines += [
      "| attack | params | accuracy ± SE |",
      "|---|---|---|",
      f"| clean | - | {_pct(report['clean_accuracy'], report.get('clean_se'))} |",
  ]
  for name, entry in report["attacks"].items():
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in entry["params"].items())
    lines.append(f"| {name} | {params} | {_pct(entry['accuracy'], entry.get('se'))} |")
  lines += _worst_case_lines(report) + _per_class_lines(report) + _confusion_lines(report)
  warnings = report.get("warnings")
  if warnings is not None:
    lines += ["", "## Sanity checks", ""]
    lines += [f"- WARNING: {w}" for w in warnings] or [
        "No warnings: accuracy falls with more iterations and larger eps, and no "
        "gradient-free or transfer attack beats the gradient attacks."]
  for kind, name in report.get("plots", {}).items():
    lines += ["", f"![{kind}]({name})"]
  return "\n".join(lines) + "\n"


def _pct(accuracy, se=None):
  text = f"{100 * accuracy:.2f}%"
  return text if se is None else f"{text} ± {100 * se:.2f}"


def _worst_case_lines(report):
  worst = report.get("worst_case")
  if not worst:
    return []
  lines = ["", "## Worst case over attacks (per example)", "",
           "An example counts as robust only if it is classified correctly clean and under "
           "every attack at that budget (AutoAttack / RobustBench reading).", "",
           "| budget | attacks | examples | robust accuracy ± SE |", "|---|---|---|---|"]
  for key, entry in worst.items():
    lines.append(f"| {key} | {', '.join(entry['attacks'])} | {entry['num_examples']} | "
                 f"{_pct(entry['accuracy'], entry['se'])} |")
  return lines


def _per_class_lines(report):
  classes = report.get("per_class")
  if not classes:
    return []
  keys = list(report.get("worst_case", {}))
  lines = ["", "## Per class", "", "Robust: the worst case over the attacks at each budget, "
           "over the examples all of them ran on (the worst-case table's count).",
           "", "| class | examples | clean ± SE | " + " | ".join(
               f"robust {k} ± SE" for k in keys) + " |",
           "|---|---|---|" + "---|" * len(keys)]
  for name, entry in classes.items():
    robust = [_pct(entry["robust"][k]["accuracy"], entry["robust"][k]["se"])
              if k in entry["robust"] else "-" for k in keys]
    lines.append(f"| {name} | {entry['num_examples']} | "
                 f"{_pct(entry['clean']['accuracy'], entry['clean']['se'])} | "
                 + " | ".join(robust) + " |")
  return lines


def _confusion_lines(report):
  matrix = report.get("confusion")
  if not matrix:
    return []
  lines = ["", f"## Confusion: clean vs {matrix['attack']} (the strongest attack)", "",
           f"Rows: true class, columns: predicted, over {matrix['num_examples']} examples "
           "(`confusion` in report.json). Most frequent errors under attack:", ""]
  errors = [(count, matrix["classes"][t], matrix["classes"][p])
            for t, row in enumerate(matrix["adversarial"]) for p, count in enumerate(row)
            if t != p and count]
  for count, true, pred in sorted(errors, key=lambda e: -e[0])[:5]:
    lines.append(f"- {true} -> {pred}: {count}")
  if not errors:
    lines.append("- none")
  return lines


def _threat_lines(report):
  threat = report.get("threat_model")
  if not threat:
    return []
  text = f"Threat model: {threat} box"
  if report.get("source_model"):
    text += f" (adversarial examples computed on {report['source_model']}, then transferred)"
  return [text + ".", ""]


def _fmt(value):
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def write(report, directory):
  """Writes `report.json` and `report.md` into `directory`; returns the JSON path."""
  tf.io.gfile.makedirs(directory)
  json_path = os.path.join(directory, "report.json")
  io_utils.atomic_write(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
  io_utils.atomic_write(os.path.join(directory, "report.md"), markdown(report))
  return json_path


def read(path):
  """Reads a report.json.

  Raises:
    ValueError: when the file is not a report (missing keys).
  """
  report = io_utils.read_json(path, "report")
  if not isinstance(report, dict):
    raise ValueError(f"Invalid report: {path!r} is not a JSON object")
  missing = {"dataset", "model", "defense", "eps", "num_examples", "clean_accuracy",
             "attacks"} - set(report)
  if missing:
    raise ValueError(f"Invalid report {path!r}: expected keys {sorted(missing)}")
  return report
