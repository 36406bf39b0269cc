"""Seeded randomness for the demo corpus: one independent generator per purpose.

Why not one generator for everything: the corpus must come out byte-identical whatever the
number of worker processes and whatever order they finish in. So every draw comes from a
generator seeded by ``(seed, tags)`` -- e.g. ``("plan", file name)`` -- through a SHA-256 hash,
which, unlike ``hash()``, is the same in every process, run and platform.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ser_utils.errors import UserError


def stable_int(*parts: object) -> int:
    """A 128-bit integer from the parts' text: stable across runs and platforms, unlike hash()."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:16], "little")


def seeded_rng(seed: int, *tags: object) -> np.random.Generator:
    """An independent generator for one purpose (e.g. ``"plan", file_name``) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_int(*tags)]))


def weighted_choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    """One value of ``options`` (``(value, weight)`` pairs), weights normalised to sum to 1."""
    values, weights = zip(*options)
    weights = np.asarray(weights, dtype=float)
    return values[int(rng.choice(len(values), p=weights / weights.sum()))]


def check_seed(seed: int) -> None:
    """Refuse anything but a non-negative integer (SeedSequence needs one; bools are a slip)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
