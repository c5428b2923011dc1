"""Helpers shared by tests: small real data and quickly trained models."""

import atexit
import functools
import glob
import hashlib
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets


@functools.lru_cache(maxsize=None)
def fashion_mnist_arrays(num_train=10_000, num_test=1_000):
  """The first examples of Fashion-MNIST (Debian's idx files) as numpy arrays."""
  info = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
  x, y = next(iter(info.train.batch(num_train)))
  xt, yt = next(iter(info.test.batch(num_test)))
  return x.numpy(), y.numpy(), xt.numpy(), yt.numpy()


def fashion_mnist_info(num_train=1024):
  """A `DatasetInfo` over the first `num_train` Fashion-MNIST training images (fast training)."""
  x, y, xt, yt = fashion_mnist_arrays()
  return datasets.DatasetInfo(
      name="fashion_mnist_subset",
      train=tf.data.Dataset.from_tensor_slices((x[:num_train], y[:num_train].astype(np.int32))),
      test=tf.data.Dataset.from_tensor_slices((xt, yt.astype(np.int32))),
      num_classes=10, image_shape=(28, 28, 1), class_names=tuple(str(i) for i in range(10)),
      num_train=num_train, num_test=len(yt))


def small_classifier(seed=0):
  """Conv-pool-conv-pool-dense: a plain undefended Keras model for attack tests."""
  keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Conv2D(16, 3, activation="relu"),
      keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(32, 3, activation="relu"),
      keras.layers.MaxPooling2D(),
      keras.layers.Flatten(),
      keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10),
  ])


@functools.lru_cache(maxsize=None)
def trained_undefended_model(epochs=2):
  """A small CNN trained on 10k Fashion-MNIST images (~85% test accuracy, not robust)."""
  x, y, _, _ = fashion_mnist_arrays()
  model = small_classifier()
  model.compile(optimizer=keras.optimizers.Adam(2e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
  return model


def accuracy(model, x, y):
  logits = model(tf.convert_to_tensor(x), training=False)
  return float(np.mean(np.argmax(logits.numpy(), axis=-1) == np.asarray(y)))


# The product's own recipes trained through `tfadv.training.trainer.train`: the models of the
# central claim (tests/training/product_claim_test.py) and the defended model of the
# evaluation tests. 300 Adam steps of 64 on 4,096 Fashion-MNIST images, small_cnn of width 8,
# training attack PGD-3 at eps 0.1: ~5 s (`none`) to ~20 s (`at_alp`) each on 2 cores.
PRODUCT_DEFENSES = ("none", "pat", "alp", "at_alp")
PRODUCT_EPS = 0.1
PRODUCT_NUM_TRAIN = 4096


@functools.lru_cache(maxsize=None)
def session_dir():
  """A temporary directory for this test process, removed when it exits."""
  path = tempfile.mkdtemp(prefix="tfadv_tests_")
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


@functools.lru_cache(maxsize=None)
def product_trained(defense):
  """`defense` trained by the product's trainer with its real recipe (cached per session).

  Args:
    defense: a defense name, e.g. one of `PRODUCT_DEFENSES`.

  Returns:
    The `tfadv.training.trainer.TrainResult` (`.model`, `.tapped`, `.metrics`, ...); its
    `model_dir` (checkpoint, run_config.json, TensorBoard events) is
    `os.path.join(session_dir(), "product", defense)`.
  """
  from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
  steps = 300
  return trainer.train(
      fashion_mnist_info(PRODUCT_NUM_TRAIN),
      config_lib.ModelConfig(name="small_cnn", width=8),
      config_lib.DefenseConfig(name=defense,
                               attack=config_lib.AttackConfig(eps=PRODUCT_EPS, steps=3)),
      config_lib.TrainConfig(model_dir=os.path.join(session_dir(), "product", defense),
                             batch_size=64, train_steps=steps, learning_rate=2e-3,
                             checkpoint_every=steps, log_every=50, image_every=0,
                             progress=False, seed=0))


def trained_defended_model():
  """The product-trained `pat` model (Madry PGD training through `trainer.train`).

  An honest defense for evaluation tests: its robustness comes from training, not from
  masked gradients. Measured on the first 500 test images: clean 0.78, PGD-20 at eps 0.1
  0.58 (the undefended `none` run: 0.86 / 0.07).
  """
  return product_trained("pat").model


def damage_checkpoint(prefix, how):
  """Truncates or flips bytes in the index or data file of checkpoint `prefix`."""
  kind, part = how.split("_")
  path = glob.glob(prefix + (".index" if part == "index" else ".data-*"))[0]
  data = open(path, "rb").read()
  if kind == "truncate":
    data = data[:len(data) // 2]
  else:
    data = bytearray(data)
    for i in range(len(data) // 3, len(data) // 3 + 8):
      data[i] ^= 0xFF
    data = bytes(data)
  with open(path, "wb") as f:
    f.write(data)
  return path


def tree_digest(directory):
  """{relative path: sha256} of every file below `directory` (to prove nothing changed)."""
  digests = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        digests[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return digests


# JSON Schemas of the files tfadv writes for tools (docs/*.schema.json).
SCHEMAS = {"report": "report.schema.json", "study": "study.schema.json"}


@functools.lru_cache(maxsize=None)
def _validator(kind):
  import json  # pylint: disable=g-import-not-at-top
  import jsonschema  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, "docs", SCHEMAS[kind])) as f:
    schema = json.load(f)
  jsonschema.Draft202012Validator.check_schema(schema)
  return jsonschema.Draft202012Validator(schema)


def assert_valid(document, kind="report"):
  """Validates a report.json / study.json (a path or the loaded dict) against its schema.

  Returns the document (loaded when a path was given), so a test can keep reading it.
  """
  import json  # pylint: disable=g-import-not-at-top
  if isinstance(document, (str, os.PathLike)):
    with open(document) as f:
      document = json.load(f)
  errors = sorted(_validator(kind).iter_errors(document), key=lambda e: list(e.path))
  assert not errors, f"{kind} does not match docs/{SCHEMAS[kind]}: " + "; ".join(
      f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5])
  return document


def first_sgd_step(model_config, data, x, y, seed, learning_rate, label_smoothing=0.0):
  """The weights {path: array} after one step of `none` (clean cross-entropy) with SGD.

  Computed here, independently of the trainer: the model built as `trainer.train` builds
  it (after `keras.utils.set_random_seed(seed)`), the mean cross-entropy of batch (x, y),
  and SGD's first update `w - lr * g` (its momentum starts at zero). Tests compare a
  one-step run of the trainer with this to see that an option reached the step.
  """
  from tfadv.models import zoo  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  model = zoo.build_model(model_config, data.image_shape, data.num_classes)
  num_classes = data.num_classes
  with tf.GradientTape() as tape:
    logits = model(tf.convert_to_tensor(x), training=True)
    target = tf.one_hot(tf.cast(y, tf.int32), num_classes)
    target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))
  grads = tape.gradient(loss, model.trainable_variables)
  return {v.path: (v - learning_rate * g).numpy()
          for v, g in zip(model.trainable_variables, grads)}


def assert_weights(model, expected, rtol=1e-4, atol=1e-6):
  """Asserts that `model`'s trainable weights equal `expected` ({path: array})."""
  actual = {v.path: v.numpy() for v in model.trainable_variables}
  assert set(actual) == set(expected), (sorted(actual), sorted(expected))
  for path, value in expected.items():
    np.testing.assert_allclose(actual[path], value, rtol=rtol, atol=atol, err_msg=path)


def differs(model, expected, atol=1e-5):
  """Whether some trainable weight of `model` differs from `expected` ({path: array})."""
  return any(not np.allclose(v.numpy(), expected[v.path], atol=atol)
             for v in model.trainable_variables)
