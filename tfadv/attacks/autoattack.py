"""AutoAttack (Croce & Hein, 2020): an ensemble of parameter-free attacks.

`version="standard"` (L-inf and L2 alike, as the reference): APGD-CE, then APGD-T
(targeted DLR, 9 targets), then FAB-T (targeted minimum-norm, 9 targets), then Square
(5000 queries, the p schedule not rescaled). `version="rand"`, for models whose output is
random (randomized input transformations, random layers): APGD-CE, then APGD-DLR, each
averaging the gradient over 20 model calls per iteration (expectation over
transformation, EOT). Each attack runs only on the examples that every previous one left
correctly classified; an example is robust only if it survives all of them. Our
TensorFlow versions of the published attacks and defaults (`tfadv.attacks.apgd`,
`tfadv.attacks.fab`, `tfadv.attacks.square`).
"""

import tensorflow as tf

from tfadv.attacks import apgd as apgd_lib
from tfadv.attacks import common
from tfadv.attacks import fab as fab_lib
from tfadv.attacks import square as square_lib

PARTS = ("apgd_ce", "apgd_t", "fab_t", "square", "apgd_dlr")
VERSIONS = {"standard": "apgd_ce+apgd_t+fab_t+square", "rand": "apgd_ce+apgd_dlr"}


def _part(name, model_fn, x, y, eps, norm, steps, queries, seed, eot_iter):
  if name == "apgd_ce":
    return apgd_lib.apgd(model_fn, x, y, eps, norm, steps, loss="ce", eot_iter=eot_iter,
                         seed=seed)
  if name == "apgd_dlr":
    return apgd_lib.apgd(model_fn, x, y, eps, norm, steps, loss="dlr", eot_iter=eot_iter,
                         seed=seed)
  if name == "apgd_t":
    return apgd_lib.apgd_t(model_fn, x, y, eps, norm, steps, seed=seed)
  if name == "fab_t":
    return fab_lib.fab_t(model_fn, x, y, eps, norm, steps)
  return square_lib.square(model_fn, x, y, eps, norm, queries, rescale_schedule=False,
                           seed=seed)


def autoattack(model_fn, x, y, eps, norm="linf", steps=100, queries=5000, parts=None,
               version="standard", eot_iter=20, seed=None):
  """The AutoAttack ensemble: each part attacks only the still-correct examples.

  Args:
    model_fn: images in [0, 1] -> logits (`training=False`).
    x: clean images [B, H, W, C] in [0, 1].
    y: true labels [B].
    eps: radius of the threat ball.
    norm: `linf` or `l2` (every part supports both).
    steps: iterations of APGD-CE, of APGD-T, of APGD-DLR and of FAB-T per target (100).
    queries: Square's query budget (5000).
    parts: `+`-separated subset and order of `apgd_ce`, `apgd_t`, `fab_t`, `square`,
      `apgd_dlr`; None runs the version's parts.
    version: `standard` or `rand` (for randomized models: APGD-CE + APGD-DLR with EOT).
    eot_iter: model calls averaged per APGD iteration under `version="rand"` (20).
    seed: optional int tensor [2] making the parts reproducible.

  Returns:
    Images within `eps` of `x` and in [0, 1]: per example the first successful attack's
    output, else `x`.
  """
  order = common.norm_order(norm)
  if version not in VERSIONS:
    raise ValueError(f"Invalid version: expected one of [{', '.join(VERSIONS)}] for "
                     f"autoattack; received version={version!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  if eps == 0:
    return x
  parts = VERSIONS[version] if parts is None else parts
  names = [p for p in str(parts).split("+") if p]
  unknown = sorted(set(names) - set(PARTS))
  if unknown or not names:
    raise ValueError(f"Invalid parts: expected '+'-separated names from [{', '.join(PARTS)}]"
                     f"; received parts={parts!r}")
  eot = int(eot_iter) if version == "rand" else 1
  y = tf.cast(y, tf.int32)
  x_adv = x
  robust = common.is_correct(model_fn, x, y)
  for k, name in enumerate(names):
    index = tf.where(robust)[:, 0]
    part_seed = None if seed is None else tf.cast(seed, tf.int64) + tf.constant(
        [0, 1000 * (k + 1)], tf.int64)

    def attack_subset(index=index, name=name, part_seed=part_seed):
      xs, ys = tf.gather(x, index), tf.gather(y, index)
      adv = _part(name, model_fn, xs, ys, eps, norm, steps, queries, part_seed, eot)
      fooled = tf.logical_not(common.is_correct(model_fn, adv, ys))
      update = tf.where(fooled[:, None, None, None], adv, xs)
      return (tf.tensor_scatter_nd_update(x_adv, index[:, None], update),
              tf.tensor_scatter_nd_update(robust, index[:, None], tf.logical_not(fooled)))

    x_adv, robust = tf.cond(tf.size(index) > 0, attack_subset, lambda: (x_adv, robust))
  return common.project(x, x_adv, eps, order)
