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
  aad:    CE(adv) + alpha_r L_r + beta_p L_p on Madry PGD training (Wu et al., eq. 10):
          Grad-CAM rectification and preservation (weights rectification_weight,
          preservation_weight; default 0.01 each, the paper's best).
  alp_aad: alp + alpha_r L_r + beta_p L_p.
  trades: (1-f) CE(clean) + f CE(adv) + trades_beta KL(f(x) || f(x_adv)), with x_adv from
          the TRADES inner maximisation of that KL (Zhang et al., 2019; f = 0, beta = 6).
  at_alp_aad: at_alp + alpha_r L_r + beta_p L_p (both attention signals: activation-map
          pairing and Grad-CAM rectification/preservation).

The AAD recipes carry a forward hook (`tfadv.defenses.forwards.attention_forward`) that adds
Grad-CAM maps (`cam`) and, for L_r, logits on the masked images (`masked_logits`) to the
clean and adversarial outputs. A zero rectification weight drops L_r and the masked pass;
with both AAD weights zero the Grad-CAM pass goes too (the recipe is then alp, at_alp or
pat).
"""

import dataclasses
import functools
from typing import Callable, Optional, Tuple

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.defenses import forwards
from tfadv.losses import attention_pairing
from tfadv.losses import cross_entropy
from tfadv.losses import logit_pairing
from tfadv.losses import preservation
from tfadv.losses import rectification
from tfadv.losses import trades

# Default adversarial share of the cross-entropy per recipe (DefenseConfig.adv_ce_fraction).
_ADV_CE_FRACTION = {"none": 0.0, "pat": 1.0, "alp": 0.5, "at": 0.5, "at_alp": 0.5,
                    "aad": 1.0, "alp_aad": 0.5, "trades": 0.0, "at_alp_aad": 0.5}
_AAD = ("aad", "alp_aad", "at_alp_aad")
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
    forward: optional hook `(tapped, x, x_adv, y) -> (clean, adv)` replacing the plain
      tapped forward pass when the terms need more (Grad-CAM maps, masked images); see
      `tfadv.defenses.forwards`. None: the trainer's forward on concat(clean, adv).
  """
  name: str
  attack: Optional[config_lib.AttackConfig]
  needs_clean: bool
  terms: Tuple[Term, ...]
  forward: Optional[Callable] = None

  @property
  def needs_adv(self):
    return self.attack is not None


def settings(config):
  """The `DefenseConfig` fields that the recipe `config.name` reads, with their values.

  Reports list these (not every field of the config), so a reader sees the weights that
  shaped the training loss and no weight of a term the defense does not have.
  """
  keys = [] if config.name == "none" else ["adv_ce_fraction"]
  if config.name in ("alp", "at_alp", "alp_aad", "at_alp_aad"):
    keys.append("alp_weight")
  if config.name in ("at", "at_alp", "at_alp_aad"):
    keys += ["at_weight", "taps", "attention_p"]
  if config.name == "trades":
    keys = ["trades_beta"]
  if config.name in _AAD:
    keys += ["rectification_weight", "preservation_weight", "kappa"]
  return {key: getattr(config, key) for key in keys}


def build(config):
  """Builds the `Recipe` of a `DefenseConfig`.

  Raises:
    ValueError: for an unknown defense name (listing the valid ones) or invalid weights.
  """
  if config.name not in _ADV_CE_FRACTION:
    raise ValueError(f"Invalid defense: expected one of [{', '.join(DEFENSES)}]; "
                     f"received defense={config.name!r}")
  registry.validate(config)
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
  if config.name in ("alp", "at_alp", "alp_aad", "at_alp_aad"):
    terms.append(Term("alp", config.alp_weight, logit_pairing.logit_pairing_term))
  if config.name in ("at", "at_alp", "at_alp_aad"):
    terms.append(Term("at", config.at_weight,
                      attention_pairing.make_term(config.taps, config.attention_p)))
  attack, forward = config.attack, None
  if config.name == "trades":
    attack = dataclasses.replace(config.attack, name="trades")
    terms.append(Term("trades_kl", config.trades_beta, trades.kl_term))
  if config.name in _AAD:
    if config.rectification_weight > 0:
      terms.append(Term("rectification", config.rectification_weight,
                        rectification.rectification_term))
    if config.preservation_weight > 0:
      terms.append(Term("preservation", config.preservation_weight,
                        preservation.preservation_term))
    if config.rectification_weight > 0 or config.preservation_weight > 0:
      forward = functools.partial(forwards.attention_forward, kappa=config.kappa,
                                  masked=config.rectification_weight > 0)
  needs_clean = forward is not None or any(
      t.name in ("clean_ce", "alp", "at", "trades_kl") for t in terms)
  return Recipe(config.name, attack, needs_clean, tuple(terms), forward)
