"""FGSM-RS and N-FGSM (tfadv.attacks.fast) on a linear model whose gradient is known."""

import numpy as np
import tensorflow as tf

from tfadv.attacks import fast

EPS = 0.1


def _linear(seed=0, classes=3, dim=8 * 8):
  rng = np.random.default_rng(seed)
  w = tf.constant(rng.normal(size=(dim, classes)), tf.float32)
  return lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) @ w, w


def _data(n=64):
  rng = np.random.default_rng(1)
  x = tf.constant(rng.uniform(0.2, 0.8, size=(n, 8, 8, 1)), tf.float32)
  y = tf.constant(rng.integers(0, 3, size=n), tf.int32)
  return x, y


def _ce(model_fn, x, y):
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model_fn(x))


def test_fgsm_rs_stays_in_the_ball_and_raises_the_loss():
  model_fn, _ = _linear()
  x, y = _data()
  x_adv = fast.fgsm_rs(model_fn, x, y, EPS, seed=tf.constant([1, 2], tf.int64))
  assert float(tf.reduce_max(tf.abs(x_adv - x))) <= EPS + 1e-6
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
  # The step of 1.25 eps from inside the ball ends on the ball's faces for most pixels.
  at_face = np.mean(np.isclose(np.abs((x_adv - x).numpy()), EPS, atol=1e-6))
  assert at_face > 0.5
  # Ascends the loss on almost every example (a wrong sign would lower it).
  gain = (_ce(model_fn, x_adv, y) - _ce(model_fn, x, y)).numpy()
  assert np.mean(gain > 0) > 0.9


def test_fgsm_rs_is_stateless_with_a_seed():
  model_fn, _ = _linear()
  x, y = _data()
  seed = tf.constant([3, 4], tf.int64)
  a = fast.fgsm_rs(model_fn, x, y, EPS, seed=seed)
  b = fast.fgsm_rs(model_fn, x, y, EPS, seed=seed)
  c = fast.fgsm_rs(model_fn, x, y, EPS, seed=seed + 1)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.allclose(a.numpy(), c.numpy())


def test_n_fgsm_is_not_projected_onto_the_eps_ball():
  model_fn, w = _linear()
  x, y = _data()
  x_adv = fast.n_fgsm(model_fn, x, y, EPS, seed=tf.constant([5, 6], tf.int64))
  delta = np.abs((x_adv - x).numpy())
  assert delta.max() <= 3 * EPS + 1e-6  # noise 2 eps + step eps
  assert delta.max() > 1.5 * EPS  # the method does not clip to eps
  assert float(tf.reduce_min(x_adv)) >= 0.0 and float(tf.reduce_max(x_adv)) <= 1.0
  # The step part is eps * sign of the input gradient: for the linear model that gradient
  # is W (p - onehot), so on average the move agrees with its sign.
  noise_free = fast.n_fgsm(model_fn, x, y, EPS, noise_scale=0.0)
  logits = model_fn(x)
  grad = (tf.nn.softmax(logits) - tf.one_hot(y, 3)) @ tf.transpose(w)
  expected = tf.clip_by_value(x + EPS * tf.reshape(tf.sign(grad), x.shape), 0.0, 1.0)
  np.testing.assert_allclose(noise_free.numpy(), expected.numpy(), atol=1e-6)


def test_eps_zero_returns_the_input():
  model_fn, _ = _linear()
  x, y = _data(8)
  for attack in (fast.fgsm_rs, fast.n_fgsm):
    np.testing.assert_array_equal(attack(model_fn, x, y, 0.0).numpy(), x.numpy())


def _bn_means_after_one_step(defense, attack_training_mode):
  """BatchNorm moving means of a ResNet after one fast-AT step at learning rate 0."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  from tfadv import config as config_lib  # pylint: disable=g-import-not-at-top
  from tfadv.defenses import models  # pylint: disable=g-import-not-at-top
  from tfadv.defenses import recipes  # pylint: disable=g-import-not-at-top
  from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  recipe = recipes.build(config_lib.DefenseConfig(
      name=defense, attack=config_lib.AttackConfig(eps=EPS)))
  recipe = dataclasses.replace(recipe, attack_training_mode=attack_training_mode)
  model, tapped = models.build(config_lib.ModelConfig(name="resnet18", width=2), recipe,
                               (8, 8, 1), 3)
  step = trainer.make_train_step(model, tapped, recipe, keras.optimizers.SGD(0.0),
                                 tf.distribute.get_strategy(), 16)
  x, y = _data(16)
  step(iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()))
  return [v.numpy() for v in model.non_trainable_weights if "moving_mean" in v.path]


def test_fast_at_attacks_run_batchnorm_in_training_mode():
  # The references attack the model in model.train(): the attack's forward pass uses (and
  # updates) the batch statistics. The record says so; the trainer must honour it.
  from tfadv.defenses import table  # pylint: disable=g-import-not-at-top
  assert table.get("fgsm_rs").attack_training_mode and table.get("n_fgsm").attack_training_mode
  assert not table.get("pat").attack_training_mode
  on = _bn_means_after_one_step("fgsm_rs", True)
  off = _bn_means_after_one_step("fgsm_rs", False)
  assert on and len(on) == len(off)
  # At learning rate 0 only BatchNorm's moving averages move: one more update (the attack's
  # forward pass on its random start) in training mode.
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(on, off)) > 1e-4
