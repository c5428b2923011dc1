r"""Per-step cost of tfadv's adversarial training step against the floor, side by side.

The setting of `../shared/bench/anchors.py`: Fashion-MNIST batch 128, the CNN
Conv32-Pool-Conv64-Pool-Dense256-Dense10, L-inf PGD eps = 0.1, step 0.025, 7 iterations,
random start, Adam(1e-3). Timed round-robin in one process (round r: one step of every
system), so drifts of a shared machine hit all systems alike:

- `floor`: 7 x (forward + input gradient) + 1 clean train step, each in `tf.function`;
- `cleverhans_pgd`: cleverhans' `projected_gradient_descent` + train step in one tf.function;
- `tfadv_<defense>`: `tfadv.training.trainer.make_train_step` for each defense, fed by
  `tf.data` like a real run (its extra work: stateless seeds, per-term metrics, and for the
  pairing defenses the clean forward pass and taps).

  python benchmarks/step_time.py --rounds=30 --defenses=pat,at_alp
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras
import tensorflow as tf

from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent
from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.defenses import recipes
from tfadv.models import taps as taps_lib
from tfadv.training import trainer

flags.DEFINE_integer("rounds", 30, "Timed rounds (one step of every system per round).")
flags.DEFINE_integer("warmup", 3, "Untimed rounds (tracing).")
flags.DEFINE_list("defenses", ["pat", "alp", "at_alp"], "tfadv defenses to time.")
FLAGS = flags.FLAGS

EPS, STEP, ITERS, BATCH = 0.1, 0.025, 7, 128


def anchor_cnn():
  """The anchors' CNN, functional with named layers so tfadv can tap it."""
  layers = keras.layers
  x = inputs = keras.Input((28, 28, 1))
  x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
  x = layers.MaxPooling2D(name="pool1")(x)
  x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
  x = layers.MaxPooling2D(name="pool2")(x)
  x = layers.Flatten()(x)
  x = layers.Dense(256, activation="relu")(x)
  return keras.Model(inputs, layers.Dense(10)(x))


def _ce(y, logits):
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)


def floor_parts(model, optimizer):
  """(input-gradient step, clean train step), each a tf.function."""

  @tf.function
  def gradx(x, y):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x)
      loss = tf.reduce_sum(_ce(y, model(x, training=False)))
    return tf.reduce_sum(tape.gradient(loss, x))

  @tf.function
  def train(x, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(_ce(y, model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return gradx, train


def cleverhans_step(model, optimizer):

  @tf.function
  def step(x, y):
    x_adv = projected_gradient_descent(model, x, EPS, STEP, ITERS, float("inf"), clip_min=0.0,
                                       clip_max=1.0, y=y, rand_init=True, sanity_checks=False)
    x_adv = tf.stop_gradient(x_adv)
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(_ce(y, model(x_adv, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return step


def tfadv_step(defense, train_images):
  """tfadv's train step for `defense` and the iterator feeding it."""
  model = anchor_cnn()
  tapped = taps_lib.tapped_model(model, ("conv1", "pool1", "conv2", "pool2"), "conv2")
  attack = config_lib.AttackConfig(name="pgd", eps=EPS, step_size=STEP, steps=ITERS)
  recipe = recipes.build(config_lib.DefenseConfig(name=defense, attack=attack))
  optimizer = keras.optimizers.Adam(1e-3)
  strategy = tf.distribute.get_strategy()
  step = trainer.make_train_step(model, tapped, recipe, optimizer, strategy, BATCH)
  iterator = iter(trainer.input_pipeline(train_images, BATCH, 10_000, seed=0))
  return lambda: step(iterator)["loss"].numpy()


def main(argv):
  del argv
  data = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
  batches = [(x, y) for x, y in data.train.batch(BATCH).take(16)]

  floor_model = anchor_cnn()
  gradx, train = floor_parts(floor_model, keras.optimizers.Adam(1e-3))
  ch_model = anchor_cnn()
  ch_step = cleverhans_step(ch_model, keras.optimizers.Adam(1e-3))

  systems = {
      "gradx": lambda x, y: gradx(x, y).numpy(),
      "train": lambda x, y: train(x, y).numpy(),
      "cleverhans_pgd": lambda x, y: ch_step(x, y).numpy(),
  }
  for defense in FLAGS.defenses:
    run = tfadv_step(defense, data.train)
    systems[f"tfadv_{defense}"] = lambda x, y, run=run: run()

  times = {name: [] for name in systems}
  for r in range(FLAGS.warmup + FLAGS.rounds):
    x, y = batches[r % len(batches)]
    for name, fn in systems.items():
      start = time.perf_counter()
      fn(x, y)
      if r >= FLAGS.warmup:
        times[name].append(time.perf_counter() - start)

  med = {name: statistics.median(t) for name, t in times.items()}
  floor = ITERS * med["gradx"] + med["train"]
  print(f"PGD-{ITERS} adversarial step, batch {BATCH}, medians of {FLAGS.rounds} rounds")
  print("| system | s/step | x floor |")
  print("|---|---|---|")
  print(f"| floor ({ITERS}·gradx + train) | {floor:.3f} | 1.00 |")
  for name in ["cleverhans_pgd"] + [f"tfadv_{d}" for d in FLAGS.defenses]:
    print(f"| {name} | {med[name]:.3f} | {med[name] / floor:.2f} |")


if __name__ == "__main__":
  app.run(main)
