"""The step's loss is the recipe's weighted sum of its terms, for every defense of the table.

The weights come from `tfadv.defenses.table` (plus this test's overrides), not from the
trainer or `recipes.build`; the terms and the loss are the step's own metrics of one tiny run
(small_cnn of width 4 on 8x8 digits, three steps of 16, the last step's values). A term
weighted wrongly in the step (0, twice, another term's weight) breaks the identity; each
weighted term is asserted large enough for that to show above float32 rounding. The
logged loss could be right while the gradient is not: for at_alp the first SGD step is also
compared with the step on the loss written out from the paper's definitions.
"""

import keras
import numpy as np
import tensorflow as tf
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


def _first_at_alp_step(tapped, x, y, eps, lr, weights):
  """w - lr * grad of the AT+ALP loss of batch (x, y), written out from the paper's
  definitions (DESIGN.md section 4) on PGD-1 (= FGSM, no random start) images."""
  model_vars = tapped.trainable_variables
  with tf.GradientTape() as tape:
    tape.watch(x)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, tapped(x)["logits"])
  x_adv = tf.clip_by_value(x + eps * tf.sign(tape.gradient(ce, x)), 0.0, 1.0)

  def attention(a):  # Q / ||Q||_2, Q = vec(sum_c A_c^2)
    q = tf.reshape(tf.reduce_sum(tf.square(a), axis=-1), [a.shape[0], -1])
    return q / tf.norm(q, axis=-1, keepdims=True)

  with tf.GradientTape() as tape:
    clean, adv = tapped(x, training=True), tapped(x_adv, training=True)
    terms = {
        "clean_ce": tf.nn.sparse_softmax_cross_entropy_with_logits(y, clean["logits"]),
        "adv_ce": tf.nn.sparse_softmax_cross_entropy_with_logits(y, adv["logits"]),
        "alp": tf.reduce_sum(tf.square(clean["logits"] - adv["logits"]), axis=-1),
        "at": tf.add_n([tf.norm(attention(a) - attention(c), axis=-1)
                        for c, a in zip(clean["taps"], adv["taps"])]),
    }
    loss = tf.reduce_mean(tf.add_n([w * terms[n] for n, w in weights.items()]))
  grads = tape.gradient(loss, model_vars)
  return {v.path: (v - lr * g).numpy() for v, g in zip(model_vars, grads)}


def test_at_alp_step_descends_the_weighted_sum_written_out(tmp_path):
  """The identity through the gradient, not only the logged loss: one SGD step of at_alp
  equals the step on 0.5 CE + 0.5 CE_adv + 0.5 ALP + 1.0 AT computed here; dropping ALP
  or AT, or weighting ALP 1.0, gives another step."""
  from tfadv.models import taps as taps_lib  # pylint: disable=g-import-not-at-top
  from tests import testing  # pylint: disable=g-import-not-at-top
  data_config = config_lib.DataConfig(name="digits", shuffle_buffer=1)
  data = datasets.load(data_config)
  eps, lr = 0.3, 0.5
  attack = config_lib.AttackConfig(eps=eps, steps=1, step_size=eps, random_start=False)
  result = trainer.train(data, MODEL, config_lib.DefenseConfig(name="at_alp", attack=attack),
                         config_lib.TrainConfig(
                             model_dir=str(tmp_path), batch_size=32, train_steps=1,
                             optimizer="sgd", learning_rate=lr, checkpoint_every=10,
                             image_every=0, progress=False, seed=3), data_config)
  x, y = next(iter(data.train.batch(32)))
  y = tf.cast(y, tf.int32)

  def expected(**weights):
    keras.utils.set_random_seed(3)
    _, tapped = taps_lib.build_tapped(MODEL, data.image_shape, data.num_classes)
    return _first_at_alp_step(tapped, x, y, eps, lr, weights)

  recipe = dict(clean_ce=0.5, adv_ce=0.5, alp=0.5, at=1.0)
  testing.assert_weights(result.model, expected(**recipe), rtol=1e-3, atol=1e-6)
  for wrong in (dict(recipe, alp=0.0), dict(recipe, at=0.0), dict(recipe, alp=1.0)):
    assert testing.differs(result.model, expected(**wrong), atol=1e-6), wrong
