"""tools/pytest_main.py: the pytest command line of Bazel's `pytest_test` targets."""

import os

import tensorflow as tf

from tools import pytest_main


def test_args_follow_bazels_test_environment():
  env = {"XML_OUTPUT_FILE": "/out/test.xml", "TEST_TMPDIR": "/tmp/t",
         "TESTBRIDGE_TEST_ONLY": "identical"}
  args = pytest_main.pytest_args("tests/a/b_test.py", ["-x"], env)
  assert args[0] == "tests/a/b_test.py"
  assert args[args.index("-c") + 1] == "pytest.ini"
  assert "--junitxml=/out/test.xml" in args
  assert f"--basetemp={os.path.join('/tmp/t', 'pytest')}" in args
  assert args[args.index("-k") + 1] == "identical"
  assert args[args.index("-m") + 1] == ""  # Bazel's tags, not pytest's -m, select tests.
  assert args[-1] == "-x"


def test_args_outside_bazel_add_nothing():
  assert pytest_main.pytest_args("t_test.py", [], {}) == [
      "t_test.py", "-c", "pytest.ini", "--rootdir=.", "-m", ""]


def test_usage_errors_name_what_was_expected(capsys):
  assert pytest_main.main(["pytest_main.py"]) == 2
  assert "Usage" in capsys.readouterr().err
  assert pytest_main.main(["pytest_main.py", "no/such_test.py"]) == 2
  assert "no/such_test.py not found" in capsys.readouterr().err


def test_conftest_ran_before_this_module():
  # tests/conftest.py splits the CPU into 2 logical devices, under pytest and under Bazel alike.
  assert len(tf.config.list_logical_devices("CPU")) == 2


def test_code_under_test_is_this_trees_not_an_installed_copy():
  # Under Bazel both live in the runfiles tree: an editable pip install of another checkout
  # must not shadow the tfadv that Bazel built.
  import tfadv  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert os.path.dirname(os.path.dirname(os.path.abspath(tfadv.__file__))) == root
