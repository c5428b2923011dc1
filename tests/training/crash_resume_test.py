"""A training process killed mid-run (SIGKILL) resumes from its last complete checkpoint."""

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["--dataset=digits", "--model=small_cnn", "--width=8", "--defense=pat", "--eps=0.1",
        "--attack_steps=2", "--batch_size=32", "--checkpoint_every=5", "--noprogress",
        "--attacks=fgsm", "--num_examples=32"]


def _train(model_dir, steps, **kw):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  return subprocess.Popen([sys.executable, "-m", "trainers.train", *ARGS,
                           f"--train_steps={steps}", f"--model_dir={model_dir}"],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
  model_dir = str(tmp_path / "run")
  ckpt_dir = os.path.join(model_dir, "checkpoints")
  proc = _train(model_dir, 100_000)
  deadline = time.time() + 240
  # Kill it hard once it has saved at least twice: in the middle of training, maybe of a save.
  while time.time() < deadline and proc.poll() is None:
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest and int(latest.rsplit("-", 1)[1]) >= 10:
      break
    time.sleep(0.2)
  assert proc.poll() is None, proc.communicate()[0][-3000:]
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = int(tf.train.latest_checkpoint(ckpt_dir).rsplit("-", 1)[1])
  # The state file only ever names complete checkpoints: the latest one restores.
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(ckpt_dir))
  assert reader.get_variable_to_shape_map()

  target = killed_at + 5
  out, _ = _train(model_dir, target).communicate(timeout=300)
  assert f"Resumed from {os.path.join(ckpt_dir, f'ckpt-{killed_at}')}" in out, out[-3000:]
  assert tf.train.latest_checkpoint(ckpt_dir).endswith(f"ckpt-{target}")
  assert os.path.exists(os.path.join(model_dir, "report.json"))
