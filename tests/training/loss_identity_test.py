"""The step's loss is the recipe's weighted sum of its terms, for every defense of the table.

The weights come from `tfadv.defenses.table` (plus this test's overrides), not from the
trainer or `recipes.build`; the terms and the loss are the step's own metrics of one tiny run
(small_cnn of width 4 on 8x8 digits, three steps of 16, the last step's values). A term
weighted wrongly in the step (0, twice, another term's weight) breaks the identity; each
weighted term is asserted large enough for that to show above float32 rounding.
"""

import keras
import numpy as np
import pytest

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.defenses import table
from tfadv.models import zoo
from tfadv.training import trainer

MODEL = config_lib.ModelConfig(name="small_cnn", width=4)
# AAD's default weights (0.01) leave its terms below float32 rounding of a loss of ~2.3 at
# the start of training: weight them so that a dropped or mis-weighted term shows.
OVERRIDES = {"rectification": 1.5, "preservation": 2.5}


def _data():
  return datasets.load(config_lib.DataConfig(name="digits"))


@pytest.mark.parametrize("name", table.NAMES)
def test_step_loss_is_the_weighted_sum_of_the_recipe_terms(tmp_path, name):
  defense = table.DEFENSES[name]
  weights = {t[0]: float(t[1]) for t in defense.terms}
  overrides = tuple(config_lib.TermConfig(n, w) for n, w in OVERRIDES.items() if n in weights)
  weights.update({t.name: t.weight for t in overrides})
  data = _data()
  static = {}
  if defense.static_sources:  # ensemble_at: one static model (in memory) besides the trained
    keras.utils.set_random_seed(9)
    static = dict(static_models=[zoo.build_model(MODEL, data.image_shape, data.num_classes)])
  config = config_lib.DefenseConfig(
      name=name, attack=config_lib.AttackConfig(eps=0.3, steps=1), terms=overrides,
      static_model_dirs=("in-memory",) if defense.static_sources else ())
  result = trainer.train(data, MODEL, config, config_lib.TrainConfig(
      model_dir=str(tmp_path), batch_size=16, train_steps=3, learning_rate=1e-2,
      log_every=1, checkpoint_every=10, image_every=0, progress=False, seed=1), **static)
  metrics = result.metrics
  assert set(weights) <= set(metrics), (sorted(weights), sorted(metrics))
  loss = metrics["loss"]
  expected = sum(w * metrics[n] for n, w in weights.items())
  tolerance = 2e-6 * max(1.0, abs(loss))
  assert abs(loss - expected) <= tolerance, (name, loss, expected)
  for term, weight in weights.items():
    # Dropping this term, or weighting it 0.5x / 2x, moves the sum far beyond the tolerance.
    assert 0.5 * abs(weight * metrics[term]) > 20 * tolerance, (name, term, metrics[term])
  assert np.isfinite(loss)
