r"""tfadv-evaluate: accuracy of a trained model, clean and under attack.

  tfadv-evaluate --model_dir=/tmp/fmnist_at_alp --attacks=fgsm,pgd:steps=20,pgd:steps=100 \
      --eval_eps=0.1 --num_examples=2000

Writes report.json and report.md into --output_dir (default: --model_dir).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top

from trainers import common_flags

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "A directory written by tfadv-train.")
  flags.DEFINE_string("output_dir", None, "Where the report goes (default: --model_dir).")
  flags.DEFINE_string("data_dir", None, "Override the dataset's recorded data_dir.")
  flags.DEFINE_bool("progress", True, "Show a progress bar.")
  common_flags.define_eval_flags()


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if not FLAGS.model_dir:
    raise ValueError("Invalid model_dir: expected a directory written by tfadv-train "
                     "(--model_dir); received none")
  eval_config = common_flags.eval_config_from_flags()
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  data_config = None
  if FLAGS.data_dir:
    data_config = dataclasses.replace(workflow.load_trained(FLAGS.model_dir).data_config,
                                      data_dir=FLAGS.data_dir)
  output = FLAGS.output_dir or FLAGS.model_dir
  workflow.evaluate_model_dir(FLAGS.model_dir, eval_config, output, data_config,
                              progress=FLAGS.progress)
  print(open(os.path.join(output, "report.md")).read())


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
