"""serving.server_config: models.config against TF Serving's own ModelServerConfig proto, and
the monitoring/batching examples against the upstream message definitions."""

import os

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import server_config

SERVING_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__)))), "serving")  # realpath: the source tree under Bazel too.


def _parse_models_config(path):
  config = model_server_config_pb2.ModelServerConfig()
  with open(path) as f:
    text_format.Parse(f.read(), config)
  return config


def test_update_adds_replaces_and_keeps_entries(tmp_path):
  path = str(tmp_path / "conf" / "models.config")
  server_config.update_model_config(path, "a", "/models/a", "latest:2")
  server_config.update_model_config(path, "b", "/models/b", "all")
  server_config.update_model_config(path, "a", "/srv/a", "specific:1,3")
  config = _parse_models_config(path)
  assert [c.name for c in config.model_config_list.config] == ["a", "b"]
  a, b = config.model_config_list.config
  assert a.base_path == "/srv/a" and a.model_platform == "tensorflow"
  assert list(a.model_version_policy.specific.versions) == [1, 3]
  assert b.model_version_policy.WhichOneof("policy_choice") == "all"
  assert not os.path.exists(path + ".tmp")
  entries = server_config.read(path)
  assert [e.name for e in entries.config] == ["a", "b"]


@pytest.mark.parametrize("policy", ["latest:0", "newest", "specific:", "specific:a", "all:2",
                                    "latest:-1"])
def test_bad_version_policies_are_rejected(policy):
  with pytest.raises(ValueError, match="Invalid version_policy"):
    server_config.parse_version_policy(policy)


def test_a_corrupt_config_is_reported_and_not_overwritten(tmp_path):
  path = tmp_path / "models.config"
  path.write_text("model_config_list { config { nonsense: 1 } }")
  with pytest.raises(ValueError, match="not a ModelServerConfig text proto"):
    server_config.update_model_config(str(path), "a", "/models/a")
  assert path.read_text() == "model_config_list { config { nonsense: 1 } }"
  with pytest.raises(ValueError, match="is a directory"):
    server_config.read(str(tmp_path))
  with pytest.raises(ValueError, match="Invalid model_name"):
    server_config.update_model_config(str(tmp_path / "new.config"), "a b", "/models/a")


def test_checked_in_models_config_parses():
  config = _parse_models_config(os.path.join(SERVING_DIR, "models.config"))
  assert config.model_config_list.config
  for entry in config.model_config_list.config:
    assert entry.base_path.startswith("/models/") and entry.model_platform == "tensorflow"


def _upstream_messages():
  """MonitoringConfig and BatchingParameters as defined by tensorflow_serving's .proto files
  (monitoring_config.proto, session_bundle_config.proto), which tensorflow-serving-api does
  not ship in Python."""
  pool = descriptor_pool.DescriptorPool()
  wrappers = descriptor_pb2.FileDescriptorProto()
  wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
  pool.Add(wrappers)
  f = descriptor_pb2.FileDescriptorProto(name="tfadv_test_serving.proto",
                                         package="tensorflow.serving", syntax="proto3",
                                         dependency=["google/protobuf/wrappers.proto"])
  fd = descriptor_pb2.FieldDescriptorProto
  prometheus = f.message_type.add(name="PrometheusConfig")
  prometheus.field.add(name="enable", number=1, type=fd.TYPE_BOOL, label=fd.LABEL_OPTIONAL)
  prometheus.field.add(name="path", number=2, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL)
  monitoring = f.message_type.add(name="MonitoringConfig")
  monitoring.field.add(name="prometheus_config", number=1, type=fd.TYPE_MESSAGE,
                       type_name=".tensorflow.serving.PrometheusConfig",
                       label=fd.LABEL_OPTIONAL)
  batching = f.message_type.add(name="BatchingParameters")
  for number, name, wrapper in ((1, "max_batch_size", "Int64Value"),
                                (2, "batch_timeout_micros", "Int64Value"),
                                (3, "max_enqueued_batches", "Int64Value"),
                                (4, "num_batch_threads", "Int64Value"),
                                (5, "thread_pool_name", "StringValue")):
    batching.field.add(name=name, number=number, type=fd.TYPE_MESSAGE,
                       type_name=f".google.protobuf.{wrapper}", label=fd.LABEL_OPTIONAL)
  batching.field.add(name="allowed_batch_sizes", number=6, type=fd.TYPE_INT64,
                     label=fd.LABEL_REPEATED)
  batching.field.add(name="pad_variable_length_inputs", number=7, type=fd.TYPE_BOOL,
                     label=fd.LABEL_OPTIONAL)
  pool.Add(f)
  get = lambda name: message_factory.GetMessageClass(
      pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
  return get("MonitoringConfig"), get("BatchingParameters")


def test_monitoring_and_batching_examples_parse_and_match_the_generator():
  monitoring_cls, batching_cls = _upstream_messages()
  with open(os.path.join(SERVING_DIR, "monitoring.config")) as f:
    text = f.read()
  assert text == server_config.monitoring_config_text()
  monitoring = text_format.Parse(text, monitoring_cls())
  assert monitoring.prometheus_config.enable
  assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
  with open(os.path.join(SERVING_DIR, "batching.config")) as f:
    text = f.read()
  assert text == server_config.batching_parameters_text()
  batching = text_format.Parse(text, batching_cls())
  assert batching.max_batch_size.value == 32
  assert list(batching.allowed_batch_sizes)[-1] == batching.max_batch_size.value
  custom = text_format.Parse(server_config.batching_parameters_text(
      max_batch_size=64, allowed_batch_sizes=(16, 64)), batching_cls())
  assert custom.max_batch_size.value == 64 and list(custom.allowed_batch_sizes) == [16, 64]


def test_batching_and_monitoring_validation():
  with pytest.raises(ValueError, match="allowed_batch_sizes"):
    server_config.batching_parameters_text(max_batch_size=32, allowed_batch_sizes=(8, 16))
  with pytest.raises(ValueError, match="Invalid num_batch_threads"):
    server_config.batching_parameters_text(num_batch_threads=0)
  with pytest.raises(ValueError, match="absolute URL path"):
    server_config.monitoring_config_text("metrics")
