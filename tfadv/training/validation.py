"""Robust early stopping: PGD accuracy on a held-out validation split and the best step.

Robust accuracy of PGD training peaks early and then falls ("robust overfitting", Rice et
al. 2020), so the checkpoint to ship is the one of highest *robust validation* accuracy,
not the last. The validation images come from the **training** split (held out from
training), so the test split stays untouched by model selection.

- `split`: a deterministic, seed-free held-out subset (every k-th training example).
- `BestTracker`: the pure "keep the step of the highest figure" logic, persisted in
  `best/best.json` so a resumed run continues the same comparison.
- `make_validate_fn`: clean and PGD accuracy of a model on the validation batches, with a
  fixed attack seed (the same figure for the same weights in every run).
"""

import json
import os

import tensorflow as tf

from tfadv.attacks import registry

BEST_DIR = "best"
BEST_STATE = "best.json"


def split(dataset, num_examples, size):
  """Splits an unbatched dataset into (train, validation) with `size` held-out examples.

  Every k-th example (k = num_examples // size) is held out, which keeps the class balance
  of datasets stored class by class (image folders) and needs no shuffle buffer.

  Args:
    dataset: the unbatched training split.
    num_examples: its size.
    size: how many examples to hold out.

  Returns:
    (train dataset without them, validation dataset of exactly `size` examples).

  Raises:
    ValueError: the split is too small to hold `size` out and still train.
  """
  if not num_examples or size >= num_examples:
    raise ValueError(f"Invalid validation_size: expected fewer than the {num_examples} "
                     f"training examples; received validation_size={size}")
  stride = num_examples // size
  indexed = dataset.enumerate()
  held = lambda i, _: tf.logical_and(i % stride == 0, i // stride < size)
  validation = indexed.filter(held).map(lambda i, example: example)
  train = indexed.filter(lambda i, e: tf.logical_not(held(i, e))).map(lambda i, e: e)
  return train, validation


class BestTracker:
  """Keeps the step with the highest validation figure (ties keep the earlier step).

  State (`best_step`, `best_value`, `history`) lives in `directory/best.json`, written
  atomically, and is read back on construction, so a resumed run keeps comparing with the
  best of its first part. A figure for a step already in the history (a resumed run
  replaying steps after its last checkpoint) replaces it.
  """

  def __init__(self, directory=None, write=True):
    """Reads the state in `directory` if any; `write=False` (non-chief workers) only reads."""
    self._path = os.path.join(directory, BEST_STATE) if directory else None
    self._write = write
    self.best_step, self.best_value, self.history = None, None, []
    if self._path and tf.io.gfile.exists(self._path):
      with tf.io.gfile.GFile(self._path) as f:
        state = json.load(f)
      self.best_step, self.best_value = state["best_step"], state["best_value"]
      self.history = [tuple(h) for h in state["history"]]

  def update(self, step, value):
    """Records `value` at `step`; returns True when it is the new best."""
    step, value = int(step), float(value)
    self.history = [h for h in self.history if h[0] < step] + [(step, value)]
    if self.best_step is not None and self.best_step >= step:
      # Replaying steps: the best is recomputed from the history that is still valid.
      self.best_step, self.best_value = None, None
      for s, v in self.history[:-1]:
        if self.best_value is None or v > self.best_value:
          self.best_step, self.best_value = s, v
    improved = self.best_value is None or value > self.best_value
    if improved:
      self.best_step, self.best_value = step, value
    return improved

  def state(self):
    return {"best_step": self.best_step, "best_value": self.best_value,
            "history": [list(h) for h in self.history]}

  def write(self):
    if not self._path or not self._write:
      return
    tf.io.gfile.makedirs(os.path.dirname(self._path))
    tmp = self._path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
      json.dump(self.state(), f, indent=2)
    tf.io.gfile.rename(tmp, self._path, overwrite=True)


def read_best(model_dir):
  """The best-checkpoint state of a run (`best_step`, `best_value`, ...) or None."""
  path = os.path.join(model_dir, BEST_DIR, BEST_STATE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def make_validate_fn(model, attack_config, dataset, batch_size=256, seed=0,
                     fgsm_config=None):
  """`fn() -> {"clean_accuracy", "adv_accuracy"}` on the validation examples.

  With `fgsm_config` (an FGSM `AttackConfig`), also `fgsm_accuracy`: what catastrophic-
  overfitting detection compares with the PGD accuracy (`tfadv.training.overfitting`).

  Args:
    model: a Keras model (images in [0, 1] -> logits), run with `training=False`.
    attack_config: the validation attack (e.g. PGD-10 at the training eps).
    dataset: the unbatched validation split.
    batch_size: evaluation batch size.
    seed: seed of the attack's random start, fixed across calls (same weights, same
      figure).
  """
  batches = dataset.batch(batch_size).cache()
  attack = registry.from_config(attack_config, seed=tf.constant([seed, -2], tf.int64))
  fgsm = registry.from_config(fgsm_config) if fgsm_config is not None else None

  def model_fn(x):
    return tf.cast(model(x, training=False), tf.float32)

  @tf.function
  def counts(x, y):
    y = tf.cast(y, tf.int32)
    x_adv = attack(model_fn, x, y)
    correct = lambda z: tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(model_fn(z), -1, output_type=tf.int32), y), tf.float32))
    one_step = correct(fgsm(model_fn, x, y)) if fgsm is not None else tf.constant(0.0)
    return correct(x), correct(x_adv), one_step, tf.cast(tf.shape(y)[0], tf.float32)

  def validate():
    clean = adv = single = total = 0.0
    for x, y in batches:
      c, a, f, n = counts(x, y)
      clean, adv, single = clean + float(c), adv + float(a), single + float(f)
      total += float(n)
    figures = {"clean_accuracy": clean / max(total, 1.0), "adv_accuracy": adv / max(total, 1.0)}
    if fgsm is not None:
      figures["fgsm_accuracy"] = single / max(total, 1.0)
    return figures

  return validate
