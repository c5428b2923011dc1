"""Export of trained models as versioned SavedModels for TensorFlow Serving.

Layout: `<export_base>/<model_name>/<version>/saved_model.pb`, where `<export_base>/<model_name>`
is the model's base path (TF Serving's `--model_base_path`, or `base_path` in a model config
file) and `version` a positive integer. A version is written into a hidden temporary directory
beside the final one (its name is not an integer, so TF Serving ignores it) and renamed into
place only when complete: the server never sees a partial version, and an existing version is
never overwritten.

Signatures (the names and keys are in `serving.signatures`; batch dimension None):

- `serving_default`: `images` float32 [N, H, W, C] in [0, 1] -> `logits` [N, K],
  `probabilities` [N, K], `class_ids` int32 [N], `classes` string [N] (the class names).
- `predict_images`: `image_bytes` string [N] (PNG/JPEG/GIF/BMP bytes; the REST form is
  `{"b64": ...}`), decoded and resized to H x W inside the graph by the functions of the
  training input pipeline (`tfadv.data.images`) -> the same outputs.
- `predict_uint8` (only with `accept_uint8=True`): `images` uint8 [N, H, W, C] in 0..255,
  divided by 255 inside the graph -> the same outputs.
- `explain`: `images` as in `serving_default` -> the same outputs, `gradcam` [N, H, W]
  (Grad-CAM of the predicted class, scaled to [0, 1], at input resolution) and
  `attention_0` .. `attention_3` [N, h_j, w_j] (activation attention of each stage).
- `classify` (method `tensorflow/serving/classify`, TF Serving's Classify API): `inputs`
  serialized tf.Examples whose bytes feature `image/encoded` holds the image -> `classes`
  [N, K] (the class names) and `scores` [N, K] (probabilities).
- `model_card`: `format` string [N] ("json" or "md") -> `model_card` string [N].

TF Serving does no input validation, so the signatures do it in the graph: images must be
finite, within [0, 1] (up to `signatures.RANGE_TOLERANCE`, then clipped) and of shape
[N, H, W, C]; image bytes
must be a complete PNG/JPEG/GIF/BMP file. Anything else fails with INVALID_ARGUMENT (HTTP 400)
and a message saying what was expected and what was received, e.g. `images must be float32
in [0, 1]; received max 255.0 — divide by 255` or `image_bytes[2] (14 bytes): truncated PNG
(no IEND chunk at the end)`.

Input shapes: the SignatureDefs declare the image inputs as [-1, H, W, C] (what
`saved_model_cli show` and TF Serving's metadata API tell clients), while the graph's
placeholders keep an unknown shape. Measured with TensorFlow's C API (the loader TF Serving
uses): a placeholder declared [-1, H, W, C] is not enforced at run time (no error of
TensorFlow's own for a wrong shape) and lets Grappler fold the rank check away, so a
[N, H, W, C, 1] batch ran silently; with the unknown placeholder every wrong shape fails
with `images must be a batch of images of shape [N, H, W, C]; received shape [...]`.

Only the inference model is saved (its variables; no optimizer, no attack). Warmup requests
go to `assets.extra/tf_serving_warmup_requests`, what was deployed (dataset, class names,
input size, defense, eps, robustness figures) to `assets.extra/tfadv_metadata.json` and to the
SavedModel attribute `tfadv_metadata` (a string, for `tf.saved_model.load(path)`), and the
model card (`serving.model_card`) to `assets.extra/model_card.json` and `model_card.md`.

Example:

  path = export(model, "/srv/models", "fmnist_at_alp", metadata={"dataset": {...}})
  # /srv/models/fmnist_at_alp/1
"""

import datetime
import json
import os
import re
import shutil
import uuid

from absl import logging
import keras
import tensorflow as tf

from serving import model_card as model_card_lib
from serving import signatures
from tfadv.attention import gradcam as gradcam_lib
from tfadv.attention import maps
from tfadv.data import images as images_lib
from tfadv.models import taps as taps_lib
from tfadv.models import sources
from tfadv.models import zoo

# Re-exported for callers of this module; the leaf `serving.signatures` owns them.
IMAGES_KEY = signatures.IMAGES_KEY
IMAGE_BYTES_KEY = signatures.IMAGE_BYTES_KEY
METADATA_FILE = signatures.METADATA_FILE
WARMUP_FILE = signatures.WARMUP_FILE
ASSETS_EXTRA = signatures.ASSETS_EXTRA
PREDICT_METHOD = signatures.PREDICT_METHOD
DEFAULT_SIGNATURE = signatures.DEFAULT_SIGNATURE
BYTES_SIGNATURE = signatures.BYTES_SIGNATURE
EXPLAIN_SIGNATURE = signatures.EXPLAIN_SIGNATURE
SIGNATURES = signatures.SIGNATURES

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model_name(model_name):
  """Validates a model name (a directory name and a URL path segment of TF Serving).

  Raises:
    ValueError: the name is empty or has characters other than letters, digits, `_.-`.
  """
  if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
    raise ValueError(f"Invalid model_name: expected letters, digits, '_', '.' or '-' "
                     f"(starting with a letter or digit); received model_name={model_name!r}")
  return model_name


def default_model_name(dataset, defense):
  """`<dataset>_<defense>` with characters TF Serving URLs dislike replaced by `_`."""
  name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}_{defense}").strip("_.-")
  return check_model_name(name or "model")


def versions(model_base_path):
  """The integer versions already present under `model_base_path`, sorted."""
  if not tf.io.gfile.isdir(model_base_path):
    return []
  return sorted(int(name.strip("/")) for name in tf.io.gfile.listdir(model_base_path)
                if name.strip("/").isdigit())


def next_version(model_base_path):
  """The version an export takes by default: one above the highest present, or 1."""
  existing = versions(model_base_path)
  return (existing[-1] + 1) if existing else 1


def _join(*parts):
  return tf.strings.join([p if isinstance(p, tf.Tensor) else tf.constant(p) for p in parts])


def _shape_text(tensor):
  return _join("[", tf.strings.reduce_join(tf.strings.as_string(tf.shape(tensor)),
                                           separator=", "), "]")


def check_shape(images, height, width, channels, key=signatures.IMAGES_KEY):
  """`images` after in-graph checks of its rank and size (INVALID_ARGUMENT otherwise).

  The graph's inputs take any shape (a static [None, H, W, C] placeholder would let
  TensorFlow fold the rank check away and feed wrong shapes straight into the model; the
  SignatureDef still declares [-1, H, W, C], see `_finish_signature_defs`): these asserts
  give the client a message naming the expected and the received shape.
  """
  expected = f"[N, {height}, {width}, {channels}]"
  rank = tf.rank(images)
  # Padded, so the size test is well defined at any rank (one assert: no op ordering).
  size = tf.concat([tf.shape(images), tf.zeros([4], tf.int32)], 0)[1:4]
  rank_message = _join(f"{key} must be a batch of images of shape {expected}; received shape ",
                       _shape_text(images), " (rank ", tf.strings.as_string(rank), ")")
  size_message = _join(f"{key} must have shape {expected} (height, width, channels); "
                       "received ", _shape_text(images))
  is_batch = tf.equal(rank, 4)
  rank_ok = tf.Assert(is_batch, [rank_message])
  # True at another rank, so that only the rank message fires then (asserts run unordered).
  size_ok = tf.Assert(tf.logical_or(tf.logical_not(is_batch), tf.reduce_all(
      tf.equal(size, [height, width, channels]))), [size_message])
  with tf.control_dependencies([rank_ok, size_ok]):
    # Not tf.ensure_shape: Grappler would take its shape as the input's and fold the checks.
    return tf.reshape(images, [-1, height, width, channels])


def check_range(images, key=signatures.IMAGES_KEY, tolerance=signatures.RANGE_TOLERANCE):
  """`images` clipped to [0, 1] after checking they are finite and within the tolerance."""
  finite = tf.math.is_finite(images)
  bad = tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int32))
  finite_ok = tf.Assert(tf.equal(bad, 0), [_join(
      f"{key} must be float32 in [0, 1]; received ", tf.strings.as_string(bad),
      " NaN or infinite values")])
  with tf.control_dependencies([finite_ok]):
    high, low = tf.reduce_max(images), tf.reduce_min(images)
    high_message = tf.where(
        high > 1.5,
        _join(f"{key} must be float32 in [0, 1]; received max ",
              tf.strings.as_string(high, precision=1), " \u2014 divide by 255"),
        _join(f"{key} must be float32 in [0, 1]; received max ",
              tf.strings.as_string(high, precision=4)))
    high_ok = tf.Assert(high <= 1.0 + tolerance, [high_message])
    low_message = tf.where(
        low >= -1.0 - tolerance,
        _join(f"{key} must be float32 in [0, 1]; received min ",
              tf.strings.as_string(low, precision=4), " \u2014 map [-1, 1] to [0, 1] with "
              "(x + 1) / 2"),
        _join(f"{key} must be float32 in [0, 1]; received min ",
              tf.strings.as_string(low, precision=4)))
    low_ok = tf.Assert(low >= -tolerance, [low_message])
  with tf.control_dependencies([high_ok, low_ok]):
    return tf.clip_by_value(images, 0.0, 1.0)


def validate_images(images, height, width, channels, key=signatures.IMAGES_KEY):
  """Float images of any shape -> [N, H, W, C] in [0, 1], or INVALID_ARGUMENT naming why."""
  return check_range(check_shape(images, height, width, channels, key), key)


_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _bytes_problem(data, index, key):
  """'' when `data` looks like a complete PNG/JPEG/GIF/BMP file, else the message."""
  n = tf.strings.length(data)
  where = _join(f"{key}[", tf.strings.as_string(index), "] (", tf.strings.as_string(n),
                " bytes): ")
  head = lambda k: tf.strings.substr(data, 0, k)  # pylint: disable=g-long-lambda
  tail = lambda k: tf.strings.substr(data, tf.maximum(n - k, 0), k)  # pylint: disable=g-long-lambda
  is_png = tf.equal(head(8), _PNG)
  is_jpeg = tf.equal(head(3), b"\xff\xd8\xff")
  is_gif = tf.equal(head(4), b"GIF8")
  is_bmp = tf.equal(head(2), b"BM")
  bmp_size = tf.io.decode_raw(tf.strings.substr(tf.strings.join([data, b"\0\0\0\0\0\0"]), 2,
                                                4), tf.int32)[0]
  checks = [
      (tf.equal(n, 0), "empty; send the image file's bytes"),
      (tf.logical_not(is_png | is_jpeg | is_gif | is_bmp),
       "not a PNG, JPEG, GIF or BMP file (unknown signature in the first bytes)"),
      (is_png & tf.not_equal(tail(12), _PNG_END), "truncated PNG (no IEND chunk at the end)"),
      (is_jpeg & tf.not_equal(tail(2), b"\xff\xd9"),
       "truncated JPEG (no end-of-image marker)"),
      (is_gif & tf.not_equal(tail(1), b";"), "truncated GIF (no trailer byte)"),
      (is_bmp & (n < bmp_size), "truncated BMP (shorter than its header says)"),
  ]
  message = tf.constant("")
  for bad, text in reversed(checks):  # The first failing check wins.
    message = tf.where(bad, _join(where, text), message)
  return message


def decode_images(image_bytes, height, width, channels, key=signatures.IMAGE_BYTES_KEY):
  """Decodes a batch of encoded images to float32 [B, height, width, channels] in [0, 1].

  PNG, JPEG, GIF (first frame) and BMP are accepted; colour images are converted to the
  model's channel count and resized by `tfadv.data.images`, the functions the training
  input pipeline uses (bilinear with antialiasing), so a file gets the logits it gets in
  training and evaluation. Empty, unknown or
  truncated bytes fail with INVALID_ARGUMENT naming the item (`image_bytes[2] (14 bytes):
  truncated PNG ...`); other corrupt data fails in TensorFlow's decoder.
  """
  image_bytes = tf.reshape(image_bytes, [-1])

  def decode_one(args):
    index, data = args
    problem = _bytes_problem(data, index, key)
    ok = tf.Assert(tf.equal(problem, ""), [problem])
    with tf.control_dependencies([ok]):
      image = images_lib.decode(data, channels)
    image = images_lib.to_model_input(image, (height, width))
    image.set_shape((height, width, channels))
    return image

  indices = tf.range(tf.shape(image_bytes)[0])
  images = tf.map_fn(decode_one, (indices, image_bytes),
                     fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))
  # An empty batch stacks to shape [0]; give it its full shape.
  return tf.reshape(images, [-1, height, width, channels])


def serving_functions(model, tap_names, gradcam_name, class_names=None, card=None,
                      accept_uint8=False):
  """The signature functions of `model` (plain Python callables over tensors).

  Args:
    model: Keras functional model, images [None, H, W, C] in [0, 1] -> logits.
    tap_names: the layers whose outputs are the per-stage attention maps.
    gradcam_name: the layer Grad-CAM differentiates against.
    class_names: names of the classes in label order (default: "0", "1", ...).
    card: the model card dict served by `model_card` (default: a minimal one).
    accept_uint8: add `predict_uint8` (uint8 pixels 0..255, converted in the graph).

  Returns:
    {signature name: function}.
  """
  height, width, channels = (int(d) for d in model.input_shape[1:])
  num_classes = int(model.output_shape[-1])
  names = [str(c) for c in (class_names or range(num_classes))]
  if len(names) != num_classes:
    raise ValueError(f"Invalid class_names: expected {num_classes} names (the model's "
                     f"classes); received {len(names)}")
  names_tensor = tf.constant(names)
  tapped = taps_lib.tapped_model(model, tap_names, gradcam_name)

  def outputs(logits):
    ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
            "class_ids": ids, "classes": tf.gather(names_tensor, ids)}

  empty = outputs(tf.zeros([0, num_classes]))
  empty_explain = dict(empty, gradcam=tf.zeros([0, height, width]))
  for i, name in enumerate(tap_names):
    tap_shape = model.get_layer(name).output.shape
    empty_explain[f"attention_{i}"] = tf.zeros([0] + [int(d) for d in tap_shape[1:3]])

  def classify_batch(images):
    return outputs(model(images, training=False))

  def explain_batch(images):
    cam, result = gradcam_lib.gradcam(tapped, images, training=False)
    out = outputs(result["logits"])
    out["gradcam"] = gradcam_lib.normalize_cam(cam, size=(height, width))
    for i, features in enumerate(result["taps"]):
      out[f"attention_{i}"] = maps.attention_image(features)
    return out

  def guarded(fn, images, empty_result):
    # Keras convolutions fail on an empty batch; an empty request gets empty outputs.
    return tf.cond(tf.shape(images)[0] > 0, lambda: fn(images),
                   lambda: {k: tf.identity(v) for k, v in empty_result.items()})

  def serving_default(images):
    return guarded(classify_batch, validate_images(images, height, width, channels), empty)

  def predict_images(image_bytes):
    return guarded(classify_batch, decode_images(image_bytes, height, width, channels), empty)

  def predict_uint8(images):
    images = check_shape(images, height, width, channels)
    return guarded(classify_batch, tf.cast(images, tf.float32) / 255.0, empty)

  def explain(images):
    return guarded(explain_batch, validate_images(images, height, width, channels),
                   empty_explain)

  def classify(inputs):
    # TF Serving's classify API: serialized tf.Example protos with the image bytes.
    features = tf.io.parse_example(inputs, {signatures.EXAMPLE_IMAGE_FEATURE: tf.io.FixedLenFeature(
        [], tf.string, default_value="")})
    images = decode_images(features[signatures.EXAMPLE_IMAGE_FEATURE], height, width,
                           channels, key=f"inputs (feature {signatures.EXAMPLE_IMAGE_FEATURE})")
    probabilities = guarded(classify_batch, images, empty)["probabilities"]
    batch = tf.shape(probabilities)[0]
    return {"classes": tf.tile(names_tensor[None], [batch, 1]), "scores": probabilities}

  card = card or {}
  card_json = tf.constant(model_card_lib.to_json(card))
  card_md = tf.constant(model_card_lib.markdown(card) if card else "")

  def model_card(format):  # pylint: disable=redefined-builtin
    format = tf.reshape(format, [-1])
    known = tf.reduce_all(tf.logical_or(tf.equal(format, "json"), tf.equal(format, "md")))
    ok = tf.Assert(known, [_join("format must be json or md; received [",
                                 tf.strings.reduce_join(format, separator=", "), "]")])
    with tf.control_dependencies([ok]):
      return {signatures.MODEL_CARD_KEY: tf.where(tf.equal(format, "md"), card_md, card_json)}

  functions = {signatures.DEFAULT_SIGNATURE: serving_default,
               signatures.BYTES_SIGNATURE: predict_images,
               signatures.EXPLAIN_SIGNATURE: explain,
               signatures.CLASSIFY_SIGNATURE: classify,
               signatures.MODEL_CARD_SIGNATURE: model_card}
  if accept_uint8:
    functions[signatures.UINT8_SIGNATURE] = predict_uint8
  return functions


def _infer_taps(model):
  """Tap and Grad-CAM layer names: a zoo model's, recognised by its layer names, else the
  stage ends found by shape (`tfadv.models.sources.find_taps`). A model without 4-D
  feature maps (subclassed, a SavedModel) explains with Grad-CAM on the input image
  itself (gradient x input, rectified) and no attention maps."""
  names = {layer.name for layer in model.layers}
  for model_name in zoo.MODEL_NAMES:
    taps = zoo.tap_layer_names(model_name)
    if set(taps) <= names:
      return taps, zoo.gradcam_layer_name(model_name)
  taps, gradcam = sources.find_taps(model)
  if gradcam is None:
    gradcam = model.layers[0].name if isinstance(model.layers[0],
                                                 keras.layers.InputLayer) else None
  if gradcam is None:
    raise ValueError(f"Invalid model: the explain signature needs tap_names and gradcam_name; "
                     f"none were found in model {model.name!r}, so pass them explicitly")
  return taps, gradcam


def _check_model(model):
  shape = getattr(model, "input_shape", None)
  if not (isinstance(shape, tuple) and len(shape) == 4 and all(shape[1:])):
    raise ValueError(f"Invalid model: expected a Keras model over images [None, H, W, C] "
                     f"with known H, W, C; received input_shape={shape!r}")


def export(model, export_base, model_name, version=None, metadata=None, tap_names=None,
           gradcam_name=None, warmup=True, report=None, accept_uint8=False):
  """Writes `model` as version `version` of `<export_base>/<model_name>`.

  Args:
    model: Keras functional model mapping images in [0, 1] to logits.
    export_base: the directory holding one sub-directory per model name.
    model_name: the served model's name (TF Serving `--model_name`).
    version: positive integer; None takes the next free version.
    metadata: JSON-ready dict of what is deployed (see `tfadv.workflow.export_metadata`);
      the export adds its name, version, input shape and signatures. Its
      `dataset.class_names` become the `classes` outputs.
    tap_names: layers giving the per-stage attention maps of `explain` (default: the zoo's
      taps, recognised by layer name).
    gradcam_name: the Grad-CAM layer of `explain` (default: the zoo's).
    warmup: write `assets.extra/tf_serving_warmup_requests` (needs tensorflow-serving-api;
      skipped with a warning when it is not installed).
    report: the robustness report (figures and sanity warnings of the model card).
    accept_uint8: add the `predict_uint8` signature (uint8 pixels 0..255).

  Returns:
    The path of the written version directory.

  Raises:
    ValueError: `export_base` or the model's base path is a file, `model_name` or `version`
      is invalid, the version already exists, or the model is not an image classifier.
  """
  check_model_name(model_name)
  for path, what in ((export_base, "export_dir"),
                     (os.path.join(export_base, model_name), "model base path")):
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
      raise ValueError(f"Invalid {what}: expected a directory; {path!r} is a file")
  base_path = os.path.join(export_base, model_name)
  if version is None:
    version = next_version(base_path)
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError(f"Invalid version: expected a positive integer; received {version!r}")
  final = os.path.join(base_path, str(version))
  if tf.io.gfile.exists(final):
    raise ValueError(f"Invalid version: {final!r} already exists and is never overwritten; "
                     "omit --version to take the next free one")
  _check_model(model)
  if tap_names is None or gradcam_name is None:
    inferred_taps, inferred_gradcam = _infer_taps(model)
    tap_names = inferred_taps if tap_names is None else tap_names
    gradcam_name = inferred_gradcam if gradcam_name is None else gradcam_name
  input_shape = [int(d) for d in model.input_shape[1:]]
  meta = dict(metadata or {})
  class_names = list(meta.get("dataset", {}).get("class_names") or [])
  names = list(signatures.SIGNATURES) + ([signatures.UINT8_SIGNATURE] if accept_uint8 else [])
  meta.update({
      "model_name": model_name,
      "version": version,
      "input_shape": input_shape,
      "num_classes": int(model.output_shape[-1]),
      "class_names": class_names or [str(i) for i in range(int(model.output_shape[-1]))],
      "signatures": names,
      "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  })
  card = model_card_lib.build(meta, report)
  functions = serving_functions(model, tap_names, gradcam_name, meta["class_names"], card,
                                accept_uint8)

  requests = _warmup_requests(model_name, input_shape) if warmup else []
  meta["warmup_requests"] = len(requests)

  tf.io.gfile.makedirs(base_path)
  tmp = os.path.join(base_path, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
  try:
    _write_saved_model(model, functions, input_shape, meta, tmp)
    extra = os.path.join(tmp, signatures.ASSETS_EXTRA)
    tf.io.gfile.makedirs(extra)
    if requests:
      from serving import warmup as warmup_lib  # pylint: disable=g-import-not-at-top
      warmup_lib.write(os.path.join(extra, signatures.WARMUP_FILE), requests)
    with tf.io.gfile.GFile(os.path.join(extra, signatures.METADATA_FILE), "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True)
    with tf.io.gfile.GFile(os.path.join(extra, signatures.MODEL_CARD_JSON), "w") as f:
      f.write(model_card_lib.to_json(card))
    with tf.io.gfile.GFile(os.path.join(extra, signatures.MODEL_CARD_MD), "w") as f:
      f.write(model_card_lib.markdown(card))
    if tf.io.gfile.exists(final):  # Another export took this version meanwhile.
      raise ValueError(f"Invalid version: {final!r} appeared during the export and is never "
                       "overwritten; export again to take the next free one")
    tf.io.gfile.rename(tmp, final)
  finally:
    if tf.io.gfile.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  return final


def _write_saved_model(model, functions, input_shape, meta, directory):
  # The image signatures' placeholders take any shape (checked in the graph); the shape
  # clients must send is declared in the SignatureDefs afterwards.
  archive = keras.export.ExportArchive()
  archive.track(model)
  specs = {
      signatures.DEFAULT_SIGNATURE: tf.TensorSpec(None, tf.float32,
                                                  name=signatures.IMAGES_KEY),
      signatures.BYTES_SIGNATURE: tf.TensorSpec([None], tf.string,
                                                name=signatures.IMAGE_BYTES_KEY),
      signatures.EXPLAIN_SIGNATURE: tf.TensorSpec(None, tf.float32,
                                                  name=signatures.IMAGES_KEY),
      signatures.UINT8_SIGNATURE: tf.TensorSpec(None, tf.uint8,
                                                name=signatures.IMAGES_KEY),
      signatures.CLASSIFY_SIGNATURE: tf.TensorSpec([None], tf.string,
                                                   name=signatures.CLASSIFY_INPUTS_KEY),
      signatures.MODEL_CARD_SIGNATURE: tf.TensorSpec([None], tf.string,
                                                     name=signatures.MODEL_CARD_FORMAT_KEY),
  }
  for name, fn in functions.items():
    archive.add_endpoint(name, fn, input_signature=[specs[name]])
  # A string constant in the object graph: `tf.saved_model.load(path).tfadv_metadata`.
  archive.add_variable_collection(
      "tfadv_metadata",
      [tf.Variable(json.dumps(meta, sort_keys=True), trainable=False, name="tfadv_metadata")])
  archive.write_out(directory, verbose=False)
  _finish_signature_defs(directory, input_shape)


# Signatures whose `images` input is a batch [N, H, W, C].
_IMAGE_SIGNATURES = (signatures.DEFAULT_SIGNATURE, signatures.EXPLAIN_SIGNATURE,
                     signatures.UINT8_SIGNATURE)


def _finish_signature_defs(directory, input_shape):
  """Declares the image input shapes and marks `classify` in saved_model.pb.

  The image inputs are declared [-1, H, W, C] in their SignatureDefs (the graph's
  placeholders keep an unknown shape so that the in-graph checks stay; see the module
  docstring). TF2 SavedModels give every signature the predict method; TF Serving's Classify
  API only accepts a signature whose method is `tensorflow/serving/classify` (one string
  input of serialized tf.Examples, `classes` strings and `scores` floats), so that is set
  here too.
  """
  from tensorflow.core.framework import tensor_shape_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, "saved_model.pb")
  saved = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(path, "rb") as f:
    saved.ParseFromString(f.read())
  shape = tensor_shape_pb2.TensorShapeProto(
      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in [-1] + list(input_shape)])
  for meta_graph in saved.meta_graphs:
    defs = meta_graph.signature_def
    for name in _IMAGE_SIGNATURES:
      if name in defs:
        defs[name].inputs[signatures.IMAGES_KEY].tensor_shape.CopyFrom(shape)
    if signatures.CLASSIFY_SIGNATURE in defs:
      defs[signatures.CLASSIFY_SIGNATURE].method_name = signatures.CLASSIFY_METHOD
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(saved.SerializeToString())


def _warmup_requests(model_name, input_shape):
  try:
    from serving import warmup as warmup_lib  # pylint: disable=g-import-not-at-top
    return warmup_lib.warmup_requests(model_name, input_shape)
  except ImportError as e:
    logging.warning("No warmup requests written (%s): install the `serving` extra "
                    "(pip install --no-deps tensorflow-serving-api).", e)
    return []


def read_metadata(version_dir):
  """The `tfadv_metadata.json` of an export version (a dict)."""
  return _read_extra(version_dir, signatures.METADATA_FILE)


def read_model_card(version_dir):
  """The `model_card.json` of an export version (a dict)."""
  return _read_extra(version_dir, signatures.MODEL_CARD_JSON)


def _read_extra(version_dir, name):
  path = os.path.join(version_dir, signatures.ASSETS_EXTRA, name)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Invalid export: expected {path!r}; it does not exist")
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except ValueError as e:
    raise ValueError(f"Invalid export: {path!r} is not valid JSON ({e})") from None
