"""Checkpoints that a restarted run resumes from by itself.

`tf.train.CheckpointManager` writes a checkpoint's files first and only then updates the
`checkpoint` state file (atomically), so `latest_checkpoint` never names a half-written
checkpoint: a crash during a save leaves the previous one in force.

Under MultiWorkerMirroredStrategy every worker must take part in a save (the variables are
synchronised collectively); only the chief writes to `model_dir`, the others to a scratch
directory that is removed right after.
"""

import os
import shutil

import tensorflow as tf

from tfadv.training import strategy as strategy_lib


class Checkpointer:
  """Saves and restores the trackables of a training run under `model_dir/checkpoints`."""

  def __init__(self, model_dir, strategy, keep=3, **trackables):
    self._chief = strategy_lib.is_chief(strategy)
    root = os.path.join(model_dir, "checkpoints")
    if not self._chief:
      root = os.path.join(model_dir, ".scratch", f"worker_{strategy_lib.worker_id(strategy)}")
    self._directory = root
    self.checkpoint = tf.train.Checkpoint(**trackables)
    self.manager = tf.train.CheckpointManager(self.checkpoint, root, max_to_keep=keep)
    # Non-chief workers restore from the chief's directory.
    self._read_directory = os.path.join(model_dir, "checkpoints")

  @property
  def latest(self):
    return tf.train.latest_checkpoint(self._read_directory)

  def restore(self):
    """Restores the latest checkpoint if there is one; returns its path or None."""
    path = self.latest
    if path:
      self.checkpoint.restore(path).assert_existing_objects_matched()
    return path

  def save(self, step):
    path = self.manager.save(checkpoint_number=step)
    if not self._chief:
      shutil.rmtree(self._directory, ignore_errors=True)
    return path


def restore_model(model, model_dir):
  """Restores only the model weights of the latest checkpoint in `model_dir`.

  Raises:
    FileNotFoundError: when `model_dir/checkpoints` holds no checkpoint.
    ValueError: when the checkpoint does not fit the model (another architecture).
  """
  directory = os.path.join(model_dir, "checkpoints")
  path = tf.train.latest_checkpoint(directory)
  if not path:
    raise FileNotFoundError(f"Invalid model_dir: expected a checkpoint in {directory!r} "
                            "(written by tfadv-train); found none")
  try:
    status = tf.train.Checkpoint(model=model).restore(path).expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise ValueError(f"Checkpoint {path!r} does not match the model it is restored into: "
                     f"{e}") from e
  return path
