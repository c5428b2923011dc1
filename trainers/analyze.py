r"""tfadv-analyze: where a trained model looks, clean vs under attack, and its loss landscape.

  tfadv-analyze --model_dir=runs/fmnist_at_alp --eps=0.1 --num_examples=256

Writes analysis.json (attention-map IoU per stage and of Grad-CAM between clean and PGD
images, share of activation inside the clean Grad-CAM key region, the loss surface),
attention_stages.png and loss_landscape.png into --output_dir (default: <model_dir>/analysis).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainers import console  # pylint: disable=unused-import  # First: quiet TF import.

from absl import flags  # pylint: disable=g-import-not-at-top

from trainers import common_flags

FLAGS = flags.FLAGS


def define_flags():
  common_flags.flag_group("Run")
  flags.DEFINE_string("model_dir", None, "A directory written by tfadv-train.")
  flags.DEFINE_string("output_dir", None, "Where the files go (default: <model_dir>/analysis).")
  common_flags.flag_group("Analysis")
  flags.DEFINE_integer("num_examples", 256, "Test examples for the attention statistics.")
  common_flags.define_number("eps", None, "L-inf radius of the PGD attack analysed (a "
                             "fraction such as 8/255 works; default: the run's training eps, "
                             "0.1 for a run without a training attack).")
  flags.DEFINE_integer("attack_steps", 20, "PGD iterations.")
  flags.DEFINE_float("fraction", 0.2, "Share of most attended pixels compared by the IoUs.")
  common_flags.define_number("radius", None, "Loss-landscape half width (default: 2 * eps).")
  flags.DEFINE_integer("points", 11, "Loss-landscape grid points per axis (odd).")
  flags.DEFINE_integer("landscape_examples", 64, "Examples averaged in the landscape.")
  flags.DEFINE_integer("seed", 0, "Seed of the attack and of the random direction.")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if not FLAGS.model_dir:
    raise ValueError("Invalid model_dir: expected a directory written by tfadv-train "
                     "(--model_dir); received none")
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  from tfadv.analysis import analyze  # pylint: disable=g-import-not-at-top
  loaded = workflow.load_trained(FLAGS.model_dir)
  eps = FLAGS.eps
  if eps is None:
    training = common_flags.training_attack_of(FLAGS.model_dir)
    eps = training.eps if training is not None and training.eps else 0.1
    print(f"eps = {eps:g} (the run's training eps; --eps sets another)")
  output = FLAGS.output_dir or os.path.join(FLAGS.model_dir, "analysis")
  result = analyze.analyze(loaded, output, FLAGS.num_examples, eps, FLAGS.attack_steps,
                           FLAGS.fraction, FLAGS.radius, FLAGS.points,
                           FLAGS.landscape_examples, seed=FLAGS.seed)
  print(f"clean accuracy {result['clean_accuracy']:.3f}, PGD-{FLAGS.attack_steps} accuracy "
        f"{result['adv_accuracy']:.3f} on {result['num_examples']} examples")
  for key, value in result["attention"].items():
    print(f"{key}: {value['mean']:.3f}")
  print(f"Wrote {os.path.join(output, analyze.ANALYSIS_FILE)} and {', '.join(result['plots'])}")


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
