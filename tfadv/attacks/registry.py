"""Attack registry: one name per attack, one calling convention.

Every entry is `attack(model_fn, x, y, **params) -> x_adv`, pure TensorFlow and safe inside
`tf.function`, with the result inside the threat ball and in [0, 1].
"""

import inspect

from tfadv.attacks import a3 as a3_lib
from tfadv.attacks import apgd as apgd_lib
from tfadv.attacks import autoattack as autoattack_lib
from tfadv.attacks import cw
from tfadv.attacks import fab as fab_lib
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
}

# Attacks configured by AttackConfig's own PGD fields (steps, step_size, random_start,
# restarts); every other attack takes its options from `AttackConfig.params`.
FIELD_ATTACKS = frozenset({"fgsm", "pgd", "trades"})

# Attacks defined for one norm only (all others accept linf and l2).
NORMS = {"cw_l2": ("l2",), "spsa": ("linf",), "square": ("linf",), "rays": ("linf",),
         "fab_t": ("linf",)}

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


def from_config(config, seed=None):
  """Binds an `AttackConfig` to a function `(model_fn, x, y) -> x_adv`.

  Args:
    config: a `tfadv.config.AttackConfig`.
    seed: optional int tensor [2] for stateless random starts (attacks with a `seed`).
  """
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
