"""Every defense as one record: its training attack, weighted loss terms and model wrapper.

A defense is data: `at_alp = PGD + 0.5 CE(clean) + 0.5 CE(adv) + 0.5 ALP + 1.0 AT`. The
trainer derives everything a step does from the record (which attack, which forward passes,
which terms) and never tests a defense's name. Adding a defense = adding one `Defense` here
(and, if it needs a new loss term, one module under `tfadv/losses/` registered in
`tfadv.losses.registry`; if it changes the network, one wrapper in
`tfadv.defenses.models.WRAPPERS`).
"""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Defense:
  """One defense.

  Attributes:
    name: the `--defense` name.
    terms: default weighted terms `(name, weight)` or `(name, weight, options-dict)`.
    attack: the training attack (a name of `tfadv.attacks.registry`) used when a term reads
      adversarial images; its budget (eps, steps, ...) comes from `DefenseConfig.attack`.
    wrapper: a model wrapper of `tfadv.defenses.models.WRAPPERS`, or None (the plain model).
    joint: clean and adversarial images in one BatchNorm batch (True; Kannan et al.'s mixed
      minibatch) or in separate passes (False; the TRADES reference).
    static_sources: the attack also runs on static pre-trained models
      (`DefenseConfig.static_model_dirs`), one source per step in turn.
    randomized: the model's output is random at inference; evaluation needs expectation
      over transformation (AutoAttack's `rand` version).
    single_step: the training attack takes one gradient step (fast AT): validation also
      watches for catastrophic overfitting (`tfadv.training.overfitting`).
    attack_training_mode: the training attack runs the model in training mode (BatchNorm
      on the batch's statistics, its moving averages updated by the attack's forward pass
      too), as the fast-AT references attack a model in `model.train()`
      (locuslab/fast_adversarial's FGSM-RS, and N-FGSM built on it). False: the attack sees
      the model in inference mode (the other defenses).
    eps_draw: how the training attack's eps is drawn each step, a name of
      `tfadv.attacks.eps_draws.DRAWS` relative to the configured eps (`fixed`: every
      example at eps; `DefenseConfig.eps_draw` overrides it).
    source: the paper.
  """
  name: str
  terms: Tuple[tuple, ...]
  attack: Optional[str] = "pgd"
  wrapper: Optional[str] = None
  joint: bool = True
  static_sources: bool = False
  randomized: bool = False
  single_step: bool = False
  attack_training_mode: bool = False
  eps_draw: str = "fixed"
  source: str = ""


_MIXED = (("clean_ce", 0.5), ("adv_ce", 0.5))
_AAD = (("rectification", 0.01), ("preservation", 0.01))

DEFENSES = {d.name: d for d in (
    Defense("none", (("clean_ce", 1.0),), attack=None, source="no defense"),
    Defense("pat", (("adv_ce", 1.0),), source="Madry et al. 2018 (PGD adversarial training)"),
    Defense("alp", _MIXED + (("alp", 0.5),), source="Kannan et al. 2018"),
    Defense("at", _MIXED + (("at", 1.0),), source="Goodman, Li et al. (attention pairing alone)"),
    Defense("at_alp", _MIXED + (("alp", 0.5), ("at", 1.0)),
            source="Goodman, Li et al. (AT+ALP, eq. 2)"),
    Defense("aad", _MIXED + _AAD, source="Wu et al. 2022 (AAD, eq. 10)"),
    Defense("alp_aad", _MIXED + (("alp", 0.5),) + _AAD, source="Wu et al. 2022 (ALP + AAD)"),
    Defense("at_alp_aad", _MIXED + (("alp", 0.5), ("at", 1.0)) + _AAD,
            source="ours (both attention signals)"),
    Defense("trades", (("clean_ce", 1.0), ("trades_kl", 6.0)), attack="trades", joint=False,
            source="Zhang et al. 2019 (TRADES)"),
    Defense("igr", (("clean_ce", 1.0), ("igr", 10.0)), attack=None,
            source="Ross & Doshi-Velez 2018 (input gradient regularisation)"),
    Defense("rat", (("adv_ce", 1.0),), wrapper="noise", randomized=True,
            source="Araujo et al. 2019 (randomized adversarial training)"),
    Defense("randomization", (("clean_ce", 1.0),), wrapper="randomization", randomized=True,
            source="Xie et al. 2018 (random resizing and padding)"),
    Defense("fd", (("adv_ce", 1.0),), wrapper="denoise",
            source="Xie et al. 2019 (feature denoising)"),
    Defense("adp", (("adp_ce", 1.0), ("adp_entropy", 2.0), ("adp_log_det", 0.5)), attack=None,
            wrapper="ensemble", source="Pang et al. 2019 (ADP ensemble diversity)"),
    Defense("adp_at", (("adp_ce", 1.0), ("adp_entropy", 2.0), ("adp_log_det", 0.5),
                       ("adp_ce_adv", 1.0), ("adp_entropy_adv", 2.0),
                       ("adp_log_det_adv", 0.5)),
            wrapper="ensemble", eps_draw="uniform_batch",
            source="Pang et al. 2019 (ADP_AT: the ADP loss on clean and PGD images of the ensemble)"),
    Defense("stepll_at", _MIXED, attack="stepll", single_step=True, eps_draw="half_normal",
            source="Kurakin et al. 2017 / Tramer et al. 2018 (Step-LL adversarial training)"),
    Defense("ensemble_at", _MIXED, attack="stepll", static_sources=True, single_step=True,
            source="Tramer et al. 2018 (ensemble adversarial training)"),
    Defense("fgsm_rs", (("adv_ce", 1.0),), attack="fgsm_rs", single_step=True,
            attack_training_mode=True,
            source="Wong et al. 2020 (fast AT: FGSM with random start, step 1.25 eps)"),
    Defense("n_fgsm", (("adv_ce", 1.0),), attack="n_fgsm", single_step=True,
            attack_training_mode=True,
            source="de Jorge et al. 2022 (N-FGSM: noise 2 eps, step eps, no clipping)"),
)}

NAMES = tuple(DEFENSES)


def get(name):
  """The `Defense` called `name`, or a ValueError listing the defenses."""
  try:
    return DEFENSES[name]
  except KeyError:
    raise ValueError(f"Invalid defense: expected one of [{', '.join(NAMES)}]; "
                     f"received defense={name!r}") from None
