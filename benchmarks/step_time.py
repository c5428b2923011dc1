r"""Per-step cost of tfadv's adversarial training step against the floor and the peers.

The setting of `../shared/bench/anchors.py`: Fashion-MNIST batch 128, the CNN
Conv32-Pool-Conv64-Pool-Dense256-Dense10, L-inf PGD eps = 0.1, step 0.025, 7 iterations,
random start, Adam(1e-3). Every system is timed round-robin in one process (round r: one
step of every system), so the drifts of a shared machine hit all systems alike:

- `floor`: 7 x (forward + input gradient) + 1 clean train step, each in `tf.function`
  (`floor_2x`: the same with the train step on 2 x batch images, the floor of a defense
  whose train step sees the clean and the adversarial batch; `floor_aad`: `floor_2x` plus
  a weight gradient through an inference-mode pass on 2 x batch, AAD's masked pass);
- `cleverhans`: cleverhans' `projected_gradient_descent` + train step in one tf.function;
- `art_madry`: IBM ART's `AdversarialTrainerMadryPGD.fit` on one batch (ART's defaults:
  its PGD crafts in batches of 32);
- `art_trainer`: ART's `AdversarialTrainer(ratio=1.0)` with `ProjectedGradientDescent`
  (batch_size = the batch);
- `nsl`: Neural Structured Learning's `AdversarialRegularization` (loss = clean CE + adv
  CE, PGD-7 with random start), the step `model.fit` runs (`make_train_function` over a
  `tf.data` iterator). NSL 1.4.0 needs legacy tf-keras (`TF_USE_LEGACY_KERAS=1`), so it runs
  in a subprocess that times the floor pieces again with tf-keras: its ratio is to its own
  floor;
- `tfadv_<defense>`: `tfadv.training.trainer.make_train_step` for each defense, fed by
  `tf.data` like a real run. `defense@term:weight[:key=value][;term:weight...]` overrides
  terms as `--terms` does (weight 0 drops a term), e.g. `aad@rectification:0` to see what
  a term costs.

A peer that is not installed or fails is a row saying so. `--model=resnet18` times
tfadv's CIFAR ResNet-18 on a synthetic 32x32x3 batch (default batch 32: a PGD-7 step takes
seconds on a small CPU). `--profile_steps=N` then profiles N steps of the floor pieces and
of each tfadv system (`tf.profiler`) and prints the CPU time per op type.

  pip install -e .[bench]    # ART, NSL, tf-keras (NSL and tf-keras: see README)
  python benchmarks/step_time.py --rounds=20 --defenses=pat,alp,at_alp,trades,aad
  python benchmarks/step_time.py --model=resnet18 --rounds=3 --defenses=pat,at_alp
"""

import collections
import contextlib
import dataclasses
import glob
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import types
from typing import Callable, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.defenses import recipes
from tfadv.losses import registry as terms_lib
from tfadv.models import taps as taps_lib
from tfadv.training import trainer

MODELS = ("anchor_cnn", "resnet18")
PEERS = ("cleverhans", "art_madry", "art_trainer", "nsl")

flags.DEFINE_enum("model", "anchor_cnn", MODELS, "Model the systems train.")
flags.DEFINE_integer("batch", None, "Batch size (default 128 for anchor_cnn, 32 for resnet18).")
flags.DEFINE_integer("rounds", 30, "Timed rounds (one step of every system per round).")
flags.DEFINE_integer("warmup", 3, "Untimed rounds (tracing).")
flags.DEFINE_list("defenses", ["pat", "alp", "at_alp"],
                  "tfadv defenses to time; `defense@term:weight[;term:weight]` overrides terms.")
flags.DEFINE_list("fit_defenses", ["pat", "at_alp"],
                  "Defenses also timed through tfadv.keras.AdversarialModel's fit() step "
                  "(Keras' own train_function, one step per call), beside the trainer's.")
flags.DEFINE_list("peers", None, f"Peers among {', '.join(PEERS)} (default: all of them for "
                  "anchor_cnn, cleverhans for resnet18).")
flags.DEFINE_integer("profile_steps", 0, "Profile this many steps of the floor pieces and of "
                     "each tfadv system after the timing and print CPU ms per op type.")
flags.DEFINE_string("out", None, "Also write the results as JSON here.")
flags.DEFINE_enum("group", "main", ["main", "nsl"], "Internal: `nsl` is the tf-keras subprocess.")
FLAGS = flags.FLAGS

EPS, STEP, ITERS, LR, NUM_BATCHES = 0.1, 0.025, 7, 1e-3, 16


@dataclasses.dataclass
class System:
  """One timed system: `step(x, y)` runs one training step and blocks until it is done."""
  name: str
  note: str = ""
  step: Optional[Callable] = None
  numpy: bool = False  # Takes numpy batches (ART) instead of tensors.
  group: str = "main"
  error: Optional[str] = None
  times: list = dataclasses.field(default_factory=list)

  @property
  def median(self):
    return statistics.median(self.times) if self.times else None


def _failure(exc):
  text = " ".join(str(exc).split())[:160]
  if isinstance(exc, ImportError):
    return f"not installed ({type(exc).__name__}: {text})"
  return f"failed: {type(exc).__name__}: {text}"


def _guarded(name, note, build):
  """A `System` from `build() -> step`, or one carrying the error `build` raised."""
  try:
    step, numpy_inputs = build()
    return System(name, note, step, numpy_inputs)
  except Exception as exc:  # pylint: disable=broad-except
    return System(name, note, error=_failure(exc))


def _ce(y, logits):
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32),
                                                        logits=logits)


def anchor_cnn(k=None):
  """The anchors' CNN, functional with named layers so tfadv can tap it (`k`: Keras module)."""
  if k is None:
    import keras as k  # pylint: disable=g-import-not-at-top
  layers = k.layers
  x = inputs = k.Input((28, 28, 1))
  x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
  x = layers.MaxPooling2D(name="pool1")(x)
  x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
  x = layers.MaxPooling2D(name="pool2")(x)
  x = layers.Flatten()(x)
  x = layers.Dense(256, activation="relu")(x)
  return k.Model(inputs, layers.Dense(10)(x))


def build_model(name):
  """(model, tapped, input shape) of `name` with fresh weights."""
  if name == "anchor_cnn":
    model = anchor_cnn()
    return model, taps_lib.tapped_model(model, ("conv1", "pool1", "conv2", "pool2"),
                                        "conv2"), (28, 28, 1)
  model, tapped = taps_lib.build_tapped(config_lib.ModelConfig(name="resnet18"), (32, 32, 3),
                                        10)
  return model, tapped, (32, 32, 3)


def floor_parts(model, optimizer):
  """(input-gradient step, clean train step), each a tf.function returning a scalar."""

  @tf.function
  def gradx(x, y):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x)
      loss = tf.reduce_sum(_ce(y, model(x, training=False)))
    return tf.reduce_sum(tape.gradient(loss, x))  # A scalar keeps the input gradient alive.

  @tf.function
  def train(x, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(_ce(y, model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  @tf.function
  def weight_grads(x, y):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(_ce(y, model(x, training=False)))
    return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, model.trainable_variables)])

  return gradx, train, weight_grads


def _blocking(fn):
  return lambda x, y: fn(x, y).numpy()


def floor_systems(make_model, optimizer_cls, group="main", suffix=""):
  """The floor pieces: input gradient, train step, the train step on a doubled batch and
  the weight gradient (no update) of an inference-mode pass on a doubled batch."""
  model = make_model()
  gradx, train, _ = floor_parts(model, optimizer_cls(LR))
  model2 = make_model()
  _, train2, grads2 = floor_parts(model2, optimizer_cls(LR))
  double = lambda fn: lambda x, y: fn(tf.concat([x, x], 0), tf.concat([y, y], 0)).numpy()
  return [System("gradx" + suffix, "forward + gradient w.r.t. the input", _blocking(gradx),
                 group=group),
          System("train" + suffix, "clean train step", _blocking(train), group=group),
          System("train_2x" + suffix, "train step on 2 x batch", double(train2), group=group),
          System("grads_2x" + suffix, "weight gradient on 2 x batch", double(grads2),
                 group=group)]


def cleverhans_system(make_model):
  import keras  # pylint: disable=g-import-not-at-top
  from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent  # pylint: disable=g-import-not-at-top

  def build():
    model, optimizer = make_model(), keras.optimizers.Adam(LR)

    @tf.function
    def step(x, y):
      x_adv = projected_gradient_descent(model, x, EPS, STEP, ITERS, np.inf, clip_min=0.0,
                                         clip_max=1.0, y=y, rand_init=True,
                                         sanity_checks=False)
      x_adv = tf.stop_gradient(x_adv)
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(_ce(y, model(x_adv, training=True)))
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
      return loss

    return _blocking(step), False

  return _guarded("cleverhans", "cleverhans 4.0.0 PGD + train step in one tf.function", build)


def art_system(kind, make_model, input_shape, batch):
  """ART's `AdversarialTrainerMadryPGD` (`madry`) or `AdversarialTrainer` + PGD (`trainer`)."""

  def build():
    import art  # pylint: disable=g-import-not-at-top
    from art.attacks.evasion import ProjectedGradientDescent  # pylint: disable=g-import-not-at-top
    from art.defences.trainer import AdversarialTrainer, AdversarialTrainerMadryPGD  # pylint: disable=g-import-not-at-top
    from art.estimators.classification import TensorFlowV2Classifier  # pylint: disable=g-import-not-at-top
    import keras  # pylint: disable=g-import-not-at-top

    model, optimizer = make_model(), keras.optimizers.Adam(LR)
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(net, images, labels):
      with tf.GradientTape() as tape:
        loss = loss_object(labels, net(images, training=True))
      grads = tape.gradient(loss, net.trainable_variables)
      optimizer.apply_gradients(zip(grads, net.trainable_variables))

    classifier = TensorFlowV2Classifier(model=model, nb_classes=10, input_shape=input_shape,
                                        loss_object=loss_object, optimizer=optimizer,
                                        train_step=train_step, clip_values=(0.0, 1.0))
    if kind == "madry":
      defence = AdversarialTrainerMadryPGD(classifier, nb_epochs=1, batch_size=batch, eps=EPS,
                                           eps_step=STEP, max_iter=ITERS, num_random_init=1)
    else:
      attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=EPS, eps_step=STEP,
                                        max_iter=ITERS, num_random_init=1, batch_size=batch,
                                        verbose=False)
      defence = AdversarialTrainer(classifier, attack, ratio=1.0)
    del art
    logging.getLogger("art").setLevel(logging.WARNING)

    def step(x, y):
      with contextlib.redirect_stderr(io.StringIO()):  # tqdm bars of fit
        defence.fit(x, y, batch_size=batch, nb_epochs=1)

    return step, True

  if kind == "madry":
    return _guarded("art_madry", "ART 1.20.1 AdversarialTrainerMadryPGD.fit (its PGD in "
                    "batches of 32, ART's default)", build)
  return _guarded("art_trainer", "ART 1.20.1 AdversarialTrainer(ratio=1) + "
                  "ProjectedGradientDescent(batch_size=batch)", build)


def parse_defense(spec):
  """`defense@term:weight[:k=v][;term:weight...]` -> (defense, TermConfigs)."""
  name, _, overrides = spec.partition("@")
  terms = terms_lib.parse_terms(overrides.replace(";", ",")) if overrides else ()
  return name, tuple(config_lib.TermConfig(t, w, tuple(o.items())) for t, w, o in terms)


def tfadv_system(spec, model_name, train_images, batch):
  def build():
    import keras  # pylint: disable=g-import-not-at-top
    name, terms = parse_defense(spec)
    model, tapped, _ = build_model(model_name)
    attack = config_lib.AttackConfig(name="pgd", eps=EPS, step_size=STEP, steps=ITERS)
    recipe = recipes.build(config_lib.DefenseConfig(name=name, attack=attack, terms=terms))
    step = trainer.make_train_step(model, tapped, recipe, keras.optimizers.Adam(LR),
                                   tf.distribute.get_strategy(), batch)
    iterator = iter(trainer.input_pipeline(train_images, batch, 10_000, seed=0))
    terms = " + ".join(f"{t.weight:g} {t.name}" for t in recipe.terms)
    system.note = f"tfadv train step: {terms}"
    return (lambda x, y: step(iterator)["loss"].numpy()), False

  system = System(f"tfadv_{spec}")
  built = _guarded(system.name, "", build)
  system.step, system.error = built.step, built.error
  return system


def fit_system(spec, model_name, train_images, batch):
  """The same defense through Keras: `AdversarialModel.fit`'s train_function, one step."""
  def build():
    import keras  # pylint: disable=g-import-not-at-top
    from tfadv import keras as tfadv_keras  # pylint: disable=g-import-not-at-top
    name, terms = parse_defense(spec)
    model, tapped, _ = build_model(model_name)
    tap_names, gradcam = taps_lib.layer_names(tapped)  # the trainer row's layers
    attack = config_lib.AttackConfig(name="pgd", eps=EPS, step_size=STEP, steps=ITERS)
    adv = tfadv_keras.AdversarialModel(model, defense_config=config_lib.DefenseConfig(
        name=name, attack=attack, terms=terms), taps=tap_names, gradcam_layer=gradcam)
    adv.compile(optimizer=keras.optimizers.Adam(LR))
    adv.make_train_function()
    train_function = adv.train_function
    iterator = iter(trainer.input_pipeline(train_images, batch, 10_000, seed=0))
    system.note = f"tfadv.keras.AdversarialModel fit() step ({name})"
    return (lambda x, y: float(train_function(iterator)["loss"])), False

  system = System(f"fit_{spec}")
  built = _guarded(system.name, "", build)
  system.step, system.error = built.step, built.error
  return system


def run_round_robin(systems, batches, warmup, rounds):
  """Warm-up (tracing; a failure marks the system), then `rounds` rounds of one step each."""
  as_numpy = [(x.numpy(), y.numpy()) for x, y in batches]
  live = []
  for s in systems:
    if s.error:
      continue
    try:
      for i in range(warmup):
        s.step(*(as_numpy if s.numpy else batches)[i % len(batches)])
      live.append(s)
    except Exception as exc:  # pylint: disable=broad-except
      s.error = _failure(exc)
      print(f"# {s.name}: {s.error}\n" + traceback.format_exc(limit=-3), file=sys.stderr)
  start = time.time()
  for r in range(rounds):
    for s in live:
      x, y = (as_numpy if s.numpy else batches)[(warmup + r) % len(batches)]
      begin = time.perf_counter()
      s.step(x, y)
      s.times.append(time.perf_counter() - begin)
    print(f"# round {r + 1}/{rounds}, {time.time() - start:.0f} s", file=sys.stderr,
          flush=True)
  return systems


def profile_ops(step, batch, steps):
  """CPU ms per op type of `steps` calls of `step(*batch)`, summed over threads, per step."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  logdir = tempfile.mkdtemp(prefix="step_time_profile_")
  tf.profiler.experimental.start(logdir)
  for _ in range(steps):
    step(*batch)
  tf.profiler.experimental.stop()
  space = xplane_pb2.XSpace()
  with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
    space.ParseFromString(f.read())
  ms = collections.Counter()
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" in name and not name.startswith("ExecutorState"):
          ms[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9 / steps
  return ms


# ------------------------------------------------------------------ NSL (tf-keras process)
def _import_nsl():
  """NSL 1.4.0's package imports `nsl.estimator`, which needs `tf.estimator` (gone since
  TF 2.16); `nsl.keras` does not use it, so an empty stand-in module lets it import."""
  try:
    import neural_structured_learning as nsl  # pylint: disable=g-import-not-at-top
  except ImportError as exc:
    if "estimator" not in str(exc):
      raise
    sys.modules["neural_structured_learning.estimator"] = types.ModuleType(
        "neural_structured_learning.estimator")
    import neural_structured_learning as nsl  # pylint: disable=g-import-not-at-top
  return nsl


def nsl_group(batches, batch):
  """The floor pieces in tf-keras and NSL's `AdversarialRegularization` fit step."""
  k = tf.keras
  if "tf_keras" not in type(k.layers.Dense(1)).__module__:
    raise RuntimeError("tf.keras is not tf-keras: set TF_USE_LEGACY_KERAS=1")
  systems = floor_systems(lambda: anchor_cnn(k), k.optimizers.Adam, "nsl", "[tf_keras]")

  def build():
    nsl = _import_nsl()
    adv_config = nsl.configs.make_adv_reg_config(
        multiplier=1.0, adv_step_size=STEP, adv_grad_norm="infinity", pgd_iterations=ITERS,
        pgd_epsilon=EPS, clip_value_min=0.0, clip_value_max=1.0, random_init=True)
    inputs = k.Input((28, 28, 1), name="image")
    base = k.Model(inputs, anchor_cnn(k)(inputs))
    model = nsl.keras.AdversarialRegularization(base, label_keys=["label"],
                                                adv_config=adv_config)
    model.compile(optimizer=k.optimizers.Adam(LR),
                  loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    # drop_remainder: NSL's random start needs a static batch dimension.
    iterator = iter(tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
                    .batch(batch, drop_remainder=True).repeat())
    train_function = model.make_train_function()
    return (lambda x, y: float(train_function(iterator)["loss"])), False

  nsl_system = _guarded("nsl", "NSL 1.4.0 AdversarialRegularization (clean CE + adv CE), "
                        "the model.fit step; tf-keras 2.21", build)
  nsl_system.group = "nsl"
  return systems + [nsl_system]


def run_nsl_subprocess(batch):
  """Runs the `nsl` group in a TF_USE_LEGACY_KERAS=1 process; its systems as `System`s."""
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
  argv = [sys.executable, os.path.abspath(__file__), "--group=nsl", f"--batch={batch}",
          f"--rounds={FLAGS.rounds}", f"--warmup={FLAGS.warmup}"]
  done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
  sys.stderr.write("".join(line + "\n" for line in done.stderr.splitlines()
                           if line.startswith("# ")))
  systems = []
  for line in done.stdout.splitlines():
    if line.startswith("RESULT "):
      record = json.loads(line[len("RESULT "):])
      systems.append(System(record["name"], record["note"], group="nsl",
                            error=record["error"], times=record["times"]))
  if not any(s.name == "nsl" for s in systems):
    tail = " ".join(done.stderr.strip().splitlines()[-1:])[:160]
    systems.append(System("nsl", "NSL 1.4.0 AdversarialRegularization", group="nsl",
                          error=f"failed: subprocess exited {done.returncode}: {tail}"))
  return systems


# ------------------------------------------------------------------ report
def floor_of(by_name, suffix="", train="train"):
  try:
    return ITERS * by_name["gradx" + suffix].median + by_name[train + suffix].median
  except (KeyError, TypeError):
    return None


def report(systems, batch):
  by_name = {s.name: s for s in systems}
  floors = {"main": floor_of(by_name), "nsl": floor_of(by_name, "[tf_keras]")}
  lines = [f"PGD-{ITERS} adversarial step, {FLAGS.model}, batch {batch}, medians of "
           f"{FLAGS.rounds} rounds",
           "| system | s/step | x floor | what |", "|---|---|---|---|"]

  def row(name, seconds, floor, note):
    ratio = f"{seconds / floor:.2f}" if floor else "-"
    lines.append(f"| {name} | {seconds:.3f} | {ratio} | {note} |")

  for group, suffix in (("main", ""), ("nsl", "[tf_keras]")):
    floor = floors[group]
    if floor is not None:
      row(f"floor{suffix}", floor, floor, f"{ITERS} x gradx + train")
      double = floor_of(by_name, suffix, "train_2x")
      row(f"floor_2x{suffix}", double, floor, f"{ITERS} x gradx + train on 2 x batch")
      if group == "main" and "grads_2x" in by_name and by_name["grads_2x"].median:
        row("floor_aad", double + by_name["grads_2x"].median, floor,
            "floor_2x + a weight gradient on 2 x batch (AAD's masked pass)")
    for s in systems:
      if s.group != group or s.name.startswith(("gradx", "train", "grads")):
        continue
      if s.error or floor is None:
        lines.append(f"| {s.name} | - | - | {s.error or 'failed: no floor'} |")
      else:
        row(s.name, s.median, floor, s.note)
  ours = [s for s in systems if s.name.startswith("tfadv_") and not s.error]
  peers = [s for s in systems if s.name in PEERS and not s.error and floors[s.group]]
  if ours and peers:
    lines += ["", "tfadv / peer (ratio of the x-floor figures, each to its own process's "
              "floor)", "| tfadv | " + " | ".join(p.name for p in peers) + " |",
              "|---|" + "---|" * len(peers)]
    for s in ours:
      cells = [f"{(s.median / floors['main']) / (p.median / floors[p.group]):.2f}"
               for p in peers]
      lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
  print("\n".join(lines))


def print_profile(systems, batches, steps):
  """CPU time per op type of each system; for the tfadv defenses also what they add to pat."""
  print(f"\nCPU ms per step by op type (tf.profiler, {steps} steps, summed over threads)")
  profiles = {}
  for s in systems:
    if s.error or s.numpy or s.group != "main" or s.name in PEERS:
      continue
    ms = profiles[s.name] = profile_ops(s.step, batches[0], steps)
    top = ", ".join(f"{op} {v:.1f}" for op, v in ms.most_common(12))
    print(f"- {s.name}: total {sum(ms.values()):.1f}; {top}")
  base = profiles.get("tfadv_pat")
  if base is None:
    return
  print("\nWhat each defense adds to tfadv_pat (CPU ms per step, largest differences)")
  for name, ms in profiles.items():
    if not name.startswith("tfadv_") or name == "tfadv_pat":
      continue
    diff = collections.Counter({op: ms[op] - base[op] for op in set(ms) | set(base)})
    top = ", ".join(f"{op} {v:+.1f}" for op, v in diff.most_common(10) if v > 0.5)
    print(f"- {name}: {sum(diff.values()):+.1f}; {top}")


def main(argv):
  del argv
  batch = FLAGS.batch or (128 if FLAGS.model == "anchor_cnn" else 32)
  if FLAGS.group == "nsl":
    data = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
    batches = list(data.train.batch(batch).take(NUM_BATCHES))
    for s in run_round_robin(nsl_group(batches, batch), batches, FLAGS.warmup, FLAGS.rounds):
      print("RESULT " + json.dumps({"name": s.name, "note": s.note, "error": s.error,
                                    "times": s.times}), flush=True)
    return
  import keras  # pylint: disable=g-import-not-at-top
  peers = FLAGS.peers if FLAGS.peers is not None else (
      list(PEERS) if FLAGS.model == "anchor_cnn" else ["cleverhans"])
  unknown = set(peers) - set(PEERS)
  if unknown:
    raise app.UsageError(f"--peers: expected names among {', '.join(PEERS)}; received "
                         f"{sorted(unknown)}")
  if FLAGS.model == "anchor_cnn":
    data = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
    train_images = data.train
  else:  # Synthetic CIFAR-sized images: the cost does not depend on the pixels.
    n = NUM_BATCHES * batch
    images = tf.random.stateless_uniform((n, 32, 32, 3), seed=[0, 1])
    labels = tf.random.stateless_uniform((n,), seed=[0, 2], maxval=10, dtype=tf.int32)
    train_images = tf.data.Dataset.from_tensor_slices((images, labels))
  batches = list(train_images.batch(batch).take(NUM_BATCHES))
  make_model = lambda: build_model(FLAGS.model)[0]
  input_shape = {"anchor_cnn": (28, 28, 1), "resnet18": (32, 32, 3)}[FLAGS.model]

  systems = floor_systems(make_model, keras.optimizers.Adam)
  if "cleverhans" in peers:
    systems.append(cleverhans_system(make_model))
  for kind in ("madry", "trainer"):
    if f"art_{kind}" in peers:
      systems.append(art_system(kind, make_model, input_shape, batch))
  systems += [tfadv_system(spec, FLAGS.model, train_images, batch) for spec in FLAGS.defenses]
  systems += [fit_system(spec, FLAGS.model, train_images, batch) for spec in FLAGS.fit_defenses]
  run_round_robin(systems, batches, FLAGS.warmup, FLAGS.rounds)
  if "nsl" in peers:
    if FLAGS.model == "anchor_cnn":
      systems += run_nsl_subprocess(batch)
    else:
      systems.append(System("nsl", group="nsl", error="not run: the NSL group has the "
                            "anchor CNN only"))
  report(systems, batch)
  if FLAGS.profile_steps:
    print_profile(systems, batches, FLAGS.profile_steps)
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump([dataclasses.asdict(dataclasses.replace(s, step=None)) for s in systems], f,
                indent=1)


if __name__ == "__main__":
  app.run(main)
