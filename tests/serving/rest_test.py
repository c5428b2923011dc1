"""serving.rest against TF Serving's documented REST predict format.

The literal bodies below are the examples of TF Serving's "RESTful API" guide (Predict API:
row and columnar request forms, `predictions`/`outputs` responses, `{"b64": ...}` binary
values): our encoder must produce those shapes, and our decoder must accept them.
"""

import base64
import json

import numpy as np
import pytest

from serving import rest


def test_row_request_of_a_single_named_input_is_a_list_of_instance_values():
  images = np.arange(2 * 2 * 3 * 1, dtype=np.float32).reshape(2, 2, 3, 1) / 12
  body = rest.predict_request({"images": images}, "serving_default")
  assert set(body) == {"signature_name", "instances"}
  assert body["signature_name"] == "serving_default"
  # "List of 2 tensors each of [...] shape": one nested list per example, no input name.
  assert isinstance(body["instances"], list) and len(body["instances"]) == 2
  assert body["instances"][1] == images[1].tolist()
  assert json.loads(json.dumps(body)) == body  # Plain JSON.


def test_columnar_request_holds_the_whole_batch_under_inputs():
  images = np.zeros((3, 2, 2, 1), np.float32)
  body = rest.predict_request({"images": images}, columnar=True)
  assert body == {"inputs": images.tolist()}  # A single input: its value, unnamed.
  two = rest.predict_request({"a": np.ones((2, 1)), "b": np.zeros(3)}, columnar=True)
  assert two == {"inputs": {"a": [[1.0], [1.0]], "b": [0.0, 0.0, 0.0]}}


def test_bytes_are_sent_as_b64_objects():
  blobs = np.array([b"image bytes", b"awesome image bytes"], dtype=object)
  body = rest.predict_request({"image_bytes": blobs}, "predict_images")
  # The guide's own encodings of these two strings.
  assert body["instances"] == [{"b64": "aW1hZ2UgYnl0ZXM="},
                               {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}]
  body = rest.predict_request({"image_bytes": blobs}, "predict_images", columnar=True)
  assert body["inputs"] == [{"b64": "aW1hZ2UgYnl0ZXM="}, {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}]


def test_multi_input_row_request_is_a_list_of_objects():
  body = rest.predict_request({"tag": np.array([b"foo", b"bar"], dtype=object),
                               "signal": np.array([[1, 2], [3, 4]])})
  assert body["instances"] == [{"tag": {"b64": base64.b64encode(b"foo").decode()},
                                "signal": [1, 2]},
                               {"tag": {"b64": base64.b64encode(b"bar").decode()},
                                "signal": [3, 4]}]
  with pytest.raises(ValueError, match="same batch size"):
    rest.predict_request({"a": np.zeros(2), "b": np.zeros(3)})


def test_documented_request_examples_parse():
  # "List of 3 scalar tensors."
  assert rest.parse_predict_request({"instances": ["foo", "bar", "baz"]}, ["x"]) == (
      None, {"x": ["foo", "bar", "baz"]}, False)
  # "List of 2 tensors each of [1, 2] shape"
  assert rest.parse_predict_request({"instances": [[[1, 2]], [[3, 4]]]}, ["x"])[1] == {
      "x": [[[1, 2]], [[3, 4]]]}
  rows = {"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                        {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]}
  columns = {"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                        "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}
  names = ["tag", "signal", "sensor"]
  _, from_rows, columnar_rows = rest.parse_predict_request(rows, names)
  _, from_columns, columnar = rest.parse_predict_request(columns, names)
  assert from_rows == from_columns and columnar and not columnar_rows
  # b64 values are decoded wherever they appear; the signature name is passed on.
  body = {"signature_name": "predict_images",
          "instances": [{"b64": "aW1hZ2UgYnl0ZXM="}, {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}]}
  assert rest.parse_predict_request(body, ["image_bytes"]) == (
      "predict_images", {"image_bytes": [b"image bytes", b"awesome image bytes"]}, False)
  named = {"instances": [{"image_bytes": {"b64": "aW1hZ2UgYnl0ZXM="}}]}
  assert rest.parse_predict_request(named, ["image_bytes"])[1] == {
      "image_bytes": [b"image bytes"]}


@pytest.mark.parametrize("body,names,fragment", [
    ({"instances": [1], "inputs": [1]}, ["x"], "exactly one of"),
    ({}, ["x"], "exactly one of"),
    ({"instances": {"x": 1}}, ["x"], "must be a list"),
    ({"instances": [1], "extra": 2}, ["x"], "unexpected keys"),
    ({"inputs": {"a": [1]}}, ["a", "b"], "must name the signature's inputs"),
    ({"instances": [{"a": 1}]}, ["a", "b"], "must name the signature's inputs"),
    ({"instances": [{"b64": "not base64!"}]}, ["x"], "Invalid b64"),
    ([1, 2], ["x"], "expected a JSON object"),
])
def test_bad_requests_are_rejected_with_a_reason(body, names, fragment):
  with pytest.raises(ValueError, match=fragment):
    rest.parse_predict_request(body, names)


def test_responses_follow_the_documented_forms():
  outputs = {"classes": np.array([3, 1], np.int32),
             "probabilities": np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)}
  rows = rest.predict_response(outputs, columnar=False)
  assert rows == {"predictions": [
      {"classes": 3, "probabilities": pytest.approx([0.1, 0.9])},
      {"classes": 1, "probabilities": pytest.approx([0.8, 0.2])}]}
  columns = rest.predict_response(outputs, columnar=True)
  assert columns["outputs"]["classes"] == [3, 1]
  # A single output is not named.
  assert rest.predict_response({"y": np.array([3.5, 4.0, 5.5])}, False) == {
      "predictions": [3.5, 4.0, 5.5]}
  assert rest.predict_response({"y": np.array([3.5])}, True) == {"outputs": [3.5]}
  # Outputs named *_bytes are binary: b64 objects.
  encoded = rest.predict_response({"png_bytes": np.array([b"\x89PNG"], dtype=object)}, True)
  assert encoded == {"outputs": [{"b64": base64.b64encode(b"\x89PNG").decode()}]}


def test_documented_responses_parse():
  # The guide's half_plus_three answer, and a multi-output row answer.
  assert rest.parse_predict_response({"predictions": [3.5, 4.0, 5.5]})[None].tolist() == [
      3.5, 4.0, 5.5]
  parsed = rest.parse_predict_response({"predictions": [{"classes": 3, "p": [0.1, 0.9]},
                                                        {"classes": 1, "p": [0.8, 0.2]}]})
  assert parsed["classes"].tolist() == [3, 1] and parsed["p"].shape == (2, 2)
  parsed = rest.parse_predict_response({"outputs": {"classes": [3, 1], "p": [[1, 0], [0, 1]]}})
  assert parsed["classes"].tolist() == [3, 1]
  # NaN and Infinity are allowed by the guide (Python's json reads them).
  body = json.loads('{"outputs": [NaN, Infinity, -Infinity]}')
  values = rest.parse_predict_response(body)[None]
  assert np.isnan(values[0]) and np.isinf(values[1]) and values[2] < 0
  with pytest.raises(ValueError, match="Server error: Servable not found"):
    rest.parse_predict_response({"error": "Servable not found for request: Latest(half)"})
  with pytest.raises(ValueError, match="expected 'predictions' or 'outputs'"):
    rest.parse_predict_response({"result": [1]})
