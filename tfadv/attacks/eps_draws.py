"""Random training budgets: the eps a training attack uses, drawn per example or per batch.

Some adversarial-training recipes do not attack at one fixed eps. Kurakin et al. (2017,
"Adversarial machine learning at scale", Step-LL training) draw each training example's eps
from a normal N(0, 8) truncated to [0, 16] (0..255 units), so the model sees small and large
perturbations; Pang et al. (2019, ADP_AT; `advtrain_cifar10.py` of their code) draw one eps
per batch from U(0.01, 0.05) for a PGD attack whose step is eps / 10.

A draw is a record of `DRAWS`, relative to the configured eps (`--eps`, the upper end of
every draw): with `--eps=16/255` the `half_normal` draw is Kurakin's exactly, with
`--eps=0.05` the `uniform_batch` draw is ADP's exactly. The attack's step size scales with
the drawn eps (same ratio step / eps as configured). Draws are stateless, keyed by the
attack's seed, so a resumed run replays them.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

@dataclasses.dataclass(frozen=True)
class Draw:
  """One way of drawing the training eps.

  Attributes:
    name: the `--eps_draw` value.
    fn: `(eps, batch, seed) -> eps tensor`, broadcastable against images [B, H, W, C], or
      None: the configured eps itself (a Python float).
    doc: one line for the help and the report.
  """
  name: str
  fn: Callable
  doc: str


def fixed(eps, batch, seed):
  """Every example at the configured eps (None: the attack keeps its Python float)."""
  del eps, batch, seed
  return None


def half_normal(eps, batch, seed):
  """Per example: |N(0, eps/2)| truncated to [0, eps] (Kurakin et al.: N(0, 8) on [0, 16])."""
  # stateless_truncated_normal cuts at two standard deviations: |TN(0, 1)| * eps / 2 lies
  # in [0, eps], the half of Kurakin's truncated normal above 0.
  draw = tf.random.stateless_truncated_normal([batch, 1, 1, 1], seed)
  return tf.abs(draw) * (eps / 2.0)


def uniform_batch(eps, batch, seed, low=0.2):
  """Per batch: one eps ~ U(low * eps, eps) (ADP_AT: U(0.01, 0.05) at eps = 0.05)."""
  del batch
  return tf.random.stateless_uniform([], seed, low * eps, eps)


DRAWS = {d.name: d for d in (
    Draw("fixed", fixed, "every example at eps"),
    Draw("half_normal", half_normal,
         "per example |N(0, eps/2)| truncated to [0, eps] (Kurakin et al. 2017)"),
    Draw("uniform_batch", uniform_batch,
         "per batch U(eps/5, eps) (Pang et al. 2019, ADP_AT)"),
)}

NAMES = tuple(DRAWS)


def validate(name, attack, tensor_eps_attacks):
  """Checks a draw's name, and that the training `attack` takes a tensor eps.

  Args:
    name: the draw's name.
    attack: the training attack's name, or None (no training attack).
    tensor_eps_attacks: names of the attacks that take a tensor eps (the attack registry's
      specs with `tensor_eps`).
  """
  if name not in DRAWS:
    raise ValueError(f"Invalid eps_draw: expected one of [{', '.join(NAMES)}]; "
                     f"received eps_draw={name!r}")
  if DRAWS[name].fn is not fixed and attack not in tensor_eps_attacks:
    raise ValueError(f"Invalid eps_draw: a drawn eps needs a training attack among "
                     f"[{', '.join(tensor_eps_attacks)}]; received eps_draw={name!r} with "
                     f"attack {attack!r} (use --eps_draw=fixed)")
  return name


def draw(name, eps, x, seed):
  """The eps of one training batch `x` (a tensor), or None for `fixed` (the config's float).

  Args:
    name: a name of `DRAWS`.
    eps: the configured eps (Python float), the upper end of the draw.
    x: the batch of images [B, H, W, C].
    seed: the attack's stateless seed, int tensor [2]; the draw uses its own stream.
  """
  seed = tf.cast(seed, tf.int64) + tf.constant([0, 1 << 41], tf.int64)
  return DRAWS[name].fn(float(eps), tf.shape(x)[0], seed)
