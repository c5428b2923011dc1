"""A^3, the attention-augmented attack (AAD paper, section 4.3).

A gradient attack (FGSM, StepLL, Iter-StepLL or PGD) whose objective gains an
attention-deviation term, `loss(f(x_adv)) + sigma * ||Att(x) - g(x_adv)||_1` (the paper's
eqs. 11-12, sigma = 10 in its experiments): `Att(x)` is the binary attention area of the
clean image (`tfadv.attention.masks.attention_area`), `g(x_adv)` the Grad-CAM map of the
adversarial image scaled to [0, 1], both for the true class and both at Grad-CAM's own
resolution (h x w cells; the paper uses the map unresized when it needs no picture). Pushing
the attention away from where the clean image's evidence was is meant to defeat defenses
that only keep the logits stable.

Normalisation (the paper leaves it open). Taken literally (l1 summed over the 784 upsampled
pixels of a 28x28 image, times sigma = 10), the attention gradient is thousands of times the
cross-entropy's: the sign steps follow the attention alone and the attack fails where its
base succeeds (PGD-3 at eps 0.1 on an undefended Fashion-MNIST CNN: 12.2% accuracy, with
that A^3 84.2%; the paper reports A^3 slightly *stronger*, 13.6% -> 10.8%). Averaging over
the pixels or the Grad-CAM cells is not enough (36.6%, 37.6%): the deviation of a
max-normalised map can also grow by *raising* the true class's evidence outside the area,
which fights the cross-entropy. The steps of these attacks are sign (L-inf) or unit (L2)
steps, so only the *ratio* of the two gradients matters; the paper's results (a small gain
over the base) imply the attention gradient is a correction to the loss gradient, not its
master. So each example's attention gradient is rescaled to the loss gradient's L2 norm and
weighted `sigma / 100`:

  step direction = grad(loss) + (sigma / 100) * ||grad(loss)||_2 * grad(dev) / ||grad(dev)||_2

sigma is the attention gradient's size in percent of the loss gradient's: the paper's
sigma = 10 adds an attention push one tenth the size of the loss gradient; sigma = 0 is the
base attack exactly; sigma = 100 weighs both equally (measured: weaker than the base at
eps 0.1). docs/a3.md has the measurements.

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


def _l2(v):
  return tf.sqrt(tf.reduce_sum(tf.square(v), axis=list(range(1, v.shape.rank)),
                               keepdims=True))


def balance(loss_gradient, attention_gradient, sigma):
  """`g_loss + (sigma / 100) ||g_loss||_2 g_att / ||g_att||_2`, per example (see above).

  An example whose attention gradient is zero (an empty Grad-CAM map) keeps its loss
  gradient.
  """
  if sigma == 0:
    return loss_gradient
  unit = tf.math.divide_no_nan(attention_gradient, _l2(attention_gradient))
  return loss_gradient + (float(sigma) / 100.0) * _l2(loss_gradient) * unit


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
    sigma: weight of the attention deviation, in percent of the loss gradient's size
      (each example's attention gradient is rescaled to the loss gradient's L2 norm;
      the paper's sigma, 10; 0 is the base attack).
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
  clean_cam, _ = gradcam_lib.gradcam(tapped, x, y)
  cells = (clean_cam.shape[1], clean_cam.shape[2])  # Grad-CAM's own resolution.
  area = masks.attention_area(clean_cam, cells, kappa)
  if base in ("stepll", "iter_stepll"):
    target, sign = objectives.least_likely(model_fn, x), -1.0
  else:
    target, sign = y, 1.0

  def gradient(x_adv):
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(x_adv)
      cam, outputs = gradcam_lib.gradcam(tapped, x_adv, y)
      g = gradcam_lib.normalize_cam(cam, cells)
      deviation = tf.reduce_sum(tf.abs(area - g), axis=[1, 2])  # l1 norm (eq. 11)
      ce = tf.nn.sparse_softmax_cross_entropy_with_logits(target, outputs["logits"])
      loss, attention = tf.reduce_sum(sign * ce), tf.reduce_sum(deviation)
    return balance(tape.gradient(loss, x_adv), tape.gradient(attention, x_adv), sigma)

  if base in ("fgsm", "stepll"):
    return common.project(x, x + optimize_linear(gradient(x), eps, order), eps, order)
  step = min(float(step_size or 2.5 * eps / steps), float(eps))
  # Iter-StepLL starts at x (BIM), as tfadv.attacks.stepll.iter_stepll.
  start = random_start and base == "pgd"
  x_adv = common.random_start(x, eps, order, seed) if start else x
  return common.iterate(
      lambda z: common.project(x, z + optimize_linear(gradient(z), step, order), eps, order),
      x_adv, steps)
