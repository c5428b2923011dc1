"""TensorFlow Serving configuration files: models.config, monitoring and batching.

- `models.config` (`--model_config_file`): a `ModelServerConfig` text proto whose
  `model_config_list` names each model, its base path, platform and version policy.
  `update_model_config` adds or replaces one model's entry and keeps the others; the file is
  written to a temporary file and renamed, so a server polling it
  (`--model_config_file_poll_wait_seconds`) never reads half a file.
- `monitoring.config` (`--monitoring_config_file`): Prometheus metrics on the REST port.
- `batching.config` (`--enable_batching --batching_parameters_file`): server-side batching.

Example:

  update_model_config("serving/models.config", "fmnist_at_alp", "/models/fmnist_at_alp",
                      version_policy="latest:2")
"""

import os

import tensorflow as tf

from serving import export as export_lib
from tfadv import io_utils

MONITORING_PATH = "/monitoring/prometheus/metrics"


def parse_version_policy(policy):
  """`latest[:N]`, `all` or `specific:V1,V2` as ('latest', N) / ('all', ()) / ('specific', Vs).

  Raises:
    ValueError: anything else.
  """
  text = (policy or "latest").strip()
  kind, _, arg = text.partition(":")
  try:
    if kind == "latest":
      num = int(arg) if arg else 1
      if num >= 1:
        return "latest", num
    elif kind == "all" and not arg:
      return "all", ()
    elif kind == "specific" and arg:
      versions = tuple(int(v) for v in arg.split(","))
      if all(v >= 1 for v in versions):
        return "specific", versions
  except ValueError:
    pass
  raise ValueError(f"Invalid version_policy: expected latest[:N], all or specific:V1,V2 with "
                   f"positive integers; received {policy!r}")


def _config_proto():
  from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=g-import-not-at-top
  return model_server_config_pb2


def model_config(name, base_path, version_policy="latest"):
  """One `ModelConfig` (name, base path, platform `tensorflow`, version policy)."""
  export_lib.check_model_name(name)
  kind, arg = parse_version_policy(version_policy)
  config = _config_proto().ModelConfig(name=name, base_path=base_path,
                                       model_platform="tensorflow")
  policy = config.model_version_policy
  if kind == "latest":
    policy.latest.num_versions = arg
  elif kind == "all":
    policy.all.SetInParent()
  else:
    policy.specific.versions.extend(arg)
  return config


def read(path):
  """The `ModelConfigList` of a models.config (empty when the file does not exist).

  Raises:
    ValueError: the file is not a `ModelServerConfig` text proto with a model_config_list.
  """
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  pb2 = _config_proto()
  config = pb2.ModelServerConfig()
  if tf.io.gfile.exists(path):
    if tf.io.gfile.isdir(path):
      raise ValueError(f"Invalid model_config_file: expected a file; {path!r} is a directory")
    with tf.io.gfile.GFile(path) as f:
      text = f.read()
    try:
      text_format.Parse(text, config)
    except text_format.ParseError as e:
      raise ValueError(f"Invalid model_config_file {path!r}: not a ModelServerConfig text "
                       f"proto ({e})") from e
    if config.HasField("custom_model_config"):
      raise ValueError(f"Invalid model_config_file {path!r}: expected a model_config_list; "
                       "received a custom_model_config")
  return config.model_config_list


def update_model_config(path, name, base_path, version_policy="latest"):
  """Adds or replaces the entry of model `name` in the models.config at `path`.

  Other models' entries are kept in their order; a new model goes last.

  Returns:
    The text written.
  """
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  entries = read(path)
  entry = model_config(name, base_path, version_policy)
  config = _config_proto().ModelServerConfig()
  replaced = False
  for existing in entries.config:
    if existing.name == name:
      config.model_config_list.config.add().CopyFrom(entry)
      replaced = True
    else:
      config.model_config_list.config.add().CopyFrom(existing)
  if not replaced:
    config.model_config_list.config.add().CopyFrom(entry)
  text = text_format.MessageToString(config)
  io_utils.atomic_write(os.path.abspath(path), text)
  return text


def monitoring_config_text(path=MONITORING_PATH):
  """A `MonitoringConfig` text proto enabling Prometheus metrics at `path` (REST port)."""
  if not path.startswith("/"):
    raise ValueError(f"Invalid path: expected an absolute URL path; received {path!r}")
  return f'prometheus_config {{\n  enable: true\n  path: "{path}"\n}}\n'


def batching_parameters_text(max_batch_size=32, batch_timeout_micros=2000,
                             max_enqueued_batches=100, num_batch_threads=2,
                             allowed_batch_sizes=(8, 16, 32), pad_variable_length_inputs=False):
  """A `BatchingParameters` text proto for `--batching_parameters_file`.

  Raises:
    ValueError: a non-positive number, or `allowed_batch_sizes` not increasing up to
      `max_batch_size` (TF Serving's own requirement).
  """
  numbers = {"max_batch_size": max_batch_size, "batch_timeout_micros": batch_timeout_micros,
             "max_enqueued_batches": max_enqueued_batches,
             "num_batch_threads": num_batch_threads}
  for key, value in numbers.items():
    if not isinstance(value, int) or value < (0 if key == "batch_timeout_micros" else 1):
      raise ValueError(f"Invalid {key}: expected a positive integer; received {value!r}")
  sizes = list(allowed_batch_sizes or ())
  if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != max_batch_size):
    raise ValueError(f"Invalid allowed_batch_sizes: expected increasing sizes ending at "
                     f"max_batch_size={max_batch_size}; received {sizes}")
  lines = [f"{key} {{ value: {value} }}" for key, value in numbers.items()]
  lines += [f"allowed_batch_sizes: {s}" for s in sizes]
  lines.append(f"pad_variable_length_inputs: {str(pad_variable_length_inputs).lower()}")
  return "\n".join(lines) + "\n"
