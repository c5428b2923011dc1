"""Attacks against tiny linear models, whose optimal attacks are known in closed form.

For logits `z = W x + b` and a wrong class `t`, the margin `m_t(x) = u_t . x + c_t` with
`u_t = w_y - w_t`, `c_t = b_y - b_t` is linear, so inside the L-inf ball and the box the
smallest margin is reached at `x* = clip(x - eps * sign(u_t), 0, 1)`, and inside the L2 ball
(when the box does not bind) at `x - eps * u_t / |u_t|_2`. The minimal L-inf distance to the
boundary without the box is `m_t(x) / |u_t|_1`. An example can be fooled iff some target's
optimal margin is negative; every attack here must agree with that, and the gradient
attacks must reach the optimal margin on the examples they cannot fool.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import apgd
from tfadv.attacks import fab
from tfadv.attacks import pgd
from tfadv.attacks import rays

EPS = 0.1


def _linear(w, b, hide_classes=False):
  """model_fn of logits W x + b on flattened NHWC images (w [D, K], b [K])."""
  w, b = tf.constant(w, tf.float32), tf.constant(b, tf.float32)

  def model_fn(z):
    logits = tf.reshape(z, [tf.shape(z)[0], -1]) @ w + b
    if hide_classes:  # Class count known only at run time (unknown static shape).
      logits = tf.reshape(logits, [tf.shape(z)[0], -1])
    return logits

  return model_fn


def _margins(w, b, x, y):
  """[N, K] margins z_y - z_t (inf for t = y)."""
  z = x.reshape(len(x), -1) @ w + b
  m = z[np.arange(len(x)), y][:, None] - z
  m[np.arange(len(x)), y] = np.inf
  return m


def _optimal_linf_margins(w, b, x, y, eps):
  """[N, K]: per target the smallest margin over the L-inf ball and the box."""
  flat = x.reshape(len(x), -1)
  out = np.full((len(x), w.shape[1]), np.inf)
  for t in range(w.shape[1]):
    u = w[:, y] - w[:, [t]]  # [D, N]
    best = np.clip(flat - eps * np.sign(u.T), 0, 1)
    m = np.sum(u.T * best, 1) + b[y] - b[t]
    out[:, t] = np.where(y == t, np.inf, m)
  return out


def _fooled(model_fn, x_adv, y):
  return np.argmax(model_fn(tf.constant(x_adv)).numpy(), 1) != y


def _two_class(count=64, shape=(4, 4, 1), seed=0):
  """A 2-class model with margins spread across the attack's reach at EPS."""
  rng = np.random.default_rng(seed)
  dim = int(np.prod(shape))
  u = rng.normal(size=dim).astype(np.float32)
  w = np.stack([u, np.zeros(dim, np.float32)], 1)
  x = rng.uniform(0.2, 0.8, size=(count,) + shape).astype(np.float32)
  # Margins m = u . x + b0 spread over [0, 2 * EPS * |u|_1]: half can be fooled.
  target = np.linspace(0.02, 2.0, count) * EPS * np.abs(u).sum()
  offset = target - x.reshape(count, -1) @ u
  # One bias for all: take the median offset and keep the examples' own spread.
  b = np.array([np.median(offset), 0.0], np.float32)
  y = np.zeros(count, np.int32)
  m = x.reshape(count, -1) @ u + b[0]
  keep = m > 0  # Correctly classified to start with.
  return w, b, x[keep], y[keep]


# APGD-T's targeted DLR is constant on 2 classes (the reference needs 4); it is tested on 3
# and 100 classes below.
@pytest.mark.parametrize("name", ["pgd", "apgd_ce"])
def test_gradient_attacks_reach_the_optimal_linf_margin(name):
  w, b, x, y = _two_class()
  model_fn = _linear(w, b)
  optimal = _optimal_linf_margins(w, b, x, y, EPS).min(1)
  assert 0.2 < np.mean(optimal < 0) < 0.8  # Both kinds of examples are present.
  attacks = {
      "pgd": lambda: pgd.pgd(model_fn, x, y, EPS, steps=10, seed=tf.constant([1, 2])),
      "apgd_ce": lambda: apgd.apgd(model_fn, x, y, EPS, steps=10, seed=tf.constant([1, 2])),
  }
  x_adv = attacks[name]().numpy()
  assert np.abs(x_adv - x).max() <= EPS + 1e-6
  fooled = _fooled(model_fn, x_adv, y)
  clear = np.abs(optimal) > 1e-3
  np.testing.assert_array_equal(fooled[clear], (optimal < 0)[clear])
  # Where no attack can succeed, the attack still finds the worst point of the ball.
  reached = _margins(w, b, x_adv, y).min(1)
  robust = optimal > 1e-3
  np.testing.assert_allclose(reached[robust], optimal[robust], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_breaks_exactly_the_breakable_examples(norm):
  w, b, x, y = _two_class()
  model_fn = _linear(w, b)
  u = w[:, 0] - w[:, 1]
  m = _margins(w, b, x, y).min(1)
  if norm == "linf":
    eps, optimal = EPS, _optimal_linf_margins(w, b, x, y, EPS).min(1)
  else:
    # The L2 optimum x - eps u / |u| stays inside the box for these eps and images.
    eps = 0.3
    assert eps * np.abs(u).max() / np.linalg.norm(u) < 0.2
    optimal = m - eps * np.linalg.norm(u)
  assert 0.2 < np.mean(optimal < 0) < 0.8
  x_adv = fab.fab_t(model_fn, x, y, eps, norm, steps=20, target_classes=1).numpy()
  fooled = _fooled(model_fn, x_adv, y)
  # FAB minimises the distance, so it may miss examples right at the edge of the ball.
  clear = np.abs(optimal) > 0.05 * np.abs(m)
  np.testing.assert_array_equal(fooled[clear], (optimal < 0)[clear])


@pytest.mark.parametrize("classes", [3, 100])
@pytest.mark.parametrize("hide_classes", [False, True])
def test_targeted_attacks_use_the_models_class_count(classes, hide_classes):
  rng = np.random.default_rng(classes)
  dim = 16
  w = rng.normal(size=(dim, classes)).astype(np.float32) / 4.0
  b = np.zeros(classes, np.float32)
  x = rng.uniform(0.2, 0.8, size=(48, 4, 4, 1)).astype(np.float32)
  z = x.reshape(48, -1) @ w
  y = np.argmax(z, 1).astype(np.int32)
  # The targets APGD-T and FAB-T try: the runner-ups of the clean logits (3 asked for;
  # a 3-class model has only 2, which the attacks must see from its output).
  targets = min(3, classes - 1)
  ranked = np.argsort(-z, 1, kind="stable")[:, 1:targets + 1]
  optimal = _optimal_linf_margins(w, b, x, y, EPS)
  optimal = np.take_along_axis(optimal, ranked, 1).min(1)
  assert 0.1 < np.mean(optimal < 0) < 0.9
  model_fn = _linear(w, b, hide_classes)
  spec = tf.TensorSpec([None, 4, 4, 1], tf.float32)
  run_apgd = tf.function(lambda x, y: apgd.apgd_t(model_fn, x, y, EPS, steps=10,
                                                  target_classes=3,
                                                  seed=tf.constant([1, 2])),
                         input_signature=[spec, tf.TensorSpec([None], tf.int32)])
  run_fab = tf.function(lambda x, y: fab.fab_t(model_fn, x, y, EPS, steps=20,
                                                  target_classes=3),
                        input_signature=[spec, tf.TensorSpec([None], tf.int32)])
  clear = np.abs(optimal) > 0.02
  for run in (run_apgd, run_fab):
    fooled = _fooled(model_fn, run(x, y).numpy(), y)
    np.testing.assert_array_equal(fooled[clear], (optimal < 0)[clear])


def test_rays_finds_the_linf_distance_to_the_boundary():
  # 5x5x1 = 25 coordinates: blocks of 25/2^k leave empty blocks at every stage, and only
  # single-coordinate flips reach an arbitrary sign pattern. A 2-class linear model's
  # boundary is at L-inf distance m / |u|_1 along the ray -sign(u) (the box does not bind).
  rng = np.random.default_rng(3)
  dim = 25
  u = rng.normal(size=dim).astype(np.float32)
  w = np.stack([u, np.zeros(dim, np.float32)], 1)
  x = rng.uniform(0.35, 0.65, size=(48, 5, 5, 1)).astype(np.float32)
  m = x.reshape(48, -1) @ u
  b = np.array([EPS * np.abs(u).sum() - np.median(m), 0.0], np.float32)
  distance = (m + b[0]) / np.abs(u).sum()
  keep = distance > 0
  x, distance = x[keep], distance[keep]
  assert distance.max() < 0.3 and 0.3 < np.mean(distance < EPS) < 0.7
  y = np.zeros(len(x), np.int32)
  model_fn = _linear(w, b)
  attack = tf.function(lambda x, y: rays.rays(model_fn, x, y, EPS, queries=1500))
  fooled = _fooled(model_fn, attack(x, y).numpy(), y)
  clear = np.abs(distance - EPS) > 0.002
  np.testing.assert_array_equal(fooled[clear], (distance < EPS)[clear])


def test_rays_flattens_channel_major():
  # Two channels, the optimal sign pattern constant per channel: channel-major (the
  # reference's C, H, W order) reaches it at stage 1 (halves), within 60 queries.
  dim = 4 * 4 * 2
  u = np.zeros((4, 4, 2), np.float32)
  u[..., 0], u[..., 1] = 1.0, -1.0
  u = u.reshape(-1)
  w = np.stack([u, np.zeros(dim, np.float32)], 1)
  x = np.full((4, 4, 4, 2), 0.5, np.float32)
  b = np.array([0.05 * dim, 0.0], np.float32)  # L-inf distance 0.05
  model_fn = _linear(w, b)
  y = np.zeros(4, np.int32)
  x_adv = rays.rays(model_fn, x, y, 0.051, queries=60).numpy()
  assert _fooled(model_fn, x_adv, y).all()
  np.testing.assert_allclose(np.abs(x_adv - x).max(axis=(1, 2, 3)), 0.05, atol=1e-3)


def test_rays_block_schedule_matches_the_reference():
  # The reference: block b of stage s covers [b * size, min(D, (b + 1) * size)) with
  # size = ceil(D / 2^s); a stage ends at its last block or when a block ends at D; once
  # blocks are single coordinates the stages go on, flipping one coordinate at a time.
  dim = 75
  expected = []
  level, block = 0, 0
  while len(expected) < 300:
    size = int(np.ceil(dim / 2**level))
    start, end = block * size, min(dim, (block + 1) * size)
    expected.append((start, end))
    block += 1
    if block == 2**level or end == dim:
      level, block = level + 1, 0
  got = []
  stage, block = tf.constant(0), tf.constant(0)
  for _ in range(300):
    start, end = rays.block_bounds(stage, block, dim)
    got.append((int(start), int(end)))
    stage, block = rays.next_block(stage, block, end, dim)
  assert got == expected
  assert all(end > start for start, end in got)  # No empty block.
