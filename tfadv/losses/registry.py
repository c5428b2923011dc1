"""Loss terms by name: one record per term, with the passes it reads and its options.

A term is a pure function `fn(forward, **options) -> [B]` of a `tfadv.losses.forward.Forward`
record. Its record says which forward passes it needs, so the trainer derives the passes of a
step from the terms alone (no test on defense names): `clean` and `adv` (the tapped model on
clean / adversarial images), `cam` (Grad-CAM maps), `masked` (logits on the images with
their attention area removed), `input_grad` (the squared norm of the input gradient of the
clean cross-entropy, by double backpropagation).

Adding a term: write its module under `tfadv/losses/` and add one `Term` record to `TERMS`.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, FrozenSet, Tuple

from tfadv.losses import adp
from tfadv.losses import attention_pairing
from tfadv.losses import cross_entropy
from tfadv.losses import igr
from tfadv.losses import logit_pairing
from tfadv.losses import preservation
from tfadv.losses import rectification
from tfadv.losses import trades

PASSES = ("clean", "adv", "cam", "masked", "input_grad", "members")


@dataclasses.dataclass(frozen=True)
class Option:
  """One option of a term: its default, a check and what the check expects."""
  name: str
  default: Any
  check: Callable[[Any], bool]
  expected: str
  parse: Callable[[str], Any] = str
  forward: bool = False  # Configures the forward passes (not an argument of the term's fn).


@dataclasses.dataclass(frozen=True)
class Term:
  """A registered loss term.

  Attributes:
    name: the name used in defense tables, `--terms` and reports.
    fn: `fn(forward, **options) -> [B]`, per-example values.
    needs: the forward passes it reads (a subset of `PASSES`).
    options: its options.
    doc: one line for `--help` and the README.
  """
  name: str
  fn: Callable
  needs: FrozenSet[str]
  options: Tuple[Option, ...] = ()
  doc: str = ""

  def defaults(self):
    return {o.name: o.default for o in self.options}

  def bind(self, options):
    """`forward -> [B]` with the term's function options (resolved) bound."""
    kwargs = {o.name: options[o.name] for o in self.options if not o.forward}
    return lambda forward: self.fn(forward, **kwargs)


def _ints(text):
  return tuple(int(v) for v in str(text).split("/") if v != "")


def _optional_float(text):
  return None if str(text).lower() == "none" else float(text)


# None: every tap the model has (four for the zoo; fewer for a user model with fewer
# resolutions, see tfadv.models.sources.find_taps).
_TAPS = Option("taps", None,
               lambda v: v is None or (
                   len(v) >= 1 and all(isinstance(t, int) and 0 <= t <= 3 for t in v)),
               "tap indices in 0..3 (at:taps=0/1/2/3)", _ints)
_P = Option("p", 2.0, lambda v: isinstance(v, (int, float)) and v > 0, "a positive exponent",
            float)
_KAPPA = Option("kappa", None, lambda v: v is None or 0.0 <= v <= 1.0,
                "None (per-image mean) or a threshold in [0, 1]", _optional_float, forward=True)
_NORMALIZE = Option("normalize", "none", lambda v: v in ("none", "unit_sum"),
                    "none (raw Grad-CAM maps, the paper's eq. 9) or unit_sum")
_LOG_DET_OFFSET = Option("log_det_offset", adp.LOG_DET_OFFSET,
                         lambda v: isinstance(v, (int, float)) and v > 0,
                         "a positive regulariser delta of log det(M M^T + delta I)", float)

_SMOOTHING = Option("label_smoothing", 0.0,
                    lambda v: isinstance(v, (int, float)) and 0.0 <= v < 1.0,
                    "a smoothing in [0, 1)", float)

TERMS = {t.name: t for t in (
    Term("clean_ce", cross_entropy.clean_cross_entropy, frozenset({"clean"}), (_SMOOTHING,),
         doc="CE(f(x), y)"),
    Term("adv_ce", cross_entropy.adversarial_cross_entropy, frozenset({"adv"}), (_SMOOTHING,),
         doc="CE(f(x_adv), y)"),
    Term("alp", logit_pairing.logit_pairing_term, frozenset({"clean", "adv"}),
         doc="||f(x) - f(x_adv)||^2 on the logits (Kannan et al. 2018)"),
    Term("at", attention_pairing.attention_pairing_term, frozenset({"clean", "adv"}),
         (_TAPS, _P), doc="sum_j ||Q_adv^j/||Q_adv^j|| - Q^j/||Q^j|| ||_p over the taps"),
    Term("trades_kl", trades.kl_term, frozenset({"clean", "adv"}),
         doc="KL(f(x) || f(x_adv)) (Zhang et al. 2019)"),
    Term("rectification", rectification.rectification_term,
         frozenset({"clean", "adv", "cam", "masked"}), (_KAPPA,),
         doc="-[D(f(x), f(x^m)) + D(f(x_adv), f(x_adv^m))] (AAD eq. 8)"),
    Term("preservation", preservation.preservation_term, frozenset({"clean", "adv", "cam"}),
         (_NORMALIZE,), doc="||g(x) - g(x_adv)||_1 on Grad-CAM maps (AAD eq. 9)"),
    Term("igr", igr.igr_term, frozenset({"clean", "input_grad"}),
         doc="||grad_x CE(f(x), y)||^2 by double backpropagation (Ross & Doshi-Velez 2018)"),
    Term("adp_ce", adp.members_ce_term, frozenset({"clean", "members"}),
         doc="sum over ensemble members of CE(f_m(x), y) (Pang et al. 2019)"),
    Term("adp_entropy", adp.ensemble_entropy_term, frozenset({"clean", "members"}),
         doc="-H(mean_m softmax f_m(x)): minimising it raises the ensemble entropy"),
    Term("adp_log_det", adp.log_det_term, frozenset({"clean", "members"}),
         (_LOG_DET_OFFSET,),
         doc="-log det of the members' normalised non-maximal predictions (diversity)"),
    # ADP with adversarial training (Pang et al. 2019, ADP_AT): the same terms on the
    # adversarial pass, beside the clean ones.
    Term("adp_ce_adv", functools.partial(adp.members_ce_term, which="adv"),
         frozenset({"adv", "members"}), doc="adp_ce on the adversarial images"),
    Term("adp_entropy_adv", functools.partial(adp.ensemble_entropy_term, which="adv"),
         frozenset({"adv", "members"}), doc="adp_entropy on the adversarial images"),
    Term("adp_log_det_adv", functools.partial(adp.log_det_term, which="adv"),
         frozenset({"adv", "members"}), (_LOG_DET_OFFSET,),
         doc="adp_log_det on the adversarial images"),
)}


def get(name):
  """The `Term` called `name`, or a ValueError listing the registered ones."""
  try:
    return TERMS[name]
  except KeyError:
    raise ValueError(f"Invalid term: expected one of [{', '.join(sorted(TERMS))}]; "
                     f"received term={name!r}") from None


def resolve_options(name, options):
  """The term's options: its defaults updated with `options`, each checked.

  Args:
    name: a term name.
    options: (key, value) pairs or a dict; string values are parsed by the option.

  Returns:
    A dict of every option of the term.

  Raises:
    ValueError: unknown term or option (listing the valid ones), or a value the option
      does not accept.
  """
  term = get(name)
  known = {o.name: o for o in term.options}
  resolved = term.defaults()
  for key, value in dict(options).items():
    if key not in known:
      valid = ", ".join(known) or "none"
      raise ValueError(f"Invalid {name} option: expected one of [{valid}]; "
                       f"received {key!r}")
    option = known[key]
    if isinstance(value, str):
      try:
        value = option.parse(value)
      except ValueError:
        raise ValueError(f"Invalid {name}:{key}: expected {option.expected}; "
                         f"received {key}={value!r}") from None
    if isinstance(value, list):
      value = tuple(value)
    if not option.check(value):
      raise ValueError(f"Invalid {name}:{key}: expected {option.expected}; "
                       f"received {key}={value!r}")
    resolved[key] = value
  return resolved


def parse_terms(text):
  """Parses `--terms`: `name:weight[:key=value...]`, comma-separated.

  Example: `alp:0.5,at:1.0:taps=2/3,igr:0.1`.

  Returns:
    A tuple of `(name, weight, options)` with options as a dict of strings (checked later
    by `resolve_options`).

  Raises:
    ValueError: a malformed item, an unknown term or option, or a bad weight.
  """
  items = []
  for item in (t.strip() for t in (text or "").split(",")):
    if not item:
      continue
    name, *rest = item.split(":")
    get(name)
    if not rest:
      raise ValueError(f"Invalid terms: expected name:weight[:key=value...]; received "
                       f"{item!r} (no weight)")
    try:
      weight = float(rest[0])
    except ValueError:
      weight = math.nan
    if not (math.isfinite(weight) and weight >= 0):
      raise ValueError(f"Invalid terms: expected a non-negative weight for {name}; received "
                       f"{rest[0]!r}")
    options = {}
    for pair in rest[1:]:
      key, sep, value = pair.partition("=")
      if not sep:
        raise ValueError(f"Invalid terms: expected key=value options after {name}:weight; "
                         f"received {pair!r}")
      options[key] = value
    resolve_options(name, options)
    items.append((name, weight, options))
  return tuple(items)
