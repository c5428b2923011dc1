r"""tfadv-export: export a trained model directory as a versioned SavedModel (with model card).

  tfadv-export --model_dir=/tmp/fmnist_at_alp --export_dir=/tmp/models \
      --model_name=fmnist_at_alp --model_config_file=/tmp/models/models.config

  # A model trained elsewhere (.keras/.h5 or SavedModel), with tfadv's signatures and card:
  tfadv-export --model=my_model.keras --export_dir=/tmp/models --model_name=my_model \
      --dataset=fashion_mnist --report=/tmp/my_model_report/report.json

Writes <export_dir>/<model_name>/<next version>/ (or --version), ready for TensorFlow
Serving's --model_base_path=<export_dir>/<model_name>, and with --model_config_file adds or
updates the model's entry in that models.config (see serving/README.md).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainers import console  # pylint: disable=unused-import  # First: quiet TF import.

from absl import flags  # pylint: disable=g-import-not-at-top

from trainers import common_flags

FLAGS = flags.FLAGS


def define_export_flags(with_export_dir=True):
  """Flags shared by tfadv-export and tfadv-train (which defines its own --export_dir)."""
  if with_export_dir:
    flags.DEFINE_string("export_dir", None,
                        "Export base: versions go to <export_dir>/<model_name>/<version>.")
  flags.DEFINE_string("model_name", None,
                      "Served model name (default: <dataset>_<defense>, e.g. digits_at_alp).")
  flags.DEFINE_string("model_config_file", None,
                      "Add or update the model's entry in this TF Serving models.config.")
  flags.DEFINE_string("serving_base_path", None,
                      "base_path written to --model_config_file (default: the absolute "
                      "<export_dir>/<model_name>; in Docker e.g. /models/<model_name>).")
  flags.DEFINE_string("version_policy", "latest",
                      "Version policy of the models.config entry: latest[:N], all or "
                      "specific:V1,V2.")
  flags.DEFINE_bool("accept_uint8", False,
                    "Add the predict_uint8 signature: uint8 pixels 0..255, converted to "
                    "[0, 1] inside the graph (the float signatures refuse 0..255).")


def define_flags():
  common_flags.flag_group("Run")
  flags.DEFINE_string("model_dir", None, "A directory written by tfadv-train (or use --model).")
  common_flags.flag_group("Your own model (instead of --model_dir)")
  common_flags.define_model_flags(default=None, zoo_options=False)
  flags.DEFINE_string("dataset", None, "With --model: adapt the model to this dataset's images "
                      "and class names (default: the model's own input shape, classes 0..K-1).")
  flags.DEFINE_string("data_dir", None, "With --model and --dataset: the dataset's files.")
  flags.DEFINE_list("image_size", None, "With --model and --dataset: resize to HEIGHT,WIDTH.")
  flags.DEFINE_string("report", None, "With --model: a report.json of tfadv-evaluate --model "
                      "whose figures go into the model card.")
  common_flags.flag_group("Export")
  flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
  define_export_flags()


def export_from_flags(model, run_config, report, version=None, tapped=None):
  """Exports `model` as the flags say; returns the version path (printed by the CLIs).

  `tapped` (the run's tapped model) names the layers of the `explain` signature, whatever
  wrapper the defense put around the zoo model.
  """
  from serving import export as export_lib  # pylint: disable=g-import-not-at-top
  from serving import server_config  # pylint: disable=g-import-not-at-top
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  from tfadv.models import zoo  # pylint: disable=g-import-not-at-top
  name = FLAGS.model_name or export_lib.default_model_name(
      run_config.get("dataset", {}).get("name", "model"),
      run_config.get("defense", {}).get("name", "none"))
  export_lib.check_model_name(name)
  if FLAGS.model_config_file:  # Fail before exporting on a bad policy or config file.
    server_config.parse_version_policy(FLAGS.version_policy)
    server_config.read(FLAGS.model_config_file)
  architecture = run_config.get("model", {}).get("name")
  tap_names = gradcam_name = None
  if tapped is not None:
    from tfadv.models import taps  # pylint: disable=g-import-not-at-top
    tap_names, gradcam_name = taps.layer_names(tapped)
  elif architecture in zoo.MODEL_NAMES:
    tap_names = zoo.tap_layer_names(architecture)
    gradcam_name = zoo.gradcam_layer_name(architecture)
  path = export_lib.export(model, FLAGS.export_dir, name, version,
                           metadata=workflow.export_metadata(run_config, report),
                           tap_names=tap_names, gradcam_name=gradcam_name, report=report,
                           accept_uint8=FLAGS.accept_uint8)
  print(f"Exported SavedModel: {path} (model card: "
        f"{os.path.join(path, 'assets.extra', 'model_card.md')})")
  if FLAGS.model_config_file:
    base_path = FLAGS.serving_base_path or os.path.abspath(os.path.join(FLAGS.export_dir, name))
    server_config.update_model_config(FLAGS.model_config_file, name, base_path,
                                      FLAGS.version_policy)
    print(f"Model config: {FLAGS.model_config_file} ({name} -> {base_path})")
  return path


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if FLAGS.model_dir and FLAGS.model:
    raise ValueError("Invalid model_dir: expected either --model_dir (a tfadv-train run) or "
                     "--model (a model file); received both")
  for name in (("export_dir",) if FLAGS.model else ("model_dir", "export_dir")):
    if not getattr(FLAGS, name):
      raise ValueError(f"Invalid {name}: expected a directory path (--{name}); received none")
  if os.path.exists(FLAGS.export_dir) and not os.path.isdir(FLAGS.export_dir):
    raise NotADirectoryError(f"Invalid export_dir: expected a directory; "
                             f"{FLAGS.export_dir!r} is a file")
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  from tfadv.evaluation import report as report_lib  # pylint: disable=g-import-not-at-top
  if FLAGS.model:
    _export_model_file(workflow, report_lib)
    return
  loaded = workflow.load_trained(FLAGS.model_dir)
  report = None
  report_path = os.path.join(FLAGS.model_dir, "report.json")
  if os.path.exists(report_path):
    report = report_lib.read(report_path)  # Names the file when it is corrupt.
  export_from_flags(loaded.model, loaded.run_config, report, FLAGS.version, loaded.tapped)


def _export_model_file(workflow, report_lib):
  """tfadv-export --model=PATH: a user's classifier with tfadv's signatures and card."""
  from tfadv import config as config_lib  # pylint: disable=g-import-not-at-top
  from tfadv.data import datasets  # pylint: disable=g-import-not-at-top
  from tfadv.models import sources  # pylint: disable=g-import-not-at-top
  model_config = common_flags.model_config_from_flags()
  if model_config.path is None:
    raise ValueError(f"Invalid model: expected a model file or SavedModel directory; zoo "
                     f"models are exported from their --model_dir; received {FLAGS.model!r}")
  if FLAGS.dataset:
    data = datasets.load(config_lib.DataConfig(
        name=FLAGS.dataset, data_dir=FLAGS.data_dir,
        image_size=common_flags.image_size_from_flags()))
    shape, classes, class_names = data.image_shape, data.num_classes, list(data.class_names)
    dataset = {"name": data.name, "num_classes": classes, "image_shape": list(shape),
               "class_names": class_names}
  else:
    loaded = sources.load(model_config.path, model_config.safe_mode).model
    try:
      shape = tuple(int(d) for d in loaded.inputs[0].shape[1:])
      classes = int(loaded.outputs[0].shape[-1])
    except (TypeError, AttributeError, IndexError):
      raise ValueError(f"Invalid model: the input shape of {model_config.path!r} is not fully "
                       "known; pass --dataset (and --image_size) to fix it") from None
    dataset = {"name": "unknown", "num_classes": classes, "image_shape": list(shape)}
  built = sources.build(model_config, shape, classes)
  report = report_lib.read(FLAGS.report) if FLAGS.report else None
  run_config = {"dataset": dataset, "model": {"name": model_config.name,
                                              "source": os.path.abspath(model_config.path),
                                              **sources.describe(built)},
                "defense": {"name": "unknown"}}
  from tfadv.models import taps as taps_lib  # pylint: disable=g-import-not-at-top
  tapped = (taps_lib.tapped_model(built.model, built.tap_names, built.gradcam_name)
            if built.gradcam_name else None)
  export_from_flags(built.model, run_config, report, FLAGS.version, tapped)


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
