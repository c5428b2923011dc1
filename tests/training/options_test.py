"""Every option of TrainConfig, DefenseConfig (and its AttackConfig) and DataConfig reaches
training: a test that fails when the option is ignored, applied wrongly or twice.

The tests here compare one trainer step (SGD, `none` or `pat` on digits, a small_cnn of
width 4) with the step computed independently (`tests.testing.first_sgd_step`); options
tested elsewhere are listed in COVERAGE, which `test_every_option_has_a_test` checks
against `dataclasses.fields` of each config, so a new option without a test fails here.
"""

import ast
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.data import datasets
from tfadv.models import zoo
from tfadv.training import trainer
from tests import testing

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = config_lib.ModelConfig(name="small_cnn", width=4)
NONE = config_lib.DefenseConfig(name="none")
IN_ORDER = config_lib.DataConfig(name="digits", shuffle_buffer=1)  # batches in file order

# option -> "file::test" that fails when the option is ignored, applied wrongly or twice.
_HERE = "tests/training/options_test.py::"
COVERAGE = {
    "TrainConfig": {
        "model_dir": "tests/training/trainer_test.py::test_interrupted_run_resumes_to_the_same_weights",
        "batch_size": _HERE + "test_first_step_is_sgd_on_the_first_batch_from_the_seeded_init",
        "epochs": _HERE + "test_epochs_set_the_steps_unless_train_steps_is_given",
        "train_steps": _HERE + "test_epochs_set_the_steps_unless_train_steps_is_given",
        "optimizer": _HERE + "test_first_step_is_sgd_on_the_first_batch_from_the_seeded_init",
        "learning_rate": _HERE + "test_first_step_is_sgd_on_the_first_batch_from_the_seeded_init",
        "schedule": _HERE + "test_schedule_reaches_the_optimizer_at_its_boundary",
        "weight_decay": "tests/training/knobs_test.py::test_coupled_weight_decay_adds_wd_times_w_to_the_gradient",
        "weight_decay_mode": "tests/training/knobs_test.py::test_coupled_weight_decay_adds_wd_times_w_to_the_gradient",
        "strategy": _HERE + "test_strategy_option_builds_the_strategy",
        "num_cpu_devices": "tests/trainers/evaluate_cli_test.py",
        "checkpoint_every": "tests/training/knobs_test.py::test_steps_per_loop_gives_the_same_run_and_exact_boundaries",
        "keep_checkpoints": _HERE + "test_keep_checkpoints_keeps_the_newest",
        "log_every": "tests/training/knobs_test.py::test_steps_per_loop_gives_the_same_run_and_exact_boundaries",
        "image_every": "tests/training/attention_defenses_test.py",
        "jit": "tests/training/jit_summaries_test.py::test_jit_flag_compiles_the_training_attack_with_xla",
        "seed": _HERE + "test_first_step_is_sgd_on_the_first_batch_from_the_seeded_init",
        "progress": _HERE + "test_progress_bar_only_when_asked",
        "nesterov": _HERE + "test_nesterov_first_step_is_1_9_lr_g",
        "warmup_steps": _HERE + "test_warmup_first_step_is_lr_over_warmup_steps",
        "label_smoothing": _HERE + "test_label_smoothing_reaches_the_step",
        "augment": "tests/data/augment_test.py::test_the_trainer_steps_on_the_augmented_batch",
        "ema_decay": "tests/training/ema_test.py::test_trainer_average_follows_the_decay_past_the_warm_up",
        "validate_every": "tests/training/validation_test.py::test_validation_scores_the_averaged_weights",
        "validation_size": "tests/training/validation_test.py::test_validation_scores_the_averaged_weights",
        "validation_attack_steps": "tests/training/validation_test.py::test_validation_scores_the_averaged_weights",
        "stop_on_overfitting": "tests/training/overfitting_test.py::test_fast_at_stops_at_catastrophic_overfitting_when_asked",
        "deterministic": "tests/training/deterministic_test.py::test_deterministic_training_turns_op_determinism_on_and_reruns_bit_exact",
        "precision": "tests/training/knobs_test.py::test_mixed_float16_scales_the_loss_and_steps_like_float32",
        "steps_per_loop": "tests/training/knobs_test.py::test_steps_per_loop_gives_the_same_run_and_exact_boundaries",
    },
    "DefenseConfig": {
        "name": "tests/training/loss_identity_test.py::test_step_loss_is_the_weighted_sum_of_the_recipe_terms",
        "attack": _HERE + "test_training_attack_budget_reaches_the_step",
        "terms": "tests/training/loss_identity_test.py::test_step_loss_is_the_weighted_sum_of_the_recipe_terms",
        "wrapper_options": "tests/trainers/attention_flags_test.py",
        "static_model_dirs": "tests/training/baselines_test.py::test_ensemble_at_attacks_its_static_models",
        "eps_draw": "tests/attacks/eps_draws_test.py::test_stepll_at_step_attacks_each_example_at_its_own_drawn_eps",
    },
    "AttackConfig": {  # DefenseConfig.attack: the training attack's budget
        "name": "tests/defenses/recipes_test.py::test_recipes_have_the_documented_terms_attacks_and_passes",
        "eps": _HERE + "test_training_attack_budget_reaches_the_step",
        "step_size": _HERE + "test_training_attack_budget_reaches_the_step",
        "steps": _HERE + "test_training_attack_budget_reaches_the_step",
        "norm": _HERE + "test_training_attack_budget_reaches_the_step",
        "random_start": "tests/training/trainer_test.py::test_interrupted_run_resumes_to_the_same_weights",
        "restarts": "tests/attacks/attacks_test.py",
        "params": "tests/evaluation/specs_test.py",
    },
    "DataConfig": {
        "name": "tests/data/datasets_test.py",
        "data_dir": "tests/data/datasets_test.py",
        "image_size": "tests/trainers/cli_test.py",
        "test_fraction": "tests/data/datasets_test.py::test_digits_split_sizes_values_and_determinism",
        "shuffle_buffer": _HERE + "test_first_step_is_sgd_on_the_first_batch_from_the_seeded_init",
        "seed": "tests/data/datasets_test.py::test_folder_of_class_folders_is_split_per_class_with_seed",
    },
    "ModelConfig": {  # the zoo's options, then a user's model (tfadv.models.sources)
        "name": "tests/models/zoo_test.py::test_small_models_map_images_to_logits",
        "weights": "tests/models/zoo_test.py::test_imagenet_weights_load_from_the_cached_file",
        "width": "tests/models/zoo_test.py::test_small_cnn_width_and_no_batch_norm",
        "activation": "tests/training/knobs_test.py::test_resnet18_activation_option",
        "path": "tests/keras/adversarial_model_test.py::test_cli_hardens_and_exports_a_backbone_file",
        "taps": "tests/models/sources_test.py::test_named_taps_override_and_errors",
        "gradcam_layer": "tests/models/sources_test.py::test_named_taps_override_and_errors",
        "input_range": "tests/models/sources_test.py::test_input_range_is_folded_in_front",
        "safe_mode": "tests/trainers/bad_input_test.py",
        "bn_momentum": "tests/models/sources_test.py::test_nested_backbone_is_flattened_softmax_removed_and_taps_found",
    },
}


def test_every_option_has_a_test():
  for cls in (config_lib.TrainConfig, config_lib.DefenseConfig, config_lib.AttackConfig,
              config_lib.DataConfig, config_lib.ModelConfig):
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(COVERAGE[cls.__name__]) == fields, cls.__name__
  for options in COVERAGE.values():
    for target in options.values():
      path, _, name = target.partition("::")
      with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
      if name:
        assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, target


def _config(model_dir, **kw):
  fields = dict(model_dir=str(model_dir), batch_size=32, train_steps=1, optimizer="sgd",
                learning_rate=0.5, seed=7, checkpoint_every=10, log_every=1, image_every=0,
                progress=False)
  fields.update(kw)
  return config_lib.TrainConfig(**fields)


def _first_batch(data, n=32):
  return next(iter(data.train.batch(n)))


def test_first_step_is_sgd_on_the_first_batch_from_the_seeded_init(tmp_path):
  # shuffle_buffer=1 keeps file order: the batch is the first `batch_size` examples; the
  # weights start from `seed`; SGD's first update is -learning_rate * gradient.
  data = datasets.load(IN_ORDER)
  result = trainer.train(data, MODEL, NONE, _config(tmp_path / "a", batch_size=16), IN_ORDER)
  x, y = _first_batch(data, 16)
  testing.assert_weights(result.model, testing.first_sgd_step(MODEL, data, x, y, 7, 0.5))
  # The controls: another seed, the default shuffle buffer, a 32-example batch, another
  # rate each give another step, so each option above is seen.
  x32, y32 = _first_batch(data, 32)
  for expected in (testing.first_sgd_step(MODEL, data, x, y, 8, 0.5),
                   testing.first_sgd_step(MODEL, data, x32, y32, 7, 0.5),
                   testing.first_sgd_step(MODEL, data, x, y, 7, 0.25)):
    assert testing.differs(result.model, expected)
  shuffled = trainer.train(data, MODEL, NONE, _config(tmp_path / "b", batch_size=16),
                           config_lib.DataConfig(name="digits"))
  assert testing.differs(shuffled.model, testing.first_sgd_step(MODEL, data, x, y, 7, 0.5))


def test_label_smoothing_reaches_the_step(tmp_path):
  data = datasets.load(IN_ORDER)
  result = trainer.train(data, MODEL, NONE, _config(tmp_path, label_smoothing=0.3), IN_ORDER)
  x, y = _first_batch(data)
  testing.assert_weights(result.model, testing.first_sgd_step(MODEL, data, x, y, 7, 0.5, 0.3))
  twice = 1 - 0.7 * 0.7  # smoothing applied on smoothed targets
  for smoothing in (0.0, twice):
    assert testing.differs(result.model,
                           testing.first_sgd_step(MODEL, data, x, y, 7, 0.5, smoothing))


def test_nesterov_first_step_is_1_9_lr_g(tmp_path):
  # Keras SGD: m = 0.9 m - lr g; Nesterov w += 0.9 m - lr g, so from m = 0: -1.9 lr g.
  data = datasets.load(IN_ORDER)
  result = trainer.train(data, MODEL, NONE, _config(tmp_path, nesterov=True,
                                                    learning_rate=0.2), IN_ORDER)
  x, y = _first_batch(data)
  testing.assert_weights(result.model, testing.first_sgd_step(MODEL, data, x, y, 7, 0.38))
  assert testing.differs(result.model, testing.first_sgd_step(MODEL, data, x, y, 7, 0.2))


def _restored(data, path):
  model = zoo.build_model(MODEL, data.image_shape, data.num_classes)
  tf.train.Checkpoint(model=model).restore(path).expect_partial()
  return model


def test_warmup_first_step_is_lr_over_warmup_steps(tmp_path):
  # Rate at step s < w: lr * (s + 1) / w, so the first step (in a 5-step run: the warm-up
  # is capped at steps - 1) moves by lr / 4.
  data = datasets.load(IN_ORDER)
  trainer.train(data, MODEL, NONE, _config(tmp_path, warmup_steps=4, train_steps=5,
                                           checkpoint_every=1, keep_checkpoints=5), IN_ORDER)
  first = _restored(data, os.path.join(tmp_path, "checkpoints", "ckpt-1"))
  x, y = _first_batch(data)
  testing.assert_weights(first, testing.first_sgd_step(MODEL, data, x, y, 7, 0.5 / 4))
  assert testing.differs(first, testing.first_sgd_step(MODEL, data, x, y, 7, 0.5))


def test_schedule_reaches_the_optimizer_at_its_boundary(tmp_path):
  # piecewise over 4 steps: x0.1 after step 2 (bound 2), so a piecewise run equals the
  # constant run through step 3 and not at step 4; the logged rate follows the schedule.
  data = datasets.load(IN_ORDER)
  kw = dict(train_steps=4, checkpoint_every=1, keep_checkpoints=4, learning_rate=0.05)
  trainer.train(data, MODEL, NONE, _config(tmp_path / "constant", **kw), IN_ORDER)
  trainer.train(data, MODEL, NONE, _config(tmp_path / "piecewise", schedule="piecewise", **kw),
                IN_ORDER)

  def weights(run, step):
    return [w.numpy() for w in _restored(
        data, os.path.join(tmp_path, run, "checkpoints", f"ckpt-{step}")).weights]

  for step in (1, 2, 3):
    for a, b in zip(weights("constant", step), weights("piecewise", step)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert any(not np.allclose(a, b, atol=1e-6)
             for a, b in zip(weights("constant", 4), weights("piecewise", 4)))
  events = tf.io.gfile.glob(os.path.join(tmp_path, "piecewise", "train", "events.*"))
  rates = {e.step: float(tf.make_ndarray(v.tensor)) for f in events
           for e in tf.compat.v1.train.summary_iterator(f) for v in e.summary.value
           if v.tag == "learning_rate"}
  # Logged after step s: the rate of the next step, schedule(s) (bounds 2 and 3).
  np.testing.assert_allclose([rates[s] for s in (1, 2, 3, 4)], [0.05, 0.05, 0.005, 0.0005],
                             rtol=1e-6)
  # cosine: lr * (1 + cos(pi * s / steps)) / 2, the schedule the trainer's optimizer gets.
  cosine = trainer.learning_rate(config_lib.TrainConfig(learning_rate=0.05, schedule="cosine"),
                                 4)
  np.testing.assert_allclose([float(cosine(s)) for s in (0, 1, 2, 4)],
                             [0.05, 0.05 * (1 + np.cos(np.pi / 4)) / 2, 0.025, 0.0], atol=1e-7)


def test_epochs_set_the_steps_unless_train_steps_is_given(tmp_path):
  data = datasets.load(IN_ORDER)
  per_epoch = data.num_train // 256
  kw = dict(batch_size=256, train_steps=None, checkpoint_every=100, learning_rate=0.01)
  two = trainer.train(data, MODEL, NONE, _config(tmp_path / "two", epochs=2, **kw), IN_ORDER)
  assert per_epoch >= 2 and two.steps == 2 * per_epoch
  capped = trainer.train(data, MODEL, NONE, _config(tmp_path / "capped", epochs=2,
                                                    **dict(kw, train_steps=3)), IN_ORDER)
  assert capped.steps == 3
  assert tf.train.latest_checkpoint(os.path.join(tmp_path, "two", "checkpoints")).endswith(
      f"ckpt-{2 * per_epoch}")


def test_keep_checkpoints_keeps_the_newest(tmp_path):
  data = datasets.load(IN_ORDER)
  trainer.train(data, MODEL, NONE, _config(tmp_path, train_steps=4, checkpoint_every=1,
                                           keep_checkpoints=2), IN_ORDER)
  state = tf.train.get_checkpoint_state(os.path.join(tmp_path, "checkpoints"))
  assert [p.rsplit("-", 1)[1] for p in state.all_model_checkpoint_paths] == ["3", "4"]
  assert sorted(n for n in os.listdir(os.path.join(tmp_path, "checkpoints"))
                if n.endswith(".index")) == ["ckpt-3.index", "ckpt-4.index"]


def test_strategy_option_builds_the_strategy(tmp_path):
  if len(tf.config.list_logical_devices("CPU")) < 2:
    pytest.skip("needs the 2 virtual CPU devices configured in conftest.py")
  data = datasets.load(IN_ORDER)
  result = trainer.train(data, MODEL, NONE, _config(tmp_path, strategy="mirrored"), IN_ORDER)
  assert isinstance(result.strategy, tf.distribute.MirroredStrategy)
  assert result.strategy.num_replicas_in_sync == 2
  # Two replicas of 16 take the same step as one device on the 32 (global mean).
  x, y = _first_batch(data)
  testing.assert_weights(result.model, testing.first_sgd_step(MODEL, data, x, y, 7, 0.5))


def test_progress_bar_only_when_asked(tmp_path, capsys):
  data = datasets.load(IN_ORDER)
  trainer.train(data, MODEL, NONE, _config(tmp_path / "quiet", train_steps=2), IN_ORDER)
  assert "step" not in capsys.readouterr().out
  trainer.train(data, MODEL, NONE, _config(tmp_path / "bar", train_steps=2, progress=True),
                IN_ORDER)
  assert "2/2" in capsys.readouterr().out


def _pgd(data, x, y, eps, step_size, steps, norm):
  """PGD from x (no random start) written out: ascend the cross-entropy of the seeded
  initial model, project onto the eps-ball and [0, 1] after every step."""
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(7)
  model = zoo.build_model(MODEL, data.image_shape, data.num_classes)
  alpha = min(step_size, eps)
  x_adv = x
  for _ in range(steps):
    with tf.GradientTape() as tape:
      tape.watch(x_adv)
      loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.cast(y, tf.int32), model(x_adv, training=False))
    g = tape.gradient(loss, x_adv)
    # The step (clipped to [0, 1]), then the projection onto the ball (and [0, 1] again).
    size = lambda v: tf.sqrt(tf.reduce_sum(v * v, axis=[1, 2, 3], keepdims=True))
    direction = tf.sign(g) if norm == "linf" else g / tf.maximum(size(g), 1e-12)
    eta = tf.clip_by_value(x_adv + alpha * direction, 0.0, 1.0) - x
    if norm == "linf":
      eta = tf.clip_by_value(eta, -eps, eps)
    else:
      eta = eta * tf.minimum(1.0, eps / tf.maximum(size(eta), 1e-12))
    x_adv = tf.clip_by_value(x + eta, 0.0, 1.0)
  return x_adv


@pytest.mark.parametrize("eps,step_size,steps,norm,controls", [
    # A step above eps is clamped to it: eps ignored (default 0.1) or not projected differ.
    (0.15, 0.25, 1, "linf", [(0.1, 0.1, 1, "linf"), (0.25, 0.25, 1, "linf")]),
    # Three small steps: one step, or the default step size (2.5 eps / steps), differ.
    (0.3, 0.04, 3, "linf", [(0.3, 0.04, 1, "linf"), (0.3, 0.25, 3, "linf")]),
    (1.0, 0.6, 2, "l2", [(1.0, 0.6, 2, "linf"), (1.0, 0.6, 1, "l2")]),
])
def test_training_attack_budget_reaches_the_step(tmp_path, eps, step_size, steps, norm,
                                                  controls):
  """`pat`'s first step is SGD on PGD(eps, step_size, steps, norm) of the first batch,
  the attack written out here on the seeded initial model (no random start)."""
  data = datasets.load(IN_ORDER)
  attack = config_lib.AttackConfig(name="pgd", eps=eps, step_size=step_size, steps=steps,
                                   norm=norm, random_start=False)
  result = trainer.train(data, MODEL, config_lib.DefenseConfig(name="pat", attack=attack),
                         _config(tmp_path), IN_ORDER)
  x, y = _first_batch(data)
  x_adv = _pgd(data, x, y, eps, step_size, steps, norm)
  testing.assert_weights(result.model, testing.first_sgd_step(MODEL, data, x_adv, y, 7, 0.5),
                         rtol=1e-3, atol=1e-5)
  for control in controls:
    other = _pgd(data, x, y, *control)
    assert testing.differs(result.model, testing.first_sgd_step(MODEL, data, other, y, 7, 0.5),
                           atol=1e-4), control
