"""Parsing attack lists such as `fgsm,pgd:steps=20:restarts=5` into `AttackConfig`s."""

import dataclasses

from tfadv import config as config_lib
from tfadv.attacks import registry

_FIELDS = {f.name: f for f in dataclasses.fields(config_lib.AttackConfig)}
_ALIASES = {"step": "step_size", "iters": "steps", "iterations": "steps"}


def _convert(key, raw, spec):
  if key == "norm":
    return raw
  if key == "random_start":
    if raw.lower() in ("1", "true", "yes"):
      return True
    if raw.lower() in ("0", "false", "no"):
      return False
  else:
    try:
      return int(raw) if key in ("steps", "restarts") else float(raw)
    except ValueError:
      pass
  raise ValueError(f"Invalid attacks: expected a {'boolean' if key == 'random_start' else 'number'}"
                   f" for {key!r} in {spec!r}; received {raw!r}")


def _convert_option(raw):
  """An attack option's value: a boolean, an int, a float, or else the string itself."""
  low = raw.lower()
  if low in ("true", "yes"):
    return True
  if low in ("false", "no"):
    return False
  for kind in (int, float):
    try:
      return kind(raw)
    except ValueError:
      pass
  return raw


def parse_attacks(text, eps_values):
  """Parses a comma-separated attack list, one `AttackConfig` per attack and eps.

  Args:
    text: e.g. `fgsm,pgd:steps=20,pgd:steps=100:restarts=2:norm=l2,cw_linf:steps=100`.
      Keys of fgsm/pgd: steps, step_size, restarts, random_start, norm, eps (overrides
      `eps_values`); other attacks take `eps`, `norm` and the keyword arguments of their
      function (`registry.parameters(name)`), e.g. `rays:queries=10000`, `mim:decay=0.9`.
    eps_values: sequence of epsilons each attack is run at.

  Raises:
    ValueError: unknown attack names or keys, or malformed values (naming the piece).
  """
  attacks = []
  for spec in [s.strip() for s in text.split(",") if s.strip()]:
    name, *pairs = spec.split(":")
    name = name.strip().lower()
    if name not in registry.ATTACKS:
      raise ValueError(f"Invalid attacks: expected names from "
                       f"[{', '.join(sorted(registry.ATTACKS))}]; received {name!r} in {text!r}")
    params = {}
    options = {}
    for pair in pairs:
      if "=" not in pair:
        raise ValueError(f"Invalid attacks: expected key=value after ':' in {spec!r}; "
                         f"received {pair!r}")
      key, raw = (s.strip() for s in pair.split("=", 1))
      key = _ALIASES.get(key, key)
      if name not in registry.FIELD_ATTACKS and key not in ("eps", "norm"):
        accepted = registry.parameters(name)
        if key not in accepted:
          raise ValueError(f"Invalid attacks: unknown key {key!r} in {spec!r}; valid keys: "
                           f"{', '.join(('eps', 'norm') + accepted)}")
        options[key] = _convert_option(raw)
        continue
      if key not in _FIELDS or key == "name":
        valid = ", ".join(sorted(k for k in _FIELDS if k != "name"))
        raise ValueError(f"Invalid attacks: unknown key {key!r} in {spec!r}; valid keys: "
                         f"{valid}")
      params[key] = _convert(key, raw, spec)
    if name == "fgsm":
      params.pop("steps", None)
    norms = registry.NORMS.get(name)
    if norms and "norm" not in params:
      params["norm"] = norms[0]  # e.g. cw_l2 is an L2 attack.
    for eps in ([params.pop("eps")] if "eps" in params else eps_values):
      attacks.append(config_lib.AttackConfig(name=name, eps=float(eps), params=options,
                                             **params).validate())
  if not attacks:
    raise ValueError(f"Invalid attacks: expected at least one attack; received {text!r}")
  return tuple(attacks)
