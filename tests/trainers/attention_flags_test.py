"""tfadv-train with the AAD/TRADES flags: every weight reaches run_config and the report."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "trainers.train", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_aad_weights_are_recorded_in_run_config_and_report(tmp_path):
  proc = _run("--dataset=digits", "--width=4", "--defense=alp_aad", "--eps=0.1",
              "--attack_steps=1", "--train_steps=3", "--batch_size=16",
              "--rectification_weight=0.02", "--preservation_weight=0.03", "--kappa=0.4",
              "--trades_beta=5", "--alp_weight=0.25", "--attacks=fgsm", "--num_examples=32",
              f"--model_dir={tmp_path}", "--noprogress")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  expected = {"name": "alp_aad", "rectification_weight": 0.02, "preservation_weight": 0.03,
              "kappa": 0.4, "trades_beta": 5.0, "alp_weight": 0.25}
  with open(os.path.join(tmp_path, "run_config.json")) as f:
    defense = json.load(f)["defense"]
  with open(os.path.join(tmp_path, "report.json")) as f:
    report = json.load(f)
  for key, value in expected.items():
    assert defense[key] == value, key
    assert report["defense_config"][key] == value, key
  markdown = open(os.path.join(tmp_path, "report.md")).read()
  assert "rectification_weight=0.02" in markdown and "kappa=0.4" in markdown


def test_invalid_kappa_is_a_one_line_user_error(tmp_path):
  proc = _run("--dataset=digits", "--defense=aad", "--kappa=1.5", "--train_steps=1",
              f"--model_dir={tmp_path}")
  text = proc.stdout + proc.stderr
  assert proc.returncode == 2 and "Traceback" not in text, text
  assert "Invalid kappa: expected None (per-image mean) or a threshold in [0, 1]" in text
  assert "received kappa=1.5" in text
