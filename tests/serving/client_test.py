"""serving.client end to end: gRPC PredictionService and REST servers backed by the export.

The gRPC server is a real `grpc.server` with tensorflow-serving-api's PredictionService
protos; the REST server a real `http.server` on 127.0.0.1 speaking TF Serving's JSON. Both
load the export with the v1 SavedModel loader (tests.serving.model_server), so the client's
requests run the exported signatures by their tensor names, as in TF Serving.
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving import client as client_lib
from serving import warmup as warmup_lib
from tests.serving import model_server

# The source tree (realpath: under Bazel, __file__ is a runfiles symlink into it).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.fixture(scope="module")
def servers(served):
  store = model_server.ModelStore({served.model_name: served.base_path})
  grpc_server, grpc_port = model_server.start_grpc_server(store)
  rest_server, rest_port = model_server.start_rest_server(store)
  yield f"127.0.0.1:{grpc_port}", f"127.0.0.1:{rest_port}"
  rest_server.shutdown()
  rest_server.server_close()
  grpc_server.stop(0)


def _keras_classes(served, x):
  return served.model(x, training=False).numpy().argmax(-1)


def _png_files(directory, images, scale=1, rgb=False):
  paths = []
  for i, image in enumerate(images):
    image = tf.convert_to_tensor(image)
    if scale > 1:
      image = tf.image.resize(image, (image.shape[0] * scale, image.shape[1] * scale),
                              method="nearest")
    if rgb:
      image = tf.image.grayscale_to_rgb(image)
    path = os.path.join(directory, f"digit{i}.png")
    with open(path, "wb") as f:
      f.write(warmup_lib.encode_png(image.numpy()))
    paths.append(path)
  return paths


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_grpc_client_gets_the_keras_classes(served, servers):
  client = client_lib.GrpcClient(servers[0], served.model_name, timeout=30)
  x = served.x[:16]
  outputs = client_lib.classify(client, images=x)
  np.testing.assert_array_equal(outputs["class_ids"], _keras_classes(served, x))
  assert [c.decode() for c in outputs["classes"]] == [
      served.class_names[i] for i in _keras_classes(served, x)]
  np.testing.assert_allclose(outputs["probabilities"],
                             tf.nn.softmax(served.model(x)).numpy(), rtol=1e-4, atol=1e-6)
  request = client.last_request
  assert isinstance(request, predict_pb2.PredictRequest)
  assert request.model_spec.name == served.model_name
  assert request.model_spec.signature_name == "serving_default"
  proto = request.inputs["images"]
  assert proto.dtype == tf.float32.as_datatype_enum
  assert [d.size for d in proto.tensor_shape.dim] == [16, 8, 8, 1]
  assert client.input_shape("explain") == (8, 8, 1)
  explained = client_lib.classify(client, images=x[:3], explain=True)
  assert explained["gradcam"].shape == (3, 8, 8)
  np.testing.assert_array_equal(explained["class_ids"], outputs["class_ids"][:3])
  # A pinned version works too.
  pinned = client_lib.GrpcClient(servers[0], served.model_name, version=1, timeout=30)
  np.testing.assert_array_equal(client_lib.classify(pinned, images=x)["class_ids"],
                                outputs["class_ids"])


def test_encoded_images_over_grpc_and_rest(served, servers):
  x = served.x[:5]
  blobs = [warmup_lib.encode_png(image) for image in x]
  decoded = np.stack([tf.io.decode_png(b).numpy() / 255.0 for b in blobs]).astype(np.float32)
  want = _keras_classes(served, decoded)
  for client in (client_lib.GrpcClient(servers[0], served.model_name, timeout=30),
                 client_lib.RestClient(servers[1], served.model_name, timeout=30),
                 client_lib.RestClient(servers[1], served.model_name, timeout=30,
                                       columnar=True)):
    outputs = client_lib.classify(client, image_bytes=blobs)
    np.testing.assert_array_equal(outputs["class_ids"], want)
  # The REST body was TF Serving's columnar form with b64 values.
  body = client.last_request
  assert body["signature_name"] == "predict_images"
  assert [list(v) for v in body["inputs"]] == [["b64"]] * 5


def test_rest_client_row_and_columnar_give_the_keras_outputs(served, servers):
  x = served.x[:12]
  row = client_lib.RestClient(servers[1], served.model_name, timeout=30)
  columnar = client_lib.RestClient(servers[1], served.model_name, version=1, timeout=30,
                                   columnar=True)
  row_out = client_lib.classify(row, images=x)
  assert set(row.last_request) == {"signature_name", "instances"}
  assert len(row.last_request["instances"]) == 12
  assert np.asarray(row.last_request["instances"]).shape == (12, 8, 8, 1)
  col_out = client_lib.classify(columnar, images=x)
  assert set(columnar.last_request) == {"signature_name", "inputs"}
  for out in (row_out, col_out):
    np.testing.assert_array_equal(out["class_ids"], _keras_classes(served, x))
    np.testing.assert_allclose(out["logits"], served.model(x).numpy(), rtol=1e-4, atol=1e-5)
  assert row.input_shape("explain") == (8, 8, 1)


def test_raw_rest_answers_are_tf_serving_json(served, servers):
  base = f"http://{servers[1]}/v1/models/{served.model_name}"
  with urllib.request.urlopen(base, timeout=30) as response:
    status = json.loads(response.read())
  assert status["model_version_status"][0]["version"] == "1"
  assert status["model_version_status"][0]["state"] == "AVAILABLE"
  body = json.dumps({"instances": served.x[:2].tolist()}).encode()
  request = urllib.request.Request(base + ":predict", data=body, method="POST")
  with urllib.request.urlopen(request, timeout=30) as response:
    answer = json.loads(response.read())
  assert len(answer["predictions"]) == 2
  assert set(answer["predictions"][0]) == {"logits", "probabilities", "class_ids", "classes"}
  ids = _keras_classes(served, served.x[:2])
  assert [p["class_ids"] for p in answer["predictions"]] == ids.tolist()
  assert [p["classes"] for p in answer["predictions"]] == [served.class_names[i] for i in ids]


def _post_error(url, payload):
  data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
  request = urllib.request.Request(url, data=data, method="POST")
  with pytest.raises(urllib.error.HTTPError) as info:
    urllib.request.urlopen(request, timeout=30)
  return info.value.code, json.loads(info.value.read())["error"]


def test_bad_requests_get_error_responses_and_the_server_keeps_serving(served, servers):
  base = f"http://{servers[1]}/v1/models/{served.model_name}"
  code, error = _post_error(base + ":predict", {"signature_name": "predict_images",
                                                "instances": [{"b64": "bm90IGFuIGltYWdl"}]})
  assert code == 400 and ("image_bytes[0] (12 bytes): not a PNG, JPEG, GIF or BMP file"
                          in error), error
  code, error = _post_error(base + ":predict", {"instances": [[[0.5] * 9] * 8]})
  assert code == 400 and "images must be a batch of images of shape [N, 8, 8, 1]; " \
      "received shape [1, 8, 9] (rank 3)" in error, error
  code, error = _post_error(base + ":predict", {"instances": (served.x[:2] * 255).tolist()})
  assert code == 400 and "images must be float32 in [0, 1]; received max 255.0 \u2014 divide " \
      "by 255" in error, error
  code, error = _post_error(base + ":predict", {"instances": [[[["a"]] * 8] * 8]})
  assert code == 400 and "expected float32 numbers" in error
  code, error = _post_error(base + ":predict", b"{not json")
  assert code == 400 and "not JSON" in error
  code, error = _post_error(base + ":predict", {"signature_name": "nope", "instances": [1]})
  assert code == 404 and "nope" in error
  code, error = _post_error(f"http://{servers[1]}/v1/models/other:predict", {"instances": [1]})
  assert code == 404 and "Servable not found" in error
  rest_client = client_lib.RestClient(servers[1], served.model_name, timeout=30)
  with pytest.raises(client_lib.ServingError, match=r"HTTP 400: .*image_bytes\[0\]"):
    client_lib.classify(rest_client, image_bytes=[b"garbage"])

  grpc_client = client_lib.GrpcClient(servers[0], served.model_name, timeout=30)
  with pytest.raises(client_lib.ServingError,
                     match="INVALID_ARGUMENT: .*expected float32; received int32"):
    grpc_client.predict("serving_default", {"images": np.zeros((1, 8, 8, 1), np.int32)})
  with pytest.raises(client_lib.ServingError, match=r"received \[2, 8, 9, 1\]"):
    client_lib.classify(grpc_client, images=np.zeros((2, 8, 9, 1)))
  nan = served.x[:2].copy()
  nan[0, 0, 0, 0] = np.nan
  with pytest.raises(client_lib.ServingError, match="INVALID_ARGUMENT: .*received 1 NaN"):
    client_lib.classify(grpc_client, images=nan)
  with pytest.raises(client_lib.ServingError, match=r"INVALID_ARGUMENT: .*image_bytes\[1\] "
                     r"\(1 bytes\): not a PNG"):
    client_lib.classify(grpc_client, image_bytes=[warmup_lib.encode_png(served.x[0]), b"x"])
  with pytest.raises(client_lib.ServingError, match="NOT_FOUND: .*'missing'"):
    client_lib.classify(client_lib.GrpcClient(servers[0], "missing", timeout=30),
                        images=served.x[:1])
  # Nothing was lost: both servers still answer correctly.
  for client in (rest_client, grpc_client):
    np.testing.assert_array_equal(client_lib.classify(client, images=served.x[:4])["class_ids"],
                                  _keras_classes(served, served.x[:4]))


def test_unreachable_and_silent_servers_give_clear_errors(served):
  port = _free_port()  # Nothing listens there any more.
  for client in (client_lib.RestClient(f"127.0.0.1:{port}", "m", timeout=5),
                 client_lib.GrpcClient(f"127.0.0.1:{port}", "m", timeout=5)):
    with pytest.raises(client_lib.ServingError, match="Cannot reach TensorFlow Serving"):
      client_lib.classify(client, images=served.x[:1])
  with socket.socket() as silent:  # Accepts connections, never answers.
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    for client in (client_lib.RestClient(address, "m", timeout=0.5),
                   client_lib.GrpcClient(address, "m", timeout=0.5)):
      with pytest.raises(client_lib.ServingError, match=r"No answer .* within --timeout=0.5 s"):
        client_lib.classify(client, images=served.x[:1])
  with pytest.raises(ValueError, match="Invalid server: expected HOST:PORT"):
    client_lib.RestClient("localhost", "m")


def _run_client(*args):
  return subprocess.run([sys.executable, "-m", "trainers.client", *args], capture_output=True,
                        text=True, timeout=120, cwd=ROOT, env=ENV)


def test_cli_explains_image_files_over_rest(served, servers, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  paths = _png_files(str(tmp_path), served.x[:3], scale=4, rgb=True)  # 32x32 RGB files.
  out_dir = tmp_path / "cams"
  proc = _run_client(f"--server={servers[1]}", f"--model_name={served.model_name}",
                     f"--images={','.join(paths)}", "--explain", f"--output_dir={out_dir}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  lines = [l for l in proc.stdout.splitlines() if re.match(r"digit\d: class \d", l)]
  assert len(lines) == 3, proc.stdout
  for i in range(3):
    picture = Image.open(out_dir / f"digit{i}_gradcam.png")
    assert picture.format == "PNG" and picture.size == (128, 128) and picture.mode == "RGB"
    assert len({tuple(p) for p in np.asarray(picture).reshape(-1, 3)}) > 3  # Not blank.


def test_cli_classifies_a_dataset_slice_over_grpc(served, servers):
  proc = _run_client("--protocol=grpc", f"--server={servers[0]}",
                     f"--model_name={served.model_name}", "--dataset=digits", "--start=0",
                     "--count=6")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  classes = [int(c) for c in re.findall(r"^digits_test_\d+: class (\d+)", proc.stdout, re.M)]
  assert classes == _keras_classes(served, served.x[:6]).tolist(), proc.stdout
  assert "accuracy on the 6 examples" in proc.stdout


def test_cli_reports_user_errors_in_one_line():
  proc = _run_client(f"--server=127.0.0.1:{_free_port()}", "--model_name=m",
                     "--dataset=digits", "--count=1", "--timeout=5")
  text = proc.stdout + proc.stderr
  assert proc.returncode == 2 and "Traceback" not in text, text
  assert "Error: Cannot reach TensorFlow Serving at http://127.0.0.1:" in text, text


def test_client_input_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.png' is not a file"):
    client_lib.read_image_files([str(tmp_path / "missing.png")])
  (tmp_path / "bad.png").write_bytes(b"not an image")
  with pytest.raises(ValueError, match="Invalid image 'bad': not a readable image"):
    client_lib.decode_image((tmp_path / "bad.png").read_bytes(), (8, 8, 1), "bad")
  with pytest.raises(ValueError, match="Invalid protocol"):
    client_lib.make_client("http2", "localhost:1", "m")
  with pytest.raises(ValueError, match="Invalid slice"):
    client_lib.dataset_slice("digits", count=0)


def test_explain_sends_the_pixels_the_training_pipeline_and_predict_images_see(tmp_path):
  # A 40x30 RGB photo for a 28x28 grayscale model: decoded, converted and shrunk by the
  # functions of the input pipeline (a PIL resize would differ in every pixel row).
  from tfadv.data import images  # pylint: disable=g-import-not-at-top
  photo = np.uint8(np.random.default_rng(0).integers(0, 256, (30, 40, 3)))
  data = tf.io.encode_png(photo).numpy()
  sent = client_lib.decode_image(data, (28, 28, 1), "photo")
  expected = images.to_model_input(images.decode(data, 1), (28, 28)).numpy()
  assert sent.shape == (28, 28, 1)
  np.testing.assert_array_equal(sent, expected)
  shown = client_lib.decode_image(data)  # display only: the file as it is
  assert shown.shape == (30, 40, 3)
  np.testing.assert_allclose(shown, photo / 255.0, atol=1e-7)


def test_overlay_and_prediction_lines():
  image = np.zeros((8, 8, 1), np.float32)
  heat = np.zeros((8, 8), np.float32)
  heat[2, 3] = 1.0
  picture = client_lib.overlay(image, heat)
  assert picture.shape == (128, 128, 3) and picture.dtype == np.uint8
  hot = picture[2 * 16 + 8, 3 * 16 + 8]
  cold = picture[120, 120]
  assert hot[0] > cold[0] and hot[2] < cold[2] + 1  # Red where the heat is, blue elsewhere.
  line = client_lib.format_prediction("x", np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], 2, 2)
  assert line == "x: class 1 (b) p=0.700 label 2 (c) | top: 1=0.700, 2=0.200"


def test_model_card_from_the_server_and_from_the_files(served, servers):
  want = json.load(open(os.path.join(served.version_dir, "assets.extra", "model_card.json")))
  for client in (client_lib.GrpcClient(servers[0], served.model_name, timeout=30),
                 client_lib.RestClient(servers[1], served.model_name, timeout=30)):
    assert client_lib.model_card(client) == want
    assert client.input_shape() == (8, 8, 1)
  proc = _run_client(f"--server={servers[1]}", f"--model_name={served.model_name}",
                     "--metadata")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  markdown = open(os.path.join(served.version_dir, "assets.extra", "model_card.md")).read()
  assert proc.stdout == markdown
  assert client_lib.read_model_card(served.version_dir) == want
  with pytest.raises(ValueError, match="expected an integer version directory"):
    client_lib.read_model_card(served.base_path)
  with pytest.raises(FileNotFoundError, match="model_card.json"):
    client_lib.read_model_card(os.path.join(served.base_path, "7"))


def test_cli_prints_the_models_class_names(served, servers, tmp_path):
  paths = _png_files(str(tmp_path), served.x[:2])
  proc = _run_client(f"--server={servers[1]}", f"--model_name={served.model_name}",
                     f"--images={','.join(paths)}")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  ids = _keras_classes(served, served.x[:2])
  for i, c in enumerate(ids):
    assert f"digit{i}: class {c} ({served.class_names[c]})" in proc.stdout, proc.stdout


def test_rest_classify_answers_class_names_with_scores(served, servers):
  png = warmup_lib.encode_png(served.x[0])
  body = {"signature_name": "classify",
          "examples": [{"image/encoded": {"b64": base64.b64encode(png).decode()}}]}
  request = urllib.request.Request(
      f"http://{servers[1]}/v1/models/{served.model_name}:classify",
      data=json.dumps(body).encode(), method="POST")
  with urllib.request.urlopen(request, timeout=30) as response:
    results = json.loads(response.read())["results"]
  assert [name for name, _ in results[0]] == list(served.class_names)
  decoded = tf.io.decode_png(png).numpy()[None] / 255.0
  want = tf.nn.softmax(served.model(decoded.astype(np.float32))).numpy()[0]
  np.testing.assert_allclose([score for _, score in results[0]], want, rtol=1e-4, atol=1e-6)
  code, error = _post_error(f"http://{servers[1]}/v1/models/{served.model_name}:classify",
                            {"examples": [{"image/encoded": {"b64": "aGVsbG8="}}]})
  assert code == 400 and "Expected classification signature method_name" in error
