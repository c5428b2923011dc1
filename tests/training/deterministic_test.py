"""`--deterministic` (TrainConfig.deterministic): op determinism on, bit-exact reruns.

Op determinism is global to a process, so each run is its own subprocess (turning it on here
would change every later test of the session).
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Parses the train CLI's flags (with or without `--deterministic`), trains 6 ALP steps on
# digits with crop+flip (stateless random ops) from those configs, and prints the state of op
# determinism and a digest of every weight, bit for bit.
_SCRIPT = r"""
import hashlib, json, sys
from absl import flags
from tensorflow.python.framework import config as tf_config  # no public getter in TF 2.21
from trainers import common_flags
from trainers import train as train_cli
from tfadv.data import datasets
from tfadv.training import trainer

train_cli.define_flags()
FLAGS = flags.FLAGS
FLAGS(["tfadv-train", "--dataset=digits", "--model=small_cnn", "--width=8", "--defense=alp",
       "--eps=0.1", "--attack_steps=2", "--batch_size=32", "--train_steps=6",
       "--checkpoint_every=6", "--image_every=0", "--noprogress", "--seed=3",
       "--augment=crop_flip", "--model_dir=" + sys.argv[1], *sys.argv[2:]])
data_config = common_flags.data_config_from_flags()
result = trainer.train(datasets.load(data_config), common_flags.model_config_from_flags(),
                       common_flags.defense_config_from_flags(),
                       common_flags.train_config_from_flags(), data_config)
digest = hashlib.sha256()
for w in result.model.weights:
  digest.update(w.numpy().tobytes())
print("RESULT " + json.dumps({"enabled": tf_config.is_op_determinism_enabled(),
                              "digest": digest.hexdigest()}))
"""


def _run(tmp_path, name, deterministic):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / name),
                         *(["--deterministic"] if deterministic else [])], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
  return json.loads(line[len("RESULT "):])


def test_deterministic_training_turns_op_determinism_on_and_reruns_bit_exact(tmp_path):
  first = _run(tmp_path, "a", True)
  second = _run(tmp_path, "b", True)
  assert first["enabled"] and second["enabled"]  # an ignored option leaves it off
  assert first["digest"] == second["digest"]
  # The control: without the option determinism stays off (the check above can fail).
  assert not _run(tmp_path, "c", False)["enabled"]

