r"""tfadv-train: train a hardened classifier, evaluate it under attack, optionally export it.

  tfadv-train --dataset=fashion_mnist --defense=at_alp --eps=0.1 --epochs=2 \
      --model_dir=/tmp/fmnist_at_alp --export_dir=/tmp/models/fmnist
  # A published recipe (flags in a file; eps written as the paper writes it, 8/255):
  tfadv-train --flagfile=recipes/madry_pgd10_resnet18_cifar10.flags --model_dir=/tmp/pgd10

A restarted run with the same --model_dir resumes from its last checkpoint. The robustness
report is written to <model_dir>/report.json and report.md; TensorBoard logs to
<model_dir>/train.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainers import console  # pylint: disable=unused-import  # First: quiet TF import.

from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging

from trainers import common_flags
from trainers import export as export_cli
from tfadv.training import strategy as strategy_lib

FLAGS = flags.FLAGS


def define_flags():
  common_flags.define_data_flags()
  common_flags.flag_group("Model")
  common_flags.define_model_flags()
  common_flags.define_train_flags()
  common_flags.define_eval_flags()
  common_flags.flag_group("Export")
  flags.DEFINE_string("export_dir", None,
                      "Export the trained model as the next version of "
                      "<export_dir>/<model_name>/ (see serving/README.md).")
  export_cli.define_export_flags(with_export_dir=False)


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  data_config = common_flags.data_config_from_flags()
  model_config = common_flags.model_config_from_flags()
  defense_config = common_flags.defense_config_from_flags()
  train_config = common_flags.train_config_from_flags()
  if os.path.exists(train_config.model_dir) and not os.path.isdir(train_config.model_dir):
    raise NotADirectoryError(f"Invalid model_dir: expected a directory (checkpoints, logs and "
                             f"report go there); {train_config.model_dir!r} is a file")
  # Without --eval_eps the evaluation runs at the training eps, in the training norm.
  eval_config = common_flags.eval_config_from_flags(training_attack=defense_config.attack)
  if FLAGS.export_dir and FLAGS.model_name:  # Fail before training, not after.
    from serving import export as export_lib  # pylint: disable=g-import-not-at-top
    export_lib.check_model_name(FLAGS.model_name)
  if FLAGS.strategy == "mirrored" and FLAGS.num_cpu_devices:
    strategy_lib.split_cpu(FLAGS.num_cpu_devices)  # Before TensorFlow builds anything.

  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  result, report = workflow.train_and_evaluate(data_config, model_config, defense_config,
                                               train_config, eval_config)
  if report is None:
    return
  print(open(os.path.join(train_config.model_dir, "report.md")).read())
  if FLAGS.export_dir:
    from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
    run_config = trainer.read_run_config(train_config.model_dir)
    export_cli.export_from_flags(result.model, run_config, report, tapped=result.tapped)
  logging.debug("Report: %s", json.dumps(report))


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
