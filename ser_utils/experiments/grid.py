"""The sweep's grid: which configurations to train, and checking a request before anything runs.

Parsing lives here rather than in the command line because the main job, notebook parameters
and the sweep accept the same spellings (``"1d,2d"``, ``"0.001,0.01"``, ``"1d=12,2d=1"``,
``"2/9"``); every check raises :class:`~ser_utils.errors.UserError` (a ``ValueError``) with a one-line message naming the value and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ser_utils import config
from ser_utils.errors import UserError

# ------------------------------------------------------------------ configurations
def configurations(models: Sequence[str] = config.MODELS, activations: Sequence[str] = config.ACTIVATIONS,
                   lrs: Sequence[float] = config.LEARNING_RATES) -> list[dict]:
    """The grid, models outermost: ``[{"model": "1d", "activation": "relu", "lr": 0.001}, ...]``."""
    return [{"model": m, "activation": a, "lr": float(lr)} for m in models for a in activations for lr in lrs]


def shard(configs: Sequence[dict], k: int, n: int) -> list[dict]:
    """Shard ``k`` of ``n`` (1-based): every n-th configuration from the k-th; the n shards partition."""
    if n < 1 or not 1 <= k <= n:
        raise UserError(f"--shard {k}/{n}: K must be between 1 and N (e.g. --shard 2/9)")
    return list(configs[k - 1::n])


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/9"`` -> ``(2, 9)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise UserError(f"--shard {text!r}: expected K/N, e.g. --shard 2/9")
    k, n = int(match.group(1)), int(match.group(2))
    shard([], k, n)  # validates the range
    return k, n


def parse_names(values: str | Iterable[str]) -> list[str]:
    """Comma- or space-separated names (``["1d,2d", "combined"]`` -> ``["1d", "2d", "combined"]``), deduplicated."""
    items = [values] if isinstance(values, str) else list(values)
    names = [part for item in items for part in re.split(r"[,\s]+", str(item)) if part]
    return list(dict.fromkeys(names))


def parse_lrs(values: str | Iterable[str | float]) -> list[float]:
    """Learning rates from ``"0.001,0.01"`` or a list; each must be a positive number."""
    items = [values] if isinstance(values, (str, float, int)) else list(values)
    lrs = []
    for name in parse_names([str(v) for v in items]):
        try:
            lr = float(name)
        except ValueError:
            raise UserError(f"--lrs {name!r}: not a number (e.g. --lrs 0.001,0.01,0.1)") from None
        if not (math.isfinite(lr) and lr > 0):
            raise UserError(f"--lrs {name!r}: a learning rate must be a positive number")
        lrs.append(lr)
    return list(dict.fromkeys(lrs))


def parse_epochs(text: str | int | Mapping[str, int]) -> int | dict[str, int]:
    """``"150"`` -> 150; ``"1d=8,2d=2,combined=2"`` -> a per-model mapping (the 1D model is ~7x cheaper)."""
    if isinstance(text, Mapping):
        pairs = {str(k): v for k, v in text.items()}
    elif isinstance(text, int):
        pairs = {"": text}
    elif "=" not in str(text):
        pairs = {"": str(text).strip()}
    else:
        pairs = {}
        for part in parse_names(str(text)):
            model, _, value = part.partition("=")
            pairs[model.strip()] = value.strip()
    parsed = {model: _positive_int(value, f"--epochs {text}") for model, value in pairs.items()}
    return parsed[""] if list(parsed) == [""] else parsed


def _positive_int(value: Any, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise UserError(f"{what}: {value!r} is not a whole number (e.g. --epochs 150 or --epochs 1d=8,2d=2)") from None
    if number < 1:
        raise UserError(f"{what}: must be at least 1")
    return number


def epochs_for(model: str, epochs: int | Mapping[str, int]) -> int:
    """The epochs of one model under an int or a per-model mapping."""
    if isinstance(epochs, Mapping):
        if model not in epochs:
            raise UserError(f"--epochs names no value for model {model!r}; add {model}=N "
                             f"(given: {', '.join(f'{k}={v}' for k, v in epochs.items())})")
        return int(epochs[model])
    return int(epochs)


def parse_seeds(values: str | int | Iterable[str | int]) -> list[int]:
    """Seeds from ``"42,43,44"``, an int or a list; each a whole number >= 0, deduplicated in order."""
    items = [values] if isinstance(values, (str, int)) else list(values)
    seeds = []
    for name in parse_names([str(v) for v in items]):
        if not name.isdigit():
            raise UserError(f"--seeds {name!r}: a seed is a whole number >= 0 (e.g. --seeds 42,43,44)")
        seeds.append(int(name))
    if not seeds:
        raise UserError("--seeds needs at least one seed (e.g. --seeds 42)")
    return list(dict.fromkeys(seeds))


def validate(models: Sequence[str], activations: Sequence[str], lrs: Sequence[float],
             epochs: int | Mapping[str, int], batch_size: int, split: str, augment: str = "none") -> None:
    """Reject a request that cannot work before any run starts (one ValueError naming the fix).

    Models and activations must be registered (:data:`ser_utils.models.MODEL_REGISTRY`,
    :data:`ser_utils.models.ACTIVATIONS`): a typo such as ``--models 3d`` is refused once, here,
    instead of failing in every configuration.
    """
    from ser_utils import models as model_zoo

    if not models or not activations or not lrs:
        raise UserError("--models, --activations and --lrs each need at least one value")
    unknown = [m for m in models if m not in model_zoo.MODEL_REGISTRY]
    if unknown:
        raise UserError(f"--models: unknown {', '.join(map(repr, unknown))}; "
                         f"registered: {', '.join(model_zoo.MODEL_REGISTRY)}")
    unknown = [a for a in activations if a not in model_zoo.ACTIVATIONS]
    if unknown:
        raise UserError(f"--activations: unknown {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(model_zoo.ACTIVATIONS)}")
    if split not in config.SPLITS:
        raise UserError(f"--split {split!r}: choose one of {', '.join(config.SPLITS)}")
    if augment not in config.AUGMENTS:
        raise UserError(f"--augment {augment!r}: choose one of {', '.join(config.AUGMENTS)}")
    _positive_int(batch_size, "--batch-size")
    for model in models:
        epochs_for(model, epochs)
