"""A defense config resolved into what one training step computes.

`build(config)` looks the defense up in `tfadv.defenses.table`, applies the config's
overrides (attack budget, term weights and options, added terms, wrapper options) and
returns a `Recipe`: the training attack, the bound loss terms, and the forward function
derived from the passes the terms read. Nothing here tests a defense's name: what differs
between defenses is in the table.
"""

import dataclasses
from typing import Callable, Dict, Optional, Tuple

from tfadv import config as config_lib
from tfadv.attacks import eps_draws
from tfadv.attacks import registry as attacks
from tfadv.defenses import forwards
from tfadv.defenses import models
from tfadv.defenses import table
from tfadv.losses import registry as terms_lib

DEFENSES = table.NAMES


@dataclasses.dataclass(frozen=True)
class Term:
  """A bound, weighted per-example loss term: `fn(forward) -> [B]`."""
  name: str
  weight: float
  fn: Callable
  options: Dict[str, object] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """What one training step of a defense computes.

  Attributes:
    name: the defense name.
    attack: the training attack config (run with the true labels), or None when no term
      reads adversarial images.
    terms: the weighted loss terms; the step loss is their weighted sum.
    passes: the forward passes the terms read (`tfadv.losses.registry.PASSES`).
    forward: `(tapped, x, x_adv, y) -> Forward` computing those passes (the record the
      terms read).
    wrapper: the model wrapper name, or None.
    wrapper_options: its resolved options.
    static_sources: the attack alternates between the trained model and static models.
    randomized: the model's output is random at inference.
    single_step: the training attack is single-step (watch for catastrophic overfitting).
    attack_training_mode: the training attack runs the model with `training=True`
      (BatchNorm on batch statistics), as the fast-AT references do.
    eps_draw: how the training attack's eps is drawn (`tfadv.attacks.eps_draws`).
  """
  name: str
  attack: Optional[config_lib.AttackConfig]
  terms: Tuple[Term, ...]
  passes: frozenset
  forward: Callable
  wrapper: Optional[str] = None
  wrapper_options: Dict[str, object] = dataclasses.field(default_factory=dict)
  static_sources: bool = False
  randomized: bool = False
  single_step: bool = False
  attack_training_mode: bool = False
  eps_draw: str = "fixed"

  @property
  def needs_adv(self):
    return "adv" in self.passes

  @property
  def needs_clean(self):
    return "clean" in self.passes


def resolve_terms(config):
  """The defense's terms after the config's overrides: `[(name, weight, options)]`.

  A `TermConfig` naming a term of the defense replaces its weight and updates its options;
  a new name adds the term; weight 0 drops it. Options are checked by the term registry.
  """
  defense = table.get(config.name)
  resolved = {}
  for entry in defense.terms:
    name, weight, options = (tuple(entry) + ({},))[:3]
    resolved[name] = (float(weight), dict(options))
  for override in config.terms:
    _, options = resolved.get(override.name, (0.0, {}))
    resolved[override.name] = (override.weight, {**options, **dict(override.options)})
  out = []
  for name, (weight, options) in resolved.items():
    options = terms_lib.resolve_options(name, options)
    if weight > 0:
      out.append((name, weight, options))
  if not out:
    raise ValueError(f"Invalid terms: expected at least one term with a positive weight for "
                     f"defense {config.name}; received {[t.name for t in config.terms]} "
                     "all at weight 0")
  return out


def with_label_smoothing(config, smoothing):
  """`config` with `label_smoothing` set on every term that takes it (the cross-entropies).

  A term whose options already set it keeps its own value.
  """
  if not smoothing:
    return config
  overrides = {t.name: t for t in config.terms}
  for name, weight, _ in resolve_terms(config):
    if "label_smoothing" not in terms_lib.get(name).defaults():
      continue
    term = overrides.get(name, config_lib.TermConfig(name, weight))
    options = dict(term.options)
    options.setdefault("label_smoothing", float(smoothing))
    overrides[name] = dataclasses.replace(term, options=options)
  return dataclasses.replace(config, terms=tuple(overrides.values()))


def training_attack(config, name):
  """The `AttackConfig` of training attack `name` with the config's budget."""
  base = config.attack
  if name in attacks.FIELD_ATTACKS:
    return dataclasses.replace(base, name=name)
  return config_lib.AttackConfig(name=name, eps=base.eps, norm=base.norm, params=base.params)


def build(config):
  """Builds the `Recipe` of a `DefenseConfig`.

  Raises:
    ValueError: an unknown defense, term or option (listing the valid ones), invalid
      weights, or static models missing / given where the defense takes none.
  """
  defense = table.get(config.name)
  config.validate()
  resolved = resolve_terms(config)
  bound = tuple(Term(name, weight, terms_lib.get(name).bind(options), options)
                for name, weight, options in resolved)
  passes = frozenset().union(*(terms_lib.get(name).needs for name, _, _ in resolved))
  attack = None
  if "adv" in passes:
    attack = attacks.validate(training_attack(config, defense.attack or "pgd"))
  if defense.static_sources and not config.static_model_dirs:
    raise ValueError(f"Invalid static_model_dirs: defense {config.name} trains on adversarial "
                     "examples of static pre-trained models; expected --static_model_dirs="
                     "DIR[,DIR...] (model directories written by tfadv-train); received none")
  if config.static_model_dirs and not defense.static_sources:
    raise ValueError(f"Invalid static_model_dirs: defense {config.name} takes no static "
                     f"models (ensemble_at does); received {list(config.static_model_dirs)}")
  eps_draw = eps_draws.validate(config.eps_draw or defense.eps_draw,
                                attack.name if attack else None,
                                tuple(s.name for s in attacks.SPECS if s.tensor_eps))
  kappa = next((o.get("kappa") for name, _, o in resolved if name == "rectification"), None)
  wrapper_options = models.resolve_wrapper_options(defense.wrapper, config.wrapper_options)
  return Recipe(
      name=config.name, attack=attack, terms=bound, passes=passes,
      forward=forwards.make_forward(passes, joint=defense.joint, kappa=kappa),
      wrapper=defense.wrapper, wrapper_options=wrapper_options,
      static_sources=defense.static_sources, randomized=defense.randomized,
      single_step=defense.single_step, attack_training_mode=defense.attack_training_mode,
      eps_draw=eps_draw)


def settings(config):
  """What shaped the training loss, flat for reports: attack, terms, options, wrapper.

  Example: `{"attack": "pgd", "clean_ce": 0.5, "adv_ce": 0.5, "alp": 0.5, "at": 1.0,
  "at.taps": (0, 1, 2, 3), "at.p": 2.0}`.
  """
  recipe = build(config)
  out = {"attack": recipe.attack.name if recipe.attack else None}
  if recipe.attack_training_mode:
    out["attack_training_mode"] = True
  if recipe.eps_draw != "fixed":
    out["attack.eps_draw"] = recipe.eps_draw
  for term in recipe.terms:
    out[term.name] = term.weight
    # An option left at None means "all" (at.taps: every tap the model has).
    out.update({f"{term.name}.{k}": ("all" if v is None and k == "taps" else v)
                for k, v in term.options.items()})
  if recipe.wrapper:
    out["wrapper"] = recipe.wrapper
    out.update({f"{recipe.wrapper}.{k}": v for k, v in recipe.wrapper_options.items()})
  if config.static_model_dirs:
    out["static_model_dirs"] = list(config.static_model_dirs)
  return out
