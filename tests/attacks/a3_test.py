"""A^3: sigma = 0 is PGD exactly; sigma > 0 moves the attention away from the clean area."""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import a3
from tfadv.attacks import pgd
from tfadv.attention import gradcam
from tfadv.attention import masks
from tests import testing

SEED = tf.constant([1, 2])


@pytest.fixture(scope="module")
def setup():
  model = testing.trained_undefended_model()
  _, _, xt, yt = testing.fashion_mnist_arrays()
  return model, a3.with_gradcam(model), tf.constant(xt[:128]), tf.constant(yt[:128])


def _deviation(model_fn, x, x_adv, y):
  size = x.shape[1:3]
  area = masks.attention_area(gradcam.gradcam(model_fn.gradcam_model, x, y)[0], size)
  cam = gradcam.normalize_cam(gradcam.gradcam(model_fn.gradcam_model, x_adv, y)[0], size)
  return float(tf.reduce_mean(tf.abs(area - cam)))


def test_sigma_zero_is_pgd(setup):
  _, model_fn, x, y = setup
  expected = pgd.pgd(model_fn, x, y, 0.1, steps=5, seed=SEED)
  got = a3.a3(model_fn, x, y, 0.1, sigma=0.0, steps=5, seed=SEED)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)


def test_attention_term_increases_the_deviation(setup):
  model, model_fn, x, y = setup
  plain = pgd.pgd(model_fn, x, y, 0.1, steps=5, seed=SEED)
  attn = tf.function(lambda x, y: a3.a3(model_fn, x, y, 0.1, sigma=10.0, steps=5,
                                        seed=SEED))(x, y)
  dev_plain, dev_a3 = _deviation(model_fn, x, plain, y), _deviation(model_fn, x, attn, y)
  print(f"attention deviation: PGD {dev_plain:.3f}, A3 {dev_a3:.3f}; accuracy "
        f"{testing.accuracy(model, plain, y):.3f} / {testing.accuracy(model, attn, y):.3f}")
  assert dev_a3 > dev_plain
  # With the paper's l1 units the attention term dominates the cross-entropy at sigma = 10:
  # on 256 images PGD-10 0.27, A3-PGD-10 0.66 (sigma 0.01: 0.36), clean 0.80. Still an attack.
  assert testing.accuracy(model, attn, y) < testing.accuracy(model, x, y) - 0.05


@pytest.mark.parametrize("base", ["fgsm", "stepll"])
def test_single_step_bases(setup, base):
  model, model_fn, x, y = setup
  # sigma 0.001 (l1 units): the cross-entropy still leads (FGSM 0.36 -> 0.39, StepLL 0.71).
  x_adv = a3.a3(model_fn, x, y, 0.1, base=base, sigma=0.001)
  assert float(tf.reduce_max(tf.abs(x_adv - x))) <= 0.1 + 1e-6
  assert testing.accuracy(model, x_adv, y) < testing.accuracy(model, x, y)


def test_needs_gradcam(setup):
  model, _, x, y = setup
  with pytest.raises(ValueError, match="with_gradcam"):
    a3.a3(lambda z: model(z), x, y, 0.1)
  with pytest.raises(ValueError, match="base"):
    a3.a3(a3.with_gradcam(model), x, y, 0.1, base="cw")


def test_attention_term_is_the_l1_norm_of_the_paper(setup):
  # Eqs. 11-12 of the AAD paper: the FGSM step ascends CE + sigma * ||Att(x) - g(x_adv)||_1
  # (a sum over the pixels, not a mean: a mean would be 784 times weaker on 28x28).
  _, model_fn, x, y = setup
  x, y = x[:32], y[:32]
  size = x.shape[1:3]
  area = masks.attention_area(gradcam.gradcam(model_fn.gradcam_model, x, y)[0], size)
  with tf.GradientTape() as tape:
    tape.watch(x)
    cam, outputs = gradcam.gradcam(model_fn.gradcam_model, x, y)
    l1 = tf.reduce_sum(tf.abs(area - gradcam.normalize_cam(cam, size)), axis=[1, 2])
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, outputs["logits"])
    total = tf.reduce_sum(ce + 10.0 * l1)
  expected = tf.clip_by_value(x + 0.1 * tf.sign(tape.gradient(total, x)), 0.0, 1.0)
  got = a3.a3(model_fn, x, y, 0.1, base="fgsm", sigma=10.0)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)


def test_iter_stepll_base_with_sigma_zero_is_iter_stepll(setup):
  from tfadv.attacks import stepll  # pylint: disable=g-import-not-at-top
  _, model_fn, x, y = setup
  expected = stepll.iter_stepll(model_fn, x, y, 0.1, steps=3)
  got = a3.a3(model_fn, x, y, 0.1, base="iter_stepll", sigma=0.0, steps=3)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)
