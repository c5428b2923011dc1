"""Flags as a new user writes them: fractions, the evaluation threat, --norm, --test_fraction,
help texts generated from the registries, and --help / flag errors of every command."""

import os
import re
import subprocess
import sys

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import config as config_lib
from tfadv.attacks import registry
from tfadv.defenses import models
from tfadv.defenses import recipes
from tfadv.defenses import table
from tfadv.losses import registry as terms_lib
from trainers import common_flags
from trainers import train as train_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGS = flags.FLAGS


def _parse(*args):
  if "defense" not in FLAGS:
    train_cli.define_flags()
  FLAGS.unparse_flags()
  FLAGS(["tfadv-train", "--model_dir=/tmp/unused", *args])


def _train_configs(monkeypatch, *args):
  """The configs tfadv-train's own `main` hands to the library for these flags."""
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  seen = {}

  def fake(data, model, defense, train, evaluation, strategy=None):
    seen.update(data=data, defense=defense, eval=evaluation)
    return None, None  # No report: main stops there.

  monkeypatch.setattr(workflow, "train_and_evaluate", fake)
  _parse(*args)
  train_cli.main(["tfadv-train"])
  return seen


# --- fractions ------------------------------------------------------------------------------


def test_fractions_are_their_value_in_flags_and_attack_options():
  _parse("--eps=8/255", "--attack_step_size=2/255", "--eval_eps=8/255, 16/255",
         "--attacks=fgsm,pgd:eps=4/255:step_size=1/255")
  attack = common_flags.defense_config_from_flags().attack
  # Exactly the quotient (8/255 == 0.03137254901960784), not 8 and not a refusal.
  assert attack.eps == 8 / 255 and attack.step_size == 2 / 255
  evaluation = common_flags.eval_config_from_flags(training_attack=attack)
  assert {(a.name, a.eps) for a in evaluation.attacks} == {
      ("fgsm", 8 / 255), ("fgsm", 16 / 255), ("pgd", 4 / 255)}
  assert [a.step_size for a in evaluation.attacks if a.name == "pgd"] == [1 / 255]


def test_fractions_in_a_flagfile(tmp_path):
  path = tmp_path / "recipe.flags"
  path.write_text("# eps as the paper writes it\n--eps=8/255\n--attack_step_size=2/255\n"
                  "--eval_eps=4/255\n")
  _parse(f"--flagfile={path}")
  attack = common_flags.defense_config_from_flags().attack
  assert (attack.eps, attack.step_size) == (8 / 255, 2 / 255)
  assert {a.eps for a in common_flags.eval_config_from_flags().attacks} == {4 / 255}


def test_fractions_in_study_files():
  from tfadv.study import spec  # pylint: disable=g-import-not-at-top
  study = spec.parse({"name": "s", "defenses": ["pat"],
                      "training_attack": {"eps": "8/255", "step_size": "2/255"},
                      "evaluation": {"eps": ["8/255", 0.1]},
                      "analysis": {"eps": "4/255", "radius": "16/255"},
                      "claims": [{"better": "pat", "than": "pat", "attack": "pgd20",
                                  "eps": "8/255"}]})
  assert (study.training_attack.eps, study.training_attack.step_size) == (8 / 255, 2 / 255)
  assert study.eps == (8 / 255, 0.1)
  assert dict(study.analysis) == {"eps": 4 / 255, "radius": 16 / 255}
  assert study.claims[0].eps == 8 / 255
  with pytest.raises(ValueError, match="Invalid study evaluation eps"):
    spec.parse({"name": "s", "defenses": ["pat"], "evaluation": {"eps": ["8/0"]}})


@pytest.mark.parametrize("value", ["8/0", "eight/255", "8//255", "1/2/3"])
def test_malformed_fractions_are_flag_errors(value):
  with pytest.raises(flags.IllegalFlagValueError, match="fraction such as 8/255"):
    _parse(f"--eps={value}")


def test_parse_number():
  assert config_lib.parse_number("8/255", "eps") == 8 / 255
  assert config_lib.parse_number(" 0.5 ", "eps") == 0.5
  assert config_lib.parse_number(np.float32(0.25), "eps") == 0.25
  for bad in ("", "8/", True, "nan/"):
    with pytest.raises(ValueError, match="Invalid eps: expected a number or a fraction"):
      config_lib.parse_number(bad, "eps")


# --- the evaluation threat follows the training threat ------------------------------------


def test_train_evaluates_at_the_training_eps_and_norm_by_default(monkeypatch):
  evaluation = _train_configs(monkeypatch, "--defense=pat", "--eps=8/255")["eval"]
  assert {(a.eps, a.norm) for a in evaluation.attacks} == {(8 / 255, config_lib.Norm.LINF)}
  evaluation = _train_configs(monkeypatch, "--defense=pat", "--eps=0.5", "--norm=l2")["eval"]
  assert {(a.eps, a.norm) for a in evaluation.attacks} == {(0.5, config_lib.Norm.L2)}
  # An explicit --eval_eps (and an attack's own norm) still win.
  evaluation = _train_configs(monkeypatch, "--defense=pat", "--eps=8/255", "--eval_eps=0.1",
                              "--attacks=pgd:norm=linf")["eval"]
  assert {(a.eps, a.norm) for a in evaluation.attacks} == {(0.1, config_lib.Norm.LINF)}


def test_training_attack_of_a_run_dir(tmp_path):
  assert common_flags.training_attack_of(str(tmp_path)) is None  # No run config.
  (tmp_path / "run_config.json").write_text(
      '{"defense": {"name": "pat", "attack": {"name": "pgd", "eps": 0.5, "norm": "l2", '
      '"steps": 3}}}')
  attack = common_flags.training_attack_of(str(tmp_path))
  assert (attack.eps, attack.norm, attack.steps) == (0.5, config_lib.Norm.L2, 3)


# --- --norm ------------------------------------------------------------------------------


def _linear_model(shape=(8, 8, 1), classes=3):
  keras.utils.set_random_seed(0)
  inputs = keras.Input(shape)
  logits = keras.layers.Dense(classes)(keras.layers.Flatten()(inputs))
  return keras.Model(inputs, logits)


@pytest.mark.parametrize("defense", ["pat", "trades", "stepll_at"])
def test_l2_flag_reaches_the_training_attack(defense):
  _parse(f"--defense={defense}", "--norm=l2", "--eps=0.5", "--attack_steps=3")
  recipe = recipes.build(common_flags.defense_config_from_flags())
  assert recipe.attack.norm is config_lib.Norm.L2
  x = tf.random.stateless_uniform([16, 8, 8, 1], seed=[1, 2], minval=0.25, maxval=0.75)
  y = tf.constant(np.arange(16) % 3, tf.int32)
  model = _linear_model()
  delta = registry.from_config(recipe.attack, seed=tf.constant([3, 4]))(
      lambda z: model(z, training=False), x, y) - x
  l2 = tf.norm(tf.reshape(delta, [16, -1]), axis=1).numpy()
  # In the L2 ball of radius 0.5 and using it; an L-inf step of 0.5 would move every pixel
  # by up to 0.5 (an L2 norm up to 0.5 * 8 = 4).
  assert l2.max() <= 0.5 + 1e-4 and l2.max() > 0.25, l2


def test_eps_draw_flag_reaches_the_defense_config():
  _parse("--defense=stepll_at")
  assert recipes.build(common_flags.defense_config_from_flags()).eps_draw == "half_normal"
  _parse("--defense=stepll_at", "--eps_draw=fixed")
  assert recipes.build(common_flags.defense_config_from_flags()).eps_draw == "fixed"
  _parse("--defense=pat", "--eps_draw=uniform_batch")
  assert common_flags.defense_config_from_flags().eps_draw == "uniform_batch"
  _parse("--defense=trades", "--eps_draw=half_normal")
  with pytest.raises(ValueError, match="Invalid eps_draw: a drawn eps needs"):
    common_flags.defense_config_from_flags()


def test_defenses_without_an_l2_attack_refuse_the_l2_flag_clearly():
  for defense in ("fgsm_rs", "n_fgsm"):
    _parse(f"--defense={defense}", "--norm=l2")
    with pytest.raises(ValueError, match=f"Invalid norm: defense {defense} trains with "
                       f"{defense}, which is defined for linf only; received norm=l2"):
      common_flags.defense_config_from_flags()


# --- --test_fraction -----------------------------------------------------------------------


def test_test_fraction_and_its_deprecated_name(capsys):
  _parse("--test_fraction=0.3")
  assert common_flags.data_config_from_flags().test_fraction == 0.3
  assert "deprecated" not in capsys.readouterr().err
  _parse("--validation_fraction=0.25")
  assert common_flags.data_config_from_flags().test_fraction == 0.25
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "--validation_fraction is deprecated" in err
  _parse("--validation_fraction=0.25", "--test_fraction=0.3")
  with pytest.raises(ValueError, match="Invalid test_fraction"):
    common_flags.data_config_from_flags()


def test_old_run_configs_still_read_their_test_fraction():
  old = {"name": "folder", "data_dir": "/d", "image_size": [32, 32],
         "validation_fraction": 0.35, "seed": 2}
  config = config_lib.DataConfig.from_dict(old)
  assert (config.test_fraction, config.image_size, config.seed) == (0.35, (32, 32), 2)
  assert config_lib.DataConfig.from_dict({"test_fraction": 0.1}).test_fraction == 0.1


# --- help texts from the registries -------------------------------------------------------


def _help(name):
  if "defense" not in FLAGS:
    train_cli.define_flags()
  return FLAGS[name].help


def test_attacks_help_lists_every_attack_of_the_registry_with_its_options():
  text = _help("attacks")
  for spec in registry.SPECS:
    if not spec.training_only:
      assert re.search(rf"\b{spec.name}\b", text), spec.name
  for option in registry.parameters("rays"):
    assert option in text


def test_wrapper_options_help_suggests_only_options_the_cli_accepts():
  text = _help("wrapper_options")
  suggested = dict(re.findall(r"(\w+): ((?:\w+=[^,;]+(?:, )?)+)", text))
  wrapped = {d.name: d.wrapper for d in table.DEFENSES.values() if d.wrapper}
  assert set(suggested) == set(wrapped)
  for defense, options in suggested.items():
    pairs = [tuple(o.split("=", 1)) for o in options.rstrip(".").split(", ")]
    models.resolve_wrapper_options(wrapped[defense], pairs)  # Raises on a wrong option.
  assert "stddev" not in text  # The rat wrapper takes scale (and distribution).


def test_terms_help_lists_every_term_with_its_options():
  text = _help("terms")
  for term in terms_lib.TERMS.values():
    assert re.search(rf"\b{term.name}\b", text), term.name
    for option in term.options:
      assert option.name in text


# --- --help and flag errors of every command (each in its own process) --------------------

# command -> (a flag of its own, a group title, a flag of another command it must not list)
COMMANDS = {
    "train": ("--test_fraction", "Defense:", "--threat_model"),
    "evaluate": ("--threat_model", "Evaluation:", "--learning_rate"),
    "export": ("--version_policy", "Export:", "--learning_rate"),
    "analyze": ("--landscape_examples", "Analysis:", "--learning_rate"),
    "study": ("--shard", "Study:", "--learning_rate"),
    "client": ("--top_k", "Server:", "--learning_rate"),
}


def test_help_lists_each_commands_own_flags():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  runs = {name: subprocess.Popen([sys.executable, "-m", f"trainers.{name}", "--help"],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
          for name in COMMANDS}
  for name, (own, group, other) in COMMANDS.items():
    stdout, stderr = runs[name].communicate(timeout=300)
    assert runs[name].returncode == 0, stderr
    assert f"{own}:" in stdout and f"\n{group}\n" in stdout, stdout
    assert f"{other}:" not in stdout  # Only its own flags, not every flag of the process.
    assert "--helpfull" in stdout and "--validation_fraction" not in stdout
    if name == "train":
      assert all(f"\n{g}:\n" in stdout for g in ("Data", "Model", "Evaluation", "Export"))


@pytest.mark.parametrize("args", [["--nope=1"], ["--epochs=abc"], ["--eps=8/0"]])
def test_flag_errors_are_one_line_pointing_at_help(args, capsys):
  if "defense" not in FLAGS:
    train_cli.define_flags()
  FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as exit_info:
    common_flags.parse_flags(["tfadv-train", "--model_dir=/tmp/unused", *args])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2 and err.count("\n") == 1
  assert err.startswith("Error: ") and err.rstrip().endswith("(see --help)"), err


def test_invalid_flag_values_point_at_help_other_errors_do_not():
  _parse("--eps=2")
  with pytest.raises(ValueError) as error:
    common_flags.defense_config_from_flags()
  line = common_flags._error_line(str(error.value))  # pylint: disable=protected-access
  assert line.startswith("Error: Invalid eps: ") and line.endswith(" (see --help)\n"), line
  assert "--help" not in common_flags._error_line(  # pylint: disable=protected-access
      "Invalid idx file 'x.gz': truncated")
