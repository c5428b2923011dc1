"""Attack registry: one record (`Spec`) per attack, one calling convention.

Every entry is `attack(model_fn, x, y, **params) -> x_adv`, pure TensorFlow and safe inside
`tf.function`, with the result inside the threat ball and in [0, 1].
"""

import dataclasses
import inspect

from tfadv import config as config_lib
from tfadv.attacks import a3 as a3_lib
from tfadv.attacks import apgd as apgd_lib
from tfadv.attacks import autoattack as autoattack_lib
from tfadv.attacks import cw
from tfadv.attacks import fab as fab_lib
from tfadv.attacks import fast as fast_lib
from tfadv.attacks import fgsm as fgsm_lib
from tfadv.attacks import iterative
from tfadv.attacks import pgd as pgd_lib
from tfadv.attacks import rays as rays_lib
from tfadv.attacks import square as square_lib
from tfadv.attacks import spsa as spsa_lib
from tfadv.attacks import stepll as stepll_lib
from tfadv.attacks import trades as trades_lib

_BOTH = ("linf", "l2")


@dataclasses.dataclass(frozen=True)
class Spec:
  """One attack as data: what the registry, the `--attacks` parser and the evaluation need.

  Attributes:
    name: the registry name (`--attacks=name:key=value`).
    fn: `fn(model_fn, x, y, eps, norm, **options) -> x_adv`; its keyword arguments besides
      model_fn, x, y, eps, norm and seed are the option schema (`parameters(name)`).
    norms: the norms it is defined for.
    fields: configured by `AttackConfig`'s PGD fields (steps, step_size, ...), not params.
    gradcam: needs a `model_fn` from `a3.with_gradcam` (the evaluation wraps the model).
    randomized: handles randomized models itself (expectation over transformation).
    eot: the options that switch that handling on, which the evaluation of a randomized
      defense adds unless the user set them (`autoattack`: version=rand).
    training_only: meant for training (e.g. not projected onto the eps-ball).
    tensor_eps: takes eps as a tensor ([] or [B, 1, 1, 1]; it only scales and clips by it),
      so a training eps drawn per batch or per example (`tfadv.attacks.eps_draws`) works.
  """
  name: str
  fn: object
  norms: tuple = _BOTH
  fields: bool = False
  gradcam: bool = False
  randomized: bool = False
  eot: tuple = ()
  training_only: bool = False
  tensor_eps: bool = False


SPECS = (
    Spec("fgsm", fgsm_lib.fgsm, fields=True, tensor_eps=True),
    Spec("pgd", pgd_lib.pgd, fields=True, tensor_eps=True),
    # TRADES inner maximisation (KL to the clean prediction).
    Spec("trades", trades_lib.trades, fields=True),
    Spec("bim", iterative.bim),
    Spec("mim", iterative.mim),
    Spec("cw_linf", cw.cw_linf),
    Spec("cw_l2", cw.cw_l2, norms=("l2",)),
    Spec("stepll", stepll_lib.stepll, tensor_eps=True),
    Spec("iter_stepll", stepll_lib.iter_stepll),
    Spec("spsa", spsa_lib.spsa, norms=("linf",)),
    Spec("apgd_ce", apgd_lib.apgd, randomized=True, eot=(("eot_iter", 20),)),
    Spec("apgd_t", apgd_lib.apgd_t),
    Spec("fab_t", fab_lib.fab_t),
    Spec("square", square_lib.square),
    Spec("autoattack", autoattack_lib.autoattack, randomized=True,
         eot=(("version", "rand"),)),
    Spec("rays", rays_lib.rays, norms=("linf",)),
    Spec("a3", a3_lib.a3, gradcam=True),
    # Training attacks of fast AT (tfadv.attacks.fast); N-FGSM is not projected.
    Spec("fgsm_rs", fast_lib.fgsm_rs, norms=("linf",), training_only=True),
    Spec("n_fgsm", fast_lib.n_fgsm, norms=("linf",), training_only=True),
)

SPEC = {spec.name: spec for spec in SPECS}


def for_randomized_model(config):
  """`config` with its attack's EOT options added (unless set): for randomized defenses.

  Returns:
    (config, handled): the attack config, and whether the attack averages over the model's
    randomness (an attack without EOT handling gives an upper bound on such a model).
  """
  spec_ = SPEC[config.name]
  if not spec_.randomized:
    return config, False
  params = dict(config.params)
  for key, value in spec_.eot:
    params.setdefault(key, value)
  return dataclasses.replace(config, params=tuple(sorted(params.items()))), True

# Views of the table kept for their users (specs.py, the trainer, tests).
ATTACKS = {spec.name: spec.fn for spec in SPECS}

# Attacks configured by AttackConfig's own PGD fields (steps, step_size, random_start,
# restarts); every other attack takes its options from `AttackConfig.params`.
FIELD_ATTACKS = frozenset(spec.name for spec in SPECS if spec.fields)

# Attacks defined for one norm only (all others accept linf and l2).
NORMS = {spec.name: spec.norms for spec in SPECS if spec.norms != _BOTH}


def needs_gradcam(name):
  """Whether attack `name` needs a `model_fn` from `a3.with_gradcam`."""
  return spec(name).gradcam


def spec(name):
  """The `Spec` of attack `name`, or a ValueError listing the names."""
  get(name)
  return SPEC[name]


_FIXED = ("model_fn", "x", "y", "eps", "norm", "seed")

# Options every attack takes that the evaluation reads instead of the attack function
# (`num_examples`: the attack runs on the first that many test examples).
EVAL_OPTIONS = ("num_examples",)


def parameters(name):
  """The options (keyword arguments besides model_fn, x, y, eps, norm, seed) of an attack."""
  signature = inspect.signature(get(name))
  return tuple(p for p in signature.parameters if p not in _FIXED)


def get(name):
  """Returns the attack function called `name`, or raises a ValueError listing the names."""
  try:
    return ATTACKS[name]
  except KeyError:
    raise ValueError(f"Invalid attack: expected one of [{', '.join(sorted(ATTACKS))}]; "
                     f"received attack={name!r}") from None


def _check(condition, argument, expected, value):
  if not condition:
    raise ValueError(f"Invalid {argument}: expected {expected}; received {argument}={value!r}")


def _validate_attack(config):
  _check(config.name in ATTACKS, "attack", f"one of [{', '.join(sorted(ATTACKS))}]",
         config.name)
  norms = SPEC[config.name].norms
  _check(config.norm.value in norms, "norm", f"one of [{', '.join(norms)}] for {config.name}",
         config.norm.value)
  if not SPEC[config.name].fields:
    default = config_lib.AttackConfig()
    for field in ("step_size", "steps", "random_start", "restarts"):
      _check(getattr(config, field) == getattr(default, field), field,
             f"the default for {config.name} (pass its options in params)",
             getattr(config, field))
    accepted = parameters(config.name) + EVAL_OPTIONS
    for key, _ in config.params:
      _check(key in accepted, "attack option",
             f"one of [{', '.join(accepted)}] for {config.name}", key)
  else:
    extra = tuple(p for p in config.params if p[0] not in EVAL_OPTIONS)
    _check(not extra, "params", f"none for {config.name} (use the fields; "
           f"{', '.join(EVAL_OPTIONS)} only)", extra)
  config.validate()


def validate(config):
  """Validates a config's attacks against the registry, then the config itself.

  `config.validate()` checks what needs no registry (eps, steps, ...); this adds the name
  (listing the registered ones), the norms the attack supports and the names of its
  options. Called where configs are built: `specs.parse_attacks`, the CLIs'
  `common_flags`, `recipes.build`, `workflow.evaluate_model` and `from_config`.

  Args:
    config: an `AttackConfig`, or a `DefenseConfig` / `EvalConfig` (each of its attacks).

  Returns:
    `config`.

  Raises:
    ValueError: naming the field, what was expected and what was received.
  """
  if isinstance(config, config_lib.AttackConfig):
    _validate_attack(config)
  elif isinstance(config, config_lib.DefenseConfig):
    _validate_attack(config.attack)
    config.validate()
  elif isinstance(config, config_lib.EvalConfig):
    for attack in config.attacks:
      _validate_attack(attack)
    config.validate()
  else:
    raise TypeError(f"validate: expected an AttackConfig, DefenseConfig or EvalConfig; "
                    f"received {type(config).__name__}")
  return config


def from_config(config, seed=None, eps=None):
  """Binds an `AttackConfig` (validated here) to a function `(model_fn, x, y) -> x_adv`.

  Args:
    config: a `tfadv.config.AttackConfig`.
    seed: optional int tensor [2] for stateless random starts (attacks with a `seed`).
    eps: optional drawn eps (a tensor, `tfadv.attacks.eps_draws`) replacing `config.eps`
      for attacks whose spec has `tensor_eps`; the step size keeps its ratio to eps.
  """
  validate(config)
  step_size = config.resolved_step_size
  if eps is None:
    eps = config.eps
  elif config.eps:
    step_size = step_size * (eps / config.eps)
  if config.name == "fgsm":
    return lambda model_fn, x, y: fgsm_lib.fgsm(model_fn, x, y, eps, config.norm)
  if config.name == "pgd":
    return lambda model_fn, x, y: pgd_lib.pgd(
        model_fn, x, y, eps, step_size, config.steps, config.norm,
        config.random_start, config.restarts, seed=seed)
  if config.name == "trades":
    return lambda model_fn, x, y: trades_lib.trades(
        model_fn, x, y, eps, step_size, config.steps, config.norm,
        seed=seed)
  fn = get(config.name)
  accepted = inspect.signature(fn).parameters
  kwargs = {"eps": eps, "norm": config.norm.value,
            **{k: v for k, v in config.params if k not in EVAL_OPTIONS}}
  if "seed" in accepted and seed is not None:
    kwargs["seed"] = seed
  return lambda model_fn, x, y: fn(model_fn, x, y, **kwargs)
