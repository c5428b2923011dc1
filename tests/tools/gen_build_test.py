"""tools/gen_build.py on small synthetic source trees."""

import os
import subprocess
import textwrap

import pytest

from tools import gen_build


def _tree(root, files):
  for path, text in files.items():
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as f:
      f.write(textwrap.dedent(text))


def _rule(text, name):
  """The text of the rule named `name` in a BUILD text."""
  for block in text.split("\n\n"):
    if f'    name = "{name}",' in block:
      return block.strip()
  raise AssertionError(f"no rule {name} in:\n{text}")


BASE = {
    "tfadv/__init__.py": '"""pkg."""\n',
    "tfadv/config.py": "import dataclasses\n",
    "tfadv/core/__init__.py": "",
    "tfadv/core/ops.py": "import numpy as np\nfrom tfadv import config as config_lib\n",
    "tfadv/core/more.py": "from . import ops\nfrom .ops import something\n",
    "trainers/__init__.py": "",
    "trainers/train.py": """\
        from tfadv.core import more
        def main():
          pass
        if __name__ == "__main__":
          main()
        """,
    "serving/__init__.py": "",
    "serving/export.py": "from tfadv import config\n",
    "trainers/export.py": """\
        from serving import export
        if __name__ == "__main__":
          pass
        """,
    "tests/__init__.py": "",
    "tests/conftest.py": "import os\n",
    "tests/testing.py": "from tfadv.core import ops\n",
    "tests/core/conftest.py": "import pytest\n",
    "tests/core/ops_test.py": """\
        import subprocess, sys
        import pytest
        from tests import testing
        WORKER = '''
        import sys
        sys.path.insert(0, {root!r})
        from tfadv.core import more
        '''
        def test_cli():
          subprocess.run([sys.executable, "-m", "trainers.train"])
        @pytest.mark.slow
        def test_slow():
          pass
        """,
    "tests/core/manual_test.py": """\
        import pytest
        pytestmark = pytest.mark.manual
        def test_x():
          pass
        """,
}


def test_libraries_depend_on_the_modules_they_import(tmp_path):
  _tree(tmp_path, BASE)
  files = gen_build.generate(str(tmp_path))
  assert _rule(files["tfadv/core"], "ops") == textwrap.dedent("""\
      py_library(
          name = "ops",
          srcs = ["ops.py"],
          deps = ["//tfadv:config"],
      )""")
  more = _rule(files["tfadv/core"], "more")
  assert '":ops"' in more and "//tfadv:config" not in more  # relative imports, no transitives
  aggregate = _rule(files["tfadv"], "tfadv")
  assert '":config"' in aggregate and '"//tfadv/core"' in aggregate


def test_clis_are_binaries_and_names_do_not_clash(tmp_path):
  _tree(tmp_path, BASE)
  files = gen_build.generate(str(tmp_path))
  assert 'deps = [":train_lib"]' in _rule(files["trainers"], "train")
  assert 'main = "train.py"' in _rule(files["trainers"], "train")
  # The CLI trainers/export.py is //trainers:export over //trainers:export_lib; the library
  # serving/export.py keeps its plain name in its own package.
  assert 'main = "export.py"' in _rule(files["trainers"], "export")
  assert 'deps = [":export_lib"]' in _rule(files["trainers"], "export")
  assert '"//serving:export"' in _rule(files["trainers"], "export_lib")
  assert 'srcs = ["export.py"]' in _rule(files["serving"], "export")
  assert "py_binary" not in files["serving"]
  assert "client" not in files["serving"]  # no serving/client.py, no //serving:client


def test_tests_get_conftests_string_mentioned_modules_and_marks(tmp_path):
  _tree(tmp_path, BASE)
  files = gen_build.generate(str(tmp_path))
  ops_test = _rule(files["tests/core"], "ops_test")
  for dep in ('":conftest"', '"//tests:conftest"', '"//tests:testing"',
              '"//trainers:train_lib"', '"//tfadv/core:more"'):
    assert dep in ops_test, ops_test
  assert 'size = "large"' in ops_test and 'timeout = "eternal"' in ops_test
  assert "tags" not in ops_test
  manual = _rule(files["tests/core"], "manual_test")
  assert 'size = "medium"' in manual and 'timeout = "long"' in manual
  assert 'tags = ["manual"]' in manual
  assert files["tests/core"].count('load("//tools:pytest.bzl", "pytest_test")') == 1


def test_an_import_cycle_through_a_function_is_an_error_too(tmp_path):
  files = dict(BASE)
  files["tfadv/config.py"] = "def validate():\n  from tfadv.core import more\n"
  _tree(tmp_path, files)
  # config -> more -> ops -> config: no edge is dropped to hide it.
  with pytest.raises(ValueError, match="Import cycle.*//tfadv/core:more -> //tfadv/core:ops"):
    gen_build.generate(str(tmp_path))


def test_the_deferred_edges_of_an_acyclic_graph_are_kept(tmp_path):
  files = dict(BASE)
  files["tfadv/core/more.py"] = files.get("tfadv/core/more.py", "") + (
      "\ndef later():\n  from tfadv import config\n")
  _tree(tmp_path, files)
  more = _rule(gen_build.generate(str(tmp_path))["tfadv/core"], "more")
  assert '"//tfadv:config"' in more, more


def test_module_level_import_cycle_is_an_error(tmp_path):
  files = dict(BASE)
  files["tfadv/config.py"] = "from tfadv.core import ops\n"
  _tree(tmp_path, files)
  with pytest.raises(ValueError, match="Import cycle.*tfadv/core:ops"):
    gen_build.generate(str(tmp_path))


def test_check_reports_missing_targets_and_stale_files(tmp_path):
  _tree(tmp_path, BASE)
  gen_build.write(str(tmp_path), gen_build.generate(str(tmp_path)))
  assert not gen_build.differences(str(tmp_path), gen_build.generate(str(tmp_path)))
  assert gen_build.main(["--root", str(tmp_path), "--check"]) == 0
  _tree(tmp_path, {"tests/core/new_test.py": "def test_a():\n  pass\n",
                   "tfadv/core/extra.py": "X = 1\n",
                   "benchmarks/bench.py": "X = 1\n"})
  os.remove(tmp_path / "tests" / "core" / "manual_test.py")
  problems = gen_build.differences(str(tmp_path), gen_build.generate(str(tmp_path)))
  assert problems == [
      "benchmarks/BUILD is missing",
      "tests/core/BUILD is out of date (no target pytest_test :new_test; "
      "stale target pytest_test :manual_test)",
      "tfadv/core/BUILD is out of date (no target py_library :extra)",
  ]
  assert gen_build.main(["--root", str(tmp_path), "--check"]) == 1
  for path in ("tests/core/new_test.py", "tests/core/ops_test.py", "tests/core/conftest.py"):
    os.remove(tmp_path / path)
  assert "tests/core/BUILD is stale (no Python files left)" in gen_build.differences(
      str(tmp_path), gen_build.generate(str(tmp_path)))
  assert gen_build.main(["--root", str(tmp_path)]) == 0
  assert not (tmp_path / "tests" / "core" / "BUILD").exists()
  assert gen_build.main(["--root", str(tmp_path), "--check"]) == 0


def test_from_git_ignores_uncommitted_modules(tmp_path):
  _tree(tmp_path, BASE)
  git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
  subprocess.run(git + ["init", "-q"], check=True)
  subprocess.run(git + ["add", "."], check=True)
  subprocess.run(git + ["commit", "-q", "-m", "base"], check=True)
  _tree(tmp_path, {"tfadv/core/uncommitted.py": "X = 1\n", "tfadv/core/staged.py": "X = 1\n"})
  subprocess.run(git + ["add", "tfadv/core/staged.py"], check=True)
  assert gen_build.main(["--root", str(tmp_path), "--from_git=HEAD"]) == 0
  text = (tmp_path / "tfadv" / "core" / "BUILD").read_text()
  assert "uncommitted" not in text and "staged" not in text
  assert gen_build.main(["--root", str(tmp_path), "--from_git=index"]) == 0
  text = (tmp_path / "tfadv" / "core" / "BUILD").read_text()
  assert "uncommitted" not in text and ":staged" in text
  assert gen_build.main(["--root", str(tmp_path)]) == 0
  assert ":uncommitted" in (tmp_path / "tfadv" / "core" / "BUILD").read_text()


def test_main_reports_a_cycle_in_one_line(tmp_path, capsys):
  files = dict(BASE)
  files["tfadv/config.py"] = "def validate():\n  from tfadv.core import more\n"
  _tree(tmp_path, files)
  assert gen_build.main(["--root", str(tmp_path), "--check"]) == 1
  err = capsys.readouterr().err
  assert err.startswith("Error: Import cycle") and err.count("\n") == 1, err
