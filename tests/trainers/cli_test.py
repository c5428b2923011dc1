"""The CLIs end to end through absl: train -> evaluate -> export, and their user errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _assert_user_error(proc, *fragments):
  text = proc.stdout + proc.stderr
  assert proc.returncode != 0, text
  assert "Traceback" not in text, text
  for fragment in fragments:
    assert fragment in text, text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny at_alp run on scikit-learn's digits through tfadv-train, with an export.

  60 steps at learning rate 3e-3 so that the model learns (measured on the 64 test images:
  clean 0.39, FGSM 0.20, PGD-5 0.20; 30 steps at 1e-3 stayed at chance, 0.08).
  """
  base = tmp_path_factory.mktemp("cli")
  model_dir, export_dir = str(base / "run"), str(base / "export")
  proc = _run("trainers.train", "--dataset=digits", "--model=small_cnn", "--width=8",
              "--defense=at_alp", "--eps=0.1", "--attack_steps=2", "--train_steps=60",
              "--learning_rate=3e-3", "--batch_size=32", "--checkpoint_every=10",
              f"--model_dir={model_dir}",
              "--attacks=fgsm,pgd:steps=5", "--num_examples=64", "--noprogress",
              f"--export_dir={export_dir}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return model_dir, export_dir, proc.stdout


def _clean_and_fgsm_accuracy(model_dir, num_examples, eps):
  """Accuracy of the run's restored model on the first test images, clean and after
  FGSM written out here: clip(x + eps * sign(grad_x CE), 0, 1)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  from tfadv.data import datasets  # pylint: disable=g-import-not-at-top
  loaded = workflow.load_trained(model_dir)
  x, y = next(iter(datasets.load(loaded.data_config).test.batch(num_examples)))
  y = tf.cast(y, tf.int32)
  labels = y.numpy()
  with tf.GradientTape() as tape:
    tape.watch(x)
    logits = loaded.model(x, training=False)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
  x_adv = tf.clip_by_value(x + eps * tf.sign(tape.gradient(loss, x)), 0.0, 1.0)
  accuracy = lambda z: float(np.mean(np.argmax(loaded.model(z, training=False), -1) == labels))
  return accuracy(x), accuracy(x_adv)


def test_train_writes_report_checkpoints_and_export(trained):
  model_dir, export_dir, stdout = trained
  with open(os.path.join(model_dir, "report.json")) as f:
    report = json.load(f)
  assert report["dataset"] == "digits" and report["defense"] == "at_alp"
  assert report["eps"] == 0.1 and report["num_examples"] == 64
  assert set(report["attacks"]) == {"fgsm", "pgd5"}
  assert report["attacks"]["pgd5"]["params"]["steps"] == 5
  # The run learned (chance is 0.1) and the attacks bite.
  assert report["clean_accuracy"] > 0.25
  # Measured: 0.39 -> 0.20 on one machine, 0.27 -> 0.17 on another (floating point moves
  # this short run); a no-op attack takes nothing off.
  assert report["attacks"]["pgd5"]["accuracy"] < report["clean_accuracy"] - 0.05
  # The report is about the trained checkpoint: recomputed here from its definition.
  clean, fgsm = _clean_and_fgsm_accuracy(model_dir, 64, report["eps"])
  assert report["clean_accuracy"] == pytest.approx(clean, abs=1e-6)
  assert report["attacks"]["fgsm"]["accuracy"] == pytest.approx(fgsm, abs=1.5 / 64)
  assert "| pgd5 |" in open(os.path.join(model_dir, "report.md")).read()
  assert "| pgd5 |" in stdout
  assert os.path.exists(os.path.join(export_dir, "digits_at_alp", "1", "saved_model.pb"))


def test_evaluate_cli_rewrites_the_report(trained, tmp_path):
  model_dir, _, _ = trained
  proc = _run("trainers.evaluate", f"--model_dir={model_dir}", f"--output_dir={tmp_path}",
              "--attacks=fgsm,pgd:steps=3:restarts=2", "--eval_eps=0.05,0.1",
              "--num_examples=64", "--noprogress")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  report = json.load(open(tmp_path / "report.json"))
  assert set(report["attacks"]) == {"fgsm@0.05", "fgsm@0.1", "pgd3x2@0.05", "pgd3x2@0.1"}
  # Each eps is the one run: FGSM recomputed here at 0.05 and at 0.1 (an ignored
  # --eval_eps runs the default eps twice; a no-op attack keeps the clean accuracy).
  for eps in (0.05, 0.1):
    clean, fgsm = _clean_and_fgsm_accuracy(model_dir, 64, eps)
    assert report["clean_accuracy"] == pytest.approx(clean, abs=1e-6)
    assert report["attacks"][f"fgsm@{eps}"]["accuracy"] == pytest.approx(fgsm, abs=1.5 / 64)
    assert report["attacks"][f"fgsm@{eps}"]["params"]["eps"] == eps
    assert report["attacks"][f"pgd3x2@{eps}"]["params"]["eps"] == eps
  fgsm_small, fgsm_large = (report["attacks"][f"fgsm@{e}"]["accuracy"] for e in (0.05, 0.1))
  # Measured: clean 0.39, FGSM 0.30 at 0.05 and 0.20 at 0.1, PGD-3x2 the same figures.
  assert fgsm_large < fgsm_small
  # PGD-3 with 2 restarts is at least about as strong as FGSM at each eps, and bites.
  for eps in (0.05, 0.1):
    assert report["attacks"][f"pgd3x2@{eps}"]["accuracy"] <= (
        report["attacks"][f"fgsm@{eps}"]["accuracy"] + 2 / 64)
  assert report["attacks"]["pgd3x2@0.1"]["accuracy"] < report["clean_accuracy"] - 0.05


def test_export_cli_adds_versions_and_serves_the_same_logits(trained, tmp_path):
  model_dir, _, _ = trained
  export_dir = str(tmp_path / "models")
  for expected in ("1", "2"):
    proc = _run("trainers.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                "--model_name=digits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.join(export_dir, "digits", expected) in proc.stdout
  # Load the export in a fresh process and compare with the restored Keras model.
  check = r"""
import sys, numpy as np, tensorflow as tf
from tfadv import workflow
model = workflow.load_trained(sys.argv[1]).model
x = np.random.RandomState(0).rand(5, 8, 8, 1).astype("float32")
loaded = tf.saved_model.load(sys.argv[2])
out = loaded.signatures["serving_default"](images=tf.constant(x))
np.testing.assert_allclose(out["logits"].numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
# The predicted class ids (`class_ids`; `classes` before the signatures named the classes).
ids = out["class_ids"] if "class_ids" in out else out["classes"]
assert (ids.numpy() == out["logits"].numpy().argmax(-1)).all()
print("OK")
"""
  proc = subprocess.run([sys.executable, "-c", check, model_dir,
                         os.path.join(export_dir, "digits", "2")],
                        cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("args,fragments", [
    (["--defense=madry"], ["defense", "<none|pat|alp|at|at_alp|"]),
    (["--model=vgg"], ["model", "small_cnn"]),
    (["--dataset=no_such_dataset"], ["no_such_dataset", "fashion_mnist"]),
    (["--dataset=folder", "--data_dir=/nonexistent/flowers"], ["/nonexistent/flowers"]),
    (["--eps=8"], ["Invalid eps", "received eps=8"]),
    (["--batch_size=0"], ["Invalid batch_size"]),
    (["--attacks=fgsm,deepfool"], ["deepfool"]),
    (["--image_size=32"], ["Invalid image_size"]),
])
def test_train_rejects_bad_input_clearly(tmp_path, args, fragments):
  proc = _run("trainers.train", f"--model_dir={tmp_path / 'run'}", "--train_steps=1", *args)
  _assert_user_error(proc, *fragments)


def test_train_requires_model_dir():
  _assert_user_error(_run("trainers.train", "--train_steps=1"), "Invalid model_dir")


def test_evaluate_and_export_reject_missing_runs(tmp_path):
  _assert_user_error(_run("trainers.evaluate", f"--model_dir={tmp_path}"), "run_config.json")
  _assert_user_error(_run("trainers.export", f"--model_dir={tmp_path}",
                          f"--export_dir={tmp_path / 'x'}"), "run_config.json")


def test_export_refuses_a_file_as_base_and_keeps_it(trained, tmp_path):
  model_dir, _, _ = trained
  target = tmp_path / "models"
  target.write_text("not a directory")
  _assert_user_error(_run("trainers.export", f"--model_dir={model_dir}",
                          f"--export_dir={target}"), "is a file")
  assert target.read_text() == "not a directory"


def test_flagfile_works(tmp_path):
  flagfile = tmp_path / "flags.txt"
  flagfile.write_text("--defense=nonsense\n")
  _assert_user_error(_run("trainers.train", f"--flagfile={flagfile}",
                          f"--model_dir={tmp_path}"), "nonsense")
