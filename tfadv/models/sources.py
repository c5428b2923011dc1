"""Where every model enters tfadv: a zoo name, a Keras file, a SavedModel or a Keras model.

One resolver, `build(model_config, input_shape, num_classes)`, turns any source into the
`tfadv.models.zoo.Built` record the defenses consume: a flat functional classifier taking
float32 images in [0, 1] of the data's shape and returning logits, the names of its stage
taps and of its Grad-CAM layer. Nothing else in tfadv cares where a model came from.

Users' models arrive as they are shipped, and are adapted once, here:
- **Nested backbones** (a keras.applications model called as a layer inside the user's
  functional model) are flattened: every leaf layer is cloned, with its weights, into one
  flat graph, so taps and Grad-CAM can read any layer (`model.get_layer(name)` works) and
  each cloned layer is called exactly once.
- **A softmax at the end** (a `Softmax` layer, `Activation("softmax")`, or a Dense with
  `activation="softmax"`) is dropped or made linear: attacks and losses see the pre-softmax
  logits. A SavedModel that serves probabilities has no graph to edit: its
  log-probabilities stand in for the logits (cross-entropy, the CW margin and DLR are
  shift-invariant, so they are equal up to rounding) and `Built.notes` warns that saturated
  probabilities can mask gradients.
- **Input range**: a model expecting 0..255 (its own leading `Rescaling(1/255)`, as
  keras.applications EfficientNet) or [-1, 1] (`input_range`) gets an `InputRange` layer in
  front, so the classifier still takes [0, 1] images and eps stays in [0, 1] pixel units.
- **Channels**: grayscale data for a 3-channel model is repeated to 3 channels in front
  (`RepeatChannels`), so attacks perturb the data's own single channel.
- **Taps**: the stage ends are found automatically (`find_taps`) unless named.

Example:

  config = ModelConfig(name="my_model", path="my_model.keras")
  built = build(config, (32, 32, 3), 10)
  built.model, built.tap_names, built.gradcam_name, built.notes
"""

import dataclasses
import os
import shutil
from typing import Optional, Tuple

import keras
import numpy as np

from tfadv.models import zoo

# The file a training run keeps its user model's architecture (and initial weights) in.
RUN_MODEL_FILE = "model.keras"

INPUT_RANGES = {"0,1": (0.0, 1.0), "0,255": (0.0, 255.0), "-1,1": (-1.0, 1.0)}

_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@keras.saving.register_keras_serializable(package="tfadv")
class InputRange(keras.layers.Layer):
  """Maps images in [0, 1] to [low, high], the range the wrapped model expects."""

  def __init__(self, low=0.0, high=1.0, **kwargs):
    super().__init__(**kwargs)
    self.low, self.high = float(low), float(high)

  def call(self, inputs):
    return inputs * (self.high - self.low) + self.low

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "low": self.low, "high": self.high}


@keras.saving.register_keras_serializable(package="tfadv")
class RepeatChannels(keras.layers.Layer):
  """Repeats a single-channel image to `channels` channels (grayscale data, RGB model)."""

  def __init__(self, channels=3, **kwargs):
    super().__init__(**kwargs)
    self.channels = int(channels)

  def call(self, inputs):
    return keras.ops.repeat(inputs, self.channels, axis=-1)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.channels,)

  def get_config(self):
    return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="tfadv")
class SavedModelClassifier(keras.layers.Layer):
  """A SavedModel's serving function as a layer: images -> logits (or log-probabilities).

  Keras' `TFSMLayer` calls the endpoint; a dict of outputs is reduced to its single entry
  (or its `logits`). With `log_probabilities`, the output is log(p), the stand-in for the
  logits of a model that serves probabilities.
  """

  def __init__(self, path, endpoint="serve", output_key=None, log_probabilities=False,
               **kwargs):
    super().__init__(**kwargs)
    # `path` is a Layer property in Keras 3: the directory is kept as `saved_model_path`.
    self.saved_model_path, self.endpoint, self.output_key = path, endpoint, output_key
    self.log_probabilities = bool(log_probabilities)
    self.inner = keras.layers.TFSMLayer(path, call_endpoint=endpoint, trainable=False)

  def call(self, inputs):
    out = self.inner(inputs)
    if isinstance(out, dict):
      out = out[self.output_key] if self.output_key else next(iter(out.values()))
    out = keras.ops.cast(out, "float32")
    if self.log_probabilities:
      out = keras.ops.log(keras.ops.maximum(out, 1e-30))
    return out

  def get_config(self):
    return {**super().get_config(), "path": self.saved_model_path, "endpoint": self.endpoint,
            "output_key": self.output_key, "log_probabilities": self.log_probabilities}


@dataclasses.dataclass(frozen=True)
class Loaded:
  """A user model as loaded, before adaptation: the Keras model and what kind it is."""
  model: keras.Model
  kind: str  # "keras" (a .keras/.h5 file or an in-memory model) or "saved_model"
  path: Optional[str] = None


def is_zoo(name):
  return name in zoo.MODEL_NAMES


def load(path, safe_mode=True):
  """Loads a `.keras`/`.h5` file or a SavedModel directory, with one-line errors.

  Args:
    path: the file or directory.
    safe_mode: Keras' safe mode (no Lambda layers / arbitrary code deserialised).

  Raises:
    FileNotFoundError: nothing at `path`.
    ValueError: not a model file, unsafe content in safe mode, a missing custom object.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"Invalid model: expected a zoo name [{', '.join(zoo.MODEL_NAMES)}], "
                            f"a .keras/.h5 file or a SavedModel directory; {path!r} does not "
                            "exist")
  if os.path.isdir(path):
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      raise ValueError(f"Invalid model: expected a SavedModel directory (with saved_model.pb) "
                       f"or a .keras/.h5 file; {path!r} is a directory without saved_model.pb")
    return Loaded(_saved_model_classifier(path), "saved_model", path)
  if not path.endswith(_KERAS_SUFFIXES):
    raise ValueError(f"Invalid model: expected a .keras or .h5 file or a SavedModel "
                     f"directory; received {path!r}")
  try:
    model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
  except Exception as e:  # Keras raises ValueError, TypeError, OSError, zipfile errors...
    text = " ".join(str(e).split())
    if "safe_mode" in text or "Lambda" in text:
      raise ValueError(f"Invalid model: {path!r} holds a Lambda layer or other code that "
                       "Keras' safe mode refuses to load; if you trust the file, pass "
                       "--unsafe_load (safe_mode=False)") from None
    if "Could not locate" in text or "Unknown layer" in text or "custom" in text.lower():
      raise ValueError(f"Invalid model: {path!r} needs a custom object Keras cannot find "
                       f"({text[:300]}); register it with "
                       "@keras.saving.register_keras_serializable in a module the command "
                       "imports") from None
    raise ValueError(f"Invalid model: {path!r} is not a loadable Keras model "
                     f"({type(e).__name__}: {text[:300]})") from None
  if not isinstance(model, keras.Model):
    raise ValueError(f"Invalid model: {path!r} holds a {type(model).__name__}, not a "
                     "keras.Model")
  return Loaded(model, "keras", path)


def _saved_model_classifier(path):
  """A functional model over a SavedModel's serving endpoint (no taps, no Grad-CAM)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  loaded = tf.saved_model.load(path)
  endpoint = "serve" if hasattr(loaded, "serve") else "serving_default"
  if endpoint == "serving_default" and endpoint not in loaded.signatures:
    raise ValueError(f"Invalid model: the SavedModel {path!r} has neither a `serve` endpoint "
                     "nor a `serving_default` signature")
  fn = getattr(loaded, "serve") if endpoint == "serve" else loaded.signatures[endpoint]
  if endpoint == "serve":
    specs = [s for s in tf.nest.flatten(fn.input_signature or ())]
  else:
    specs = list(fn.structured_input_signature[1].values())
  if len(specs) != 1:
    raise ValueError(f"Invalid model: expected a SavedModel with one image input; {path!r} "
                     f"takes {len(specs)} inputs")
  shape = tuple(specs[0].shape)
  if len(shape) != 4:
    raise ValueError(f"Invalid model: expected a SavedModel over images [batch, H, W, C]; "
                     f"{path!r} takes inputs of shape {list(shape)}")
  if endpoint == "serve":
    concrete = getattr(fn, "concrete_functions", None) or [None]
    outputs = getattr(concrete[0], "structured_outputs", None)
  else:
    outputs = fn.structured_outputs
  key = None
  if isinstance(outputs, dict):
    if len(outputs) != 1 and "logits" not in outputs:
      raise ValueError(f"Invalid model: expected a SavedModel with one output (or `logits`); "
                       f"{path!r} returns {sorted(outputs)}")
    key = "logits" if "logits" in outputs else None
  layer = SavedModelClassifier(path, endpoint, key, name="saved_model")
  inputs = keras.Input(shape[1:], dtype="float32", name="images")
  return keras.Model(inputs, layer(inputs), name=os.path.basename(os.path.normpath(path)))


def graph_of(model):
  """The functional graph of `model` (Sequential included), or None (subclassed, SavedModel)."""
  if isinstance(model, keras.Sequential):
    if getattr(model, "_functional", None) is None and model.inputs:
      model.build(model.inputs[0].shape)  # pragma: no cover - built Sequentials have one
    return getattr(model, "_functional", None)
  if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth") and getattr(
      model, "_is_graph_network", hasattr(model, "_nodes_by_depth")):
    try:
      model.inputs  # pylint: disable=pointless-statement
    except AttributeError:
      return None
    return model if model.inputs else None
  return None


def _leaf_layers(model):
  """The leaf layers of a (possibly nested) functional model, in graph order."""
  graph = graph_of(model)
  if graph is None:
    return []
  out = []
  for layer in graph.layers:
    if graph_of(layer) is not None:
      out.extend(_leaf_layers(layer))
    elif not isinstance(layer, keras.layers.InputLayer):
      out.append(layer)
  return out


def _is_softmax(layer):
  """True for a layer that only applies a softmax."""
  if isinstance(layer, keras.layers.Softmax):
    return True
  if isinstance(layer, keras.layers.Activation):
    return getattr(layer.activation, "__name__", "") == "softmax"
  return type(layer).__name__ == "Softmax"  # keras.ops.softmax as a graph operation


def _has_softmax_activation(layer):
  return (not isinstance(layer, keras.layers.Activation) and
          getattr(getattr(layer, "activation", None), "__name__", "") == "softmax")


def _final_operation(model):
  """The operation producing `model`'s output, looking into nested models."""
  graph = graph_of(model)
  if graph is None:
    return None
  op = graph.outputs[0]._keras_history.operation  # pylint: disable=protected-access
  inner = graph_of(op) if isinstance(op, keras.Model) else None
  return _final_operation(op) if inner is not None else op


def expected_input_range(model):
  """The input range a model expects, read from a leading `Rescaling` layer: a key of
  `INPUT_RANGES`. 0..255 when the first leaf layer rescales by <= 1/127 (EfficientNet's
  `Rescaling(1/255)`, `Rescaling(1/127.5, offset=-1)`), else [0, 1]."""
  leaves = _leaf_layers(model)
  if leaves and isinstance(leaves[0], keras.layers.Rescaling):
    scale = np.asarray(leaves[0].scale, dtype=np.float64)
    if np.all(np.abs(scale) <= 1.0 / 127.0 + 1e-9):
      return "0,255"
  return "0,1"


def flatten(model, inputs, front=()):
  """Re-creates `model`'s graph on `inputs` as ONE flat graph of cloned leaf layers.

  Args:
    model: a functional or Sequential Keras model, possibly with nested models.
    inputs: a `keras.Input` (the data's image shape).
    front: layers applied to `inputs` before the model's first layers.

  Returns:
    (logits, notes): the output tensor (softmax removed at the end) and what was changed.
  """
  final = _final_operation(model)
  notes = []
  taken = set()
  clones = {}

  def clone_of(layer, parents):
    if id(layer) in clones:
      return clones[id(layer)]
    config = layer.get_config()
    name = layer.name
    if name in taken:  # A nested model's layer named like one outside it.
      name = "_".join(parents + (layer.name,))
    taken.add(name)
    config["name"] = name
    if layer is final and _has_softmax_activation(layer):
      config["activation"] = "linear"
      notes.append(f"pre-softmax logits recovered: layer {layer.name!r} made linear")
    clone = layer.__class__.from_config(config)
    clones[id(layer)] = (layer, clone)
    return clones[id(layer)]

  def run(graph, tensors, parents):
    def operation_fn(op):
      inner = graph_of(op) if isinstance(op, keras.Model) else None
      if inner is not None:
        def call_nested(*args, **kwargs):
          del kwargs  # `training` reaches the leaves from the flat model's own call.
          return run(inner, args[0] if len(args) == 1 else list(args),
                     parents + (op.name,))
        return call_nested
      if not isinstance(op, keras.layers.Layer):
        return op  # A keras.ops operation: no weights, reused.
      if op is final and _is_softmax(op):
        notes.append(f"pre-softmax logits recovered: final softmax {op.name!r} removed")
        return lambda *args, **kwargs: args[0]
      _, clone = clone_of(op, parents)
      return clone
    return graph._run_through_graph(tensors, operation_fn)  # pylint: disable=protected-access

  x = inputs
  for layer in front:
    x = layer(x)
  graph = graph_of(model)
  outputs = run(graph, x, (model.name,))
  if isinstance(outputs, (list, tuple)):
    outputs = outputs[0]
  for original, clone in clones.values():
    if original.weights:
      clone.set_weights(original.get_weights())
  if final is not None and isinstance(final, keras.layers.Layer) and not notes and (
      type(final).__name__ == "Softmax"):
    notes.append("pre-softmax logits recovered: final softmax operation removed")
  return outputs, notes


def find_taps(model, max_taps=4):
  """Stage ends and the Grad-CAM layer of a flat functional classifier, by shape.

  A stage end is the last layer at each spatial resolution of the feature extractor (4-D
  outputs; padding layers, which only change the grid by a border, are skipped, and so are
  1x1 grids, whose attention map carries no spatial information); the deepest `max_taps`
  are the taps, in order. Grad-CAM reads the last of them (the last 4-D map before pooling).

  Returns:
    (tap_names, gradcam_name): a tuple of up to `max_taps` names (empty when the model has
    no 4-D feature map), and the Grad-CAM layer name (None when there are no taps).
  """
  graph = graph_of(model)
  if graph is None:
    return (), None
  last_at = {}  # (h, w) -> name of the last layer with that grid, in graph order.
  order = []
  for layer in graph.layers:
    if isinstance(layer, (keras.layers.InputLayer, InputRange, RepeatChannels,
                          keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
      continue
    try:
      shape = layer.output.shape
    except (AttributeError, ValueError):
      continue
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[1] * shape[2] <= 1:
      continue
    grid = (int(shape[1]), int(shape[2]))
    if grid not in last_at:
      order.append(grid)
    last_at[grid] = layer.name
  taps = tuple(last_at[g] for g in order)[-max_taps:]
  return taps, (taps[-1] if taps else None)


def _check_names(model, names, argument):
  layers = {layer.name for layer in model.layers}
  for name in names:
    if name not in layers:
      hint = ", ".join(sorted(n for n in layers)[:12])
      raise ValueError(f"Invalid {argument}: expected layer names of the model (after "
                       f"flattening nested models: {hint}, ...); received {name!r}")
    shape = model.get_layer(name).output.shape
    if len(shape) != 4:
      raise ValueError(f"Invalid {argument}: expected a layer with a 4-D output [B, h, w, c]; "
                       f"layer {name!r} outputs shape {list(shape)}")


def _check_io(model, source):
  if len(model.inputs) != 1:
    raise ValueError(f"Invalid model: expected one image input; {source!r} has "
                     f"{len(model.inputs)} inputs")
  if len(model.outputs) != 1:
    raise ValueError(f"Invalid model: expected one output (the class scores); {source!r} has "
                     f"{len(model.outputs)} outputs")
  shape = tuple(model.inputs[0].shape)
  if len(shape) != 4:
    raise ValueError(f"Invalid model: expected an image input [batch, H, W, C]; {source!r} "
                     f"takes inputs of shape {list(shape)}")
  return shape[1:]


def _front(model_shape, data_shape, source):
  """Layers adapting the data's images to the model's input; raises on a size mismatch."""
  h, w, c = model_shape
  dh, dw, dc = data_shape
  if (h is not None and h != dh) or (w is not None and w != dw):
    raise ValueError(f"Invalid model: {source!r} takes {h}x{w}x{c} images; the data has "
                     f"{dh}x{dw}x{dc} (resize the data with --image_size={h},{w})")
  if c is not None and c != dc:
    if dc == 1 and c == 3:
      return [RepeatChannels(3, name="repeat_channels")], [
          "grayscale data repeated to 3 channels in front of the model"]
    raise ValueError(f"Invalid model: {source!r} takes {c}-channel images; the data has "
                     f"{dc} channels")
  return [], []


def build(config, input_shape, num_classes, model=None):
  """The `zoo.Built` record of any model source.

  Args:
    config: a `ModelConfig`: a zoo name, or `path` to a user model, with the taps, Grad-CAM
      layer, input range and safe-mode options.
    input_shape: the data's (height, width, channels).
    num_classes: the data's number of classes.
    model: an in-memory Keras model to use instead of `config.path`.

  Returns:
    A `zoo.Built`; user models get `notes` saying what was adapted.

  Raises:
    ValueError / FileNotFoundError: one-line errors naming the file, layer or shape.
  """
  if model is None and config.path is None:
    return zoo.build(config, input_shape, num_classes)
  source = config.path or getattr(model, "name", "model")
  loaded = Loaded(model, "keras") if model is not None else load(config.path, config.safe_mode)
  return adapt(loaded, config, input_shape, num_classes, source)


def adapt(loaded, config, input_shape, num_classes, source):
  """Adapts a loaded user model (see the module docstring); returns a `zoo.Built`."""
  model = loaded.model
  input_shape = tuple(int(s) for s in input_shape)
  graph = graph_of(model)
  notes = []
  if graph is None and loaded.kind == "keras":
    # Subclassed: called as it is; no layer can be tapped.
    inputs = keras.Input(input_shape, dtype="float32", name="images")
    front, front_notes = _front((None, None, None), input_shape, source)
    logits = model(inputs) if not front else model(_apply(front, inputs))
    flat = keras.Model(inputs, logits, name=_name(config, model))
    notes += front_notes + ["subclassed model: no layers to tap (attention defenses need a "
                            "functional model or --taps)"]
  else:
    model_shape = _check_io(model, source)
    front, notes = _front(model_shape, input_shape, source)
    input_range = config.input_range
    if input_range == "auto":
      input_range = expected_input_range(model) if graph is not None else "0,1"
    if input_range != "0,1":
      low, high = INPUT_RANGES[input_range]
      front = [InputRange(low, high, name="input_range")] + front
      notes.append(f"images in [0, 1] mapped to [{low:g}, {high:g}] in front of the model "
                   "(eps stays in [0, 1] pixel units of the data)")
    inputs = keras.Input(input_shape, dtype="float32", name="images")
    if loaded.kind == "saved_model":
      logits = model(_apply(front, inputs))
      logits, prob_notes = _saved_model_logits(model, logits, inputs)
      notes += prob_notes
      flat = keras.Model(inputs, logits, name=_name(config, model))
    elif _usable_as_is(model, front, input_shape):
      flat = model  # Trained in place: nothing to adapt.
    else:
      logits, flat_notes = flatten(model, inputs, front)
      notes += flat_notes
      flat = keras.Model(inputs, logits, name=_name(config, model))
  if flat.outputs[0].dtype != "float32":
    # Mixed precision: logits, losses and attack perturbations stay float32 (as the zoo's).
    logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(
        flat.outputs[0])
    flat = keras.Model(flat.inputs, logits, name=flat.name)
  if int(flat.outputs[0].shape[-1]) != int(num_classes):
    raise ValueError(f"Invalid model: {source!r} predicts {flat.outputs[0].shape[-1]} classes; "
                     f"the data has {num_classes}")
  notes += _batch_norm(flat, config.bn_momentum)
  taps, gradcam = tuple(config.taps), config.gradcam_layer
  found_taps, found_gradcam = find_taps(flat)
  if taps:
    _check_names(flat, taps, "taps")
  else:
    taps = found_taps
  if gradcam:
    _check_names(flat, (gradcam,), "gradcam_layer")
  else:
    gradcam = taps[-1] if taps else found_gradcam
  return zoo.Built(flat, taps, gradcam, {}, tuple(notes))


def _batch_norm(model, momentum):
  """Sets BatchNormalization momentum (`bn_momentum`), or notes a slow one; returns notes."""
  norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
  if not norms:
    return []
  if momentum is not None:
    for layer in norms:
      layer.momentum = float(momentum)
    return [f"BatchNormalization momentum set to {momentum:g} in {len(norms)} layers"]
  slow = [l for l in norms if l.momentum > 0.99]
  if slow:
    return [f"BatchNormalization momentum {slow[0].momentum:g} in {len(slow)} layers: their "
            "moving statistics lag for thousands of steps, and the training attack and the "
            "evaluation run in inference mode on them (set --bn_momentum=0.9 for short "
            "runs)"]
  return []


def _usable_as_is(model, front, input_shape):
  """A flat functional model over the data's shape ending in logits needs no rebuild."""
  graph = graph_of(model)
  if front or graph is None:
    return False
  if any(graph_of(layer) is not None for layer in graph.layers):
    return False
  final = _final_operation(model)
  if final is None or _is_softmax(final) or _has_softmax_activation(final):
    return False
  return tuple(model.inputs[0].shape[1:]) == tuple(input_shape)


def _apply(layers, x):
  for layer in layers:
    x = layer(x)
  return x


def _saved_model_logits(model, logits, inputs):
  """Marks a SavedModel serving probabilities: its log-probabilities stand in for logits."""
  del inputs
  layer = next(l for l in model.layers if isinstance(l, SavedModelClassifier))
  probe = np.random.default_rng(0).uniform(size=(4,) + tuple(
      int(d) for d in model.inputs[0].shape[1:])).astype("float32")
  out = np.asarray(layer(probe))
  if np.all(out >= 0) and np.allclose(out.sum(-1), 1.0, atol=1e-3):
    layer.log_probabilities = True
    return logits, ["the SavedModel serves probabilities: its log-probabilities stand in "
                    "for the logits (equal up to a per-example shift; saturated "
                    "probabilities can mask gradients: check the sanity warnings)"]
  return logits, []


def _name(config, model):
  return config.name if config.name and not is_zoo(config.name) else model.name


def persist(config, model_dir, model=None):
  """Keeps a user model's architecture and initial weights in `model_dir` (model.keras).

  Every later command (evaluate, export, analyze, resume) rebuilds the model from that
  copy, without the original file. A copy already there is kept (its checkpoint belongs to
  it).

  Returns:
    The config with `path` set to `RUN_MODEL_FILE` (relative to `model_dir`).
  """
  if config.path is None and model is None:
    return config
  target = os.path.join(model_dir, RUN_MODEL_FILE)
  if config.path and os.path.abspath(config.path) == os.path.abspath(target):
    return dataclasses.replace(config, path=RUN_MODEL_FILE)
  if not os.path.exists(target):
    os.makedirs(model_dir, exist_ok=True)
    tmp = target + ".tmp.keras"
    if model is not None:
      model.save(tmp)
    elif config.path.endswith(".keras"):
      shutil.copyfile(config.path, tmp)
    elif os.path.isdir(config.path):
      raise ValueError(f"Invalid model: training needs a .keras or .h5 file; {config.path!r} "
                       "is a SavedModel (evaluate and export it with --model, or train its "
                       "Keras source)")
    else:
      load(config.path, config.safe_mode).model.save(tmp)
    os.replace(tmp, target)
  return dataclasses.replace(config, path=RUN_MODEL_FILE)


def resolve_path(config, model_dir):
  """`config` with a relative `path` made absolute against `model_dir` (run configs)."""
  if config.path and not os.path.isabs(config.path) and model_dir:
    candidate = os.path.join(model_dir, config.path)
    if os.path.exists(candidate):
      return dataclasses.replace(config, path=candidate)
  return config


def describe(built):
  """What a report or model card says about the layers used: a JSON-ready dict."""
  return {"taps": list(built.tap_names), "gradcam_layer": built.gradcam_name,
          "notes": list(getattr(built, "notes", ()))}


def needs_taps(passes, terms):
  """How many taps and whether Grad-CAM a recipe's terms read: (taps, gradcam)."""
  return ("at" in terms, "cam" in passes)


def check_fits(recipe, built, source):
  """Raises a one-line error when a defense needs layers the model does not offer."""
  names = [t.name for t in recipe.terms]
  needs_at = "at" in names
  needs_cam = "cam" in recipe.passes
  if (needs_at and not built.tap_names) or (needs_cam and not built.gradcam_name):
    what = "stage taps (--taps=name,...)" if needs_at else "a Grad-CAM layer (--gradcam_layer=name)"
    raise ValueError(f"Invalid model: defense {recipe.name} needs {what}; no 4-D feature map "
                     f"was found in {source!r} (a subclassed model or a SavedModel has no "
                     "layers to tap): use a functional or Sequential model and name the "
                     "layers, or a defense that reads only logits (pat, trades, alp, ...)")
  if needs_at:
    taps = next(t.options.get("taps") for t in recipe.terms if t.name == "at")
    if taps is not None and max(taps) >= len(built.tap_names):
      raise ValueError(f"Invalid at:taps: expected indices below {len(built.tap_names)} (the "
                       f"taps of {source!r}: {', '.join(built.tap_names)}); received "
                       f"taps={tuple(taps)}")
