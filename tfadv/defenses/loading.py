"""Loading a trained model of any defense back from its model directory.

Static models of ensemble adversarial training come this way; it reads only the run config
and the checkpoint, so the trainer can use it without the workflow layer.
"""

import json
import os

from tfadv import config as config_lib
from tfadv.defenses import models
from tfadv.defenses import recipes
from tfadv.models import sources
from tfadv.training import checkpoints


def load(model_dir):
  """Rebuilds the model of a training run (with its defense's wrapper); latest weights.

  Used for static models (ensemble adversarial training). Reads `run_config.json`.

  Raises:
    FileNotFoundError: no run config or checkpoint. ValueError: an unreadable run config.
  """
  path = os.path.join(model_dir, "run_config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Invalid model_dir: expected {path!r} (written by tfadv-train); "
                            "it does not exist")
  try:
    with open(path) as f:
      run = json.load(f)
    model_config = sources.resolve_path(config_lib.ModelConfig(**run["model"]), model_dir)
    defense = config_lib.DefenseConfig.from_dict(run["defense"])
    shape, classes = tuple(run["dataset"]["image_shape"]), int(run["dataset"]["num_classes"])
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"Invalid model_dir: {path!r} is not a tfadv run config ({e})") from e
  model, _ = models.build(model_config, recipes.build(defense), shape, classes)
  checkpoints.restore_model(model, model_dir)
  return model
