"""Catastrophic-overfitting detection for fast (single-step) adversarial training.

Single-step adversarial training (FGSM, FGSM-RS) can collapse within a few hundred steps
(Wong et al., 2020): the model learns to defeat the single-step attack by bending its loss
surface, so FGSM accuracy *rises* while PGD accuracy on the same images falls to near 0. The
signature is the pair of moves, not either alone: PGD accuracy below `drop` times its best
so far while FGSM accuracy is at least what it was at that best.

`Monitor` is fed the two accuracies of a fixed held-out batch at each check and says when the
collapse happened; the trainer logs a warning, writes a TensorBoard scalar and, with
`stop=True`, stops and keeps the last checkpoint from before the collapse.
"""

import dataclasses
from typing import List, Optional, Tuple


@dataclasses.dataclass
class Monitor:
  """Tracks (step, PGD accuracy, FGSM accuracy) of a held-out batch.

  Attributes:
    drop: collapse when PGD accuracy falls below `drop * best PGD accuracy`.
    min_best: ignore checks until the best PGD accuracy reaches this (an untrained model
      has nothing to lose).
  """
  drop: float = 0.5
  min_best: float = 0.1
  history: List[Tuple[int, float, float]] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    if not 0.0 < self.drop < 1.0:
      raise ValueError(f"Invalid co_drop: expected a fraction in (0, 1); received "
                       f"co_drop={self.drop}")

  @property
  def best(self):
    """The (step, pgd, fgsm) check with the highest PGD accuracy, or None."""
    return max(self.history, key=lambda h: (h[1], -h[0]), default=None)

  def update(self, step, pgd_accuracy, fgsm_accuracy):
    """Records a check; returns a warning string when it shows catastrophic overfitting.

    Args:
      step: the training step of the check.
      pgd_accuracy: accuracy of the held-out batch under PGD.
      fgsm_accuracy: the same under FGSM.

    Returns:
      None, or a one-line warning naming the steps and the figures.
    """
    best = self.best
    self.history.append((int(step), float(pgd_accuracy), float(fgsm_accuracy)))
    if best is None or best[1] < self.min_best:
      return None
    best_step, best_pgd, best_fgsm = best
    if pgd_accuracy < self.drop * best_pgd and fgsm_accuracy >= best_fgsm:
      return (f"Catastrophic overfitting at step {step}: PGD accuracy of the held-out batch "
              f"fell to {pgd_accuracy:.3f} from {best_pgd:.3f} at step {best_step} while "
              f"FGSM accuracy rose to {fgsm_accuracy:.3f} (from {best_fgsm:.3f}): the model "
              "defeats the single-step attack, not the threat; use the checkpoint of step "
              f"{best_step}, N-FGSM, or a multi-step attack")
    return None

  def last_good_step(self):
    """The step of the best check (the one to keep after a collapse), or None."""
    best = self.best
    return best[0] if best else None


def collapsed(history, drop=0.5, min_best=0.1):
  """Replays `history` [(step, pgd, fgsm)]; the step of the first collapse or None."""
  monitor = Monitor(drop=drop, min_best=min_best)
  for step, pgd, fgsm in history:
    if monitor.update(step, pgd, fgsm):
      return step
  return None
