"""Every bad input a user can give the CLIs, in one table: one line, exit status 2, no traceback.

Each row is (CLI, flags, extra environment, expected text of the one `Error: ...` line). The
rows run through the CLIs' real `main` under `common_flags.run_main` (flag parsing included),
batched: one child process per CLI runs all its rows (a process per row would cost ~10 s each
on a small machine). They share one tiny trained run (digits, small_cnn, 4 steps) and its
export; the client rows query that export through the stand-in TF Serving server, so the
served-request rows (0-255 pixels, NaN, wrong shape, corrupt bytes) check the messages of the
signatures themselves. Nothing already written may change.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from serving import export as export_lib
from serving import warmup as warmup_lib
from tfadv import config as config_lib
from tfadv import workflow
from tfadv.data import datasets
from tfadv.training import trainer
from tests import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
MODEL_NAME = "digits_none"

# (cli, args, env, expected) -- {placeholders} are filled from the fixture's paths.
CASES = [
    # tfadv-train
    ("train", ["--unknown_flag=1"], {}, "Unknown command line flag 'unknown_flag'"),
    ("train", ["--epochs=abc", "--model_dir={tmp}/t1"], {}, "flag --epochs=abc"),
    ("train", ["--dataset=digits", "--model_dir={file}"], {},
     "Invalid model_dir: expected a directory (checkpoints, logs and report go there); "
     "'{file}' is a file"),
    ("train", ["--dataset=digits", "--eps=8", "--model_dir={tmp}/t2"], {}, "Invalid eps"),
    ("train", ["--dataset=digits", "--batch_size=0", "--model_dir={tmp}/t3"], {},
     "Invalid batch_size"),
    ("train", ["--dataset=fashion_mnist", "--data_dir={empty}", "--model_dir={tmp}/t4"], {},
     "Invalid data_dir: expected the Fashion-MNIST idx files in '{empty}' (or a tfds data_dir "
     "with fashion_mnist/); missing train-images-idx3-ubyte.gz"),
    ("train", ["--dataset=fashion_mnist", "--data_dir={file}", "--model_dir={tmp}/t5"], {},
     "Invalid data_dir: expected a directory holding the Fashion-MNIST idx files; '{file}' is "
     "a file"),
    ("train", ["--dataset=folder", "--data_dir={empty}", "--model_dir={tmp}/t6"], {},
     "{empty}"),
    ("train", ["--dataset=folder", "--data_dir={bad_folder}", "--model_dir={tmp}/t7"], {},
     "broken.png"),
    ("train", ["--dataset=digits", "--strategy=multi_worker", "--model_dir={tmp}/t8"],
     {"TF_CONFIG": "{{not json"}, "Invalid TF_CONFIG: expected JSON with cluster.worker"),
    ("train", ["--dataset=digits", "--model=small_cnn", "--width=4", "--defense=at",
               "--model_dir={run}"], {}, "holds a run with another defense config"),
    ("train", ["--dataset=digits", "--model_dir={bad_json_run}"], {},
     "Invalid run config: '{bad_json_run}/run_config.json' is not valid JSON"),
    ("train", ["extra_argument", "--model_dir={tmp}/t9"], {}, "Unexpected arguments"),
    # Users' models (--model=PATH; fixture files below)
    ("train", ["--dataset=digits", "--model={tmp}/nothing.keras", "--model_dir={tmp}/u1"], {},
     "Invalid model: expected one of [small_cnn"),
    ("train", ["--dataset=digits", "--model={not_model}", "--model_dir={tmp}/u2"], {},
     "Invalid model: '{not_model}' is not a loadable Keras model"),
    ("train", ["--dataset=digits", "--model={lambda_model}", "--model_dir={tmp}/u3"], {},
     "holds a Lambda layer or other code that Keras' safe mode refuses to load; if you trust "
     "the file, pass --unsafe_load"),
    ("train", ["--dataset=digits", "--model={dense_model}", "--defense=at_alp",
               "--model_dir={tmp}/u4"], {},
     "Invalid model: defense at_alp needs stage taps (--taps=name,...); no 4-D feature map "
     "was found"),
    ("train", ["--dataset=digits", "--model={conv_model}", "--taps=nope",
               "--model_dir={tmp}/u5"], {}, "Invalid taps: expected layer names of the model"),
    ("evaluate", ["--model={big_model}", "--dataset=digits", "--output_dir={tmp}/e1"], {},
     "Invalid model: '{big_model}' takes 32x32x3 images; the data has 8x8x1 (resize the data "
     "with --image_size=32,32)"),
    ("evaluate", ["--model={two_inputs}", "--dataset=digits", "--output_dir={tmp}/e2"], {},
     "Invalid model: expected one image input; '{two_inputs}' has 2 inputs"),
    ("evaluate", ["--model={two_outputs}", "--dataset=digits", "--output_dir={tmp}/e3"], {},
     "Invalid model: expected one output (the class scores); '{two_outputs}' has 2 outputs"),
    ("evaluate", ["--model={vector_model}", "--dataset=digits", "--output_dir={tmp}/e4"], {},
     "Invalid model: expected an image input [batch, H, W, C]; '{vector_model}' takes inputs "
     "of shape [None, 64]"),
    ("evaluate", ["--model={custom_model}", "--dataset=digits", "--output_dir={tmp}/e5"], {},
     "Invalid model: '{custom_model}' needs a custom object Keras cannot find"),
    ("evaluate", ["--model={conv_model}", "--model_dir={run}"], {}, "received both"),
    # tfadv-evaluate
    ("evaluate", [], {}, "Invalid model_dir: expected a directory written by tfadv-train"),
    ("evaluate", ["--model_dir={tmp}/missing"], {},
     "Invalid model_dir: expected '{tmp}/missing/run_config.json' (written by tfadv-train); "
     "it does not exist"),
    ("evaluate", ["--model_dir={file}"], {},
     "Invalid model_dir: expected a directory written by tfadv-train; '{file}' is a file"),
    ("evaluate", ["--model_dir={empty}"], {}, "'{empty}/run_config.json'"),
    ("evaluate", ["--model_dir={bad_json_run}"], {},
     "Invalid run config: '{bad_json_run}/run_config.json' is not valid JSON"),
    ("evaluate", ["--model_dir={broken_run}", "--attacks=fgsm", "--num_examples=8"], {},
     "Invalid checkpoints: none of the 2 checkpoints in '{broken_run}/checkpoints' restores "
     "(ckpt-4.{{index,data-*}}, ckpt-2.{{index,data-*}})"),
    ("evaluate", ["--model_dir={run}", "--attacks=nope"], {}, "Invalid attack"),
    ("evaluate", ["--model_dir={run}", "--eps=abc"], {}, "Invalid eps"),
    # tfadv-export
    ("export", ["--model_dir={run}"], {}, "Invalid export_dir: expected a directory path"),
    ("export", ["--model_dir={run}", "--export_dir={file}"], {},
     "Invalid export_dir: expected a directory; '{file}' is a file"),
    ("export", ["--model_dir={run}", "--export_dir={models}", "--model_name=" + MODEL_NAME,
                "--version=1"], {},
     "Invalid version: '{models}/" + MODEL_NAME + "/1' already exists and is never "
     "overwritten"),
    ("export", ["--model_dir={run}", "--export_dir={tmp}/m", "--model_name=a/b"], {},
     "Invalid model_name"),
    ("export", ["--model_dir={bad_report_run}", "--export_dir={tmp}/m2"], {},
     "Invalid report: '{bad_report_run}/report.json' is not valid JSON"),
    ("export", ["--model_dir={run}", "--export_dir={tmp}/m3", "--version_policy=sometimes",
                "--model_config_file={tmp}/models.config"], {}, "Invalid version_policy"),
    ("export", ["--model_dir={run}", "--export_dir={tmp}/m4",
                "--model_config_file={bad_config}"], {}, "{bad_config}"),
    # tfadv-analyze
    ("analyze", ["--model_dir={file}"], {}, "'{file}' is a file"),
    ("analyze", ["--model_dir={empty}"], {}, "'{empty}/run_config.json'"),
    # tfadv-client, against the stand-in server holding the run's export
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME, "--images={tmp}/no.png"], {},
     "Invalid images: expected image files; '{tmp}/no.png' is not a file"),
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME, "--images={corrupt_png}"], {},
     "image_bytes[0] (12 bytes): not a PNG, JPEG, GIF or BMP file"),
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME,
                "--images={good_png},{truncated_png}"], {},
     "image_bytes[1] ({truncated_size} bytes): truncated PNG (no IEND chunk at the end)"),
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME, "--images={pixels_255}"], {},
     "images must be float32 in [0, 1]; received max 255.0 \u2014 divide by 255"),
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME, "--images={nan}"], {},
     "images must be float32 in [0, 1]; received 1 NaN or infinite values"),
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME, "--images={wrong_shape}"], {},
     "images must have shape [N, 8, 8, 1] (height, width, channels); received [2, 6, 6, 1]"),
    ("client", ["--server=localhost", "--model_name=m", "--images={good_png}"], {},
     "Invalid server: expected HOST:PORT"),
    ("client", ["--server={rest}", "--model_name=" + MODEL_NAME, "--images={good_png}",
                "--timeout=0"], {}, "Invalid timeout"),
    ("client", ["--metadata", "--version_dir={models}/" + MODEL_NAME + "/latest"], {},
     "Invalid version_dir: expected an integer version directory"),
    ("client", ["--server={rest}", "--model_name=other", "--images={good_png}"], {},
     "HTTP 404"),
]

_DRIVER = r"""
import contextlib, importlib, io, json, os, sys, traceback
cli, cases_path = sys.argv[1], sys.argv[2]
module = importlib.import_module("trainers." + cli)
from absl import flags
from trainers import common_flags
module.define_flags()
with open(cases_path) as f:
  request = json.load(f)
fill = request["paths"]
if cli == "client":
  from tests.serving import model_server
  store = model_server.ModelStore({request["model_name"]: request["base_path"]})
  _, port = model_server.start_rest_server(store)
  fill["rest"] = f"127.0.0.1:{port}"
results = []
for args, env in request["cases"]:
  flags.FLAGS.unparse_flags()
  saved_env = dict(os.environ)
  os.environ.update({k: v.format(**fill) for k, v in env.items()})
  sys.argv = ["tfadv-" + cli] + [a.format(**fill) for a in args]
  out, err, code = io.StringIO(), io.StringIO(), None
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      common_flags.run_main(module.main)
  except SystemExit as e:
    code = e.code
  except BaseException:  # pylint: disable=broad-except
    err.write(traceback.format_exc())
    code = "exception"
  os.environ.clear()
  os.environ.update(saved_env)
  results.append({"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()})
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
  root = tmp_path_factory.mktemp("bad_inputs")
  run = root / "run"
  data_config = config_lib.DataConfig(name="digits")
  data = datasets.load(data_config)
  model_config = config_lib.ModelConfig(name="small_cnn", width=4)
  defense = config_lib.DefenseConfig(
      name="none", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=1))
  result = trainer.train(data, model_config, defense, config_lib.TrainConfig(
      model_dir=str(run), batch_size=32, train_steps=4, checkpoint_every=2, image_every=0,
      progress=False), data_config)
  report = {"dataset": "digits", "model": "small_cnn", "defense": "none", "eps": 0.1,
            "num_examples": 8, "clean_accuracy": 0.5, "attacks": {}}
  (run / "report.json").write_text(json.dumps(report))
  models = root / "models"
  export_lib.export(result.model, str(models), MODEL_NAME,
                    metadata=workflow.export_metadata(trainer.read_run_config(str(run)),
                                                      report), report=report, warmup=False)
  (models / MODEL_NAME / "latest").mkdir()  # Not an integer: never a version.
  p = {"tmp": str(root), "run": str(run), "models": str(models)}
  (root / "a_file").write_text("not a directory")
  p["file"] = str(root / "a_file")
  (root / "empty").mkdir()
  p["empty"] = str(root / "empty")
  for name, damage in (("bad_json_run", "run_config"), ("bad_report_run", "report"),
                       ("broken_run", "checkpoints")):
    shutil.copytree(run, root / name)
    p[name] = str(root / name)
    if damage == "run_config":
      (root / name / "run_config.json").write_text('{"data": {"name": "digits"')
    elif damage == "report":
      (root / name / "report.json").write_text("{truncated")
    else:
      directory = root / name / "checkpoints"
      testing.damage_checkpoint(str(directory / "ckpt-4"), "truncate_data")
      testing.damage_checkpoint(str(directory / "ckpt-2"), "corrupt_index")
  folder = root / "bad_folder" / "zero"
  folder.mkdir(parents=True)
  png = warmup_lib.encode_png(data_image(data))
  for i in range(3):
    (folder / f"ok{i}.png").write_bytes(png)
  (folder / "broken.png").write_bytes(png[:20])
  (root / "bad_folder" / "one").mkdir()
  for i in range(3):
    (root / "bad_folder" / "one" / f"ok{i}.png").write_bytes(png)
  p["bad_folder"] = str(root / "bad_folder")
  (root / "bad.config").write_text("model_config_list { config { name: ")
  p["bad_config"] = str(root / "bad.config")
  (root / "good.png").write_bytes(png)
  p["good_png"] = str(root / "good.png")
  (root / "corrupt.png").write_bytes(b"hello, world")
  p["corrupt_png"] = str(root / "corrupt.png")
  (root / "truncated.png").write_bytes(png[:len(png) - 20])
  p["truncated_png"] = str(root / "truncated.png")
  p["truncated_size"] = str(len(png) - 20)
  x = np.stack([data_image(data)] * 2)
  np.save(root / "pixels_255.npy", x * 255.0)
  p["pixels_255"] = str(root / "pixels_255.npy")
  nan = x.copy()
  nan[0, 1, 1, 0] = np.nan
  np.save(root / "nan.npy", nan)
  p["nan"] = str(root / "nan.npy")
  np.save(root / "wrong_shape.npy", x[:, :6, :6])
  p["wrong_shape"] = str(root / "wrong_shape.npy")
  p.update(_user_model_files(root))
  return p


class _Unregistered(keras.layers.Layer):
  """A custom layer the CLIs' process cannot know (not registered, not imported there)."""

  def call(self, inputs):
    return inputs


def _user_model_files(root):
  """Bad users' models for the --model rows, each written by plain Keras."""
  out = {}
  image = keras.Input((8, 8, 1))

  def save(name, model):
    path = str(root / f"{name}.keras")
    model.save(path)
    out[name] = path

  conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(image)
  logits = keras.layers.Dense(10)(keras.layers.Flatten()(conv))
  save("conv_model", keras.Model(image, logits))
  save("dense_model", keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(image))))
  save("lambda_model", keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(
      keras.layers.Lambda(lambda t: t * 2.0)(image)))))
  other = keras.Input((8, 8, 1))
  save("two_inputs", keras.Model([image, other], keras.layers.Dense(10)(
      keras.layers.Flatten()(keras.layers.Add()([image, other])))))
  flat = keras.layers.Flatten()(image)
  save("two_outputs", keras.Model(image, [keras.layers.Dense(10)(flat),
                                          keras.layers.Dense(10)(flat)]))
  vector = keras.Input((64,))
  save("vector_model", keras.Model(vector, keras.layers.Dense(10)(vector)))
  save("custom_model", keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(
      _Unregistered()(image)))))
  big = keras.Input((32, 32, 3))
  save("big_model", keras.Model(big, keras.layers.Dense(10)(keras.layers.Flatten()(big))))
  (root / "not_model.keras").write_text("not a zip archive")
  out["not_model"] = str(root / "not_model.keras")
  return out


def data_image(data):
  x, _ = next(iter(data.test.batch(1)))
  return x.numpy()[0]


@pytest.fixture(scope="module")
def results(paths):
  before = {k: testing.tree_digest(paths[k]) for k in ("run", "models")}
  outcomes = {}
  for cli in ("train", "evaluate", "export", "analyze", "client"):
    rows = [(i, case) for i, case in enumerate(CASES) if case[0] == cli]
    request = {"paths": paths, "cases": [(args, env) for _, (_, args, env, _) in rows],
               "model_name": MODEL_NAME,
               "base_path": os.path.join(paths["models"], MODEL_NAME)}
    request_path = os.path.join(paths["tmp"], f"{cli}_cases.json")
    with open(request_path, "w") as f:
      json.dump(request, f)
    proc = subprocess.run([sys.executable, "-c", _DRIVER, cli, request_path],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    for (i, _), outcome in zip(rows, json.loads(lines[-1][len("RESULTS "):])):
      outcomes[i] = outcome
  after = {k: testing.tree_digest(paths[k]) for k in ("run", "models")}
  return outcomes, before, after


def test_the_table_is_large_and_covers_every_cli():
  assert len(CASES) >= 25
  assert {case[0] for case in CASES} == {"train", "evaluate", "export", "analyze", "client"}


@pytest.mark.parametrize("index", range(len(CASES)),
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gives_one_line_and_status_2(paths, results, index):
  outcomes, _, _ = results
  cli, args, env, expected = CASES[index]
  outcome = outcomes[index]
  stderr = outcome["stderr"]
  assert outcome["code"] == 2, (cli, args, outcome)
  assert "Traceback" not in stderr + outcome["stdout"], stderr
  errors = [l for l in stderr.splitlines() if l.startswith("Error: ")]
  assert len(errors) == 1, stderr
  assert expected.format(**paths) in errors[0], errors[0]


def test_nothing_already_written_changed(results):
  _, before, after = results
  assert before == after
