"""The model of a defense: the zoo architecture, wrapped when the defense changes the network.

One entry point, `build`, makes the model for training, evaluation, analysis and export, so
a wrapper (noise injection, randomization, denoising blocks, an ensemble) is the same
everywhere it runs, the exported SavedModel included. A wrapper is a function
`build(model_config, input_shape, num_classes, **options) -> tfadv.models.zoo.Built`; its
options are its keyword arguments, with their defaults.
"""

import inspect

from tfadv.models import denoise
from tfadv.models import ensemble
from tfadv.models import noise
from tfadv.models import randomization
from tfadv.models import taps as taps_lib
from tfadv.models import sources
from tfadv.models import zoo

# name -> builder; the defenses of `tfadv.defenses.table` refer to these names.
WRAPPERS = {
    "denoise": denoise.build,  # FD: non-local-means blocks after stages (Xie et al. 2019).
    "ensemble": ensemble.build,  # ADP: M members, logits = log of the mean softmax.
    "noise": noise.build,  # RAT: noise injection at training and inference.
    "randomization": randomization.build,  # Random resize + zero padding (Xie et al. 2018).
}

_FIXED = ("config", "model_config", "input_shape", "num_classes")


def wrapper_options(name):
  """The options of wrapper `name` with their defaults: {option: default}."""
  parameters = list(inspect.signature(_get(name)).parameters.values())[3:]
  return {p.name: p.default for p in parameters
          if p.name not in _FIXED and p.default is not p.empty}


def _get(name):
  try:
    return WRAPPERS[name]
  except KeyError:
    raise ValueError(f"Invalid wrapper: expected one of [{', '.join(sorted(WRAPPERS))}]; "
                     f"received wrapper={name!r}") from None


def _literal(text):
  """A command-line value as an int, float, bool or None when it reads as one."""
  lowered = text.strip().lower()
  if lowered in ("none", "true", "false"):
    return {"none": None, "true": True, "false": False}[lowered]
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return text


def resolve_wrapper_options(name, options):
  """The wrapper's options, its defaults updated with `options` ((key, value) pairs).

  Raises:
    ValueError: options given for a defense without a wrapper, or an unknown option
      (listing the valid ones).
  """
  options = dict(options)
  if name is None:
    if options:
      raise ValueError("Invalid wrapper_options: expected none for a defense without a "
                       f"model wrapper; received {sorted(options)}")
    return {}
  resolved = wrapper_options(name)
  for key, value in options.items():
    if key not in resolved:
      raise ValueError(f"Invalid wrapper_options: expected options of the {name} wrapper "
                       f"[{', '.join(resolved)}]; received {key!r}")
    if isinstance(value, str):
      value = _literal(value)
    resolved[key] = value
  return resolved


def random_states(model):
  """The state variables of the model's random layers (noise, randomization).

  Keras keeps `SeedGenerator` states out of `model.weights`, so a checkpoint of the model
  alone would restart their random streams on resume; the trainer checkpoints these too.
  """
  states = []
  for layer in model._flatten_layers():  # pylint: disable=protected-access
    for generator in getattr(layer, "_seed_generators", ()):
      states.append(generator.state)
  return states


def build(model_config, recipe, input_shape, num_classes):
  """Builds a defense's model and its tapped twin.

  Args:
    model_config: a `ModelConfig`.
    recipe: a `tfadv.defenses.recipes.Recipe` (its wrapper and wrapper options), or None
      for the plain model.
    input_shape: (height, width, channels).
    num_classes: number of logits.

  Returns:
    (model, tapped): the classifier (images in [0, 1] -> logits) and the tapped model over
    the same layers (logits, taps, Grad-CAM layer and the wrapper's extras).
  """
  built = build_record(model_config, recipe, input_shape, num_classes)
  tapped = taps_lib.tapped_model(built.model, built.tap_names, built.gradcam_name,
                                 built.extras)
  return built.model, tapped


def build_record(model_config, recipe, input_shape, num_classes, model=None):
  """The `zoo.Built` record of a defense's model (any model source, see
  `tfadv.models.sources`), checked against what the recipe's terms read.

  Args: as `build`; `model` is an in-memory Keras model to use instead of the config's.

  Raises:
    ValueError: the defense needs taps or a Grad-CAM layer the model does not have.
  """
  wrapper = recipe.wrapper if recipe is not None else None
  if wrapper is None:
    built = sources.build(model_config, input_shape, num_classes, model=model)
  elif model is not None:
    raise ValueError(f"Invalid model: defense {recipe.name} wraps the model "
                     f"({wrapper}); pass it as a file (--model=PATH) rather than in memory")
  else:
    built = _get(wrapper)(model_config, input_shape, num_classes, **recipe.wrapper_options)
  if recipe is not None:
    sources.check_fits(recipe, built, model_config.path or model_config.name)
  return built
