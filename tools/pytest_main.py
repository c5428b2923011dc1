"""Runs one test module under pytest: the `main` of every Bazel `pytest_test` target.

Bazel runs a py_test as a plain script; handing the module to pytest instead makes conftest.py
(two logical CPU devices), fixtures, parametrization and marks behave exactly as under
`python3 -m pytest`. Bazel's test environment is honoured: JUnit XML goes to $XML_OUTPUT_FILE,
temporary directories under $TEST_TMPDIR, and `--test_filter=EXPR` becomes `-k EXPR`.

  pytest_main.py <test file relative to the workspace> [pytest args...]
"""

import os
import sys


def pytest_args(test_file, extra, env):
  """The pytest command line for `test_file` in Bazel's test environment `env`."""
  args = [test_file, "-c", "pytest.ini", "--rootdir=.",
          # Bazel chooses which targets run (tags = ["manual"]), so no mark is deselected here.
          "-m", ""]
  if env.get("XML_OUTPUT_FILE"):
    args.append(f"--junitxml={env['XML_OUTPUT_FILE']}")
  if env.get("TEST_TMPDIR"):
    args.append(f"--basetemp={os.path.join(env['TEST_TMPDIR'], 'pytest')}")
  if env.get("TESTBRIDGE_TEST_ONLY"):
    args += ["-k", env["TESTBRIDGE_TEST_ONLY"]]
  return args + list(extra)


def main(argv):
  if len(argv) < 2 or not argv[1].endswith(".py"):
    print(f"Usage: {os.path.basename(argv[0])} <test module .py> [pytest args]; "
          f"received {argv[1:]}", file=sys.stderr)
    return 2
  if not os.path.exists(argv[1]):
    print(f"Error: test module {argv[1]} not found in {os.getcwd()} (expected the Bazel "
          "runfiles directory of the workspace)", file=sys.stderr)
    return 2
  import pytest  # pylint: disable=g-import-not-at-top  # from the toolchain's interpreter
  return pytest.main(pytest_args(argv[1], argv[2:], os.environ))


if __name__ == "__main__":
  sys.exit(main(sys.argv))
