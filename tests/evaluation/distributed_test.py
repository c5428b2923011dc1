"""Evaluation under MirroredStrategy on the 2 logical CPU devices: same counts as one device."""

import pytest
import tensorflow as tf

from tfadv.evaluation import robustness
from tfadv.evaluation import specs
from tfadv.training import strategy as strategy_lib
from tests import testing


@pytest.fixture(scope="module")
def strategy():
  cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
  if len(cpus) < 2:
    pytest.skip("needs the 2 logical CPU devices of tests/conftest.py")
  return strategy_lib.make_strategy("mirrored")


def test_split_batches_give_the_counts_of_one_device(strategy):
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  data = tf.data.Dataset.from_tensor_slices((xt[:200], yt[:200]))
  # Deterministic attacks (no random start, or none at all); apgd_ce starts at random, so
  # only its number of examples is compared.
  attacks = specs.parse_attacks("fgsm,pgd:steps=3:random_start=false,"
                                "fab_t:steps=3:target_classes=2,apgd_ce:steps=2", [0.1])
  # 75 examples in batches of 32: the last batch of 11 is split 6 + 5.
  seen = []
  one = robustness.evaluate(model, data, attacks, 75, 32)
  two = robustness.evaluate(model, data, attacks, 75, 32, strategy=strategy,
                            progress=lambda label, done: seen.append((label, done)))
  print(one.clean_correct, one.attack_correct, two.attack_correct)
  assert two.num_examples == one.num_examples == 75
  assert two.clean_correct == one.clean_correct
  for label in ("fgsm", "pgd3", "fab_t3"):
    assert two.attack_correct[label] == one.attack_correct[label], label
  assert two.attack_correct["fgsm"] < two.clean_correct  # the attacks did run
  # Measured: clean 50 of 75, every attack 21 on one device and on two. APGD's random
  # starts may differ with the split, so only "it ran" and "about the same" are asserted.
  assert two.attack_correct["apgd_ce2"] < two.clean_correct - 15
  assert abs(two.attack_correct["apgd_ce2"] - one.attack_correct["apgd_ce2"]) <= 3
  assert [done for label, done in seen if label == "fgsm"] == [32, 64, 75]
