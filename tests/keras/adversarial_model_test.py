"""tfadv.keras.AdversarialModel: a defense through Keras' own fit(), callbacks included."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv import keras as tfadv_keras
from tfadv import workflow
from tfadv.data import datasets
from tfadv.training import trainer
from tests import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _data(n=64):
  x, y, xt, yt = testing.fashion_mnist_arrays()
  return x[:n], y[:n].astype("int32"), xt[:n], yt[:n].astype("int32")


def _backbone_model(kind):
  keras.utils.set_random_seed(0)
  if kind == "mobilenet_v2":
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False,
                                          weights=None, alpha=0.35)
  else:
    base = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), include_top=False,
                                             weights=None)
  inputs = keras.Input((32, 32, 3))
  x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
  return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x))


def _small_functional(seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((28, 28, 1))
  x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
  x = keras.layers.MaxPooling2D(name="p1")(x)
  x = keras.layers.Conv2D(8, 3, activation="relu", name="c2")(x)
  x = keras.layers.Flatten()(x)
  return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


@pytest.mark.slow
@pytest.mark.parametrize("kind,defense", [
    ("mobilenet_v2", "pat"), ("mobilenet_v2", "trades"), ("mobilenet_v2", "at_alp"),
    ("mobilenet_v2", "aad"), ("efficientnet_b0", "at_alp"), ("efficientnet_b0", "aad")])
def test_nested_backbone_hardened_through_fit(kind, defense):
  x, y, _, _ = _data(8)
  x = tf.image.resize(x, (32, 32)).numpy()
  adv = tfadv_keras.AdversarialModel(_backbone_model(kind), defense=defense, eps=0.1,
                                     attack_steps=2, input_shape=(32, 32, 1))
  assert len(adv.layers_used["taps"]) == 4
  before = [w.numpy().copy() for w in adv.model.trainable_weights]
  adv.compile(optimizer=keras.optimizers.Adam(1e-3))
  history = adv.fit(x, y, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  moved = [not np.allclose(a, b.numpy()) for a, b in zip(before, adv.model.trainable_weights)]
  assert sum(moved) > len(moved) // 2  # the step reached the backbone's weights


@pytest.mark.parametrize("defense", ["pat", "trades"])
def test_sequential_and_subclassed_models(defense):
  class Subclassed(keras.Model):
    def __init__(self):
      super().__init__()
      self.flat, self.dense = keras.layers.Flatten(), keras.layers.Dense(10)

    def call(self, x):
      return self.dense(self.flat(x))

  x, y, xt, yt = _data(64)
  keras.utils.set_random_seed(0)
  sequential = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3),
                                 keras.layers.Flatten(), keras.layers.Dense(10)])
  for model in (sequential, Subclassed()):
    adv = tfadv_keras.AdversarialModel(model, defense=defense, eps=0.1, attack_steps=3,
                                       input_shape=(28, 28, 1))
    adv.compile(optimizer=keras.optimizers.Adam(3e-3))
    adv.fit(x, y, batch_size=32, epochs=4, verbose=0)
    clean, adv_acc = adv.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"], None
    adv_acc = adv.evaluate(xt, yt, verbose=0, return_dict=True)["adv_accuracy"]
    assert clean > 0.3 and adv_acc < clean  # learned, and the attack hurts


def _train_cli_equivalent(model_path, model_dir, steps, defense="at_alp"):
  """tfadv-train's library call on a user model file: the reference for fit()."""
  data = testing.fashion_mnist_info(256)
  model_config = config_lib.ModelConfig(name="user", path=model_path)
  defense_config = config_lib.DefenseConfig(
      name=defense, attack=config_lib.AttackConfig(eps=0.1, steps=3))
  return trainer.train(data, model_config, defense_config, config_lib.TrainConfig(
      model_dir=model_dir, batch_size=32, train_steps=steps, image_every=0, progress=False,
      learning_rate=1e-3, seed=3), None)


def test_fit_reaches_the_same_weights_as_the_trainer(tmp_path):
  """N fit() steps == N tfadv-train steps: same batches, seed, defense (tolerance 1e-5)."""
  path = str(tmp_path / "user.keras")
  _small_functional().save(path)
  result = _train_cli_equivalent(path, str(tmp_path / "run"), 5)
  model = keras.saving.load_model(path)
  adv = tfadv_keras.AdversarialModel(model, defense="at_alp", eps=0.1, attack_steps=3,
                                     seed=3)
  adv.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=2)
  data = testing.fashion_mnist_info(256)
  batches = trainer.input_pipeline(data.train, 32, 10_000, 3).take(5)
  adv.fit(batches, epochs=1, verbose=0)
  for a, b in zip(result.model.weights, adv.model.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
  # A fit() that ignored the defense (plain CE on clean images) ends elsewhere.
  plain = keras.saving.load_model(path)
  plain.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  plain.fit(trainer.input_pipeline(data.train, 32, 10_000, 3).take(5), verbose=0)
  assert not np.allclose(plain.weights[0].numpy(), adv.model.weights[0].numpy(), atol=1e-4)


def test_fit_under_mirrored_equals_one_device():
  devices = tf.config.list_logical_devices("CPU")
  if len(devices) < 2:
    pytest.skip("needs the 2 virtual CPU devices of tests/conftest.py")
  x, y, _, _ = _data(64)
  weights = []
  for strategy in (tf.distribute.get_strategy(),
                   tf.distribute.MirroredStrategy([d.name for d in devices[:2]])):
    with strategy.scope():
      # No random start: each replica keys its own (seed, step, replica) random start.
      adv = tfadv_keras.AdversarialModel(_small_functional(), defense_config=(
          config_lib.DefenseConfig(name="at_alp", attack=config_lib.AttackConfig(
              eps=0.1, steps=2, random_start=False))))
      adv.compile(optimizer=keras.optimizers.SGD(0.1))
    adv.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    weights.append([w.numpy() for w in adv.model.weights])
  for a, b in zip(*weights):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


class _Crash(keras.callbacks.Callback):
  """Stops the process's training at the end of an epoch, after the backup was written."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      raise RuntimeError("crash")


class _Epochs(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.seen = []

  def on_epoch_begin(self, epoch, logs=None):
    self.seen.append(epoch)


def test_keras_callbacks(tmp_path):
  x, y, xt, yt = _data(64)

  def fresh():
    adv = tfadv_keras.AdversarialModel(_small_functional(), defense="pat", eps=0.1,
                                       attack_steps=2)
    adv.compile(optimizer=keras.optimizers.Adam(1e-3))
    return adv

  # EarlyStopping on the adversarial validation accuracy: a baseline never reached stops
  # at the first epoch Keras checks, the second (a missing val_adv_accuracy would only warn
  # and run all 5).
  adv, epochs = fresh(), _Epochs()
  adv.fit(x, y, batch_size=32, epochs=5, validation_data=(xt, yt), verbose=0,
          callbacks=[keras.callbacks.EarlyStopping("val_adv_accuracy", mode="max",
                                                   baseline=1.01, patience=0), epochs])
  assert epochs.seen == [0, 1]
  # ModelCheckpoint keeps the best val_adv_accuracy weights.
  path = str(tmp_path / "best.weights.h5")
  adv = fresh()
  history = adv.fit(x, y, batch_size=32, epochs=2, validation_data=(xt, yt), verbose=0,
                    callbacks=[keras.callbacks.ModelCheckpoint(
                        path, monitor="val_adv_accuracy", mode="max", save_best_only=True,
                        save_weights_only=True)])
  assert os.path.exists(path) and len(history.history["val_adv_accuracy"]) == 2
  # BackupAndRestore: a run that crashed after epoch 1 resumes at epoch 2 and ends with the
  # weights of an uninterrupted run.
  backup = str(tmp_path / "backup")
  adv = fresh()
  with pytest.raises(RuntimeError, match="crash"):
    adv.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), _Crash(1)])
  adv, epochs = fresh(), _Epochs()
  adv.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
          callbacks=[keras.callbacks.BackupAndRestore(backup), epochs])
  assert epochs.seen == [2]
  reference = fresh()
  reference.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
  for a, b in zip(reference.model.weights, adv.model.weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def _cli(module, *args):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return proc


def test_evaluate_cli_on_keras_file_and_plain_savedmodel_matches_in_memory(tmp_path):
  x, y, _, _ = _data(512)
  model = _small_functional()
  model.compile(optimizer=keras.optimizers.Adam(2e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(x, y, epochs=2, verbose=0)
  softmax = keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))
  keras_path, saved_path = str(tmp_path / "m.keras"), str(tmp_path / "saved")
  softmax.save(keras_path)
  model.export(saved_path, verbose=False)
  eval_config = config_lib.EvalConfig(attacks=(
      config_lib.AttackConfig(name="fgsm", eps=0.1),
      config_lib.AttackConfig(name="pgd", eps=0.1, steps=5)), num_examples=64)
  data = datasets.load(config_lib.DataConfig(name="fashion_mnist"))
  expected = workflow.evaluate_model(model, data, eval_config, "m", "none", 0.1,
                                     progress=False)
  for path in (keras_path, saved_path):
    out = str(tmp_path / f"report_{os.path.basename(path)}")
    _cli("trainers.evaluate", f"--model={path}", "--dataset=fashion_mnist",
         "--attacks=fgsm,pgd:steps=5", "--eval_eps=0.1", "--num_examples=64",
         f"--output_dir={out}", "--progress=false")
    import json  # pylint: disable=g-import-not-at-top
    with open(os.path.join(out, "report.json")) as f:
      report = json.load(f)
    assert report["clean_accuracy"] == expected["clean_accuracy"]
    for name, entry in expected["attacks"].items():
      assert abs(report["attacks"][name]["accuracy"] - entry["accuracy"]) <= 1 / 64, name
    assert expected["attacks"]["pgd5"]["accuracy"] < expected["clean_accuracy"] - 0.1


@pytest.mark.slow
def test_cli_hardens_and_exports_a_backbone_file(tmp_path):
  path = str(tmp_path / "mnv2.keras")
  _backbone_model("mobilenet_v2").save(path)
  run = str(tmp_path / "run")
  _cli("trainers.train", f"--model={path}", "--defense=at_alp", "--image_size=32,32",
       "--train_steps=2", "--batch_size=8", "--attack_steps=2", "--num_examples=16",
       "--attacks=pgd:steps=2", f"--model_dir={run}", "--progress=false",
       f"--export_dir={tmp_path / 'export'}", "--model_name=mnv2")
  os.remove(path)  # evaluate and export rebuild it from the run's model.keras
  assert os.path.exists(os.path.join(run, "model.keras"))
  _cli("trainers.evaluate", f"--model_dir={run}", "--attacks=fgsm", "--num_examples=16",
       f"--output_dir={tmp_path / 'eval'}", "--progress=false")
  with open(os.path.join(tmp_path, "export", "mnv2", "1", "assets.extra",
                         "model_card.md")) as f:
    card = f.read()
  # The card names the layers AT and Grad-CAM read and what was adapted.
  assert "Layers read: taps block_1_expand_relu" in card
  assert "pre-softmax logits recovered" in card
  eff = str(tmp_path / "eff.keras")
  _backbone_model("efficientnet_b0").save(eff)
  _cli("trainers.train", f"--model={eff}", "--defense=aad", "--image_size=32,32",
       "--train_steps=1", "--batch_size=4", "--attack_steps=1", "--num_examples=8",
       "--attacks=fgsm", f"--model_dir={tmp_path / 'run_eff'}", "--progress=false")


def test_fit_under_mixed_bfloat16():
  x, y, _, _ = _data(64)
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    model = _small_functional()
    adv = tfadv_keras.AdversarialModel(model, defense="at_alp", eps=0.1, attack_steps=2)
    adv.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = adv.fit(x, y, batch_size=32, epochs=1, verbose=0)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  assert model.get_layer("c1").compute_dtype == "bfloat16"
  assert np.isfinite(history.history["loss"][0])
