"""tfadv-study end to end on digits: kill it mid-way, rerun, shard it; same study.json."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfadv.study import cells
from tfadv.study import runner
from tfadv.study import spec
from tfadv.study import summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STUDY = {
    "name": "digits_tiny",
    "data": {"name": "digits"},
    "model": {"name": "small_cnn", "width": 4},
    "defenses": ["none", "pat"],
    "seeds": [0, 1],
    "train": {"train_steps": 20, "batch_size": 32, "checkpoint_every": 10, "image_every": 0},
    "training_attack": {"eps": 0.1, "steps": 2},
    "evaluation": {"attacks": "fgsm,pgd:steps=3|6", "num_examples": 64, "batch_size": 64},
    "threat_models": ["white", "gray"],
    "analysis": {"num_examples": 16, "landscape_examples": 8, "points": 3,
                 "attack_steps": 3},
    "claims": [{"better": "pat", "than": "none", "attack": "pgd6", "threat": "gray",
                "eps": 0.1}],
}


def _write_study(path, **changes):
  with open(path, "w") as f:
    json.dump(dict(STUDY, **changes), f)
  return str(path)


def _cli(*args, **kw):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.Popen([sys.executable, "-m", "trainers.study", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _deterministic(directory):
  """study.json without the wall times (the only field that is not a function of cells)."""
  with open(os.path.join(directory, "study.json")) as f:
    document = json.load(f)
  document.pop("cost")
  return document


def _mtimes(directory):
  folder = os.path.join(directory, "cells")
  return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder)}


@pytest.mark.slow
def test_killed_rerun_and_sharded_studies_equal_an_uninterrupted_one(tmp_path):
  study_file = _write_study(tmp_path / "spec.json")  # study.json: the output
  study = spec.load(study_file)
  assert len(runner.plan(study)) == 10  # 2 defenses x (2 trainings + 2 evaluations + 1)

  whole = tmp_path / "whole"
  lines = []
  computed, missing = runner.run(study, str(whole), echo=lines.append)
  assert len(computed) == 10 and not missing
  reference = _deterministic(whole)
  table = reference["results"]
  assert set(table) == {"none", "pat"}
  assert set(table["pat"]["attacks"]) == {"white", "gray"}
  assert set(table["pat"]["attacks"]["gray"]) == {"fgsm", "pgd3", "pgd6"}
  # The claim's verdict, derived here from the table: pat vs none under gray-box PGD-6.
  claim = reference["claims"][0]
  pat, none = (table[d]["attacks"]["gray"]["pgd6"] for d in ("pat", "none"))
  diff = 100 * (pat["accuracy"] - none["accuracy"])
  se = 100 * (pat["se"] ** 2 + none["se"] ** 2) ** 0.5
  assert np.isclose(claim["difference_points"], diff) and np.isclose(claim["se_points"], se)
  assert claim["verdict"] == ("within noise (|difference| < 2 standard errors)"
                              if abs(diff) < 2 * se else
                              "holds" if diff > 0 else "refuted (the opposite holds)")
  for name in ("accuracy_vs_steps.png", "attention_side_by_side.png", "study.md"):
    assert os.path.getsize(whole / name) > 0
  markdown = (whole / "study.md").read_text()
  assert "## Gray box" in markdown and "**" in markdown  # the strongest attack marked

  # Shard 0 of 2 (the `none` group), killed once two cells have finished.
  sharded = tmp_path / "sharded"
  proc = _cli(f"--study={study_file}", f"--output_dir={sharded}", "--shard=0/2")
  # The event: two finished cells (no deadline; a child that exits ends the wait too).
  folder = sharded / "cells"
  while proc.poll() is None and not (folder.is_dir() and len(os.listdir(folder)) >= 2):
    time.sleep(0.05)
  assert proc.poll() is None, proc.communicate()[0][-3000:]
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  kept = _mtimes(sharded)
  assert 2 <= len(kept) < 5

  proc = _cli(f"--study={study_file}", f"--output_dir={sharded}", "--shard=0/2")
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out
  assert out.count("done (kept)") == len(kept), out
  for name, mtime in kept.items():  # finished cells were not recomputed
    assert _mtimes(sharded)[name] == mtime
  assert "cells of other shards are not finished yet" in out
  assert not (sharded / "study.json").exists()

  computed, missing = runner.run(study, str(sharded), shard=(1, 2), echo=lines.append)
  assert len(computed) == 5 and not missing
  assert _deterministic(sharded) == reference


def test_a_changed_cell_config_invalidates_that_cell_and_its_dependants_only(tmp_path):
  base = spec.load(_write_study(tmp_path / "a.json"))
  changed = spec.load(_write_study(
      tmp_path / "b.json", evaluation=dict(STUDY["evaluation"], attacks="fgsm")))
  before = {c.id: c.hash for c in runner.plan(base)}
  after = {c.id: c.hash for c in runner.plan(changed)}
  differs = {i for i in before if before[i] != after[i]}
  assert differs == {"eval/none/white", "eval/none/gray", "eval/pat/white", "eval/pat/gray"}
  retrained = spec.load(_write_study(tmp_path / "c.json", seeds=[0, 2]))
  after = {c.id: c.hash for c in runner.plan(retrained)}
  assert {i for i in before if before[i] != after[i]} == {
      "train/none/gray", "train/pat/gray", "eval/none/gray", "eval/pat/gray"}


def test_transfer_attacks_apply_to_the_gray_and_black_box_only(tmp_path):
  study = spec.load(_write_study(
      tmp_path / "t.json", evaluation=dict(STUDY["evaluation"], transfer_attacks="pgd:steps=6")))
  attacks = {c.id: c.config["attacks"] for c in runner.plan(study) if c.kind == "eval"}
  assert attacks == {"eval/none/white": "fgsm,pgd:steps=3|6", "eval/pat/white": "fgsm,pgd:steps=3|6",
                     "eval/none/gray": "pgd:steps=6", "eval/pat/gray": "pgd:steps=6"}
  default = spec.load(_write_study(tmp_path / "d.json"))
  assert {c.config["attacks"] for c in runner.plan(default) if c.kind == "eval"} == {
      "fgsm,pgd:steps=3|6"}


@pytest.mark.parametrize("changes,match", [
    ({"defenses": ["pat", "nope"]}, r"Invalid study defenses: expected names of"),
    ({"seeds": [1, 1]}, r"Invalid study seeds: expected two different integers"),
    ({"threat_models": ["white", "black"]}, r"Invalid study surrogate_model"),
    ({"train": {"epoch": 3}}, r"Invalid study train key: expected one of"),
    ({"colour": 1}, r"Invalid study file key: expected one of"),
    ({"evaluation": {"transfer_attacks": "pgd:stepz=3"}},
     r"Invalid study evaluation transfer_attacks: "),
    ({"claims": [{"better": "at_alp", "than": "pat", "attack": "pgd6"}]},
     r"Invalid study claims defense"),
    ({"defenses": ["pat", "ensemble_at"], "claims": []}, r"add none to defenses"),
])
def test_bad_study_files_are_one_line_errors(tmp_path, changes, match):
  with pytest.raises(ValueError, match=match):
    runner.plan(spec.load(_write_study(tmp_path / "s.json", **changes)))


def test_shard_flag_and_missing_file_errors(tmp_path):
  with pytest.raises(ValueError, match=r"Invalid shard: expected i/n"):
    cells.parse_shard("2/2")
  with pytest.raises(FileNotFoundError, match="Invalid study: expected a study file"):
    spec.load(str(tmp_path / "missing.json"))
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(ValueError, match=r"Invalid study: .*bad.json' is not JSON"):
    spec.load(str(tmp_path / "bad.json"))


def test_shipped_study_files_parse():
  folder = os.path.join(ROOT, "studies")
  names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
  assert "fashion_mnist.json" in names and len(names) >= 2
  for name in names:
    study = spec.load(os.path.join(folder, name))
    assert runner.plan(study)


def _entry(**attacks):
  """A results entry with gray-box attacks {label: (accuracy, n, eps)}."""
  gray = {label: dict(accuracy=a, se=summary._se(a, n), n=n, eps=eps, attack="pgd")
          for label, (a, n, eps) in attacks.items()}
  return {"attacks": {"gray": gray}}


@pytest.mark.parametrize("better,than,eps,verdict,points", [
    (0.60, 0.20, 0.1, "holds", 40.0),
    (0.20, 0.60, 0.1, "refuted (the opposite holds)", -40.0),
    (0.52, 0.50, 0.1, "within noise (|difference| < 2 standard errors)", 2.0),
    (0.60, 0.20, 0.3, "not measured (the attack or eps is not in the study)", None),
])
def test_claims_verdicts(tmp_path, better, than, eps, verdict, points):
  claim = {"better": "pat", "than": "none", "attack": "pgd6", "threat": "gray", "eps": eps,
           "paper": "P"}
  study = spec.load(_write_study(tmp_path / "s.json", claims=[claim]))
  # 400 examples: se of 0.5 is 2.5 points, so 40 points hold and 2 points are noise.
  table = {"pat": _entry(pgd3=(0.0, 400, 0.1), pgd6=(better, 400, 0.1)),
           "none": _entry(pgd3=(1.0, 400, 0.1), pgd6=(than, 400, 0.1))}
  row, = summary.claims(study, table)
  assert row["verdict"] == verdict and row["paper"] == "P"
  assert row["claim"].startswith("pat > none under gray-box pgd6")
  if points is None:
    assert "difference_points" not in row
    return
  assert np.isclose(row["difference_points"], points)  # pgd6's figures, not pgd3's
  se = 100 * np.sqrt(better * (1 - better) / 400 + than * (1 - than) / 400)
  assert np.isclose(row["se_points"], se)
