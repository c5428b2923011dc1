"""Accuracy of a model on clean images and under a list of attacks.

Every attack sees the same test examples; an example counts as robust under an attack when
the model still predicts its true label on the attack's output. Attacks run on the model in
inference mode inside a `tf.function`, batch by batch.
"""

import dataclasses
from typing import Dict, Optional, Sequence
import zlib

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


def _counter(count_fn, strategy):
  """A tf.function `(x, y) -> (correct, examples)` over one (distributed) batch."""

  def replica(x, y):
    y = tf.cast(y, tf.int32)
    return count_fn(x, y), tf.shape(y)[0]

  if strategy is None:
    return tf.function(replica)

  @tf.function
  def distributed(x, y):
    correct, seen = strategy.run(replica, args=(x, y))
    return (strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, seen, axis=None))

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

  Returns:
    A `Result`.
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
  batches = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
  if strategy is not None and strategy.num_replicas_in_sync > 1:
    batches = strategy.experimental_distribute_dataset(batches)
  else:
    strategy = None

  def run(label, count_fn):
    if cache is not None and cache.has(label, params.get(label, {})):
      return cache.get(label)
    # Random starts draw from TF's global RNG: reseed per attack, so an attack's figure
    # does not depend on which attacks ran before it (a resumed evaluation skips some).
    tf.random.set_seed(zlib.crc32(label.encode()))
    counter = _counter(count_fn, strategy)
    total, seen = 0, 0
    for x, y in batches:
      correct, examples = counter(x, y)
      total += int(correct)
      seen += int(examples)
      if progress is not None:
        progress(label, seen)
    if seen == 0:
      raise ValueError("Invalid dataset: the evaluation split yielded no examples")
    if cache is not None:
      cache.put(label, total, seen, params.get(label, {}))
    return total, seen

  clean, seen = run("clean", lambda x, y: _count_correct(model_fn(x), y))
  correct = {}
  for label, fn in bound.items():

    def adv_count(x, y, fn=fn):
      return _count_correct(model_fn(fn(source_fn, x, y)), y)

    correct[label], attack_seen = run(label, adv_count)
    if attack_seen != seen:
      raise ValueError(f"Invalid cache: {label!r} was recorded on {attack_seen} examples, "
                       f"the evaluation has {seen}")
  return Result(seen, clean, correct, params)


def _count_correct(logits, y):
  pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.int32))
