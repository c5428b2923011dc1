"""The units of a study and where their finished results are kept.

A study is a list of cells: train (one per defense x role: the target, its gray-box copy
with another seed, its black-box surrogate), evaluate (one per defense x threat model) and
analyse (one per defense). A cell's `config` is everything its result depends on, its
dependencies' hashes included, so changing a cell's settings changes its hash and that cell
(and what depends on it) is recomputed, nothing else. Finished cells are JSON files under
`<study dir>/cells/`, written atomically: a killed study never leaves half a cell.
"""

import dataclasses
import hashlib
import json
import os
from typing import Optional, Tuple

from tfadv import io_utils


def config_hash(config):
  """A short stable hash of a JSON-ready config."""
  text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Cell:
  """One unit of a study.

  Attributes:
    kind: `train`, `eval` or `analysis`.
    defense: the defense it belongs to.
    role: train: `target`, `gray` (the copy) or `black` (the surrogate); eval: the threat
      model; analysis: `target`.
    config: what its result depends on (JSON-ready, dependency hashes included).
    group: the defense group it is sharded with (a defense and what it needs).
  """
  kind: str
  defense: str
  role: str
  config: dict
  group: str

  @property
  def id(self):
    return f"{self.kind}/{self.defense}/{self.role}"

  @property
  def hash(self):
    return config_hash(self.config)

  @property
  def slug(self):
    """A directory name: readable and unique per config."""
    return f"{self.defense}-{self.role}-{self.hash[:8]}"


class Store:
  """Finished cells of a study directory, keyed by cell id and checked by hash."""

  def __init__(self, directory):
    self.directory = os.path.join(directory, "cells")

  def _path(self, cell):
    return os.path.join(self.directory, cell.id.replace("/", "__") + ".json")

  def get(self, cell) -> Optional[dict]:
    """The stored record of `cell` if it finished with the same config, else None."""
    path = self._path(cell)
    if not os.path.isfile(path):
      return None
    try:
      with open(path) as f:
        record = json.load(f)
    except (OSError, ValueError):
      return None  # A damaged record is recomputed, never trusted.
    if record.get("hash") != cell.hash:
      return None
    return record

  def put(self, cell, result, seconds):
    record = {"id": cell.id, "hash": cell.hash, "config": cell.config, "result": result,
              "seconds": seconds}
    io_utils.atomic_write_json(self._path(cell), record)
    return record


def parse_shard(text) -> Tuple[int, int]:
  """`i/n` -> (i, n) with 0 <= i < n.

  Raises:
    ValueError: naming the flag and the expected form.
  """
  try:
    index, count = (int(v) for v in str(text).split("/"))
  except ValueError:
    index, count = -1, 0
  if not 0 <= index < count:
    raise ValueError(f"Invalid shard: expected i/n with 0 <= i < n (e.g. 0/2); received "
                     f"shard={text!r}")
  return index, count


def in_shard(group, groups, shard):
  """Whether defense group `group` (one of the ordered `groups`) belongs to `shard`."""
  index, count = shard
  return groups.index(group) % count == index
