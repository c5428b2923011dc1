"""The record every loss term reads: one training step's forward passes."""

import dataclasses
from typing import Any, Mapping, Optional

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Forward:
  """Outputs of the tapped model on a batch and on its adversarial twin.

  Attributes:
    labels: int [B] true labels.
    clean: the tapped model's output dict on the clean images (`logits`, `taps`, `gradcam`),
      or None when the defense does not look at clean images. A recipe's forward hook may
      add keys (AAD: `cam`, the Grad-CAM maps [B, h, w]; `masked_logits`, the logits on the
      images with their attention area removed; see `tfadv.defenses.forwards`).
    adv: the same on the adversarial images, or None without an attack.
    joint: the output dict on `concat(clean images, adversarial images)` when both went
      through the model in one call (`clean` and `adv` are its halves), else None. A term
      over both halves of a large tensor (AT over the feature maps) reduces the joint tensor
      and splits its small result: the gradient of a split is a full-size concat.
  """
  labels: tf.Tensor
  clean: Optional[Mapping[str, Any]] = None
  adv: Optional[Mapping[str, Any]] = None
  joint: Optional[Mapping[str, Any]] = None

  def require(self, which, term):
    """Returns `clean` or `adv`, or raises naming the loss term that needed it."""
    out = getattr(self, which)
    if out is None:
      raise ValueError(f"Loss term {term!r} needs the {which} forward pass, which this "
                       "defense does not compute.")
    return out
