"""The export loaded by TensorFlow's C++ SavedModel loader, as TF Serving loads it.

A child process that never imports TensorFlow's Python package (`c_api_runner.py`, ctypes
over the `libtensorflow_cc.so.2` of the tensorflow wheel) calls
`TF_LoadSessionFromSavedModel` and `TF_SessionRun`, feeding and fetching by the tensor names
of the SignatureDefs; this process reads those names from saved_model.pb and compares the
answers with Keras and with the Python loader. Bad inputs must fail with INVALID_ARGUMENT
(code 3) and the signatures' messages, since TF Serving passes them on unchanged.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

HERE = os.path.dirname(os.path.realpath(__file__))
LIBRARY = os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2")
INVALID_ARGUMENT = "3 "


def signature_defs(version_dir):
  """{signature: SignatureDef} read from saved_model.pb (the names TF Serving uses)."""
  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
    saved.ParseFromString(f.read())
  return dict(saved.meta_graphs[0].signature_def)


def run_c_api(version_dir, runs, tmp_path):
  """Runs [(signature, input key, array, dtype)] in one C API session; returns the results."""
  defs = signature_defs(version_dir)
  request = {"library": LIBRARY, "export_dir": version_dir, "runs": []}
  for i, (signature, key, value, dtype) in enumerate(runs):
    sig = defs[signature]
    np.save(tmp_path / f"in{i}.npy", value)
    request["runs"].append({
        "feed": sig.inputs[key].name, "dtype": dtype, "inputs": str(tmp_path / f"in{i}.npy"),
        "fetches": {k: v.name for k, v in sig.outputs.items()},
        "output": str(tmp_path / f"out{i}.npz")})
  with open(tmp_path / "request.json", "w") as f:
    json.dump(request, f)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run([sys.executable, os.path.join(HERE, "c_api_runner.py"),
                         str(tmp_path / "request.json")], capture_output=True, text=True,
                        timeout=300, env=dict(env, TF_CPP_MIN_LOG_LEVEL="2"))
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stdout + proc.stderr[-3000:]
  answer = json.loads(lines[-1][len("RESULT "):])
  assert not answer["load_error"], answer
  assert not answer["imported_tensorflow"]  # The C++ loader alone, as in TF Serving.
  results = []
  for result in answer["results"]:
    if "error" in result:
      results.append(result["error"])
    else:
      with np.load(result["output"]) as data:
        results.append({k: data[k] for k in data.files})
  return results


@pytest.fixture(scope="module")
def c_api_results(served, tmp_path_factory):
  x = served.x[:5].astype(np.float32)
  nan = x.copy()
  nan[1, 2, 3, 0] = np.nan
  runs = [
      ("serving_default", "images", x, "float32"),
      ("serving_default", "images", x[:1], "float32"),
      ("serving_default", "images", x * 255.0, "float32"),
      ("serving_default", "images", nan, "float32"),
      ("serving_default", "images", x[:, :6], "float32"),
      ("serving_default", "images", x[..., 0], "float32"),
      ("explain", "images", x * 255.0, "float32"),
      ("predict_uint8", "images", np.round(x * 255).astype(np.uint8), "uint8"),
      # As many pixels as a valid batch, one rank too many: the placeholder declared
      # [-1, 8, 8, 1] in the graph would let it through (its rank check folded away).
      ("serving_default", "images", x[..., None], "float32"),
  ]
  return x, run_c_api(served.version_dir, runs, tmp_path_factory.mktemp("c_api"))


def test_c_api_logits_match_keras_and_the_python_loader(served, c_api_results):
  x, results = c_api_results
  keras_logits = served.model(x, training=False).numpy()
  python_logits = tf.saved_model.load(served.version_dir).signatures["serving_default"](
      images=tf.constant(x))["logits"].numpy()
  for result, batch in ((results[0], 5), (results[1], 1)):
    assert result["logits"].shape == (batch, 10)
    np.testing.assert_allclose(result["logits"], python_logits[:batch], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["logits"], keras_logits[:batch], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(result["class_ids"], keras_logits[:batch].argmax(-1))
  np.testing.assert_allclose(results[0]["probabilities"].sum(-1), 1.0, rtol=1e-5)


def test_c_api_rejects_bad_pixels_with_the_signature_messages(c_api_results):
  _, results = c_api_results
  high, nan, short, rank, explain = results[2:7]
  for error in (high, nan, short, rank, explain):
    assert isinstance(error, str) and error.startswith(INVALID_ARGUMENT), error
  assert "images must be float32 in [0, 1]; received max 255.0 \u2014 divide by 255" in high
  assert "images must be float32 in [0, 1]; received 1 NaN or infinite values" in nan
  assert "images must have shape [N, 8, 8, 1] (height, width, channels); received [5, 6, 8, 1]" \
      in short
  assert "images must be a batch of images of shape [N, 8, 8, 1]; received shape [5, 8, 8]" \
      in rank
  assert "received max 255.0" in explain
  assert "images must be a batch of images of shape [N, 8, 8, 1]; received shape " \
      "[5, 8, 8, 1, 1] (rank 5)" in results[8]


def test_c_api_uint8_signature_converts_in_the_graph(served, c_api_results):
  x, results = c_api_results
  quantised = np.round(x * 255) / 255.0
  np.testing.assert_allclose(results[7]["logits"],
                             served.model(quantised.astype(np.float32)).numpy(),
                             rtol=1e-4, atol=1e-5)
