"""Every recipe flagfile under recipes/ parses into valid configs and trains on tiny data."""

import glob
import os

from absl import flags
import pytest

from trainers import common_flags
from trainers import train as train_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "recipes", "*.flags")))
FLAGS = flags.FLAGS

# Tiny data and model, cheap attacks; everything else (defense, optimizer, schedule,
# augmentation, EMA, validation, precision) stays the recipe's.
TINY = ["--dataset=digits", "--model=small_cnn", "--width=8", "--train_steps=2",
        "--batch_size=16", "--attack_steps=1", "--num_examples=16", "--eval_batch_size=16",
        "--attacks=fgsm", "--noprogress", "--checkpoint_every=2", "--log_every=1",
        "--image_every=0"]


def _parse(args):
  if "defense" not in FLAGS:
    train_cli.define_flags()
  FLAGS.unparse_flags()
  FLAGS(["tfadv-train", *args])


def _file_flags(path):
  with open(path) as f:
    lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
  return dict(l[2:].split("=", 1) if "=" in l else (l[2:], "true") for l in lines)


def test_there_are_recipes():
  names = {os.path.basename(p) for p in RECIPES}
  assert {"madry_pgd10_resnet18_cifar10.flags", "trades_resnet18_cifar10.flags",
          "at_alp_resnet101_flowers17.flags", "aad_resnet101_flowers17.flags",
          "fgsm_rs_resnet18_cifar10.flags", "n_fgsm_resnet18_cifar10.flags",
          "pgd10_l2_resnet18_cifar10.flags"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_recipe_parses_names_its_source_and_trains(tmp_path, path):
  with open(path) as f:
    header = f.read().split("\n--", 1)[0]
  assert "et al" in header or "arXiv" in header or "github.com" in header  # its source
  _parse([f"--flagfile={path}", f"--model_dir={tmp_path / 'parsed'}"])
  for name, value in _file_flags(path).items():
    assert name in FLAGS, name
  # The full-size configs are valid as written.
  common_flags.model_config_from_flags()
  defense = common_flags.defense_config_from_flags()
  train = common_flags.train_config_from_flags()
  evaluation = common_flags.eval_config_from_flags(training_attack=defense.attack)
  # Evaluated at the training threat unless the recipe says otherwise.
  if "--eval_eps" not in open(path).read():
    assert {(a.eps, a.norm) for a in evaluation.attacks} == {(defense.attack.eps,
                                                               defense.attack.norm)}
  assert defense.name == _file_flags(path)["defense"]
  if "--validate_every" in open(path).read():
    assert train.validate_every > 0

  tiny = TINY + [f"--model_dir={tmp_path / 'run'}"]
  if train.validate_every:
    tiny += ["--validate_every=1", "--validation_size=32", "--validation_attack_steps=1"]
  if train.warmup_steps:
    tiny += ["--warmup_steps=1"]
  _parse([f"--flagfile={path}", *tiny])
  FLAGS.data_dir, FLAGS.image_size = None, None
  from tfadv import workflow  # pylint: disable=g-import-not-at-top
  result, report = workflow.train_and_evaluate(
      common_flags.data_config_from_flags(), common_flags.model_config_from_flags(),
      common_flags.defense_config_from_flags(), common_flags.train_config_from_flags(),
      common_flags.eval_config_from_flags(
          training_attack=common_flags.defense_config_from_flags().attack))
  assert result.steps == 2
  assert report["defense"] == defense.name
  assert report["weights"] == ("ema" if train.ema_decay else "raw")
