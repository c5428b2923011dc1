"""Attack registry: one name per attack, one calling convention.

Every entry is `attack(model_fn, x, y, **params) -> x_adv`, pure TensorFlow and safe inside
`tf.function`, with the result inside the threat ball and in [0, 1].
"""

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

ATTACKS = {
    "fgsm": fgsm_lib.fgsm,
    "pgd": pgd_lib.pgd,
    "trades": trades_lib.trades,  # TRADES inner maximisation (KL to the clean prediction)
    "bim": iterative.bim,
    "mim": iterative.mim,
    "cw_linf": cw.cw_linf,
    "cw_l2": cw.cw_l2,
    "stepll": stepll_lib.stepll,
    "iter_stepll": stepll_lib.iter_stepll,
    "spsa": spsa_lib.spsa,
    "apgd_ce": apgd_lib.apgd,
    "apgd_t": apgd_lib.apgd_t,
    "fab_t": fab_lib.fab_t,
    "square": square_lib.square,
    "autoattack": autoattack_lib.autoattack,
    "rays": rays_lib.rays,
    "a3": a3_lib.a3,  # Needs a model_fn from a3.with_gradcam (the evaluation wraps it).
    "fgsm_rs": fast_lib.fgsm_rs,  # Training attacks of fast AT (tfadv.attacks.fast).
    "n_fgsm": fast_lib.n_fgsm,  # Not projected onto the eps-ball: training only.
}

# Attacks configured by AttackConfig's own PGD fields (steps, step_size, random_start,
# restarts); every other attack takes its options from `AttackConfig.params`.
FIELD_ATTACKS = frozenset({"fgsm", "pgd", "trades"})

# Attacks defined for one norm only (all others accept linf and l2).
NORMS = {"cw_l2": ("l2",), "spsa": ("linf",), "rays": ("linf",), "fgsm_rs": ("linf",),
         "n_fgsm": ("linf",)}

_FIXED = ("model_fn", "x", "y", "eps", "norm", "seed")


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
  norms = NORMS.get(config.name, ("linf", "l2"))
  _check(config.norm.value in norms, "norm", f"one of [{', '.join(norms)}] for {config.name}",
         config.norm.value)
  if config.name not in FIELD_ATTACKS:
    default = config_lib.AttackConfig()
    for field in ("step_size", "steps", "random_start", "restarts"):
      _check(getattr(config, field) == getattr(default, field), field,
             f"the default for {config.name} (pass its options in params)",
             getattr(config, field))
    accepted = parameters(config.name)
    for key, _ in config.params:
      _check(key in accepted, "attack option",
             f"one of [{', '.join(accepted)}] for {config.name}", key)
  else:
    _check(not config.params, "params", f"none for {config.name} (use the fields)",
           config.params)
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


def from_config(config, seed=None):
  """Binds an `AttackConfig` (validated here) to a function `(model_fn, x, y) -> x_adv`.

  Args:
    config: a `tfadv.config.AttackConfig`.
    seed: optional int tensor [2] for stateless random starts (attacks with a `seed`).
  """
  validate(config)
  if config.name == "fgsm":
    return lambda model_fn, x, y: fgsm_lib.fgsm(model_fn, x, y, config.eps, config.norm)
  if config.name == "pgd":
    return lambda model_fn, x, y: pgd_lib.pgd(
        model_fn, x, y, config.eps, config.resolved_step_size, config.steps, config.norm,
        config.random_start, config.restarts, seed=seed)
  if config.name == "trades":
    return lambda model_fn, x, y: trades_lib.trades(
        model_fn, x, y, config.eps, config.resolved_step_size, config.steps, config.norm,
        seed=seed)
  fn = get(config.name)
  accepted = inspect.signature(fn).parameters
  kwargs = {"eps": config.eps, "norm": config.norm.value, **dict(config.params)}
  if "seed" in accepted and seed is not None:
    kwargs["seed"] = seed
  return lambda model_fn, x, y: fn(model_fn, x, y, **kwargs)
