"""The three jobs users run: train (then evaluate and export), evaluate, export.

Each is one function over configs, so the CLIs in `trainers/` and `serving/` stay thin and
notebooks can call the same code.
"""

import dataclasses
import os
from typing import Optional

import keras
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.data import datasets
from tfadv.defenses import models as defense_models
from tfadv.defenses import recipes
from tfadv.defenses import table
from tfadv.evaluation import partial
from tfadv.evaluation import plots
from tfadv.evaluation import report as report_lib
from tfadv.evaluation import robustness
from tfadv.evaluation import sanity
from tfadv.models import sources
from tfadv.models import taps as taps_lib
from tfadv.models import zoo
from tfadv.training import checkpoints
from tfadv.training import ema as ema_lib
from tfadv.training import validation as validation_lib
from tfadv.training import strategy as strategy_lib
from tfadv.training import trainer


@dataclasses.dataclass
class LoadedModel:
  """A trained model rebuilt from its model directory.

  `weights` says which weights `model` holds: `ema` (the moving average, for runs with
  `ema_decay`) or `raw`; `best` is the best-checkpoint state when `checkpoint` is the one
  kept by validation (`model_dir/best/`), else None.
  """
  model: keras.Model
  run_config: dict
  data_config: config_lib.DataConfig
  model_config: config_lib.ModelConfig
  checkpoint: str
  weights: str = "raw"
  best: Optional[dict] = None
  tapped: Optional[keras.Model] = None  # The same layers: logits, taps, Grad-CAM, extras.
  layers: Optional[dict] = None  # The taps, Grad-CAM layer and adaptations (sources).


def _progress_bar(total, enabled, limits=None):
  """A callable `(label, done)` drawing one progress bar per attack, or None.

  `limits` maps an attack's label to its own example limit (AutoAttack on the first 1,000).
  """
  if not enabled:
    return None
  bars = {}
  limits = dict(limits or {})

  def update(label, done):
    if label not in bars:
      print(f"{label}:", flush=True)
      limit = limits.get(label)
      bars[label] = keras.utils.Progbar(min(total, limit) if limit else total,
                                        unit_name="example")
    bars[label].update(done)

  return update


UNBOUNDED_CHECK = config_lib.AttackConfig(name="pgd", eps=1.0, steps=10)


def evaluate_model(model, data, eval_config, model_name, defense_name, eps, directory=None,
                   progress=True, extra=None, source_model=None, fingerprint=None,
                   white_report=None, strategy=None, training_attack=None):
  """Evaluates a model on the test split and writes the report into `directory`.

  Besides `report.json` and `report.md`, writes PNG plots (accuracy vs iterations and vs
  eps, when the attack list has several of either) and the sanity-check warnings. When
  `fingerprint` is given, finished attacks are kept in `directory/report.partial.json`
  and an interrupted evaluation with the same fingerprint resumes without recomputing
  them.

  Args:
    progress: True for a progress bar per attack, or a callable `(label, done_examples)`.
    source_model: the surrogate the attacks run on (gray/black box), or None (white box).
    fingerprint: JSON-serialisable identity of the evaluation (checkpoint, data, ...).
    white_report: the white-box report of the same model, compared with a transfer one.
    strategy: optional tf.distribute strategy splitting each batch across its replicas
      (the counts are summed; the figures are those of one device).
    training_attack: the training attack's `AttackConfig`; the report then records its
      eps and norm and names the attacks evaluated at another (`off_training_threat`).

  Returns:
    The report dict.
  """
  registry.validate(eval_config)
  attacks = tuple(eval_config.attacks)
  if eval_config.unbounded_check and UNBOUNDED_CHECK not in attacks:
    attacks += (UNBOUNDED_CHECK,)
  total = eval_config.num_examples or data.num_test
  cache = None
  if directory and fingerprint is not None:
    cache = partial.PartialResults(directory, dict(
        fingerprint, num_examples=eval_config.num_examples, dataset=data.name,
        threat_model=eval_config.threat_model.value))
  if not callable(progress):
    limits = {label: a.num_examples for label, a in zip(robustness.attack_labels(attacks),
                                                          attacks) if a.num_examples}
    progress = _progress_bar(total, progress and total is not None, limits)
  result = robustness.evaluate(model, data.test, attacks, eval_config.num_examples,
                               eval_config.batch_size, progress, source_model=source_model,
                               cache=cache, strategy=strategy)
  extra = dict(extra or {}, threat_model=eval_config.threat_model.value)
  if eval_config.source_model_dir:
    extra["source_model"] = eval_config.source_model_dir
  report = report_lib.build(result, data.name, model_name, defense_name, eps, extra,
                            class_names=getattr(data, "class_names", None))
  if training_attack is not None:
    skip = robustness.attack_labels(attacks)[-1:] if len(attacks) > len(
        eval_config.attacks) else ()  # The unbounded check (eps = 1) is no robustness figure.
    report.update(report_lib.training_threat(report, training_attack.eps,
                                             training_attack.norm.value, skip))
  report["warnings"] = sanity.check(report, white_report)
  if directory:
    tf.io.gfile.makedirs(directory)
    report["plots"] = plots.write_all(report, directory)
    report_lib.write(report, directory)
  return report


def export_metadata(run_config, report=None):
  """What an operator needs to know about a deployed version."""
  meta = {
      "dataset": run_config.get("dataset", {}),
      "model": run_config.get("model", {}),
      "defense": run_config.get("defense", {}),
  }
  try:  # The weights the recipe really used (defaults included), for the model card.
    defense = config_lib.DefenseConfig.from_dict(run_config["defense"])
    meta["defense_settings"] = trainer.to_jsonable(recipes.settings(defense))
  except (KeyError, TypeError, ValueError, AttributeError):
    pass  # An older or foreign run config: the card shows the recorded config instead.
  if report is not None:
    meta["robustness"] = {"clean_accuracy": report["clean_accuracy"],
                          "eps": report["eps"],
                          "attacks": {k: v["accuracy"] for k, v in report["attacks"].items()}}
  return meta


def train_and_evaluate(data_config, model_config, defense_config, train_config, eval_config,
                       strategy=None):
  """Trains (resuming if possible), then evaluates into `model_dir/report.json`.

  Only the chief evaluates; other workers return a None report.

  Returns:
    (train_result, report).
  """
  data_config.validate()
  data = datasets.load(data_config)
  result = trainer.train(data, model_config, defense_config, train_config, data_config,
                         strategy)
  report = None
  if strategy_lib.is_chief(result.strategy):
    # The weights that ship: the best validation checkpoint when kept, EMA when on.
    model, which = result.model, {"weights": result.weights}
    if result.best is not None:
      loaded = load_trained(train_config.model_dir, "best")
      model = loaded.model
      which = {"weights": loaded.weights, "checkpoint": loaded.checkpoint,
               "best_step": result.best["best_step"],
               "best_validation_adv_accuracy": result.best["best_value"]}
    # The result's model is the one measured (and exported by tfadv-train --export_dir).
    result = dataclasses.replace(result, model=model)
    if table.get(defense_config.name).randomized:
      eval_config, which["randomized"] = randomized_evaluation(eval_config)
    report = evaluate_model(model, data, eval_config, model_config.name,
                            defense_config.name, defense_config.attack.eps,
                            train_config.model_dir, train_config.progress,
                            training_attack=defense_config.attack,
                            extra={**which, "train_steps": result.steps,
                                   "model_layers": result.layers,
                       "defense_config": trainer.to_jsonable(defense_config),
                                   "defense_settings": trainer.to_jsonable(
                                       recipes.settings(defense_config))})
  return result, report


def load_trained(model_dir, checkpoint="auto"):
  """Rebuilds the model of a training run and restores one of its checkpoints.

  Args:
    model_dir: a directory written by `train`.
    checkpoint: `auto` (the best validation checkpoint, `model_dir/best/`, when the run
      kept one, else the latest), `best` or `latest`. With `ema_decay` the model then holds
      that checkpoint's moving average of the weights.

  Raises:
    FileNotFoundError: no run config or no checkpoint in `model_dir`.
    ValueError: the checkpoint does not match the recorded model.
  """
  run = trainer.read_run_config(model_dir)
  try:
    data_config = config_lib.DataConfig.from_dict(run["data"])
    model_config = sources.resolve_path(config_lib.ModelConfig(**run["model"]), model_dir)
    shape = tuple(run["dataset"]["image_shape"])
    num_classes = int(run["dataset"]["num_classes"])
  except (KeyError, TypeError) as e:
    raise ValueError(f"Invalid model_dir: {os.path.join(model_dir, trainer.RUN_CONFIG)!r} "
                     f"is not a tfadv run config ({e})") from e
  defense_config = config_lib.DefenseConfig.from_dict(run.get("defense", {"name": "none"}))
  built = defense_models.build_record(model_config, recipes.build(defense_config), shape,
                                      num_classes)
  model = built.model
  tapped = taps_lib.tapped_model(model, built.tap_names, built.gradcam_name, built.extras)
  if checkpoint not in ("auto", "best", "latest"):
    raise ValueError("Invalid checkpoint: expected one of [auto, best, latest]; received "
                     f"checkpoint={checkpoint!r}")
  best_dir = os.path.join(model_dir, validation_lib.BEST_DIR)
  best = validation_lib.read_best(model_dir)
  use_best = checkpoint == "best" or (
      checkpoint == "auto" and best is not None
      and tf.train.latest_checkpoint(os.path.join(best_dir, "checkpoints")))
  path = checkpoints.restore_model(model, best_dir if use_best else model_dir)
  weights = "raw"
  ema_decay = float(run.get("train", {}).get("ema_decay") or 0.0)
  if ema_decay:
    ema = ema_lib.WeightEMA(ema_lib.averaged_weights(model), ema_decay)
    try:
      tf.train.Checkpoint(ema=ema).restore(path).expect_partial(
          ).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise ValueError(f"Checkpoint {path!r} has no weight average of this model "
                       f"(ema_decay={ema_decay}): {e}") from e
    ema.copy_to(ema_lib.averaged_weights(model))
    weights = "ema"
  return LoadedModel(model, run, data_config, model_config, path, weights,
                     best if use_best else None, tapped, sources.describe(built))


def evaluate_model_dir(model_dir, eval_config, output_dir=None, data_config=None,
                       progress=True, resume=True, strategy=None):
  """Evaluates the latest checkpoint of a run on its dataset's test split.

  Args:
    model_dir: a directory written by `train`.
    eval_config: the attacks and the number of examples.
    output_dir: where report.json/report.md go (default: `model_dir`).
    data_config: override the recorded dataset (e.g. another `data_dir`).
    progress: show a progress bar per attack.
    resume: keep finished attacks in `output_dir/report.partial.json` and reuse the ones
      a previous (interrupted) run of the same evaluation finished.
    strategy: optional tf.distribute strategy the batches are split across.
  """
  loaded = load_trained(model_dir)
  data_config = data_config or loaded.data_config
  data = datasets.load(data_config)
  eps = max((a.eps for a in eval_config.attacks), default=0.0)
  output_dir = output_dir or model_dir
  source, white_report = None, None
  fingerprint = {"checkpoint": loaded.checkpoint, "data": dataclasses.asdict(data_config)}
  if eval_config.threat_model is not config_lib.ThreatModel.WHITE:
    source = load_source_model(loaded, eval_config.source_model_dir, eval_config.threat_model)
    fingerprint["source_checkpoint"] = source.checkpoint
    white_report = _white_report(model_dir, loaded.checkpoint, output_dir)
  extra = {"checkpoint": loaded.checkpoint, "weights": loaded.weights,
           "model_layers": loaded.layers}
  defense_name = loaded.run_config["defense"]["name"]
  training_attack = config_lib.DefenseConfig.from_dict(loaded.run_config["defense"]).attack
  if defense_name in table.DEFENSES and table.get(defense_name).randomized:
    eval_config, extra["randomized"] = randomized_evaluation(eval_config)
  return evaluate_model(loaded.model, data, eval_config, loaded.model_config.name,
                        defense_name, eps, output_dir, progress, extra=extra,
                        source_model=source.model if source else None,
                        fingerprint=fingerprint if resume else None,
                        white_report=white_report, strategy=strategy,
                        training_attack=training_attack)


def randomized_evaluation(eval_config):
  """The evaluation of a model whose output is random (RAT, Randomization).

  Attacks that handle randomness get their expectation-over-transformation options
  (AutoAttack's `rand` version: APGD-CE and APGD-DLR averaging 20 gradient samples); the
  others are listed as upper bounds.

  Returns:
    (eval_config, note): the adjusted config and the report's `randomized` entry.
  """
  attacks, eot, upper = [], [], []
  for attack in eval_config.attacks:
    attack, handled = registry.for_randomized_model(attack)
    attacks.append(attack)
    (eot if handled else upper).append(robustness.attack_label(attack))
  note = {"eot": eot, "without_eot": upper,
          "note": "randomized defense: attacks in `eot` average over the model's randomness "
                  "(expectation over transformation); the figures of `without_eot` attacks "
                  "are upper bounds"}
  return dataclasses.replace(eval_config, attacks=tuple(attacks)), note


def _model_identity(loaded):
  return ({k: v for k, v in loaded.run_config["model"].items() if k != "weights"},
          loaded.run_config["defense"]["name"])


def load_source_model(target, source_model_dir, threat_model):
  """Loads the surrogate of a gray- or black-box evaluation and checks it fits the threat.

  Gray box: same architecture and defense as the target, but another training run (its own
  checkpoint). Black box: a different architecture. Both must take the same images and
  predict the same classes.

  Raises:
    ValueError: the surrogate does not match the threat model or the target's data.
  """
  source = load_trained(source_model_dir)
  if source.checkpoint == target.checkpoint:
    raise ValueError(f"Invalid source_model_dir: expected another training run than the "
                     f"evaluated model for --threat_model={threat_model.value}; received the "
                     f"same checkpoint {source.checkpoint!r}")
  for key in ("image_shape", "num_classes"):
    if source.run_config["dataset"].get(key) != target.run_config["dataset"].get(key):
      raise ValueError(
          f"Invalid source_model_dir: expected a model of the same {key} as the target "
          f"({target.run_config['dataset'].get(key)}); received "
          f"{source.run_config['dataset'].get(key)} in {source_model_dir!r}")
  (source_arch, source_defense), (arch, defense) = (_model_identity(source),
                                                    _model_identity(target))
  if threat_model is config_lib.ThreatModel.GRAY and (source_arch, source_defense) != (
      arch, defense):
    raise ValueError(
        f"Invalid source_model_dir: a gray-box surrogate must have the target's architecture "
        f"and defense ({arch}, {defense}); received ({source_arch}, {source_defense}) in "
        f"{source_model_dir!r} (use --threat_model=black for another architecture)")
  if threat_model is config_lib.ThreatModel.BLACK and source_arch == arch:
    raise ValueError(
        f"Invalid source_model_dir: a black-box surrogate must have another architecture than "
        f"the target ({arch}); received the same in {source_model_dir!r} (use "
        f"--threat_model=gray for a copy of the target)")
  return source


def _white_report(model_dir, checkpoint, output_dir):
  """The white-box report of the same checkpoint, if one was written, else None."""
  for directory in (model_dir, output_dir):
    path = os.path.join(directory, "report.json")
    if not tf.io.gfile.exists(path):
      continue
    try:
      report = report_lib.read(path)
    except ValueError:
      continue
    if (report.get("threat_model", "white") == "white"
        and report.get("checkpoint") in (None, checkpoint)):
      return report
  return None


def load_model_file(model_config, data):
  """A user's model (file or SavedModel) adapted to `data`: (model, tapped, layers).

  No training run is needed: the model is evaluated or exported as it is.
  """
  model_config.validate()
  built = sources.build(model_config, data.image_shape, data.num_classes)
  tapped = taps_lib.tapped_model(built.model, built.tap_names, built.gradcam_name)
  return built.model, tapped, sources.describe(built)


def evaluate_model_file(model_config, data_config, eval_config, output_dir, progress=True,
                        resume=True, strategy=None):
  """Evaluates a model trained elsewhere (`--model=PATH`) on a dataset's test split.

  The report names the file, the layers found and what was adapted (softmax removed,
  input range, channels); a model serving probabilities is attacked through its
  log-probabilities, with a warning.
  """
  data_config.validate()
  data = datasets.load(data_config)
  model, _, layers = load_model_file(model_config, data)
  eps = max((a.eps for a in eval_config.attacks), default=0.0)
  fingerprint = {"model_file": os.path.abspath(model_config.path),
                 "mtime": os.path.getmtime(model_config.path),
                 "data": dataclasses.asdict(data_config)}
  report = evaluate_model(model, data, eval_config, model_config.name, "unknown", eps,
                          output_dir, progress,
                          extra={"model_source": os.path.abspath(model_config.path),
                                 "model_layers": layers},
                          fingerprint=fingerprint if resume else None, strategy=strategy)
  notes = [n for n in layers["notes"] if "probabilities" in n]
  if notes and output_dir:
    report["warnings"] = list(report.get("warnings") or []) + notes
    report_lib.write(report, output_dir)
  return report
