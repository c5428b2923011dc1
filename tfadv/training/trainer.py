"""The custom training loop: a thin composition of data, model, attack and loss terms.

One step (per replica): craft adversarial examples with the recipe's attack (the model in
inference mode, the true labels), run the forward passes the recipe's terms read (clean and
adversarial images, Grad-CAM, masked images, input gradients: `recipe.forward`), evaluate
the recipe's weighted per-example loss terms, reduce them
over the *global* batch (`tf.nn.compute_average_loss`) and apply the gradients (Keras
all-reduces them across replicas). Everything inside one `tf.function`.

Resuming: the step counter is the optimizer's `iterations`; checkpoints hold the model, the
optimizer and nothing else, because the input pipeline is a pure function of (seed, step):
a seeded shuffle, repeated, batched, and skipped to the restored step. Random starts of the
attack are stateless, keyed by (seed, step, replica), so an interrupted run replays the same
steps as an uninterrupted one.
"""

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from absl import logging
import keras
import tensorflow as tf

from tfadv import config as config_lib
from tfadv import io_utils
from tfadv.attacks import registry
from tfadv.attention import panels
from tfadv.data import augment as augment_lib
from tfadv.defenses import loading
from tfadv.defenses import models as defense_models
from tfadv.defenses import recipes
from tfadv.models import sources
from tfadv.models import taps as taps_lib
from tfadv.training import checkpoints
from tfadv.training import overfitting
from tfadv.training import ema as ema_lib
from tfadv.training import step as step_lib
from tfadv.training import strategy as strategy_lib
from tfadv.training import summaries as summaries_lib
from tfadv.training import validation as validation_lib

RUN_CONFIG = "run_config.json"


@dataclasses.dataclass
class TrainResult:
  """What `train` hands back.

  Attributes:
    model: the trained Keras model (images in [0, 1] -> logits).
    tapped: the same weights, returning logits, taps and the Grad-CAM layer.
    steps: the optimizer step reached.
    metrics: the mean of each logged quantity over the last logging window.
    resumed_from: the checkpoint the run resumed from, or None.
    strategy: the strategy the model lives under.
    weights: which weights `model` holds: `ema` (the moving average, with
      `ema_decay`; the raw weights stay in the checkpoint) or `raw`.
    best: with `validate_every`, the best-checkpoint state (`best_step`, `best_value`: PGD
      accuracy on the validation split, `history`), else None.
    layers: the layers the defense read (`tfadv.models.sources.describe`).
  """
  model: keras.Model
  tapped: keras.Model
  steps: int
  metrics: Dict[str, float]
  resumed_from: Optional[str]
  strategy: Any
  weights: str = "raw"
  best: Optional[Dict[str, Any]] = None
  layers: Optional[Dict[str, Any]] = None  # Taps, Grad-CAM layer, adaptations (sources).


def steps_per_epoch(num_examples, batch_size):
  return max(1, num_examples // batch_size)


def total_steps(train_config, num_train):
  """Steps the run trains for: `train_steps`, or `epochs` over the training split."""
  if train_config.train_steps:
    return int(train_config.train_steps)
  if not num_train:
    raise ValueError("Invalid train_steps: the training split's size is unknown, so "
                     "epochs cannot be converted to steps; set train_steps")
  return train_config.epochs * steps_per_epoch(num_train, train_config.batch_size)


@keras.saving.register_keras_serializable(package="tfadv")
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up from 0 to `after(0)` over `warmup_steps` steps, then `after(step - w)`.

  At step s < w the rate is `after(0) * (s + 1) / w` (the first update already moves).
  """

  def __init__(self, after, warmup_steps):
    self.after = after
    self.warmup_steps = int(warmup_steps)

  def _after(self, step):
    return self.after(step) if callable(self.after) else tf.cast(self.after, tf.float32)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    w = float(self.warmup_steps)
    warm = self._after(0.0) * (step + 1.0) / w
    return tf.where(step < w, warm, self._after(tf.maximum(step - w, 0.0)))

  def get_config(self):
    after = self.after
    if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
      after = keras.optimizers.schedules.serialize(after)
    return {"after": after, "warmup_steps": self.warmup_steps}

  @classmethod
  def from_config(cls, config):
    after = config["after"]
    if isinstance(after, dict):
      after = keras.optimizers.schedules.deserialize(after)
    return cls(after, config["warmup_steps"])


def learning_rate(train_config, steps):
  """The learning-rate schedule of a `TrainConfig` over `steps` steps.

  With `warmup_steps` w the rate rises linearly over the first w steps and the schedule
  then runs over the remaining `steps - w`.
  """
  lr = train_config.learning_rate
  warmup = min(train_config.warmup_steps, max(steps - 1, 0))
  steps = max(steps - warmup, 1)
  schedule = lr
  if train_config.schedule is config_lib.Schedule.COSINE:
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))
  elif train_config.schedule is config_lib.Schedule.PIECEWISE:
    bounds = [max(1, steps // 2), max(2, (3 * steps) // 4)]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        bounds, [lr, lr * 0.1, lr * 0.01])
  return WarmUp(schedule, warmup) if warmup else schedule


def build_optimizer(train_config, steps):
  """SGD with momentum 0.9 (Nesterov if set), or Adam.

  Decoupled weight decay is the optimizer's own (`w -= lr * wd * w`); coupled weight decay
  is added to the gradients by the train step instead (`coupled_weight_decay`). Under
  `mixed_float16` the optimizer is wrapped in a dynamic `LossScaleOptimizer`.
  """
  lr = learning_rate(train_config, steps)
  decay = None
  if train_config.weight_decay_mode is config_lib.WeightDecayMode.DECOUPLED:
    decay = train_config.weight_decay or None
  if train_config.optimizer is config_lib.OptimizerKind.SGD:
    optimizer = keras.optimizers.SGD(lr, momentum=0.9, nesterov=train_config.nesterov,
                                     weight_decay=decay)
  else:
    optimizer = keras.optimizers.Adam(lr, weight_decay=decay)
  if train_config.precision is config_lib.Precision.MIXED_FLOAT16:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def coupled_weight_decay(train_config):
  """The L2 coefficient the train step adds to the gradients (`g + wd * w`), or 0."""
  if train_config.weight_decay_mode is config_lib.WeightDecayMode.COUPLED:
    return float(train_config.weight_decay)
  return 0.0


def input_pipeline(dataset, batch_size, shuffle_buffer, seed, start_step=0,
                   augment=config_lib.Augment.NONE):
  """Training batches as a pure function of (seed, step).

  A seeded shuffle reshuffled every epoch produces the same sequence of epochs in every
  run, so skipping `start_step` batches puts a resumed run exactly where it stopped.
  Augmentation is keyed by (seed, global batch index), counted from `start_step` after the
  skip (so skipped batches are not augmented for nothing).
  """
  ds = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat().batch(batch_size, drop_remainder=True)
  if start_step:
    ds = ds.skip(start_step)
  fn = augment_lib.augment_fn(augment, seed)
  if fn is not None:
    ds = ds.enumerate(start=start_step).map(fn, num_parallel_calls=tf.data.AUTOTUNE,
                                            deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def make_train_step(model, tapped, recipe, optimizer, strategy, global_batch, seed=0,
                    jit=False, static_models=(), ema=None, l2=0.0):
  """Builds `step(iterator, num_steps=1) -> {metric: global mean}` in one tf.function.

  `num_steps` (a scalar tensor, so one trace serves every loop length) steps run inside
  the function (Orbit's `steps_per_loop`): metrics come back once, averaged over them.

  Args:
    model: the Keras model (logits), attacked in inference mode.
    tapped: the same weights returning logits and taps (trained).
    recipe: a `tfadv.defenses.recipes.Recipe`.
    optimizer: a Keras optimizer created under `strategy`.
    strategy: the tf.distribute strategy.
    global_batch: the global batch size (the loss is averaged over it).
    seed: base of the stateless random starts.
    jit: compile the attack with XLA (inside the replica function, which also works under
      MirroredStrategy).
    static_models: for a recipe with `static_sources`, pre-trained models the attack runs
      on in turn with the trained model (step s uses source s mod (1 + len)).
    ema: a `tfadv.training.ema.WeightEMA` of `model`'s weights, updated in the replica
      step after each optimizer step, or None.
    l2: coupled weight decay: `l2 * w` is added to each gradient (PyTorch SGD's
      `weight_decay`), 0 for none.
  """

  attack_fn = step_lib.make_attack_fn(model, recipe, static_models, jit)

  def replica_step(x, y, step):
    return step_lib.replica_step(model, tapped, recipe, optimizer, attack_fn, x, y, step,
                                 seed=seed, global_batch=global_batch, ema=ema, l2=l2)

  def one_step(iterator):
    x, y = next(iterator)
    per_replica = strategy.run(replica_step, args=(x, y, optimizer.iterations))
    return {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) / global_batch
            for name, value in per_replica.items()}

  @tf.function
  def step(iterator, num_steps=1):
    totals = one_step(iterator)
    for _ in tf.range(num_steps - 1):
      values = one_step(iterator)
      totals = {k: totals[k] + values[k] for k in totals}
    return {k: v / tf.cast(num_steps, v.dtype) for k, v in totals.items()}

  return step


def make_panel_fn(model, tapped, recipe, data, seed=0, num_images=4):
  """Grad-CAM panels (clean vs adversarial) of the first test images, for TensorBoard.

  The defense's own training attack (fixed seed) makes the adversarial column; a defense
  without an attack shows the clean columns only. Runs outside the training step.
  """
  split = data.test if data.test is not None else data.train
  x, y = next(iter(split.batch(num_images).take(1)))
  attack = None
  if recipe.needs_adv:
    attack = registry.from_config(recipe.attack, seed=tf.constant([seed, -1], tf.int64))
  return panels.make_panel_fn(model, tapped, x, y, attack)


def write_run_config(model_dir, run_config):
  """Records the configs of a run (so evaluate/export rebuild the model) or checks them.

  Raises:
    ValueError: when `model_dir` already holds a run whose data, model or defense differ
      (resuming it with other settings would silently mix two trainings).
  """
  path = os.path.join(model_dir, RUN_CONFIG)
  if tf.io.gfile.exists(path):
    previous = read_run_config(model_dir)
    for key in ("data", "model", "defense"):
      if previous.get(key) != run_config.get(key):
        raise ValueError(
            f"Invalid model_dir: {model_dir!r} holds a run with another {key} config "
            f"({previous.get(key)}); received {run_config.get(key)}. Use a new model_dir "
            "or the same settings to resume.")
  io_utils.atomic_write_json(path, run_config)


def read_run_config(model_dir):
  """Reads `run_config.json` of a model directory written by `train`.

  Raises:
    FileNotFoundError: when the directory has none.
    NotADirectoryError: when `model_dir` is a file.
    ValueError: when the file is not a JSON object (named in the message).
  """
  if tf.io.gfile.exists(model_dir) and not tf.io.gfile.isdir(model_dir):
    raise NotADirectoryError(f"Invalid model_dir: expected a directory written by tfadv-train; "
                             f"{model_dir!r} is a file")
  path = os.path.join(model_dir, RUN_CONFIG)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Invalid model_dir: expected {path!r} (written by tfadv-train); "
                            "it does not exist")
  run_config = io_utils.read_json(path, "run config")
  if not isinstance(run_config, dict):
    raise ValueError(f"Invalid run config: {path!r} holds a JSON {type(run_config).__name__}, "
                     "not the object tfadv-train writes")
  return run_config


def to_jsonable(config):
  """A config dataclass as a JSON-ready dict (enums by value)."""

  def convert(value):
    if dataclasses.is_dataclass(value):
      return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
      return [convert(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):
      return value.value
    return value

  return convert(config)


def train(data, model_config, defense_config, train_config, data_config=None,
          strategy=None, static_models=None):
  """Trains (or resumes) a model with a defense recipe and returns it.

  Args:
    data: a `tfadv.data.datasets.DatasetInfo` (unbatched train split used).
    model_config: a `ModelConfig`.
    defense_config: a `DefenseConfig`.
    train_config: a `TrainConfig`.
    data_config: the `DataConfig` `data` came from (recorded for evaluate/export).
    strategy: a strategy to use instead of `train_config.strategy`.
    static_models: for `ensemble_at`, the static pre-trained models (Keras models, images
      in [0, 1] -> logits); None loads them from `defense_config.static_model_dirs`.

  Returns:
    A `TrainResult`.
  """
  model_config.validate()
  train_config.validate()
  defense_config = recipes.with_label_smoothing(defense_config, train_config.label_smoothing)
  recipe = recipes.build(defense_config)
  if strategy is None:
    strategy = strategy_lib.make_strategy(train_config.strategy, train_config.num_cpu_devices)
  chief = strategy_lib.is_chief(strategy)
  replicas = strategy.num_replicas_in_sync
  if train_config.batch_size % replicas:
    raise ValueError(f"Invalid batch_size: expected a multiple of the {replicas} replicas; "
                     f"received batch_size={train_config.batch_size}")
  steps = total_steps(train_config, data.num_train)
  tf.io.gfile.makedirs(train_config.model_dir)
  keras.utils.set_random_seed(train_config.seed)
  if train_config.deterministic:
    tf.config.experimental.enable_op_determinism()
  # Layers take the policy when built: set it for the build only, so it does not leak.
  previous_policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(train_config.precision.value)
  with strategy.scope():
    built = defense_models.build_record(
        sources.resolve_path(model_config, train_config.model_dir), recipe, data.image_shape,
        data.num_classes)
    model = built.model
    tapped = taps_lib.tapped_model(model, built.tap_names, built.gradcam_name, built.extras)
    if recipe.static_sources and static_models is None:
      static_models = [loading.load(d) for d in defense_config.static_model_dirs]
    optimizer = build_optimizer(train_config, steps)
    optimizer.build(model.trainable_variables)
  keras.mixed_precision.set_global_policy(previous_policy)
  if model_config.path is not None:
    # A user model: its architecture stays in model_dir (model.keras), so evaluate, export
    # and resume rebuild it without the original file. Written once the model is known to
    # build and to fit the defense, so a bad file leaves nothing behind.
    model_config = (sources.persist(model_config, train_config.model_dir) if chief else
                    dataclasses.replace(model_config, path=sources.RUN_MODEL_FILE))
  if chief:
    write_run_config(train_config.model_dir, {
        "data": to_jsonable(data_config) if data_config else {"name": data.name},
        "model": to_jsonable(model_config),
        "defense": to_jsonable(defense_config),
        "train": to_jsonable(train_config),
        "dataset": {"name": data.name, "num_classes": data.num_classes,
                    "image_shape": list(data.image_shape),
                    "class_names": list(data.class_names)},
    })

  schedule = learning_rate(train_config, steps)
  ema = None
  if train_config.ema_decay:
    with strategy.scope():
      ema = ema_lib.WeightEMA(ema_lib.averaged_weights(model), train_config.ema_decay)
  extra = {"ema": ema} if ema is not None else {}
  states = defense_models.random_states(model)
  if states:  # Random layers' streams resume where they stopped (RAT, Randomization).
    extra["random_states"] = states
  checkpointer = checkpoints.Checkpointer(train_config.model_dir, strategy,
                                          train_config.keep_checkpoints, model=model,
                                          optimizer=optimizer, **extra)
  resumed_from = checkpointer.restore()
  start = int(optimizer.iterations.numpy())
  if resumed_from:
    logging.info("Resumed from %s at step %d of %d.", resumed_from, start, steps)

  train_split, validate, monitor = data.train, None, None
  if train_config.validate_every:
    train_split, validation_split = validation_lib.split(data.train, data.num_train,
                                                         train_config.validation_size)
    if recipe.single_step:  # Fast AT: watch for catastrophic overfitting.
      monitor = overfitting.Monitor()
      fgsm = config_lib.AttackConfig(name="fgsm", eps=defense_config.attack.eps,
                                     norm=defense_config.attack.norm)
    validate = validation_lib.make_validate_fn(
        model, validation_attack(defense_config, train_config), validation_split,
        seed=train_config.seed, fgsm_config=fgsm if monitor is not None else None)
    best_dir = os.path.join(train_config.model_dir, validation_lib.BEST_DIR)
    tracker = validation_lib.BestTracker(best_dir, write=chief)
    best_checkpointer = checkpoints.Checkpointer(best_dir, strategy, 1, model=model, **extra)
  shuffle_buffer = data_config.shuffle_buffer if data_config else 10_000
  dataset = input_pipeline(train_split, train_config.batch_size, shuffle_buffer,
                           train_config.seed, start, train_config.augment)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  step_fn = make_train_step(model, tapped, recipe, optimizer, strategy,
                            train_config.batch_size, train_config.seed, train_config.jit,
                            static_models or (), ema=ema,
                            l2=coupled_weight_decay(train_config))

  summaries = summaries_lib.Summaries(train_config.model_dir, steps, start, enabled=chief,
                                      progress=train_config.progress)
  panel_fn = None
  if chief and train_config.image_every:
    panel_fn = make_panel_fn(model, tapped, recipe, data, train_config.seed)
  window, window_steps, last = {}, 0, {}
  # Every loop of `steps_per_loop` steps ends at the next log/image/checkpoint/validation
  # boundary, so each of them happens at exactly the step it would without loops.
  periods = [p for p in (train_config.log_every, train_config.checkpoint_every,
                         train_config.image_every if panel_fn is not None else 0,
                         train_config.validate_every) if p]
  step = start
  while step < steps:
    n = min([train_config.steps_per_loop, steps - step] + [p - step % p for p in periods])
    values = step_fn(iterator, tf.constant(n, tf.int32))
    step += n
    values = {k: float(v) for k, v in values.items()}  # One device->host sync per loop.
    for k, v in values.items():
      window[k] = window.get(k, 0.0) + v * n
    window_steps += n
    summaries.progress(step, {k: values[k] for k in ("loss", "accuracy", "adv_accuracy")
                              if k in values})
    if validate is not None and (step % train_config.validate_every == 0 or step == steps):
      figures = _validate_and_keep_best(step, validate, model, ema, tracker,
                                        best_checkpointer, summaries)
      if monitor is not None and _overfitted(monitor, step, figures, summaries):
        if train_config.stop_on_overfitting:
          checkpointer.save(step)
          logging.warning("Stopped at step %d (stop_on_overfitting); the best validation "
                          "checkpoint, step %d, is in best/.", step, tracker.state()[
                              "best_step"])
          break
    if step % train_config.log_every == 0 or step == steps:
      last = {k: v / window_steps for k, v in window.items()}
      # From the schedule itself: under a strategy the optimizer's rate is a MirroredVariable.
      last["learning_rate"] = float(schedule(step) if callable(schedule) else schedule)
      summaries.scalars(step, last)
      window, window_steps = {}, 0
    if panel_fn is not None and step % train_config.image_every == 0:
      summaries.images(step, "gradcam/clean_vs_adv", panel_fn())
    if step % train_config.checkpoint_every == 0 or step == steps:
      checkpointer.save(step)
  if start >= steps and not last:
    logging.info("Nothing to train: the checkpoint is already at step %d of %d.", start, steps)
  summaries.close()
  if ema is not None:  # Evaluation and export measure the averaged weights.
    ema.copy_to(ema_lib.averaged_weights(model))
  best = tracker.state() if validate is not None else None
  return TrainResult(model, tapped, step, last, resumed_from, strategy,
                     weights="ema" if ema is not None else "raw", best=best,
                     layers=sources.describe(built))


def validation_attack(defense_config, train_config):
  """The validation attack: PGD (random start) at the training attack's eps and norm."""
  attack = defense_config.attack
  return config_lib.AttackConfig(name="pgd", eps=attack.eps, norm=attack.norm,
                                 steps=train_config.validation_attack_steps)


def _validate_and_keep_best(step, validate, model, ema, tracker, best_checkpointer,
                            summaries):
  """Validates the weights that would ship (the EMA's when on); keeps the best checkpoint."""
  weights = ema_lib.averaged_weights(model) if ema is not None else None
  if ema is not None:
    ema.swap(weights)
  try:
    figures = validate()
  finally:
    if ema is not None:
      ema.swap(weights)
  summaries.scalars(step, {f"validation/{k}": v for k, v in figures.items()})
  if tracker.update(step, figures["adv_accuracy"]):
    best_checkpointer.save(step)
    logging.info("Step %d: best PGD validation accuracy so far, %.4f (kept in best/).", step,
                 figures["adv_accuracy"])
  tracker.write()
  return figures


def _overfitted(monitor, step, figures, summaries):
  """Feeds the catastrophic-overfitting monitor; logs and records a collapse."""
  warning = monitor.update(step, figures["adv_accuracy"], figures["fgsm_accuracy"])
  summaries.scalars(step, {"validation/catastrophic_overfitting": float(bool(warning))})
  if warning:
    logging.warning("%s", warning)
  return bool(warning)
