"""TensorBoard scalars and images and a console progress bar, written by the chief only."""

import os
import sys

import keras
import tensorflow as tf


class Summaries:
  """Writes scalars to `model_dir/train` (TensorBoard) and drives a progress bar."""

  def __init__(self, model_dir, total_steps, initial_step, enabled=True, progress=True):
    self._enabled = enabled
    self._writer = (tf.summary.create_file_writer(os.path.join(model_dir, "train"))
                    if enabled else None)
    self._bar = None
    self._interactive = sys.stdout.isatty()
    if enabled and progress:
      self._bar = keras.utils.Progbar(total_steps, stateful_metrics=None, unit_name="step",
                                      interval=0.5 if self._interactive else 30.0)
      if initial_step:
        self._bar.update(initial_step)

  def scalars(self, step, values):
    if not self._enabled:
      return
    with self._writer.as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, value)
    self._writer.flush()

  def images(self, step, name, images, max_outputs=4):
    """Writes a batch of images [N, H, W, 3] in [0, 1] (e.g. Grad-CAM panels)."""
    if not self._enabled:
      return
    with self._writer.as_default(step=step):
      tf.summary.image(name, images, max_outputs=max_outputs)
    self._writer.flush()

  def progress(self, step, values):
    if self._bar is not None:
      self._bar.update(step, values=list(values.items()))

  def close(self):
    if self._writer is not None:
      self._writer.close()
