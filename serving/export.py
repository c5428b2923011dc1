"""Export of trained models as versioned SavedModels for TensorFlow Serving.

Layout: `<export_dir>/<version>/saved_model.pb` where `export_dir` is the model's base path
(TF Serving's `--model_base_path`) and `version` a positive integer. A version is written
into a hidden temporary directory beside the final one and renamed into place only when
complete: TF Serving never sees a partial version, and an existing version is never
overwritten.
"""

import json
import os
import shutil
import uuid

import keras
import tensorflow as tf

IMAGES_KEY = "images"
METADATA_FILE = "tfadv_metadata.json"


def versions(export_dir):
  """The integer versions already present under `export_dir`, sorted."""
  if not tf.io.gfile.isdir(export_dir):
    return []
  return sorted(int(name) for name in tf.io.gfile.listdir(export_dir)
                if name.strip("/").isdigit())


def next_version(export_dir):
  existing = versions(export_dir)
  return (existing[-1] + 1) if existing else 1


def _serving_fn(model):

  def serve(images):
    logits = model(images, training=False)
    return {
        "logits": logits,
        "probabilities": tf.nn.softmax(logits, axis=-1),
        "classes": tf.argmax(logits, axis=-1, output_type=tf.int32),
    }

  return serve


def export(model, export_dir, version=None, metadata=None):
  """Writes `model` as version `version` (default: the next free one) of `export_dir`.

  The `serving_default` signature takes float32 images `[None, H, W, C]` in [0, 1] under the
  key `images` and returns `logits`, `probabilities` and `classes`.

  Args:
    model: Keras model mapping images in [0, 1] to logits.
    export_dir: the model's base directory.
    version: positive integer; None takes the next free version.
    metadata: JSON-ready dict written to `assets.extra/tfadv_metadata.json`.

  Returns:
    The path of the written version.

  Raises:
    ValueError: when `export_dir` is a file, `version` is not a positive integer, or the
      version already exists.
  """
  if tf.io.gfile.exists(export_dir) and not tf.io.gfile.isdir(export_dir):
    raise ValueError(f"Invalid export_dir: expected a directory; {export_dir!r} is a file")
  if version is None:
    version = next_version(export_dir)
  if not isinstance(version, int) or version < 1:
    raise ValueError(f"Invalid version: expected a positive integer; received {version!r}")
  final = os.path.join(export_dir, str(version))
  if tf.io.gfile.exists(final):
    raise ValueError(f"Invalid version: {final!r} already exists and is never overwritten; "
                     "omit --version to take the next free one")
  tf.io.gfile.makedirs(export_dir)
  tmp = os.path.join(export_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
  try:
    shape = [None] + list(model.input_shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", _serving_fn(model),
        input_signature=[tf.TensorSpec(shape, tf.float32, name=IMAGES_KEY)])
    archive.write_out(tmp, verbose=False)
    if metadata is not None:
      extra = os.path.join(tmp, "assets.extra")
      tf.io.gfile.makedirs(extra)
      with tf.io.gfile.GFile(os.path.join(extra, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(tmp, final)
  finally:
    if tf.io.gfile.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  return final
