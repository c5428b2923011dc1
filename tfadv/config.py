"""Frozen configuration records for every knob of tfadv.

Configs are built at the boundary (CLIs, tests, notebooks) and validated there with
`validate()`; the library below never reads flags. Strings from the command line become
enums here, so a typo fails early with the list of valid values.
"""

import dataclasses
import enum
import math
import numbers
import re
from typing import Optional, Tuple


def _choice(enum_cls, value, argument):
  """Converts `value` to a member of `enum_cls` or raises a ValueError naming `argument`."""
  if isinstance(value, enum_cls):
    return value
  try:
    return enum_cls(str(value).lower())
  except ValueError:
    valid = ", ".join(m.value for m in enum_cls)
    raise ValueError(
        f"Invalid {argument}: expected one of [{valid}]; received {argument}={value!r}"
    ) from None


def _check(condition, argument, expected, value):
  if not condition:
    raise ValueError(f"Invalid {argument}: expected {expected}; received {argument}={value!r}")


_FRACTION = re.compile(r"^([^/]+)/([^/]+)$")


def parse_number(value, argument):
  """`value` as a float; a string may be a decimal (`0.5`) or a fraction (`8/255`).

  Epsilons and step sizes are written as the papers write them (8/255, 2/255); the
  fraction is its value, 8/255 = 0.0313725..., never 8.

  Raises:
    ValueError: naming `argument`, when `value` is neither a number nor a fraction.
  """
  if isinstance(value, bool):  # A bool is an int to Python, never an epsilon.
    raise ValueError(f"Invalid {argument}: expected a number or a fraction such as 8/255; "
                     f"received {argument}={value!r}")
  if isinstance(value, numbers.Real):
    return float(value)
  text = str(value).strip()
  try:
    match = _FRACTION.match(text)
    if match:
      return float(match.group(1)) / float(match.group(2))
    return float(text)
  except (ValueError, ZeroDivisionError):
    raise ValueError(f"Invalid {argument}: expected a number or a fraction such as 8/255; "
                     f"received {argument}={value!r}") from None


class Norm(enum.Enum):
  LINF = "linf"
  L2 = "l2"

  @property
  def order(self):
    """The norm order as cleverhans expects it (np.inf or 2)."""
    return math.inf if self is Norm.LINF else 2


class ThreatModel(enum.Enum):
  WHITE = "white"  # Attack the evaluated model itself.
  GRAY = "gray"  # Attack a copy: same architecture and defense, another seed; transfer.
  BLACK = "black"  # Attack a different surrogate architecture; transfer.


class StrategyKind(enum.Enum):
  DEFAULT = "default"
  MIRRORED = "mirrored"
  MULTI_WORKER = "multi_worker"


class OptimizerKind(enum.Enum):
  SGD = "sgd"
  ADAM = "adam"


class Augment(enum.Enum):
  NONE = "none"
  CROP_FLIP = "crop_flip"  # Random crop after zero padding (4 px at 32x32) + horizontal flip.


class WeightDecayMode(enum.Enum):
  COUPLED = "coupled"  # L2: wd * w added to the gradient (PyTorch SGD's weight_decay).
  DECOUPLED = "decoupled"  # Keras/AdamW: w -= lr * wd * w, outside the gradient.


class Precision(enum.Enum):
  FLOAT32 = "float32"
  MIXED_BFLOAT16 = "mixed_bfloat16"
  MIXED_FLOAT16 = "mixed_float16"


class Schedule(enum.Enum):
  CONSTANT = "constant"
  COSINE = "cosine"
  PIECEWISE = "piecewise"  # x0.1 at 50% and 75% of training (Madry / TRADES practice)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which dataset and how to read it.

  Attributes:
    name: `fashion_mnist` (built-in default), `digits` (scikit-learn's 8x8 digits, for
      fast tests), `folder` (an image folder under `data_dir`) or any tfds
      image-classification name (`cifar10`, `mnist`, `oxford_flowers102`, ...).
    data_dir: root of an image folder (`name="folder"`), or a directory holding the
      dataset's files (idx files for `fashion_mnist`, tfds data_dir otherwise).
    image_size: (height, width) to resize to, or None to keep the native size.
    test_fraction: the fraction of each class held out for testing when the data has no
      test split (an image folder without `train/` and `test/`, `digits`, a tfds dataset
      without `test`/`validation`). Older run configs call it `validation_fraction`.
    shuffle_buffer: size of the shuffle buffer for training data.
    seed: seed of the split and of shuffling.
  """
  name: str = "fashion_mnist"
  data_dir: Optional[str] = None
  image_size: Optional[Tuple[int, int]] = None
  test_fraction: float = 0.2
  shuffle_buffer: int = 10_000
  seed: int = 0

  @classmethod
  def from_dict(cls, value):
    """The config recorded as a dict (a run config's `data`, a study's `data`).

    Keys that are not fields are ignored; the former name `validation_fraction` still reads
    as `test_fraction` (run configs written before the rename).
    """
    value = dict(value)
    if "validation_fraction" in value:
      old = value.pop("validation_fraction")
      value.setdefault("test_fraction", old)
    fields = {f.name for f in dataclasses.fields(cls)}
    value = {k: v for k, v in value.items() if k in fields}
    if value.get("image_size"):
      value["image_size"] = tuple(value["image_size"])
    return cls(**value)

  def validate(self):
    _check(bool(self.name), "dataset", "a dataset name", self.name)
    if self.image_size is not None:
      _check(len(self.image_size) == 2 and all(int(s) > 0 for s in self.image_size),
             "image_size", "two positive integers (height, width)", self.image_size)
    _check(0.0 < self.test_fraction < 1.0, "test_fraction",
           "a fraction in (0, 1)", self.test_fraction)
    _check(self.shuffle_buffer >= 1, "shuffle_buffer", "a positive integer", self.shuffle_buffer)
    return self


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Which architecture.

  Attributes:
    name: `small_cnn`, `resnet18` (CIFAR-style), `resnet50`, `resnet101`, `resnet152`.
    weights: None (random init) or `imagenet` (keras.applications ResNets only).
    width: base number of filters for `small_cnn` and `resnet18`.
    activation: activation of `resnet18`: `relu` (the original), `silu` or `gelu` (the
      activations of the strongest recent robust recipes, e.g. Wang et al. 2023).
    path: a user model instead of a zoo one: a `.keras`/`.h5` file or a SavedModel
      directory (`name` then labels it); relative paths in a run config are relative to
      its model directory (`tfadv.models.sources`).
    taps: names of the layers AT pairs (default: found by `sources.find_taps`).
    gradcam_layer: the layer Grad-CAM reads (default: the last tap).
    input_range: the range the user model expects: `auto` (0..255 when it starts with a
      `Rescaling(1/255)`, else [0, 1]), `0,1`, `0,255` or `-1,1`.
    safe_mode: load user files in Keras' safe mode (no Lambda layers / arbitrary code).
    bn_momentum: set the momentum of every BatchNormalization layer of a user model (e.g.
      0.9, PyTorch's 0.1, the robust recipes' value); None keeps the model's own.
      keras.applications use 0.999, whose moving statistics lag for thousands of steps:
      the training attack and evaluation run in inference mode on them.
  """
  name: str = "small_cnn"
  weights: Optional[str] = None
  width: int = 32
  activation: str = "relu"
  path: Optional[str] = None
  taps: Tuple[str, ...] = ()
  gradcam_layer: Optional[str] = None
  input_range: str = "auto"
  safe_mode: bool = True
  bn_momentum: Optional[float] = None

  def __post_init__(self):
    object.__setattr__(self, "taps", tuple(self.taps or ()))

  def validate(self):
    _check(self.input_range in ("auto", "0,1", "0,255", "-1,1"), "input_range",
           "one of [auto, 0,1, 0,255, -1,1]", self.input_range)
    _check(self.bn_momentum is None or 0.0 < self.bn_momentum < 1.0, "bn_momentum",
           "None or a momentum in (0, 1)", self.bn_momentum)
    if self.path is not None:
      _check(self.weights is None, "weights", "None for a model file (its weights are in "
             "the file)", self.weights)
      return self
    _check(not self.taps and self.gradcam_layer is None, "taps",
           "no --taps/--gradcam_layer for a zoo model (its layers are known)", self.taps)
    _check(self.input_range == "auto", "input_range", "auto for a zoo model (it takes [0, 1])",
           self.input_range)
    _check(self.bn_momentum is None, "bn_momentum", "None for a zoo model (its BatchNorm "
           "momentum is the recipe's)", self.bn_momentum)
    _check(self.weights in (None, "imagenet"), "weights", "None or 'imagenet'", self.weights)
    _check(self.width >= 1, "width", "a positive integer", self.width)
    _check(self.activation in ("relu", "silu", "gelu"), "activation",
           "one of [relu, silu, gelu]", self.activation)
    _check(self.activation == "relu" or self.name == "resnet18", "activation",
           "relu for models other than resnet18", self.activation)
    return self


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """An attack under an L-inf or L2 budget, in [0, 1] pixel units.

  Attributes:
    name: a name of `tfadv.attacks.registry.ATTACKS` (`fgsm`, `pgd`, `bim`, `cw_linf`, ...).
    eps: radius of the threat ball; a string may be a fraction (`"8/255"`, see
      `parse_number`).
    step_size: PGD step (a fraction too, `"2/255"`); None means 2.5 * eps / steps (Madry
      et al.).
    steps: PGD iterations.
    norm: `linf` or `l2`.
    random_start: start PGD from a uniform point of the ball.
    restarts: PGD restarts (evaluation); the worst case per example is kept.
    params: options of attacks other than `fgsm`/`pgd`, as sorted (key, value) pairs passed
      to the attack function as keyword arguments (e.g. `(("steps", 100),)` for `cw_linf`,
      `(("queries", 10000),)` for `rays`); the fields above are PGD's. One option is
      the evaluation's, valid for every attack and not passed to it: `num_examples`, run
      the attack on the first that many test examples only (AutoAttack on 1,000 of 10,000).
  """
  name: str = "pgd"
  eps: float = 0.1
  step_size: Optional[float] = None
  steps: int = 10
  norm: Norm = Norm.LINF
  random_start: bool = True
  restarts: int = 1
  params: Tuple[Tuple[str, object], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "eps", parse_number(self.eps, "eps"))
    if self.step_size is not None:
      object.__setattr__(self, "step_size", parse_number(self.step_size, "attack_step_size"))
    object.__setattr__(self, "norm", _choice(Norm, self.norm, "norm"))
    params = self.params.items() if isinstance(self.params, dict) else self.params
    object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in params)))

  @property
  def num_examples(self):
    """The attack's example limit (the `num_examples` option), or None (every example)."""
    return dict(self.params).get("num_examples")

  @property
  def resolved_step_size(self):
    if self.step_size is not None:
      return float(self.step_size)
    return 2.5 * self.eps / max(self.steps, 1)

  def validate(self):
    """Checks the fields every attack shares (eps, steps, step size, restarts).

    The checks that need the attack registry (the name, the norms an attack supports, its
    options) are `tfadv.attacks.registry.validate(config)`, which calls this too; this
    module imports nothing of tfadv.
    """
    limit = 1.0 if self.norm is Norm.LINF else math.inf
    _check(0.0 <= self.eps <= limit, "eps",
           "0 <= eps <= 1 (images are in [0, 1])" if limit == 1.0 else "eps >= 0", self.eps)
    _check(self.steps >= 1, "attack_steps", "a positive integer", self.steps)
    _check(self.step_size is None or self.step_size > 0, "attack_step_size",
           "a positive step size", self.step_size)
    _check(self.restarts >= 1, "restarts", "a positive integer", self.restarts)
    limit = self.num_examples
    _check(limit is None or (isinstance(limit, int) and not isinstance(limit, bool)
                             and limit >= 1),
           "num_examples", "a positive integer (the attack's example limit)", limit)
    return self


def _pairs(value):
  """`value` (a dict or (key, value) pairs) as sorted (key, value) pairs."""
  items = value.items() if isinstance(value, dict) else value
  return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items))


@dataclasses.dataclass(frozen=True)
class TermConfig:
  """One weighted loss term of a defense.

  Attributes:
    name: a loss-term name of `tfadv.losses.registry.TERMS` (`clean_ce`, `adv_ce`, `alp`,
      `at`, `trades_kl`, `rectification`, `preservation`, `igr`, ...).
    weight: its weight in the step loss; 0 drops the term.
    options: the term's own options as sorted (key, value) pairs (e.g. `(("taps", (0, 1)),)`
      for `at`); each term declares and validates its options in the registry.
  """
  name: str
  weight: float = 1.0
  options: Tuple[Tuple[str, object], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "weight", float(self.weight))
    object.__setattr__(self, "options", _pairs(self.options))

  def validate(self):
    _check(bool(self.name), "term", "a loss-term name", self.name)
    _check(math.isfinite(self.weight) and self.weight >= 0, f"{self.name} weight",
           "a non-negative weight", self.weight)
    return self


@dataclasses.dataclass(frozen=True)
class DefenseConfig:
  """A defense: a recipe of `tfadv.defenses.table` and what the user changed in it.

  The table gives each defense its training attack, its weighted loss terms and its model
  wrapper; a config names the defense and overrides by concern: the attack's budget, the
  terms (a `TermConfig` with a term's name replaces that term's weight and options; a new
  name adds a term; weight 0 drops it), the wrapper's options, the static models.

  Attributes:
    name: a defense of `tfadv.defenses.table.DEFENSES` (`none`, `pat`, `alp`, `at_alp`,
      `aad`, `trades`, `igr`, `rat`, ...).
    attack: the budget of the training attack (eps, steps, step size, norm); which attack
      it is (PGD, StepLL, FGSM-RS, ...) is the defense's.
    terms: overrides and additions of weighted loss terms.
    wrapper_options: options of the defense's model wrapper as (key, value) pairs (e.g.
      `(("stddev", 0.1),)` for `rat`); see `tfadv.defenses.models.WRAPPERS`.
    static_model_dirs: model directories of pre-trained static models whose adversarial
      examples the defense trains on (`ensemble_at`).
    eps_draw: how the training attack's eps is drawn each step (a name of
      `tfadv.attacks.eps_draws.DRAWS`: `fixed`, `half_normal` per example, `uniform_batch`
      per batch; `attack.eps` is the upper end); None keeps the defense's own (`stepll_at`:
      `half_normal` as Kurakin et al., `adp_at`: `uniform_batch` as Pang et al., the others
      `fixed`).
  """
  name: str = "at_alp"
  attack: AttackConfig = AttackConfig()
  terms: Tuple[TermConfig, ...] = ()
  wrapper_options: Tuple[Tuple[str, object], ...] = ()
  static_model_dirs: Tuple[str, ...] = ()
  eps_draw: Optional[str] = None

  def __post_init__(self):
    terms = tuple(t if isinstance(t, TermConfig) else TermConfig(**t) for t in self.terms)
    object.__setattr__(self, "terms", terms)
    object.__setattr__(self, "wrapper_options", _pairs(self.wrapper_options))
    object.__setattr__(self, "static_model_dirs", tuple(self.static_model_dirs))

  def term(self, name):
    """The `TermConfig` called `name` among the overrides, or None."""
    return next((t for t in self.terms if t.name == name), None)

  def validate(self):
    """Checks what needs no registry; `tfadv.defenses.recipes.build` checks the names."""
    self.attack.validate()
    names = [t.name for t in self.terms]
    _check(len(names) == len(set(names)), "terms", "each term at most once", names)
    for term in self.terms:
      term.validate()
    return self

  @classmethod
  def from_dict(cls, value):
    """The config of `trainer.to_jsonable(config)` (a run's `run_config.json`)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    value = {k: v for k, v in value.items() if k in fields}
    if "attack" in value:
      attack = dict(value["attack"])
      attack["params"] = [tuple(p) for p in attack.get("params", ())]
      value["attack"] = AttackConfig(**attack)
    if "terms" in value:
      value["terms"] = tuple(TermConfig(name=t["name"], weight=t["weight"],
                                        options=[tuple(o) for o in t.get("options", ())])
                             for t in value["terms"])
    for key in ("wrapper_options",):
      if key in value:
        value[key] = [tuple(o) for o in value[key]]
    return cls(**value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train.

  Attributes:
    model_dir: where checkpoints, TensorBoard logs and the report go.
    batch_size: the global batch size (split across replicas).
    epochs: passes over the training data (ignored when train_steps is set).
    train_steps: total optimizer steps; None means epochs * steps per epoch.
    optimizer: `sgd` (momentum 0.9) or `adam`.
    learning_rate: initial learning rate.
    schedule: `constant`, `cosine` or `piecewise`.
    weight_decay: weight decay, 0 to disable; applied as `weight_decay_mode` says.
    weight_decay_mode: `decoupled` (Keras / AdamW: w -= lr * wd * w) or `coupled` (L2 on
      the gradient, g += wd * w, as PyTorch's SGD applies `weight_decay=5e-4`: the papers'
      figure means this).
    nesterov: Nesterov momentum for `sgd`.
    warmup_steps: linear learning-rate warm-up from 0 over this many steps, then the
      schedule (which then spans the remaining steps).
    label_smoothing: label smoothing of the cross-entropy terms, in [0, 1).
    strategy: `default`, `mirrored` or `multi_worker`.
    num_cpu_devices: for `mirrored` on a machine without GPUs, how many virtual CPU
      devices to split the CPU into (tests); 0 keeps the physical devices.
    checkpoint_every: steps between checkpoints (a final one is always written).
    keep_checkpoints: how many checkpoints to keep.
    log_every: steps between TensorBoard summaries.
    image_every: steps between TensorBoard images of Grad-CAM maps on clean vs adversarial
      test images (chief only, outside the training step); 0 disables them.
    jit: compile the training step with XLA.
    seed: global seed (weights, shuffling, attack random starts).
    progress: show a progress bar.
    augment: `none` or `crop_flip` (random crop after zero padding of 4 px at 32x32,
      scaled with the image size, and a horizontal flip), a pure function of (seed, step).
    ema_decay: decay of an exponential moving average of the weights (e.g. 0.995), with
      the warm-up min(decay, (1 + t) / (10 + t)); 0 disables it. When on, evaluation, the
      report and the export use the averaged weights.
    validate_every: steps between PGD evaluations on a validation split held out from the
      *training* split (the test split stays untouched); the best is kept in
      `model_dir/best/` and exported by default. 0 disables validation.
    validation_size: images held out for validation (when validate_every > 0).
    validation_attack_steps: PGD steps of the validation attack (the training eps/norm).
    stop_on_overfitting: for single-step defenses (fast AT), stop training when the
      validation shows catastrophic overfitting (PGD accuracy collapsing while FGSM
      accuracy rises); the best validation checkpoint (model_dir/best/) is the one kept.
    deterministic: TensorFlow op determinism (bit-exact reruns, slower).
    precision: `float32`, `mixed_bfloat16` or `mixed_float16` (Keras mixed precision;
      logits, losses and attack perturbations stay float32; float16 uses loss scaling).
    steps_per_loop: training steps inside one tf.function call (metrics reach the host
      once per loop); logging/checkpoint/validation boundaries stay exact. 10 by
      measurement: a small clean step took 13-22 ms with 1, 9-13 ms with 10, no better
      with 50 (README).
  """
  model_dir: str = "/tmp/tfadv"
  batch_size: int = 128
  epochs: int = 1
  train_steps: Optional[int] = None
  optimizer: OptimizerKind = OptimizerKind.ADAM
  learning_rate: float = 1e-3
  schedule: Schedule = Schedule.CONSTANT
  weight_decay: float = 0.0
  strategy: StrategyKind = StrategyKind.DEFAULT
  num_cpu_devices: int = 0
  checkpoint_every: int = 200
  keep_checkpoints: int = 3
  log_every: int = 50
  image_every: int = 500
  jit: bool = False
  seed: int = 0
  progress: bool = True
  weight_decay_mode: WeightDecayMode = WeightDecayMode.DECOUPLED
  nesterov: bool = False
  warmup_steps: int = 0
  label_smoothing: float = 0.0
  augment: Augment = Augment.NONE
  ema_decay: float = 0.0
  validate_every: int = 0
  validation_size: int = 512
  validation_attack_steps: int = 10
  stop_on_overfitting: bool = False
  deterministic: bool = False
  precision: Precision = Precision.FLOAT32
  steps_per_loop: int = 10

  def __post_init__(self):
    object.__setattr__(self, "augment", _choice(Augment, self.augment, "augment"))
    object.__setattr__(self, "weight_decay_mode",
                       _choice(WeightDecayMode, self.weight_decay_mode, "weight_decay_mode"))
    object.__setattr__(self, "precision", _choice(Precision, self.precision, "precision"))
    object.__setattr__(self, "optimizer", _choice(OptimizerKind, self.optimizer, "optimizer"))
    object.__setattr__(self, "schedule", _choice(Schedule, self.schedule, "lr_schedule"))
    object.__setattr__(self, "strategy", _choice(StrategyKind, self.strategy, "strategy"))

  def validate(self):
    _check(bool(self.model_dir), "model_dir", "a directory path", self.model_dir)
    _check(self.batch_size >= 1, "batch_size", "a positive integer", self.batch_size)
    _check(self.epochs >= 1, "epochs", "a positive integer", self.epochs)
    _check(self.train_steps is None or self.train_steps >= 1, "train_steps",
           "a positive integer", self.train_steps)
    _check(self.learning_rate > 0, "learning_rate", "a positive rate", self.learning_rate)
    _check(self.weight_decay >= 0, "weight_decay", "a non-negative value", self.weight_decay)
    _check(self.num_cpu_devices >= 0, "num_cpu_devices", "a non-negative integer",
           self.num_cpu_devices)
    _check(self.checkpoint_every >= 1, "checkpoint_every", "a positive integer",
           self.checkpoint_every)
    _check(self.keep_checkpoints >= 1, "keep_checkpoints", "a positive integer",
           self.keep_checkpoints)
    _check(self.log_every >= 1, "log_every", "a positive integer", self.log_every)
    _check(self.image_every >= 0, "image_every", "a non-negative integer (0: no images)",
           self.image_every)
    _check(self.warmup_steps >= 0, "warmup_steps", "a non-negative integer",
           self.warmup_steps)
    _check(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "a smoothing in [0, 1)",
           self.label_smoothing)
    _check(self.ema_decay == 0.0 or 0.0 < self.ema_decay < 1.0, "ema_decay",
           "0 (off) or a decay in (0, 1)", self.ema_decay)
    _check(self.validate_every >= 0, "validate_every", "a non-negative integer (0: off)",
           self.validate_every)
    _check(self.validation_size >= 1, "validation_size", "a positive integer",
           self.validation_size)
    _check(self.validation_attack_steps >= 1, "validation_attack_steps",
           "a positive integer", self.validation_attack_steps)
    _check(self.steps_per_loop >= 1, "steps_per_loop", "a positive integer",
           self.steps_per_loop)
    return self


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """What robustness evaluation runs.

  Attributes:
    attacks: attack configs; each is reported under `name` (e.g. `pgd20`). Default: FGSM,
      PGD-20 and AutoAttack on the first 1,000 test examples, at eps 0.1.
    num_examples: test examples to evaluate (None: the whole test split).
    batch_size: evaluation batch size.
    threat_model: `white`, `gray` or `black` (see `ThreatModel`).
    source_model_dir: for `gray`/`black`, the model directory of the model the attacks are
      computed on (its adversarial examples are then tested on the evaluated model).
    unbounded_check: also run PGD-10 at eps = 1 (L-inf), which must reach ~0% accuracy
      (a sanity check against gradient masking).
  """
  attacks: Tuple[AttackConfig, ...] = (
      AttackConfig(name="fgsm", eps=0.1),
      AttackConfig(name="pgd", eps=0.1, steps=20),
      # The honest figure (PGD alone can overestimate robustness), on 1,000 examples to
      # bound its cost: the figure a model card leads with.
      AttackConfig(name="autoattack", eps=0.1, params=(("num_examples", 1000),)),
  )
  num_examples: Optional[int] = None
  batch_size: int = 256
  threat_model: ThreatModel = ThreatModel.WHITE
  source_model_dir: Optional[str] = None
  unbounded_check: bool = False

  def __post_init__(self):
    object.__setattr__(self, "threat_model",
                       _choice(ThreatModel, self.threat_model, "threat_model"))

  def validate(self):
    for attack in self.attacks:
      attack.validate()
    if self.threat_model is ThreatModel.WHITE:
      _check(not self.source_model_dir, "source_model_dir",
             "none with --threat_model=white (the model attacks itself)",
             self.source_model_dir)
    else:
      _check(bool(self.source_model_dir), "source_model_dir",
             f"the model directory of the surrogate for --threat_model="
             f"{self.threat_model.value}", self.source_model_dir)
    _check(self.num_examples is None or self.num_examples >= 1, "num_examples",
           "a positive integer", self.num_examples)
    _check(self.batch_size >= 1, "eval_batch_size", "a positive integer", self.batch_size)
    return self
