r"""tfadv-study: the papers' comparison, defenses x attacks x threat models, in one command.

  tfadv-study --study=studies/fashion_mnist.json --output_dir=runs/study_fmnist

Trains what is missing (each defense, its gray-box copy with another seed, its black-box
surrogate), evaluates every model under every threat model, analyses attention, and writes
study.json, study.md and the figures into --output_dir. Run the same command again after a
crash: finished cells are kept, a half-finished one resumes from its checkpoint or partial
report. Several machines sharing --output_dir: --shard=0/2 on one, --shard=1/2 on the
other; the last to finish merges (or run with --merge afterwards).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainers import console  # pylint: disable=unused-import  # First: quiet TF import.

from absl import flags  # pylint: disable=g-import-not-at-top

from trainers import common_flags

FLAGS = flags.FLAGS


def define_flags():
  common_flags.flag_group("Study")
  flags.DEFINE_string("study", None, "A study file (JSON; see studies/ and "
                      "tfadv/study/spec.py for its schema).")
  flags.DEFINE_string("output_dir", None, "The study directory (shared by all shards).")
  flags.DEFINE_string("shard", "0/1", "i/n: compute the defense groups with index i mod n.")
  flags.DEFINE_bool("merge", False, "Only merge the finished cells into study.json / "
                    "study.md / figures (every cell must be finished).")
  flags.DEFINE_bool("list", False, "List the study's cells and whether each is finished.")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if not FLAGS.study:
    raise ValueError("Invalid study: expected a study file (--study=studies/NAME.json); "
                     "received none")
  if not FLAGS.output_dir:
    raise ValueError("Invalid output_dir: expected the study directory (--output_dir); "
                     "received none")
  if os.path.exists(FLAGS.output_dir) and not os.path.isdir(FLAGS.output_dir):
    raise NotADirectoryError(f"Invalid output_dir: expected a directory; "
                             f"{FLAGS.output_dir!r} is a file")
  from tfadv.study import cells  # pylint: disable=g-import-not-at-top
  from tfadv.study import runner  # pylint: disable=g-import-not-at-top
  from tfadv.study import spec  # pylint: disable=g-import-not-at-top
  from tfadv.study import summary  # pylint: disable=g-import-not-at-top
  study = spec.load(FLAGS.study)
  shard = cells.parse_shard(FLAGS.shard)
  if FLAGS.list or FLAGS.merge:
    planned = runner.plan(study)
    store = cells.Store(FLAGS.output_dir)
    records = {c.id: store.get(c) for c in planned}
    if FLAGS.list:
      for cell in planned:
        print(f"{cell.id}: {'finished' if records[cell.id] else 'missing'} ({cell.slug})")
      return
    missing = [i for i, r in records.items() if r is None]
    if missing:
      raise ValueError(f"Invalid merge: {len(missing)} cells are not finished yet (e.g. "
                       f"{missing[0]}); run the shards first")
    paths = summary.write(study, planned, records, FLAGS.output_dir)
    print(f"Study written: {paths['json']}, {paths['markdown']}")
    return
  runner.run(study, FLAGS.output_dir, shard)


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
