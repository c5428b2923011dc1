"""Robust early stopping: held-out split, best-step logic, best checkpoint kept and resumed."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.training import ema as ema_lib
from tfadv.training import trainer
from tfadv.training import validation
from tests import testing


def test_tracker_keeps_the_step_of_the_highest_figure(tmp_path):
  tracker = validation.BestTracker(str(tmp_path))
  script = [(10, 0.30), (20, 0.42), (30, 0.47), (40, 0.45), (50, 0.47), (60, 0.40)]
  improved = [tracker.update(s, v) for s, v in script]
  assert improved == [True, True, True, False, False, False]  # a tie keeps the earlier step
  assert (tracker.best_step, tracker.best_value) == (30, 0.47)
  tracker.write()
  # A resumed run reads the state back and keeps comparing with the same best.
  resumed = validation.BestTracker(str(tmp_path))
  assert resumed.best_step == 30 and not resumed.update(70, 0.46)
  assert resumed.update(80, 0.5) and resumed.best_step == 80


def test_tracker_replaying_steps_forgets_the_replayed_figures():
  tracker = validation.BestTracker()
  for s, v in [(10, 0.3), (20, 0.6), (30, 0.4)]:
    tracker.update(s, v)
  # Killed after validating step 20 and 30 but before their checkpoints: step 20 again.
  assert tracker.update(20, 0.5)
  assert tracker.best_step == 20 and tracker.best_value == 0.5
  assert tracker.history == [(10, 0.3), (20, 0.5)]


def test_split_holds_out_exactly_size_disjoint_examples():
  ds = tf.data.Dataset.range(103).map(lambda i: (i, i % 10))
  train, val = validation.split(ds, 103, 10)
  train_ids = [int(x) for x, _ in train]
  val_ids = [int(x) for x, _ in val]
  assert len(val_ids) == 10 and len(train_ids) == 93
  assert not set(train_ids) & set(val_ids)
  assert val_ids == list(range(0, 100, 10))
  with pytest.raises(ValueError, match="validation_size"):
    validation.split(ds, 103, 103)


def test_training_keeps_the_best_checkpoint_and_reports_it(tmp_path):
  data = testing.fashion_mnist_info(640)
  defense = config_lib.DefenseConfig(
      name="pat", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=2))
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path), batch_size=32, train_steps=12, checkpoint_every=4,
      log_every=4, image_every=0, progress=False, seed=1, learning_rate=3e-3,
      validate_every=3, validation_size=64, validation_attack_steps=3)
  result = trainer.train(data, config_lib.ModelConfig(name="small_cnn", width=8), defense,
                         config)
  history = result.best["history"]
  assert [s for s, _ in history] == [3, 6, 9, 12]
  values = [v for _, v in history]
  # This run's best is not its last step (measured: 0.08, 0.19, 0.22, 0.20), so keeping the
  # latest weights instead of the best ones fails below.
  assert values[-1] < max(values)
  best_step = history[int(np.argmax(values))][0]
  assert result.best["best_step"] == best_step
  assert validation.read_best(str(tmp_path))["best_step"] == best_step
  best = tf.train.latest_checkpoint(os.path.join(tmp_path, "best", "checkpoints"))
  assert best.endswith(f"ckpt-{best_step}")
  # The kept checkpoint holds the weights that scored best: re-validating gives the figure.
  model = result.model
  tf.train.Checkpoint(model=model).restore(best).expect_partial()
  _, val = validation.split(data.train, data.num_train, 64)
  figure = validation.make_validate_fn(
      model, trainer.validation_attack(defense, config), val, seed=1)()
  assert np.isclose(figure["adv_accuracy"], result.best["best_value"])
  events = tf.io.gfile.glob(os.path.join(tmp_path, "train", "events.out.tfevents.*"))
  tags = {v.tag for e in events for ev in tf.compat.v1.train.summary_iterator(e)
          for v in ev.summary.value}
  assert "validation/adv_accuracy" in tags


def test_workflow_reports_and_loads_the_best_averaged_weights(tmp_path):
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  data_config = config_lib.DataConfig(name="digits")
  defense = config_lib.DefenseConfig(
      name="pat", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=2))
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path), batch_size=32, train_steps=8, checkpoint_every=4,
      log_every=4, image_every=0, progress=False, seed=0, learning_rate=3e-3,
      validate_every=2, validation_size=64, validation_attack_steps=2, ema_decay=0.9)
  eval_config = config_lib.EvalConfig(
      attacks=(config_lib.AttackConfig(name="fgsm", eps=0.1),), num_examples=64)
  result, report = workflow.train_and_evaluate(
      data_config, config_lib.ModelConfig(name="small_cnn", width=8), defense, config,
      eval_config)
  best_step = result.best["best_step"]
  assert report["weights"] == "ema" and report["best_step"] == best_step
  assert report["checkpoint"].endswith(os.path.join("best", "checkpoints",
                                                    f"ckpt-{best_step}"))
  loaded = workflow.load_trained(str(tmp_path))  # what export and evaluate use by default
  assert loaded.checkpoint == report["checkpoint"] and loaded.weights == "ema"
  latest = workflow.load_trained(str(tmp_path), "latest")
  assert latest.checkpoint.endswith("ckpt-8") and latest.best is None
  # EMA weights come from the checkpoint's averages, not its raw weights.
  reader = tf.train.load_checkpoint(loaded.checkpoint)
  first = loaded.model.weights[0]
  np.testing.assert_allclose(
      first.numpy(), reader.get_tensor("ema/averages/0/.ATTRIBUTES/VARIABLE_VALUE"))


def _scalars(model_dir, tag):
  events = tf.io.gfile.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
  return {e.step: float(tf.make_ndarray(v.tensor)) for f in events
          for e in tf.compat.v1.train.summary_iterator(f) for v in e.summary.value
          if v.tag == tag}


def test_validation_scores_the_averaged_weights(tmp_path):
  """With `ema_decay`, each validation scores the EMA weights of that step (what ships),
  not the raw ones: re-validating both from the step's checkpoint tells them apart."""
  data = testing.fashion_mnist_info(640)
  defense = config_lib.DefenseConfig(
      name="pat", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=2))
  model_config = config_lib.ModelConfig(name="small_cnn", width=8)
  config = config_lib.TrainConfig(
      model_dir=str(tmp_path), batch_size=32, train_steps=8, checkpoint_every=2,
      keep_checkpoints=10, log_every=8, image_every=0, progress=False, seed=2,
      learning_rate=1e-2, ema_decay=0.5, validate_every=2, validation_size=128,
      validation_attack_steps=3)
  # PGD at the training eps and norm, with the validation's own step count (not the training
  # attack's 2, not a default).
  attack = config_lib.AttackConfig(name="pgd", eps=0.1, steps=3)
  assert trainer.validation_attack(defense, config) == attack
  result = trainer.train(data, model_config, defense, config)
  history = dict((s, v) for s, v in result.best["history"])
  clean = _scalars(tmp_path, "validation/clean_accuracy")
  assert sorted(history) == sorted(clean) == [2, 4, 6, 8]
  _, val = validation.split(data.train, data.num_train, 128)
  model = keras.models.clone_model(result.model)
  validate = validation.make_validate_fn(model, attack, val, seed=config.seed)
  weights = ema_lib.averaged_weights(model)
  raw_differs = 0
  for step in history:
    path = os.path.join(tmp_path, "checkpoints", f"ckpt-{step}")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    raw = validate()
    reader = tf.train.load_checkpoint(path)
    for i, w in enumerate(weights):
      w.assign(reader.get_tensor(f"ema/averages/{i}/.ATTRIBUTES/VARIABLE_VALUE"))
    averaged = validate()
    assert history[step] == averaged["adv_accuracy"], step
    assert np.isclose(clean[step], averaged["clean_accuracy"]), step
    raw_differs += (raw["adv_accuracy"], raw["clean_accuracy"]) != (
        averaged["adv_accuracy"], averaged["clean_accuracy"])
  assert raw_differs >= 2  # the check above can tell raw from averaged weights
  # Validating leaves training alone: a run validating only at its end (same split) holds
  # the same weights, averages and optimizer state at step 6 (a swap of raw and averaged
  # weights left behind by validation would train on from the averages).
  once = os.path.join(tmp_path, "once")
  trainer.train(data, model_config, defense, dataclasses.replace(
      config, model_dir=once, validate_every=8))
  every = tf.train.load_checkpoint(os.path.join(tmp_path, "checkpoints", "ckpt-6"))
  end = tf.train.load_checkpoint(os.path.join(once, "checkpoints", "ckpt-6"))
  names = every.get_variable_to_shape_map()
  assert any(n.startswith("ema/averages/") for n in names)
  for name in names:
    if name.startswith(("model/", "ema/", "optimizer/")):
      np.testing.assert_array_equal(every.get_tensor(name), end.get_tensor(name), err_msg=name)
