r"""Client library of tfadv-client (the CLI is trainers/client.py): query TensorFlow Serving.

  # Image files over REST (sent as {"b64": ...} to the predict_images signature):
  tfadv-client --server=localhost:8501 --model_name=fmnist_at_alp --images=a.png,b.jpg
  # A slice of a dataset over gRPC (float images to serving_default):
  tfadv-client --protocol=grpc --server=localhost:8500 --model_name=fmnist_at_alp \
      --dataset=fashion_mnist --start=0 --count=8
  # Grad-CAM heat maps over the images, saved as PNG:
  tfadv-client --model_name=fmnist_at_alp --images=a.png --explain --output_dir=/tmp/cams

Prints one line per image: predicted class (and its name with --class_names or a dataset),
its probability and the top-k classes. Connection failures and timeouts end with a one-line
`Error: ...` and exit status 2.
"""

import http.client
import io
import json
import os
import socket
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top

from serving import rest
from serving import signatures

DEFAULT_SIGNATURE = signatures.DEFAULT_SIGNATURE
BYTES_SIGNATURE = signatures.BYTES_SIGNATURE
EXPLAIN_SIGNATURE = signatures.EXPLAIN_SIGNATURE
IMAGES_KEY = signatures.IMAGES_KEY
IMAGE_BYTES_KEY = signatures.IMAGE_BYTES_KEY
_MAX_MESSAGE = 64 * 1024 * 1024


class ServingError(ValueError):
  """The server could not be reached, did not answer in time, or rejected the request."""


def _check_server(server):
  address = server[len("http://"):] if server.startswith("http://") else server
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"Invalid server: expected HOST:PORT (e.g. localhost:8501); "
                     f"received {server!r}")
  return address


class RestClient:
  """TF Serving's REST predict API over `urllib` (JSON, row or columnar form).

  Args:
    server: `host:port` of the REST API (TF Serving's `--rest_api_port`).
    model_name: the served model.
    version: a version number, or None for the latest.
    timeout: seconds to wait for an answer.
    columnar: send `inputs` (columnar) instead of `instances` (row) requests.
  """

  def __init__(self, server, model_name, version=None, timeout=10.0, columnar=False):
    self.address = _check_server(server)
    self.model_name = model_name
    self.timeout = timeout
    self.columnar = columnar
    self.url = f"http://{self.address}/v1/models/{model_name}"
    if version:
      self.url += f"/versions/{int(version)}"
    self.last_request = None

  def _call(self, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        return json.loads(response.read())
    except urllib.error.HTTPError as e:
      text = e.read().decode(errors="replace")
      try:
        message = json.loads(text).get("error", text)
      except (ValueError, AttributeError):
        message = text
      raise ServingError(f"TensorFlow Serving at {url} answered HTTP {e.code}: "
                         f"{message}") from None
    except urllib.error.URLError as e:
      if isinstance(e.reason, (socket.timeout, TimeoutError)):
        raise ServingError(self._timeout_message(url)) from None
      raise ServingError(f"Cannot reach TensorFlow Serving at {url}: {e.reason}. Is the "
                         "server running and --server its REST host:port?") from None
    except (socket.timeout, TimeoutError):
      raise ServingError(self._timeout_message(url)) from None
    except (ConnectionError, http.client.HTTPException) as e:
      raise ServingError(f"Connection to TensorFlow Serving at {url} failed: {e}") from None

  def _timeout_message(self, url):
    return (f"No answer from TensorFlow Serving at {url} within --timeout={self.timeout:g} s")

  def predict(self, signature_name, inputs):
    """Runs `signature_name` on {input name: batch array}; returns {output name: array}."""
    body = rest.predict_request(inputs, signature_name, self.columnar)
    self.last_request = body
    return rest.parse_predict_response(self._call(self.url + ":predict", body))

  def input_shape(self, signature_name=None, input_name=IMAGES_KEY):
    """(H, W, C) of the model's images, from its model card."""
    return card_input_shape(model_card(self), self.url)

  def signature_names(self):
    """The served signatures, from the model metadata API."""
    body = self._call(self.url + "/metadata")
    try:
      return sorted(body["metadata"]["signature_def"]["signature_def"])
    except (KeyError, TypeError) as e:
      raise ServingError(f"Invalid metadata from {self.url}/metadata: no signature_def "
                         f"({e!r})") from None


class GrpcClient:
  """TF Serving's gRPC `PredictionService` (tensorflow-serving-api protos).

  Args:
    server: `host:port` of the gRPC API (TF Serving's `--port`).
    model_name: the served model.
    version: a version number, or None for the latest.
    timeout: seconds to wait for an answer (the RPC deadline).
  """

  def __init__(self, server, model_name, version=None, timeout=10.0):
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    self.address = _check_server(server)
    self.model_name = model_name
    self.version = version
    self.timeout = timeout
    self._grpc = grpc
    self.channel = grpc.insecure_channel(
        self.address, options=[("grpc.max_receive_message_length", _MAX_MESSAGE),
                               ("grpc.max_send_message_length", _MAX_MESSAGE)])
    self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
    self.last_request = None

  def _spec(self, spec, signature_name=None):
    spec.name = self.model_name
    if signature_name:
      spec.signature_name = signature_name
    if self.version:
      spec.version.value = int(self.version)

  def _call(self, method, request):
    grpc = self._grpc
    try:
      return method(request, timeout=self.timeout)
    except grpc.RpcError as e:
      code = e.code()
      where = f"TensorFlow Serving at {self.address} (gRPC)"
      if code == grpc.StatusCode.UNAVAILABLE:
        raise ServingError(f"Cannot reach {where}: {e.details()}. Is the server running and "
                           "--server its gRPC host:port?") from None
      if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise ServingError(f"No answer from {where} within --timeout={self.timeout:g} s"
                           ) from None
      raise ServingError(f"{where} answered {code.name}: {e.details()}") from None

  def predict(self, signature_name, inputs):
    """Runs `signature_name` on {input name: batch array}; returns {output name: array}."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    request = predict_pb2.PredictRequest()
    self._spec(request.model_spec, signature_name)
    for name, value in inputs.items():
      value = np.asarray(value)
      if value.dtype == np.float64:
        value = value.astype(np.float32)
      request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    self.last_request = request
    response = self._call(self.stub.Predict, request)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

  def input_shape(self, signature_name=None, input_name=IMAGES_KEY):
    """(H, W, C) of the model's images, from its model card."""
    return card_input_shape(model_card(self), self.address)


def model_card(client, fmt="json"):
  """The model card of the served version (its `model_card` signature): dict or Markdown."""
  blob = np.empty(1, dtype=object)
  blob[0] = fmt.encode()
  outputs = client.predict(signatures.MODEL_CARD_SIGNATURE,
                           {signatures.MODEL_CARD_FORMAT_KEY: blob})
  # REST answers a single-output signature without the output's name.
  value = outputs.get(signatures.MODEL_CARD_KEY, outputs.get(None))
  text = np.asarray(value, dtype=object).reshape(-1)[0]
  text = text.decode() if isinstance(text, bytes) else str(text)
  if fmt == "md":
    return text
  try:
    return json.loads(text)
  except ValueError as e:
    raise ServingError(f"Invalid model card from the server: not JSON ({e})") from None


def read_model_card(version_dir, fmt="json"):
  """The model card files of an export version directory (no server needed)."""
  version = os.path.basename(os.path.normpath(version_dir))
  if not version.isdigit():
    raise ValueError(f"Invalid version_dir: expected an integer version directory "
                     f"<export_dir>/<model_name>/<N> (TF Serving loads only those); received "
                     f"{version_dir!r}")
  name = signatures.MODEL_CARD_MD if fmt == "md" else signatures.MODEL_CARD_JSON
  path = os.path.join(version_dir, signatures.ASSETS_EXTRA, name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Invalid version_dir: expected {path!r} (written by "
                            "tfadv-export); it does not exist")
  with open(path) as f:
    text = f.read()
  if fmt == "md":
    return text
  try:
    return json.loads(text)
  except ValueError as e:
    raise ValueError(f"Invalid model card: {path!r} is not valid JSON ({e})") from None


def card_input_shape(card, where):
  try:
    return tuple(int(d) for d in card["model_parameters"]["input_shape"])
  except (KeyError, TypeError, ValueError) as e:
    raise ServingError(f"Invalid model card from {where}: no model_parameters.input_shape "
                       f"({e!r})") from None


def make_client(protocol, server, model_name, version=None, timeout=10.0, columnar=False):
  """A `RestClient` (`protocol="rest"`) or `GrpcClient` (`"grpc"`)."""
  if protocol == "rest":
    return RestClient(server, model_name, version, timeout, columnar)
  if protocol == "grpc":
    return GrpcClient(server, model_name, version, timeout)
  raise ValueError(f"Invalid protocol: expected rest or grpc; received {protocol!r}")


def read_image_files(paths):
  """The bytes of each file, in order.

  Raises:
    FileNotFoundError: a path is not a readable file.
  """
  blobs = []
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"Invalid images: expected image files; {path!r} is not a file")
    with open(path, "rb") as f:
      blobs.append(f.read())
  return blobs


def read_arrays(paths):
  """Float images [N, H, W, C] from `.npy` files (each one image or a batch), concatenated.

  They go to `serving_default` as they are, so the server's checks see exactly them.

  Raises:
    FileNotFoundError: a path is not a file.
    ValueError: a file is not a numeric .npy array.
  """
  batches = []
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"Invalid images: expected .npy files; {path!r} is not a file")
    try:
      array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
      raise ValueError(f"Invalid images: {path!r} is not a .npy array ({e})") from None
    if array.dtype.kind not in "fiu":
      raise ValueError(f"Invalid images: expected numbers in {path!r}; received dtype "
                       f"{array.dtype}")
    batches.append(array.astype(np.float32)[None] if array.ndim == 3 else
                   array.astype(np.float32))
  shapes = {b.shape[1:] for b in batches}
  if len(shapes) > 1:
    raise ValueError(f"Invalid images: the .npy files hold different shapes {sorted(shapes)}")
  return np.concatenate(batches)


def decode_image(data, shape=None, name="image"):
  """Encoded bytes -> float32 [H, W, C] in [0, 1], converted/resized to `shape` if given.

  Given a model's input `shape`, the image goes through `tfadv.data.images` (TensorFlow's
  decoder, colour conversion and antialiased resize), the functions of the training input
  pipeline and of the served `predict_images`: `--explain`, which sends pixels, classifies
  an image file exactly as sending its bytes does. Without a shape (display only) PIL reads
  it and TensorFlow is not imported.

  Raises:
    ValueError: the bytes are not an image PIL can read.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as e:  # PIL raises several types for unreadable data.
    raise ValueError(f"Invalid image {name!r}: not a readable image file ({e})") from None
  if shape:
    from tfadv.data import images  # pylint: disable=g-import-not-at-top
    pixels = images.to_model_input(images.decode(data, int(shape[2])),
                                   (int(shape[0]), int(shape[1])))
    return np.asarray(pixels, dtype=np.float32)
  image = image.convert("L" if image.mode in ("L", "I", "I;16") else "RGB")
  array = np.asarray(image, dtype=np.float32) / 255.0
  return array[..., None] if array.ndim == 2 else array


def dataset_slice(name, split="test", start=0, count=8, data_dir=None):
  """(images [N, H, W, C] float32 in [0, 1], labels [N], class names) of a dataset slice."""
  from tfadv import config as config_lib  # pylint: disable=g-import-not-at-top
  from tfadv.data import datasets  # pylint: disable=g-import-not-at-top
  if start < 0 or count < 1:
    raise ValueError(f"Invalid slice: expected start >= 0 and count >= 1; received "
                     f"start={start}, count={count}")
  info = datasets.load(config_lib.DataConfig(name=name, data_dir=data_dir))
  data = {"train": info.train, "test": info.test}.get(split)
  if data is None:
    raise ValueError(f"Invalid split: expected train or test; received {split!r}")
  images, labels = [], []
  for x, y in data.skip(start).take(count).as_numpy_iterator():
    images.append(x)
    labels.append(int(y))
  if not images:
    raise ValueError(f"Invalid slice: {name} {split} has no examples from start={start}")
  return np.stack(images).astype(np.float32), np.array(labels), list(info.class_names)


def overlay(image, heat, alpha=0.5, min_size=128):
  """RGB uint8 picture of `heat` [h, w] in [0, 1] (jet colours) over `image` [H, W, C].

  Small images are enlarged (by an integer factor) so the picture is at least `min_size`.
  """
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.asarray(image, dtype=np.float32)
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  height, width = image.shape[:2]
  scale = max(1, -(-min_size // max(1, min(height, width))))
  size = (width * scale, height * scale)
  base = Image.fromarray(np.uint8(np.clip(image, 0, 1) * 255)).resize(size, Image.NEAREST)
  heat_img = Image.fromarray(np.float32(np.clip(heat, 0, 1))).resize(size, Image.BILINEAR)
  colours = colormaps["jet"](np.clip(np.asarray(heat_img), 0, 1))[..., :3]
  mixed = (1 - alpha) * np.asarray(base, dtype=np.float32) / 255 + alpha * colours
  return np.uint8(np.clip(mixed, 0, 1) * 255)


def save_png(path, rgb):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(rgb).save(path, format="PNG")


def class_ids(outputs):
  """The predicted class ids of a response (`class_ids`; older exports: int `classes`)."""
  if "class_ids" in outputs:
    return np.asarray(outputs["class_ids"]).astype(int)
  return np.asarray(outputs["classes"]).astype(int)


def response_class_names(outputs, num_classes):
  """{class id: name} known from a response's `classes` strings (the names the model gives)."""
  names = {}
  if "class_ids" in outputs and "classes" in outputs:
    for i, name in zip(class_ids(outputs), np.asarray(outputs["classes"]).reshape(-1)):
      names[int(i)] = name.decode() if isinstance(name, bytes) else str(name)
  return names if len(names) <= num_classes else {}


def format_prediction(name, probabilities, class_names=None, label=None, top_k=3):
  """One output line: `name: class c (name) p=0.91 | top-k ...`.

  `class_names` is a list in label order or a {class id: name} dict.
  """

  def named(c):
    if isinstance(class_names, dict):
      return f"{c} ({class_names[c]})" if c in class_names else str(c)
    return f"{c} ({class_names[c]})" if class_names and c < len(class_names) else str(c)

  probabilities = np.asarray(probabilities)
  order = np.argsort(-probabilities)[:max(1, top_k)]
  line = f"{name}: class {named(int(order[0]))} p={probabilities[order[0]]:.3f}"
  if label is not None:
    line += f" label {named(int(label))}"
  line += " | top: " + ", ".join(f"{int(c)}={probabilities[c]:.3f}" for c in order)
  return line


def classify(client, images=None, image_bytes=None, explain=False):
  """Sends float `images` or encoded `image_bytes` to the right signature; returns outputs."""
  if image_bytes is not None and not explain:
    blobs = np.empty(len(image_bytes), dtype=object)
    blobs[:] = list(image_bytes)
    return client.predict(BYTES_SIGNATURE, {IMAGE_BYTES_KEY: blobs})
  signature = EXPLAIN_SIGNATURE if explain else DEFAULT_SIGNATURE
  return client.predict(signature, {IMAGES_KEY: np.asarray(images, dtype=np.float32)})


