"""Defenses that change the network export and serve: the wrapper is inside the SavedModel
(Randomization's randomness answers in the served graph), and `explain` reads the wrapper's
own taps (the ADP ensemble's member 0)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train_and_export(tmp_path, defense):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run(
      [sys.executable, "-m", "trainers.train", "--dataset=digits", "--width=4",
       f"--defense={defense}", "--eps=0.1", "--attack_steps=1", "--train_steps=2",
       "--batch_size=16", "--attacks=fgsm", "--num_examples=16", "--noprogress",
       "--image_every=0", f"--model_dir={tmp_path / 'run'}",
       f"--export_dir={tmp_path / 'export'}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  version = tmp_path / "export" / f"digits_{defense}" / "1"
  assert version.is_dir(), os.listdir(tmp_path / "export")
  return tf.saved_model.load(str(version)), version


@pytest.mark.slow
def test_randomization_is_random_inside_the_served_graph(tmp_path):
  loaded, _ = _train_and_export(tmp_path, "randomization")
  serve = loaded.signatures["serving_default"]
  x = tf.random.stateless_uniform([8, 8, 8, 1], seed=[1, 2])
  first = serve(images=x)["logits"].numpy()
  runs = [serve(images=x)["logits"].numpy() for _ in range(4)]
  assert any(not np.allclose(first, r) for r in runs)  # a deterministic export would fail


@pytest.mark.slow
def test_ensemble_export_explains_with_its_own_taps(tmp_path):
  loaded, version = _train_and_export(tmp_path, "adp")
  x = tf.random.stateless_uniform([2, 8, 8, 1], seed=[3, 4])
  out = loaded.signatures["explain"](images=x)
  # The served maps are those of the run's own tapped model (the taps and Grad-CAM layer the
  # defense trains with: member 0's), recomputed here from the checkpoint.
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  from tfadv.attention import gradcam, maps  # pylint: disable=g-import-not-at-top
  run = workflow.load_trained(str(tmp_path / "run"))
  cam, result = gradcam.gradcam(run.tapped, x, training=False)
  expected = gradcam.normalize_cam(cam, size=(8, 8)).numpy()
  np.testing.assert_allclose(out["gradcam"].numpy(), expected, rtol=1e-4, atol=1e-5)
  assert np.ptp(expected) > 1e-3  # not a constant map that any layer would give
  for i, features in enumerate(result["taps"]):
    np.testing.assert_allclose(out[f"attention_{i}"].numpy(),
                               maps.attention_image(features).numpy(), rtol=1e-4, atol=1e-5)
  assert len(result["taps"]) >= 2 and "attention_0" in out
  logits = loaded.signatures["serving_default"](images=x)["logits"].numpy()
  # ADP's logits are log mean softmax of the members: their exp sums to one.
  np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, rtol=1e-4)
  with open(version / "assets.extra" / "model_card.json") as f:
    card = json.load(f)
  assert "adp" in json.dumps(card)
