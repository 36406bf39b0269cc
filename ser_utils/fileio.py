"""Atomic writes and tolerant reads: the one place that puts a file on disk.

Why atomic: a sweep may be killed at any moment (``kill -9``, ``scancel``, a full disk) and
several processes read the same folders concurrently. Every writer here goes through a temporary
file in the destination folder and ``os.replace``, so a reader sees either the old file or the new
one, never half a file; the temporary file is removed on every error path.

One signature for all of them: ``write_*(path, content)`` -> the path written.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path``, unique per process and call (threads and forks never clash)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` and move ``tmp`` onto ``path``; parent folders are created.

    The temporary file is removed whatever happens, so an error leaves neither a partial file
    nor litter.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def jsonable(value: Any) -> Any:
    """Make ``value`` strict JSON: NaN/inf -> None, numpy scalars and arrays -> Python, paths -> str."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(payload: Any) -> str:
    """Strict, indented JSON text (what :func:`write_json` writes)."""
    return json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as strict JSON (NaN becomes null) atomically."""
    return write_text(path, json_text(payload))


def write_csv(path: str | Path, frame: pd.DataFrame, index: bool = False) -> Path:
    """Write a DataFrame as CSV atomically."""
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=index))


def read_json(path: str | Path) -> dict | None:
    """A JSON object as a dict, or None when absent, unreadable or not an object.

    A half-written or corrupt file counts as absent: callers treat the thing it describes as not
    there yet, which is always the safe reading for a resumable pipeline.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
