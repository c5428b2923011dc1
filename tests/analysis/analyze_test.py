"""tfadv-analyze end to end on a tiny trained run: JSON, figures, and its user errors."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.analysis import plots

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def _top_mask(energy, fraction):
  """The `fraction` largest entries of each flattened map (ties at the threshold kept)."""
  flat = energy.reshape(len(energy), -1)
  k = int(np.ceil(fraction * flat.shape[1]))
  kth = -np.sort(-flat, axis=1)[:, k - 1:k]
  return flat >= kth


def _recomputed(model_dir, num_examples, eps, steps, fraction):
  """Accuracies, per-stage attention IoU (clean vs PGD) and the clean loss, from their
  definitions on the restored model (PGD itself is the product's, with the CLI's seed)."""
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  from tfadv.attacks import pgd  # pylint: disable=g-import-not-at-top
  from tfadv.data import datasets  # pylint: disable=g-import-not-at-top
  from tfadv.models import zoo  # pylint: disable=g-import-not-at-top
  loaded = workflow.load_trained(model_dir)
  model = loaded.model
  x, y = next(iter(datasets.load(loaded.data_config).test.batch(num_examples)))
  y = tf.cast(y, tf.int32)
  x_adv = pgd.pgd(lambda z: model(z, training=False), x, y, eps, steps=steps,
                  seed=tf.constant([0, 0], tf.int64))
  stages = keras.Model(model.inputs, [model.get_layer(name).output for name in
                                      zoo.tap_layer_names(loaded.model_config.name)])
  out = {"clean_accuracy": float(np.mean(np.argmax(model(x), -1) == y.numpy())),
         "adv_accuracy": float(np.mean(np.argmax(model(x_adv), -1) == y.numpy()))}
  for j, (a, b) in enumerate(zip(stages(x), stages(x_adv))):
    ma = _top_mask(np.sum(np.square(a.numpy()), -1), fraction)
    mb = _top_mask(np.sum(np.square(b.numpy()), -1), fraction)
    out[f"stage{j}_iou"] = float(np.mean(np.sum(ma & mb, 1) / np.sum(ma | mb, 1)))
  out["clean_loss16"] = float(np.mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=y[:16], logits=model(x[:16]))))
  return out


def test_analyze_cli_writes_statistics_and_figures(tmp_path):
  model_dir = str(tmp_path / "run")
  train = _run("trainers.train", "--dataset=digits", "--model=small_cnn", "--width=8",
               "--defense=at_alp", "--eps=0.12", "--attack_steps=2", "--train_steps=60",
               "--learning_rate=3e-3", "--batch_size=32", "--attacks=fgsm", "--num_examples=32", "--noprogress",
               f"--model_dir={model_dir}")
  assert train.returncode == 0, train.stdout + train.stderr
  # No --eps: the analysis runs at the run's training eps (0.12), not a fixed 0.1.
  proc = _run("trainers.analyze", f"--model_dir={model_dir}", "--num_examples=48",
              "--attack_steps=3", "--points=5", "--landscape_examples=16")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "eps = 0.12 (the run's training eps" in proc.stdout
  out = os.path.join(model_dir, "analysis")
  with open(os.path.join(out, "analysis.json")) as f:
    result = json.load(f)
  assert result["num_examples"] == 48 and result["defense"] == "at_alp"
  expected = _recomputed(model_dir, 48, 0.12, 3, 0.2)
  print(result["clean_accuracy"], result["adv_accuracy"],
        {k: v["mean"] for k, v in result["attention"].items()}, expected)
  # The figures are those of the trained checkpoint under that PGD attack.
  assert result["clean_accuracy"] == pytest.approx(expected["clean_accuracy"], abs=1e-6)
  assert result["adv_accuracy"] == pytest.approx(expected["adv_accuracy"], abs=1.5 / 48)
  assert result["adv_accuracy"] < result["clean_accuracy"]
  for j in range(4):
    assert result["attention"][f"stage{j}_iou"]["mean"] == pytest.approx(
        expected[f"stage{j}_iou"], abs=0.02), j
  # The attack moves attention (IoU 1 would mean clean was compared with clean).
  assert min(result["attention"][f"stage{j}_iou"]["mean"] for j in range(4)) < 0.95
  assert result["attention"]["gradcam_iou"]["mean"] < 1.0
  losses = np.array(result["landscape"]["losses"])
  offsets = np.array(result["landscape"]["offsets"])
  assert losses.shape == (5, 5) and np.all(np.isfinite(losses))
  np.testing.assert_allclose(offsets, np.linspace(-0.24, 0.24, 5), atol=1e-6)  # radius 2 eps
  # The centre is the clean loss; stepping along the adversarial direction raises it.
  assert losses[2, 2] == pytest.approx(expected["clean_loss16"], rel=1e-3)
  assert losses[4, 2] > losses[2, 2]
  for name in (plots.STAGES_PLOT, plots.LANDSCAPE_PLOT):
    with open(os.path.join(out, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"

  bad = _run("trainers.analyze", f"--model_dir={model_dir}", "--points=4")
  assert bad.returncode == 2 and "Invalid points" in bad.stderr
  assert "Traceback" not in bad.stderr
  missing = _run("trainers.analyze", f"--model_dir={tmp_path / 'nothing'}")
  assert missing.returncode == 2 and "run_config.json" in missing.stderr
