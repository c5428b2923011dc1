"""A study file: defenses x attacks x threat models on one dataset, as a frozen config.

A study is a JSON file (schema below); `load(path)` validates it at the boundary and every
error names the key, what was expected and what was received.

    {
      "name": "fashion_mnist",
      "data": {"name": "fashion_mnist"},                      # DataConfig fields
      "model": {"name": "small_cnn", "width": 16},            # ModelConfig fields
      "surrogate_model": {"name": "small_cnn", "width": 32},  # black box: another model
      "defenses": ["none", "pat", "alp", "at_alp"],           # tfadv.defenses.table names
      "seeds": [0, 1],              # target seed, then the gray-box copy's seed
      "train": {"train_steps": 2000, "batch_size": 64},       # TrainConfig fields
      "training_attack": {"eps": 0.1, "steps": 7},            # budget ("8/255" works too)
      "evaluation": {"attacks": "fgsm,pgd:steps=10|20", "eps": [0.1], "num_examples": 1000,
                     "transfer_attacks": "fgsm,pgd:steps=20"},  # gray/black (default: attacks)
      "threat_models": ["white", "gray", "black"],
      "analysis": {"num_examples": 128, "eps": 0.1, "attack_steps": 20},
      "claims": [{"better": "at_alp", "than": "pat", "attack": "pgd200", "threat": "gray",
                  "eps": 0.1, "paper": "AT+ALP Table 2"}]
    }
"""

import dataclasses
import json
from typing import Optional, Tuple

from tfadv import config as config_lib
from tfadv.defenses import table

_TOP_KEYS = ("name", "data", "model", "surrogate_model", "defenses", "seeds", "train",
             "training_attack", "evaluation", "threat_models", "analysis", "claims",
             "description")
# TrainConfig fields a study may set (model_dir, strategy and seed are the study's).
_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(config_lib.TrainConfig)
                    if f.name not in ("model_dir", "seed", "progress", "strategy",
                                      "num_cpu_devices"))
_EVAL_KEYS = ("attacks", "transfer_attacks", "eps", "num_examples", "batch_size")
_ANALYSIS_KEYS = ("enabled", "num_examples", "eps", "attack_steps", "fraction", "radius",
                  "points", "landscape_examples", "figure_examples")
_CLAIM_KEYS = ("better", "than", "attack", "threat", "eps", "paper")


@dataclasses.dataclass(frozen=True)
class Claim:
  """A hypothesis of a paper: `better` beats `than` under `attack` (report name)."""
  better: str
  than: str
  attack: str
  threat: str = "white"
  eps: Optional[float] = None
  paper: str = ""


@dataclasses.dataclass(frozen=True)
class Study:
  """A validated study file.

  Attributes mirror the file's keys; `train` holds TrainConfig keyword arguments,
  `evaluation` the attack string (white box; `transfer_attacks` for the gray and black box,
  default the same), eps list, number of examples and batch size.
  """
  name: str
  data: config_lib.DataConfig
  model: config_lib.ModelConfig
  surrogate_model: Optional[config_lib.ModelConfig]
  defenses: Tuple[str, ...]
  seeds: Tuple[int, int]
  train: Tuple[Tuple[str, object], ...]
  training_attack: config_lib.AttackConfig
  attacks: str
  eps: Tuple[float, ...]
  num_examples: Optional[int]
  eval_batch_size: int
  threat_models: Tuple[config_lib.ThreatModel, ...]
  analysis: Tuple[Tuple[str, object], ...]
  claims: Tuple[Claim, ...]
  description: str = ""
  transfer_attacks: Optional[str] = None

  def attacks_for(self, threat):
    """The attack string evaluated under threat model `threat` (a ThreatModel value)."""
    if threat == config_lib.ThreatModel.WHITE.value or self.transfer_attacks is None:
      return self.attacks
    return self.transfer_attacks

  def train_config(self, model_dir, seed):
    return config_lib.TrainConfig(model_dir=model_dir, seed=seed, progress=True,
                                  **dict(self.train)).validate()

  def as_dict(self):
    """The study as plain JSON-ready data (what `study.json` records)."""
    from tfadv.training import trainer  # pylint: disable=g-import-not-at-top
    return trainer.to_jsonable(self)


def _fail(key, expected, value):
  raise ValueError(f"Invalid study {key}: expected {expected}; received {value!r}")


def _keys(section, value, allowed):
  if not isinstance(value, dict):
    _fail(section, "an object", value)
  unknown = sorted(set(value) - set(allowed))
  if unknown:
    _fail(f"{section} key", f"one of [{', '.join(allowed)}]", unknown[0])


# Analysis options that are epsilons or radii: numbers, or fractions written as strings.
_FRACTION_KEYS = ("eps", "radius")


def _number(key, value):
  """A number of the study file; strings may be fractions ("8/255" is 8/255, not 8)."""
  try:
    return config_lib.parse_number(value, key)
  except ValueError:
    _fail(key, "a number or a fraction such as \"8/255\"", value)


def _dataclass(cls, section, value):
  _keys(section, value, [f.name for f in dataclasses.fields(cls)])
  try:
    if "image_size" in value and value["image_size"]:
      value = dict(value, image_size=tuple(value["image_size"]))
    return cls(**value).validate()
  except (TypeError, ValueError) as e:
    raise ValueError(f"Invalid study {section}: {e}") from None


def parse(raw, source="<study>"):
  """A `Study` from the decoded JSON object `raw`.

  Raises:
    ValueError: naming the key, what was expected and what was received.
  """
  _keys("file", raw, _TOP_KEYS)
  for key in ("name", "defenses"):
    if key not in raw:
      _fail(key, f"a value (required key of {source})", None)
  data_raw = raw.get("data", {})
  if isinstance(data_raw, dict) and "validation_fraction" in data_raw:  # The former name.
    data_raw = dict(data_raw)
    data_raw.setdefault("test_fraction", data_raw.pop("validation_fraction"))
  data = _dataclass(config_lib.DataConfig, "data", data_raw)
  model = _dataclass(config_lib.ModelConfig, "model", raw.get("model", {}))
  surrogate = None
  if raw.get("surrogate_model") is not None:
    surrogate = _dataclass(config_lib.ModelConfig, "surrogate_model", raw["surrogate_model"])
  defenses = raw["defenses"]
  if not isinstance(defenses, list) or not defenses:
    _fail("defenses", "a non-empty list of defense names", defenses)
  for name in defenses:
    if name not in table.DEFENSES:
      _fail("defenses", f"names of [{', '.join(table.NAMES)}]", name)
  if len(set(defenses)) != len(defenses):
    _fail("defenses", "each defense once", defenses)
  seeds = raw.get("seeds", [0, 1])
  if (not isinstance(seeds, list) or len(seeds) != 2 or seeds[0] == seeds[1]
      or not all(isinstance(s, int) for s in seeds)):
    _fail("seeds", "two different integers [target seed, gray-box copy seed]", seeds)
  train = raw.get("train", {})
  _keys("train", train, _TRAIN_KEYS)
  try:
    config_lib.TrainConfig(model_dir="x", **train).validate()
  except (TypeError, ValueError) as e:
    raise ValueError(f"Invalid study train: {e}") from None
  attack_raw = raw.get("training_attack", {})
  _keys("training_attack", attack_raw, ("eps", "steps", "step_size", "norm"))
  try:
    training_attack = config_lib.AttackConfig(name="pgd", **attack_raw).validate()
  except (TypeError, ValueError) as e:
    raise ValueError(f"Invalid study training_attack: {e}") from None
  evaluation = raw.get("evaluation", {})
  _keys("evaluation", evaluation, _EVAL_KEYS)
  eps = evaluation.get("eps", [training_attack.eps])
  if not isinstance(eps, list) or not eps:
    _fail("evaluation eps", "a non-empty list of numbers in (0, 1] (or fractions: \"8/255\")",
          eps)
  eps = [_number("evaluation eps", e) for e in eps]
  if not all(0 < e <= 1 for e in eps):
    _fail("evaluation eps", "a non-empty list of numbers in (0, 1]", eps)
  from tfadv.evaluation import specs  # pylint: disable=g-import-not-at-top
  for key in ("attacks", "transfer_attacks"):
    if key in evaluation:
      try:
        specs.parse_attacks(str(evaluation[key]), [float(e) for e in eps])
      except ValueError as e:
        raise ValueError(f"Invalid study evaluation {key}: {e}") from None
  threats = raw.get("threat_models", ["white"])
  try:
    threats = tuple(config_lib._choice(config_lib.ThreatModel, t, "threat_models")  # pylint: disable=protected-access
                    for t in threats)
  except ValueError as e:
    raise ValueError(f"Invalid study {e.args[0][len('Invalid '):]}") from None
  if config_lib.ThreatModel.WHITE not in threats:
    _fail("threat_models", "a list including white (the others are compared with it)",
          raw.get("threat_models"))
  if config_lib.ThreatModel.BLACK in threats and surrogate is None:
    _fail("surrogate_model", "a model config for the black-box threat model", None)
  if surrogate is not None and surrogate == model:
    _fail("surrogate_model", "another architecture than model (a copy is the gray box)",
          raw.get("surrogate_model"))
  analysis = raw.get("analysis", {})
  _keys("analysis", analysis, _ANALYSIS_KEYS)
  analysis = {k: (_number(f"analysis {k}", v) if k in _FRACTION_KEYS and v is not None else v)
              for k, v in analysis.items()}
  claims = []
  for claim in raw.get("claims", []):
    _keys("claims item", claim, _CLAIM_KEYS)
    if claim.get("eps") is not None:
      claim = dict(claim, eps=_number("claims eps", claim["eps"]))
    try:
      claim = Claim(**claim)
    except TypeError as e:
      raise ValueError(f"Invalid study claims item: {e}") from None
    for name in (claim.better, claim.than):
      if name not in defenses:
        _fail("claims defense", f"one of the study's defenses {defenses}", name)
    if claim.threat not in [t.value for t in threats]:
      _fail("claims threat", f"one of the study's threat models", claim.threat)
    claims.append(claim)
  return Study(
      name=str(raw["name"]), data=data, model=model, surrogate_model=surrogate,
      defenses=tuple(defenses), seeds=tuple(seeds), train=tuple(sorted(train.items())),
      training_attack=training_attack, attacks=str(evaluation.get("attacks", "fgsm,pgd:steps=20")),
      eps=tuple(float(e) for e in eps), num_examples=evaluation.get("num_examples"),
      eval_batch_size=int(evaluation.get("batch_size", 256)), threat_models=threats,
      analysis=tuple(sorted(analysis.items())), claims=tuple(claims),
      description=str(raw.get("description", "")),
      transfer_attacks=(str(evaluation["transfer_attacks"]) if "transfer_attacks" in evaluation
                        else None))


def load(path):
  """Reads and validates a study file.

  Raises:
    FileNotFoundError: no such file. ValueError: not JSON, or an invalid study (naming the
      file and the key).
  """
  try:
    with open(path) as f:
      raw = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"Invalid study: expected a study file; {path!r} does not "
                            "exist") from None
  except IsADirectoryError:
    raise ValueError(f"Invalid study: expected a JSON file; {path!r} is a directory") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"Invalid study: {path!r} is not JSON ({e})") from None
  try:
    return parse(raw, path)
  except ValueError as e:
    raise ValueError(f"{e} (in {path})") from None
