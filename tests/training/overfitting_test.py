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


def _train_fast_at(tmp_path, stop, monkeypatch):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfadv import config as config_lib  # pylint: disable=g-import-not-at-top
  from tfadv.data import datasets  # pylint: disable=g-import-not-at-top
  from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
  checks = []
  real_update = overfitting.Monitor.update

  def scripted(self, step, pgd, fgsm):
    checks.append((step, pgd, fgsm))
    real_update(self, step, pgd, fgsm)  # the real figures reach the monitor
    # Then the scripted collapse at the second check: PGD 0, FGSM 1.
    if len(checks) == 2:
      self.history[:] = [(1, 0.5, 0.5)]
      return real_update(self, step, 0.0, 1.0)
    return None

  monkeypatch.setattr(overfitting.Monitor, "update", scripted)
  data = datasets.load(config_lib.DataConfig(name="digits"))
  defense = config_lib.DefenseConfig(name="fgsm_rs", attack=config_lib.AttackConfig(eps=0.1))
  train = config_lib.TrainConfig(model_dir=str(tmp_path), batch_size=32, train_steps=12,
                                 validate_every=4, validation_size=64,
                                 validation_attack_steps=2, checkpoint_every=12,
                                 image_every=0, progress=False, stop_on_overfitting=stop)
  result = trainer.train(data, config_lib.ModelConfig(name="small_cnn", width=4), defense,
                         train)
  assert all(np.isfinite(c[1]) and 0 <= c[2] <= 1 for c in checks)
  return result, checks


def test_fast_at_stops_at_catastrophic_overfitting_when_asked(tmp_path, monkeypatch):
  result, checks = _train_fast_at(tmp_path / "stop", True, monkeypatch)
  assert [c[0] for c in checks] == [4, 8] and result.steps == 8  # stopped at the collapse
  assert result.best is not None and result.best["best_step"] in (4, 8)


def test_fast_at_only_warns_without_stop_on_overfitting(tmp_path, monkeypatch):
  result, checks = _train_fast_at(tmp_path / "warn", False, monkeypatch)
  assert [c[0] for c in checks] == [4, 8, 12] and result.steps == 12
