"""tfadv-export (trainers.export): default model name, models.config, user errors."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from serving import export as export_lib
from serving import server_config
from tfadv import workflow

# The source tree (realpath: under Bazel, __file__ is a runfiles symlink into it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", "trainers.export", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


def test_export_cli_names_the_model_and_updates_models_config(served, tmp_path):
  export_dir, config = tmp_path / "models", tmp_path / "models.config"
  server_config.update_model_config(str(config), "other", "/models/other")
  proc = _run(f"--model_dir={served.model_dir}", f"--export_dir={export_dir}",
              f"--model_config_file={config}", "--version_policy=latest:2")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  version_dir = export_dir / "digits_at_alp" / "1"  # <dataset>_<defense> by default.
  assert f"Exported SavedModel: {version_dir}" in proc.stdout
  assert (version_dir / "saved_model.pb").exists()
  entries = {e.name: e for e in server_config.read(str(config)).config}
  assert set(entries) == {"other", "digits_at_alp"}
  assert entries["digits_at_alp"].base_path == str(export_dir / "digits_at_alp")
  assert entries["digits_at_alp"].model_version_policy.latest.num_versions == 2
  meta = export_lib.read_metadata(str(version_dir))
  assert meta["defense"]["name"] == "at_alp" and meta["dataset"]["name"] == "digits"
  # A bad name or policy fails before anything is written.
  before = config.read_text()
  proc = _run(f"--model_dir={served.model_dir}", f"--export_dir={export_dir}",
              f"--model_config_file={config}", "--version_policy=newest")
  text = proc.stdout + proc.stderr
  assert proc.returncode == 2 and "Traceback" not in text, text
  assert "Error: Invalid version_policy" in text, text
  assert export_lib.versions(str(export_dir / "digits_at_alp")) == [1]
  assert config.read_text() == before


def test_a_run_without_checkpoint_is_a_clear_error(served, tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  shutil.copy(os.path.join(served.model_dir, "run_config.json"), run / "run_config.json")
  with pytest.raises(FileNotFoundError, match="expected a checkpoint in .*found none"):
    workflow.load_trained(str(run))
  with open(run / "run_config.json") as f:
    assert json.load(f)["dataset"]["name"] == "digits"  # Untouched.
