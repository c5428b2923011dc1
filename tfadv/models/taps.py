"""Tapped models: one call returns the logits and the feature maps the defenses need.

`tapped_model` builds a second functional model over the *same layers* as the classifier,
so it shares every variable (training one trains the other, a checkpoint of either holds
the same weights) and its logits are computed by exactly the same operations. The
feature maps are intermediate tensors of that forward pass, so gradients flow from the
logits to them (Grad-CAM) and from losses on them to the weights (attention pairing).

Example:

  model, tapped = build_tapped(ModelConfig(name="resnet18"), (32, 32, 3), 10)
  out = tapped(images, training=True)
  out["logits"], out["taps"][0], out["gradcam"]
"""

import keras

from tfadv.models import zoo


def tapped_model(model, tap_names, gradcam_name, extras=None):
  """Wraps a functional classifier so that one call returns logits, taps and Grad-CAM maps.

  Args:
    model: a Keras functional model `images -> logits` with a single output.
    tap_names: names of the layers whose outputs are the taps, in order (four for the
      zoo models: `zoo.tap_layer_names(name)`).
    gradcam_name: name of the layer whose output Grad-CAM differentiates the logits
      against (`zoo.gradcam_layer_name(name)`).
    extras: optional mapping output key -> layer name: the outputs of those layers are
      added to the output dict under those keys (ADP: `{"members": ...}`, see
      `tfadv.models.zoo.Built.extras`).

  Returns:
    A Keras model sharing `model`'s layers whose call returns a dict:
    `{"logits": [B, K], "taps": tuple of [B, h_j, w_j, c_j], "gradcam": [B, h, w, c]}`
    plus one entry per key of `extras` (`taps` empty and no `gradcam` for a user model
    without 4-D feature maps: only logit defenses can train it).

  Raises:
    ValueError: `model` has no single output, a name is not a layer of `model`, or an `extras` key is one of the reserved keys.
  """
  if len(model.outputs) != 1:
    raise ValueError(f"Invalid model: expected a functional model with one output (the "
                     f"logits); received {len(model.outputs)} outputs")
  tap_names = tuple(tap_names or ())
  outputs = {
      "logits": model.outputs[0],
      "taps": tuple(_layer_output(model, name, "tap_names") for name in tap_names),
  }
  if gradcam_name is not None:  # None: a user model without feature maps (logits only).
    outputs["gradcam"] = _layer_output(model, gradcam_name, "gradcam_name")
  for key, name in dict(extras or {}).items():
    if key in outputs:
      raise ValueError(f"Invalid extras: expected keys other than "
                       f"[{', '.join(sorted(outputs))}]; received key {key!r}")
    outputs[key] = _layer_output(model, name, "extras")
  return keras.Model(model.inputs, outputs, name=f"{model.name}_tapped")


def build_tapped(config, input_shape, num_classes):
  """Builds a zoo model and its tapped twin.

  Args:
    config: a `tfadv.config.ModelConfig`.
    input_shape: (height, width, channels) of the images.
    num_classes: number of logits K.

  Returns:
    (model, tapped): the classifier (images in [0, 1] -> logits) and `tapped_model` of it
    with the zoo's four stage taps and Grad-CAM layer.
  """
  model = zoo.build_model(config, input_shape, num_classes)
  tapped = tapped_model(model, zoo.tap_layer_names(config.name),
                        zoo.gradcam_layer_name(config.name))
  return model, tapped


def _layer_output(model, name, argument):
  """The output tensor of layer `name` of `model`, or a ValueError naming `argument`."""
  names = {layer.name for layer in model.layers}
  if name not in names:
    raise ValueError(f"Invalid {argument}: expected names of layers of model {model.name!r}; "
                     f"received {name!r}, which is not one of its layers")
  return model.get_layer(name).output


def layer_names(tapped):
  """(tap_names, gradcam_name) of a model made by `tapped_model`: the layers it reads.

  Lets an exporter rebuild the same taps on the plain classifier without knowing which
  builder (zoo model or defense wrapper) made it.
  """
  outputs = tapped.output

  def name(tensor):
    return tensor._keras_history.operation.name  # pylint: disable=protected-access

  gradcam = outputs.get("gradcam")
  return (tuple(name(t) for t in outputs["taps"]),
          name(gradcam) if gradcam is not None else None)
