"""Catastrophic-overfitting detection on scripted accuracy sequences."""

import pytest

from tfadv.training import overfitting


def test_collapse_is_pgd_falling_while_fgsm_rises():
  # The shape of Wong et al.'s Figure: PGD climbs to 0.40, then drops to 0.02 while FGSM
  # jumps to 0.85.
  history = [(100, 0.20, 0.30), (200, 0.35, 0.45), (300, 0.40, 0.50), (400, 0.38, 0.52),
             (500, 0.02, 0.85)]
  monitor = overfitting.Monitor()
  warnings = [monitor.update(*h) for h in history]
  assert warnings[:4] == [None] * 4
  assert "Catastrophic overfitting at step 500" in warnings[4]
  assert "step 300" in warnings[4] and monitor.last_good_step() == 300


def test_falling_pgd_with_falling_fgsm_is_not_catastrophic_overfitting():
  # Both fall together: a learning-rate problem or ordinary robust overfitting, not CO.
  assert overfitting.collapsed([(1, 0.4, 0.5), (2, 0.1, 0.2)]) is None
  # A small PGD dip with FGSM up is noise, not collapse.
  assert overfitting.collapsed([(1, 0.4, 0.5), (2, 0.3, 0.6)]) is None
  # An untrained model has nothing to lose.
  assert overfitting.collapsed([(1, 0.05, 0.1), (2, 0.0, 0.3)]) is None
  assert overfitting.collapsed([(1, 0.4, 0.5), (2, 0.1, 0.6)]) == 2


def test_invalid_drop_is_a_one_line_error():
  with pytest.raises(ValueError, match=r"Invalid co_drop: expected a fraction in \(0, 1\)"):
    overfitting.Monitor(drop=1.5)
