"""The study's figures: every defense in one picture, as the papers show them.

- `accuracy_vs_steps.png`: accuracy vs PGD iterations, one panel per threat model, one line
  per defense (AT+ALP's Figure 3);
- `accuracy_vs_eps.png`: the strongest attack's accuracy vs eps (when the study has several);
- `attention_side_by_side.png`: per-stage attention maps of the same test images under every
  defense, a clean row above an adversarial row;
- `attention_iou.png`: clean-vs-adversarial attention IoU per stage and for Grad-CAM, and the
  activation share inside the key region under attack, per defense;
- `training_cost.png`: training wall time per defense and its ratio to `pat`.
"""

import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfadv import io_utils  # pylint: disable=wrong-import-position
from tfadv import workflow  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfadv.analysis import attention_stats  # pylint: disable=wrong-import-position
from tfadv.attacks import pgd  # pylint: disable=wrong-import-position
from tfadv.data import datasets  # pylint: disable=wrong-import-position

_PGD = re.compile(r"^pgd(\d+)$")


def _save(fig, directory, name):
  io_utils.atomic_savefig(fig, os.path.join(directory, name), dpi=100, bbox_inches="tight")
  plt.close(fig)
  return name


def accuracy_vs_steps(study, table, directory):
  threats = [t.value for t in study.threat_models]
  curves = {}
  for threat in threats:
    for defense in study.defenses:
      points = sorted((int(_PGD.match(label).group(1)), value["accuracy"])
                      for label, value in table[defense]["attacks"].get(threat, {}).items()
                      if _PGD.match(label))
      if len(points) >= 2:
        curves.setdefault(threat, {})[defense] = points
  if not curves:
    return None
  fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
  # One colour and marker per defense, the same in every panel (the default cycle repeats
  # after 10 lines).
  colours = plt.get_cmap("tab20").colors
  markers = "os^Dv<>pPX*h"
  style = {d: (colours[2 * i % 20 + (2 * i // 20) % 2], markers[i % len(markers)])
           for i, d in enumerate(study.defenses)}
  for ax, (threat, lines) in zip(axes[0], curves.items()):
    for defense, points in lines.items():
      steps, accuracy = zip(*points)
      colour, marker = style[defense]
      ax.plot(steps, 100 * np.array(accuracy), marker=marker, color=colour, label=defense)
    ax.set_xscale("log")
    ax.set_xlabel("PGD iterations")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{threat} box")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
  return _save(fig, directory, "accuracy_vs_steps.png")


def accuracy_vs_eps(study, table, directory):
  if len(study.eps) < 2:
    return None
  fig, ax = plt.subplots(figsize=(4.5, 3.4))
  for defense in study.defenses:
    attacks = table[defense]["attacks"].get("white", {})
    points = []
    for eps in study.eps:
      values = [v["accuracy"] for v in attacks.values() if v["eps"] == eps]
      if values:
        points.append((eps, min(values)))
    if points:
      eps_values, accuracy = zip(*points)
      ax.plot(eps_values, 100 * np.array(accuracy), marker="o", label=defense)
  ax.set_xlabel("eps")
  ax.set_ylabel("accuracy under the strongest attack (%)")
  ax.set_title("white box")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return _save(fig, directory, "accuracy_vs_eps.png")


def _stretch(attention):
  low, high = attention.min(), attention.max()
  return (attention - low) / (high - low) if high > low else np.zeros_like(attention)


def attention_side_by_side(study, cells, directory, num_images=2, attack_steps=10):
  """Loads every target model and draws the stage maps of the same test images."""
  data = datasets.load(study.data)
  x, y = next(iter(data.test.batch(num_images)))
  y = tf.cast(y, tf.int32)
  eps = study.training_attack.eps
  rows = []
  for defense in study.defenses:
    cell = next(c for c in cells if c.kind == "train" and c.defense == defense
                and c.role == "target")
    loaded = workflow.load_trained(os.path.join(directory, "runs", cell.slug))
    model_fn = lambda images, m=loaded.model: m(images, training=False)
    x_adv = pgd.pgd(model_fn, x, y, eps, steps=attack_steps, seed=tf.constant([0, 0], tf.int64))
    clean = [m.numpy() for m in attention_stats.stage_attention(loaded.tapped, x)]
    adv = [m.numpy() for m in attention_stats.stage_attention(loaded.tapped, x_adv)]
    rows.append((defense, "clean", x.numpy(), clean))
    rows.append((defense, "adv", x_adv.numpy(), adv))
  stages = len(rows[0][3])
  columns = num_images * (stages + 1)
  fig, axes = plt.subplots(len(rows), columns, figsize=(1.2 * columns, 1.25 * len(rows)),
                           squeeze=False)
  for r, (defense, kind, images, maps) in enumerate(rows):
    for i in range(num_images):
      base = i * (stages + 1)
      picture = images[i]
      axes[r][base].imshow(np.squeeze(picture), vmin=0, vmax=1,
                           cmap="gray" if picture.shape[-1] == 1 else None)
      for j in range(stages):
        axes[r][base + j + 1].imshow(_stretch(maps[j][i]), cmap="jet", vmin=0, vmax=1)
        if r == 0:
          axes[r][base + j + 1].set_title(f"stage {j}", fontsize=7)
    axes[r][0].set_ylabel(f"{defense}\n{kind}", fontsize=7)
    for ax in axes[r]:
      ax.set_xticks([])
      ax.set_yticks([])
  fig.suptitle(f"Attention per stage, clean vs PGD-{attack_steps} (eps {eps:g})", fontsize=9)
  return _save(fig, directory, "attention_side_by_side.png")


def attention_iou(study, table, directory):
  analysed = [d for d in study.defenses if "analysis" in table[d]]
  if not analysed:
    return None
  keys = sorted(k for k in table[analysed[0]]["analysis"] if k.endswith("_iou"))
  key_adv = sorted(k for k in table[analysed[0]]["analysis"] if k.endswith("_key_adv"))
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
  width = 0.8 / len(analysed)
  for panel, names, title in ((axes[0], keys, "attention IoU, clean vs adversarial"),
                              (axes[1], key_adv, "activation share in the key region "
                                                 "(adversarial)")):
    for n, defense in enumerate(analysed):
      values = [table[defense]["analysis"][k] for k in names]
      panel.bar(np.arange(len(names)) + n * width, values, width, label=defense)
    panel.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    panel.set_xticklabels([k.replace("_iou", "").replace("_key_adv", "") for k in names],
                          fontsize=7)
    panel.set_title(title, fontsize=9)
    panel.grid(alpha=0.3, axis="y")
  axes[0].legend(fontsize=7)
  return _save(fig, directory, "attention_iou.png")


def training_cost(costs, directory):
  if not costs:
    return None
  names = list(costs)
  minutes = [costs[d]["train_seconds"] / 60 for d in names]
  fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(names)), 3.2))
  bars = ax.bar(names, minutes)
  for bar, name in zip(bars, names):
    ratio = costs[name]["x_pat"]
    if ratio:
      ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                  ha="center", va="bottom", fontsize=7)
  ax.set_ylabel("training minutes (target run)")
  ax.set_title("training cost (x pat, which sits at the PGD floor)", fontsize=9)
  ax.tick_params(axis="x", rotation=45, labelsize=7)
  return _save(fig, directory, "training_cost.png")


def write_all(study, cells, records, table, costs, directory):
  """Draws every figure that the study's results allow; returns {kind: file name}."""
  del records
  plots = {
      "accuracy_vs_steps": accuracy_vs_steps(study, table, directory),
      "accuracy_vs_eps": accuracy_vs_eps(study, table, directory),
      "attention_side_by_side": attention_side_by_side(study, cells, directory),
      "attention_iou": attention_iou(study, table, directory),
      "training_cost": training_cost(costs, directory),
  }
  return {k: v for k, v in plots.items() if v}
