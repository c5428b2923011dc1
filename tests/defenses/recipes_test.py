"""Defenses as data: the table's recipes, overrides of their terms, the passes the terms
imply, and finite non-zero weight gradients of every term through the forward hooks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.defenses import forwards
from tfadv.defenses import recipes
from tfadv.defenses import table
from tfadv.losses import registry as terms_lib
from tfadv.models import taps as taps_lib

T = config_lib.TermConfig


def _terms(recipe):
  return {t.name: t.weight for t in recipe.terms}


def _build(name, *terms, **fields):
  return recipes.build(config_lib.DefenseConfig(name=name, terms=terms, **fields))


def test_recipes_have_the_documented_terms_attacks_and_passes():
  assert _terms(_build("none")) == {"clean_ce": 1.0}
  assert _build("none").attack is None and _build("none").passes == {"clean"}
  assert _terms(_build("pat")) == {"adv_ce": 1.0} and _build("pat").passes == {"adv"}
  assert _terms(_build("at_alp")) == {"clean_ce": 0.5, "adv_ce": 0.5, "alp": 0.5, "at": 1.0}
  # AAD, eq. 10: the classification loss on both branches, alpha = beta = 0.01.
  assert _terms(_build("aad")) == {"clean_ce": 0.5, "adv_ce": 0.5, "rectification": 0.01,
                                   "preservation": 0.01}
  assert _build("aad").passes == {"clean", "adv", "cam", "masked"}
  trades = _build("trades")
  assert _terms(trades) == {"clean_ce": 1.0, "trades_kl": 6.0}
  assert trades.attack.name == "trades" and trades.attack.eps == 0.1
  assert _build("stepll_at").attack.name == "stepll"
  assert _build("fgsm_rs").attack.name == "fgsm_rs" and _build("n_fgsm").attack.name == "n_fgsm"
  assert _terms(_build("igr")) == {"clean_ce": 1.0, "igr": 10.0}
  assert _build("igr").attack is None and "input_grad" in _build("igr").passes


def test_every_table_entry_builds():
  for name, defense in table.DEFENSES.items():
    dirs = ("/some/run",) if defense.static_sources else ()
    recipe = _build(name, static_model_dirs=dirs)
    assert recipe.terms and recipe.name == name
    assert (recipe.attack is not None) == ("adv" in recipe.passes)


def test_overrides_replace_weights_add_terms_and_zero_drops_term_and_its_passes():
  recipe = _build("pat", T("alp", 0.25), T("adv_ce", 0.5), T("clean_ce", 0.5))
  assert _terms(recipe) == {"adv_ce": 0.5, "clean_ce": 0.5, "alp": 0.25}
  assert recipe.passes == {"clean", "adv"}
  recipe = _build("aad", T("rectification", 0.0))
  assert set(_terms(recipe)) == {"clean_ce", "adv_ce", "preservation"}
  assert "masked" not in recipe.passes and "cam" in recipe.passes
  recipe = _build("aad", T("rectification", 0.0), T("preservation", 0.0))
  assert recipe.passes == {"clean", "adv"}
  # Options reach the bound term: AT over the last tap only differs from AT over all.
  at_options = {t.name: t.options for t in _build("at", T("at", 1.0, {"taps": (3,)})).terms}
  assert at_options["at"] == {"taps": (3,), "p": 2.0}


@pytest.mark.parametrize("terms,match", [
    ((T("nope", 1.0),), r"Invalid term: expected one of \[.*alp.*\]; received term='nope'"),
    ((T("at", 1.0, {"taps": (5,)}),), r"Invalid at:taps: expected tap indices"),
    ((T("at", 1.0, {"colour": 1}),), r"Invalid at option: expected one of \[taps, p\]"),
    ((T("rectification", 0.1, {"kappa": 1.5}),), r"Invalid rectification:kappa"),
    ((T("alp", -1.0),), r"Invalid alp weight: expected a non-negative weight"),
    ((T("adv_ce", 0.0),), r"Invalid terms: expected at least one term"),
])
def test_invalid_terms_are_one_line_errors(terms, match):
  with pytest.raises(ValueError, match=match):
    _build("pat", *terms)


def test_static_models_are_required_exactly_where_the_defense_takes_them():
  with pytest.raises(ValueError, match="Invalid static_model_dirs: defense ensemble_at"):
    _build("ensemble_at")
  with pytest.raises(ValueError, match="Invalid static_model_dirs: defense pat takes no"):
    _build("pat", static_model_dirs=("/x",))


def test_parse_terms():
  assert terms_lib.parse_terms("alp:0.5, at:1:taps=2/3,igr:0") == (
      ("alp", 0.5, {}), ("at", 1.0, {"taps": "2/3"}), ("igr", 0.0, {}))
  for text, match in (("alp", "no weight"), ("alp:x", "non-negative weight"),
                      ("zzz:1", "Invalid term"), ("at:1:taps", "key=value"),
                      ("at:1:taps=a", "Invalid at:taps")):
    with pytest.raises(ValueError, match=match):
      terms_lib.parse_terms(text)


def test_settings_record_the_terms_and_weights_that_shaped_the_loss():
  config = config_lib.DefenseConfig(name="at_alp", terms=(T("alp", 0.3),))
  settings = recipes.settings(config)
  assert settings == {"attack": "pgd", "clean_ce": 0.5, "adv_ce": 0.5, "alp": 0.3,
                      "at": 1.0, "at.taps": "all", "at.p": 2.0,
                      "clean_ce.label_smoothing": 0.0, "adv_ce.label_smoothing": 0.0}
  assert recipes.settings(config_lib.DefenseConfig(name="none")) == {
      "attack": None, "clean_ce": 1.0, "clean_ce.label_smoothing": 0.0}


def test_defense_config_round_trips_through_its_json_form():
  from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
  config = config_lib.DefenseConfig(
      name="at", attack=config_lib.AttackConfig(eps=0.2, steps=3),
      terms=(T("at", 0.7, {"taps": (1, 2)}),), static_model_dirs=())
  import json  # pylint: disable=g-import-not-at-top
  again = config_lib.DefenseConfig.from_dict(json.loads(json.dumps(trainer.to_jsonable(config))))
  assert again == config


def _toy(name="small_cnn", width=4):
  keras.utils.set_random_seed(0)
  return taps_lib.build_tapped(config_lib.ModelConfig(name=name, width=width), (12, 12, 1), 3)


def test_attention_forward_adds_cams_and_masked_logits():
  _, tapped = _toy()
  x = tf.random.stateless_uniform([5, 12, 12, 1], seed=[1, 1])
  x_adv = tf.clip_by_value(x + 0.1, 0.0, 1.0)
  y = tf.constant([0, 1, 2, 0, 1])
  record = forwards.attention_forward(tapped, x, x_adv, y, kappa=0.3, training=False)
  clean, adv = record.clean, record.adv
  assert record.joint["cam"].shape == (10, 3, 3)
  assert clean["cam"].shape == (5, 3, 3) and adv["masked_logits"].shape == (5, 3)
  np.testing.assert_allclose(adv["logits"].numpy(), tapped(x_adv)["logits"].numpy(),
                             rtol=1e-5, atol=1e-6)
  from tfadv.attention import gradcam, masks  # pylint: disable=g-import-not-at-top
  cam, _ = gradcam.gradcam(tapped, x_adv, y)
  np.testing.assert_allclose(adv["cam"].numpy(), cam.numpy(), rtol=1e-4, atol=1e-6)
  masked = masks.mask_images(x_adv, masks.attention_area(cam, (12, 12), 0.3))
  np.testing.assert_allclose(adv["masked_logits"].numpy(), tapped(masked)["logits"].numpy(),
                             rtol=1e-4, atol=1e-5)


def _moving_stats(model):
  return [v.numpy().copy() for v in model.non_trainable_variables if "moving" in v.path]


def test_masked_pass_leaves_batchnorm_statistics_alone():
  model, tapped = _toy("resnet18", 2)
  x = tf.random.stateless_uniform([4, 12, 12, 1], seed=[1, 2])
  x_adv = tf.clip_by_value(x + 0.1, 0.0, 1.0)
  y = tf.constant([0, 1, 2, 0])
  start = _moving_stats(model)
  forwards.attention_forward(tapped, x, x_adv, y, masked=False)
  without_mask = _moving_stats(model)
  assert any(not np.allclose(a, b) for a, b in zip(start, without_mask))  # BN did update
  for v, value in zip([v for v in model.non_trainable_variables if "moving" in v.path], start):
    v.assign(value)
  forwards.attention_forward(tapped, x, x_adv, y, masked=True)
  for a, b in zip(without_mask, _moving_stats(model)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_separate_passes_normalise_clean_and_adversarial_batches_apart():
  _, tapped = _toy("resnet18", 2)
  x = tf.random.stateless_uniform([4, 12, 12, 1], seed=[3, 4])
  x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(x.shape, [5, 6], -0.3, 0.3), 0, 1)
  y = tf.constant([0, 1, 2, 0])
  alone = tapped(x, training=True)["logits"].numpy()
  separate = forwards.make_forward({"clean", "adv"}, joint=False)(tapped, x, x_adv, y)
  joint = forwards.make_forward({"clean", "adv"}, joint=True)(tapped, x, x_adv, y)
  assert separate.joint is None and joint.joint["logits"].shape == (8, 3)
  np.testing.assert_allclose(separate.clean["logits"].numpy(), alone, rtol=1e-5, atol=1e-5)
  assert not np.allclose(joint.clean["logits"].numpy(), alone, atol=1e-4)  # mixed BN batch


def test_every_registered_term_has_finite_non_zero_weight_gradients_in_tf_function():
  model, tapped = _toy()
  x = tf.random.stateless_uniform([8, 12, 12, 1], seed=[2, 3])
  x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(x.shape, [4, 5], -0.2, 0.2), 0, 1)
  y = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])
  names = [n for n, t in terms_lib.TERMS.items() if "members" not in t.needs]

  @tf.function
  def gradients(name):
    term = terms_lib.TERMS[name]
    forward = forwards.make_forward(term.needs | {"clean", "adv"})
    with tf.GradientTape() as tape:
      record = forward(tapped, x, x_adv, y)
      loss = tf.reduce_mean(term.bind(term.defaults())(record))
    return tape.gradient(loss, model.trainable_variables)

  for name in names:
    grads = gradients(name)
    for variable, grad in zip(model.trainable_variables, grads):
      if name == "preservation" and variable.path == "logits/bias":
        # A bias adds a constant to the logit and leaves its gradient with respect to the
        # features unchanged: Grad-CAM maps, hence L_p, do not depend on the head's bias.
        assert grad is None
        continue
      if name == "at" and variable.path.split("/")[0] in ("fc1", "logits"):
        assert grad is None  # The taps end before the dense head: AT cannot reach it.
        continue
      assert grad is not None, (name, variable.path)
      assert np.all(np.isfinite(grad.numpy())), (name, variable.path)
      if variable.path.endswith("kernel"):  # every layer's kernel shapes every term
        assert np.abs(grad.numpy()).sum() > 0, (name, variable.path)


def test_label_smoothing_reaches_every_cross_entropy_term_in_closed_form():
  config = recipes.with_label_smoothing(config_lib.DefenseConfig(name="at_alp"), 0.1)
  options = {t.name: t.options for t in recipes.build(config).terms}
  assert options["clean_ce"] == {"label_smoothing": 0.1}
  assert options["adv_ce"] == {"label_smoothing": 0.1}
  assert "label_smoothing" not in options["alp"]
  # A term's own setting wins.
  own = config_lib.DefenseConfig(name="pat", terms=(T("adv_ce", 1.0, {"label_smoothing": 0.2}),))
  own = recipes.with_label_smoothing(own, 0.1)
  assert {t.name: t.options for t in recipes.build(own).terms}["adv_ce"] == {
      "label_smoothing": 0.2}
  from tfadv.losses import cross_entropy  # pylint: disable=g-import-not-at-top
  logits = tf.constant([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
  labels = tf.constant([0, 2])
  log_p = tf.nn.log_softmax(logits).numpy()
  expected = -(0.9 * log_p[[0, 1], [0, 2]] + 0.1 * log_p.mean(axis=1))
  np.testing.assert_allclose(cross_entropy.cross_entropy(logits, labels, 0.1).numpy(),
                             expected, rtol=1e-5)
