r"""tfadv-export: export a trained model directory as a versioned SavedModel.

  tfadv-export --model_dir=/tmp/fmnist_at_alp --export_dir=/tmp/models/fmnist

Writes <export_dir>/<next version>/ (or --version), ready for TensorFlow Serving's
--model_base_path=<export_dir>.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top

from trainers import common_flags

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "A directory written by tfadv-train.")
  flags.DEFINE_string("export_dir", None, "The model's base path (versions go below it).")
  flags.DEFINE_integer("version", None, "Version number (default: the next free one).")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  for name in ("model_dir", "export_dir"):
    if not getattr(FLAGS, name):
      raise ValueError(f"Invalid {name}: expected a directory path (--{name}); received none")
  from serving import export as export_lib  # pylint: disable=g-import-not-at-top
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  loaded = workflow.load_trained(FLAGS.model_dir)
  report = None
  report_path = os.path.join(FLAGS.model_dir, "report.json")
  if os.path.exists(report_path):
    with open(report_path) as f:
      report = json.load(f)
  path = export_lib.export(loaded.model, FLAGS.export_dir, FLAGS.version,
                           metadata=workflow.export_metadata(loaded.run_config, report))
  print(f"Exported SavedModel: {path}")


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
