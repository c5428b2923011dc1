"""Sanity checks of a robustness report: symptoms of gradient masking or of a broken attack.

Each check compares accuracies that must be ordered if the attacks work as intended:
- more iterations of the same attack must not raise accuracy;
- a larger budget of the same attack must not raise accuracy;
- an unbounded gradient attack (L-inf eps >= 1: any image is reachable) must reach ~0%;
- gradient-free attacks (SPSA, Square, RayS) must not beat gradient attacks, and transfer
  attacks (gray / black box) must not beat white-box attacks: when they do, the gradients
  of the model do not point where its decisions change (masked or obfuscated gradients,
  Athalye et al., 2018);
- AutoAttack keeps the worst case of its parts, which include a stronger PGD: if it is
  above PGD, something is wrong with the evaluation.
The checks return human-readable warnings (empty when all is well); a difference counts
only when it exceeds a tolerance that accounts for the number of examples.
"""

import collections

# Attacks that use only model outputs (no gradients).
GRADIENT_FREE = frozenset({"spsa", "square", "rays"})
# Attacks that are not comparable as "a gradient attack" in the gradient-free check.
_NOT_GRADIENT = GRADIENT_FREE | {"autoattack"}
_PGD_LIKE = frozenset({"pgd", "apgd_ce", "apgd_t", "apgd_dlr"})

UNBOUNDED_LIMIT = 0.05


def tolerance(num_examples):
  """Accuracy differences smaller than this are noise: two examples or 1%."""
  return max(2.0 / max(num_examples, 1), 0.01)


def _entries(report):
  for label, entry in report["attacks"].items():
    params = dict(entry.get("params", {}))
    name = params.get("attack", label.split("@")[0])
    yield label, name, params, float(entry["accuracy"])


def _key(name, params, drop):
  return (name,) + tuple(sorted((k, str(v)) for k, v in params.items()
                                if k not in drop and k != "attack"))


def _monotone(report, field, drop, what, tol):
  groups = collections.defaultdict(list)
  for label, name, params, acc in _entries(report):
    if field in params:
      groups[_key(name, params, drop)].append((float(params[field]), acc, label))
  warnings = []
  for items in groups.values():
    items.sort()
    for (_, acc_a, label_a), (_, acc_b, label_b) in zip(items, items[1:]):
      if acc_b > acc_a + tol:
        warnings.append(
            f"Accuracy rises with {what}: {label_a} {100 * acc_a:.1f}% -> {label_b} "
            f"{100 * acc_b:.1f}%. A stronger attack must not do worse: the attack is not "
            f"converging (too large steps, or masked gradients).")
  return warnings


def check(report, white_report=None):
  """Warnings about a report (a dict with the `tfadv.evaluation.report` schema).

  Args:
    report: the report to check.
    white_report: for a gray- or black-box report, the white-box report of the same model
      (same attacks); transfer attacks doing better than white-box ones are flagged.

  Returns:
    A list of warning strings (empty when nothing looks wrong).
  """
  tol = tolerance(report["num_examples"])
  warnings = []
  warnings += _monotone(report, "steps", ("steps", "step_size"), "more iterations",
                        tol)
  warnings += _monotone(report, "eps", ("eps", "step_size"), "a larger eps", tol)

  for label, name, params, acc in _entries(report):
    if (name not in _NOT_GRADIENT and params.get("norm", "linf") == "linf"
        and float(params.get("eps", 0)) >= 1.0 and acc > UNBOUNDED_LIMIT):
      warnings.append(
          f"An unbounded attack leaves accuracy at {100 * acc:.1f}% ({label}, eps >= 1 can "
          f"reach any image): its gradients do not lead anywhere, a sign of gradient "
          f"masking (expected ~0%).")

  by_budget = collections.defaultdict(lambda: {"free": [], "grad": [], "auto": []})
  for label, name, params, acc in _entries(report):
    kind = "free" if name in GRADIENT_FREE else "auto" if name == "autoattack" else "grad"
    by_budget[(str(params.get("eps")), params.get("norm"))][kind].append((acc, label, name))
  for (eps, norm), kinds in by_budget.items():
    if kinds["free"] and kinds["grad"]:
      free, grad = min(kinds["free"]), min(kinds["grad"])
      if free[0] < grad[0] - tol:
        warnings.append(
            f"A gradient-free attack beats every gradient attack at eps={eps} ({norm}): "
            f"{free[1]} {100 * free[0]:.1f}% < {grad[1]} {100 * grad[0]:.1f}%. The "
            f"gradients are masked or obfuscated; trust the lower number.")
    pgd = [item for item in kinds["grad"] if item[2] in _PGD_LIKE]
    if kinds["auto"] and pgd:
      auto, best = min(kinds["auto"]), min(pgd)
      if auto[0] > best[0] + tol:
        warnings.append(
            f"AutoAttack is weaker than PGD at eps={eps} ({norm}): {auto[1]} "
            f"{100 * auto[0]:.1f}% > {best[1]} {100 * best[0]:.1f}%. AutoAttack keeps the "
            f"worst case of stronger attacks: this suggests a bug in the evaluation.")

  if white_report is not None:
    white = white_report["attacks"]
    for label, _, _, acc in _entries(report):
      if label in white and acc < float(white[label]["accuracy"]) - tol:
        warnings.append(
            f"The {report.get('threat_model', 'transfer')}-box attack {label} "
            f"({100 * acc:.1f}%) beats the same attack in the white box "
            f"({100 * float(white[label]['accuracy']):.1f}%): attacking a surrogate works "
            f"better than attacking the model itself, a sign of gradient masking.")
  return warnings
