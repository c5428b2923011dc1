"""A^3, the attention-augmented attack (AAD paper, section 4.3).

A gradient attack (FGSM, StepLL, Iter-StepLL or PGD) whose objective gains an attention-deviation term,
`loss(f(x_adv)) + sigma * ||Att(x) - g(x_adv)||_1` (the paper's eqs. 11-12, sigma = 10 in
its experiments): `Att(x)` is the binary attention area of the clean image
(`tfadv.attention.masks.attention_area`), `g(x_adv)` the Grad-CAM map of the adversarial
image (scaled to [0, 1] and upsampled to the image size), both for the true class. Pushing
the attention away from where the clean image's evidence was defeats defenses that only
keep the logits stable. The deviation is the l1 norm, summed over the pixels of the image
as the paper writes it (so on a 28x28 image a full deviation weighs 784 * sigma), not a
mean.

The attack needs Grad-CAM, so `model_fn` must carry a `gradcam_model` (a tapped model whose
call returns `logits` and `gradcam`): wrap a Keras classifier with `with_gradcam(model)`;
the evaluation does this for the model it attacks.
"""

import math

from cleverhans.tf2.utils import optimize_linear
import keras
import tensorflow as tf

from tfadv.attacks import common
from tfadv.attacks import objectives
from tfadv.attention import gradcam as gradcam_lib
from tfadv.attention import masks
from tfadv.models import taps


def _last_feature_map(model):
  for layer in reversed(model.layers):
    shape = getattr(layer, "output", None)
    if shape is not None and len(layer.output.shape) == 4:
      return layer.name
  raise ValueError(f"Invalid model: expected a convolutional classifier (a layer with a "
                   f"[B, h, w, c] output for Grad-CAM); received {model.name!r}")


def with_gradcam(model, gradcam_layer=None):
  """A `model_fn` (images -> logits, `training=False`) that A^3 can take Grad-CAM of.

  Args:
    model: a Keras functional or sequential classifier returning logits.
    gradcam_layer: the layer whose output Grad-CAM uses; None takes the last layer with a
      4-D output (the last convolutional feature map).
  """
  if not isinstance(model, keras.Model):
    raise ValueError(f"Invalid model: expected a keras.Model; received {type(model).__name__}")
  name = gradcam_layer or _last_feature_map(model)
  tapped = taps.tapped_model(model, [name], name)

  def model_fn(x):
    return model(x, training=False)

  model_fn.gradcam_model = tapped
  return model_fn


def a3(model_fn, x, y, eps, norm="linf", base="pgd", sigma=10.0, steps=10, step_size=None,
       kappa=None, random_start=True, seed=None):
  """FGSM / StepLL / PGD on `loss + sigma * ||Att(x) - g(x_adv)||_1`.

  Args:
    model_fn: images -> logits, with a `gradcam_model` attribute (see `with_gradcam`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball.
    norm: `linf` or `l2`.
    base: `fgsm` (one step of size eps), `stepll` (one step towards the least-likely
      class), `pgd` (`steps` projected steps from a random start) or `iter_stepll`
      (`steps` projected steps from `x` towards the least-likely class; the paper's
      Table 7 pairs A^3 with it and with PGD).
    sigma: weight of the l1 attention deviation (the paper's sigma, 10).
    steps: iterations of `pgd` and `iter_stepll`.
    step_size: their step; None means 2.5 * eps / steps.
    kappa: attention-area threshold (None: each image's mean, the paper's default).
    random_start: PGD starts from a uniform point of the ball (Iter-StepLL never does).
    seed: optional int tensor [2] for a stateless random start.

  Returns:
    Adversarial images within `eps` of `x` and in [0, 1].
  """
  order = common.norm_order(norm)
  if base not in ("fgsm", "stepll", "pgd", "iter_stepll"):
    raise ValueError(f"Invalid base: expected one of [fgsm, stepll, pgd, iter_stepll] for a3; "
                     f"received base={base!r}")
  tapped = getattr(model_fn, "gradcam_model", None)
  if tapped is None:
    raise ValueError("Invalid model_fn: A3 needs Grad-CAM; expected a model_fn from "
                     "tfadv.attacks.a3.with_gradcam(model); received one without "
                     "`gradcam_model`")
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0 or (base in ("pgd", "iter_stepll") and steps == 0):
    return x
  y = tf.cast(y, tf.int32)
  size = (x.shape[1], x.shape[2])
  clean_cam, _ = gradcam_lib.gradcam(tapped, x, y)
  area = masks.attention_area(clean_cam, size, kappa)
  if base in ("stepll", "iter_stepll"):
    target, sign = objectives.least_likely(model_fn, x), -1.0
  else:
    target, sign = y, 1.0

  def gradient(x_adv):
    with tf.GradientTape() as tape:
      tape.watch(x_adv)
      cam, outputs = gradcam_lib.gradcam(tapped, x_adv, y)
      g = gradcam_lib.normalize_cam(cam, size)
      deviation = tf.reduce_sum(tf.abs(area - g), axis=[1, 2])  # l1 norm (eq. 11)
      ce = tf.nn.sparse_softmax_cross_entropy_with_logits(target, outputs["logits"])
      total = tf.reduce_sum(sign * ce + sigma * deviation)
    return tape.gradient(total, x_adv)

  if base in ("fgsm", "stepll"):
    return common.project(x, x + optimize_linear(gradient(x), eps, order), eps, order)
  step = min(float(step_size or 2.5 * eps / steps), float(eps))
  # Iter-StepLL starts at x (BIM), as tfadv.attacks.stepll.iter_stepll.
  start = random_start and base == "pgd"
  x_adv = common.random_start(x, eps, order, seed) if start else x
  return common.iterate(
      lambda z: common.project(x, z + optimize_linear(gradient(z), step, order), eps, order),
      x_adv, steps)
