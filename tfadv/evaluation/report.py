"""Robustness reports: `report.json` (for tools) and `report.md` (for people).

Schema (extra keys may be added, none removed):
  {"dataset": str, "model": str, "defense": str, "eps": float, "num_examples": int,
   "clean_accuracy": float,
   "attacks": {"<name>": {"accuracy": float, "params": {...}}},
   # Added by the evaluation suite (optional when reading):
   "threat_model": "white" | "gray" | "black", "source_model": str (gray/black),
   "warnings": [str, ...] (tfadv.evaluation.sanity), "plots": {kind: "file.png"}}
Files are written to a temporary name and renamed, so a crash never leaves half a report.
"""

import json
import os

import tensorflow as tf

from tfadv import io_utils


def build(result, dataset, model, defense, eps, extra=None):
  """The report dict of a `robustness.Result`."""
  report = {
      "dataset": dataset,
      "model": model,
      "defense": defense,
      "eps": eps,
      "num_examples": result.num_examples,
      "clean_accuracy": result.clean_accuracy,
      "attacks": {
          name: {"accuracy": result.accuracy(name), "params": result.attack_params[name]}
          for name in result.attack_correct
      },
  }
  if extra:
    report.update(extra)
  return report


def markdown(report):
  """A Markdown table of a report."""
  lines = [
      f"# Robustness report: {report['model']} / {report['defense']} on {report['dataset']}",
      "",
      f"{report['num_examples']} test examples, eps = {report['eps']} (images in [0, 1]).",
      "",
      *_threat_lines(report),
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
      "| attack | params | accuracy |",
      "|---|---|---|",
      f"| clean | - | {100 * report['clean_accuracy']:.2f}% |",
  ]
  for name, entry in report["attacks"].items():
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in entry["params"].items())
    lines.append(f"| {name} | {params} | {100 * entry['accuracy']:.2f}% |")
  warnings = report.get("warnings")
  if warnings is not None:
    lines += ["", "## Sanity checks", ""]
    lines += [f"- WARNING: {w}" for w in warnings] or [
        "No warnings: accuracy falls with more iterations and larger eps, and no "
        "gradient-free or transfer attack beats the gradient attacks."]
  for kind, name in report.get("plots", {}).items():
    lines += ["", f"![{kind}]({name})"]
  return "\n".join(lines) + "\n"


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
