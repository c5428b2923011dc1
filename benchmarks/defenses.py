r"""Defenses side by side: same model, data and budget; clean / PGD-20 / PGD-100 accuracy.

Trains each defense with the library (`tfadv.training.trainer.train`) on Fashion-MNIST with
the same model, training attack (L-inf PGD, eps = 0.1), optimizer, steps and seed, then
evaluates every model on the same test examples, clean and under L-inf PGD-20 and PGD-100
(eps = 0.1, step 2.5 * eps / steps, random start), and writes a Markdown table (and the
numbers as JSON). Not a test: a measurement whose outcome is reported as it comes.

  python benchmarks/defenses.py --train_steps=600 --batch_size=64 --width=16 \
      --attack_steps=7 --num_examples=1000 --output=/tmp/tfadv_defenses.md
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.evaluation import robustness
from tfadv.training import trainer

flags.DEFINE_list("defenses", ["pat", "aad", "alp", "alp_aad", "trades", "at_alp", "at_alp_aad"],
                  "Defenses to train and compare.")
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
flags.DEFINE_string("output", None, "Markdown table path (default <work_dir>/defenses.md).")
FLAGS = flags.FLAGS


def _row(name, result, seconds, steps):
  return (f"| {name} | {steps} | {seconds / 60:.1f} | {100 * result.clean_accuracy:.1f} | "
          f"{100 * result.accuracy('pgd20'):.1f} | {100 * result.accuracy('pgd100'):.1f} |")


def main(argv):
  del argv
  data_config = config_lib.DataConfig(name="fashion_mnist", data_dir=FLAGS.data_dir,
                                      seed=FLAGS.seed).validate()
  data = datasets.load(data_config)
  model_config = config_lib.ModelConfig(name="small_cnn", width=FLAGS.width).validate()
  train_attack = config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=FLAGS.attack_steps)
  eval_attacks = (config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=20),
                  config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=100))
  rows, numbers = [], {}
  for name in FLAGS.defenses:
    defense = config_lib.DefenseConfig(name=name, attack=train_attack).validate()
    train_config = config_lib.TrainConfig(
        model_dir=os.path.join(FLAGS.work_dir, name), batch_size=FLAGS.batch_size,
        train_steps=FLAGS.train_steps, learning_rate=FLAGS.learning_rate,
        checkpoint_every=FLAGS.train_steps, log_every=max(1, FLAGS.train_steps // 10),
        image_every=0, seed=FLAGS.seed, progress=False).validate()
    start = time.time()
    trained = trainer.train(data, model_config, defense, train_config, data_config)
    seconds = time.time() - start
    result = robustness.evaluate(trained.model, data.test, eval_attacks, FLAGS.num_examples,
                                 batch_size=250)
    rows.append(_row(name, result, seconds, trained.steps))
    numbers[name] = {"clean": result.clean_accuracy, "pgd20": result.accuracy("pgd20"),
                     "pgd100": result.accuracy("pgd100"), "train_minutes": seconds / 60,
                     "train_steps": trained.steps, "defense": trainer.to_jsonable(defense)}
    logging.info("%s", rows[-1])
    print(rows[-1], flush=True)
  header = [
      f"Fashion-MNIST, small_cnn width {FLAGS.width}, {FLAGS.train_steps} steps of batch "
      f"{FLAGS.batch_size} (Adam {FLAGS.learning_rate:g}, seed {FLAGS.seed}), training "
      f"attack L-inf PGD-{FLAGS.attack_steps} eps = {FLAGS.eps:g}; evaluation on the first "
      f"{FLAGS.num_examples} test images, L-inf PGD eps = {FLAGS.eps:g} "
      "(step 2.5 eps / steps, random start). Default weights of every defense.",
      "",
      "| defense | steps | train min | clean % | PGD-20 % | PGD-100 % |",
      "|---|---|---|---|---|---|",
  ]
  table = "\n".join(header + rows) + "\n"
  output = FLAGS.output or os.path.join(FLAGS.work_dir, "defenses.md")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as f:
    f.write(table)
  with open(os.path.splitext(output)[0] + ".json", "w") as f:
    json.dump(numbers, f, indent=2)
  print(table)


if __name__ == "__main__":
  app.run(main)
