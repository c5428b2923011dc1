"""Accuracy of a model on clean images and under a list of attacks.

Every attack sees the same test examples; an example counts as robust under an attack when
the model predicts its true label on the clean image and on the attack's output (as
AutoAttack and RobustBench count). The clean pass runs once; each attack then runs only on
the examples it classified correctly (the others keep their clean prediction). Attacks run
on the model in inference mode inside a `tf.function` per attack, traced once for all
batches (the batch dimension of its signature is unknown).
"""

import dataclasses
from typing import Dict, Optional, Sequence
import zlib

import numpy as np
import tensorflow as tf

from tfadv.attacks import a3
from tfadv.attacks import registry


def attack_label(config):
  """Report key of an attack: `fgsm`, `pgd20`, `pgd20x5` (restarts), `pgd20_l2`, `cw_linf100`.

  Attacks other than PGD are named by their `steps` and `restarts` options when given, and
  A3 by its base attack (`a3_pgd10`), AutoAttack by a non-standard version
  (`autoattack_rand`).
  """
  name = config.name
  options = dict(config.params)
  if "base" in options:
    name += f"_{options['base']}"
  if options.get("version", "standard") != "standard":  # autoattack:version=rand
    name += f"_{options['version']}"
  if config.name == "pgd":
    name += str(config.steps)
    if config.restarts > 1:
      name += f"x{config.restarts}"
  elif "steps" in options:
    name += str(options["steps"])
    if options.get("restarts", 1) > 1:
      name += f"x{options['restarts']}"
  if config.norm.value != "linf" and not config.name.endswith("_" + config.norm.value):
    name += "_" + config.norm.value
  return name


def attack_params(config):
  """The parameters of an attack as recorded in the report."""
  params = {"attack": config.name, "eps": config.eps, "norm": config.norm.value}
  if config.name == "pgd":
    params.update(steps=config.steps, step_size=config.resolved_step_size,
                  random_start=config.random_start, restarts=config.restarts)
  params.update(config.params)  # With `num_examples` when the attack has a limit.
  return params


@dataclasses.dataclass
class Result:
  """Counts of one evaluation: robust examples per attack out of `num_examples`.

  Besides the counts, the per-example outcomes (in the dataset's order) that the report's
  per-class accuracies, confusion matrices and worst case over attacks are computed from:
  `labels` [N], `clean_predictions` [N] and, per attack, `attack_predictions[name]` [n]
  (n = `examples(name)`: an attack with an example limit covers the first n examples).
  They are None / missing only for results built by hand.
  """
  num_examples: int
  clean_correct: int
  attack_correct: Dict[str, int]
  attack_params: Dict[str, dict]
  labels: Optional[np.ndarray] = None
  clean_predictions: Optional[np.ndarray] = None
  attack_predictions: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  attack_examples: Dict[str, int] = dataclasses.field(default_factory=dict)

  @property
  def clean_accuracy(self):
    return self.clean_correct / max(self.num_examples, 1)

  def examples(self, name):
    """How many examples attack `name` ran on (`num_examples` unless it had a limit)."""
    return self.attack_examples.get(name, self.num_examples)

  def accuracy(self, name):
    return self.attack_correct[name] / max(self.examples(name), 1)

  def correct(self, name):
    """Boolean [n]: per example, does the model still predict the label under `name`."""
    return np.asarray(self.attack_predictions[name]) == np.asarray(
        self.labels)[:len(self.attack_predictions[name])]


def attack_labels(attacks):
  """Report keys of a list of attack configs (`@eps` is appended when budgets differ).

  Raises:
    ValueError: two attacks would share a key.
  """
  labels = [attack_label(a) for a in attacks]
  if len({a.eps for a in attacks}) > 1:  # Several budgets: the key names its eps.
    labels = [f"{label}@{a.eps:g}" for label, a in zip(labels, attacks)]
  if len(set(labels)) != len(labels):
    raise ValueError(f"Invalid attacks: two attacks share a report name in {labels}")
  return labels


def _counter(predict_fn, strategy, spec):
  """A tf.function `(x, y[, clean]) -> (correct, examples, predictions, labels)` per batch.

  `predict_fn(x, y, clean) -> int32 [B]` predicted classes, given the clean pass's
  predictions `clean` of the batch when the caller has them (one device), else None; under
  a strategy the per-replica predictions and labels are gathered in replica order (the same
  split for every attack, so per-example outcomes line up across attacks). `spec` is the
  batches' element_spec (batch dimension None): one trace serves every batch, the last,
  shorter one included.
  """

  def replica(x, y, clean=None):
    y = tf.cast(y, tf.int32)
    pred = predict_fn(x, y, clean)
    return tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.int32)), tf.shape(y)[0], pred, y

  if strategy is None:
    image, label = spec
    return tf.function(replica, input_signature=(
        image, label, tf.TensorSpec([None], tf.int32)))

  @tf.function(input_signature=spec)
  def distributed(x, y):
    correct, seen, pred, labels = strategy.run(replica, args=(x, y))
    return (strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, seen, axis=None),
            strategy.gather(pred, axis=0), strategy.gather(labels, axis=0))

  return distributed


def evaluate(model, dataset, attacks: Sequence, num_examples: Optional[int] = None,
             batch_size=256, progress=None, source_model=None, cache=None, strategy=None):
  """Evaluates `model` on `dataset` clean and under each attack config.

  Attacks run one after the other over the whole evaluation set, so a finished attack can
  be recorded in `cache` and skipped when an interrupted evaluation is run again.

  Args:
    model: Keras model, images in [0, 1] -> logits: the model whose accuracy is measured.
    dataset: unbatched tf.data of (image, label), in a deterministic order.
    attacks: `AttackConfig`s.
    num_examples: how many test examples (None: all).
    batch_size: evaluation batch size.
    progress: optional callable `(label, done_examples)` (a progress bar per attack).
    source_model: the model the attacks are computed on, when it is not `model` (gray-
      and black-box threat models: the adversarial examples transfer). None: white box.
    cache: optional `tfadv.evaluation.partial.PartialResults`: counts already in it are
      reused, and each newly finished count (clean or attack) is written to it at once.
    strategy: optional `tf.distribute.Strategy`: each batch of `batch_size` (global) is
      split across its replicas, every replica attacks and counts its share, and the
      counts are summed. None (or one replica) runs on the default device.

  An attack with `num_examples` (an `AttackConfig` option) runs on the first that many
  examples only; its accuracy is over those.

  Returns:
    A `Result`, with the per-example predictions of the clean pass and of every attack.
  """
  labels = attack_labels(attacks)
  bound = {label: registry.from_config(a) for label, a in zip(labels, attacks)}
  params = {label: attack_params(a) for label, a in zip(labels, attacks)}

  def model_fn(x):
    return model(x, training=False)

  source = source_model or model

  def source_fn(x):
    return source(x, training=False)

  if any(registry.needs_gradcam(a.name) for a in attacks):  # e.g. A3: Grad-CAM of the source.
    source_fn = a3.with_gradcam(source)

  if num_examples is not None:
    dataset = dataset.take(num_examples)
  if strategy is None or strategy.num_replicas_in_sync <= 1:
    strategy = None

  def batched(limit=None):
    data = dataset if limit is None else dataset.take(limit)
    data = data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return data if strategy is None else strategy.experimental_distribute_dataset(data)

  batches = batched()
  limits = {label: a.num_examples for label, a in zip(labels, attacks)
            if a.num_examples is not None}

  def run(label, predict_fn):
    # A cached count is reused with its per-example predictions (older files have none:
    # those attacks run again, so the report's per-example sections stay complete).
    if (cache is not None and cache.has(label, params.get(label, {}))
        and cache.predictions(label) is not None):
      return (*cache.get(label), cache.predictions(label))
    # Random starts draw from TF's global RNG: reseed per attack, so an attack's figure
    # does not depend on which attacks ran before it (a resumed evaluation skips some).
    tf.random.set_seed(zlib.crc32(label.encode()))
    counter = _counter(predict_fn, strategy, batches.element_spec)
    total, seen, predictions = 0, 0, []
    for x, y in (batched(limits[label]) if label in limits else batches):
      if strategy is None:  # This batch's clean predictions (the clean pass: a stand-in).
        clean = (tf.zeros(tf.shape(y)[:1], tf.int32) if label == "clean"
                 else clean_pred[seen:seen + int(tf.shape(y)[0])])
        correct, examples, pred, y_seen = counter(x, y, clean)
      else:
        correct, examples, pred, y_seen = counter(x, y)
      total += int(correct)
      seen += int(examples)
      predictions.append(pred.numpy())
      if label == "clean":
        true_labels.append(y_seen.numpy())
      if progress is not None:
        progress(label, seen)
    if seen == 0:
      raise ValueError("Invalid dataset: the evaluation split yielded no examples")
    predictions = np.concatenate(predictions).astype(np.int32)
    if cache is not None:
      cache.put(label, total, seen, params.get(label, {}), predictions=predictions,
                labels=np.concatenate(true_labels) if label == "clean" else None)
    return total, seen, predictions

  true_labels, clean_pred = [], None
  clean, seen, clean_pred = run("clean", lambda x, y, clean: _predict(model_fn(x)))
  labels_seen = np.concatenate(true_labels) if true_labels else cache.labels("clean")
  correct, predictions, examples = {}, {}, {}
  for label, fn in bound.items():

    def adv_predict(x, y, clean, fn=fn):
      # Only the clean-correct examples are attacked (under a strategy each replica
      # predicts its share again: one forward pass).
      if clean is None:
        clean = _predict(model_fn(x))
      rows = tf.where(tf.equal(clean, y))[:, 0]

      def attack_rows():
        xs, ys = tf.gather(x, rows), tf.gather(y, rows)
        return tf.tensor_scatter_nd_update(clean, rows[:, None],
                                           _predict(model_fn(fn(source_fn, xs, ys))))

      # A model may fail on an empty batch (Keras' Flatten does): skip it.
      return tf.cond(tf.size(rows) > 0, attack_rows, lambda: clean)

    correct[label], attack_seen, pred = run(label, adv_predict)
    expected = min(seen, limits.get(label, seen))
    if attack_seen != expected:
      raise ValueError(f"Invalid cache: {label!r} was recorded on {attack_seen} examples, "
                       f"the evaluation has {expected}")
    if pred is not None:
      predictions[label] = pred
    if attack_seen != seen:
      examples[label] = attack_seen
  return Result(seen, clean, correct, params, labels=labels_seen,
                clean_predictions=clean_pred, attack_predictions=predictions,
                attack_examples=examples)


def _predict(logits):
  return tf.argmax(logits, axis=-1, output_type=tf.int32)
