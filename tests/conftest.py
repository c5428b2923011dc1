"""Shared test setup: quiet TensorFlow, deterministic seeds, and virtual CPU devices.

Two logical CPU devices are configured before TensorFlow initialises, so MirroredStrategy
tests can run in the same process as everything else (single-device code ignores them).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices("CPU")
if _cpus:
  try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:  # Already initialised (e.g. by a plugin); tests needing 2 skip-check.
    pass


import pytest  # pylint: disable=g-import-not-at-top,g-bad-import-order


@pytest.fixture(scope="session")
def product_models():
  """{defense: TrainResult} of `none`, `pat`, `alp`, `at_alp` trained by `trainer.train`.

  Trained once per test session (`tests.testing.product_trained` caches them), so every
  test asking for a defended model shares these runs.
  """
  from tests import testing  # pylint: disable=g-import-not-at-top
  return {name: testing.product_trained(name) for name in testing.PRODUCT_DEFENSES}


_WRITTEN = {"report.json": "report", "study.json": "study"}


@pytest.fixture(autouse=True)
def _reports_match_their_schemas(request):
  """Every report.json and study.json a test leaves in its tmp_path matches its JSON Schema
  (docs/report.schema.json, docs/study.schema.json): whatever the command that wrote it.

  Files that are not JSON (a test's deliberately corrupt file) are the test's business; a
  test that writes reports of another format on purpose opts out with
  `@pytest.mark.foreign_reports`.
  """
  root = None
  if "tmp_path" in request.fixturenames and not request.node.get_closest_marker(
      "foreign_reports"):
    root = request.getfixturevalue("tmp_path")  # Before the test: it is torn down after.
  yield
  if root is None:
    return
  import json  # pylint: disable=g-import-not-at-top
  from tests import testing  # pylint: disable=g-import-not-at-top
  for directory, _, files in os.walk(root):
    for name in files:
      if name in _WRITTEN:
        path = os.path.join(directory, name)
        try:
          with open(path) as f:
            document = json.load(f)
        except (ValueError, OSError):
          continue
        testing.assert_valid(document, _WRITTEN[name])
