"""A quiet console for the CLIs: TensorFlow's start-up and INFO lines hidden by default.

Import this module first in a CLI (before anything imports TensorFlow): it sets
`TF_CPP_MIN_LOG_LEVEL=2` and imports TensorFlow with the process's stderr pointed at
/dev/null, which hides the C++ lines printed before absl logging is initialised ("oneDNN
custom operations are on", "This TensorFlow binary is optimized ...") that no log level
reaches. `common_flags.run_main` then lowers TensorFlow's Python logger to ERROR. Passing
`--verbosity` (absl's flag, e.g. `--verbosity=0` or `-v 1`) keeps everything as it was.
"""

import os
import sys


def verbose(argv=None):
  """Did the command line ask for `--verbosity` / `-v`?"""
  argv = sys.argv[1:] if argv is None else argv
  return any(a == "-v" or a.startswith(("--verbosity", "-v=")) for a in argv)


def import_tensorflow_quietly():
  """Imports TensorFlow hiding what it prints on stderr while loading (unless verbose)."""
  if verbose():
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if "tensorflow" in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


import_tensorflow_quietly()
