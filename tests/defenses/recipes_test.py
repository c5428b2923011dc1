"""The attention and TRADES recipes: their terms, and finite non-zero weight gradients of
every term through the AAD forward hook (Grad-CAM's nested tape, masked images)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.defenses import forwards
from tfadv.defenses import recipes
from tfadv.losses import cross_entropy
from tfadv.losses import forward as forward_lib
from tfadv.losses import logit_pairing
from tfadv.losses import preservation
from tfadv.losses import rectification
from tfadv.losses import trades
from tfadv.models import taps as taps_lib


def _terms(recipe):
  return {t.name: t.weight for t in recipe.terms}


def test_new_recipes_have_the_documented_terms_and_weights():
  base = config_lib.DefenseConfig(rectification_weight=0.02, preservation_weight=0.03,
                                  trades_beta=4.0, alp_weight=0.5, at_weight=1.0)
  build = lambda name, **kw: recipes.build(dataclasses.replace(base, name=name, **kw))
  assert _terms(build("aad")) == {"adv_ce": 1.0, "rectification": 0.02,
                                  "preservation": 0.03}
  assert _terms(build("alp_aad")) == {"clean_ce": 0.5, "adv_ce": 0.5, "alp": 0.5,
                                      "rectification": 0.02, "preservation": 0.03}
  assert _terms(build("at_alp_aad")) == {"clean_ce": 0.5, "adv_ce": 0.5, "alp": 0.5,
                                         "at": 1.0, "rectification": 0.02,
                                         "preservation": 0.03}
  assert _terms(build("trades")) == {"clean_ce": 1.0, "trades_kl": 4.0}
  for name in ("aad", "alp_aad", "at_alp_aad"):
    recipe = build(name)
    assert recipe.needs_clean and recipe.needs_adv and recipe.forward is not None
    assert recipe.attack.name == "pgd"
  trades_recipe = build("trades")
  assert trades_recipe.attack.name == "trades" and trades_recipe.forward is None
  assert trades_recipe.attack.eps == base.attack.eps
  assert set(recipes.DEFENSES) >= {"aad", "alp_aad", "trades", "at_alp_aad"}


def test_zero_weights_drop_the_terms_and_their_passes():
  config = config_lib.DefenseConfig(name="aad", rectification_weight=0.0)
  recipe = recipes.build(config)
  assert set(_terms(recipe)) == {"adv_ce", "preservation"}
  assert recipe.forward.keywords["masked"] is False
  recipe = recipes.build(dataclasses.replace(config, preservation_weight=0.0))
  assert set(_terms(recipe)) == {"adv_ce"} and recipe.forward is None


@pytest.mark.parametrize("field,value", [("rectification_weight", -1.0),
                                         ("preservation_weight", -0.1), ("kappa", 1.5),
                                         ("trades_beta", -6.0)])
def test_invalid_settings_name_the_field(field, value):
  config = dataclasses.replace(config_lib.DefenseConfig(name="aad"), **{field: value})
  with pytest.raises(ValueError, match=f"Invalid {field}: .*received {field}="):
    recipes.build(config)


def _toy():
  keras.utils.set_random_seed(0)
  return taps_lib.build_tapped(config_lib.ModelConfig(name="small_cnn", width=4), (12, 12, 1), 3)


def test_attention_forward_adds_cams_and_masked_logits():
  _, tapped = _toy()
  x = tf.random.stateless_uniform([5, 12, 12, 1], seed=[1, 1])
  x_adv = tf.clip_by_value(x + 0.1, 0.0, 1.0)
  y = tf.constant([0, 1, 2, 0, 1])
  clean, adv = forwards.attention_forward(tapped, x, x_adv, y, kappa=0.3, training=False)
  assert clean["cam"].shape == (5, 3, 3) and adv["masked_logits"].shape == (5, 3)
  # The same numbers as running the pieces by hand on the adversarial half.
  np.testing.assert_allclose(adv["logits"].numpy(), tapped(x_adv)["logits"].numpy(),
                             rtol=1e-5, atol=1e-6)
  from tfadv.attention import gradcam, masks  # pylint: disable=g-import-not-at-top
  cam, _ = gradcam.gradcam(tapped, x_adv, y)
  np.testing.assert_allclose(adv["cam"].numpy(), cam.numpy(), rtol=1e-4, atol=1e-6)
  masked = masks.mask_images(x_adv, masks.attention_area(cam, (12, 12), 0.3))
  np.testing.assert_allclose(adv["masked_logits"].numpy(), tapped(masked)["logits"].numpy(),
                             rtol=1e-4, atol=1e-5)


TERMS = {
    "clean_ce": cross_entropy.clean_cross_entropy,
    "adv_ce": cross_entropy.adversarial_cross_entropy,
    "alp": logit_pairing.logit_pairing_term,
    "rectification": rectification.rectification_term,
    "preservation": preservation.preservation_term,
    "trades_kl": trades.kl_term,
}


def test_every_term_has_finite_non_zero_weight_gradients_in_tf_function():
  model, tapped = _toy()
  x = tf.random.stateless_uniform([8, 12, 12, 1], seed=[2, 3])
  x_adv = tf.clip_by_value(x + tf.random.stateless_uniform(x.shape, [4, 5], -0.2, 0.2), 0, 1)
  y = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])

  @tf.function
  def gradients(name):
    with tf.GradientTape() as tape:
      clean, adv = forwards.attention_forward(tapped, x, x_adv, y, training=True)
      record = forward_lib.Forward(labels=y, clean=clean, adv=adv)
      loss = tf.reduce_mean(TERMS[name](record))
    return tape.gradient(loss, model.trainable_variables)

  for name in TERMS:
    grads = gradients(name)
    for variable, grad in zip(model.trainable_variables, grads):
      if name == "preservation" and variable.path == "logits/bias":
        # A bias adds a constant to the logit and leaves its gradient with respect to the
        # features unchanged: Grad-CAM maps, hence L_p, do not depend on the head's bias.
        assert grad is None
        continue
      assert grad is not None, (name, variable.path)
      assert np.all(np.isfinite(grad.numpy())), (name, variable.path)
      if variable.path.endswith("kernel"):  # every layer's kernel shapes every term
        assert np.abs(grad.numpy()).sum() > 0, (name, variable.path)


@pytest.mark.parametrize("name,expected", [
    ("none", set()),
    ("pat", {"adv_ce_fraction"}),
    ("at_alp", {"adv_ce_fraction", "alp_weight", "at_weight", "taps", "attention_p"}),
    ("trades", {"trades_beta"}),
    ("aad", {"adv_ce_fraction", "rectification_weight", "preservation_weight", "kappa"}),
])
def test_settings_list_only_what_the_recipe_reads(name, expected):
  config = config_lib.DefenseConfig(name=name, alp_weight=0.3)
  settings = recipes.settings(config)
  assert set(settings) == expected
  if "alp_weight" in expected:
    assert settings["alp_weight"] == 0.3
  # Every listed weight of a term is a weight the built recipe actually uses.
  weights = {t.name: t.weight for t in recipes.build(config).terms}
  if "alp_weight" in settings:
    assert weights["alp"] == settings["alp_weight"]
  if "trades_beta" in settings:
    assert weights["trades_kl"] == settings["trades_beta"]
