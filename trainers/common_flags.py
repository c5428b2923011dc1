"""absl flags shared by the CLIs, and their conversion to tfadv configs.

Flags are defined by functions (not at import time) so each binary defines only what it
uses; `*_config_from_flags` turn parsed flags into validated configs.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.defenses import recipes
from tfadv.evaluation import specs
from tfadv.models import zoo

FLAGS = flags.FLAGS


def define_data_flags():
  flags.DEFINE_string("dataset", "fashion_mnist",
                      "fashion_mnist (built-in), digits, folder (an image folder in "
                      "--data_dir) or a tfds image-classification name.")
  flags.DEFINE_string("data_dir", None, "Image folder (--dataset=folder), idx files of "
                      "fashion_mnist, or a tfds data_dir.")
  flags.DEFINE_list("image_size", None, "Resize images to HEIGHT,WIDTH.")
  flags.DEFINE_float("validation_fraction", 0.2,
                     "Test fraction per class of an image folder without train/ and test/.")


def define_eval_flags(eps_default="0.1"):
  flags.DEFINE_list("eval_eps", [eps_default],
                    "Epsilons of the evaluation attacks (L-inf, pixel units of [0, 1]).")
  flags.DEFINE_string("attacks", "fgsm,pgd:steps=20",
                      "Evaluation attacks, comma-separated, each with ':key=value' options "
                      "(pgd: steps, step_size, restarts, random_start, norm, eps; other "
                      "attacks: eps, norm and their own options, e.g. cw_linf:steps=100, "
                      "mim:decay=0.9, spsa:steps=100). Attacks: fgsm, pgd, bim, mim, "
                      "cw_linf, cw_l2, stepll, iter_stepll, spsa, ... A value may list "
                      "alternatives with '|': pgd:steps=10|20|50 is three PGD attacks.")
  flags.DEFINE_integer("num_examples", None, "Test examples to evaluate (default: all).")
  flags.DEFINE_integer("eval_batch_size", 256, "Evaluation batch size.")


def define_model_flags():
  flags.DEFINE_enum("model", "small_cnn", list(zoo.MODEL_NAMES), "Architecture.")
  flags.DEFINE_enum("weights", None, ["imagenet"],
                    "Pretrained weights for resnet50/101/152 (needs the weights file).")
  flags.DEFINE_integer("width", 32, "Base width of small_cnn / resnet18.")


def define_train_flags():
  flags.DEFINE_enum("defense", "at_alp", list(recipes.DEFENSES), "Defense recipe.")
  flags.DEFINE_float("eps", 0.1, "Training attack radius (L-inf, pixel units of [0, 1]).")
  flags.DEFINE_integer("attack_steps", 10, "PGD steps of the training attack.")
  flags.DEFINE_float("attack_step_size", None, "PGD step size (default 2.5 * eps / steps).")
  flags.DEFINE_float("alp_weight", 0.5, "alpha: weight of adversarial logit pairing.")
  flags.DEFINE_float("at_weight", 1.0, "beta: weight of attention-map pairing.")
  flags.DEFINE_list("at_taps", ["0", "1", "2", "3"], "Stages (0..3) whose attention is paired.")
  flags.DEFINE_float("adv_ce_fraction", None,
                     "Adversarial share f of (1-f)·CE(clean) + f·CE(adv) (default per defense).")
  flags.DEFINE_float("rectification_weight", 0.01,
                     "AAD alpha: weight of the Grad-CAM attention rectification L_r.")
  flags.DEFINE_float("preservation_weight", 0.01,
                     "AAD beta: weight of the Grad-CAM attention preservation L_p.")
  flags.DEFINE_float("kappa", None, "AAD attention threshold in [0, 1] on the max-scaled "
                     "Grad-CAM map (default: each image's mean).")
  flags.DEFINE_float("trades_beta", 6.0, "TRADES beta: weight of KL(f(x) || f(x_adv)).")
  flags.DEFINE_integer("batch_size", 128, "Global batch size.")
  flags.DEFINE_integer("epochs", 1, "Epochs (ignored when --train_steps is set).")
  flags.DEFINE_integer("train_steps", None, "Total optimizer steps.")
  flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Optimizer.")
  flags.DEFINE_float("learning_rate", 1e-3, "Initial learning rate.")
  flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine", "piecewise"],
                    "Learning-rate schedule.")
  flags.DEFINE_float("weight_decay", 0.0, "Decoupled weight decay.")
  flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and report.json.")
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                    "Distribution strategy.")
  flags.DEFINE_integer("num_cpu_devices", 0,
                       "With --strategy=mirrored and no GPU: split the CPU into this many "
                       "devices.")
  flags.DEFINE_integer("checkpoint_every", 200, "Steps between checkpoints.")
  flags.DEFINE_integer("log_every", 50, "Steps between TensorBoard summaries.")
  flags.DEFINE_integer("image_every", 500, "Steps between TensorBoard Grad-CAM panels "
                       "(clean vs adversarial test images); 0 disables them.")
  flags.DEFINE_bool("jit", False, "Compile the attack with XLA (slower on CPU).")
  flags.DEFINE_integer("seed", 0, "Random seed.")
  flags.DEFINE_bool("progress", True, "Show progress bars.")


def _image_size():
  if not FLAGS.image_size:
    return None
  try:
    size = tuple(int(v) for v in FLAGS.image_size)
  except ValueError:
    size = ()
  if len(size) != 2:
    raise ValueError("Invalid image_size: expected HEIGHT,WIDTH as two integers; received "
                     f"image_size={','.join(FLAGS.image_size)!r}")
  return size


def data_config_from_flags():
  return config_lib.DataConfig(
      name=FLAGS.dataset, data_dir=FLAGS.data_dir, image_size=_image_size(),
      validation_fraction=FLAGS.validation_fraction, seed=getattr(FLAGS, "seed", 0)).validate()


def model_config_from_flags():
  return config_lib.ModelConfig(name=FLAGS.model, weights=FLAGS.weights,
                                width=FLAGS.width).validate()


def _floats(values, flag):
  try:
    return [float(v) for v in values]
  except ValueError:
    raise ValueError(f"Invalid {flag}: expected numbers; received {','.join(values)!r}") from None


def eval_config_from_flags(eps=None, extra_attacks=None, **fields):
  """The EvalConfig of the eval flags; `eps` (strings) overrides --eval_eps,
  `extra_attacks` (an attack-list string) is appended to --attacks, `fields` add
  EvalConfig fields (threat_model, source_model_dir, ...)."""
  flag = "eps" if eps else "eval_eps"
  eps = _floats(eps or FLAGS.eval_eps, flag)
  text = ",".join(t for t in (FLAGS.attacks, extra_attacks) if t)
  return registry.validate(config_lib.EvalConfig(
      attacks=specs.parse_attacks(text, eps), num_examples=FLAGS.num_examples,
      batch_size=FLAGS.eval_batch_size, **fields))


def defense_config_from_flags():
  try:
    taps = tuple(int(t) for t in FLAGS.at_taps)
  except ValueError:
    raise ValueError("Invalid at_taps: expected integers in 0..3; received "
                     f"{','.join(FLAGS.at_taps)!r}") from None
  attack = config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=FLAGS.attack_steps,
                                   step_size=FLAGS.attack_step_size)
  defense = config_lib.DefenseConfig(name=FLAGS.defense, attack=attack,
                                     alp_weight=FLAGS.alp_weight, at_weight=FLAGS.at_weight,
                                     taps=taps, adv_ce_fraction=FLAGS.adv_ce_fraction,
                                     rectification_weight=FLAGS.rectification_weight,
                                     preservation_weight=FLAGS.preservation_weight,
                                     kappa=FLAGS.kappa, trades_beta=FLAGS.trades_beta)
  return registry.validate(defense)


def train_config_from_flags():
  if not FLAGS.model_dir:
    raise ValueError("Invalid model_dir: expected a directory path (--model_dir); "
                     "received none")
  return config_lib.TrainConfig(
      model_dir=FLAGS.model_dir, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
      train_steps=FLAGS.train_steps, optimizer=FLAGS.optimizer,
      learning_rate=FLAGS.learning_rate, schedule=FLAGS.lr_schedule,
      weight_decay=FLAGS.weight_decay, strategy=FLAGS.strategy,
      num_cpu_devices=FLAGS.num_cpu_devices, checkpoint_every=FLAGS.checkpoint_every,
      log_every=FLAGS.log_every, image_every=FLAGS.image_every, jit=FLAGS.jit, seed=FLAGS.seed,
      progress=FLAGS.progress).validate()


# Errors a user can fix (bad flags, bad data, bad model files): one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def run_main(main):
  """`app.run(main)`, reporting user errors as one clear line and exit status 2."""

  def wrapped(argv):
    try:
      return main(argv)
    except USER_ERRORS as e:
      logging.debug("User error", exc_info=True)
      sys.stderr.write(f"Error: {e}\n")
      sys.exit(2)

  app.run(wrapped)
