"""Atomic file writes: readers (TF Serving polling a config, a resumed run) never see half a file.

The text goes to a hidden temporary file in the same directory, which is then renamed over the
destination; a rename within one file system is atomic, so a crash leaves either the old file
or the new one (and at most a stray `.<name>.tmp-*` file, ignored by every reader).
"""

import json
import os
import uuid

import tensorflow as tf


def temporary_path(path):
  """A unique hidden name beside `path` (same directory, so the rename stays atomic)."""
  directory, name = os.path.split(path)
  return os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:8]}")


def atomic_write(path, data):
  """Writes `data` (str or bytes) to `path` through a temporary file and a rename.

  Returns:
    `path`.
  """
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  tmp = temporary_path(path)
  try:
    with tf.io.gfile.GFile(tmp, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  finally:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
  return path


def atomic_write_json(path, value, indent=2, sort_keys=True):
  """`atomic_write` of `value` as JSON with a final newline."""
  return atomic_write(path, json.dumps(value, indent=indent, sort_keys=sort_keys) + "\n")


def read_json(path, what="file"):
  """Parses the JSON file `path`, naming it in the error.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: `path` is a directory or not valid JSON.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Invalid {what}: expected {path!r}; it does not exist")
  if tf.io.gfile.isdir(path):
    raise ValueError(f"Invalid {what}: expected a JSON file; {path!r} is a directory")
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"Invalid {what}: {path!r} is not valid JSON ({e})") from None


def atomic_savefig(fig, path, **kwargs):
  """Saves a matplotlib figure to `path` through a temporary file and a rename.

  The temporary name keeps `path`'s extension, from which matplotlib takes the format.
  """
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  tmp = temporary_path(path) + os.path.splitext(path)[1]
  try:
    fig.savefig(tmp, **kwargs)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
