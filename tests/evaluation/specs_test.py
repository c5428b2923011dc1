"""Attack lists: '|' alternatives (accuracy-vs-iterations curves), duplicates, errors."""

import pytest

from tfadv.evaluation import specs


def _summary(attacks):
  return [(a.name, a.steps, a.restarts, a.eps) for a in attacks]


def test_alternatives_expand_in_order_and_combine():
  attacks = specs.parse_attacks("fgsm,pgd:steps=10|20|50:restarts=1|2", [0.1])
  assert _summary(attacks) == [
      ("fgsm", 10, 1, 0.1),
      ("pgd", 10, 1, 0.1), ("pgd", 10, 2, 0.1),
      ("pgd", 20, 1, 0.1), ("pgd", 20, 2, 0.1),
      ("pgd", 50, 1, 0.1), ("pgd", 50, 2, 0.1)]
  # Attack options (params) and eps take alternatives too.
  options = specs.parse_attacks("cw_linf:steps=3|5:eps=0.05|0.1", [0.3])
  assert [(dict(a.params)["steps"], a.eps) for a in options] == [
      (3, 0.05), (3, 0.1), (5, 0.05), (5, 0.1)]


def test_steps_curve_is_the_papers_figure_and_duplicates_count_once():
  curve = specs.steps_curve(["10", "20", "50", "100", "200"])
  assert curve == "pgd:steps=10|20|50|100|200"
  attacks = specs.parse_attacks("fgsm,pgd:steps=20," + curve, [0.05, 0.1])
  assert _summary(attacks)[:3] == [("fgsm", 10, 1, 0.05), ("fgsm", 10, 1, 0.1),
                                   ("pgd", 20, 1, 0.05)]
  steps = [(a.steps, a.eps) for a in attacks if a.name == "pgd"]
  assert len(steps) == len(set(steps)) == 10  # pgd:steps=20 is not repeated
  assert sorted(steps) == sorted((s, e) for s in (10, 20, 50, 100, 200) for e in (0.05, 0.1))


@pytest.mark.parametrize("text,message", [
    ("pgd:steps=10||20", r"values separated by '\|' for 'steps' in 'pgd:steps=10\|\|20'"),
    ("pgd:steps=10|x", "expected a number for 'steps'"),
    ("rays:queries=10|20:bogus=1|2", "unknown key 'bogus'"),
])
def test_malformed_alternatives_are_rejected(text, message):
  with pytest.raises(ValueError, match=message):
    specs.parse_attacks(text, [0.1])


@pytest.mark.parametrize("steps", [["10", "x"], ["0"], ["-5"], ["2.5"]])
def test_steps_curve_rejects_non_positive_integers(steps):
  with pytest.raises(ValueError, match=r"Invalid pgd_curve: expected positive integers.*"
                                       r"received pgd_curve="):
    specs.steps_curve(steps)
