"""serving.export: layout, signatures, equality with Keras, atomicity and bad inputs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from serving import export as export_lib
from serving import warmup as warmup_lib
from tests import testing
from tfadv.attention import gradcam as gradcam_lib
from tfadv.attention import maps
from tfadv.models import taps as taps_lib
from tfadv.models import zoo

# The source tree (realpath: under Bazel, __file__ is a runfiles symlink into it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")


def _expected(model, x):
  """What each signature must return for float images `x`, computed with Keras + tfadv."""
  tapped = taps_lib.tapped_model(model, zoo.tap_layer_names("small_cnn"),
                                 zoo.gradcam_layer_name("small_cnn"))
  cam, outputs = gradcam_lib.gradcam(tapped, tf.constant(x))
  logits = model(x, training=False).numpy()
  expected = {"logits": logits, "probabilities": tf.nn.softmax(logits).numpy(),
              "class_ids": logits.argmax(-1),
              "gradcam": gradcam_lib.normalize_cam(cam, size=x.shape[1:3]).numpy()}
  for i, features in enumerate(outputs["taps"]):
    expected[f"attention_{i}"] = maps.attention_image(features).numpy()
  return expected


def test_layout_is_base_name_integer_version(served):
  assert served.version_dir == os.path.join(served.export_base, served.model_name, "1")
  assert os.path.isfile(os.path.join(served.version_dir, "saved_model.pb"))
  assert export_lib.versions(served.base_path) == [1]
  assert export_lib.next_version(served.base_path) == 2
  assert os.listdir(served.base_path) == ["1"]  # No temporary directory left behind.


IMAGE_SIGNATURES = ("serving_default", "predict_images", "explain")


def test_saved_model_cli_lists_the_signatures(served):
  proc = subprocess.run(["saved_model_cli", "show", "--dir", served.version_dir, "--all"],
                        capture_output=True, text=True, timeout=120, env=ENV)
  assert proc.returncode == 0, proc.stderr
  text = proc.stdout
  blocks = {}
  for block in text.split("signature_def[")[1:]:
    name = block.split("'")[1]
    blocks[name] = block
  assert set(export_lib.SIGNATURES) <= set(blocks), text
  for name in export_lib.SIGNATURES:
    method = "classify" if name == "classify" else "predict"
    assert f"Method name is: tensorflow/serving/{method}" in blocks[name], blocks[name]
  # The shape clients must send is declared (TF Serving's metadata API shows it); the graph
  # still takes any shape and answers a wrong one with a message (c_api_loader_test).
  for name in ("serving_default", "explain"):
    assert "dtype: DT_FLOAT\n        shape: (-1, 8, 8, 1)\n" in blocks[name], blocks[name]
  assert "dtype: DT_UINT8\n        shape: (-1, 8, 8, 1)\n" in blocks["predict_uint8"]
  assert "dtype: DT_STRING\n        shape: (-1)" in blocks["predict_images"]
  for output in ("logits", "probabilities", "class_ids", "classes"):
    for name in IMAGE_SIGNATURES:
      assert f"outputs['{output}']" in blocks[name]
  for output in ("gradcam", "attention_0", "attention_3"):
    assert f"outputs['{output}']" in blocks["explain"]
  assert "dtype: DT_INT32" in blocks["serving_default"].split("outputs['class_ids']")[1]
  assert blocks["serving_default"].split("outputs['classes']")[1].split("dtype: ")[1].startswith(
      "DT_STRING")
  # TF Serving's classify contract: one string input `inputs`, `classes` and `scores`.
  assert "inputs['inputs']" in blocks["classify"]
  assert "outputs['classes']" in blocks["classify"] and "outputs['scores']" in blocks["classify"]
  assert "predict_uint8" in blocks  # The fixture asks for it (accept_uint8=True).


_FRESH_PROCESS_CHECK = r"""
import sys
import numpy as np
import tensorflow as tf

path, data_path = sys.argv[1], sys.argv[2]
data = np.load(data_path, allow_pickle=True)
names = [str(n) for n in data["class_names"]]
graph = tf.Graph()
with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
  meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
  signatures = meta.signature_def
  for batch in (1, 6):
    for signature, key, value in (("serving_default", "images", data["x"][:batch]),
                                  ("predict_images", "image_bytes", data["png"][:batch]),
                                  ("explain", "images", data["x"][:batch])):
      sig = signatures[signature]
      assert sig.method_name == "tensorflow/serving/predict", sig.method_name
      fetches = {k: v.name for k, v in sig.outputs.items()}
      out = sess.run(fetches, feed_dict={sig.inputs[key].name: value})
      expected_keys = ["logits", "probabilities", "class_ids", "classes"]
      if signature == "explain":
        expected_keys += ["gradcam"] + [f"attention_{i}" for i in range(4)]
      assert sorted(out) == sorted(expected_keys), sorted(out)
      for k in expected_keys:
        ids = data[("png_" if signature == "predict_images" else "") + "class_ids"][:batch]
        if k == "classes":
          assert [c.decode() for c in out[k]] == [names[i] for i in ids], (out[k], ids)
          continue
        want = data[("png_" if signature == "predict_images" else "") + k][:batch]
        assert out[k].shape == want.shape, (signature, k, out[k].shape, want.shape)
        if k == "class_ids":
          assert out[k].dtype == np.int32 and (out[k] == want).all(), (signature, out[k], want)
        else:
          np.testing.assert_allclose(out[k], want, rtol=1e-4, atol=1e-5,
                                     err_msg=f"{signature}/{k} batch {batch}")
      print(signature, batch, "OK")
print("ALL OK")
"""


def test_fresh_process_session_loader_matches_keras_for_two_batch_sizes(served, tmp_path):
  x = served.x[:6]
  # The byte signature gets PNGs of the 8-bit quantised images; its reference is Keras on
  # exactly those pixels.
  png = np.array([warmup_lib.encode_png(image) for image in x], dtype=object)
  quantised = np.stack([tf.io.decode_png(p).numpy() / 255.0 for p in png]).astype(np.float32)
  assert np.abs(quantised - x).max() <= 1 / 255
  data = {"x": x, "png": png, "class_names": np.array(served.class_names),
          **_expected(served.model, x)}
  data.update({f"png_{k}": v for k, v in _expected(served.model, quantised).items()})
  np.savez(tmp_path / "data.npz", **data)
  proc = subprocess.run([sys.executable, "-c", _FRESH_PROCESS_CHECK, served.version_dir,
                         str(tmp_path / "data.npz")],
                        capture_output=True, text=True, timeout=180, cwd=ROOT, env=ENV)
  assert proc.returncode == 0 and "ALL OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
  assert proc.stdout.count(" OK\n") == 7  # 3 signatures x 2 batch sizes, then ALL OK.


def test_export_holds_only_the_inference_model(served):
  loaded = tf.saved_model.load(served.version_dir)
  saved = sorted(tuple(v.shape) for v in loaded.variables if v.dtype != tf.string)
  assert saved == sorted(tuple(v.shape) for v in served.model.weights)
  # The training checkpoint holds the optimizer too; the export does not.
  reader = tf.train.load_checkpoint(os.path.join(served.model_dir, "checkpoints"))
  assert any("optimizer" in key for key in reader.get_variable_to_shape_map())
  exported = tf.train.load_checkpoint(os.path.join(served.version_dir, "variables",
                                                   "variables"))
  assert not any("optimizer" in key for key in exported.get_variable_to_shape_map())
  graph_def = loaded.signatures["serving_default"].graph.as_graph_def()
  ops = {node.op for function in graph_def.library.function for node in function.node_def}
  assert "MatMul" in ops or "Conv2D" in ops, ops
  assert not ops & {"RandomUniform", "RandomStandardNormal"}  # No attack (random start).


def test_metadata_records_what_was_deployed(served):
  meta = export_lib.read_metadata(served.version_dir)
  assert meta["model_name"] == served.model_name and meta["version"] == 1
  assert meta["dataset"]["name"] == "digits"
  assert meta["dataset"]["class_names"] == list(served.class_names)
  assert meta["input_shape"] == [8, 8, 1] and meta["num_classes"] == 10
  assert meta["defense"]["name"] == "at_alp"
  assert meta["defense"]["attack"]["eps"] == 0.1
  assert meta["robustness"] == {"clean_accuracy": served.report["clean_accuracy"],
                                "eps": 0.1, "attacks": {"pgd5": 0.25, "autoattack": 0.125}}
  assert meta["signatures"] == ["serving_default", "predict_images", "explain", "classify",
                                "model_card", "predict_uint8"]
  assert meta["class_names"] == list(served.class_names)
  assert meta["warmup_requests"] == 3 * len(warmup_lib.BATCH_SIZES)
  loaded = tf.saved_model.load(served.version_dir)
  assert json.loads(loaded.tfadv_metadata[0].numpy().decode()) == meta


def test_signatures_in_process(served):
  loaded = tf.saved_model.load(served.version_dir)
  x = served.x[:5]
  want = _expected(served.model, x)
  out = loaded.signatures["explain"](images=tf.constant(x))
  for key, value in want.items():
    np.testing.assert_allclose(out[key].numpy(), value, rtol=1e-4, atol=1e-5, err_msg=key)
  assert out["gradcam"].shape == (5, 8, 8)
  assert float(tf.reduce_max(out["gradcam"])) <= 1.0 and float(tf.reduce_min(out["gradcam"])) >= 0
  # A JPEG of another size and colour: decoded to grey and resized inside the graph.
  big = tf.image.resize(tf.image.grayscale_to_rgb(tf.constant(x[:2])), (24, 24)).numpy()
  jpegs = [tf.io.encode_jpeg(tf.image.convert_image_dtype(b, tf.uint8, saturate=True),
                             quality=100).numpy() for b in big]
  out = loaded.signatures["predict_images"](image_bytes=tf.constant(jpegs))
  assert out["probabilities"].shape == (2, 10)
  np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)
  # An empty batch is a valid request with empty answers.
  out = loaded.signatures["predict_images"](image_bytes=tf.constant([], tf.string))
  assert out["classes"].shape == (0,) and out["logits"].shape == (0, 10)
  out = loaded.signatures["explain"](images=tf.zeros((0, 8, 8, 1)))
  assert out["gradcam"].shape == (0, 8, 8) and out["attention_1"].shape == (0, 4, 4)
  with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
    loaded.signatures["predict_images"](image_bytes=tf.constant([b"not an image"]))


def test_exporting_twice_gives_versions_1_and_2(served, tmp_path):
  base = str(tmp_path / "models")
  first = export_lib.export(served.model, base, "m", warmup=False)
  second = export_lib.export(served.model, base, "m", warmup=False)
  assert (first, second) == (os.path.join(base, "m", "1"), os.path.join(base, "m", "2"))
  assert export_lib.versions(os.path.join(base, "m")) == [1, 2]
  assert export_lib.read_metadata(second)["warmup_requests"] == 0
  assert "predict_uint8" not in export_lib.read_metadata(second)["signatures"]  # Opt-in only.


def test_failed_export_leaves_no_version_and_keeps_existing(served, tmp_path, monkeypatch):
  base = str(tmp_path / "models")
  export_lib.export(served.model, base, "m")
  before = testing.tree_digest(base)

  def crash(*args, **kwargs):
    raise RuntimeError("simulated crash while writing warmup records")

  monkeypatch.setattr(warmup_lib, "write", crash)
  with pytest.raises(RuntimeError, match="simulated crash"):
    export_lib.export(served.model, base, "m")
  assert os.listdir(os.path.join(base, "m")) == ["1"]
  assert testing.tree_digest(base) == before
  monkeypatch.undo()
  assert export_lib.export(served.model, base, "m").endswith(os.path.join("m", "2"))


_SLOW_EXPORT = r"""
import sys, time
from serving import export as export_lib, warmup as warmup_lib
from tfadv import config as config_lib
from tfadv.models import zoo

def stall(path, logs):
  print("WRITING", flush=True)
  time.sleep(120)

warmup_lib.write = stall
model = zoo.build_model(config_lib.ModelConfig(name="small_cnn", width=4), (8, 8, 1), 10)
export_lib.export(model, sys.argv[1], "m")
"""


def test_killed_export_leaves_no_version(served, tmp_path):
  base = str(tmp_path / "models")
  export_lib.export(served.model, base, "m", warmup=False)
  before = testing.tree_digest(base)
  proc = subprocess.Popen([sys.executable, "-c", _SLOW_EXPORT, base], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=ENV)
  try:
    assert proc.stdout.readline().strip() == "WRITING"
    # The SavedModel is complete in the temporary directory, but not renamed yet.
    hidden = [n for n in os.listdir(os.path.join(base, "m")) if n.startswith(".tmp-")]
    assert hidden and os.path.exists(os.path.join(base, "m", hidden[0], "saved_model.pb"))
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
  # TF Serving only loads integer directories: the partial one is invisible to it.
  assert export_lib.versions(os.path.join(base, "m")) == [1]
  assert {k: v for k, v in testing.tree_digest(base).items() if not k.startswith("m/.tmp-")} == before
  assert export_lib.next_version(os.path.join(base, "m")) == 2


def test_export_rejects_bad_targets_and_loses_nothing(served, tmp_path):
  as_file = tmp_path / "file"
  as_file.write_text("keep me")
  with pytest.raises(ValueError, match="Invalid export_dir: expected a directory; .* is a file"):
    export_lib.export(served.model, str(as_file), "m")
  assert as_file.read_text() == "keep me"
  base = tmp_path / "models"
  base.mkdir()
  (base / "m").write_text("keep me too")
  with pytest.raises(ValueError, match="model base path"):
    export_lib.export(served.model, str(base), "m")
  assert (base / "m").read_text() == "keep me too"
  path = export_lib.export(served.model, str(base), "n", warmup=False)
  before = testing.tree_digest(path)
  with pytest.raises(ValueError, match="already exists and is never overwritten"):
    export_lib.export(served.model, str(base), "n", version=1)
  assert testing.tree_digest(path) == before
  for version in (0, -3, "2", True, 1.5):
    with pytest.raises(ValueError, match="Invalid version"):
      export_lib.export(served.model, str(base), "n", version=version)
  for name in ("", "a/b", "../up", " x", "name with space"):
    with pytest.raises(ValueError, match="Invalid model_name"):
      export_lib.export(served.model, str(base), name)
  assert export_lib.versions(str(base / "n")) == [1]


def test_default_model_name():
  assert export_lib.default_model_name("digits", "at_alp") == "digits_at_alp"
  assert export_lib.default_model_name("imagenet2012/subset", "aad") == "imagenet2012_subset_aad"


def test_export_finds_taps_of_models_outside_the_zoo(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((8, 8, 1))
  features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
  pooled = keras.layers.MaxPooling2D(name="pool")(features)
  logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(pooled))
  model = keras.Model(inputs, logits)
  # Found by shape (tfadv.models.sources.find_taps): the last layer at 8x8, then at 4x4.
  path = export_lib.export(model, str(tmp_path), "plain", warmup=False)
  out = tf.saved_model.load(path).signatures["explain"](images=tf.ones((2, 8, 8, 1)))
  assert out["attention_0"].shape == (2, 8, 8) and out["attention_1"].shape == (2, 4, 4)
  assert "attention_2" not in out
  # Named taps override.
  path = export_lib.export(model, str(tmp_path), "plain", tap_names=["conv"],
                           gradcam_name="conv", warmup=False)
  out = tf.saved_model.load(path).signatures["explain"](images=tf.ones((2, 8, 8, 1)))
  assert out["attention_0"].shape == (2, 8, 8) and "attention_1" not in out
  # No 4-D feature map: Grad-CAM on the input image itself, no attention maps.
  flat = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
  path = export_lib.export(flat, str(tmp_path), "flat", warmup=False)
  out = tf.saved_model.load(path).signatures["explain"](images=tf.ones((2, 8, 8, 1)))
  assert out["gradcam"].shape == (2, 8, 8) and "attention_0" not in out
