"""Accuracy of a model on clean images and under a list of attacks.

Every attack sees the same test examples; an example counts as robust under an attack when
the model still predicts its true label on the attack's output. Attacks run on the model in
inference mode inside a `tf.function`, batch by batch.
"""

import dataclasses
from typing import Dict, Optional, Sequence

import tensorflow as tf

from tfadv.attacks import registry


def attack_label(config):
  """Report key of an attack: `fgsm`, `pgd20`, `pgd20x5` (restarts), `pgd20_l2`, `cw_linf100`.

  Attacks other than PGD are named by their `steps` and `restarts` options when given, and
  A3 by its base attack (`a3_pgd10`).
  """
  name = config.name
  options = dict(config.params)
  if "base" in options:
    name += f"_{options['base']}"
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
  params = {"eps": config.eps, "norm": config.norm.value}
  if config.name == "pgd":
    params.update(steps=config.steps, step_size=config.resolved_step_size,
                  random_start=config.random_start, restarts=config.restarts)
  params.update(config.params)
  return params


@dataclasses.dataclass
class Result:
  """Counts of one evaluation: robust examples per attack out of `num_examples`."""
  num_examples: int
  clean_correct: int
  attack_correct: Dict[str, int]
  attack_params: Dict[str, dict]

  @property
  def clean_accuracy(self):
    return self.clean_correct / max(self.num_examples, 1)

  def accuracy(self, name):
    return self.attack_correct[name] / max(self.num_examples, 1)


def evaluate(model, dataset, attacks: Sequence, num_examples: Optional[int] = None,
             batch_size=256, progress=None):
  """Evaluates `model` on `dataset` clean and under each attack config.

  Args:
    model: Keras model, images in [0, 1] -> logits.
    dataset: unbatched tf.data of (image, label).
    attacks: `AttackConfig`s.
    num_examples: how many test examples (None: all).
    batch_size: evaluation batch size.
    progress: optional callable(done_examples) for a progress bar.

  Returns:
    A `Result`.
  """
  labels = [attack_label(a) for a in attacks]
  if len({a.eps for a in attacks}) > 1:  # Several budgets: the key names its eps.
    labels = [f"{label}@{a.eps:g}" for label, a in zip(labels, attacks)]
  if len(set(labels)) != len(labels):
    raise ValueError(f"Invalid attacks: two attacks share a report name in {labels}")
  bound = {label: registry.from_config(a) for label, a in zip(labels, attacks)}

  def model_fn(x):
    return model(x, training=False)

  @tf.function
  def batch_counts(x, y):
    y = tf.cast(y, tf.int32)
    counts = {"clean": _count_correct(model_fn(x), y)}
    for label, fn in bound.items():
      counts[label] = _count_correct(model_fn(fn(model_fn, x, y)), y)
    return counts

  if num_examples is not None:
    dataset = dataset.take(num_examples)
  totals = {"clean": 0, **{label: 0 for label in labels}}
  seen = 0
  for x, y in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
    counts = batch_counts(x, y)
    for k, v in counts.items():
      totals[k] += int(v)
    seen += int(tf.shape(y)[0])
    if progress is not None:
      progress(seen)
  if seen == 0:
    raise ValueError("Invalid dataset: the evaluation split yielded no examples")
  return Result(seen, totals["clean"], {l: totals[l] for l in labels},
                {l: attack_params(a) for l, a in zip(labels, attacks)})


def _count_correct(logits, y):
  pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.int32))
