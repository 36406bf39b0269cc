"""The tuning study's search space: what Optuna may change, its defaults, and the user's overrides.

Exists so that the space is one documented table (``docs/tuning.md`` prints it) that a TOML file
or ``--param`` flags narrow or widen, instead of ranges scattered through the objective. Each
entry is one :class:`~ser_utils.config.TrainConfig` field and one of three kinds:

* a range ``{low, high, log}`` (a float, or an integer when both bounds are integers and ``log``
  is false), drawn with ``trial.suggest_float`` / ``suggest_int``;
* ``{choices: [...]}``, drawn with ``trial.suggest_categorical``;
* a fixed value (``batch_size = 32``): not searched, recorded with the trial.

The activations are read from :data:`ser_utils.models.layers.ACTIVATIONS` when the space is built,
so an activation added to the models is searched without touching this module. Augmentation
(``augment``) is searched between none and the per-batch masks by default; waveform copies
(``wave``, ``both``) build a cache per trial and are opt-in.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from ser_utils import config
from ser_utils.errors import UserError

#: TrainConfig fields a study may search.
SEARCHABLE = ("lr", "weight_decay", "dropout_conv", "dropout_head", "batch_size", "activation", "warmup_epochs",
              "augment")


def default_space() -> dict[str, Any]:
    """The search space used when nothing is overridden (a fresh dict each call)."""
    from ser_utils.models.layers import ACTIVATIONS

    return {
        "lr": {"low": 1e-4, "high": 3e-2, "log": True},
        "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        "dropout_conv": {"low": 0.0, "high": 0.5},
        "dropout_head": {"low": 0.0, "high": 0.7},
        "batch_size": {"choices": [16, 32, 64, 128]},
        "activation": {"choices": list(ACTIVATIONS)},
        "warmup_epochs": {"low": 0, "high": 10},
        # masks per batch cost nothing to build; "wave" (cached augmented copies) is opt-in: --param augment=none,spec,wave
        "augment": {"choices": ["none", "spec"]},
    }


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_param(text: str) -> tuple[str, Any]:
    """One ``--param`` flag: ``lr=1e-4:1e-2`` (range; ``lr=1e-4:1e-2:log``), ``activation=relu,silu``
    (choices) or ``batch_size=32`` (fixed)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not value.strip():
        raise UserError(f"--param {text!r}: write NAME=LOW:HIGH, NAME=A,B,C or NAME=VALUE (e.g. lr=1e-4:1e-2)")
    if ":" in value:
        parts = value.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise UserError(f"--param {text!r}: a range is LOW:HIGH or LOW:HIGH:log")
        return name, {"low": _number(parts[0]), "high": _number(parts[1]), "log": len(parts) == 3}
    if "," in value:
        return name, {"choices": [_number(v.strip()) for v in value.split(",") if v.strip()]}
    return name, _number(value.strip())


def load_space(path: str | Path | None = None, params: list[str] | None = None) -> dict[str, Any]:
    """The default space, overridden by a TOML file (one key per field) and then by ``--param`` flags."""
    space = default_space()
    if path is not None:
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                space.update(tomllib.load(handle))
        except OSError as err:
            raise UserError(f"{path}: cannot read the search space ({err.strerror}); give an existing TOML file") from err
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: not valid TOML ({err}); see docs/tuning.md for the format") from err
    space.update(dict(parse_param(p) for p in params or []))
    return validate(space)


def validate(space: dict[str, Any]) -> dict[str, Any]:
    """Check every entry; a mistake is a one-line error naming the field and the fix."""
    from ser_utils.models.layers import ACTIVATIONS

    unknown = sorted(set(space) - set(SEARCHABLE))
    if unknown:
        raise UserError(f"search space: unknown field(s) {', '.join(unknown)}; searchable: {', '.join(SEARCHABLE)}")
    for name, spec in space.items():
        if isinstance(spec, dict) and "choices" in spec:
            if not spec["choices"]:
                raise UserError(f"search space: {name} has no choices")
            values = spec["choices"]
        elif isinstance(spec, dict):
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)) or low > high:
                raise UserError(f"search space: {name} needs numbers low <= high, got {low!r}..{high!r}")
            if spec.get("log") and low <= 0:
                raise UserError(f"search space: {name} is searched on a log scale, so low must be > 0 (got {low})")
            values = [low, high]
        else:
            values = [spec]
        if name == "activation" and set(values) - set(ACTIVATIONS):
            raise UserError(f"search space: activation {sorted(set(values) - set(ACTIVATIONS))} unknown; "
                            f"choose from {', '.join(ACTIVATIONS)}")
        if name == "augment" and set(values) - set(config.AUGMENTS):
            raise UserError(f"search space: augment {sorted(set(values) - set(config.AUGMENTS))} unknown; "
                            f"choose from {', '.join(config.AUGMENTS)}")
        if name in ("batch_size", "warmup_epochs") and not all(isinstance(v, int) and v >= (1 if name == "batch_size" else 0)
                                                              for v in values):
            raise UserError(f"search space: {name} takes whole numbers, got {values}")
    return space


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields of one trial, drawn by Optuna's ``trial`` from ``space``."""
    chosen: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, dict) and "choices" in spec:
            chosen[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif isinstance(spec, dict):
            low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
            if isinstance(low, int) and isinstance(high, int) and not log:
                chosen[name] = trial.suggest_int(name, low, high)
            else:
                chosen[name] = trial.suggest_float(name, float(low), float(high), log=log)
        else:
            chosen[name] = spec
    return chosen


def describe(space: dict[str, Any]) -> list[dict[str, str]]:
    """One row per field (name, kind, values) for the docs and notebook 13."""
    rows = []
    for name, spec in space.items():
        if isinstance(spec, dict) and "choices" in spec:
            rows.append({"field": name, "kind": "choice", "values": ", ".join(map(str, spec["choices"]))})
        elif isinstance(spec, dict):
            kind = "log range" if spec.get("log") else "range"
            rows.append({"field": name, "kind": kind, "values": f"{spec['low']:g} .. {spec['high']:g}"})
        else:
            rows.append({"field": name, "kind": "fixed", "values": str(spec)})
    return rows
