"""Checkpoints that a restarted run resumes from by itself, and that never lose a run.

`tf.train.CheckpointManager` writes a checkpoint's files first and only then updates the
`checkpoint` state file (atomically), so `latest_checkpoint` never names a half-written
checkpoint: a crash during a save leaves the previous one in force. Files can still break
afterwards (a full disk during a copy, a truncated rsync, bit rot): then restoring falls back
to the newest checkpoint that restores, reports the broken one in one log line and moves its
files into `checkpoints/broken/` (never deletes them). When none restores, the error names
every file tried.

Under MultiWorkerMirroredStrategy every worker must take part in a save (the variables are
synchronised collectively); only the chief writes to `model_dir`, the others to a scratch
directory that is removed right after. Only the chief moves broken files.
"""

import glob
import os
import re
import shutil

from absl import logging
import tensorflow as tf

from tfadv.training import strategy as strategy_lib

CHECKPOINTS = "checkpoints"
BROKEN = "broken"

# Errors that mean the files are damaged (truncated, corrupt, missing), not that they belong
# to another model: those are moved aside and an older checkpoint is tried.
_DAMAGE_ERRORS = (tf.errors.DataLossError, tf.errors.OutOfRangeError,
                  tf.errors.NotFoundError, tf.errors.InternalError, IndexError, EOFError)
_DAMAGE_WORDS = re.compile(r"corrupt|truncat|checksum|crc|sstable|read less bytes|"
                           r"unable to open table|data loss|not an sstable", re.I)


class CheckpointError(ValueError):
  """No checkpoint of a run restores (each is damaged or does not fit the model)."""


def _is_damage(error):
  return isinstance(error, _DAMAGE_ERRORS) or bool(_DAMAGE_WORDS.search(str(error)))


def _one_line(error):
  text = " ".join(str(error).split())
  return text if len(text) <= 200 else text[:197] + "..."


def candidates(directory):
  """Checkpoint prefixes in `directory`, newest first (the state file's, else the files')."""
  paths = []
  try:
    state = tf.train.get_checkpoint_state(directory)
  except Exception:  # pylint: disable=broad-except  # A corrupt state file: use the files.
    state = None
  if state is not None:
    paths = [p if os.path.isabs(p) else os.path.join(directory, p)
             for p in state.all_model_checkpoint_paths]
    latest = state.model_checkpoint_path
    if latest:
      latest = latest if os.path.isabs(latest) else os.path.join(directory, latest)
      if latest not in paths:
        paths.append(latest)
  # Checkpoints whose index exists but that the state file lost track of count too.
  for index in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index")):
    prefix = index[:-len(".index")]
    if prefix not in paths:
      paths.append(prefix)

  def number(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1

  return sorted(set(paths), key=number, reverse=True)


def checkpoint_files(prefix):
  """The files of one checkpoint (its index and data shards) that exist."""
  return sorted(glob.glob(glob.escape(prefix) + ".index") +
                glob.glob(glob.escape(prefix) + ".data-*"))


def move_aside(prefix):
  """Moves the files of checkpoint `prefix` into `<its directory>/broken/`; returns them."""
  directory = os.path.dirname(prefix)
  target = os.path.join(directory, BROKEN)
  moved = []
  for path in checkpoint_files(prefix):
    os.makedirs(target, exist_ok=True)
    destination = os.path.join(target, os.path.basename(path))
    if os.path.exists(destination):  # Keep an earlier broken copy too.
      destination += f".{len(os.listdir(target))}"
    try:
      shutil.move(path, destination)
      moved.append(destination)
    except OSError as e:  # Deleted meanwhile (another process's max_to_keep): nothing to keep.
      logging.warning("Could not move %s aside: %s", path, e)
  return moved


def _rewrite_state(directory, kept):
  """Points the `checkpoint` state file at the kept checkpoints (oldest first)."""
  kept = sorted(kept, key=lambda p: int(re.search(r"-(\d+)$", p).group(1))
                if re.search(r"-(\d+)$", p) else -1)
  if kept:
    tf.compat.v1.train.update_checkpoint_state(
        directory, kept[-1], all_model_checkpoint_paths=kept)
  elif os.path.exists(os.path.join(directory, "checkpoint")):
    os.remove(os.path.join(directory, "checkpoint"))


def restore_first_good(restore_fn, directory, move_broken=True):
  """Restores the newest checkpoint of `directory` that `restore_fn(prefix)` accepts.

  A damaged checkpoint (truncated or corrupt index or data, missing files) is reported in one
  warning line and, with `move_broken`, its files go to `directory/broken/`; then the next
  older one is tried.

  Args:
    restore_fn: restores one checkpoint prefix, raising when it cannot.
    directory: the checkpoint directory.
    move_broken: move damaged checkpoints aside (only the chief of a run should).

  Returns:
    The restored prefix, or None when `directory` holds no checkpoint at all.

  Raises:
    CheckpointError: checkpoints exist but none restores; the message names their files.
  """
  tried = candidates(directory)
  if not tried:
    return None
  failures = []
  for i, prefix in enumerate(tried):
    try:
      restore_fn(prefix)
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, EOFError,
            tf.errors.OpError) as e:
      damaged = _is_damage(e)
      failures.append((prefix, e, damaged))
      files = checkpoint_files(prefix)
      if damaged and move_broken and files:
        move_aside(prefix)
        logging.warning("Checkpoint %s does not restore (%s); its files are moved to %s/, "
                        "trying the previous one.", prefix, _one_line(e),
                        os.path.join(directory, BROKEN))
      else:
        logging.warning("Checkpoint %s does not restore (%s); trying the previous one.",
                        prefix, _one_line(e))
      continue
    if move_broken and any(damaged for _, _, damaged in failures):
      _rewrite_state(directory, [p for p in tried[i:] if checkpoint_files(p)])
    return prefix
  if failures and all(not damaged for _, _, damaged in failures):
    prefix, error, _ = failures[0]
    raise CheckpointError(f"Checkpoint {prefix!r} does not match the model it is restored "
                          f"into: {_one_line(error)}")
  names = ", ".join(os.path.basename(p) + ".{index,data-*}" for p, _, _ in failures)
  raise CheckpointError(f"Invalid checkpoints: none of the {len(failures)} checkpoints in "
                        f"{directory!r} restores ({names}); the last error: "
                        f"{_one_line(failures[-1][1])}. Damaged files were moved to "
                        f"{os.path.join(directory, BROKEN)!r}")


class Checkpointer:
  """Saves and restores the trackables of a training run under `model_dir/checkpoints`.

  Args:
    model_dir: the run's directory.
    strategy: the run's tf.distribute strategy (decides who writes).
    keep: checkpoints kept (older ones are deleted by the manager).
    **trackables: the objects saved (`model=`, `optimizer=`, `ema=`, ...).
  """

  def __init__(self, model_dir, strategy, keep=3, **trackables):
    self._chief = strategy_lib.is_chief(strategy)
    root = os.path.join(model_dir, CHECKPOINTS)
    if not self._chief:
      root = os.path.join(model_dir, ".scratch", f"worker_{strategy_lib.worker_id(strategy)}")
    self._directory = root
    self._keep = keep
    self.checkpoint = tf.train.Checkpoint(**trackables)
    self.manager = tf.train.CheckpointManager(self.checkpoint, root, max_to_keep=keep)
    # Non-chief workers restore from the chief's directory.
    self._read_directory = os.path.join(model_dir, CHECKPOINTS)

  @property
  def latest(self):
    return tf.train.latest_checkpoint(self._read_directory)

  def restore(self):
    """Restores the newest checkpoint that restores; returns its path or None.

    Raises:
      CheckpointError: checkpoints exist but none restores.
    """
    path = restore_first_good(
        lambda p: self.checkpoint.restore(p).assert_existing_objects_matched(),
        self._read_directory, move_broken=self._chief)
    if path and self._chief:  # The state file may have changed: re-read it.
      self.manager = tf.train.CheckpointManager(self.checkpoint, self._directory,
                                                max_to_keep=self._keep)
    return path

  def save(self, step):
    path = self.manager.save(checkpoint_number=step)
    if not self._chief:
      shutil.rmtree(self._directory, ignore_errors=True)
    return path


def restore_model(model, model_dir):
  """Restores only the model weights of the newest restorable checkpoint in `model_dir`.

  Raises:
    FileNotFoundError: when `model_dir/checkpoints` holds no checkpoint.
    CheckpointError (a ValueError): when none restores, or the checkpoint does not fit the
      model (another architecture).
  """
  directory = os.path.join(model_dir, CHECKPOINTS)

  def restore(prefix):
    status = tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    status.assert_existing_objects_matched()

  path = restore_first_good(restore, directory)
  if not path:
    raise FileNotFoundError(f"Invalid model_dir: expected a checkpoint in {directory!r} "
                            "(written by tfadv-train); found none")
  return path
