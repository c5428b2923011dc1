"""Exponential moving average (EMA) of a model's weights.

`average <- d_t * average + (1 - d_t) * weight` after every optimizer step, with the usual
warm-up of the decay `d_t = min(decay, (1 + t) / (10 + t))` (t = updates so far; the rule
of `tf.train.ExponentialMovingAverage(num_updates=...)`), so the first averages are not
dominated by the random initialisation. The average covers every floating-point weight of
the model, batch-norm statistics included (as timm's ModelEmaV2 averages the state dict).

Distribution: create the object under `strategy.scope()` and call `update` inside the
replica function, after `apply_gradients`. Weights are identical on every replica after the
all-reduced update, so the averages use `ONLY_FIRST_REPLICA` aggregation: each replica keeps
its copy, written from the first replica's value, with no extra all-reduce.

The object is a `tf.Module` holding only the averages and the update counter, so it goes
into a `tf.train.Checkpoint` beside the model (`ema=...`) and resumes exactly.
"""

import tensorflow as tf


def averaged_weights(model):
  """The weights an EMA of `model` averages: every floating-point weight, in model order."""
  return [v for v in model.weights if tf.as_dtype(v.dtype).is_floating]


def warmup_decay(decay, num_updates):
  """`min(decay, (1 + t) / (10 + t))` as a float32 tensor, t = `num_updates`."""
  t = tf.cast(num_updates, tf.float32)
  return tf.minimum(tf.constant(decay, tf.float32), (1.0 + t) / (10.0 + t))


class WeightEMA(tf.Module):
  """The moving averages of a list of weights (see the module docstring).

  Example:
    with strategy.scope():
      ema = WeightEMA(averaged_weights(model), decay=0.995)
    ...  # in the replica step, after optimizer.apply_gradients(...):
    ema.update(averaged_weights(model))
    ...  # evaluation / export:
    ema.copy_to(averaged_weights(model))
  """

  def __init__(self, weights, decay, name="ema"):
    """Starts the averages at the current values of `weights`.

    Args:
      weights: the variables to average (e.g. `averaged_weights(model)`); the same list, in
        the same order, must be passed to `update`, `copy_to` and `swap`.
      decay: the decay in (0, 1).
      name: the module name.

    Raises:
      ValueError: `decay` outside (0, 1).
    """
    super().__init__(name=name)
    if not 0.0 < decay < 1.0:
      raise ValueError(f"Invalid ema_decay: expected a decay in (0, 1); received "
                       f"ema_decay={decay!r}")
    self.decay = float(decay)
    first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    with tf.name_scope(name):
      self.averages = [
          tf.Variable(tf.convert_to_tensor(w), trainable=False, aggregation=first,
                      name=f"average_{i}")
          for i, w in enumerate(weights)]
      self.num_updates = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=first,
                                     name="num_updates")

  def _check(self, weights):
    if len(weights) != len(self.averages):
      raise ValueError(f"Invalid weights: expected the {len(self.averages)} weights the EMA "
                       f"was created with; received {len(weights)}")

  def update(self, weights):
    """One EMA step towards the current `weights` (call after each optimizer step)."""
    self._check(weights)
    d = warmup_decay(self.decay, self.num_updates)
    for average, w in zip(self.averages, weights):
      w = tf.cast(tf.convert_to_tensor(w), average.dtype)
      average.assign(tf.cast(d, average.dtype) * average
                     + tf.cast(1.0 - d, average.dtype) * w)
    self.num_updates.assign_add(1)

  def copy_to(self, weights):
    """Overwrites `weights` with the averages (the raw weights stay in the checkpoint)."""
    self._check(weights)
    for average, w in zip(self.averages, weights):
      w.assign(tf.cast(tf.convert_to_tensor(average), w.dtype))

  def swap(self, weights):
    """Exchanges `weights` and the averages; a second call restores both."""
    self._check(weights)
    for average, w in zip(self.averages, weights):
      raw = tf.identity(tf.convert_to_tensor(w))
      w.assign(tf.cast(tf.convert_to_tensor(average), w.dtype))
      average.assign(tf.cast(raw, average.dtype))
