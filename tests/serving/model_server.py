r"""A small stand-in for `tensorflow_model_server`: a development and test tool, not a product.

Serves the exports of `serving.export` over TF Serving's two APIs:

- gRPC `tensorflow.serving.PredictionService` (`Predict`, `GetModelMetadata`), with the
  request and response protos of tensorflow-serving-api;
- REST `GET /v1/models/<name>[/versions/<v>][/metadata]` and
  `POST /v1/models/<name>[/versions/<v>]:predict` (JSON, see `serving.rest`).

It loads a version the way TF Serving does: TensorFlow's SavedModel loader into a v1
session with the `serve` tag, signatures run by their tensor names, warmup records replayed
before the version is served. It is *not* a production server (no batching, no version
policy, no monitoring): production runs the official `tensorflow/serving` image (see
serving/README.md).

  python -m tests.serving.model_server --model_name=digits_at_alp \
      --model_base_path=/tmp/models/digits_at_alp --port=8500 --rest_api_port=8501
"""

from concurrent import futures
import http.server
import json
import os
import re
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import export as export_lib
from serving import rest
from serving import signatures
from serving import warmup as warmup_lib

DEFAULT_SIGNATURE = signatures.DEFAULT_SIGNATURE


class InvalidInput(ValueError):
  """A request that does not fit the model (INVALID_ARGUMENT, HTTP 400)."""


class NotFound(LookupError):
  """An unknown model, version or signature (NOT_FOUND, HTTP 404)."""


class LoadedVersion:
  """One version of an export, loaded into a v1 session as TF Serving loads it."""

  def __init__(self, path, replay_warmup=True):
    self.path = path
    self.graph = tf.Graph()
    self.session = tf.compat.v1.Session(graph=self.graph)
    with self.graph.as_default():
      meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
    self.signatures = {k: v for k, v in meta_graph.signature_def.items()
                       if not k.startswith("__")}
    self.warmup_count = 0
    warmup_path = os.path.join(path, signatures.ASSETS_EXTRA, signatures.WARMUP_FILE)
    if replay_warmup and tf.io.gfile.exists(warmup_path):
      for log in warmup_lib.read(warmup_path):
        request = log.predict_log.request
        self.run(request.model_spec.signature_name or DEFAULT_SIGNATURE,
                 {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        self.warmup_count += 1

  def signature(self, name):
    name = name or DEFAULT_SIGNATURE
    if name not in self.signatures:
      raise NotFound(f"Serving signature name: {name!r} not found in signature def; "
                     f"expected one of {sorted(self.signatures)}")
    return self.signatures[name]

  def run(self, signature_name, inputs, output_filter=None):
    """Runs a signature on {input name: array or nested list}; returns numpy outputs.

    Raises:
      NotFound: unknown signature.
      InvalidInput: wrong input names, dtypes or shapes, or the graph rejected the values
        (e.g. corrupt image bytes).
    """
    signature = self.signature(signature_name)
    expected, received = set(signature.inputs), set(inputs)
    if expected != received:
      raise InvalidInput(f"Invalid inputs of signature {signature_name!r}: expected the "
                         f"inputs {sorted(expected)}; received {sorted(received)}")
    feed = {}
    for name, value in inputs.items():
      info = signature.inputs[name]
      feed[info.name] = _as_array(name, value, info)
    outputs = {k: v.name for k, v in signature.outputs.items()
               if not output_filter or k in output_filter}
    unknown = set(output_filter or ()) - set(signature.outputs)
    if unknown:
      raise InvalidInput(f"Invalid output_filter: expected outputs of {signature_name!r} "
                         f"({sorted(signature.outputs)}); received {sorted(unknown)}")
    try:
      return self.session.run(outputs, feed_dict=feed)
    except tf.errors.OpError as e:
      raise InvalidInput(_op_error_message(e)) from e


def _op_error_message(error):
  """The informative line of a TensorFlow runtime error (not "Graph execution error:")."""
  lines = [line.strip() for line in error.message.splitlines() if line.strip()]
  useful = [line for line in lines
            if not line.startswith(("Graph execution error", "[[", "Detected at node"))]
  return " ".join(useful[:2]) or error.message


def _as_array(name, value, info):
  """`value` as an array of the signature's dtype, or an InvalidInput naming it."""
  dtype = tf.dtypes.as_dtype(info.dtype)
  if isinstance(value, np.ndarray) and value.dtype != object and dtype != tf.string:
    if not np.can_cast(value.dtype, dtype.as_numpy_dtype, casting="same_kind"):
      raise InvalidInput(f"Invalid input {name!r}: expected {dtype.name}; received "
                         f"{value.dtype}")
  try:
    if dtype == tf.string:
      array = np.asarray(value, dtype=object)
      if not all(isinstance(v, (bytes, str)) for v in array.reshape(-1)):
        raise TypeError("not strings")
      array = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v,
                           otypes=[object])(array) if array.size else array
    else:
      array = np.asarray(value, dtype=dtype.as_numpy_dtype)
  except (TypeError, ValueError) as e:
    kind = "bytes ({\"b64\": ...} in JSON)" if dtype == tf.string else f"{dtype.name} numbers"
    raise InvalidInput(f"Invalid input {name!r}: expected {kind}; received values that are "
                       f"not ({e})") from e
  # No shape check against the SignatureDef: TF Serving does none ("Modelserver does not do
  # any input shape verification while handling a predict request", tensorflow/serving
  # issues 1436 and 1527); the exports check shapes in their graphs.
  return array


class ModelStore:
  """Models by name, each a base path of integer versions; versions load on first use."""

  def __init__(self, base_paths, replay_warmup=True):
    self.base_paths = dict(base_paths)
    self.replay_warmup = replay_warmup
    self._loaded = {}
    self._lock = threading.Lock()

  def get(self, name, version=None):
    if name not in self.base_paths:
      raise NotFound(f"Servable not found for request: model {name!r} (serving "
                     f"{sorted(self.base_paths)})")
    available = export_lib.versions(self.base_paths[name])
    if not available:
      raise NotFound(f"Servable not found for request: model {name!r} has no version under "
                     f"{self.base_paths[name]!r}")
    version = available[-1] if version is None else int(version)
    if version not in available:
      raise NotFound(f"Servable not found for request: version {version} of {name!r} "
                     f"(available: {available})")
    with self._lock:
      key = (name, version)
      if key not in self._loaded:
        self._loaded[key] = LoadedVersion(
            os.path.join(self.base_paths[name], str(version)), self.replay_warmup)
      return version, self._loaded[key]


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """gRPC `PredictionService` over a `ModelStore` (Predict and GetModelMetadata)."""

  def __init__(self, store):
    self.store = store

  def _abort(self, context, error):
    code = (grpc.StatusCode.NOT_FOUND if isinstance(error, NotFound)
            else grpc.StatusCode.INVALID_ARGUMENT)
    context.abort(code, str(error))

  def Predict(self, request, context):  # pylint: disable=invalid-name
    try:
      spec = request.model_spec
      version, loaded = self.store.get(
          spec.name, spec.version.value if spec.HasField("version") else None)
      signature_name = spec.signature_name or DEFAULT_SIGNATURE
      signature = loaded.signature(signature_name)
      inputs = {}
      for name, proto in request.inputs.items():
        if name in signature.inputs and proto.dtype != signature.inputs[name].dtype:
          raise InvalidInput(
              f"Invalid input {name!r}: expected {tf.dtypes.as_dtype(signature.inputs[name].dtype).name}; "
              f"received {tf.dtypes.as_dtype(proto.dtype).name}")
        inputs[name] = tf.make_ndarray(proto)
      outputs = loaded.run(signature_name, inputs, list(request.output_filter))
    except (NotFound, InvalidInput) as e:
      self._abort(context, e)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = spec.name
    response.model_spec.version.value = version
    response.model_spec.signature_name = signature_name
    for name, value in outputs.items():
      response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    return response

  def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    try:
      if list(request.metadata_field) != ["signature_def"]:
        raise InvalidInput(f"Invalid metadata_field: expected ['signature_def']; received "
                           f"{list(request.metadata_field)}")
      spec = request.model_spec
      version, loaded = self.store.get(
          spec.name, spec.version.value if spec.HasField("version") else None)
    except (NotFound, InvalidInput) as e:
      self._abort(context, e)
    return _metadata_response(spec.name, version, loaded)


def _metadata_response(name, version, loaded):
  signature_map = get_model_metadata_pb2.SignatureDefMap()
  for key, signature in loaded.signatures.items():
    signature_map.signature_def[key].CopyFrom(signature)
  response = get_model_metadata_pb2.GetModelMetadataResponse()
  response.model_spec.name = name
  response.model_spec.version.value = version
  response.metadata["signature_def"].Pack(signature_map)
  return response


def start_grpc_server(store, host="127.0.0.1", port=0, max_workers=4):
  """Starts a gRPC server; returns (server, bound port). Stop it with `server.stop(0)`."""
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionServicer(store), server)
  bound = server.add_insecure_port(f"{host}:{port}")
  if not bound:
    raise ValueError(f"Invalid port: could not bind {host}:{port}")
  server.start()
  return server, bound


_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<verb>:predict|:classify|/metadata)?$")


def _example(features):
  """A tf.Example from TF Serving's JSON example form: {name: value or [values]}; bytes as
  {"b64": ...}, numbers as floats (ints when all are integers)."""
  example = tf.train.Example()
  for key, value in features.items():
    values = rest.decode_value(value)
    values = values if isinstance(values, list) else [values]
    feature = example.features.feature[key]
    if all(isinstance(v, (bytes, str)) for v in values):
      feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
      feature.int64_list.value.extend(values)
    else:
      feature.float_list.value.extend(float(v) for v in values)
  return example.SerializeToString()


def classify_response(loaded, signature_name, body):
  """TF Serving's REST classify: {"examples": [...]} -> {"results": [[[class, score], ...]]}."""
  examples = body.get("examples") if isinstance(body, dict) else None
  if not isinstance(examples, list):
    raise InvalidInput("Invalid request: expected 'examples' (a list of feature objects)")
  signature = loaded.signature(signature_name)
  if signature.method_name != signatures.CLASSIFY_METHOD:
    raise InvalidInput(f"Expected classification signature method_name to be "
                       f"{signatures.CLASSIFY_METHOD}. Was: {signature.method_name}")
  try:
    serialized = np.array([_example(e) for e in examples], dtype=object)
  except (TypeError, ValueError, AttributeError) as e:
    raise InvalidInput(f"Invalid example: {e}") from e
  outputs = loaded.run(signature_name, {signatures.CLASSIFY_INPUTS_KEY: serialized})
  return {"results": [[[c.decode(), float(p)] for c, p in zip(classes, scores)]
                      for classes, scores in zip(outputs["classes"], outputs["scores"])]}


def rest_handler(store):
  """An `http.server` request handler class answering TF Serving's REST API from `store`."""

  class Handler(http.server.BaseHTTPRequestHandler):
    """GET status/metadata, POST :predict and :classify."""
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
      pass

    def _send(self, status, body):
      data = json.dumps(body).encode()
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def _route(self, method):
      match = _PATH.match(self.path)
      if not match:
        raise NotFound(f"Malformed request: {method} {self.path}")
      verb = match.group("verb")
      if (method == "POST") != (verb in (":predict", ":classify")):
        raise NotFound(f"Malformed request: {method} {self.path}")
      return match.group("name"), match.group("version"), verb

    def do_GET(self):  # pylint: disable=invalid-name
      try:
        name, version, verb = self._route("GET")
        number, loaded = store.get(name, version)
        if verb == "/metadata":
          response = _metadata_response(name, number, loaded)
          signature_map = get_model_metadata_pb2.SignatureDefMap()
          response.metadata["signature_def"].Unpack(signature_map)
          self._send(200, {
              "model_spec": {"name": name, "signature_name": "", "version": str(number)},
              "metadata": {"signature_def": json_format.MessageToDict(
                  signature_map, preserving_proto_field_name=True)}})
        else:
          self._send(200, {"model_version_status": [{
              "version": str(number), "state": "AVAILABLE",
              "status": {"error_code": "OK", "error_message": ""}}]})
      except NotFound as e:
        self._send(404, {"error": str(e)})

    def do_POST(self):  # pylint: disable=invalid-name
      try:
        name, version, verb = self._route("POST")
        _, loaded = store.get(name, version)
        length = int(self.headers.get("Content-Length") or 0)
        try:
          body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as e:
          raise InvalidInput(f"Invalid request: the body is not JSON ({e})") from e
        if not isinstance(body, dict):
          raise InvalidInput("Invalid request: expected a JSON object")
        signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
        if verb == ":classify":
          self._send(200, classify_response(loaded, signature_name, body))
          return
        signature = loaded.signature(signature_name)
        try:
          _, inputs, columnar = rest.parse_predict_request(body, signature.inputs)
        except ValueError as e:
          raise InvalidInput(str(e)) from e
        outputs = loaded.run(signature_name, inputs)
        self._send(200, rest.predict_response(outputs, columnar))
      except NotFound as e:
        self._send(404, {"error": str(e)})
      except InvalidInput as e:
        self._send(400, {"error": str(e)})

  return Handler


def start_rest_server(store, host="127.0.0.1", port=0):
  """Starts the REST server in a daemon thread; returns (server, bound port).

  Stop it with `server.shutdown(); server.server_close()`.
  """
  server = http.server.ThreadingHTTPServer((host, port), rest_handler(store))
  server.daemon_threads = True
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  return server, server.server_address[1]


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if flag_values.model_config_file:
    from serving import server_config  # pylint: disable=g-import-not-at-top
    base_paths = {e.name: e.base_path
                  for e in server_config.read(flag_values.model_config_file).config}
  elif flag_values.model_name and flag_values.model_base_path:
    base_paths = {flag_values.model_name: flag_values.model_base_path}
  else:
    raise ValueError("Invalid flags: expected --model_config_file, or --model_name and "
                     "--model_base_path; received neither")
  store = ModelStore(base_paths)
  for name in base_paths:
    version, loaded = store.get(name)
    print(f"Loaded {name} version {version} ({loaded.warmup_count} warmup requests)")
  grpc_server, grpc_port = start_grpc_server(store, flag_values.host, flag_values.port)
  rest_server, rest_port = start_rest_server(store, flag_values.host, flag_values.rest_api_port)
  print(f"gRPC on {flag_values.host}:{grpc_port}, REST on {flag_values.host}:{rest_port}")
  try:
    grpc_server.wait_for_termination()
  finally:
    rest_server.shutdown()


def run():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from trainers import common_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model_name", None, "Model name (with --model_base_path).")
  flags.DEFINE_string("model_base_path", None, "Directory of integer versions.")
  flags.DEFINE_string("model_config_file", None, "A models.config (model_config_list).")
  flags.DEFINE_string("host", "127.0.0.1", "Address to bind.")
  flags.DEFINE_integer("port", 8500, "gRPC port.")
  flags.DEFINE_integer("rest_api_port", 8501, "REST port.")
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
