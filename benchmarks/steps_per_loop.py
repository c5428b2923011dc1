r"""Time per training step against --steps_per_loop (the host round trip per loop).

  python3 -m benchmarks.steps_per_loop [--defense=none] [--repeats=2]

Trains `small_cnn` (width 8) on scikit-learn's digits, batch 32, for 500 steps after a
50-step warm-up run (same model directory, so the timed call resumes and only adds its
own trace), for steps_per_loop in 1, 10, 50; prints ms per step for each repetition.
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.training import trainer

flags.DEFINE_string("defense", "none", "Defense of the timed step.")
flags.DEFINE_integer("repeats", 2, "Repetitions of each setting.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  data = datasets.load(config_lib.DataConfig(name="digits"))
  defense = config_lib.DefenseConfig(name=FLAGS.defense, attack=config_lib.AttackConfig(
      name="pgd", eps=0.1, steps=1))
  model = config_lib.ModelConfig(name="small_cnn", width=8)
  results = {}
  with tempfile.TemporaryDirectory() as root:
    for rep in range(FLAGS.repeats):
      for spl in (1, 10, 50):
        fields = dict(model_dir=os.path.join(root, f"{spl}_{rep}"), batch_size=32,
                      checkpoint_every=10_000, log_every=10_000, image_every=0,
                      progress=False, steps_per_loop=spl)
        trainer.train(data, model, defense, config_lib.TrainConfig(train_steps=50, **fields))
        start = time.time()
        trainer.train(data, model, defense, config_lib.TrainConfig(train_steps=550, **fields))
        results.setdefault(spl, []).append(1000 * (time.time() - start) / 500)
  for spl, times in results.items():
    print(f"steps_per_loop={spl}: " + ", ".join(f"{t:.1f}" for t in times) + " ms/step")
  sys.stdout.flush()


if __name__ == "__main__":
  app.run(main)
