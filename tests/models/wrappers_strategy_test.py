"""The model wrappers under MirroredStrategy (two virtual CPUs): build in scope, train a step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.losses import adp
from tfadv.models import denoise
from tfadv.models import ensemble
from tfadv.models import noise
from tfadv.models import randomization
from tfadv.models import taps
from tfadv.training import strategy as strategy_lib

_SMALL = config_lib.ModelConfig(name="small_cnn", width=2)
_RESNET = config_lib.ModelConfig(name="resnet18", width=1)
_BUILDERS = {
    "noise": lambda: noise.build(_SMALL, (8, 8, 1), 3, scale=0.1),
    "randomization": lambda: randomization.build(_SMALL, (8, 8, 1), 3, per_example=True),
    "ensemble": lambda: ensemble.build(_SMALL, (8, 8, 1), 3, members=2),
    "denoise": lambda: denoise.build(_RESNET, (8, 8, 1), 3),
}


@pytest.fixture(scope="module")
def strategy():
  # One strategy for the module: a new one per test made the CPU collectives of the
  # second test's all-reduce mismatch (shapes of the first test's gradients).
  return strategy_lib.make_strategy("mirrored")


@pytest.mark.parametrize("name", sorted(_BUILDERS))
def test_one_mirrored_train_step(strategy, name):
  keras.utils.set_random_seed(0)
  with strategy.scope():
    built = _BUILDERS[name]()
    tapped = taps.tapped_model(built.model, built.tap_names, built.gradcam_name,
                               built.extras)
    optimizer = keras.optimizers.SGD(0.1)
  variables = built.model.trainable_variables
  before = [v.numpy() for v in variables]
  x = tf.random.stateless_uniform((4, 8, 8, 1), seed=[0, 1])
  y = tf.constant([0, 1, 2, 0])

  def replica_step(x, y):
    with tf.GradientTape() as tape:
      out = tapped(x, training=True)
      if "members" in out:
        per_example = adp.adp_loss(out["members"], y)
      else:
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(y, out["logits"])
      loss = tf.nn.compute_average_loss(per_example, global_batch_size=4)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  @tf.function
  def step(x, y):
    losses = strategy.run(replica_step, args=(x, y))
    return strategy.reduce("SUM", losses, axis=None)

  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
  loss = step(*next(iter(dataset)))
  assert np.isfinite(float(loss))
  changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]
  assert sum(changed) > len(changed) // 2
