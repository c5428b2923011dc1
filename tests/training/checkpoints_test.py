"""Checkpoints that never lose a run: a damaged latest checkpoint falls back to the previous.

Each damage (truncated or corrupted index or data file) is applied to the newest checkpoint
of a tiny model; both restore paths (a training resume through `Checkpointer`, an
evaluation through `restore_model`) must then restore the previous checkpoint's exact
weights, keep the damaged files under `checkpoints/broken/`, and say so in one log line.
"""

import glob
import os

from absl import logging
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.training import checkpoints
from tfadv.training import trainer
from tests import testing

DAMAGES = ("truncate_data", "truncate_index", "corrupt_data", "corrupt_index")


def _model():
  return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def _checkpointer(model_dir, model, optimizer=None):
  extra = {"optimizer": optimizer} if optimizer is not None else {}
  return checkpoints.Checkpointer(str(model_dir), tf.distribute.get_strategy(), keep=3,
                                  model=model, **extra)


def _save_steps(model_dir, steps=(1, 2)):
  model = _model()
  saver = _checkpointer(model_dir, model)
  for step in steps:
    model.layers[0].kernel.assign(tf.fill((4, 3), float(step)))
    saver.save(step)
  return os.path.join(str(model_dir), "checkpoints")


damage = testing.damage_checkpoint


@pytest.fixture
def warnings():
  lines = []
  original = logging.warning
  logging.warning = lambda msg, *args: lines.append(msg % args)
  yield lines
  logging.warning = original


@pytest.mark.parametrize("how", DAMAGES)
def test_resume_falls_back_to_the_previous_checkpoint(tmp_path, how, warnings):
  directory = _save_steps(tmp_path)
  damaged = damage(os.path.join(directory, "ckpt-2"), how)
  model = _model()
  saver = _checkpointer(tmp_path, model)
  assert saver.restore() == os.path.join(directory, "ckpt-1")
  np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.ones((4, 3)))
  # One line naming the broken checkpoint; its files are kept aside, not deleted.
  assert len(warnings) == 1 and "ckpt-2" in warnings[0] and "broken" in warnings[0]
  assert "\n" not in warnings[0]
  assert os.path.exists(os.path.join(directory, "broken", os.path.basename(damaged)))
  assert not glob.glob(os.path.join(directory, "ckpt-2.*"))
  # The run goes on: the next save becomes the latest and a restart restores it.
  assert tf.train.latest_checkpoint(directory).endswith("ckpt-1")
  model.layers[0].kernel.assign(tf.fill((4, 3), 3.0))
  saver.save(3)
  again = _model()
  assert _checkpointer(tmp_path, again).restore().endswith("ckpt-3")
  np.testing.assert_array_equal(again.layers[0].kernel.numpy(), np.full((4, 3), 3.0))


@pytest.mark.parametrize("how", DAMAGES)
def test_evaluation_restore_falls_back_too(tmp_path, how, warnings):
  directory = _save_steps(tmp_path)
  damage(os.path.join(directory, "ckpt-2"), how)
  model = _model()
  assert checkpoints.restore_model(model, str(tmp_path)).endswith("ckpt-1")
  np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.ones((4, 3)))
  assert len(warnings) == 1 and "ckpt-2" in warnings[0]


def test_no_restorable_checkpoint_names_the_files_and_keeps_them(tmp_path, warnings):
  directory = _save_steps(tmp_path)
  damage(os.path.join(directory, "ckpt-2"), "truncate_data")
  damage(os.path.join(directory, "ckpt-1"), "corrupt_index")
  with pytest.raises(checkpoints.CheckpointError) as error:
    _checkpointer(tmp_path, _model()).restore()
  message = str(error.value)
  assert "\n" not in message
  assert "ckpt-2.{index,data-*}" in message and "ckpt-1.{index,data-*}" in message
  assert len(os.listdir(os.path.join(directory, "broken"))) == 4  # 2 checkpoints x 2 files


def test_a_checkpoint_of_another_model_is_an_error_and_stays(tmp_path, warnings):
  directory = _save_steps(tmp_path)
  other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
  with pytest.raises(checkpoints.CheckpointError, match="does not match the model"):
    checkpoints.restore_model(other, str(tmp_path))
  assert not os.path.exists(os.path.join(directory, "broken"))
  assert tf.train.latest_checkpoint(directory).endswith("ckpt-2")


def test_a_corrupt_state_file_still_finds_the_checkpoints(tmp_path):
  directory = _save_steps(tmp_path)
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write("\x00garbage{{{")
  model = _model()
  assert checkpoints.restore_model(model, str(tmp_path)).endswith("ckpt-2")
  np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.full((4, 3), 2.0))


def test_training_resumes_past_a_truncated_checkpoint(tmp_path, warnings):
  data = testing.fashion_mnist_info(256)
  model_config = config_lib.ModelConfig(name="small_cnn", width=4)
  defense = config_lib.DefenseConfig(
      name="none", attack=config_lib.AttackConfig(name="pgd", eps=0.1, steps=1))

  def train(steps):
    return trainer.train(data, model_config, defense, config_lib.TrainConfig(
        model_dir=str(tmp_path), batch_size=32, train_steps=steps, checkpoint_every=2,
        log_every=2, image_every=0, progress=False))

  train(4)
  directory = os.path.join(str(tmp_path), "checkpoints")
  damage(os.path.join(directory, "ckpt-4"), "truncate_data")
  result = train(6)
  assert result.resumed_from.endswith("ckpt-2") and result.steps == 6
  assert tf.train.latest_checkpoint(directory).endswith("ckpt-6")
  assert os.listdir(os.path.join(directory, "broken"))
