"""Export of trained models as versioned SavedModels for TensorFlow Serving.

Layout: `<export_base>/<model_name>/<version>/saved_model.pb`, where `<export_base>/<model_name>`
is the model's base path (TF Serving's `--model_base_path`, or `base_path` in a model config
file) and `version` a positive integer. A version is written into a hidden temporary directory
beside the final one (its name is not an integer, so TF Serving ignores it) and renamed into
place only when complete: the server never sees a partial version, and an existing version is
never overwritten.

Signatures (all with method `tensorflow/serving/predict` and batch dimension None):

- `serving_default`: `images` float32 [None, H, W, C] in [0, 1] -> `logits` [None, K],
  `probabilities` [None, K], `classes` int32 [None].
- `predict_images`: `image_bytes` string [None] (PNG/JPEG/GIF/BMP bytes; the REST form is
  `{"b64": ...}`), decoded and resized to H x W inside the graph -> the same outputs.
- `explain`: `images` as in `serving_default` -> the same outputs, `gradcam` [None, H, W]
  (Grad-CAM of the predicted class, scaled to [0, 1], at input resolution) and
  `attention_0` .. `attention_3` [None, h_j, w_j] (activation attention of each stage,
  scaled to [0, 1]).

Only the inference model is saved (its variables; no optimizer, no attack). Warmup requests
go to `assets.extra/tf_serving_warmup_requests`, what was deployed (dataset, class names,
input size, defense, eps, robustness figures) to `assets.extra/tfadv_metadata.json` and to the
SavedModel attribute `tfadv_metadata` (a string, for `tf.saved_model.load(path)`).

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

from tfadv.attention import gradcam as gradcam_lib
from tfadv.attention import maps
from tfadv.models import taps as taps_lib
from tfadv.models import zoo

IMAGES_KEY = "images"
IMAGE_BYTES_KEY = "image_bytes"
METADATA_FILE = "tfadv_metadata.json"
WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
PREDICT_METHOD = "tensorflow/serving/predict"

DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "predict_images"
EXPLAIN_SIGNATURE = "explain"
SIGNATURES = (DEFAULT_SIGNATURE, BYTES_SIGNATURE, EXPLAIN_SIGNATURE)

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


def _outputs(logits):
  return {
      "logits": logits,
      "probabilities": tf.nn.softmax(logits, axis=-1),
      "classes": tf.argmax(logits, axis=-1, output_type=tf.int32),
  }


def decode_images(image_bytes, height, width, channels):
  """Decodes a batch of encoded images to float32 [B, height, width, channels] in [0, 1].

  PNG, JPEG, GIF (first frame) and BMP are accepted; colour images are converted to the
  model's channel count and resized (bilinear) when their size differs. Corrupt bytes raise
  `tf.errors.InvalidArgumentError` when the graph runs (an error response in TF Serving).
  """

  def decode_one(data):
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)
    same = tf.logical_and(tf.equal(tf.shape(image)[0], height),
                          tf.equal(tf.shape(image)[1], width))
    image = tf.cond(same, lambda: image,
                    lambda: tf.image.resize(image, (height, width), method="bilinear"))
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape((height, width, channels))
    return image

  images = tf.map_fn(decode_one, image_bytes,
                     fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))
  # An empty batch stacks to shape [0]; give it its full shape.
  return tf.reshape(images, [-1, height, width, channels])


def serving_functions(model, tap_names, gradcam_name):
  """The three signature functions of `model` (plain Python callables over tensors).

  Args:
    model: Keras functional model, images [None, H, W, C] in [0, 1] -> logits.
    tap_names: the layers whose outputs are the per-stage attention maps.
    gradcam_name: the layer Grad-CAM differentiates against.

  Returns:
    {signature name: function}.
  """
  height, width, channels = (int(d) for d in model.input_shape[1:])
  num_classes = int(model.output_shape[-1])
  tapped = taps_lib.tapped_model(model, tap_names, gradcam_name)
  empty = _outputs(tf.zeros([0, num_classes]))
  empty_explain = dict(empty, gradcam=tf.zeros([0, height, width]))
  for i, name in enumerate(tap_names):
    tap_shape = model.get_layer(name).output.shape
    empty_explain[f"attention_{i}"] = tf.zeros([0] + [int(d) for d in tap_shape[1:3]])

  def classify(images):
    return _outputs(model(images, training=False))

  def explain_batch(images):
    cam, outputs = gradcam_lib.gradcam(tapped, images, training=False)
    result = _outputs(outputs["logits"])
    result["gradcam"] = gradcam_lib.normalize_cam(cam, size=(height, width))
    for i, features in enumerate(outputs["taps"]):
      result[f"attention_{i}"] = maps.attention_image(features)
    return result

  def guarded(fn, images, empty_result):
    # Keras convolutions fail on an empty batch; an empty request gets empty outputs.
    return tf.cond(tf.shape(images)[0] > 0, lambda: fn(images),
                   lambda: {k: tf.identity(v) for k, v in empty_result.items()})

  def serving_default(images):
    return guarded(classify, images, empty)

  def predict_images(image_bytes):
    return guarded(classify, decode_images(image_bytes, height, width, channels), empty)

  def explain(images):
    return guarded(explain_batch, images, empty_explain)

  return {DEFAULT_SIGNATURE: serving_default, BYTES_SIGNATURE: predict_images,
          EXPLAIN_SIGNATURE: explain}


def _infer_taps(model):
  """Tap and Grad-CAM layer names of a zoo model, recognised by its layer names."""
  names = {layer.name for layer in model.layers}
  for model_name in zoo.MODEL_NAMES:
    taps = zoo.tap_layer_names(model_name)
    if set(taps) <= names:
      return taps, zoo.gradcam_layer_name(model_name)
  raise ValueError(f"Invalid model: the explain signature needs tap_names and gradcam_name; "
                   f"model {model.name!r} is not a tfadv zoo model, so pass them explicitly")


def _check_model(model):
  shape = getattr(model, "input_shape", None)
  if not (isinstance(shape, tuple) and len(shape) == 4 and all(shape[1:])):
    raise ValueError(f"Invalid model: expected a Keras model over images [None, H, W, C] "
                     f"with known H, W, C; received input_shape={shape!r}")


def export(model, export_base, model_name, version=None, metadata=None, tap_names=None,
           gradcam_name=None, warmup=True):
  """Writes `model` as version `version` of `<export_base>/<model_name>`.

  Args:
    model: Keras functional model mapping images in [0, 1] to logits.
    export_base: the directory holding one sub-directory per model name.
    model_name: the served model's name (TF Serving `--model_name`).
    version: positive integer; None takes the next free version.
    metadata: JSON-ready dict of what is deployed (see `tfadv.workflow.export_metadata`);
      the export adds its name, version, input shape and signatures.
    tap_names: layers giving the per-stage attention maps of `explain` (default: the zoo's
      taps, recognised by layer name).
    gradcam_name: the Grad-CAM layer of `explain` (default: the zoo's).
    warmup: write `assets.extra/tf_serving_warmup_requests` (needs tensorflow-serving-api;
      skipped with a warning when it is not installed).

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
  functions = serving_functions(model, tap_names, gradcam_name)
  input_shape = [int(d) for d in model.input_shape[1:]]
  meta = dict(metadata or {})
  meta.update({
      "model_name": model_name,
      "version": version,
      "input_shape": input_shape,
      "num_classes": int(model.output_shape[-1]),
      "signatures": list(SIGNATURES),
      "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  })

  requests = _warmup_requests(model_name, input_shape) if warmup else []
  meta["warmup_requests"] = len(requests)

  tf.io.gfile.makedirs(base_path)
  tmp = os.path.join(base_path, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
  try:
    _write_saved_model(model, functions, input_shape, meta, tmp)
    extra = os.path.join(tmp, ASSETS_EXTRA)
    tf.io.gfile.makedirs(extra)
    if requests:
      from serving import warmup as warmup_lib  # pylint: disable=g-import-not-at-top
      warmup_lib.write(os.path.join(extra, WARMUP_FILE), requests)
    with tf.io.gfile.GFile(os.path.join(extra, METADATA_FILE), "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True)
    if tf.io.gfile.exists(final):  # Another export took this version meanwhile.
      raise ValueError(f"Invalid version: {final!r} appeared during the export and is never "
                       "overwritten; export again to take the next free one")
    tf.io.gfile.rename(tmp, final)
  finally:
    if tf.io.gfile.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  return final


def _write_saved_model(model, functions, input_shape, meta, directory):
  archive = keras.export.ExportArchive()
  archive.track(model)
  float_spec = tf.TensorSpec([None] + input_shape, tf.float32, name=IMAGES_KEY)
  bytes_spec = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_KEY)
  archive.add_endpoint(DEFAULT_SIGNATURE, functions[DEFAULT_SIGNATURE],
                       input_signature=[float_spec])
  archive.add_endpoint(BYTES_SIGNATURE, functions[BYTES_SIGNATURE],
                       input_signature=[bytes_spec])
  archive.add_endpoint(EXPLAIN_SIGNATURE, functions[EXPLAIN_SIGNATURE],
                       input_signature=[float_spec])
  # A string constant in the object graph: `tf.saved_model.load(path).tfadv_metadata`.
  archive.add_variable_collection(
      "tfadv_metadata",
      [tf.Variable(json.dumps(meta, sort_keys=True), trainable=False, name="tfadv_metadata")])
  archive.write_out(directory, verbose=False)


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
  path = os.path.join(version_dir, ASSETS_EXTRA, METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Invalid export: expected {path!r}; it does not exist")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
