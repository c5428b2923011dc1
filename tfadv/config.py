"""Frozen configuration records for every knob of tfadv.

Configs are built at the boundary (CLIs, tests, notebooks) and validated there with
`validate()`; the library below never reads flags. Strings from the command line become
enums here, so a typo fails early with the list of valid values.
"""

import dataclasses
import enum
import math
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
    validation_fraction: for a folder without `train/` and `test/`, the fraction of each
      class held out for testing.
    shuffle_buffer: size of the shuffle buffer for training data.
    seed: seed of the split and of shuffling.
  """
  name: str = "fashion_mnist"
  data_dir: Optional[str] = None
  image_size: Optional[Tuple[int, int]] = None
  validation_fraction: float = 0.2
  shuffle_buffer: int = 10_000
  seed: int = 0

  def validate(self):
    _check(bool(self.name), "dataset", "a dataset name", self.name)
    if self.image_size is not None:
      _check(len(self.image_size) == 2 and all(int(s) > 0 for s in self.image_size),
             "image_size", "two positive integers (height, width)", self.image_size)
    _check(0.0 < self.validation_fraction < 1.0, "validation_fraction",
           "a fraction in (0, 1)", self.validation_fraction)
    _check(self.shuffle_buffer >= 1, "shuffle_buffer", "a positive integer", self.shuffle_buffer)
    return self


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Which architecture.

  Attributes:
    name: `small_cnn`, `resnet18` (CIFAR-style), `resnet50`, `resnet101`, `resnet152`.
    weights: None (random init) or `imagenet` (keras.applications ResNets only).
    width: base number of filters for `small_cnn` and `resnet18`.
  """
  name: str = "small_cnn"
  weights: Optional[str] = None
  width: int = 32

  def validate(self):
    _check(self.weights in (None, "imagenet"), "weights", "None or 'imagenet'", self.weights)
    _check(self.width >= 1, "width", "a positive integer", self.width)
    return self


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """An attack under an L-inf or L2 budget, in [0, 1] pixel units.

  Attributes:
    name: a name of `tfadv.attacks.registry.ATTACKS` (`fgsm`, `pgd`, `bim`, `cw_linf`, ...).
    eps: radius of the threat ball.
    step_size: PGD step; None means 2.5 * eps / steps (Madry et al.).
    steps: PGD iterations.
    norm: `linf` or `l2`.
    random_start: start PGD from a uniform point of the ball.
    restarts: PGD restarts (evaluation); the worst case per example is kept.
    params: options of attacks other than `fgsm`/`pgd`, as sorted (key, value) pairs passed
      to the attack function as keyword arguments (e.g. `(("steps", 100),)` for `cw_linf`,
      `(("queries", 10000),)` for `rays`); the fields above are PGD's.
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
    object.__setattr__(self, "norm", _choice(Norm, self.norm, "norm"))
    params = self.params.items() if isinstance(self.params, dict) else self.params
    object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in params)))

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
    return self


@dataclasses.dataclass(frozen=True)
class DefenseConfig:
  """A defense recipe and its weights.

  Attributes:
    name: `none`, `pat`, `alp`, `at`, `at_alp`, `aad`, `alp_aad`, `trades`, `at_alp_aad`
      (see `tfadv.defenses.recipes`).
    attack: the training attack (PGD with the true labels).
    alp_weight: alpha, weight of adversarial logit pairing.
    at_weight: beta, weight of attention-map pairing.
    taps: indices of the taps (stages) whose attention maps are paired.
    attention_p: exponent p of F(A) = sum_c |A_c|^p, and the norm of the AT difference.
    adv_ce_fraction: weight of the adversarial part of the cross-entropy,
      `(1 - f) * CE(clean) + f * CE(adv)`; None takes the recipe's default (`pat`: 1,
      the pairing recipes: 0.5, Kannan et al.'s mixed minibatch).
    rectification_weight: alpha of AAD, weight of the attention rectification L_r.
    preservation_weight: beta of AAD, weight of the attention preservation L_p.
    kappa: attention-area threshold on the max-scaled Grad-CAM map; None uses each image's
      mean (the AAD paper's default), a float in [0, 1] a fixed threshold.
    trades_beta: beta of TRADES, weight of KL(f(x) || f(x_adv)).
  """
  name: str = "at_alp"
  attack: AttackConfig = AttackConfig()
  alp_weight: float = 0.5
  at_weight: float = 1.0
  taps: Tuple[int, ...] = (0, 1, 2, 3)
  attention_p: float = 2.0
  adv_ce_fraction: Optional[float] = None
  rectification_weight: float = 0.01
  preservation_weight: float = 0.01
  kappa: Optional[float] = None
  trades_beta: float = 6.0

  def validate(self):
    self.attack.validate()
    _check(self.rectification_weight >= 0, "rectification_weight", "a non-negative weight",
           self.rectification_weight)
    _check(self.preservation_weight >= 0, "preservation_weight", "a non-negative weight",
           self.preservation_weight)
    _check(self.kappa is None or 0.0 <= self.kappa <= 1.0, "kappa",
           "None (per-image mean) or a threshold in [0, 1]", self.kappa)
    _check(self.trades_beta >= 0, "trades_beta", "a non-negative weight", self.trades_beta)
    _check(self.alp_weight >= 0, "alp_weight", "a non-negative weight", self.alp_weight)
    _check(self.at_weight >= 0, "at_weight", "a non-negative weight", self.at_weight)
    _check(len(self.taps) >= 1 and all(0 <= t <= 3 for t in self.taps), "at_taps",
           "tap indices in 0..3", self.taps)
    _check(self.attention_p > 0, "attention_p", "a positive exponent", self.attention_p)
    _check(self.adv_ce_fraction is None or 0.0 <= self.adv_ce_fraction <= 1.0, "adv_ce_fraction", "a fraction in [0, 1]",
           self.adv_ce_fraction)
    return self


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
    weight_decay: decoupled weight decay (AdamW / SGDW style), 0 to disable.
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

  def __post_init__(self):
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
    return self


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """What robustness evaluation runs.

  Attributes:
    attacks: attack configs; each is reported under `name` (e.g. `pgd20`).
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
