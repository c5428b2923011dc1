"""absl flags shared by the CLIs, and their conversion to tfadv configs.

Flags are defined by functions (not at import time) so each binary defines only what it
uses; `*_config_from_flags` turn parsed flags into validated configs.
"""

import re
import sys

from absl import app
from absl import flags
from absl import logging

from tfadv import config as config_lib
from tfadv.attacks import eps_draws
from tfadv.attacks import registry
from tfadv.defenses import recipes
from tfadv.defenses import table
from tfadv.evaluation import specs
from tfadv.losses import registry as terms_lib
from tfadv.models import zoo

FLAGS = flags.FLAGS


# --- --help: each command's own flags, grouped as the README groups them -------------------

_GROUPS = {}  # title -> names of the flags defined under it, in definition order
_OPEN = {"title": None, "before": frozenset()}
_HIDDEN = set()  # Deprecated names: accepted, not advertised.


def _defined():
  return list(dict.fromkeys(FLAGS[name].name for name in FLAGS))


def _close_group():
  title = _OPEN["title"]
  if title is not None:
    names = _GROUPS.setdefault(title, [])
    names += [n for n in _defined() if n not in _OPEN["before"] and n not in names]
  _OPEN.update(title=None, before=frozenset(_defined()))


def flag_group(title):
  """Flags defined from here to the next `flag_group` call are listed under `title`."""
  _close_group()
  _OPEN.update(title=title, before=frozenset(_defined()))


def groups():
  """{title: [flag names]} of the flags defined so far under `flag_group` titles."""
  _close_group()
  return {t: [n for n in names if n in FLAGS and n not in _HIDDEN]
          for t, names in _GROUPS.items()}


def _flag_help(flag):
  text = f"--{'[no]' if flag.boolean else ''}{flag.name}: {flag.help}"
  lines = [flags.text_wrap(text, indent="      ", firstline_indent="  ")]
  if flag.default_as_str:
    lines.append(flags.text_wrap(f"(default: {flag.default_as_str})", indent="      "))
  if flag.parser.syntactic_help:
    lines.append(flags.text_wrap(f"({flag.parser.syntactic_help})", indent="      "))
  return "\n".join(lines)


def help_text(doc):
  """`--help`: the command's docstring, then its flags group by group."""
  out = [(doc or "").strip(), ""]
  for title, names in groups().items():
    if names:
      out += [f"{title}:", *(_flag_help(FLAGS[n]) for n in names), ""]
  out.append(flags.text_wrap("absl's own flags (--flagfile=FILE reads flags from a file, "
                             "one per line; --verbosity; ...): --helpfull."))
  return "\n".join(out) + "\n"


# --- numbers written as the papers write them --------------------------------------------


class _NumberParser(flags.FloatParser):
  """A float flag that also takes fractions: --eps=8/255 is 8/255, not 8."""

  syntactic_help = "a number or a fraction such as 8/255"

  def __init__(self, lower_bound=None):
    super().__init__(lower_bound=lower_bound)
    self.syntactic_help = _NumberParser.syntactic_help + (
        f" >= {lower_bound}" if lower_bound is not None else "")

  def convert(self, argument):
    if isinstance(argument, str):
      try:
        return config_lib.parse_number(argument, "value")
      except ValueError:
        raise ValueError(f"expected a number or a fraction such as 8/255; received "
                         f"{argument!r}") from None
    return super().convert(argument)


def define_number(name, default, help_text_, lower_bound=None):
  """A float flag that accepts fractions (`--eps=8/255`), in flagfiles too."""
  flags.DEFINE(_NumberParser(lower_bound), name, default, help_text_,
               serializer=flags.ArgumentSerializer())


def numbers(values, flag):
  """A list flag's strings as floats; each may be a fraction (`8/255,16/255`)."""
  try:
    return [config_lib.parse_number(v, flag) for v in values]
  except ValueError:
    raise ValueError(f"Invalid {flag}: expected numbers or fractions such as 8/255; received "
                     f"{','.join(values)!r}") from None


# --- help texts generated from the registries they describe -------------------------------


_ATTACK_FIELDS = ("steps", "step_size", "restarts", "random_start")


def attacks_help():
  """`--attacks` help: every registered attack with its norms and options."""
  items = []
  for spec in registry.SPECS:
    if spec.training_only:
      continue
    options = registry.parameters(spec.name)
    if spec.fields:  # Set through AttackConfig's own fields (pgd's steps, step_size, ...).
      options = [o for o in options if o in _ATTACK_FIELDS]
    options = ", ".join(options)
    norms = "" if spec.norms == ("linf", "l2") else f" ({'/'.join(spec.norms)} only)"
    items.append(f"{spec.name}{norms}" + (f" [{options}]" if options else ""))
  return ("Evaluation attacks, comma-separated, each with ':key=value' options (every attack "
          f"takes eps, norm and {', '.join(registry.EVAL_OPTIONS)}, e.g. "
          "autoattack:num_examples=1000 runs on the first 1,000 test examples; eps and step "
          "sizes may be fractions: pgd:eps=8/255:step_size=2/255). A value may list alternatives with '|': pgd:steps=10|20|50 is "
          "three PGD attacks. Attacks [options]: " + "; ".join(items) + ".")


def wrapper_options_help():
  """`--wrapper_options` help: each defense's wrapper and its options with defaults."""
  from tfadv.defenses import models  # pylint: disable=g-import-not-at-top
  items = []
  for defense in table.DEFENSES.values():
    if defense.wrapper:
      options = ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}"
                          for k, v in models.wrapper_options(defense.wrapper).items())
      items.append(f"{defense.name}: {options}")
  return ("Options of the defense's model wrapper as key=value, comma-separated. Defenses with "
          "a wrapper, their options and defaults: " + "; ".join(items) + ".")


def terms_help():
  """`--terms` help: every registered loss term with its options."""
  items = []
  for term in terms_lib.TERMS.values():
    options = "/".join(o.name for o in term.options)
    items.append(term.name + (f" [{options}]" if options else ""))
  return ("Set or add weighted loss terms: name:weight[:key=value...], comma-separated, e.g. "
          "alp:0.5,at:1.0:taps=2/3,igr:0.1 (weight 0 drops a term). Terms [options]: "
          + ", ".join(items) + ".")


def define_data_flags():
  flag_group("Data")
  flags.DEFINE_string("dataset", "fashion_mnist",
                      "fashion_mnist (built-in), digits, folder (an image folder in "
                      "--data_dir) or a tfds image-classification name.")
  flags.DEFINE_string("data_dir", None, "Image folder (--dataset=folder), idx files of "
                      "fashion_mnist, or a tfds data_dir.")
  flags.DEFINE_list("image_size", None, "Resize images to HEIGHT,WIDTH.")
  define_number("test_fraction", 0.2,
                "Share of each class held out for testing when the data has no test split "
                "(an image folder without train/ and test/, digits).")
  define_number("validation_fraction", None, "Deprecated name of --test_fraction.")
  _HIDDEN.add("validation_fraction")


def define_eval_flags():
  flag_group("Evaluation")
  flags.DEFINE_list("eval_eps", None,
                    "Epsilons of the evaluation attacks (pixel units of [0, 1]; fractions "
                    "such as 8/255 work), in the training norm (default: the training eps).")
  flags.DEFINE_string("attacks", "fgsm,pgd:steps=20,autoattack:num_examples=1000",
                      attacks_help())
  flags.DEFINE_integer("num_examples", None, "Test examples to evaluate (default: all).")
  flags.DEFINE_integer("eval_batch_size", 256, "Evaluation batch size.")


def define_model_flags(default="small_cnn", zoo_options=True):
  """The model source flags: a zoo name or a user's file, and how to read a user's model."""
  flags.DEFINE_string("model", default,
                      f"A zoo architecture [{', '.join(zoo.MODEL_NAMES)}], or your own model: "
                      "a .keras/.h5 file or a SavedModel directory (nested keras.applications "
                      "backbones, a final softmax and 0..255 inputs are handled; see "
                      "docs/own_model.md).")
  if zoo_options:
    flags.DEFINE_enum("weights", None, ["imagenet"],
                      "Pretrained weights for resnet50/101/152 (needs the weights file).")
    flags.DEFINE_integer("width", 32, "Base width of small_cnn / resnet18.")
  flags.DEFINE_list("taps", None, "Your model: layers whose attention AT pairs, shallow to "
                    "deep (default: the last layer at each of the deepest four resolutions).")
  flags.DEFINE_string("gradcam_layer", None, "Your model: the layer Grad-CAM reads (default: "
                      "the last tap, the last 4-D feature map before pooling).")
  flags.DEFINE_enum("input_range", "auto", ["auto", "0,1", "0,255", "-1,1"],
                    "Your model: the pixel range it expects (auto: 0,255 when it starts with "
                    "a Rescaling(1/255) layer, else 0,1). Attacks keep eps in [0, 1] units of "
                    "the data either way.")
  flags.DEFINE_float("bn_momentum", None, "Your model: set the momentum of its "
                     "BatchNormalization layers (e.g. 0.9; keras.applications use 0.999, "
                     "whose moving statistics lag for thousands of steps).")
  flags.DEFINE_bool("unsafe_load", False, "Your model: load it with Keras safe_mode=False "
                    "(allows Lambda layers, i.e. arbitrary code in the file: trusted files "
                    "only).")


def define_train_flags():
  flag_group("Defense")
  flags.DEFINE_enum("defense", "at_alp", list(table.NAMES),
                    "Defense (tfadv/defenses/table.py): its training attack, loss terms and "
                    "model wrapper.")
  define_number("eps", 0.1, "Training attack radius in pixel units of [0, 1] (a fraction "
                "such as 8/255 works); evaluation follows it unless --eval_eps is set.")
  flags.DEFINE_enum("norm", "linf", ["linf", "l2"],
                    "Norm of the training attack's ball (and, by default, of the evaluation "
                    "attacks): " + norms_help())
  flags.DEFINE_enum("eps_draw", None, list(eps_draws.NAMES),
                    "How the training attack's eps is drawn each step, --eps the upper end "
                    "(default: the defense's own; stepll_at and adp_at draw as their papers): "
                    + "; ".join(f"{d.name}: {d.doc}" for d in eps_draws.DRAWS.values()) + ".")
  flags.DEFINE_integer("attack_steps", 10, "PGD steps of the training attack.")
  define_number("attack_step_size", None, "PGD step size (default 2.5 * eps / steps; a "
                "fraction such as 2/255 works).")
  # Weights of the defenses' own terms (None: the defense's default); a flag for a term the
  # defense does not have is an error (add terms with --terms).
  flags.DEFINE_float("alp_weight", None, "alpha: weight of adversarial logit pairing "
                     "(alp, at_alp, alp_aad, at_alp_aad; default 0.5).")
  flags.DEFINE_float("at_weight", None, "beta: weight of attention-map pairing "
                     "(at, at_alp, at_alp_aad; default 1.0).")
  flags.DEFINE_list("at_taps", None, "Stages (0..3) whose attention is paired (default all).")
  flags.DEFINE_float("adv_ce_fraction", None,
                     "Adversarial share f of (1-f)·CE(clean) + f·CE(adv) (default per defense).")
  flags.DEFINE_float("rectification_weight", None,
                     "AAD alpha: weight of the Grad-CAM attention rectification L_r "
                     "(default 0.01).")
  flags.DEFINE_float("preservation_weight", None,
                     "AAD beta: weight of the Grad-CAM attention preservation L_p "
                     "(default 0.01).")
  flags.DEFINE_float("kappa", None, "AAD attention threshold in [0, 1] on the max-scaled "
                     "Grad-CAM map (default: each image's mean).")
  flags.DEFINE_float("trades_beta", None, "TRADES beta: weight of KL(f(x) || f(x_adv)) "
                     "(default 6).")
  flags.DEFINE_string("terms", None, terms_help())
  flags.DEFINE_list("wrapper_options", [], wrapper_options_help())
  flags.DEFINE_list("static_model_dirs", [],
                    "ensemble_at: model directories of static pre-trained models (written by "
                    "tfadv-train) whose adversarial examples the model also trains on.")
  flag_group("Model")
  flags.DEFINE_enum("activation", "relu", ["relu", "silu", "gelu"],
                    "Activation of resnet18.")
  flag_group("Training")
  flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and report.json.")
  flags.DEFINE_integer("batch_size", 128, "Global batch size.")
  flags.DEFINE_integer("epochs", 1, "Epochs (ignored when --train_steps is set).")
  flags.DEFINE_integer("train_steps", None, "Total optimizer steps.")
  flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Optimizer.")
  flags.DEFINE_float("learning_rate", 1e-3, "Initial learning rate.")
  flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine", "piecewise"],
                    "Learning-rate schedule.")
  flags.DEFINE_integer("warmup_steps", 0, "Linear learning-rate warm-up steps.")
  flags.DEFINE_float("weight_decay", 0.0, "Weight decay, applied as --weight_decay_mode says.")
  flags.DEFINE_enum("weight_decay_mode", "decoupled", ["coupled", "decoupled"],
                    "coupled: L2 added to the gradient (PyTorch SGD; what '5e-4' means in "
                    "the papers); decoupled: w -= lr * wd * w (Keras, AdamW).")
  flags.DEFINE_bool("nesterov", False, "Nesterov momentum (--optimizer=sgd).")
  flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing of the cross-entropy terms.")
  # Robust-training ingredients of the published recipes (issue 14).
  flags.DEFINE_enum("augment", "none", ["none", "crop_flip"],
                    "Training augmentation: crop_flip = random crop after zero padding (4 px "
                    "at 32x32, scaled with the image size) + horizontal flip.")
  flags.DEFINE_float("ema_decay", 0.0, "Decay of an EMA of the weights (e.g. 0.995, with "
                     "the warm-up min(decay, (1+t)/(10+t))); evaluation and export then use "
                     "the averaged weights. 0 disables it.")
  flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                    "Keras mixed precision (logits, losses and attacks stay float32).")
  flags.DEFINE_integer("seed", 0, "Random seed.")
  flags.DEFINE_bool("deterministic", False, "TensorFlow op determinism (bit-exact reruns).")
  flags.DEFINE_bool("jit", False, "Compile the attack with XLA (slower on CPU).")
  flags.DEFINE_integer("steps_per_loop", 10,
                       "Training steps per tf.function call (metrics reach the host once per "
                       "loop; boundaries stay exact).")
  flag_group("Validation and early stopping")
  flags.DEFINE_integer("validate_every", 0,
                       "Steps between PGD evaluations on a validation split held out from "
                       "the training split; the best is kept in model_dir/best/ and "
                       "exported by default. 0 disables it.")
  flags.DEFINE_integer("validation_size", 512, "Training images held out for validation.")
  flags.DEFINE_integer("validation_attack_steps", 10, "PGD steps of the validation attack.")
  flags.DEFINE_bool("stop_on_overfitting", False,
                    "Fast AT (fgsm_rs, n_fgsm, stepll_at, ensemble_at) with --validate_every: "
                    "stop when validation shows catastrophic overfitting (PGD accuracy "
                    "collapsing while FGSM accuracy rises); best/ keeps the last good "
                    "checkpoint. Without it the collapse is a warning in the log and "
                    "TensorBoard.")
  flag_group("Distribution")
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                    "Distribution strategy.")
  flags.DEFINE_integer("num_cpu_devices", 0,
                       "With --strategy=mirrored and no GPU: split the CPU into this many "
                       "devices.")
  flag_group("Logging and checkpoints")
  flags.DEFINE_integer("checkpoint_every", 200, "Steps between checkpoints.")
  flags.DEFINE_integer("log_every", 50, "Steps between TensorBoard summaries.")
  flags.DEFINE_integer("image_every", 500, "Steps between TensorBoard Grad-CAM panels "
                       "(clean vs adversarial test images); 0 disables them.")
  flags.DEFINE_bool("progress", True, "Show progress bars.")


def _defenses_by_norm():
  """(defenses whose training attack has an L2 form, those defined for linf only)."""
  l2, linf_only = [], []
  for defense in table.DEFENSES.values():
    if defense.attack is not None:
      (l2 if "l2" in registry.spec(defense.attack).norms else linf_only).append(defense.name)
  return l2, linf_only


def norms_help():
  """Which defenses' training attacks have an L2 form, from the attack registry."""
  l2, linf_only = _defenses_by_norm()
  return (f"l2 for {', '.join(l2)}; linf only for {', '.join(linf_only)} (their training "
          "attack has no L2 form).")


def image_size_from_flags():
  """--image_size as (height, width), or None."""
  return _image_size()


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


def _test_fraction():
  """--test_fraction, or the deprecated --validation_fraction (with a one-line notice)."""
  old = FLAGS["validation_fraction"]
  if not old.present:
    return FLAGS.test_fraction
  if FLAGS["test_fraction"].present and FLAGS.test_fraction != old.value:
    raise ValueError(f"Invalid test_fraction: --validation_fraction is its former name; "
                     f"received --test_fraction={FLAGS.test_fraction} and "
                     f"--validation_fraction={old.value}")
  sys.stderr.write("Note: --validation_fraction is deprecated (it always was the test "
                   "fraction); use --test_fraction.\n")
  return old.value


def data_config_from_flags():
  return config_lib.DataConfig(
      name=FLAGS.dataset, data_dir=FLAGS.data_dir, image_size=_image_size(),
      test_fraction=_test_fraction(), seed=getattr(FLAGS, "seed", 0)).validate()


def model_config_from_flags():
  """The ModelConfig of --model: a zoo name, or a user's file with its reading options."""
  value = FLAGS.model
  user = {"taps": tuple(FLAGS.taps or ()), "gradcam_layer": FLAGS.gradcam_layer,
          "input_range": FLAGS.input_range, "safe_mode": not FLAGS.unsafe_load,
          "bn_momentum": FLAGS.bn_momentum}
  if value in zoo.MODEL_NAMES:
    return config_lib.ModelConfig(name=value, weights=getattr(FLAGS, "weights", None),
                                  width=getattr(FLAGS, "width", 32),
                                  activation=getattr(FLAGS, "activation", "relu"),
                                  **user).validate()
  import os  # pylint: disable=g-import-not-at-top
  if not value or not os.path.exists(value):
    raise ValueError(f"Invalid model: expected one of [{', '.join(zoo.MODEL_NAMES)}] or the "
                     f"path of a .keras/.h5 file or SavedModel directory; received "
                     f"model={value!r}, which is neither")
  stem = os.path.splitext(os.path.basename(os.path.normpath(value)))[0]
  if getattr(FLAGS, "weights", None):
    raise ValueError("Invalid weights: expected none with --model=PATH (the weights are in "
                     f"the file); received weights={FLAGS.weights!r}")
  return config_lib.ModelConfig(name=stem, path=value, **user).validate()


def eval_config_from_flags(eps=None, extra_attacks=None, training_attack=None, **fields):
  """The EvalConfig of the eval flags.

  Args:
    eps: strings overriding --eval_eps (tfadv-evaluate's --eps).
    extra_attacks: an attack-list string appended to --attacks.
    training_attack: the training attack's `AttackConfig`; without --eval_eps (or `eps`)
      the attacks run at its eps, and attacks that set no norm use its norm.
    **fields: EvalConfig fields (threat_model, source_model_dir, ...).
  """
  flag = "eps" if eps else "eval_eps"
  values = eps or FLAGS.eval_eps
  if values:
    values = numbers(values, flag)
  elif training_attack is not None:
    values = [training_attack.eps]
  else:
    values = [config_lib.AttackConfig().eps]
  norm = training_attack.norm if training_attack is not None else None
  text = ",".join(t for t in (FLAGS.attacks, extra_attacks) if t)
  return registry.validate(config_lib.EvalConfig(
      attacks=specs.parse_attacks(text, values, norm), num_examples=FLAGS.num_examples,
      batch_size=FLAGS.eval_batch_size, **fields))


# Flags that set the weight / an option of one term of the defense.
_WEIGHT_FLAGS = {"alp_weight": "alp", "at_weight": "at", "rectification_weight":
                 "rectification", "preservation_weight": "preservation",
                 "trades_beta": "trades_kl"}
_OPTION_FLAGS = {"at_taps": ("at", "taps"), "kappa": ("rectification", "kappa")}


def _term_overrides(defense_name):
  """`TermConfig`s from the weight flags, --adv_ce_fraction and --terms.

  Raises:
    ValueError: a weight or option flag for a term the defense does not have (naming the
      defense's terms and how to add one), or a malformed --terms.
  """
  defaults = {entry[0]: float(entry[1]) for entry in table.get(defense_name).terms}
  own = ", ".join(defaults)
  overrides = {}

  def own_term(flag, term, value):
    if term not in defaults:
      raise ValueError(f"Invalid {flag}: defense {defense_name} has no {term} term (its "
                       f"terms: {own}); received {flag}={value} (add the term with "
                       f"--terms={term}:WEIGHT)")
    return overrides.setdefault(term, [defaults[term], {}])

  for flag, term in _WEIGHT_FLAGS.items():
    value = FLAGS[flag].value
    if value is not None:
      own_term(flag, term, value)[0] = value
  for flag, (term, option) in _OPTION_FLAGS.items():
    value = FLAGS[flag].value
    if value is not None:
      if flag == "at_taps":
        value = "/".join(value)
      own_term(flag, term, value)[1][option] = str(value)
  fraction = FLAGS.adv_ce_fraction
  if fraction is not None:
    if not 0.0 <= fraction <= 1.0:
      raise ValueError("Invalid adv_ce_fraction: expected a fraction in [0, 1]; received "
                       f"adv_ce_fraction={fraction}")
    if not {"clean_ce", "adv_ce"} & set(defaults):
      raise ValueError(f"Invalid adv_ce_fraction: defense {defense_name} has no "
                       f"cross-entropy term (its terms: {own}); received {fraction}")
    overrides["clean_ce"] = [1.0 - fraction, {}]
    overrides["adv_ce"] = [fraction, {}]
  for name, weight, options in terms_lib.parse_terms(FLAGS.terms):
    entry = overrides.setdefault(name, [weight, {}])
    entry[0] = weight
    entry[1].update(options)
  return tuple(config_lib.TermConfig(name, weight, options)
               for name, (weight, options) in overrides.items())


def _wrapper_options():
  options = []
  for item in FLAGS.wrapper_options:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise ValueError("Invalid wrapper_options: expected key=value items; received "
                       f"{item!r}")
    options.append((key, value))
  return tuple(options)


def training_attack_of(model_dir):
  """The training attack (`AttackConfig`) recorded in a run's config, or None without one.

  tfadv-evaluate's attacks default to its eps and norm.
  """
  import os  # pylint: disable=g-import-not-at-top
  from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
  if not model_dir or not os.path.exists(os.path.join(model_dir, trainer.RUN_CONFIG)):
    return None  # The evaluation itself says what is missing.
  run = trainer.read_run_config(model_dir)
  try:
    return config_lib.DefenseConfig.from_dict(run["defense"]).attack
  except (KeyError, TypeError, AttributeError):
    return None  # A foreign run config: the evaluation reports it.


def _check_norm(defense_name, norm):
  """A clear error for --norm=l2 with a defense whose training attack has no L2 form."""
  attack = table.get(defense_name).attack
  if attack is not None and norm not in registry.spec(attack).norms:
    raise ValueError(f"Invalid norm: defense {defense_name} trains with {attack}, which is "
                     f"defined for {'/'.join(registry.spec(attack).norms)} only; received "
                     f"norm={norm} (defenses with an L2 training attack: "
                     f"{', '.join(_defenses_by_norm()[0])})")


def defense_config_from_flags():
  _check_norm(FLAGS.defense, FLAGS.norm)
  attack = config_lib.AttackConfig(name="pgd", eps=FLAGS.eps, steps=FLAGS.attack_steps,
                                   step_size=FLAGS.attack_step_size, norm=FLAGS.norm)
  defense = config_lib.DefenseConfig(
      name=FLAGS.defense, attack=attack, terms=_term_overrides(FLAGS.defense),
      wrapper_options=_wrapper_options(), static_model_dirs=tuple(FLAGS.static_model_dirs),
      eps_draw=FLAGS.eps_draw)
  recipes.build(defense)  # Checks terms, options, wrapper options and static models.
  return defense


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
      progress=FLAGS.progress, augment=FLAGS.augment, ema_decay=FLAGS.ema_decay,
      validate_every=FLAGS.validate_every, validation_size=FLAGS.validation_size,
      validation_attack_steps=FLAGS.validation_attack_steps,
      label_smoothing=FLAGS.label_smoothing, nesterov=FLAGS.nesterov,
      weight_decay_mode=FLAGS.weight_decay_mode, warmup_steps=FLAGS.warmup_steps,
      deterministic=FLAGS.deterministic, precision=FLAGS.precision,
      steps_per_loop=FLAGS.steps_per_loop,
      stop_on_overfitting=FLAGS.stop_on_overfitting).validate()


# Errors a user can fix (bad flags, bad data, bad model files): one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def _file_errors():
  """TensorFlow's errors about files a user gave (missing, unreadable, corrupt)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return (tf.errors.NotFoundError, tf.errors.PermissionDeniedError, tf.errors.DataLossError,
          tf.errors.FailedPreconditionError)


def quiet_tensorflow():
  """Hides TensorFlow's INFO/WARNING lines unless --verbosity was given (see console.py)."""
  if FLAGS["verbosity"].present:
    return
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel("ERROR")
  tf.autograph.set_verbosity(0)

  class OnlyOurs(std_logging.Filter):
    """Drops INFO/WARNING records logged from TensorFlow's, Keras' or tfds' own files (some
    log through absl, not TensorFlow's logger)."""

    def filter(self, record):
      path = record.pathname.replace("\\", "/")
      return record.levelno >= std_logging.ERROR or not any(
          f"/{p}/" in path for p in ("tensorflow", "keras", "tensorflow_datasets", "tf_keras"))

  logging.get_absl_handler().addFilter(OnlyOurs())


_HELP_ARGS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")
_INVALID_FLAG = re.compile(r"^Invalid (\w+)")


def _error_line(message):
  """One line; an error about a flag of this command points at --help."""
  line = " ".join(str(message).split())
  match = _INVALID_FLAG.match(line)
  if match and match.group(1) in FLAGS and "--help" not in line:
    line += " (see --help)"
  return f"Error: {line}\n"


def run_main(main):
  """`app.run(main)`, reporting user errors as one clear line and exit status 2.

  `--help` (and -h, --helpshort) prints the command's docstring and its own flags grouped
  as the README groups them (absl's `--helpfull` lists every flag). The command's flags are
  also registered as absl key flags of the main module. TensorFlow's own log lines are
  hidden unless `--verbosity` is given; tfadv's lines, the progress bars and the report stay.
  """
  for names in groups().values():
    for name in names:
      FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
  if any(arg in _HELP_ARGS for arg in sys.argv[1:]):
    sys.stdout.write(help_text(sys.modules[main.__module__].__doc__))
    sys.exit(0)

  def wrapped(argv):
    quiet_tensorflow()
    try:
      return main(argv)
    except USER_ERRORS + _file_errors() as e:
      logging.debug("User error", exc_info=True)
      sys.stderr.write(_error_line(getattr(e, "message", None) or str(e)))
      sys.exit(2)

  app.run(wrapped, flags_parser=parse_flags)


def parse_flags(argv):
  """absl's flag parsing; a bad flag is a user error too: one line, status 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    sys.stderr.write(f"Error: {' '.join(str(e).split())} (see --help)\n")
    sys.exit(2)
