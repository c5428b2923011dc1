"""Training knobs: warm-up, Nesterov, coupled weight decay, steps_per_loop, mixed precision."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.models import zoo
from tfadv.training import trainer
from tfadv.training import strategy as strategy_lib
from tfadv.training import summaries as summaries_lib


def _digits():
  return datasets.load(config_lib.DataConfig(name="digits"))


SMALL = config_lib.ModelConfig(name="small_cnn", width=8)


def _defense(random_start=False):
  return config_lib.DefenseConfig(name="pat", attack=config_lib.AttackConfig(
      name="pgd", eps=0.1, steps=2, random_start=random_start))


def _config(model_dir, **kw):
  fields = dict(model_dir=str(model_dir), batch_size=32, train_steps=2, checkpoint_every=100,
                log_every=1, image_every=0, progress=False, seed=5)
  fields.update(kw)
  return config_lib.TrainConfig(**fields)


def _weights(model):
  return [v.numpy() for v in model.weights]


def test_warmup_rises_linearly_then_runs_the_schedule_over_the_rest():
  cfg = config_lib.TrainConfig(learning_rate=0.1, schedule="piecewise", warmup_steps=10)
  schedule = trainer.learning_rate(cfg, 110)
  assert np.isclose(float(schedule(0)), 0.01)
  assert np.isclose(float(schedule(4)), 0.05)
  assert np.isclose(float(schedule(10)), 0.1)
  # The piecewise bounds (50 %, 75 %) are of the 100 steps after the warm-up.
  assert np.isclose(float(schedule(10 + 50)), 0.1)  # PiecewiseConstantDecay: step <= bound
  assert np.isclose(float(schedule(10 + 51)), 0.01)
  assert np.isclose(float(schedule(10 + 76)), 0.001)
  assert trainer.learning_rate(config_lib.TrainConfig(learning_rate=0.1), 100) == 0.1


def test_nesterov_and_loss_scaling_reach_the_optimizer():
  sgd = trainer.build_optimizer(config_lib.TrainConfig(optimizer="sgd", nesterov=True), 10)
  assert sgd.nesterov
  assert not trainer.build_optimizer(config_lib.TrainConfig(optimizer="sgd"), 10).nesterov
  fp16 = trainer.build_optimizer(config_lib.TrainConfig(precision="mixed_float16"), 10)
  assert isinstance(fp16, keras.optimizers.LossScaleOptimizer)
  coupled = config_lib.TrainConfig(optimizer="sgd", weight_decay=5e-4,
                                   weight_decay_mode="coupled")
  assert trainer.build_optimizer(coupled, 10).weight_decay is None  # not also decoupled
  assert trainer.coupled_weight_decay(coupled) == 5e-4


def test_coupled_weight_decay_adds_wd_times_w_to_the_gradient(tmp_path):
  # SGD (momentum 0.9, zero at start): the first update is -lr * (g + wd * w0), so the
  # coupled run differs from the undecayed one by exactly -lr * wd * w0.
  data = _digits()
  lr, wd = 0.05, 0.2
  base = dict(optimizer="sgd", learning_rate=lr, train_steps=1)
  plain = trainer.train(data, SMALL, _defense(), _config(tmp_path / "plain", **base))
  coupled = trainer.train(data, SMALL, _defense(), _config(
      tmp_path / "coupled", weight_decay=wd, weight_decay_mode="coupled", **base))
  keras.utils.set_random_seed(5)
  initial = zoo.build_model(SMALL, data.image_shape, data.num_classes)
  for w0, a, b, v in zip(_weights(initial), _weights(plain.model), _weights(coupled.model),
                         plain.model.weights):
    if v.trainable:
      np.testing.assert_allclose(b - a, -lr * wd * w0, atol=2e-6)
  # Decoupled (Keras' weight_decay: w -= lr * wd * w before the gradient step): the same
  # first step, applied once, by the optimizer and not through the gradient.
  decoupled_config = _config(tmp_path / "decoupled", weight_decay=wd,
                             weight_decay_mode="decoupled", **base)
  assert trainer.coupled_weight_decay(decoupled_config) == 0
  decoupled = trainer.train(data, SMALL, _defense(), decoupled_config)
  for w0, a, b, v in zip(_weights(initial), _weights(plain.model), _weights(decoupled.model),
                         plain.model.weights):
    if v.trainable:
      np.testing.assert_allclose(b - a, -lr * wd * w0, atol=2e-6)
  # Through the momentum the coupled decay differs from the decoupled one at step 2.
  two = dict(base, train_steps=2, weight_decay=wd)
  c2 = trainer.train(data, SMALL, _defense(), _config(tmp_path / "c2", weight_decay_mode="coupled", **two))
  d2 = trainer.train(data, SMALL, _defense(), _config(tmp_path / "d2", **two))
  assert any(not np.allclose(a, b, atol=1e-6)
             for a, b in zip(_weights(c2.model), _weights(d2.model)))


def test_steps_per_loop_gives_the_same_run_and_exact_boundaries(tmp_path, monkeypatch):
  # Periods (5, 8) above steps_per_loop=4, so that loops of 4 steps really happen; the host
  # sees the metrics once per loop (the progress bar is fed once per loop).
  data = _digits()
  kw = dict(train_steps=10, checkpoint_every=5, log_every=8, keep_checkpoints=5)
  one = trainer.train(data, SMALL, _defense(True), _config(tmp_path / "one", **kw))
  fed = []
  original = summaries_lib.Summaries.progress
  monkeypatch.setattr(summaries_lib.Summaries, "progress",
                      lambda self, step, values: (fed.append(step), original(self, step, values)))
  loop = trainer.train(data, SMALL, _defense(True),
                       _config(tmp_path / "loop", steps_per_loop=4, **kw))
  # Loops 0-4, 4-5 (checkpoint), 5-8 (log), 8-10 (end): an ignored option feeds every step.
  assert fed == [4, 5, 8, 10]
  for a, b in zip(_weights(one.model), _weights(loop.model)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The last window (steps 9-10) is the mean over its steps, whatever the loop lengths.
  assert np.isclose(one.metrics["loss"], loop.metrics["loss"], rtol=1e-5)
  assert _scalar_steps(tmp_path / "loop", "loss") == [8, 10]
  manager = tf.train.get_checkpoint_state(os.path.join(tmp_path, "loop", "checkpoints"))
  saved = sorted(int(p.rsplit("-", 1)[1]) for p in manager.all_model_checkpoint_paths)
  assert saved == [5, 10]
  # Resume inside a loop: stop at 3, continue to 10 with loops of 4 -> same weights.
  fed.clear()
  trainer.train(data, SMALL, _defense(True),
                _config(tmp_path / "part", steps_per_loop=4, **dict(kw, train_steps=3)))
  assert fed == [3]
  fed.clear()
  resumed = trainer.train(data, SMALL, _defense(True),
                          _config(tmp_path / "part", steps_per_loop=4, **kw))
  assert resumed.resumed_from.endswith("ckpt-3")
  assert fed == [5, 8, 10]  # 3-5, 5-8, 8-10: loops restart from the checkpointed step
  for a, b in zip(_weights(one.model), _weights(resumed.model)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _scalar_steps(model_dir, tag):
  events = tf.io.gfile.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
  return sorted(e.step for f in events for e in tf.compat.v1.train.summary_iterator(f)
                for v in e.summary.value if v.tag == tag)


def test_mixed_float16_scales_the_loss_and_steps_like_float32(tmp_path):
  """One SGD step in mixed_float16 moves the weights as float32 does: the loss is scaled
  (float16 gradients of an unscaled loss underflow) and unscaled once before the update
  (an unscaled loss with the optimizer's unscaling divides the step by the 2**15 scale)."""
  data = _digits()
  kw = dict(optimizer="sgd", learning_rate=0.1, train_steps=1)
  fp32 = trainer.train(data, SMALL, _defense(), _config(tmp_path / "fp32", **kw))
  fp16 = trainer.train(data, SMALL, _defense(), _config(tmp_path / "fp16",
                                                        precision="mixed_float16", **kw))
  assert keras.mixed_precision.global_policy().name == "float32"  # no leak
  assert fp16.model.get_layer("logits").compute_dtype == "float32"
  assert any(layer.compute_dtype == "float16" for layer in fp16.model.layers)
  keras.utils.set_random_seed(5)
  initial = _weights(zoo.build_model(SMALL, data.image_shape, data.num_classes))
  moved = 0
  for w0, a, b, v in zip(initial, _weights(fp32.model), _weights(fp16.model),
                         fp32.model.weights):
    if not v.trainable:
      continue
    d32, d16 = (a - w0).ravel(), (b - w0).ravel()
    assert np.linalg.norm(d32) > 1e-4, v.path
    # float16 activations: a few % off, not a factor of 2**15 (or 2**-15).
    np.testing.assert_allclose(np.linalg.norm(d16), np.linalg.norm(d32), rtol=0.1)
    assert d16 @ d32 > 0.95 * np.linalg.norm(d16) * np.linalg.norm(d32)
    moved += 1
  assert moved >= 4
  np.testing.assert_allclose(fp16.metrics["loss"], fp32.metrics["loss"], rtol=0.01)


RESNET = config_lib.ModelConfig(name="resnet18", width=2)


@pytest.mark.slow  # three ResNet-18 traces: ~25 s each on this CPU
def test_bfloat16_trains_with_the_float32_loss_within_tolerance(tmp_path):
  """bfloat16 under the default strategy and under MirroredStrategy (2 virtual CPUs) vs the
  float32 run: the same loss within tolerance, no NaN, float32 logits and master weights."""
  data = _digits()
  kw = dict(train_steps=2, learning_rate=1e-3, batch_size=16)
  defense = config_lib.DefenseConfig(name="pat", attack=config_lib.AttackConfig(
      name="pgd", eps=0.1, steps=1, random_start=False))
  fp32 = trainer.train(data, RESNET, defense, _config(tmp_path / "fp32", **kw))
  runs = {"default": None}
  if len(tf.config.list_logical_devices("CPU")) >= 2:
    runs["mirrored"] = strategy_lib.make_strategy("mirrored")
  for name, strategy in runs.items():
    bf16 = trainer.train(data, RESNET, defense, _config(
        tmp_path / name, precision="mixed_bfloat16", **kw), strategy=strategy)
    assert keras.mixed_precision.global_policy().name == "float32"  # no leak
    assert bf16.model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert bf16.model.get_layer("logits").compute_dtype == "float32"
    assert bf16.model.get_layer("conv1_conv").kernel.dtype == "float32"  # float32 masters
    for key in ("loss", "adv_ce"):
      assert np.isfinite(bf16.metrics[key])
      # Two steps of a ResNet in bfloat16 (8 bits of mantissa) vs float32: measured within
      # 5 % on one machine, 8.8 % on another; a wrong loss scale or a bf16 loss is far off.
      np.testing.assert_allclose(bf16.metrics[key], fp32.metrics[key], rtol=0.15)
    assert all(np.isfinite(w).all() for w in _weights(bf16.model))
    x = next(iter(data.test.batch(8)))[0]
    assert bf16.model(x).dtype == tf.float32
  assert "mirrored" in runs, "needs the 2 virtual CPU devices configured in conftest.py"


def test_resnet18_activation_option():
  silu = zoo.build_model(config_lib.ModelConfig(name="resnet18", width=2, activation="silu"),
                         (8, 8, 3), 10)
  relu = zoo.build_model(config_lib.ModelConfig(name="resnet18", width=2), (8, 8, 3), 10)
  assert silu.get_layer("conv2_block1_1_relu").activation.__name__ == "silu"
  assert relu.get_layer("conv2_block1_1_relu").activation.__name__ == "relu"
  assert [w.shape for w in silu.weights] == [w.shape for w in relu.weights]  # same layout
  x = tf.random.stateless_uniform([2, 8, 8, 3], [0, 1])
  relu.set_weights(silu.get_weights())
  assert not np.allclose(silu(x).numpy(), relu(x).numpy())
  with pytest.raises(ValueError, match="Invalid activation"):
    config_lib.ModelConfig(name="small_cnn", activation="gelu").validate()
