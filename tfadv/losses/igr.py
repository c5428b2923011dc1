"""Input gradient regularisation, IGR (Ross & Doshi-Velez, 2018): `||grad_x CE(f(x), y)||^2`.

The penalty is differentiated with respect to the weights by double backpropagation:
an inner `GradientTape` computes `grad_x CE` while the trainer's outer tape records that
computation, so `outer_tape.gradient(penalty, weights)` flows through the gradient.

Use: inside the train step's tape, a forward hook calls `input_gradient_forward` on the
clean images and stores the norm under `clean["input_grad_norm"]`; the loss is then
`CE(clean) + lambda * igr_term`.
"""

import tensorflow as tf

from tfadv.losses import cross_entropy as cross_entropy_lib

# The key of the per-example squared input-gradient norm in `Forward.clean`.
INPUT_GRAD_NORM = "input_grad_norm"


def input_gradient_forward(tapped, x, y, training=True):
  """One forward pass that also returns `||grad_x CE(f(x), y)||_2^2` per example.

  Call it inside the outer `GradientTape` of the train step: the returned norm is then
  differentiable with respect to the weights (double backpropagation).

  Args:
    tapped: a model called as `tapped(x, training=...)` returning logits or a dict with
      `"logits"` (a `tfadv.models.taps.tapped_model`).
    x: float images [B, H, W, C] (any shape with a leading batch dimension).
    y: int labels [B].
    training: passed to the model. With BatchNorm in training mode the batch statistics
      couple the examples, so each example's gradient also carries the small influence
      of the others on the batch statistics (the gradient of the summed CE is used).

  Returns:
    (outputs, norm): the model's outputs (a dict; a bare logits output becomes
    `{"logits": ...}`) and the squared L2 norm of each example's input gradient, [B].
  """
  x = tf.convert_to_tensor(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    outputs = tapped(x, training=training)
    if not isinstance(outputs, dict):
      outputs = {"logits": outputs}
    # Examples are independent (up to BatchNorm), so the gradient of the sum holds each
    # example's own input gradient in its row.
    ce = tf.reduce_sum(cross_entropy_lib.cross_entropy(outputs["logits"], y))
  grad = tape.gradient(ce, x)
  norm = tf.reduce_sum(tf.square(tf.reshape(grad, [tf.shape(grad)[0], -1])), axis=-1)
  return outputs, norm


def input_gradient_norm(tapped, x, y, training=True):
  """`||grad_x CE(f(x), y)||_2^2` per example, [B]; see `input_gradient_forward`."""
  return input_gradient_forward(tapped, x, y, training=training)[1]


def igr_term(forward):
  """IGR of a `Forward` record: `forward.clean["input_grad_norm"]`, [B].

  Raises:
    ValueError: the clean pass is missing or has no `input_grad_norm` (the defense did
      not run the IGR forward hook).
  """
  clean = forward.require("clean", "igr")
  if INPUT_GRAD_NORM not in clean:
    raise ValueError(f"Loss term 'igr' needs clean[{INPUT_GRAD_NORM!r}], the squared input "
                     "gradient norm computed by the IGR forward hook "
                     "(tfadv.losses.igr.input_gradient_forward inside the step's tape); "
                     f"received clean keys {sorted(clean)}")
  return clean[INPUT_GRAD_NORM]
