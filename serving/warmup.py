"""Warmup requests: `assets.extra/tf_serving_warmup_requests` of an export.

TensorFlow Serving replays these `PredictionLog` records (a TFRecord file) when it loads a
version, before it marks the version available, so the first real request does not pay for
graph initialisation. Each signature gets requests of a few batch sizes; the images are
deterministic synthetic patterns in [0, 1] (the byte signature gets them as PNG).

Needs `tensorflow-serving-api` (the `serving` extra).
"""

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from serving import signatures

BATCH_SIZES = (1, 4)


def pattern_images(batch_size, input_shape):
  """Deterministic images [batch_size, H, W, C] in [0, 1]: ramps with a per-example phase."""
  height, width, channels = input_shape
  rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
  cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
  chans = np.arange(channels, dtype=np.float32)[None, None, :]
  images = [np.mod(rows * (i + 1) + cols + chans / max(channels, 1) + 0.25 * i, 1.0)
            for i in range(batch_size)]
  return np.stack(images).astype(np.float32)


def encode_png(image):
  """PNG bytes of one float image [H, W, C] in [0, 1] (C = 1, 3 or 4)."""
  pixels = tf.image.convert_image_dtype(tf.convert_to_tensor(image), tf.uint8, saturate=True)
  return tf.io.encode_png(pixels).numpy()


def _request(model_name, signature_name, key, tensor):
  request = predict_pb2.PredictRequest(
      model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
  request.inputs[key].CopyFrom(tf.make_tensor_proto(tensor))
  return prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request))


def warmup_requests(model_name, input_shape, batch_sizes=BATCH_SIZES):
  """`PredictionLog` records covering every signature of an export at `batch_sizes`.

  Args:
    model_name: the served model's name (recorded in each request's model spec).
    input_shape: (H, W, C) of the model's images.
    batch_sizes: batch sizes to warm up.

  Returns:
    A list of `tensorflow.serving.PredictionLog`.
  """
  logs = []
  for batch_size in batch_sizes:
    images = pattern_images(batch_size, tuple(input_shape))
    logs.append(_request(model_name, signatures.DEFAULT_SIGNATURE, signatures.IMAGES_KEY,
                         images))
    encoded = np.array([encode_png(image) for image in images], dtype=object)
    logs.append(_request(model_name, signatures.BYTES_SIGNATURE, signatures.IMAGE_BYTES_KEY,
                         encoded))
    logs.append(_request(model_name, signatures.EXPLAIN_SIGNATURE, signatures.IMAGES_KEY,
                         images))
  return logs


def write(path, logs):
  """Writes `PredictionLog` records to the TFRecord file `path`."""
  with tf.io.TFRecordWriter(path) as writer:
    for log in logs:
      writer.write(log.SerializeToString())


def read(path):
  """Reads the `PredictionLog` records of a warmup file.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: a record is not a serialized `PredictionLog`.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Invalid warmup file: expected {path!r}; it does not exist")
  logs = []
  for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
    log = prediction_log_pb2.PredictionLog()
    try:
      log.ParseFromString(record)
    except Exception as e:  # google.protobuf.message.DecodeError
      raise ValueError(f"Invalid warmup file {path!r}: record {i} is not a PredictionLog "
                       f"({e})") from e
    logs.append(log)
  return logs
