r"""tfadv-client: classify images with a model served by TensorFlow Serving.

  # Image files over REST (sent as {"b64": ...} to the predict_images signature):
  tfadv-client --server=localhost:8501 --model_name=fmnist_at_alp --images=a.png,b.jpg
  # A slice of a dataset over gRPC (float images to serving_default):
  tfadv-client --protocol=grpc --server=localhost:8500 --model_name=fmnist_at_alp \
      --dataset=fashion_mnist --start=0 --count=8
  # Grad-CAM heat maps over the images, saved as PNG:
  tfadv-client --model_name=fmnist_at_alp --images=a.png --explain --output_dir=/tmp/cams
  # The model card: what the served version is and what it is robust to.
  tfadv-client --model_name=fmnist_at_alp --metadata
  tfadv-client --metadata --version_dir=/tmp/models/fmnist_at_alp/1   # from the files

Prints one line per image: predicted class and its name (from the server's `classes`, or
--class_names / the dataset), its probability and the top-k classes. Connection failures,
timeouts and refused requests end with a one-line `Error: ...` and exit status 2.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainers import console  # pylint: disable=unused-import  # First: quiet TF import.

from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np

from serving import client as client_lib
from trainers import common_flags

FLAGS = flags.FLAGS


def define_flags():
  common_flags.flag_group("Server")
  flags.DEFINE_string("server", "localhost:8501",
                      "HOST:PORT of TensorFlow Serving (REST: --rest_api_port, gRPC: --port).")
  flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "API to use.")
  flags.DEFINE_string("model_name", None, "The served model's name.")
  flags.DEFINE_integer("model_version", None, "Version to query (default: the latest).")
  flags.DEFINE_float("timeout", 10.0, "Seconds to wait for the server.")
  flags.DEFINE_enum("format", "row", ["row", "columnar"],
                    "REST request form: row (instances) or columnar (inputs).")
  common_flags.flag_group("Input")
  flags.DEFINE_list("images", [], "Image files (PNG/JPEG/GIF/BMP), or .npy float arrays "
                    "[N, H, W, C] in [0, 1] sent to serving_default as they are.")
  flags.DEFINE_string("dataset", None, "Send a slice of this dataset instead of files.")
  flags.DEFINE_string("data_dir", None, "Data directory of --dataset.")
  flags.DEFINE_enum("split", "test", ["train", "test"], "Split of --dataset.")
  flags.DEFINE_integer("start", 0, "First example of the --dataset slice.")
  flags.DEFINE_integer("count", 8, "Examples in the --dataset slice.")
  flags.DEFINE_list("class_names", None, "Names of the classes, in label order.")
  common_flags.flag_group("Output")
  flags.DEFINE_bool("explain", False, "Use the explain signature and save Grad-CAM PNGs.")
  flags.DEFINE_string("output_dir", ".", "Where --explain writes <image>_gradcam.png.")
  flags.DEFINE_integer("top_k", 3, "Classes listed per image.")
  flags.DEFINE_bool("metadata", False, "Print the model card of the served version (or of "
                    "--version_dir) instead of classifying.")
  flags.DEFINE_enum("metadata_format", "md", ["md", "json"], "Format of --metadata.")
  flags.DEFINE_string("version_dir", None, "With --metadata: read the card from this export "
                      "version directory instead of asking the server.")


def print_metadata():
  if FLAGS.version_dir:
    card = client_lib.read_model_card(FLAGS.version_dir, FLAGS.metadata_format)
  else:
    _require_model_name()
    client = client_lib.make_client(FLAGS.protocol, FLAGS.server, FLAGS.model_name,
                                    FLAGS.model_version, FLAGS.timeout,
                                    FLAGS.format == "columnar")
    card = client_lib.model_card(client, FLAGS.metadata_format)
  print(card if isinstance(card, str) else json.dumps(card, indent=2), end="")
  if not isinstance(card, str):
    print()


def _require_model_name():
  if not FLAGS.model_name:
    raise ValueError("Invalid model_name: expected the served model's name (--model_name); "
                     "received none")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"Unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
  if FLAGS.timeout <= 0:
    raise ValueError(f"Invalid timeout: expected seconds > 0; received {FLAGS.timeout}")
  if FLAGS.metadata:
    print_metadata()
    return
  _require_model_name()
  if bool(FLAGS.images) == bool(FLAGS.dataset):
    raise ValueError("Invalid input: expected either --images or --dataset; received "
                     f"{'both' if FLAGS.images else 'neither'}")
  client = client_lib.make_client(FLAGS.protocol, FLAGS.server, FLAGS.model_name,
                                  FLAGS.model_version, FLAGS.timeout,
                                  FLAGS.format == "columnar")
  class_names, labels = FLAGS.class_names, None
  if FLAGS.dataset:
    images, labels, dataset_names = client_lib.dataset_slice(
        FLAGS.dataset, FLAGS.split, FLAGS.start, FLAGS.count, FLAGS.data_dir)
    class_names = class_names or dataset_names
    names = [f"{FLAGS.dataset}_{FLAGS.split}_{FLAGS.start + i}" for i in range(len(images))]
    shown = images
    outputs = client_lib.classify(client, images=images, explain=FLAGS.explain)
  elif all(p.endswith(".npy") for p in FLAGS.images):  # Float arrays, sent as they are.
    shown = client_lib.read_arrays(FLAGS.images)
    names = [f"array_{i}" for i in range(len(shown))]
    outputs = client_lib.classify(client, images=shown, explain=FLAGS.explain)
  else:
    blobs = client_lib.read_image_files(FLAGS.images)
    names = [os.path.splitext(os.path.basename(p))[0] for p in FLAGS.images]
    if FLAGS.explain:
      shape = client.input_shape(client_lib.EXPLAIN_SIGNATURE)
      shown = [client_lib.decode_image(b, shape, n) for b, n in zip(blobs, names)]
      outputs = client_lib.classify(client, images=np.stack(shown), explain=True)
    else:
      outputs = client_lib.classify(client, image_bytes=blobs)
  probabilities = np.asarray(outputs["probabilities"])
  if not class_names:  # The model's own names, as far as this response shows them.
    class_names = client_lib.response_class_names(outputs, probabilities.shape[-1])
  for i, name in enumerate(names):
    print(client_lib.format_prediction(name, probabilities[i], class_names,
                                       None if labels is None else labels[i], FLAGS.top_k))
  if labels is not None:
    accuracy = float(np.mean(client_lib.class_ids(outputs) == labels))
    print(f"accuracy on the {len(labels)} examples: {accuracy:.3f}")
  if FLAGS.explain:
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for i, name in enumerate(names):
      path = os.path.join(FLAGS.output_dir, f"{name}_gradcam.png")
      client_lib.save_png(path, client_lib.overlay(shown[i], outputs["gradcam"][i]))
      print(f"Grad-CAM: {path}")


def run():
  define_flags()
  common_flags.run_main(main)


if __name__ == "__main__":
  run()
