"""MultiWorkerMirroredStrategy: two local worker processes train in lockstep."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = r"""
import os, sys
import numpy as np
sys.path.insert(0, {root!r})
from tfadv import config as config_lib
from tfadv.training import strategy as strategy_lib
strategy = strategy_lib.make_strategy("multi_worker")
import tensorflow as tf
from tfadv.data import datasets
from tfadv.training import trainer
from tests import testing
x, y, xt, yt = testing.fashion_mnist_arrays(num_train=512, num_test=64)
data = datasets.DatasetInfo(
    name="fmnist_subset", train=tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))),
    test=tf.data.Dataset.from_tensor_slices((xt, yt.astype(np.int32))), num_classes=10,
    image_shape=(28, 28, 1), class_names=tuple(map(str, range(10))), num_train=512,
    num_test=64)
attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=2)
result = trainer.train(
    data, config_lib.ModelConfig(name="small_cnn", width=8),
    config_lib.DefenseConfig(name="at_alp", attack=attack),
    config_lib.TrainConfig(model_dir={model_dir!r}, batch_size=32, train_steps=3,
                           checkpoint_every=2, log_every=1, progress=False),
    strategy=strategy)
np.savez(sys.argv[1], *[v.numpy() for v in result.model.weights], steps=result.steps)
"""


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


@pytest.mark.slow
def test_two_workers_train_identical_weights(tmp_path):
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  script = tmp_path / "worker.py"
  script.write_text(WORKER.format(root=ROOT, model_dir=str(tmp_path / "model")))
  procs = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                 "task": {"type": "worker", "index": index}}),
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / f"w{index}.npz")],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outputs = []
  for proc in procs:
    try:
      out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for p in procs:
        p.kill()
      raise
    outputs.append(out)
  for proc, out in zip(procs, outputs):
    assert proc.returncode == 0, out[-3000:]
  w0 = np.load(tmp_path / "w0.npz")
  w1 = np.load(tmp_path / "w1.npz")
  assert int(w0["steps"]) == int(w1["steps"]) == 3
  keys = [k for k in w0.files if k != "steps"]
  assert keys
  for k in keys:
    np.testing.assert_allclose(w0[k], w1[k], rtol=1e-6, atol=1e-7)
  # Only the chief (worker 0) wrote checkpoints into model_dir; the scratch dir is gone.
  assert os.path.exists(tmp_path / "model" / "checkpoints" / "checkpoint")
  scratch = tmp_path / "model" / ".scratch"
  assert not scratch.exists() or not os.listdir(scratch)
