"""The model card of an export: `assets.extra/model_card.json` and `model_card.md`.

The card leads with one figure (`robustness.headline`, the first line of the Markdown and the
first performance metric): AutoAttack's robust accuracy when the report has it (tfadv-train
runs AutoAttack on the first 1,000 test images by default), else the per-example worst case
of the attacks run, flagged as a possible overestimate.

The JSON follows the sections of the Model Card Toolkit schema (`model_details`,
`model_parameters`, `quantitative_analysis`, `considerations`) and adds `robustness`: the
defense and its weights, the threat model, epsilon and norm, every attack's accuracy from the
latest report and its sanity-check warnings. Pure Python over the export metadata
(`tfadv.workflow.export_metadata`) and the report dict: no TensorFlow.
"""

import json
import math

SCHEMA_VERSION = "0.0.2"  # Model Card Toolkit's schema the sections follow.


def _attack_rows(report):
  rows = []
  for name, entry in (report or {}).get("attacks", {}).items():
    params = entry.get("params", {})
    rows.append({"attack": name, "accuracy": entry.get("accuracy"),
                 "eps": params.get("eps", report.get("eps")),
                 "norm": params.get("norm", "linf"), "params": params})
  return rows


def _off_training(rows, attack):
  """The rows evaluated at another eps or norm than the training attack's."""
  eps, norm = attack.get("eps"), attack.get("norm", "linf")
  if eps is None:
    return []
  return [r for r in rows if r["eps"] is not None and (
      not math.isclose(float(r["eps"]), float(eps), rel_tol=1e-9) or r["norm"] != norm)
          and float(r["eps"]) < 1.0]  # eps = 1 is the gradient-masking check, not a figure.


def _pick(rows, *prefixes):
  return [r for r in rows if r["attack"].lower().startswith(prefixes)]


def headline(report, eps=None):
  """The figure a card leads with: AutoAttack's accuracy (at `eps` when it ran there).

  Without AutoAttack, the per-example worst case over the attacks at `eps` (the report's
  `worst_case`), else the lowest accuracy; `autoattack` False says the figure may be an
  overestimate. None without a report or attacks.
  """
  if not report or not report.get("attacks"):
    return None
  def near(value):
    return eps is None or value is None or abs(float(value) - float(eps)) < 1e-9
  entries = report["attacks"]
  auto = [(name, e) for name, e in entries.items()
          if e.get("params", {}).get("attack", name.split("@")[0]) == "autoattack"]
  auto = [(n, e) for n, e in auto if near(e["params"].get("eps"))] or auto
  n_all = report.get("num_examples")
  if auto:
    name, entry = min(auto, key=lambda item: item[1]["accuracy"])
    return {"attack": name, "autoattack": True, "accuracy": entry["accuracy"],
            "se": entry.get("se"), "num_examples": entry.get("num_examples", n_all),
            "eps": entry["params"].get("eps"), "norm": entry["params"].get("norm", "linf")}
  worst = [(k, w) for k, w in report.get("worst_case", {}).items() if near(w.get("eps"))]
  if worst:
    key, entry = min(worst, key=lambda item: item[1]["accuracy"])
    return {"attack": f"worst case of {', '.join(entry['attacks'])}", "autoattack": False,
            "accuracy": entry["accuracy"], "se": entry.get("se"),
            "num_examples": entry.get("num_examples"), "eps": entry.get("eps"),
            "norm": entry.get("norm", "linf")}
  name, entry = min(entries.items(), key=lambda item: item[1]["accuracy"])
  return {"attack": name, "autoattack": False, "accuracy": entry["accuracy"],
          "se": entry.get("se"), "num_examples": entry.get("num_examples", n_all),
          "eps": entry.get("params", {}).get("eps"),
          "norm": entry.get("params", {}).get("norm", "linf")}


def headline_text(lead):
  """One line: `Robust accuracy 41.20% ± 1.56 under autoattack (linf, eps=0.1, first 1000 ...)`."""
  if lead is None:
    return "Robust accuracy: not measured (no robustness report)."
  se = f" ± {100 * lead['se']:.2f}" if lead.get("se") is not None else ""
  text = (f"Robust accuracy {100 * lead['accuracy']:.2f}%{se} under {lead['attack']} "
          f"({lead['norm']}, eps={lead['eps']}, {lead['num_examples']} test images)")
  if not lead["autoattack"]:
    text += "; not AutoAttack, so possibly an overestimate"
  return text + "."


def build(meta, report=None):
  """The model card dict of one export.

  Args:
    meta: the export metadata (dataset, model, defense, model_name, version, input_shape,
      class_names, exported_at).
    report: the robustness report (`report.json` of the run), or None.
  """
  dataset = meta.get("dataset", {})
  model = meta.get("model", {})
  defense = dict(meta.get("defense", {}))
  attack = defense.pop("attack", {}) or {}
  rows = _attack_rows(report)
  clean = report.get("clean_accuracy") if report else None
  warnings = list((report or {}).get("warnings", []))
  lead = headline(report, attack.get("eps"))
  metrics = []
  if lead is not None:  # The card leads with the honest figure (AutoAttack when run).
    metrics.append({"type": "robust accuracy", "value": f"{lead['accuracy']:.4f}",
                    "slice": f"headline: {lead['attack']} ({lead['norm']}, eps={lead['eps']}, "
                             f"{lead['num_examples']} examples)"})
  if clean is not None:
    metrics.append({"type": "accuracy", "value": f"{clean:.4f}", "slice": "clean"})
  for row in rows:
    metrics.append({"type": "accuracy", "value": f"{row['accuracy']:.4f}",
                    "slice": f"{row['attack']} ({row['norm']}, eps={row['eps']})"})
  pgd, autoattack = _pick(rows, "pgd"), _pick(rows, "autoattack", "apgd")
  # A user's model: the layers tfadv read and what it adapted (tfadv.models.sources).
  layers = ({k: model[k] for k in ("taps", "gradcam_layer", "notes") if k in model}
            if "source" in model else (report or {}).get("model_layers"))
  if defense.get("name") in (None, "unknown"):
    overview = (f"{model.get('name')} classifier of {dataset.get('name')} images, trained "
                f"outside tfadv ({model.get('source', 'source unknown')}); its defense is "
                "unknown, its robustness is what the report below measured.")
  else:
    overview = (f"{model.get('name')} classifier of {dataset.get('name')} images "
                f"hardened with the {defense.get('name')} defense "
                f"(adversarial training at eps={attack.get('eps')}).")
  threat = (report or {}).get("threat_model", "white")
  limitations = [
      f"Robust only to {attack.get('norm', 'linf')} perturbations up to eps="
      f"{attack.get('eps')} in [0, 1] pixel units, the training threat; other norms, larger "
      "perturbations, corruptions and distribution shift are not covered.",
      "Inputs must be float images in [0, 1] of the training size (the signatures reject "
      "anything else); the figures hold only for such inputs.",
      "Empirical robustness measured by the listed attacks on "
      f"{(report or {}).get('num_examples', 'an unknown number of')} test examples, not a "
      "certified bound.",
  ]
  off = _off_training(rows, attack)
  if off:
    budgets = ", ".join(sorted({f"{r['norm']} eps={float(r['eps']):.4g}" for r in off}))
    limitations.insert(0, (
        f"Evaluated at {budgets} "
        f"({', '.join(r['attack'] for r in off)}), not at the training threat "
        f"({attack.get('norm', 'linf')} eps={float(attack.get('eps')):.4g}): those figures "
        "measure another threat than the one the model was trained for."))
  if not autoattack:
    limitations.append("Not evaluated with AutoAttack: PGD alone can overestimate robustness.")
  if report is None:
    limitations.append("No robustness report was found: the robustness figures are missing.")
  card = {
      "schema_version": SCHEMA_VERSION,
      "model_details": {
          "name": meta.get("model_name"),
          "overview": overview,
          "version": {"name": str(meta.get("version")), "date": meta.get("exported_at")},
          "references": [{"reference": "https://arxiv.org/abs/1803.06373"}],
      },
      "model_parameters": {
          "model_architecture": model.get("name"),
          "input_shape": meta.get("input_shape"),
          "input_format": (f"images float32 [N, {', '.join(map(str, meta.get('input_shape', [])))}]"
                           " in [0, 1] (or PNG/JPEG bytes, predict_images)"),
          "output_format": "logits, probabilities, class_ids, classes (class names)",
          "layers": layers,
          "data": [{"name": dataset.get("name"), "classes": meta.get("class_names", []),
                    "image_shape": dataset.get("image_shape")}],
      },
      "quantitative_analysis": {"performance_metrics": metrics},
      "considerations": {
          "users": [{"description": "operators serving an image classifier that must resist "
                                    "small adversarial perturbations"}],
          "use_cases": [{"description": f"classifying {dataset.get('name')} images "
                                        f"({len(meta.get('class_names', []))} classes)"}],
          "limitations": [{"description": text} for text in limitations],
          "ethical_considerations": [{"name": w, "mitigation_strategy": "re-evaluate with "
                                      "stronger attacks before relying on the figures"}
                                     for w in warnings],
      },
      "robustness": {
          "headline": lead,
          "defense": defense.get("name"),
          # The report lists only what the recipe reads; else the whole recorded config.
          "defense_weights": ((report or {}).get("defense_settings")
                              or meta.get("defense_settings")
                              or {k: v for k, v in defense.items() if k != "name"}),
          "training_attack": attack,
          "threat_model": threat,
          "eps": attack.get("eps", (report or {}).get("eps")),
          "norm": attack.get("norm", "linf"),
          # Attacks at another eps or norm than the training attack's (named in limitations).
          "off_training_threat": [r["attack"] for r in off],
          "clean_accuracy": clean,
          "pgd": pgd,
          "autoattack": autoattack,
          "attacks": rows,
          "sanity_warnings": warnings,
      },
  }
  return card


def markdown(card):
  """The model card as Markdown."""
  details, robustness = card["model_details"], card["robustness"]
  params = card["model_parameters"]
  lead = robustness.get("headline")
  lines = [f"# Model card: {details['name']} (version {details['version']['name']})", "",
           f"**{headline_text(lead)}**" if "headline" in robustness else "", "",
           details["overview"], "",
           "## Model", "",
           f"- Architecture: {params['model_architecture']}",
           f"- Input: {params['input_format']}",
           f"- Output: {params['output_format']}",
           *_layer_lines(params.get("layers")),
           f"- Training data: {params['data'][0]['name']}, classes: "
           f"{', '.join(map(str, params['data'][0]['classes']))}", "",
           "## Robustness", "",
           f"- Defense: {robustness['defense']}; weights: "
           + (", ".join(f"{k}={v}" for k, v in robustness["defense_weights"].items()) or "-"),
           f"- Threat model: {robustness['threat_model']} box, {robustness['norm']} norm, "
           f"eps = {robustness['eps']} (pixel units of [0, 1])", "",
           "| evaluation | accuracy |", "|---|---|"]
  for metric in card["quantitative_analysis"]["performance_metrics"]:
    if metric["type"] == "accuracy":
      lines.append(f"| {metric['slice']} | {float(metric['value']):.2%} |")
  if not card["quantitative_analysis"]["performance_metrics"]:
    lines.append("| (no report) | - |")
  lines += ["", "## Sanity checks", ""]
  lines += [f"- WARNING: {w}" for w in robustness["sanity_warnings"]] or ["No warnings."]
  lines += ["", "## Intended use and limitations", ""]
  lines += [f"- {u['description']}" for u in card["considerations"]["use_cases"]]
  lines += [f"- {l['description']}" for l in card["considerations"]["limitations"]]
  return "\n".join(lines) + "\n"


def to_json(card):
  return json.dumps(card, indent=2, sort_keys=False) + "\n"


def _layer_lines(layers):
  """Markdown lines naming the taps / Grad-CAM layer read and the adaptations of a model."""
  if not layers:
    return []
  lines = [f"- Layers read: taps {', '.join(layers.get('taps') or []) or 'none'}; Grad-CAM "
           f"{layers.get('gradcam_layer') or 'the input image (no feature maps)'}"]
  return lines + [f"- Adapted: {note}" for note in layers.get("notes") or []]
