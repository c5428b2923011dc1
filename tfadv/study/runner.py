"""Running a study: plan its cells, compute the missing ones, and merge them.

`plan(study)` lists the cells in order (per defense group: trainings, evaluations,
analysis). `run(study, directory, shard)` computes the cells of its shard that have no
finished record, one line per cell, and merges the study when every cell is there.
Killing a study and running the same command again recomputes no finished cell; a cell
killed half-way resumes where its own checkpoint (training) or partial report (evaluation)
stopped. Shards split the defense groups (a defense with everything it depends on), so
several machines can write into one shared directory without waiting for each other.
"""

import os
import time

from absl import logging

from tfadv import config as config_lib
from tfadv import workflow
from tfadv.analysis import analyze as analyze_lib
from tfadv.data import datasets
from tfadv.defenses import table
from tfadv.evaluation import specs
from tfadv.study import cells as cells_lib
from tfadv.study import summary
from tfadv.training import trainer


def _jsonable(value):
  return trainer.to_jsonable(value)


def _data_key(data):
  """The data config as the cell hashes saw it: `test_fraction` under its former name
  `validation_fraction`, so that cells finished before the rename stay finished."""
  value = _jsonable(data)
  value["validation_fraction"] = value.pop("test_fraction")
  return value


def _group(study, defense):
  """The defense group: a defense trained on static models goes with `none`, its source."""
  if table.get(defense).static_sources:
    if "none" not in study.defenses:
      raise ValueError(f"Invalid study defenses: {defense} trains on the adversarial "
                       "examples of a static model, the study's `none` model; add none to "
                       "defenses")
    return "none"
  return defense


def plan(study):
  """The study's cells, in execution order."""
  threats = [t.value for t in study.threat_models]
  out = []
  train_cells = {}
  for defense in study.defenses:
    group = _group(study, defense)
    roles = [("target", study.model, study.seeds[0])]
    if "gray" in threats:
      roles.append(("gray", study.model, study.seeds[1]))
    if "black" in threats:
      roles.append(("black", study.surrogate_model, study.seeds[0]))
    for role, model, seed in roles:
      static = ()
      if table.get(defense).static_sources:
        static = (train_cells[("none", "target")].hash,)
      config = {"data": _data_key(study.data), "model": _jsonable(model),
                "defense": defense, "training_attack": _jsonable(study.training_attack),
                "train": dict(study.train), "seed": seed, "static": static}
      cell = cells_lib.Cell("train", defense, role, config, group)
      train_cells[(defense, role)] = cell
      out.append(cell)
    target = train_cells[(defense, "target")]
    for threat in threats:
      source = None if threat == "white" else train_cells[(defense, threat)].hash
      # Randomized defenses get EOT options from the evaluation itself (workflow).
      config = {"attacks": study.attacks_for(threat), "eps": list(study.eps),
                "num_examples": study.num_examples, "batch_size": study.eval_batch_size,
                "target": target.hash, "source": source}
      out.append(cells_lib.Cell("eval", defense, threat, config, group))
    analysis = dict(study.analysis)
    if analysis.pop("enabled", True):
      out.append(cells_lib.Cell("analysis", defense, "target",
                                {"options": analysis, "target": target.hash}, group))
  return out


class _Context:
  """What a study run shares between cells: the data, and where each cell writes."""

  def __init__(self, study, directory):
    self.study = study
    self.directory = directory
    self.store = cells_lib.Store(directory)
    self._data = None
    self.runs = {}

  @property
  def data(self):
    if self._data is None:
      self._data = datasets.load(self.study.data)
    return self._data

  def run_dir(self, cell):
    return os.path.join(self.directory, "runs", cell.slug)


def _train(context, cell, cells):
  study = context.study
  model = study.surrogate_model if cell.role == "black" else study.model
  static = ()
  if cell.config["static"]:
    source = next(c for c in cells if c.kind == "train" and c.defense == "none"
                  and c.role == "target")
    static = (context.run_dir(source),)
  defense = config_lib.DefenseConfig(name=cell.defense, attack=study.training_attack,
                                     static_model_dirs=static)
  model_dir = context.run_dir(cell)
  start = time.time()
  result = trainer.train(context.data, model, defense,
                         study.train_config(model_dir, cell.config["seed"]), study.data)
  return {"model_dir": os.path.relpath(model_dir, context.directory), "steps": result.steps,
          "resumed": result.resumed_from is not None,
          "train_seconds": time.time() - start}


def _evaluate(context, cell, cells):
  study = context.study
  threat = config_lib.ThreatModel(cell.role)
  by_hash = {c.hash: c for c in cells if c.kind == "train"}
  target = context.run_dir(by_hash[cell.config["target"]])
  source = None
  if cell.config["source"]:
    source = context.run_dir(by_hash[cell.config["source"]])
  eval_config = config_lib.EvalConfig(
      attacks=specs.parse_attacks(cell.config["attacks"], list(study.eps)),
      num_examples=study.num_examples, batch_size=study.eval_batch_size,
      threat_model=threat, source_model_dir=source)
  output = os.path.join(context.directory, "evals", cell.slug)
  report = workflow.evaluate_model_dir(target, eval_config, output_dir=output,
                                       progress=True, resume=True)
  return {"report": report, "output_dir": os.path.relpath(output, context.directory)}


def _analyse(context, cell, cells):
  by_hash = {c.hash: c for c in cells if c.kind == "train"}
  target = context.run_dir(by_hash[cell.config["target"]])
  options = dict(cell.config["options"])
  options.setdefault("eps", context.study.training_attack.eps)
  output = os.path.join(context.directory, "analysis", cell.slug)
  result = analyze_lib.analyze(workflow.load_trained(target), output, **options)
  result = {k: v for k, v in result.items() if k != "landscape"}  # Kept in its own file.
  return {"analysis": result, "output_dir": os.path.relpath(output, context.directory)}


_EXECUTORS = {"train": _train, "eval": _evaluate, "analysis": _analyse}


def run(study, directory, shard=(0, 1), merge=True, echo=print):
  """Computes the missing cells of `shard`, then merges the study if every cell is done.

  Args:
    study: a `tfadv.study.spec.Study`.
    directory: the study directory (shared by all shards).
    shard: (i, n): this run computes the defense groups with index = i mod n.
    merge: write study.json / study.md / figures when every cell has finished.
    echo: where the one line per cell goes.

  Returns:
    (computed, missing): ids of the cells this run computed, and of the cells still missing
    (other shards'). The merged study is in `directory/study.json` when `missing` is empty.
  """
  os.makedirs(directory, exist_ok=True)
  cells = plan(study)
  context = _Context(study, directory)
  groups = list(dict.fromkeys(c.group for c in cells))
  mine = [c for c in cells if cells_lib.in_shard(c.group, groups, shard)]
  computed = []
  for number, cell in enumerate(mine, 1):
    prefix = f"[{number}/{len(mine)}] {cell.id}"
    if context.store.get(cell) is not None:
      echo(f"{prefix}: done (kept)")
      continue
    echo(f"{prefix}: running")
    start = time.time()
    result = _EXECUTORS[cell.kind](context, cell, cells)
    context.store.put(cell, result, time.time() - start)
    computed.append(cell.id)
    echo(f"{prefix}: done in {time.time() - start:.0f} s")
  missing = [c.id for c in cells if context.store.get(c) is None]
  if missing:
    echo(f"{len(missing)} cells of other shards are not finished yet; run again (or with "
         "--merge) when they are: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5
                                                               else ""))
  elif merge:
    records = {c.id: context.store.get(c) for c in cells}
    paths = summary.write(study, cells, records, directory)
    echo(f"Study written: {paths['json']}, {paths['markdown']}")
  logging.info("Study %s: %d computed, %d missing", study.name, len(computed), len(missing))
  return computed, missing


def cell_ids(study):
  """The ids of the study's cells (for listing and tests)."""
  return [c.id for c in plan(study)]

