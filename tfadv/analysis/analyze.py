"""The analysis job: attention under attack and the loss landscape of a trained model."""

import os

import numpy as np
import tensorflow as tf

from tfadv import io_utils
from tfadv.analysis import attention_stats
from tfadv.analysis import landscape
from tfadv.analysis import plots
from tfadv.attacks import pgd
from tfadv.data import datasets
from tfadv.models import taps as taps_lib
from tfadv.models import zoo

ANALYSIS_FILE = "analysis.json"


def analyze(loaded, output_dir, num_examples=256, eps=0.1, attack_steps=20, fraction=0.2,
            radius=None, points=11, landscape_examples=64, figure_examples=3, seed=0):
  """Writes `analysis.json`, `attention_stages.png` and `loss_landscape.png`.

  Args:
    loaded: a `tfadv.workflow.LoadedModel`.
    output_dir: where the files go (created).
    num_examples: test examples for the attention statistics.
    eps: L-inf radius of the PGD attack whose examples are analysed.
    attack_steps: its iterations (random start seeded by `seed`).
    fraction: share of most attended pixels compared by the IoUs.
    radius: loss-landscape half width (default: 2 * eps).
    points: landscape grid points per axis (odd).
    landscape_examples: examples averaged in the landscape.
    figure_examples: examples drawn in the per-stage attention figure.
    seed: seed of the attack and of the random direction.

  Returns:
    The analysis dict (also written as JSON).

  Raises:
    ValueError: invalid numbers (naming the argument).
  """
  for name, value in (("num_examples", num_examples), ("attack_steps", attack_steps),
                      ("landscape_examples", landscape_examples),
                      ("figure_examples", figure_examples)):
    if value < 1:
      raise ValueError(f"Invalid {name}: expected a positive integer; received {value!r}")
  if not 0 < eps <= 1:
    raise ValueError(f"Invalid eps: expected 0 < eps <= 1 (images are in [0, 1]); "
                     f"received eps={eps!r}")
  radius = 2 * eps if radius is None else radius
  data = datasets.load(loaded.data_config)
  x, y = next(iter(data.test.batch(num_examples)))
  y = tf.cast(y, tf.int32)
  model = loaded.model
  name = loaded.model_config.name
  tapped = loaded.tapped  # Built with the defense's wrapper (tfadv.defenses.models).
  if tapped is None:
    tapped = taps_lib.tapped_model(model, zoo.tap_layer_names(name),
                                   zoo.gradcam_layer_name(name))

  def model_fn(images):
    return model(images, training=False)

  x_adv = pgd.pgd(model_fn, x, y, eps, steps=attack_steps,
                  seed=tf.constant([seed, 0], tf.int64))
  stats = attention_stats.compare(tapped, x, x_adv, y, fraction)
  clean_pred = tf.argmax(model_fn(x), -1, output_type=tf.int32)
  adv_pred = tf.argmax(model_fn(x_adv), -1, output_type=tf.int32)

  offsets, losses = landscape.loss_surface(model_fn, x[:landscape_examples],
                                           y[:landscape_examples], radius, points, seed)
  os.makedirs(output_dir, exist_ok=True)
  defense = loaded.run_config.get("defense", {}).get("name", "?")
  title = f"{name} / {defense}, PGD-{attack_steps} eps={eps}"
  n = min(figure_examples, int(x.shape[0]))
  stage_files = plots.attention_stages(
      x[:n].numpy(), x_adv[:n].numpy(),
      [m[:n].numpy() for m in attention_stats.stage_attention(tapped, x[:n])],
      [m[:n].numpy() for m in attention_stats.stage_attention(tapped, x_adv[:n])],
      output_dir, title)
  landscape_file = plots.loss_landscape(offsets.numpy(), losses.numpy(), output_dir, title)

  fooled = (adv_pred != y).numpy()
  result = {
      "dataset": data.name, "model": name, "defense": defense,
      "checkpoint": loaded.checkpoint, "num_examples": int(x.shape[0]),
      "attack": {"name": "pgd", "eps": eps, "steps": attack_steps},
      "clean_accuracy": float(np.mean((clean_pred == y).numpy())),
      "adv_accuracy": float(np.mean(~fooled)),
      "fraction": fraction,
      # Means over all examples and over the examples the attack fooled (where attention
      # moving away is what the defenses try to prevent).
      "attention": {k: {"mean": float(np.mean(v.numpy())),
                        "mean_fooled": (float(np.mean(v.numpy()[fooled]))
                                        if fooled.any() else None)}
                    for k, v in sorted(stats.items())},
      "landscape": {"radius": radius, "points": points, "examples": int(landscape_examples),
                    "offsets": offsets.numpy().tolist(), "losses": losses.numpy().tolist()},
      "plots": [stage_files, landscape_file],
  }
  io_utils.atomic_write_json(os.path.join(output_dir, ANALYSIS_FILE), result)
  return result
