"""PNG plots of a report: accuracy vs PGD iterations, accuracy vs eps, confusion matrices.

Matplotlib runs with the Agg backend (no display needed). Each function returns the file
name it wrote, or None when the report has too few points for the plot (fewer than two).
"""

import collections
import os

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

STEPS_PLOT = "accuracy_vs_steps.png"
EPS_PLOT = "accuracy_vs_eps.png"
CONFUSION_PLOT = "confusion.png"


def _series(report, field, group_drop):
  """{series name: sorted [(x, accuracy)]} over the entries that have `field`."""
  series = collections.defaultdict(list)
  for label, entry in report["attacks"].items():
    params = entry.get("params", {})
    if field not in params:
      continue
    name = params.get("attack", label)
    extras = ", ".join(f"{k}={v}" for k, v in sorted(params.items())
                       if k not in group_drop and k not in ("attack", "random_start"))
    key = f"{name} ({extras})" if extras else name
    series[key].append((float(params[field]), float(entry["accuracy"])))
  return {k: sorted(v) for k, v in series.items() if len(v) >= 2}


def _plot(series, xlabel, title, path, clean, log_x=False):
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, points in sorted(series.items()):
    xs, ys = zip(*points)
    ax.plot(xs, [100 * y for y in ys], marker="o", label=name)
  ax.axhline(100 * clean, color="gray", linestyle="--", label="clean")
  if log_x:
    ax.set_xscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel("accuracy (%)")
  ax.set_ylim(0, 100)
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return os.path.basename(path)


def accuracy_vs_steps(report, directory):
  """Accuracy against the number of attack iterations (AT+ALP paper, Figure 3)."""
  series = _series(report, "steps", ("steps", "step_size"))
  if not series:
    return None
  return _plot(series, "attack iterations", f"{report['model']} / {report['defense']}",
               os.path.join(directory, STEPS_PLOT), report["clean_accuracy"], log_x=True)


def accuracy_vs_eps(report, directory):
  """Accuracy against the attack budget eps, one line per attack."""
  series = _series(report, "eps", ("eps", "step_size"))
  if not series:
    return None
  return _plot(series, "eps (pixel units of [0, 1])",
               f"{report['model']} / {report['defense']}",
               os.path.join(directory, EPS_PLOT), report["clean_accuracy"])


def confusion(report, directory):
  """Clean and adversarial confusion matrices side by side (the report's `confusion`)."""
  entry = report.get("confusion")
  if not entry:
    return None
  names = entry["classes"]
  size = max(6, 0.45 * len(names) + 3)
  fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
  for ax, key, title in ((axes[0], "clean", "clean"),
                         (axes[1], "adversarial", f"under {entry['attack']}")):
    matrix = entry[key]
    ax.imshow(matrix, cmap="Blues")
    ax.set_title(f"{title} ({entry['num_examples']} examples)")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    if len(names) <= 20:
      peak = max(max(row) for row in matrix) or 1
      for t, row in enumerate(matrix):
        for p, count in enumerate(row):
          if count:
            ax.text(p, t, str(count), ha="center", va="center", fontsize=6,
                    color="white" if count > peak / 2 else "black")
  fig.suptitle(f"{report['model']} / {report['defense']}")
  fig.tight_layout()
  path = os.path.join(directory, CONFUSION_PLOT)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return os.path.basename(path)


def write_all(report, directory):
  """Writes every plot the report supports; returns {plot kind: file name}."""
  plots = {}
  for kind, fn in (("accuracy_vs_steps", accuracy_vs_steps),
                   ("accuracy_vs_eps", accuracy_vs_eps),
                   ("confusion", confusion)):
    name = fn(report, directory)
    if name:
      plots[kind] = name
  return plots
