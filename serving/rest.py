"""TensorFlow Serving's REST predict format (JSON), both directions.

The format (TF Serving "RESTful API" guide):

- `POST /v1/models/<name>[/versions/<v>]:predict` with a JSON object holding an optional
  `signature_name` and either `instances` (row format: a list with one entry per example;
  with a single named input each entry is that input's value, otherwise an object
  `{input name: value}`) or `inputs` (columnar format: the single input's value, or an object
  `{input name: value}` with whole batches).
- Binary strings (encoded images) are written as `{"b64": "<base64>"}`.
- The answer to a row request is `{"predictions": [...]}` (one entry per example; an object
  `{output name: value}` when the signature has several outputs); to a columnar request
  `{"outputs": {output name: value}}` (the bare value for a single output).
- Errors are `{"error": "<message>"}` with an HTTP error status.

Pure functions over numpy arrays and JSON-ready Python values; no network here.
"""

import base64

import numpy as np


def encode_value(array):
  """A numpy array (or bytes) as a JSON-ready nested list, bytes as `{"b64": ...}`."""
  if isinstance(array, (bytes, bytearray)):
    return {"b64": base64.b64encode(bytes(array)).decode("ascii")}
  array = np.asarray(array)
  if array.dtype == object or array.dtype.kind in "SV":
    if array.ndim == 0:
      return encode_value(array.item())
    return [encode_value(a) for a in array]
  return array.tolist()


def predict_request(inputs, signature_name=None, columnar=False):
  """The JSON body of a predict request.

  Args:
    inputs: {input name: batch array}; bytes inputs are object arrays of `bytes`.
    signature_name: the signature to run (None: the server's `serving_default`).
    columnar: build the `inputs` (columnar) form instead of `instances` (row form).

  Returns:
    A JSON-ready dict.

  Raises:
    ValueError: no inputs, or (row form) inputs whose batch sizes differ.
  """
  if not inputs:
    raise ValueError("Invalid inputs: expected at least one named input; received none")
  body = {}
  if signature_name:
    body["signature_name"] = signature_name
  if columnar:
    encoded = {name: encode_value(value) for name, value in inputs.items()}
    body["inputs"] = next(iter(encoded.values())) if len(encoded) == 1 else encoded
    return body
  sizes = {name: len(value) for name, value in inputs.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"Invalid inputs: the row (instances) form needs the same batch size "
                     f"for every input; received {sizes}; use the columnar form")
  if len(inputs) == 1:
    body["instances"] = encode_value(next(iter(inputs.values())))
  else:
    body["instances"] = [{name: encode_value(value[i]) for name, value in inputs.items()}
                         for i in range(next(iter(sizes.values())))]
  return body


def decode_value(value):
  """Inverse of `encode_value` for one JSON value: `{"b64": s}` objects become bytes."""
  if isinstance(value, dict):
    if set(value) == {"b64"}:
      try:
        return base64.b64decode(value["b64"], validate=True)
      except (ValueError, TypeError) as e:
        raise ValueError(f"Invalid b64 value: expected base64 text; received "
                         f"{str(value['b64'])[:40]!r} ({e})") from e
    raise ValueError(f"Invalid value: expected a number, a string, a list or "
                     f"{{\"b64\": ...}}; received an object with keys {sorted(value)}")
  if isinstance(value, list):
    return [decode_value(v) for v in value]
  return value


def parse_predict_request(body, input_names):
  """The inputs of a predict request body, as nested Python values per input name.

  Args:
    body: the parsed JSON object.
    input_names: the input names of the requested signature.

  Returns:
    (signature_name or None, {input name: nested list / bytes}, columnar).

  Raises:
    ValueError: the body is not a predict request of this signature.
  """
  if not isinstance(body, dict):
    raise ValueError(f"Invalid request: expected a JSON object; received "
                     f"{type(body).__name__}")
  has_rows, has_columns = "instances" in body, "inputs" in body
  if has_rows == has_columns:
    raise ValueError("Invalid request: expected exactly one of 'instances' (row format) or "
                     f"'inputs' (columnar format); received keys {sorted(body)}")
  unknown = set(body) - {"signature_name", "instances", "inputs"}
  if unknown:
    raise ValueError(f"Invalid request: unexpected keys {sorted(unknown)}; expected "
                     "'signature_name' and 'instances' or 'inputs'")
  signature_name = body.get("signature_name")
  input_names = list(input_names)
  if has_columns:
    value = body["inputs"]
    if len(input_names) == 1 and not (isinstance(value, dict) and set(value) == set(input_names)):
      return signature_name, {input_names[0]: decode_value(value)}, True
    _check_names(value, input_names, "inputs")
    return signature_name, {k: decode_value(v) for k, v in value.items()}, True
  rows = body["instances"]
  if not isinstance(rows, list):
    raise ValueError(f"Invalid request: 'instances' must be a list (one entry per example); "
                     f"received {type(rows).__name__}")
  named = bool(rows) and all(isinstance(r, dict) and set(r) == set(input_names) for r in rows)
  if len(input_names) == 1 and not named:
    return signature_name, {input_names[0]: decode_value(rows)}, False
  for row in rows:
    _check_names(row, input_names, "instances entry")
  return signature_name, {name: [decode_value(r[name]) for r in rows]
                          for name in input_names}, False


def _check_names(value, input_names, where):
  if not isinstance(value, dict) or set(value) != set(input_names):
    got = sorted(value) if isinstance(value, dict) else type(value).__name__
    raise ValueError(f"Invalid request: each {where} must name the signature's inputs "
                     f"{sorted(input_names)}; received {got}")


def predict_response(outputs, columnar):
  """The JSON body answering a predict request.

  Args:
    outputs: {output name: batch array}.
    columnar: the request used `inputs` (answer with `outputs`) rather than `instances`
      (answer with `predictions`).

  Returns:
    A JSON-ready dict. As in TF Serving, string outputs whose name ends in `_bytes` are
    written as `{"b64": ...}`, other strings (class names, the model card) as JSON strings.
  """

  def encode(name, value):
    value = np.asarray(value)
    if name.endswith("_bytes"):
      return encode_value(value.astype(object))
    if value.dtype == object or value.dtype.kind in "SU":
      return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes)
                          else str(v), otypes=[object])(value).tolist() if value.size else []
    return value.tolist()

  if columnar:
    encoded = {name: encode(name, value) for name, value in outputs.items()}
    return {"outputs": next(iter(encoded.values())) if len(encoded) == 1 else encoded}
  names = list(outputs)
  batch = {len(np.asarray(v)) for v in outputs.values()}
  if len(batch) != 1:
    raise ValueError(f"Invalid outputs: the row (instances) form needs one batch size for "
                     f"every output; received {[len(np.asarray(outputs[n])) for n in names]}")
  encoded = {name: encode(name, value) for name, value in outputs.items()}
  if len(names) == 1:
    return {"predictions": encoded[names[0]]}
  return {"predictions": [{name: encoded[name][i] for name in names}
                          for i in range(batch.pop())]}


def parse_predict_response(body):
  """Outputs of a predict response (`predictions` or `outputs` form) as numpy arrays.

  A single unnamed output comes back under the key `None`.

  Raises:
    ValueError: the body is an error response or has neither key.
  """
  if not isinstance(body, dict):
    raise ValueError(f"Invalid response: expected a JSON object; received "
                     f"{type(body).__name__}")
  if "error" in body:
    raise ValueError(f"Server error: {body['error']}")
  if "outputs" in body:
    value = body["outputs"]
    if isinstance(value, dict) and "b64" not in value:
      return {k: np.asarray(decode_value(v)) for k, v in value.items()}
    return {None: np.asarray(decode_value(value))}
  if "predictions" in body:
    rows = body["predictions"]
    if rows and all(isinstance(r, dict) and "b64" not in r for r in rows):
      return {k: np.asarray([decode_value(r[k]) for r in rows]) for k in rows[0]}
    return {None: np.asarray(decode_value(rows))}
  raise ValueError(f"Invalid response: expected 'predictions' or 'outputs'; received keys "
                   f"{sorted(body)}")
