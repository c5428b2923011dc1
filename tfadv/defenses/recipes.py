"""Defenses as data: a training attack and weighted loss terms.

A recipe says which forward passes a step needs (clean, adversarial), how adversarial
examples are made, and the per-example loss terms with their weights. The trainer only
evaluates recipes; adding a defense means adding an entry here (and its loss term if new).

Recipes:
  none:   CE(clean).
  pat:    CE(adv), PGD adversarial training (Madry et al., 2018).
  alp:    (1-f) CE(clean) + f CE(adv) + alpha ALP (Kannan et al., 2018; f = 0.5).
  at:     (1-f) CE(clean) + f CE(adv) + beta AT (attention pairing alone).
  at_alp: (1-f) CE(clean) + f CE(adv) + alpha ALP + beta AT (Goodman et al., eq. 2).
"""

import dataclasses
from typing import Callable, Optional, Tuple

from tfadv import config as config_lib
from tfadv.losses import attention_pairing
from tfadv.losses import cross_entropy
from tfadv.losses import logit_pairing

# Default adversarial share of the cross-entropy per recipe (DefenseConfig.adv_ce_fraction).
_ADV_CE_FRACTION = {"none": 0.0, "pat": 1.0, "alp": 0.5, "at": 0.5, "at_alp": 0.5}
DEFENSES = tuple(_ADV_CE_FRACTION)


@dataclasses.dataclass(frozen=True)
class Term:
  """A weighted per-example loss term: `fn(forward) -> [B]`."""
  name: str
  weight: float
  fn: Callable


@dataclasses.dataclass(frozen=True)
class Recipe:
  """What one training step of a defense computes.

  Attributes:
    name: the defense name.
    attack: the training attack (run with the true labels), or None.
    needs_clean: whether a forward pass on the clean images is needed.
    terms: the weighted loss terms; the step loss is their weighted sum.
  """
  name: str
  attack: Optional[config_lib.AttackConfig]
  needs_clean: bool
  terms: Tuple[Term, ...]

  @property
  def needs_adv(self):
    return self.attack is not None


def build(config):
  """Builds the `Recipe` of a `DefenseConfig`.

  Raises:
    ValueError: for an unknown defense name (listing the valid ones) or invalid weights.
  """
  if config.name not in _ADV_CE_FRACTION:
    raise ValueError(f"Invalid defense: expected one of [{', '.join(DEFENSES)}]; "
                     f"received defense={config.name!r}")
  config.validate()
  if config.name == "none":
    return Recipe("none", None, True,
                  (Term("clean_ce", 1.0, cross_entropy.clean_cross_entropy),))
  f = config.adv_ce_fraction
  if f is None:
    f = _ADV_CE_FRACTION[config.name]
  terms = []
  if f < 1.0:
    terms.append(Term("clean_ce", 1.0 - f, cross_entropy.clean_cross_entropy))
  if f > 0.0:
    terms.append(Term("adv_ce", f, cross_entropy.adversarial_cross_entropy))
  if config.name in ("alp", "at_alp"):
    terms.append(Term("alp", config.alp_weight, logit_pairing.logit_pairing_term))
  if config.name in ("at", "at_alp"):
    terms.append(Term("at", config.at_weight,
                      attention_pairing.make_term(config.taps, config.attention_p)))
  needs_clean = any(t.name in ("clean_ce", "alp", "at") for t in terms)
  return Recipe(config.name, config.attack, needs_clean, tuple(terms))
