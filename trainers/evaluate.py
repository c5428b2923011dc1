r"""tfadv-evaluate: accuracy of a trained model, clean and under attack.

Without --eps the attacks run at the run's training eps, in its training norm.

  tfadv-evaluate --model_dir=/tmp/fmnist_at_alp --attacks=fgsm,pgd:steps=20,pgd:steps=100 \
      --eps=0.05,0.1 --num_examples=2000
  # Accuracy vs PGD iterations (the AT+ALP paper's Figure 3): accuracy_vs_steps.png.
  tfadv-evaluate --model_dir=/tmp/fmnist_at_alp --attacks=fgsm --pgd_curve=10,20,50,100,200
  # The same written in --attacks ('|' separates alternative values of any option):
  tfadv-evaluate --model_dir=/tmp/fmnist_at_alp --attacks=fgsm,pgd:steps=10|20|50|100|200
  # Batches split across 2 replicas (virtual CPU devices here; GPUs when present):
  tfadv-evaluate --model_dir=/tmp/fmnist_at_alp --strategy=mirrored --num_cpu_devices=2
  # A model trained elsewhere (a .keras/.h5 file or a SavedModel directory), no model_dir:
  tfadv-evaluate --model=my_model.keras --dataset=fashion_mnist --image_size=32,32 \
      --attacks=pgd:steps=20,autoattack --eval_eps=0.1 --output_dir=/tmp/my_model_report
  # Gray box: attack another run of the same architecture and defense, test the transfer.
  tfadv-evaluate --model_dir=/tmp/fmnist_at_alp --threat_model=gray \
      --source_model_dir=/tmp/fmnist_at_alp_seed1 --output_dir=/tmp/gray

Writes report.json, report.md, PNG plots (accuracy vs iterations / vs eps when the attack
list has several) and report.partial.json (finished attacks: an interrupted evaluation run
again with the same flags resumes without recomputing them) into --output_dir (default:
--model_dir).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainers import console  # pylint: disable=unused-import  # First: quiet TF import.

from absl import flags  # pylint: disable=g-import-not-at-top

from trainers import common_flags

FLAGS = flags.FLAGS


def define_flags():
  common_flags.flag_group("Run")
  flags.DEFINE_string("model_dir", None, "A directory written by tfadv-train (or use --model).")
  flags.DEFINE_string("output_dir", None, "Where the report goes (default: --model_dir).")
  flags.DEFINE_string("data_dir", None, "Override the dataset's recorded data_dir.")
  flags.DEFINE_bool("progress", True, "Show a progress bar.")
  flags.DEFINE_bool("resume", True, "Reuse finished attacks of an interrupted evaluation.")
  common_flags.flag_group("Your own model (instead of --model_dir)")
  common_flags.define_model_flags(default=None, zoo_options=False)
  flags.DEFINE_string("dataset", "fashion_mnist", "With --model: the dataset whose test split "
                      "is evaluated (as tfadv-train's --dataset).")
  flags.DEFINE_list("image_size", None, "With --model: resize the images to HEIGHT,WIDTH.")
  common_flags.define_eval_flags()
  flags.DEFINE_list("eps", None, "Epsilons of the attacks (same as --eval_eps; fractions "
                    "such as 8/255 work; default: the run's training eps, in its norm).")
  flags.DEFINE_enum("threat_model", "white", ["white", "gray", "black"],
                    "white: attack the model; gray: attack --source_model_dir (same "
                    "architecture and defense, another seed) and transfer; black: attack a "
                    "different surrogate architecture (--source_model_dir) and transfer.")
  flags.DEFINE_string("source_model_dir", None,
                      "The surrogate's model directory (gray and black box).")
  flags.DEFINE_bool("unbounded_check", False,
                    "Also run PGD-10 at eps=1, which must reach ~0% (gradient-masking check).")
  flags.DEFINE_list("pgd_curve", None,
                    "PGD iteration counts, e.g. 10,20,50,100,200: adds one PGD attack per "
                    "count (at every --eps) to --attacks and plots accuracy vs iterations "
                    "(accuracy_vs_steps.png, as the AT+ALP paper's Figure 3). Same as "
                    "appending pgd:steps=10|20|50|100|200 to --attacks.")
  common_flags.flag_group("Distribution")
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                    "default: one device; mirrored: each batch (--eval_batch_size, global) "
                    "is split across all local GPUs, or without GPUs across the CPU split "
                    "into --num_cpu_devices; the counts are summed.")
  flags.DEFINE_integer("num_cpu_devices", 0,
                       "With --strategy=mirrored and no GPU: split the CPU into this many "
                       "devices (0: keep the current layout).")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if bool(FLAGS.model_dir) == bool(FLAGS.model):
    raise ValueError("Invalid model_dir: expected a directory written by tfadv-train "
                     "(--model_dir) or a model file (--model=PATH), not both; received "
                     + ("both" if FLAGS.model else "neither"))
  if FLAGS.model and not FLAGS.output_dir:
    raise ValueError("Invalid output_dir: expected a directory for the report with --model "
                     "(--output_dir); received none")
  if FLAGS.eps and FLAGS["eval_eps"].present and FLAGS.eps != FLAGS.eval_eps:
    raise ValueError(f"Invalid eps: --eps and --eval_eps name the same list; received "
                     f"--eps={','.join(FLAGS.eps)} and --eval_eps={','.join(FLAGS.eval_eps)}")
  from tfadv.evaluation import specs  # pylint: disable=g-import-not-at-top
  curve = specs.steps_curve(FLAGS.pgd_curve) if FLAGS.pgd_curve else None
  eval_config = common_flags.eval_config_from_flags(
      FLAGS.eps, extra_attacks=curve,
      training_attack=common_flags.training_attack_of(FLAGS.model_dir),
      threat_model=FLAGS.threat_model,
      source_model_dir=FLAGS.source_model_dir, unbounded_check=FLAGS.unbounded_check)
  if FLAGS.num_cpu_devices < 0:
    raise ValueError(f"Invalid num_cpu_devices: expected a non-negative integer; received "
                     f"num_cpu_devices={FLAGS.num_cpu_devices}")
  from tfadv.training import strategy as strategy_lib  # pylint: disable=g-import-not-at-top
  # Before TensorFlow builds anything (the CPU split must precede device initialisation).
  strategy = strategy_lib.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices)
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  if FLAGS.model:
    model_config = common_flags.model_config_from_flags()
    if model_config.path is None:
      raise ValueError(f"Invalid model: expected a model file or SavedModel directory with "
                       f"tfadv-evaluate (zoo models are evaluated from their --model_dir); "
                       f"received model={FLAGS.model!r}")
    from tfadv import config as config_lib  # pylint: disable=g-import-not-at-top
    data_config = config_lib.DataConfig(
        name=FLAGS.dataset, data_dir=FLAGS.data_dir,
        image_size=common_flags.image_size_from_flags())
    workflow.evaluate_model_file(model_config, data_config, eval_config, FLAGS.output_dir,
                                 progress=FLAGS.progress, resume=FLAGS.resume,
                                 strategy=strategy)
    print(open(os.path.join(FLAGS.output_dir, "report.md")).read())
    return
  data_config = None
  if FLAGS.data_dir:
    data_config = dataclasses.replace(workflow.load_trained(FLAGS.model_dir).data_config,
                                      data_dir=FLAGS.data_dir)
  output = FLAGS.output_dir or FLAGS.model_dir
  workflow.evaluate_model_dir(FLAGS.model_dir, eval_config, output, data_config,
                              progress=FLAGS.progress, resume=FLAGS.resume,
                              strategy=strategy)
  print(open(os.path.join(output, "report.md")).read())


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
