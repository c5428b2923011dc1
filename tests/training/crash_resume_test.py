"""A training process killed mid-run (SIGKILL) resumes from its last complete checkpoint.

Clock-free: the test waits for the event (a checkpoint at step >= 10 appears), not for a
deadline; then it kills the process and checks that the resumed run starts at the killed
run's last checkpoint (its first logged step is the next one) and ends with the weights of
an uninterrupted run.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["--dataset=digits", "--model=small_cnn", "--width=8", "--defense=pat", "--eps=0.1",
        "--attack_steps=2", "--batch_size=32", "--checkpoint_every=5", "--log_every=1",
        "--image_every=0", "--noprogress", "--attacks=fgsm", "--num_examples=32"]


def _train(model_dir, steps, **kw):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.Popen([sys.executable, "-m", "trainers.train", *ARGS,
                           f"--train_steps={steps}", f"--model_dir={model_dir}"],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def _step(path):
  return int(path.rsplit("-", 1)[1]) if path else 0


def _logged_steps(event_files):
  return sorted(e.step for f in event_files for e in tf.compat.v1.train.summary_iterator(f)
                for v in e.summary.value if v.tag == "loss")


def _events(model_dir):
  return set(tf.io.gfile.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")))


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
  model_dir = str(tmp_path / "run")
  ckpt_dir = os.path.join(model_dir, "checkpoints")
  proc = _train(model_dir, 100_000)
  # The event: a second checkpoint is complete (the state file names it). No deadline: a
  # child that dies ends the wait too.
  while proc.poll() is None and _step(tf.train.latest_checkpoint(ckpt_dir)) < 10:
    time.sleep(0.05)
  assert proc.poll() is None, proc.communicate()[0][-3000:]
  # Killed hard while it trains on: maybe in the middle of a step or of a save.
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  proc.stdout.close()
  killed_at = _step(tf.train.latest_checkpoint(ckpt_dir))
  assert killed_at >= 10 and killed_at % 5 == 0
  # The state file only ever names complete checkpoints: the latest one restores.
  assert tf.train.load_checkpoint(tf.train.latest_checkpoint(ckpt_dir)).get_variable_to_shape_map()

  target = killed_at + 5
  before = _events(model_dir)
  resumed = _train(model_dir, target)
  reference = _train(str(tmp_path / "reference"), target)  # uninterrupted, alongside
  out, _ = resumed.communicate()
  assert resumed.returncode == 0, out[-3000:]
  assert f"Resumed from {os.path.join(ckpt_dir, f'ckpt-{killed_at}')}" in out, out[-3000:]
  # It trained steps killed_at+1 .. target only: a resume restarting at step 0 logs step 1.
  assert _logged_steps(_events(model_dir) - before) == list(range(killed_at + 1, target + 1))
  assert tf.train.latest_checkpoint(ckpt_dir).endswith(f"ckpt-{target}")
  assert os.path.exists(os.path.join(model_dir, "report.json"))
  out, _ = reference.communicate()
  assert reference.returncode == 0, out[-3000:]
  ours = tf.train.load_checkpoint(tf.train.latest_checkpoint(ckpt_dir))
  theirs = tf.train.load_checkpoint(os.path.join(tmp_path, "reference", "checkpoints",
                                                 f"ckpt-{target}"))
  # Weights (saved under the optimizer's trainable variables) and the optimizer's slots.
  names = [n for n in ours.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/"))]
  assert len(names) >= 24
  for name in names:
    np.testing.assert_allclose(ours.get_tensor(name), theirs.get_tensor(name), rtol=1e-5,
                               atol=1e-6, err_msg=name)
