r"""Wall time and accuracy of a robustness evaluation per attack, tfadv against its peers.

One model, one set of test images, one eps; attack by attack (FGSM, PGD-20, APGD-CE, APGD-T,
FAB-T, Square, AutoAttack, RayS-2000, A3) each system below runs it in turn, and the table
gives each one's wall time and robust accuracy:

- `tfadv`: `tfadv.evaluation.robustness.evaluate` on that attack alone (the driver
  `tfadv-evaluate` runs: clean pass, one traced function per attack, batches of
  `--batch_size`), tracing included;
- `baseline`: the same with the `tfadv` package of another git revision (`--baseline=REV`,
  e.g. the commit before issue 22's active-set attacks), in a subprocess per attack that
  imports `git archive REV tfadv` (the clock starts after loading);
- `art`: IBM ART 1.20.1 on a `TensorFlowV2Classifier` of the same Keras model, where ART
  has the attack: `FastGradientMethod`, `ProjectedGradientDescent` (same step and random
  start), `AutoProjectedGradientDescent` (CE), `SquareAttack` (5000 queries, 1 restart) and
  `AutoAttack` with APGD-CE, APGD-DLR and Square-5000 (ART has no FAB-T; its default
  AutoAttack also runs DeepFool and 5 restarts). ART counts an example robust when the
  model predicts its label on ART's output, clean-misclassified or not.

Accuracies count an example robust when the model predicts its true label on the clean
image and on the attack's output (tfadv; AutoAttack's convention). The model is a tfadv run
directory (`--model_dir`), or a small_cnn `pat` model trained first through the project's
own trainer (`--train_steps` steps on Fashion-MNIST into `--work_dir`).

`--profile=ATTACK` then runs tfadv's evaluation of that attack under `tf.profiler` and
prints the CPU ms per op type (summed over threads), as `step_time.py --profile_steps`
does for training.

  pip install -e .[bench]                               # ART
  python benchmarks/eval_time.py --work_dir=/tmp/eval_time --num_examples=200 --eps=0.1 \
      --baseline=8536d6e
  python benchmarks/eval_time.py --model_dir=runs/pat --attacks=rays2000 --profile=rays2000
"""

import collections
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tfadv under test: this checkout, or the baseline tree a parent process extracted.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("EVAL_TIME_TFADV", _ROOT))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from tfadv import workflow
from tfadv.data import datasets
from tfadv.evaluation import robustness
from tfadv.evaluation import specs

# Benchmark name -> tfadv `--attacks` spec.
ATTACKS = collections.OrderedDict([
    ("fgsm", "fgsm"),
    ("pgd20", "pgd:steps=20"),
    ("apgd_ce", "apgd_ce"),
    ("apgd_t", "apgd_t"),
    ("fab_t", "fab_t"),
    ("square", "square"),
    ("autoattack", "autoattack"),
    ("rays2000", "rays:queries=2000"),
    ("a3", "a3"),
])
SYSTEMS = ("tfadv", "baseline", "art")

flags.DEFINE_string("model_dir", None, "A tfadv run directory (default: train one).")
flags.DEFINE_string("work_dir", None, "Where the trained model goes when --model_dir is unset "
                    "(reused when it already holds one).")
flags.DEFINE_integer("train_steps", 400, "Steps of the small_cnn `pat` model trained when "
                     "--model_dir is unset.")
flags.DEFINE_integer("num_examples", 200, "Test images (the first ones of the test split).")
flags.DEFINE_float("eps", 0.1, "L-inf radius (pixel units of [0, 1]).")
flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")
flags.DEFINE_list("attacks", list(ATTACKS), f"Attacks among {', '.join(ATTACKS)}.")
flags.DEFINE_list("systems", ["tfadv", "baseline", "art"], f"Systems among {SYSTEMS}.")
flags.DEFINE_string("baseline", None, "Git revision whose tfadv package is the `baseline` "
                    "system (skipped when unset).")
flags.DEFINE_string("profile", None, "Profile tfadv's evaluation of this attack afterwards.")
flags.DEFINE_string("json", None, "Also write the rows to this JSON file.")

FLAGS = flags.FLAGS


def model_dir():
  """`--model_dir`, or a small_cnn `pat` run trained by the project's trainer."""
  if FLAGS.model_dir:
    return FLAGS.model_dir
  work = FLAGS.work_dir or tempfile.mkdtemp(prefix="eval_time_")
  run = os.path.join(work, "pat")
  if not os.path.exists(os.path.join(run, "run_config.json")):
    print(f"# training small_cnn pat ({FLAGS.train_steps} steps) into {run}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "trainers.train", "--dataset=fashion_mnist",
                    "--model=small_cnn", "--defense=pat", "--eps=0.1",
                    f"--train_steps={FLAGS.train_steps}", f"--model_dir={run}",
                    "--attacks=fgsm", "--num_examples=100", "--noprogress"],
                   cwd=_ROOT, check=True, stdout=subprocess.DEVNULL)
  return run


def load(run):
  loaded = workflow.load_trained(run)
  test = datasets.load(loaded.data_config).test.take(FLAGS.num_examples)
  return loaded.model, test


def tfadv_rows(model, test, names):
  rows = {}
  for name in names:
    config = specs.parse_attacks(ATTACKS[name], [FLAGS.eps])
    start = time.perf_counter()
    result = robustness.evaluate(model, test, config, batch_size=FLAGS.batch_size)
    seconds = time.perf_counter() - start
    label = robustness.attack_labels(config)[0]
    rows[name] = {"seconds": seconds, "accuracy": result.accuracy(label),
                  "clean": result.clean_accuracy}
    print(f"# tfadv {name}: {seconds:.1f} s, {result.accuracy(label):.2%}", file=sys.stderr,
          flush=True)
  return rows


def baseline_rows(run, names):
  """The same rows with the tfadv package of `--baseline`, in a subprocess."""
  tree = tempfile.mkdtemp(prefix="eval_time_baseline_")
  archive = subprocess.run(["git", "-C", _ROOT, "archive", FLAGS.baseline, "tfadv"],
                           check=True, capture_output=True).stdout
  subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
  out = os.path.join(tree, "rows.json")
  subprocess.run([sys.executable, os.path.abspath(__file__), f"--model_dir={run}",
                  f"--num_examples={FLAGS.num_examples}", f"--eps={FLAGS.eps}",
                  f"--batch_size={FLAGS.batch_size}", f"--attacks={','.join(names)}",
                  "--systems=tfadv", f"--json={out}"],
                 env=dict(os.environ, EVAL_TIME_TFADV=tree), check=True,
                 stdout=subprocess.DEVNULL)
  with open(out) as f:
    return json.load(f)["tfadv"]


def art_attack(name, classifier):
  """ART's counterpart of attack `name`, or None."""
  from art.attacks import evasion  # pylint: disable=g-import-not-at-top
  eps, batch = FLAGS.eps, FLAGS.batch_size
  apgd = lambda loss: evasion.AutoProjectedGradientDescent(
      classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
      batch_size=batch, loss_type=loss, verbose=False)
  square = lambda: evasion.SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=5000,
                                        p_init=0.8, nb_restarts=1, batch_size=batch,
                                        verbose=False)
  table = {
      "fgsm": lambda: evasion.FastGradientMethod(classifier, eps=eps, batch_size=batch),
      "pgd20": lambda: evasion.ProjectedGradientDescent(
          classifier, eps=eps, eps_step=2.5 * eps / 20, max_iter=20, num_random_init=1,
          batch_size=batch, verbose=False),
      "apgd_ce": lambda: apgd("cross_entropy"),
      "square": square,
      "autoattack": lambda: evasion.AutoAttack(
          classifier, norm=np.inf, eps=eps, eps_step=2 * eps, batch_size=batch,
          attacks=[apgd("cross_entropy"), apgd("difference_logits_ratio"), square()]),
  }
  return table[name]() if name in table else None


def art_rows(model, test, names):
  from art.estimators.classification import TensorFlowV2Classifier  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  x, y = next(iter(test.batch(FLAGS.num_examples)))
  x, y = x.numpy(), y.numpy().astype(np.int64)
  classifier = TensorFlowV2Classifier(
      model, nb_classes=int(model.output_shape[-1]), input_shape=x.shape[1:],
      loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      clip_values=(0.0, 1.0))
  rows = {}
  for name in names:
    attack = art_attack(name, classifier)
    if attack is None:
      continue
    start = time.perf_counter()
    x_adv = attack.generate(x, y)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.argmax(classifier.predict(x_adv), -1) == y))
    rows[name] = {"seconds": seconds, "accuracy": accuracy}
    print(f"# art {name}: {seconds:.1f} s, {accuracy:.2%}", file=sys.stderr, flush=True)
  return rows


def profile(model, test, name):
  """CPU ms per op type of tfadv's evaluation of attack `name` (tf.profiler)."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  config = specs.parse_attacks(ATTACKS[name], [FLAGS.eps])
  robustness.evaluate(model, test.take(1), config)  # Load and warm up outside the profile.
  logdir = tempfile.mkdtemp(prefix="eval_time_profile_")
  tf.profiler.experimental.start(logdir)
  robustness.evaluate(model, test, config, batch_size=FLAGS.batch_size)
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
        op = plane.event_metadata[event.metadata_id].name
        if ":" in op and not op.startswith("ExecutorState"):
          ms[op.rsplit(":", 1)[1]] += event.duration_ps / 1e9
  total = sum(ms.values())
  print(f"\nCPU ms by op type, tfadv {name} (tf.profiler, summed over threads): "
        f"{total:.0f} ms")
  for op, value in ms.most_common(15):
    print(f"  {op:32s} {value:10.1f}  {value / max(total, 1e-9):6.1%}")


def print_table(rows, names):
  systems = [s for s in SYSTEMS if s in rows]
  ratios = [s for s in systems if s != "tfadv"]
  head = [f"{s} {unit}" for s in systems for unit in ("s", "acc")]
  head += [f"tfadv ÷ {s}" for s in ratios]
  print("\n| attack | " + " | ".join(head) + " |")
  print("|---" * (1 + len(head)) + "|")
  for name in names:
    cells = []
    for s in systems:
      row = rows[s].get(name)
      cells += ([f"{row['seconds']:.1f}", f"{row['accuracy']:.1%}"] if row else ["-", "-"])
    for s in ratios:
      row, own = rows[s].get(name), rows.get("tfadv", {}).get(name)
      cells.append(f"{own['seconds'] / row['seconds']:.2f}×" if row and own else "-")
    print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.attacks) - set(ATTACKS)) + sorted(set(FLAGS.systems) -
                                                               set(SYSTEMS))
  if unknown:
    raise app.UsageError(f"Invalid --attacks/--systems: expected names from "
                         f"[{', '.join(ATTACKS)}] and [{', '.join(SYSTEMS)}]; received "
                         f"{', '.join(unknown)}")
  run = model_dir()
  model, test = load(run)
  names = list(FLAGS.attacks)
  systems = [s for s in FLAGS.systems if s != "baseline" or FLAGS.baseline]
  rows = {s: {} for s in systems}
  # Attack by attack, every system in turn: a drift of a shared machine hits all alike.
  for name in names:
    for system in systems:
      try:
        if system == "tfadv":
          rows[system].update(tfadv_rows(model, test, [name]))
        elif system == "baseline":
          rows[system].update(baseline_rows(run, [name]))
        elif system == "art":
          rows[system].update(art_rows(model, test, [name]))
      except Exception:  # pylint: disable=broad-except
        print(f"# {system} {name} failed:\n{traceback.format_exc(limit=-3)}",
              file=sys.stderr)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(rows, f, indent=1)
  print(f"\nmodel {run}, {FLAGS.num_examples} test images, eps {FLAGS.eps}, "
        f"batch {FLAGS.batch_size}; clean accuracy "
        f"{next(iter(rows.get('tfadv', {}).values()), {}).get('clean', float('nan')):.1%}")
  print_table(rows, names)
  if FLAGS.profile:
    profile(model, test, FLAGS.profile)


if __name__ == "__main__":
  app.run(main)
