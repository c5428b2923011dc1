"""Training with XLA (`TrainConfig.jit`) and the TensorBoard scalars every recipe logs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.defenses import recipes
from tfadv.training import trainer
from tests import testing

MODEL = config_lib.ModelConfig(name="small_cnn", width=8)


def _defense(name):
  # No random start: the XLA and the plain run must see the same adversarial examples.
  attack = config_lib.AttackConfig(eps=0.1, steps=2, random_start=False)
  return config_lib.DefenseConfig(name=name, attack=attack)


def _train(model_dir, defense, steps, **kw):
  train_config = config_lib.TrainConfig(
      model_dir=str(model_dir), batch_size=32, train_steps=steps, checkpoint_every=steps,
      log_every=2, image_every=0, progress=False, seed=5, **kw)
  return trainer.train(testing.fashion_mnist_info(256), MODEL, defense, train_config)


def _weights(model):
  return [v.numpy() for v in model.trainable_weights]


def test_jit_training_runs_and_matches_the_plain_step(tmp_path):
  defense = _defense("at_alp")
  first = _train(tmp_path / "jit", defense, 2, jit=True)
  before = _weights(first.model)
  resumed = _train(tmp_path / "jit", defense, 4, jit=True)  # Two more steps under XLA.
  assert resumed.resumed_from and resumed.steps == 4
  assert np.isfinite(resumed.metrics["loss"])
  after = _weights(resumed.model)
  assert all(np.all(np.isfinite(w)) for w in after)
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(before, after)) > 1e-4
  # The same 4 steps without XLA give the same weights (up to float reassociation).
  plain = _weights(_train(tmp_path / "plain", defense, 4, jit=False).model)
  for a, b in zip(after, plain):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_jit_flag_compiles_the_training_attack_with_xla(tmp_path, monkeypatch):
  # The trainer's attack function, as built for `jit=True`, is an XLA function (its HLO can
  # be read); an ignored flag would leave a plain Python function.
  from tfadv.training import step as step_lib  # pylint: disable=g-import-not-at-top
  built = []
  make = step_lib.make_attack_fn
  monkeypatch.setattr(step_lib, "make_attack_fn",
                      lambda *a, **kw: built.append(make(*a, **kw)) or built[-1])
  _train(tmp_path / "jit", _defense("pat"), 1, jit=True)
  x = tf.zeros([4, 28, 28, 1])
  y = tf.zeros([4], tf.int32)
  hlo = built[0].experimental_get_compiler_ir(
      x, y, tf.constant([5, 0], tf.int64), tf.constant(0, tf.int64))(stage="hlo")
  assert "HloModule" in hlo


def _scalars(log_dir):
  """{tag: {step: value}} of the scalars in the TensorBoard event files under `log_dir`."""
  tags = {}
  for path in tf.io.gfile.glob(os.path.join(log_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                  else value.simple_value)
        tags.setdefault(value.tag, {})[event.step] = number
  return tags


@pytest.mark.parametrize("name", ["pat", "at_alp"])
def test_event_files_hold_every_loss_term_of_the_recipe(tmp_path, name):
  defense = _defense(name)
  result = _train(tmp_path, defense, 4)
  terms = {t.name for t in recipes.build(defense).terms}
  assert len(terms) >= (4 if name == "at_alp" else 1)  # clean_ce, adv_ce, alp, at.
  scalars = _scalars(os.path.join(tmp_path, "train"))
  print({tag: values for tag, values in sorted(scalars.items())})
  for tag in terms | {"loss", "adv_accuracy", "learning_rate"}:
    assert sorted(scalars.get(tag, {})) == [2, 4], tag  # Every log_every = 2 steps.
  # What was logged is the run's own last window, not a placeholder.
  for tag in terms | {"loss"}:
    assert scalars[tag][4] == pytest.approx(result.metrics[tag], rel=1e-5), tag
  assert scalars["loss"][4] > 0
