"""The evaluation driver: one trace per attack for all batches, attacks only on clean-correct."""

import collections

import pytest
import tensorflow as tf

from tfadv.evaluation import robustness
from tfadv.evaluation import specs
from tests import testing


class _CountingModel:
  """The trained model, counting its Python-level calls (one per call site per trace)."""

  def __init__(self, model):
    self.model, self.calls = model, 0

  def __call__(self, x, training=False):
    self.calls += 1
    return self.model(x, training=training)


@pytest.fixture
def recorded(monkeypatch):
  """Wraps every bound attack: counts its traces and the rows it is given (in a variable)."""
  traces, rows = collections.Counter(), collections.defaultdict(
      lambda: tf.Variable(0, dtype=tf.int32))
  real = robustness.registry.from_config

  def from_config(config, seed=None):
    fn = real(config, seed)
    seen = rows[config.name]

    def wrapped(model_fn, x, y):
      traces[config.name] += 1  # Python: runs when traced only.
      seen.assign_add(tf.shape(x)[0])
      return fn(model_fn, x, y)

    return wrapped

  monkeypatch.setattr(robustness.registry, "from_config", from_config)
  return traces, rows


def _evaluate(num_examples, batch_size):
  _, _, xt, yt = testing.fashion_mnist_arrays()
  data = tf.data.Dataset.from_tensor_slices((xt[:num_examples], yt[:num_examples]))
  model = _CountingModel(testing.trained_undefended_model())
  attacks = specs.parse_attacks("fgsm,pgd:steps=2", [0.1])
  return robustness.evaluate(model, data, attacks, batch_size=batch_size), model.calls


def test_one_trace_per_attack_whatever_the_batches(recorded):
  traces, _ = recorded
  # 64 examples in batches of 24: 24, 24 and a shorter last batch of 16.
  result, calls = _evaluate(64, 24)
  assert result.num_examples == 64
  assert dict(traces) == {"fgsm": 1, "pgd": 1}
  traces.clear()
  _, calls_one_batch = _evaluate(16, 24)
  assert dict(traces) == {"fgsm": 1, "pgd": 1}
  assert calls == calls_one_batch  # the clean pass is traced once too


def test_attacks_run_only_on_the_clean_correct_examples(recorded):
  _, rows = recorded
  result, _ = _evaluate(64, 24)
  assert 0 < result.clean_correct < 64
  for name in ("fgsm", "pgd"):
    assert int(rows[name].numpy()) == result.clean_correct, name
  for label in ("fgsm", "pgd2"):
    assert result.attack_correct[label] < result.clean_correct, label
