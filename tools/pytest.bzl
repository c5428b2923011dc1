"""`pytest_test`: a py_test that runs one test module under pytest (tools/pytest_main.py)."""

def pytest_test(name, src, deps = [], data = [], args = [], **kwargs):
    """A py_test running `src` with pytest, the repository's pytest.ini and its conftest.py files.

    Args:
      name: Target name (the module's name).
      src: The `*_test.py` file, in the current package.
      deps: Libraries the module needs, including the `conftest.py` libraries above it.
      data: Extra runtime files.
      args: Extra pytest arguments.
      **kwargs: Other py_test attributes (size, timeout, tags, ...).
    """
    native.py_test(
        name = name,
        srcs = [src, "//tools:pytest_main.py"],
        main = "//tools:pytest_main.py",
        args = [native.package_name() + "/" + src] + args,
        data = data + ["//:pytest.ini"],
        deps = deps,
        python_version = "PY3",
        **kwargs
    )
