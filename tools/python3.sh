#!/bin/sh
# Interpreter of tfadv's Bazel Python toolchain (tools/BUILD, docs/bazel.md): runs the Python
# that holds tfadv's third-party packages (TensorFlow, Keras, absl, pytest, ...), which is
# $TFADV_PYTHON if set (e.g. /path/to/venv/bin/python), else `python3` on PATH.
exec "${TFADV_PYTHON:-python3}" "$@"
