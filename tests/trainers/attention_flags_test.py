"""tfadv-train's defense flags: weight flags, --terms, --wrapper_options and the baselines.

Every weight reaches run_config and the report; a weight flag for a term the defense does not
have, an unknown term or option is a one-line error naming the valid ones."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = ("--dataset=digits", "--width=4", "--eps=0.1", "--attack_steps=1", "--train_steps=3",
         "--batch_size=16", "--attacks=fgsm", "--num_examples=32", "--noprogress",
         "--image_every=0")


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "trainers.train", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def _read(tmp_path, name):
  with open(os.path.join(tmp_path, name)) as f:
    return json.load(f)


def test_weights_and_terms_reach_run_config_and_report(tmp_path):
  proc = _run(*TRAIN, "--defense=alp_aad", "--rectification_weight=0.02",
              "--preservation_weight=0.03", "--kappa=0.4", "--alp_weight=0.25",
              "--terms=at:0.5:taps=2/3,preservation:0.03:normalize=unit_sum",
              f"--model_dir={tmp_path}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  defense = _read(tmp_path, "run_config.json")["defense"]
  terms = {t["name"]: t for t in defense["terms"]}
  assert terms["alp"]["weight"] == 0.25 and terms["rectification"]["weight"] == 0.02
  assert dict(terms["rectification"]["options"]) == {"kappa": "0.4"}
  assert terms["at"]["weight"] == 0.5 and dict(terms["at"]["options"]) == {"taps": "2/3"}
  settings = _read(tmp_path, "report.json")["defense_settings"]
  assert settings["alp"] == 0.25 and settings["at"] == 0.5 and settings["at.taps"] == [2, 3]
  assert settings["rectification.kappa"] == 0.4
  assert settings["preservation.normalize"] == "unit_sum" and settings["clean_ce"] == 0.5
  markdown = open(os.path.join(tmp_path, "report.md")).read()
  assert "rectification=0.02" in markdown and "rectification.kappa=0.4" in markdown


@pytest.mark.parametrize("defense,extra", [
    ("igr", ("--terms=igr:1.0",)),
    ("n_fgsm", ()),
    ("rat", ("--wrapper_options=scale=0.05",)),
])
def test_baselines_train_from_the_cli(tmp_path, defense, extra):
  proc = _run(*TRAIN, f"--defense={defense}", *extra, f"--model_dir={tmp_path}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  report = _read(tmp_path, "report.json")
  assert report["defense"] == defense and "fgsm" in report["attacks"]
  if defense == "rat":
    assert report["defense_settings"]["noise.scale"] == 0.05


@pytest.mark.parametrize("args,message", [
    (("--defense=aad", "--kappa=1.5"),
     "Invalid rectification:kappa: expected None (per-image mean) or a threshold in [0, 1]"),
    (("--defense=pat", "--alp_weight=0.3"),
     "Invalid alp_weight: defense pat has no alp term (its terms: adv_ce); received "
     "alp_weight=0.3 (add the term with --terms=alp:WEIGHT)"),
    (("--defense=pat", "--terms=alpp:1"), "Invalid term: expected one of ["),
    (("--defense=at", "--terms=at:1:colour=red"), "Invalid at option: expected one of [taps, p]"),
    (("--defense=rat", "--wrapper_options=sigma=1"),
     "Invalid wrapper_options: expected options of the noise wrapper"),
    (("--defense=ensemble_at",), "Invalid static_model_dirs: defense ensemble_at trains on"),
])
def test_bad_defense_flags_are_one_line_errors(tmp_path, args, message):
  proc = _run("--dataset=digits", "--train_steps=1", *args, f"--model_dir={tmp_path}")
  text = proc.stdout + proc.stderr
  assert proc.returncode == 2 and "Traceback" not in text, text
  assert message in text, text
  assert not os.path.exists(os.path.join(tmp_path, "run_config.json"))


def test_randomized_defense_reports_are_evaluated_with_eot(tmp_path):
  proc = _run(*TRAIN, "--defense=randomization", "--attacks=fgsm,apgd_ce:steps=2",
              f"--model_dir={tmp_path}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  report = _read(tmp_path, "report.json")
  assert report["randomized"]["eot"] == ["apgd_ce2"]
  assert report["randomized"]["without_eot"] == ["fgsm"]
  assert report["attacks"]["apgd_ce2"]["params"]["eot_iter"] == 20
  assert "Randomized defense" in open(os.path.join(tmp_path, "report.md")).read()
