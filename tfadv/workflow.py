"""The three jobs users run: train (then evaluate and export), evaluate, export.

Each is one function over configs, so the CLIs in `trainers/` and `serving/` stay thin and
notebooks can call the same code.
"""

import dataclasses
import os
import keras

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.evaluation import report as report_lib
from tfadv.evaluation import robustness
from tfadv.models import zoo
from tfadv.training import checkpoints
from tfadv.training import strategy as strategy_lib
from tfadv.training import trainer


@dataclasses.dataclass
class LoadedModel:
  """A trained model rebuilt from its model directory."""
  model: keras.Model
  run_config: dict
  data_config: config_lib.DataConfig
  model_config: config_lib.ModelConfig
  checkpoint: str


def _progress_bar(total, enabled):
  if not enabled:
    return None
  bar = keras.utils.Progbar(total, unit_name="example")
  return bar.update


def evaluate_model(model, data, eval_config, model_name, defense_name, eps, directory=None,
                   progress=True, extra=None):
  """Evaluates a model on the test split and writes the report into `directory`.

  Returns:
    The report dict.
  """
  eval_config.validate()
  total = eval_config.num_examples or data.num_test
  result = robustness.evaluate(model, data.test, eval_config.attacks, eval_config.num_examples,
                               eval_config.batch_size,
                               _progress_bar(total, progress and total is not None))
  report = report_lib.build(result, data.name, model_name, defense_name, eps, extra)
  if directory:
    report_lib.write(report, directory)
  return report


def export_metadata(run_config, report=None):
  """What an operator needs to know about a deployed version."""
  meta = {
      "dataset": run_config.get("dataset", {}),
      "model": run_config.get("model", {}),
      "defense": run_config.get("defense", {}),
  }
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
    report = evaluate_model(result.model, data, eval_config, model_config.name,
                            defense_config.name, defense_config.attack.eps,
                            train_config.model_dir, train_config.progress,
                            extra={"train_steps": result.steps,
                                   "defense_config": trainer.to_jsonable(defense_config)})
  return result, report


def load_trained(model_dir):
  """Rebuilds the model of a training run and restores its latest checkpoint.

  Raises:
    FileNotFoundError: no run config or no checkpoint in `model_dir`.
    ValueError: the checkpoint does not match the recorded model.
  """
  run = trainer.read_run_config(model_dir)
  try:
    data_fields = {f.name for f in dataclasses.fields(config_lib.DataConfig)}
    data_config = config_lib.DataConfig(
        **{k: (tuple(v) if k == "image_size" and v else v)
           for k, v in run["data"].items() if k in data_fields})
    model_config = config_lib.ModelConfig(**run["model"])
    shape = tuple(run["dataset"]["image_shape"])
    num_classes = int(run["dataset"]["num_classes"])
  except (KeyError, TypeError) as e:
    raise ValueError(f"Invalid model_dir: {os.path.join(model_dir, trainer.RUN_CONFIG)!r} "
                     f"is not a tfadv run config ({e})") from e
  model = zoo.build_model(model_config, shape, num_classes)
  path = checkpoints.restore_model(model, model_dir)
  return LoadedModel(model, run, data_config, model_config, path)


def evaluate_model_dir(model_dir, eval_config, output_dir=None, data_config=None,
                       progress=True):
  """Evaluates the latest checkpoint of a run on its dataset's test split.

  Args:
    model_dir: a directory written by `train`.
    eval_config: the attacks and the number of examples.
    output_dir: where report.json/report.md go (default: `model_dir`).
    data_config: override the recorded dataset (e.g. another `data_dir`).
  """
  loaded = load_trained(model_dir)
  data = datasets.load(data_config or loaded.data_config)
  eps = max((a.eps for a in eval_config.attacks), default=0.0)
  return evaluate_model(loaded.model, data, eval_config, loaded.model_config.name,
                        loaded.run_config["defense"]["name"], eps, output_dir or model_dir,
                        progress, extra={"checkpoint": loaded.checkpoint})
