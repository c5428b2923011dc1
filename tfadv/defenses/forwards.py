"""The forward passes of one training step, derived from what the loss terms read.

`make_forward(passes, ...)` returns `forward(tapped, x, x_adv, y) -> Forward`: the record
the loss terms read (`tfadv.losses.forward`), with the tapped model's output dicts on the
clean and adversarial images, extended with what the terms need
(`tfadv.losses.registry.PASSES`):

- `cam`: Grad-CAM maps [B, h, w] of the true class, from an inner tape that the step's tape
  records, so a loss on the maps reaches the weights (AAD's preservation);
- `masked`: `masked_logits`, the logits on the images with their attention area removed
  (AAD's rectification). The masked pass runs in inference mode: it must not move
  BatchNorm's statistics towards masked images, which the model never classifies;
- `input_grad`: `input_grad_norm`, `||grad_x CE(f(x), y)||^2` per example, by a nested tape
  (IGR's double backpropagation).

Clean and adversarial images go through the model in one concatenated batch when
`joint=True` (Kannan et al.'s mixed minibatch: BatchNorm normalises both together) or in two
separate calls when `joint=False` (TRADES' reference: separate BatchNorm statistics per pass).
The hooks run under the step's `GradientTape`, in a replica context, inside `tf.function`.
"""

import tensorflow as tf

from tfadv.attention import gradcam
from tfadv.attention import masks
from tfadv.losses import forward as forward_lib
from tfadv.losses import igr


def _split(outputs, n):
  """Splits every tensor of an output dict at batch index `n`.

  `tf.split`, not two slices: the gradient of a slice is a zero tensor of the full batch
  with the slice's gradient written into it, so two slices of a tap cost two full-size
  zero fills and their sum (at 28x28x32 taps, a third of an AT+ALP step on the CPU); the
  gradient of `tf.split` is one concat. The values and gradients are the same.
  """
  halves = {}  # A tensor listed twice (the Grad-CAM layer is also a tap) is split once.
  for t in tf.nest.flatten(outputs):
    if t.ref() not in halves:
      halves[t.ref()] = tf.split(t, tf.stack([n, tf.shape(t)[0] - n]), num=2, axis=0)
  flat = [halves[t.ref()] for t in tf.nest.flatten(outputs)]
  return (tf.nest.pack_sequence_as(outputs, [first for first, _ in flat]),
          tf.nest.pack_sequence_as(outputs, [second for _, second in flat]))


def attention_forward(tapped, x, x_adv, y, kappa=None, masked=True, training=True):
  """The AAD passes: Grad-CAM on clean and adversarial images, then their masked twins.

  One Grad-CAM pass (forward plus the inner gradient to the Grad-CAM layer, recorded by the
  outer tape so `L_p` is differentiable) runs on `concat(x, x_adv)` for the true classes;
  when `masked`, a second forward runs, in inference mode, on the images with their
  attention areas removed (`masks.attention_area`, `masks.mask_images`; the mask itself
  carries no gradient).

  Args:
    tapped: the tapped model (`logits`, `taps`, `gradcam`).
    x: clean images [B, H, W, C] (static H, W).
    x_adv: adversarial images, same shape.
    y: int labels [B]: the class whose evidence Grad-CAM maps (no label leaking: these are
      the training labels the loss uses anyway).
    kappa: attention threshold (None: per-image mean of the map; see `masks`).
    masked: also run the masked forward (the rectification term needs it).
    training: forwarded to the Grad-CAM pass.

  Returns:
    A `Forward` record: `clean` and `adv`, the tapped model's output dicts on `x` and
    `x_adv`, each with `cam` ([B, h, w] raw Grad-CAM maps) and, when `masked`,
    `masked_logits` ([B, K]); `joint`, the same on `concat(x, x_adv)`.
  """
  n = tf.shape(x)[0]
  both = tf.concat([x, x_adv], 0)
  labels = tf.cast(tf.concat([y, y], 0), tf.int32)
  cam, outputs = gradcam.gradcam(tapped, both, labels, training=training)
  outputs = dict(outputs, cam=cam)
  if masked:
    area = masks.attention_area(cam, size=tuple(x.shape[1:3]), kappa=kappa)
    outputs["masked_logits"] = tapped(masks.mask_images(both, area), training=False)["logits"]
  clean, adv = _split(outputs, n)
  return forward_lib.Forward(labels=y, clean=clean, adv=adv, joint=outputs)


def make_forward(passes, joint=True, kappa=None):
  """The step's forward function for a set of passes.

  Args:
    passes: the union of the terms' `needs` (`clean`, `adv`, `cam`, `masked`,
      `input_grad`, `members`; `members` comes with the tapped model's own outputs).
    joint: clean and adversarial images in one batch (True) or in separate calls.
    kappa: the attention threshold of the masked pass.

  Returns:
    `forward(tapped, x, x_adv, y) -> Forward`; an output is None when no term reads it.
  """
  passes = frozenset(passes)
  unknown = passes - {"clean", "adv", "cam", "masked", "input_grad", "members"}
  if unknown:
    raise ValueError(f"Invalid passes: expected clean, adv, cam, masked, input_grad or "
                     f"members; received {sorted(unknown)}")
  if passes & {"cam", "masked"} and not {"clean", "adv"} <= passes:
    raise ValueError("Invalid passes: Grad-CAM terms need both the clean and the "
                     "adversarial pass")

  def forward(tapped, x, x_adv, y):
    if passes & {"cam", "masked"}:
      return attention_forward(tapped, x, x_adv, y, kappa=kappa, masked="masked" in passes)
    clean = adv = None
    if "input_grad" in passes:
      clean, norm = igr.input_gradient_forward(tapped, x, y, training=True)
      clean = dict(clean, **{igr.INPUT_GRAD_NORM: norm})
    if "adv" in passes and "clean" in passes and clean is None and joint:
      outputs = tapped(tf.concat([x, x_adv], 0), training=True)
      clean, adv = _split(outputs, tf.shape(x)[0])
      return forward_lib.Forward(labels=y, clean=clean, adv=adv, joint=outputs)
    if "clean" in passes and clean is None:
      clean = tapped(x, training=True)
    if "adv" in passes:
      adv = tapped(x_adv, training=True)
    return forward_lib.Forward(labels=y, clean=clean, adv=adv)

  return forward
