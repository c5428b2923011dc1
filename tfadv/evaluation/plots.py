"""PNG plots of a report: accuracy vs PGD iterations and accuracy vs eps.

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


def write_all(report, directory):
  """Writes every plot the report supports; returns {plot kind: file name}."""
  plots = {}
  for kind, fn in (("accuracy_vs_steps", accuracy_vs_steps),
                   ("accuracy_vs_eps", accuracy_vs_eps)):
    name = fn(report, directory)
    if name:
      plots[kind] = name
  return plots
