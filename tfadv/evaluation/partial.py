"""Partial results of a long evaluation, so an interrupted run resumes where it stopped.

`report.partial.json` holds, per finished attack, the number of robust examples and the
predicted class of each example (the report's per-class and worst-case sections need them;
the clean entry also keeps the labels). It is
keyed by a fingerprint of everything the counts depend on (checkpoint, dataset, number of
examples, threat model and source model); a file with another fingerprint is ignored and
overwritten. Each update is written atomically (temporary file + rename).
"""

import json
import os

import numpy as np
import tensorflow as tf

from tfadv import io_utils

FILENAME = "report.partial.json"


class PartialResults:
  """Counts of finished attacks, persisted to `directory/report.partial.json`.

  Args:
    directory: where the file lives (the report's directory).
    fingerprint: a JSON-serialisable dict identifying the evaluation.
  """

  def __init__(self, directory, fingerprint):
    self.path = os.path.join(directory, FILENAME)
    self.fingerprint = json.loads(json.dumps(fingerprint))
    self.entries = {}
    if tf.io.gfile.exists(self.path):
      try:
        with tf.io.gfile.GFile(self.path) as f:
          stored = json.load(f)
      except ValueError:  # A corrupt file (should not happen: writes are atomic).
        stored = {}
      if stored.get("fingerprint") == self.fingerprint:
        self.entries = stored.get("entries", {})

  @property
  def finished(self):
    """Labels whose counts are stored."""
    return sorted(self.entries)

  def has(self, label, params=None):
    """Is `label` finished, with these parameters (a changed attack is recomputed)."""
    entry = self.entries.get(label)
    return entry is not None and entry["params"] == json.loads(json.dumps(params or {}))

  def get(self, label):
    """(correct, examples) of a finished label."""
    entry = self.entries[label]
    return int(entry["correct"]), int(entry["examples"])

  def predictions(self, label):
    """Per-example predicted classes of a finished label (int32 [n]), or None if not kept."""
    stored = self.entries.get(label, {}).get("predictions")
    return None if stored is None else np.asarray(stored, np.int32)

  def labels(self, label="clean"):
    """The true labels recorded with `label` (the clean entry keeps them), or None."""
    stored = self.entries.get(label, {}).get("labels")
    return None if stored is None else np.asarray(stored, np.int32)

  def put(self, label, correct, examples, params, predictions=None, labels=None):
    entry = {"correct": int(correct), "examples": int(examples), "params": params}
    if predictions is not None:
      entry["predictions"] = [int(p) for p in predictions]
    if labels is not None:
      entry["labels"] = [int(v) for v in labels]
    self.entries[label] = entry
    io_utils.atomic_write_json(self.path, {"fingerprint": self.fingerprint,
                                           "entries": self.entries}, sort_keys=False)
