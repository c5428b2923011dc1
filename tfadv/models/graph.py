"""Re-running a functional model's layers inside another functional graph.

The model wrappers (randomization, noise, feature denoising, ensembles) must return ONE
flat functional model, so that taps, Grad-CAM layers and extras are plain layers of it
(`model.get_layer(name)` works) and everything, randomness included, lives in the
exported SavedModel. A nested model would hide its layers. `rebuild` clones the layers
of a zoo model (with their weights) onto a new input, optionally transforming that input
first, inserting blocks after named layers, or prefixing every layer name (ensemble
members). Cloning rather than reusing the layers matters: `layer.output` is the output
of a layer's FIRST call, so reused layers would point taps at the discarded graph.
"""

import keras


def rebuild(model, inputs, *, before=None, after=None, prefix=""):
  """Clones the layers of `model` onto `inputs` in the caller's graph; returns the output.

  Args:
    model: a single-input, single-output Keras functional model.
    inputs: a `keras.Input` of the new model (same shape as `model`'s input).
    before: optional callable `tensor -> tensor` applied once to `inputs` before the
      model's first layers (randomization, noise injection).
    after: optional mapping layer name (of `model`) -> callable `tensor -> tensor`,
      applied to that layer's output before the following layers see it (denoising
      blocks after ResNet stages).
    prefix: each layer is cloned as `prefix + name` with a copy of its weights (a
      non-empty prefix lets several copies of one architecture coexist in one model:
      ensemble members). `model` itself is left as it was and should be discarded.

  Returns:
    The output tensor (the logits) of the rebuilt graph, connected to `inputs`.
  """
  after = dict(after or {})
  source_of = {}

  def clone_function(layer):
    config = layer.get_config()
    config["name"] = prefix + layer.name
    clone = layer.__class__.from_config(config)
    source_of[id(clone)] = layer
    return clone

  transformed = []

  def call_function(layer, *args, **kwargs):
    if before is not None and args and args[0] is inputs:
      if not transformed:  # one transformed input shared by every first layer
        transformed.append(before(inputs))
      args = (transformed[0],) + args[1:]
    out = layer(*args, **kwargs)
    source = source_of.get(id(layer), layer)
    if source.name in after:
      out = after[source.name](out)
    return out

  clone = keras.models.clone_model(model, input_tensors=inputs,
                                   clone_function=clone_function,
                                   call_function=call_function)
  for layer in clone.layers:
    source = source_of.get(id(layer))
    if source is not None and source.weights:
      layer.set_weights(source.get_weights())
  return clone.outputs[0]
