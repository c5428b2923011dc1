"""Attack registry: one name per attack, one calling convention.

Every entry is `attack(model_fn, x, y, **params) -> x_adv`, pure TensorFlow and safe inside
`tf.function`, with the result inside the threat ball and in [0, 1].
"""

from tfadv.attacks import fgsm as fgsm_lib
from tfadv.attacks import pgd as pgd_lib
from tfadv.attacks import trades as trades_lib

ATTACKS = {
    "fgsm": fgsm_lib.fgsm,
    "pgd": pgd_lib.pgd,
    "trades": trades_lib.trades,  # TRADES inner maximisation (KL to the clean prediction)
}


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
    seed: optional int tensor [2] for stateless random starts (PGD only).
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
  return get(config.name)
