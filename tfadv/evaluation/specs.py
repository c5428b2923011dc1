"""Parsing attack lists such as `fgsm,pgd:steps=20:restarts=5` into `AttackConfig`s.

A value may list alternatives separated by `|`: `pgd:steps=10|20|50|100|200` is the
accuracy-vs-iterations curve of the AT+ALP paper (Figure 3), five PGD attacks; several keys
with alternatives give every combination.
"""

import dataclasses
import itertools

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
    try:  # eps and step_size may be fractions: pgd:eps=8/255:step_size=2/255.
      return int(raw) if key in ("steps", "restarts") else config_lib.parse_number(raw, key)
    except ValueError:
      pass
  expected = {"random_start": "a boolean", "steps": "a number", "restarts": "a number"}.get(
      key, "a number (or a fraction such as 8/255)")
  raise ValueError(f"Invalid attacks: expected {expected} for {key!r} in {spec!r}; "
                   f"received {raw!r}")


def _convert_option(raw):
  """An attack option's value: a boolean, an int, a float, a fraction (`2/255`, its value)
  or else the string itself."""
  low = raw.lower()
  if low in ("true", "yes"):
    return True
  if low in ("false", "no"):
    return False
  for kind in (int, lambda text: config_lib.parse_number(text, "option")):
    try:
      return kind(raw)
    except ValueError:
      pass
  return raw


def _alternatives(spec):
  """Expands `name:k=a|b:j=c` into `name:k=a:j=c`, `name:k=b:j=c` (in that order)."""
  name, *pairs = spec.split(":")
  choices = []
  for pair in pairs:
    key, sep, raw = pair.partition("=")
    values = [v.strip() for v in raw.split("|")]
    if sep and len(values) > 1 and not all(values):
      raise ValueError(f"Invalid attacks: expected values separated by '|' for {key.strip()!r}"
                       f" in {spec!r}; received {raw!r}")
    choices.append([f"{key}={v}" for v in values] if sep and len(values) > 1 else [pair])
  return [":".join((name,) + combo) for combo in itertools.product(*choices)]


def steps_curve(steps, attack="pgd"):
  """The spec of an accuracy-vs-iterations curve, e.g. `pgd:steps=10|20|50`.

  Args:
    steps: iteration counts (strings or ints), e.g. the `--pgd_curve` flag's list.
    attack: the iterative attack (a name taking `steps`).

  Raises:
    ValueError: a count that is not a positive integer (naming `pgd_curve`).
  """
  counts = []
  for raw in steps:
    try:
      count = int(str(raw).strip())
    except ValueError:
      count = 0
    if count < 1:
      raise ValueError(f"Invalid pgd_curve: expected positive integers (attack iterations, "
                       f"e.g. 10,20,50,100,200); received pgd_curve="
                       f"{','.join(str(s) for s in steps)!r}")
    counts.append(str(count))
  return f"{attack}:steps={'|'.join(counts)}"


def parse_attacks(text, eps_values, norm=None):
  """Parses a comma-separated attack list, one `AttackConfig` per attack and eps.

  Args:
    text: e.g. `fgsm,pgd:steps=20,pgd:steps=100:restarts=2:norm=l2,cw_linf:steps=100`;
      `pgd:steps=10|20|50` expands to one attack per value. Repeated attacks count once.
      Keys of fgsm/pgd: steps, step_size, restarts, random_start, norm, eps (overrides
      `eps_values`); every attack takes `num_examples` (run on the first that many test
      examples, e.g. `autoattack:num_examples=1000`); other attacks take `eps`, `norm` and the keyword arguments of their
      function (`registry.parameters(name)`), e.g. `rays:queries=10000`, `mim:decay=0.9`.
    eps_values: sequence of epsilons each attack is run at (numbers, or strings that may
      be fractions: "8/255").
    norm: the norm of attacks that set none and support it (the training norm, `linf` or
      `l2`); None or an unsupported norm leaves each attack its own first norm (`linf`,
      `l2` for cw_l2).

  Raises:
    ValueError: unknown attack names or keys, or malformed values (naming the piece).
  """
  attacks = []
  specs = [s.strip() for s in text.split(",") if s.strip()]
  for spec in [one for s in specs for one in _alternatives(s)]:
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
      if key in registry.EVAL_OPTIONS:  # e.g. autoattack:num_examples=1000
        options[key] = _convert_option(raw)
        continue
      if name not in registry.FIELD_ATTACKS and key not in ("eps", "norm"):
        accepted = registry.parameters(name) + registry.EVAL_OPTIONS
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
    norms = registry.spec(name).norms
    if "norm" not in params:
      default = getattr(norm, "value", norm)
      params["norm"] = default if default in norms else norms[0]  # cw_l2 is an L2 attack.
    for eps in ([params.pop("eps")] if "eps" in params else eps_values):
      attack = registry.validate(config_lib.AttackConfig(name=name,
                                                         eps=config_lib.parse_number(eps, "eps"),
                                                         params=options, **params))
      if attack not in attacks:
        attacks.append(attack)
  if not attacks:
    raise ValueError(f"Invalid attacks: expected at least one attack; received {text!r}")
  return tuple(attacks)
