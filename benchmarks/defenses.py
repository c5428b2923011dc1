r"""Defenses side by side: same model, data and budget; clean / PGD-20 / AutoAttack accuracy.

Trains each defense of `tfadv.defenses.table` with the library (`trainer.train`) on
Fashion-MNIST with the same model, training-attack budget (L-inf, eps = 0.1), optimizer,
steps and seed, then evaluates every model on the same test examples, clean and under L-inf
PGD-20 and AutoAttack (eps = 0.1). Randomized defenses (RAT, Randomization) are attacked
with expectation over transformation: AutoAttack's `rand` version. `ensemble_at` takes the
`none` model of the same run as its static model. Writes a Markdown table with the standard
error of each figure (and the numbers as JSON). Not a test: a measurement whose outcome is
reported as it comes.

With `--study_dir`, a defense that a `tfadv-study` run already trained (target cell) and
evaluated white box (eval cell, with PGD-20 and AutoAttack on the same examples) with exactly
this benchmark's data, model, training attack, seed and every training setting that shapes the
weights is read from the study instead of being recomputed; the table marks those rows.

  python benchmarks/defenses.py --train_steps=600 --batch_size=64 --width=16 \
      --attack_steps=7 --num_examples=1000 --output=/tmp/tfadv_defenses.md
"""

import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from tfadv import config as config_lib
from tfadv import io_utils
from tfadv.data import datasets
from tfadv.defenses import table
from tfadv.evaluation import robustness
from tfadv.training import trainer

flags.DEFINE_list("defenses", list(table.NAMES), "Defenses to train and compare.")
flags.DEFINE_string("fd_model", "small_cnn",
                    "Architecture of fd (denoising blocks after each stage; the paper used ResNets: resnet18).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST idx files (default: Debian's).")
flags.DEFINE_float("eps", 0.1, "L-inf budget of training and evaluation attacks.")
flags.DEFINE_integer("attack_steps", 7, "PGD steps of the training attack.")
flags.DEFINE_integer("train_steps", 600, "Optimizer steps per defense.")
flags.DEFINE_integer("batch_size", 64, "Training batch size.")
flags.DEFINE_integer("width", 16, "small_cnn base width.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("num_examples", 1000, "Test examples evaluated (the first ones).")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and random starts.")
flags.DEFINE_string("work_dir", "/tmp/tfadv_bench_defenses",
                    "Model directories go to <work_dir>/<defense> (must not hold older runs "
                    "with other settings).")
flags.DEFINE_string("study_dir", None,
                    "A tfadv-study directory to take identical finished defenses from.")
flags.DEFINE_string("output", None, "Markdown table path (default <work_dir>/defenses.md).")
FLAGS = flags.FLAGS


def _cell(accuracy, n):
  """`accuracy ± standard error` in percent (binomial: sqrt(p (1 - p) / n))."""
  return f"{100 * accuracy:.1f} ± {100 * math.sqrt(accuracy * (1 - accuracy) / n):.1f}"


def _row(name, model, numbers, n):
  return (f"| {name} | {model} | {numbers['train_minutes']:.1f} | "
          f"{_cell(numbers['clean'], n)} | {_cell(numbers['pgd20'], n)} | "
          f"{_cell(numbers['autoattack'], n)} |")


def main(argv):
  del argv
  data_config = config_lib.DataConfig(name="fashion_mnist", data_dir=FLAGS.data_dir,
                                      seed=FLAGS.seed).validate()
  data = datasets.load(data_config)
  train_attack = config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=FLAGS.attack_steps)
  pgd20 = config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=20)
  names = list(FLAGS.defenses)
  if "ensemble_at" in names and "none" in names:  # Its static model comes first.
    names.remove("none")
    names.insert(0, "none")
  rows, numbers = [], {}
  for name in names:
    entry = table.get(name)
    model_name = FLAGS.fd_model if entry.wrapper == "denoise" else "small_cnn"
    model_config = config_lib.ModelConfig(name=model_name, width=FLAGS.width).validate()
    none_dir = numbers.get("none", {}).get("model_dir", os.path.join(FLAGS.work_dir, "none"))
    static = (none_dir,) if entry.static_sources else ()
    defense = config_lib.DefenseConfig(name=name, attack=train_attack,
                                       static_model_dirs=static).validate()
    train_config = config_lib.TrainConfig(
        model_dir=os.path.join(FLAGS.work_dir, name), batch_size=FLAGS.batch_size,
        train_steps=FLAGS.train_steps, learning_rate=FLAGS.learning_rate,
        checkpoint_every=FLAGS.train_steps, log_every=max(1, FLAGS.train_steps // 10),
        image_every=0, seed=FLAGS.seed, progress=False).validate()
    version = "rand" if entry.randomized else "standard"
    reused = FLAGS.study_dir and from_study(FLAGS.study_dir, name, data_config, model_config,
                                            train_attack, train_config, version)
    if reused:
      numbers[name] = dict(reused, defense=trainer.to_jsonable(defense))
      rows.append(_row(name + " (study)", model_name, numbers[name], FLAGS.num_examples))
      print(rows[-1], flush=True)
      _write(rows, numbers)
      continue
    start = time.time()
    trained = trainer.train(data, model_config, defense, train_config, data_config)
    seconds = time.time() - start
    autoattack = config_lib.AttackConfig(name="autoattack", eps=FLAGS.eps,
                                         params=(("version", version),))
    result = robustness.evaluate(trained.model, data.test, (pgd20, autoattack),
                                 FLAGS.num_examples, batch_size=250)
    numbers[name] = {"clean": result.clean_accuracy, "pgd20": result.accuracy("pgd20"),
                     "autoattack": result.accuracy(_key(result, "autoattack")),
                     "autoattack_version": version, "model": model_name,
                     "train_minutes": seconds / 60, "train_steps": trained.steps,
                     "model_dir": train_config.model_dir,
                     "defense": trainer.to_jsonable(defense)}
    rows.append(_row(name + (" (EOT)" if entry.randomized else ""), model_name,
                     numbers[name], FLAGS.num_examples))
    logging.info("%s", rows[-1])
    print(rows[-1], flush=True)
    _write(rows, numbers)  # A partial table survives an interrupted run.
  print(_write(rows, numbers))


def _write(rows, numbers):
  """Writes the table of the rows so far (and the numbers as JSON); returns the table."""
  header = [
      f"Fashion-MNIST, small_cnn width {FLAGS.width}, {FLAGS.train_steps} steps of batch "
      f"{FLAGS.batch_size} (Adam {FLAGS.learning_rate:g}, seed {FLAGS.seed}), training "
      f"attack L-inf PGD-{FLAGS.attack_steps} eps = {FLAGS.eps:g}; evaluation on the first "
      f"{FLAGS.num_examples} test images at eps = {FLAGS.eps:g}: PGD-20 (step 2.5 eps / 20, "
      "random start) and AutoAttack (standard; `rand` with EOT for randomized defenses). "
      "Default weights of every defense; ± one standard error. Rows marked (study) were "
      "read from the identical finished cells of `--study_dir`.",
      "",
      "| defense | model | train min | clean % | PGD-20 % | AutoAttack % |",
      "|---|---|---|---|---|---|",
  ]
  text = "\n".join(header + rows) + "\n"
  output = FLAGS.output or os.path.join(FLAGS.work_dir, "defenses.md")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  io_utils.atomic_write(output, text.encode())
  io_utils.atomic_write_json(os.path.splitext(output)[0] + ".json", numbers)
  return text


# TrainConfig fields that do not change the trained weights (where and how often it writes).
_BOOKKEEPING = ("model_dir", "checkpoint_every", "keep_checkpoints", "log_every",
                "image_every", "progress", "steps_per_loop")


def _shaping(train_config):
  return {k: v for k, v in trainer.to_jsonable(train_config).items() if k not in _BOOKKEEPING}


def _record(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def from_study(study_dir, name, data_config, model_config, attack, train_config, version):
  """The benchmark's numbers of `name` from a study's finished cells, or None.

  Only when the study's target model was trained exactly as this benchmark would train it
  (same data, model, training attack, seed and weight-shaping training settings) and its
  white-box evaluation holds PGD-20 and AutoAttack (`version`) on `FLAGS.num_examples`
  examples at `FLAGS.eps`.
  """
  cells = os.path.join(study_dir, "cells")
  train = _record(os.path.join(cells, f"train__{name}__target.json"))
  evaluation = _record(os.path.join(cells, f"eval__{name}__white.json"))
  if not train or not evaluation:
    return None
  config = train["config"]
  study_train = config_lib.TrainConfig(model_dir="x", seed=config["seed"], **config["train"])
  same = (config["data"] == trainer.to_jsonable(data_config)
          and config["model"] == trainer.to_jsonable(model_config)
          and config["training_attack"] == trainer.to_jsonable(attack)
          and _shaping(study_train) == _shaping(train_config))
  report = evaluation["result"]["report"]
  autoattack = "autoattack" + ("_rand" if version == "rand" else "")
  if (not same or report.get("num_examples") != FLAGS.num_examples
      or report.get("eps") != FLAGS.eps or report.get("threat_model") != "white"
      or "pgd20" not in report["attacks"] or autoattack not in report["attacks"]
      or report["attacks"]["pgd20"]["params"].get("steps") != 20):
    return None
  return {"clean": report["clean_accuracy"], "pgd20": report["attacks"]["pgd20"]["accuracy"],
          "autoattack": report["attacks"][autoattack]["accuracy"],
          "autoattack_version": version, "model": model_config.name,
          "train_minutes": train["result"]["train_seconds"] / 60,
          "train_steps": train["result"]["steps"], "from_study": study_dir,
          "model_dir": os.path.join(study_dir, train["result"]["model_dir"])}


def _key(result, prefix):
  """The report name of the one attack whose name starts with `prefix`."""
  return next(name for name in result.attack_correct if name.startswith(prefix))


if __name__ == "__main__":
  app.run(main)
