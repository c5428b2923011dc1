"""Schedules and rules taken from the reference implementations (fra31/auto-attack,
cleverhans/Uesato et al.), checked against hand-computed or ported reference values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import apgd
from tfadv.attacks import autoattack
from tfadv.attacks import fab
from tfadv.attacks import spsa
from tfadv.attacks import square


def test_apgd_checkpoints_truncate_the_fractions():
  # autopgd_base.py: n_iter_2 = max(int(0.22 n), 1), size_decr = max(int(0.03 n), 1),
  # n_iter_min = max(int(0.06 n), 1). ceil would give (3, 1, 1) and (5, 1, 2).
  assert apgd.schedule(10) == (2, 1, 1)
  assert apgd.schedule(20) == (4, 1, 1)
  assert apgd.schedule(100) == (22, 3, 6)
  assert apgd.schedule(1) == (1, 1, 1)


def _reference_p(it, n_queries, p_init, rescale):
  """square.py's p_selection, verbatim in logic."""
  if rescale:
    it = int(it / n_queries * 10000)
  bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
  halvings = sum(it > b for b in bounds)
  return p_init / 2**halvings


@pytest.mark.parametrize("queries", [100, 1000, 5000])
@pytest.mark.parametrize("rescale", [False, True])
def test_square_p_schedule(queries, rescale):
  its = sorted(set(range(0, queries, max(queries // 500, 1))) | {9, 10, 11, 50, 51, 199, 201})
  got = [float(square.p_at(i, queries, 0.8, rescale)) for i in its if i < queries]
  expected = [_reference_p(i, queries, 0.8, rescale) for i in its if i < queries]
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_autoattack_runs_square_unrescaled_and_every_part_under_l2(monkeypatch):
  calls = []

  def spy(name):
    def attack(model_fn, x, y, eps, norm, *args, **kwargs):
      calls.append((name, norm, kwargs.get("rescale_schedule")))
      return x
    return attack

  monkeypatch.setattr(square, "square", spy("square"))
  monkeypatch.setattr(fab, "fab_t", spy("fab_t"))
  monkeypatch.setattr(apgd, "apgd", spy("apgd"))
  monkeypatch.setattr(apgd, "apgd_t", spy("apgd_t"))
  model_fn = lambda z: tf.concat([tf.reduce_sum(z, [1, 2, 3])[:, None], tf.zeros([4, 9])], 1)
  x, y = tf.fill([4, 4, 4, 1], 0.5), tf.zeros([4], tf.int32)
  for norm in ("linf", "l2"):
    calls.clear()
    autoattack.autoattack(model_fn, x, y, 0.3, norm, steps=2, queries=5)
    assert [c[0] for c in calls] == ["apgd", "apgd_t", "fab_t", "square"]
    assert all(c[1] == norm for c in calls)
    assert calls[-1][2] is False  # AutoAttack's Square: resc_schedule=False.


def test_autoattack_rand_is_apgd_ce_and_dlr_with_eot():
  # Count model calls eagerly: EOT makes every APGD iteration call the model 20 times.
  count = {"n": 0}
  w = tf.constant(np.linspace(-1, 1, 16 * 3).reshape(16, 3), tf.float32)

  def model_fn(z):
    count["n"] += 1
    return tf.reshape(z, [tf.shape(z)[0], -1]) @ w * 0.01

  x = tf.fill([2, 4, 4, 1], 0.5)
  y = tf.argmax(model_fn(x), -1, output_type=tf.int32)
  count["n"] = 0
  autoattack.autoattack(model_fn, x, y, 0.01, steps=3, version="rand")
  # 1 clean check + 2 attacks x (20 calls at the start + 3 x 20) + 1 check each.
  assert count["n"] == 1 + 2 * (20 * 4 + 1)
  count["n"] = 0
  autoattack.autoattack(model_fn, x, y, 0.01, steps=3, parts="apgd_ce")
  assert count["n"] == 1 + 4 + 1  # Standard: one call per iteration.
  with pytest.raises(ValueError, match="version"):
    autoattack.autoattack(model_fn, x, y, 0.01, version="plus")


def _eta_rectangles(x, y):
  """square.py's eta_rectangles (L2), ported to numpy."""
  delta = np.zeros([x, y])
  x_c, y_c = x // 2 + 1, y // 2 + 1
  c0, c1 = x_c - 1, y_c - 1
  for k in range(max(x_c, y_c)):
    delta[max(c0, 0):min(c0 + 2 * k + 1, x), max(0, c1):min(c1 + 2 * k + 1, y)] += (
        1.0 / (k + 1)**2)
    c0 -= 1
    c1 -= 1
  return delta / np.sqrt((delta**2).sum())


def _eta(s):
  delta = np.zeros([s, s])
  delta[:s // 2] = _eta_rectangles(s // 2, s)
  delta[s // 2:] = -_eta_rectangles(s - s // 2, s)
  return delta / np.sqrt((delta**2).sum())


@pytest.mark.parametrize("s", [3, 5, 8, 13, 28])
def test_square_l2_pattern_is_the_references(s):
  table = square._sum_of_inverse_squares(30)  # pylint: disable=protected-access
  rows, cols = tf.range(28)[:, None], tf.range(28)[None, :]
  for transpose in (False, True):
    got = square._pattern(rows, cols, s, tf.constant(transpose), table, 28).numpy()  # pylint: disable=protected-access
    expected = _eta(s).T if transpose else _eta(s)
    np.testing.assert_allclose(got[:s, :s], expected, atol=1e-6)
    np.testing.assert_array_equal(got[s:], 0.0)
    np.testing.assert_array_equal(got[:, s:], 0.0)


def test_square_l2_stays_in_the_ball_and_fools_a_linear_model():
  # Margins u . x + c in (0, |u|_2 / 2]: the optimal L2 step of norm 1 (-u / |u|) lowers
  # every margin by |u|_2, so each example can be fooled with half of the optimal gain.
  rng = np.random.default_rng(0)
  u = rng.normal(size=64).astype(np.float32)
  x = rng.uniform(0.3, 0.7, size=(32, 8, 8, 1)).astype(np.float32)
  margin = x.reshape(32, -1) @ u
  c = 0.5 * np.linalg.norm(u) - margin.max()
  keep = margin + c > 0
  x = tf.constant(x[keep])
  w = tf.constant(np.stack([u, np.zeros(64, np.float32)], 1))
  bias = tf.constant([c, 0.0], tf.float32)
  model_fn = lambda z: tf.reshape(z, [tf.shape(z)[0], -1]) @ w + bias
  y = tf.zeros([x.shape[0]], tf.int32)
  x_adv = tf.function(lambda x, y: square.square(model_fn, x, y, 1.0, "l2", queries=300,
                                                 seed=tf.constant([1, 2])))(x, y)
  norms = np.linalg.norm((x_adv - x).numpy().reshape(x.shape[0], -1), axis=1)
  assert norms.max() <= 1.0 + 1e-5
  fooled = np.argmax(model_fn(x_adv).numpy(), 1) != 0
  assert fooled.mean() > 0.8, fooled.mean()


def test_l2_hyperplane_projection_is_the_smallest_l2_step_in_the_box():
  scipy_optimize = pytest.importorskip("scipy.optimize")
  rng = np.random.default_rng(1)
  p = rng.uniform(0, 1, (24, 8))
  w = rng.normal(size=(24, 8))
  w[:, 0] = 0.0  # a coordinate that does not matter must not move
  b = np.sum(w * p, 1) + rng.normal(size=24) * 1.5
  b[1] = np.sum(w[1] * p[1]) + 1e3  # out of reach inside the box
  d = fab.project_l2_hyperplane(tf.constant(p, tf.float32), tf.constant(w, tf.float32),
                                tf.constant(b, tf.float32)).numpy()
  z = p + d
  assert z.min() >= -1e-6 and z.max() <= 1.0 + 1e-6
  np.testing.assert_array_equal(d[:, 0], 0.0)
  np.testing.assert_allclose(d[1], np.where(w[1] > 0, 1 - p[1], np.where(w[1] < 0, -p[1], 0)),
                             atol=1e-6)
  for i in range(2, 24):
    if abs(np.sum(np.abs(w[i]) * np.where(np.sign(b[i] - w[i] @ p[i]) * w[i] > 0, 1 - p[i],
                                           p[i]))) < abs(b[i] - w[i] @ p[i]):
      continue  # Not reachable inside the box.
    result = scipy_optimize.minimize(
        lambda v: np.sum(v * v), np.zeros(8), jac=lambda v: 2 * v, method="SLSQP",
        bounds=list(zip(-p[i], 1 - p[i])),
        constraints=[{"type": "eq", "fun": lambda v, i=i: w[i] @ (p[i] + v) - b[i]}],
        options={"ftol": 1e-12, "maxiter": 500})
    np.testing.assert_allclose(np.dot(w[i], z[i]), b[i], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(d[i]), np.linalg.norm(result.x), rtol=1e-3,
                               atol=1e-4)


class _Scripted:
  """An optimizer whose iterates are +eps (fools the model below), then -eps (does not)."""

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def init_state(self, x):
    return {"t": 0.0, "m": [tf.zeros_like(v) for v in x], "u": [tf.zeros_like(v) for v in x]}

  def minimize(self, loss_fn, x, state):
    del loss_fn
    t = state["t"] + 1.0
    value = tf.where(t < 1.5, 1.0, -1.0) * tf.ones_like(x[0])
    return [value], {"t": t, "m": state["m"], "u": state["u"]}


def test_spsa_counts_any_fooling_iterate(monkeypatch):
  monkeypatch.setattr(spsa, "SpsaAdam", _Scripted)
  eps = 0.1
  # Class 1 when the mean perturbation exceeds eps / 2: only the first iterate is there.
  model_fn = lambda z: tf.stack(
      [tf.zeros([tf.shape(z)[0]]), 100.0 * (tf.reduce_mean(z, [1, 2, 3]) - 0.5 - eps / 2)],
      1)
  x, y = tf.fill([8, 4, 4, 1], 0.5), tf.zeros([8], tf.int32)
  x_adv = spsa.spsa(model_fn, x, y, eps, steps=2, samples=2)
  fooled = np.argmax(model_fn(x_adv).numpy(), 1) != 0
  assert fooled.all()
  np.testing.assert_allclose((x_adv - x).numpy(), eps, atol=1e-6)  # The first iterate.
