"""A finished study as `study.json`, `study.md` and figures.

The tables follow the papers' layout: rows = defenses, columns = clean and each attack at
each eps, one table per threat model (AT+ALP's Table 1 is the white box, Table 2 the gray
and black box). Every accuracy carries its binomial standard error; the strongest attack
of each row is in bold; each defense's sanity warnings are footnotes; the seed papers'
claims are stated as hypotheses with the measured difference next to them.

`study.json` is a pure function of the finished cells except its `cost` entry (wall
times), so an interrupted and resumed study writes the same file as an uninterrupted one,
`cost` aside.
"""

import math
import os

from tfadv import io_utils
from tfadv.study import figures

# The version of study.json's layout (docs/study.schema.json); 1 had no `schema_version`.
SCHEMA_VERSION = 2


def _se(accuracy, n):
  return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(n, 1))


def _figure(accuracy, n):
  return {"accuracy": accuracy, "se": _se(accuracy, n), "n": n}


def results(study, cells, records):
  """Per defense: clean accuracy, each attack per threat model, analysis, warnings."""
  out = {}
  for defense in study.defenses:
    entry = {"attacks": {}, "warnings": {}, "strongest": {}}
    for cell in cells:
      if cell.defense != defense:
        continue
      result = records[cell.id]["result"]
      if cell.kind == "eval":
        report = result["report"]
        n = report["num_examples"]
        if cell.role == "white":
          entry["clean"] = _figure(report["clean_accuracy"], n)
        attacks = {}
        for label, value in report["attacks"].items():
          # An attack with an example limit (AutoAttack on 1,000) has its own n.
          attacks[label] = dict(_figure(value["accuracy"], value.get("num_examples", n)),
                                eps=value["params"].get("eps"),
                                attack=value["params"].get("attack"))
        entry["attacks"][cell.role] = attacks
        entry["warnings"][cell.role] = list(report.get("warnings", []))
        if attacks:
          entry["strongest"][cell.role] = min(attacks, key=lambda k: attacks[k]["accuracy"])
      elif cell.kind == "analysis":
        attention = result["analysis"]["attention"]
        entry["analysis"] = {k: v["mean"] for k, v in attention.items()}
    out[defense] = entry
  return out


def claims(study, table):
  """Each claim of the study with its measured difference in points and its verdict."""
  out = []
  for claim in study.claims:
    def find(defense):
      attacks = table[defense]["attacks"].get(claim.threat, {})
      for label, value in attacks.items():
        if label == claim.attack and (claim.eps is None or value["eps"] == claim.eps):
          return value
      return None

    better, than = find(claim.better), find(claim.than)
    text = (f"{claim.better} > {claim.than} under {claim.threat}-box {claim.attack}"
            + (f" at eps {claim.eps:g}" if claim.eps is not None else ""))
    if better is None or than is None:
      out.append({"claim": text, "paper": claim.paper, "verdict": "not measured (the "
                  "attack or eps is not in the study)"})
      continue
    diff = 100 * (better["accuracy"] - than["accuracy"])
    se = 100 * math.sqrt(better["se"] ** 2 + than["se"] ** 2)
    if abs(diff) < 2 * se:
      verdict = "within noise (|difference| < 2 standard errors)"
    else:
      verdict = "holds" if diff > 0 else "refuted (the opposite holds)"
    out.append({"claim": text, "paper": claim.paper, "difference_points": diff,
                "se_points": se, "verdict": verdict})
  return out


def cost(study, cells, records):
  """Training wall time per defense (target run) and its ratio to `pat` (~ the PGD floor)."""
  seconds = {}
  for cell in cells:
    if cell.kind == "train" and cell.role == "target":
      seconds[cell.defense] = records[cell.id]["result"]["train_seconds"]
  reference = seconds.get("pat")
  return {d: {"train_seconds": s, "x_pat": (s / reference if reference else None),
              "resumed": records[f"train/{d}/target"]["result"]["resumed"]}
          for d, s in seconds.items()}


def _pct(value):
  return f"{100 * value['accuracy']:.1f} ± {100 * value['se']:.1f}"


def markdown(study, table, claim_rows, costs, plots):
  """`study.md`: the papers' tables, footnoted warnings, claims, analysis, cost, figures."""
  lines = [f"# Study: {study.name}", ""]
  if study.description:
    lines += [study.description, ""]
  lines += [f"Data {study.data.name}, model {study.model.name} (width {study.model.width}); "
            f"defenses trained with the same budget ({dict(study.train)}), training attack "
            f"eps = {study.training_attack.eps:g}, {study.training_attack.steps} steps; "
            f"seeds {study.seeds[0]} (target) and {study.seeds[1]} (gray-box copy)"
            + (f"; black-box surrogate {study.surrogate_model.name} (width "
               f"{study.surrogate_model.width})" if study.surrogate_model else "") + ".",
            "Accuracy in % ± one standard error; the strongest attack of each row in bold.",
            ""]
  for threat in [t.value for t in study.threat_models]:
    labels = []
    for defense in study.defenses:
      for label in table[defense]["attacks"].get(threat, {}):
        if label not in labels:
          labels.append(label)
    lines += [f"## {threat.capitalize()} box", ""]
    header = ["defense", "clean"] + [
        f"{label} (eps {_eps(table, threat, label)})" for label in labels]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes = []
    for defense in study.defenses:
      entry = table[defense]
      attacks = entry["attacks"].get(threat, {})
      strongest = entry["strongest"].get(threat)
      row = [defense, _pct(entry["clean"])]
      for label in labels:
        if label not in attacks:
          row.append("-")
          continue
        cell = _pct(attacks[label])
        row.append(f"**{cell}**" if label == strongest else cell)
      warnings = entry["warnings"].get(threat, [])
      if warnings:
        footnotes.append((defense, warnings))
        row[0] += f" [{len(footnotes)}]"
      lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for number, (defense, warnings) in enumerate(footnotes, 1):
      lines.append(f"[{number}] {defense}: " + " ".join(warnings))
    if footnotes:
      lines.append("")
    elif threat:
      lines += ["No sanity warnings for this threat model.", ""]
  if claim_rows:
    lines += ["## The papers' claims, measured", ""]
    for row in claim_rows:
      measured = ""
      if "difference_points" in row:
        measured = (f": measured {row['difference_points']:+.1f} ± {row['se_points']:.1f} "
                    "points")
      source = f" ({row['paper']})" if row["paper"] else ""
      lines.append(f"- {row['claim']}{source}{measured} — {row['verdict']}")
    lines.append("")
  analysed = [d for d in study.defenses if "analysis" in table[d]]
  if analysed:
    keys = sorted(table[analysed[0]]["analysis"])
    lines += ["## Attention under attack (means over the analysed test images)", "",
              "| defense | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for defense in analysed:
      values = table[defense]["analysis"]
      lines.append(f"| {defense} | " + " | ".join(f"{values[k]:.3f}" for k in keys) + " |")
    lines.append("")
  if costs:
    lines += ["## Training cost (target run, this machine)", "",
              "| defense | train min | x pat (~ the PGD floor) |", "|---|---|---|"]
    for defense, value in costs.items():
      ratio = f"{value['x_pat']:.2f}" if value["x_pat"] else "-"
      note = " (resumed: partial time)" if value["resumed"] else ""
      lines.append(f"| {defense} | {value['train_seconds'] / 60:.1f}{note} | {ratio} |")
    lines.append("")
  for kind, name in plots.items():
    lines += [f"![{kind}]({name})", ""]
  return "\n".join(lines)


def _eps(table, threat, label):
  for entry in table.values():
    value = entry["attacks"].get(threat, {}).get(label)
    if value is not None:
      return f"{value['eps']:g}" if value["eps"] is not None else "?"
  return "?"


def write(study, cells, records, directory, draw=True):
  """Writes `study.json`, `study.md` and the figures; returns their paths."""
  table = results(study, cells, records)
  claim_rows = claims(study, table)
  costs = cost(study, cells, records)
  plots = figures.write_all(study, cells, records, table, costs, directory) if draw else {}
  document = {
      "schema_version": SCHEMA_VERSION,
      "study": study.as_dict(),
      "cells": {c.id: {"hash": c.hash, "config": c.config} for c in cells},
      "results": table,
      "claims": claim_rows,
      "plots": plots,
      "cost": costs,
  }
  json_path = io_utils.atomic_write_json(os.path.join(directory, "study.json"), document)
  md_path = io_utils.atomic_write(os.path.join(directory, "study.md"),
                                  markdown(study, table, claim_rows, costs, plots))
  return {"json": json_path, "markdown": md_path}
