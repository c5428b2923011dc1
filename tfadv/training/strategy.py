"""Choosing a tf.distribute strategy: one device, all local devices, or several workers."""

import json
import os

import tensorflow as tf

from tfadv import config as config_lib


def split_cpu(num_devices):
  """Splits the physical CPU into `num_devices` logical devices (call before TF starts).

  Lets `mirrored` run several replicas on a machine without GPUs (tests, debugging).

  Raises:
    RuntimeError: if TensorFlow has already initialised its devices with another layout.
  """
  cpus = tf.config.list_physical_devices("CPU")
  current = tf.config.get_logical_device_configuration(cpus[0])
  if current is not None and len(current) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise RuntimeError(
        f"Cannot split the CPU into {num_devices} devices: TensorFlow is already "
        "initialised. Split it before building any tensor or model.") from e


def make_strategy(kind, num_cpu_devices=0):
  """Returns the strategy for a `StrategyKind` (or its name).

  Args:
    kind: `default` (one device), `mirrored` (all local GPUs; without GPUs, all logical
      CPU devices) or `multi_worker` (MultiWorkerMirroredStrategy configured by TF_CONFIG).
    num_cpu_devices: for `mirrored` without GPUs, split the CPU into this many devices
      first (0: keep the current layout).

  Raises:
    ValueError: `multi_worker` without a valid TF_CONFIG, or an unknown kind.
  """
  kind = config_lib._choice(config_lib.StrategyKind, kind, "strategy")  # pylint: disable=protected-access
  if kind is config_lib.StrategyKind.DEFAULT:
    return tf.distribute.get_strategy()
  if kind is config_lib.StrategyKind.MIRRORED:
    if num_cpu_devices and not tf.config.list_physical_devices("GPU"):
      # Before listing logical devices, which initialises TensorFlow's devices.
      split_cpu(num_cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    # Reduce through one device, not with collective ops: collective instance keys restart
    # with every strategy, so a second CPU-mirrored run in the same process (a study, a
    # test session) would collide with the first one's cached collectives.
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    raise ValueError("Invalid strategy: multi_worker needs the TF_CONFIG environment "
                     "variable (cluster and task); received no TF_CONFIG")
  try:
    tf_config = json.loads(raw)
    tf_config["cluster"]["worker"]  # pylint: disable=pointless-statement
    tf_config["task"]["type"]  # pylint: disable=pointless-statement
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError("Invalid TF_CONFIG: expected JSON with cluster.worker and task.type/"
                     f"index; received {raw!r}") from e
  return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
  """True on the worker that writes checkpoints, summaries and reports."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 0
  return int(resolver.task_id or 0)
