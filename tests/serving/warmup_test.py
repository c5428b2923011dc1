"""serving.warmup: the warmup file parses as PredictionLog records that all run on the export."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import signatures
from tests.serving import model_server
from serving import warmup as warmup_lib


def test_warmup_file_parses_and_every_record_runs_on_the_export(served):
  path = os.path.join(served.version_dir, "assets.extra", "tf_serving_warmup_requests")
  raw = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
  assert len(raw) == 3 * len(warmup_lib.BATCH_SIZES)
  logs = []
  for record in raw:
    log = prediction_log_pb2.PredictionLog.FromString(record)
    assert log.WhichOneof("log_type") == "predict_log"
    logs.append(log)
  assert [log.SerializeToString() for log in warmup_lib.read(path)] == list(raw)
  seen = {}
  # The v1 session loader, as TF Serving replays warmup records before serving a version.
  loaded = model_server.LoadedVersion(served.version_dir, replay_warmup=False)
  for log in logs:
    request = log.predict_log.request
    assert request.model_spec.name == served.model_name
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    batch = len(next(iter(inputs.values())))
    outputs = loaded.run(request.model_spec.signature_name, inputs)
    assert outputs["probabilities"].shape == (batch, 10)
    np.testing.assert_allclose(outputs["probabilities"].sum(-1), 1.0, rtol=1e-5)
    seen.setdefault(request.model_spec.signature_name, []).append(batch)
  assert seen == {name: list(warmup_lib.BATCH_SIZES) for name in signatures.WARMUP_SIGNATURES}
  # Replaying on load runs them all.
  assert model_server.LoadedVersion(served.version_dir).warmup_count == len(logs)


def test_pattern_images_are_valid_distinct_images():
  images = warmup_lib.pattern_images(4, (8, 6, 3))
  assert images.shape == (4, 8, 6, 3) and images.dtype == np.float32
  assert images.min() >= 0 and images.max() <= 1
  assert len({image.tobytes() for image in images}) == 4
  png = warmup_lib.encode_png(images[0])
  decoded = tf.io.decode_png(png).numpy()
  assert decoded.shape == (8, 6, 3)
  np.testing.assert_allclose(decoded / 255.0, images[0], atol=1 / 255)


def test_read_rejects_files_that_are_not_prediction_logs(tmp_path):
  path = str(tmp_path / "bad")
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(b"\xff\xff\xff not a proto")
  with pytest.raises(ValueError, match="record 0 is not a PredictionLog"):
    warmup_lib.read(path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    warmup_lib.read(str(tmp_path / "missing"))
