"""tfadv-analyze end to end on a tiny trained run: JSON, figures, and its user errors."""

import json
import os
import subprocess
import sys

import numpy as np

from tfadv.analysis import plots

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_analyze_cli_writes_statistics_and_figures(tmp_path):
  model_dir = str(tmp_path / "run")
  train = _run("trainers.train", "--dataset=digits", "--model=small_cnn", "--width=8",
               "--defense=at_alp", "--eps=0.1", "--attack_steps=2", "--train_steps=20",
               "--batch_size=32", "--attacks=fgsm", "--num_examples=32", "--noprogress",
               f"--model_dir={model_dir}")
  assert train.returncode == 0, train.stdout + train.stderr
  proc = _run("trainers.analyze", f"--model_dir={model_dir}", "--num_examples=48",
              "--attack_steps=3", "--points=5", "--landscape_examples=16")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  out = os.path.join(model_dir, "analysis")
  with open(os.path.join(out, "analysis.json")) as f:
    result = json.load(f)
  assert result["num_examples"] == 48 and result["defense"] == "at_alp"
  assert result["adv_accuracy"] <= result["clean_accuracy"]
  for key in ["gradcam_iou"] + [f"stage{j}_iou" for j in range(4)]:
    assert 0.0 <= result["attention"][key]["mean"] <= 1.0
  losses = np.array(result["landscape"]["losses"])
  assert losses.shape == (5, 5) and np.all(np.isfinite(losses))
  for name in (plots.STAGES_PLOT, plots.LANDSCAPE_PLOT):
    with open(os.path.join(out, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"

  bad = _run("trainers.analyze", f"--model_dir={model_dir}", "--points=4")
  assert bad.returncode == 2 and "Invalid points" in bad.stderr
  assert "Traceback" not in bad.stderr
  missing = _run("trainers.analyze", f"--model_dir={tmp_path / 'nothing'}")
  assert missing.returncode == 2 and "run_config.json" in missing.stderr
