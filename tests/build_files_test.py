"""The committed Bazel BUILD files cover every module and test module, as generated.

Under Bazel the test reads the source tree its runfiles link to, so both `python3 -m pytest` and
`bazel test //tests:build_files_test` check the checkout they run in.
"""

import os
import re

from tools import gen_build

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def _rules(package):
  """[(rule kind, name, [source files])] of the BUILD file of `package`."""
  path = os.path.join(ROOT, package, "BUILD")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    text = f.read()
  rules = []
  for kind, body in re.findall(r"^(\w+)\(\n(.*?)^\)", text, flags=re.S | re.M):
    name = re.search(r'^    name = "([^"]+)"', body, flags=re.M).group(1)
    sources = re.findall(r'"([^"]+\.py)"', " ".join(re.findall(
        r"^    srcs? = (\[.*?\]|\"[^\"]+\")", body, flags=re.S | re.M)))
    rules.append((kind, name, sources))
  return rules


def test_build_files_are_what_the_generator_writes():
  problems = gen_build.differences(ROOT, gen_build.generate(ROOT))
  assert not problems, ("BUILD files differ from the sources; run `python3 tools/gen_build.py`"
                        ":\n" + "\n".join(problems))


def test_every_test_module_is_a_pytest_test_target():
  missing = []
  for path in gen_build.find_sources(ROOT):
    package, filename = os.path.split(path)
    if filename.endswith("_test.py"):
      targets = {(name, tuple(srcs)) for kind, name, srcs in _rules(package)
                 if kind == "pytest_test"}
      if (filename[:-3], (filename,)) not in targets:
        missing.append(path)
  assert not missing, f"Test modules without a pytest_test target: {missing}"


def test_every_module_has_a_library_target():
  missing = []
  for path in gen_build.find_sources(ROOT):
    package, filename = os.path.split(path)
    if not filename.endswith("_test.py"):
      libraries = [srcs for kind, _, srcs in _rules(package) if kind == "py_library"]
      if not any(filename in srcs for srcs in libraries):
        missing.append(path)
  assert not missing, f"Modules without a py_library target: {missing}"


def test_clis_and_aggregate_library_exist():
  assert ("py_binary", "train", ["train.py"]) in _rules("trainers")
  assert ("py_binary", "evaluate", ["evaluate.py"]) in _rules("trainers")
  assert ("py_binary", "export", ["export.py"]) in _rules("trainers")
  assert ("py_binary", "client", ["client.py"]) in _rules("trainers")
  assert ("py_binary", "study", ["study.py"]) in _rules("trainers")
  aggregate = [r for r in _rules("tfadv") if r[:2] == ("py_library", "tfadv")]
  assert aggregate == [("py_library", "tfadv", ["__init__.py"])]
