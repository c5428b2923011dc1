"""Figures of the analyses: attention per stage (clean vs adversarial) and loss surfaces."""

import os

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from tfadv import io_utils

STAGES_PLOT = "attention_stages.png"
LANDSCAPE_PLOT = "loss_landscape.png"


def _atomic_savefig(fig, path):
  io_utils.atomic_savefig(fig, path, dpi=100, bbox_inches="tight")
  plt.close(fig)


def _stretch(attention):
  """Min-max scales one map for display: early stages fire almost everywhere, and scaled by
  their maximum alone they would show as a uniform block."""
  attention = np.asarray(attention, np.float32)
  low, high = attention.min(), attention.max()
  return (attention - low) / (high - low) if high > low else np.zeros_like(attention)


def attention_stages(images, adv_images, clean_maps, adv_maps, directory, title=""):
  """A grid: per example two rows (clean, adversarial): the image, then each stage's map.

  Args:
    images, adv_images: [N, H, W, C] in [0, 1].
    clean_maps, adv_maps: lists (one per stage) of [N, h_j, w_j] maps in [0, 1].
    directory: where `attention_stages.png` goes.
    title: figure title.

  Returns:
    The file name written.
  """
  images, adv_images = np.asarray(images), np.asarray(adv_images)
  n, stages = images.shape[0], len(clean_maps)
  fig, axes = plt.subplots(2 * n, stages + 1, figsize=(1.6 * (stages + 1), 1.6 * 2 * n),
                           squeeze=False)
  for i in range(n):
    for r, (picture, stage_maps, kind) in enumerate(
        [(images[i], clean_maps, "clean"), (adv_images[i], adv_maps, "adv")]):
      row = axes[2 * i + r]
      row[0].imshow(np.squeeze(picture), cmap="gray" if picture.shape[-1] == 1 else None,
                    vmin=0, vmax=1)
      row[0].set_ylabel(kind, fontsize=8)
      for j in range(stages):
        row[j + 1].imshow(_stretch(stage_maps[j][i]), cmap="jet", vmin=0, vmax=1)
        if i == 0 and r == 0:
          row[j + 1].set_title(f"stage {j}", fontsize=8)
      for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])
  if title:
    fig.suptitle(title, fontsize=10)
  _atomic_savefig(fig, os.path.join(directory, STAGES_PLOT))
  return STAGES_PLOT


def loss_landscape(offsets, losses, directory, title=""):
  """The loss surface as a 3-D plot beside its contour map; returns the file name."""
  offsets, losses = np.asarray(offsets), np.asarray(losses)
  a, b = np.meshgrid(offsets, offsets, indexing="ij")
  fig = plt.figure(figsize=(10, 4))
  ax3d = fig.add_subplot(1, 2, 1, projection="3d")
  ax3d.plot_surface(a, b, losses, cmap="viridis")
  ax3d.set_xlabel("gradient-sign step")
  ax3d.set_ylabel("random-sign step")
  ax3d.set_zlabel("loss")
  ax2d = fig.add_subplot(1, 2, 2)
  contour = ax2d.contourf(a, b, losses, levels=20, cmap="viridis")
  fig.colorbar(contour, ax=ax2d)
  ax2d.set_xlabel("gradient-sign step")
  ax2d.set_ylabel("random-sign step")
  if title:
    fig.suptitle(title, fontsize=10)
  _atomic_savefig(fig, os.path.join(directory, LANDSCAPE_PLOT))
  return LANDSCAPE_PLOT
