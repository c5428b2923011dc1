"""tfadv-evaluate end to end under the three threat models (white, gray, black box)."""

import json
import os
import subprocess
import sys

import pytest

from tfadv import config as config_lib
from tfadv import workflow
from tfadv.data import datasets
from tfadv.training import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(model_dir, seed, width):
  data_config = config_lib.DataConfig(name="digits", seed=seed)
  attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=2)
  trainer.train(datasets.load(data_config), config_lib.ModelConfig(width=width),
                config_lib.DefenseConfig(name="at_alp", attack=attack),
                config_lib.TrainConfig(model_dir=model_dir, batch_size=32, train_steps=60,
                                       learning_rate=3e-3, checkpoint_every=60, seed=seed,
                                       progress=False),
                data_config)
  return model_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Target (seed 0), its gray-box twin (seed 1) and a wider black-box surrogate."""
  base = tmp_path_factory.mktemp("threats")
  return {"target": _train(str(base / "target"), 0, 8),
          "twin": _train(str(base / "twin"), 1, 8),
          "wide": _train(str(base / "wide"), 2, 16),
          "base": base}


def _start(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.Popen([sys.executable, "-m", "trainers.evaluate", *args], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_white_gray_and_black_box_from_the_cli(runs):
  base = runs["base"]
  common = ["--attacks=fgsm,pgd:steps=3,cw_linf:steps=3", "--eps=0.1", "--num_examples=64",
            "--noprogress", f"--model_dir={runs['target']}"]
  jobs = {
      "white": _start(*common, f"--output_dir={base / 'white'}"),
      "gray": _start(*common, f"--output_dir={base / 'gray'}", "--threat_model=gray",
                     f"--source_model_dir={runs['twin']}"),
      "black": _start(*common, f"--output_dir={base / 'black'}", "--threat_model=black",
                      f"--source_model_dir={runs['wide']}"),
  }
  out = {name: job.communicate(timeout=600) + (job.returncode,) for name, job in jobs.items()}
  reports = {}
  for name in ("white", "gray", "black"):
    stdout, stderr, code = out[name]
    assert code == 0, stdout + stderr
    reports[name] = json.load(open(base / name / "report.json"))
    assert reports[name]["threat_model"] == name
    assert set(reports[name]["attacks"]) == {"fgsm", "pgd3", "cw_linf3"}
    assert f"Threat model: {name} box" in stdout
  assert "source_model" not in reports["white"]
  assert reports["gray"]["source_model"] == runs["twin"]
  assert reports["black"]["source_model"] == runs["wide"]
  # Same target, same clean images; transferred attacks can only be weaker than the
  # white-box ones up to noise (the target is attacked directly in the white box), and
  # from another model they must be measurably weaker.
  accuracy = {n: {k: v["accuracy"] for k, v in r["attacks"].items()} for n, r in reports.items()}
  print(reports["white"]["clean_accuracy"], accuracy)
  # Measured (clean 0.39): white fgsm/pgd3/cw_linf3 0.20/0.20/0.16, gray 0.30/0.31/0.34,
  # black 0.33/0.30/0.31. Had --source_model_dir been ignored, the transfer reports would
  # be the white-box one (same target, same attacks, same seeds).
  assert reports["white"]["clean_accuracy"] > 0.25  # The target learned (chance: 0.1).
  # On another machine: clean 0.27, white 0.17/0.17/0.16, gray 0.23/0.25/0.25, black
  # 0.25/0.25/0.27 (the short run's floating point differs from one CPU to the next).
  assert max(accuracy["white"].values()) < reports["white"]["clean_accuracy"] - 0.05
  for name in ("gray", "black"):
    assert reports[name]["clean_accuracy"] == reports["white"]["clean_accuracy"]
    for label, white in accuracy["white"].items():
      assert accuracy[name][label] >= white - 2 / 64, (name, label)
    mean = lambda d: sum(d.values()) / len(d)
    assert mean(accuracy[name]) > mean(accuracy["white"]) + 0.05, name


def test_surrogates_must_fit_the_threat_model(runs):
  target = workflow.load_trained(runs["target"])
  gray, black = config_lib.ThreatModel.GRAY, config_lib.ThreatModel.BLACK
  with pytest.raises(ValueError, match="a gray-box surrogate must have the target's"):
    workflow.load_source_model(target, runs["wide"], gray)
  with pytest.raises(ValueError, match="a black-box surrogate must have another"):
    workflow.load_source_model(target, runs["twin"], black)
  with pytest.raises(ValueError, match="another training run"):
    workflow.load_source_model(target, runs["target"], gray)
  assert workflow.load_source_model(target, runs["twin"], gray).checkpoint


def test_threat_model_flags_are_validated():
  with pytest.raises(ValueError, match="source_model_dir"):
    config_lib.EvalConfig(threat_model="black").validate()
  with pytest.raises(ValueError, match="source_model_dir"):
    config_lib.EvalConfig(threat_model="white", source_model_dir="/tmp/x").validate()
  with pytest.raises(ValueError, match="threat_model"):
    config_lib.EvalConfig(threat_model="grey")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
  """A briefly trained, undefended digits model (60 steps)."""
  model_dir = str(tmp_path_factory.mktemp("small") / "model")
  data_config = config_lib.DataConfig(name="digits", seed=0)
  trainer.train(datasets.load(data_config), config_lib.ModelConfig(width=8),
                config_lib.DefenseConfig(name="none"),
                config_lib.TrainConfig(model_dir=model_dir, batch_size=32, train_steps=60,
                                       learning_rate=3e-3, checkpoint_every=60,
                                       progress=False), data_config)
  return model_dir


def test_pgd_curve_flag_gives_the_accuracy_vs_iterations_plot(small_run, tmp_path):
  out_dir = str(tmp_path / "curve")
  job = _start(f"--model_dir={small_run}", f"--output_dir={out_dir}", "--attacks=fgsm",
               "--pgd_curve=1,2,4", "--eps=0.1", "--num_examples=32", "--noprogress")
  bad = _start(f"--model_dir={small_run}", "--pgd_curve=10,ten")
  helper = _start("--helpfull")
  stdout, stderr = job.communicate(timeout=600)
  assert job.returncode == 0, stdout + stderr
  report = json.load(open(os.path.join(out_dir, "report.json")))
  assert set(report["attacks"]) == {"fgsm", "pgd1", "pgd2", "pgd4"}
  assert report["plots"]["accuracy_vs_steps"] == "accuracy_vs_steps.png"
  assert os.path.getsize(os.path.join(out_dir, "accuracy_vs_steps.png")) > 1000
  _, err = bad.communicate(timeout=600)
  assert bad.returncode == 2
  assert "Error: Invalid pgd_curve: expected positive integers" in err
  out, _ = helper.communicate(timeout=600)
  assert "--pgd_curve" in out and "Figure 3" in out
  assert "--strategy" in out and "--num_cpu_devices" in out


def test_mirrored_strategy_gives_the_accuracies_of_one_device(small_run, tmp_path):
  # Deterministic attacks (no random start): the figures must not depend on the split.
  # 75 examples in batches of 32: the last batch (11) splits unevenly, 6 + 5.
  common = [f"--model_dir={small_run}", "--noprogress", "--eps=0.1", "--num_examples=75",
            "--eval_batch_size=32", "--attacks=fgsm,pgd:steps=3:random_start=false,"
            "fab_t:steps=3:target_classes=2"]
  jobs = {name: _start(*common, f"--output_dir={tmp_path / name}", *extra)
          for name, extra in (("one", []),
                              ("two", ["--strategy=mirrored", "--num_cpu_devices=2"]))}
  reports = {}
  for name, job in jobs.items():
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stdout + stderr
    reports[name] = json.load(open(tmp_path / name / "report.json"))
  accuracies = {name: (r["clean_accuracy"], {k: v["accuracy"] for k, v in r["attacks"].items()})
                for name, r in reports.items()}
  print(accuracies)
  assert accuracies["one"] == accuracies["two"]
  clean, attacked = accuracies["two"]
  assert clean > 0.5 and max(attacked.values()) < clean - 0.2  # the attacks did run
  assert set(accuracies["two"][1]) == {"fgsm", "pgd3", "fab_t3"}
  assert reports["two"]["num_examples"] == 75
