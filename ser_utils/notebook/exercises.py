"""Exercise checks and derive-then-assert lines for the notebooks.

Why this module exists: the notebooks teach by deriving a result by hand and then comparing it
with the package, and close each chapter with exercises a reader can check. Both need the same
few lines of feedback logic; kept here, every notebook cell stays a one-liner and the wording of
a verdict is the same everywhere.

Exercise cells follow one four-cell pattern (cell tags ``exercise``, ``check``, ``solution``):

1. a markdown prompt (tag ``exercise``): the task, what the answer is (type, units), a hint;
2. an attempt cell binding the answer to ``None`` (tag ``exercise``);
3. a check cell (tag ``check``): ``exercises.check(name, answer, expected)``, which prints
   *not attempted yet*, *right* or *not yet* with what to look at, and never stops Run All;
4. the solution (tag ``solution``, source collapsed with ``{"jupyter": {"source_hidden": true}}``),
   which binds the same name and checks itself with ``solution=True``: a wrong solution raises,
   so a notebook whose solution went stale fails under papermill instead of teaching a wrong answer.

``agree(label, derived, package)`` is the derive-then-assert cell's last line: it runs
``np.testing.assert_allclose`` (a failure names how many values differ and by how much) and prints
one line starting with :data:`AGREE_MARK` that the tests look for in the executed notebooks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Start of the line a successful derive-then-assert comparison prints.
AGREE_MARK = "derived == package:"
#: Start of the verdict lines of :func:`check`.
RIGHT, WRONG, NOT_ATTEMPTED = "right:", "not yet:", "not attempted yet:"


def _describe(value: Any) -> str:
    array = np.asarray(value)
    if array.ndim == 0:
        item = array.item()
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            return repr(item)
        return f"{item:,}" if isinstance(item, int) else f"{item:,.6g}"
    return f"an array of shape {array.shape}"


def _matches(answer: Any, expected: Any, rtol: float, atol: float) -> tuple[bool, str]:
    """(right?, what differs) for numbers, strings and arrays."""
    if isinstance(expected, str):
        ok = isinstance(answer, str) and answer.strip().casefold() == expected.casefold()
        return ok, f"got {answer!r}"
    got, ref = np.asarray(answer), np.asarray(expected)
    if got.shape != ref.shape:
        return False, f"shape {got.shape}, expected {ref.shape}"
    if not np.issubdtype(got.dtype, np.number) and got.dtype != bool:
        return False, f"got {got.dtype} values, expected numbers"
    close = np.isclose(got.astype(np.float64), ref.astype(np.float64), rtol=rtol, atol=atol)
    if close.all():
        return True, ""
    if ref.ndim == 0:
        return False, f"got {_describe(answer)}"
    worst = np.unravel_index(np.argmax(np.abs(got - ref)), ref.shape)
    return False, f"{int((~close).sum())} of {close.size} values differ, worst at {worst}: {got[worst]:.4g} vs {ref[worst]:.4g}"


def check(name: str, answer: Any, expected: Any, *, hint: str = "", rtol: float = 1e-6, atol: float = 0.0,
          solution: bool = False) -> None:
    """Print a verdict on an exercise's answer (returns nothing, so a check cell shows only the verdict).

    ``answer`` None means not attempted. A wrong answer prints what differs and ``hint`` (what
    to look at), so Run All goes on to the solution; with ``solution=True`` a
    wrong answer raises AssertionError instead (the solution itself is wrong).
    """
    if answer is None:
        print(f"{NOT_ATTEMPTED} {name} (the solution cell below binds the answer, so later cells still run)")
        return
    ok, why = _matches(answer, expected, rtol, atol)
    if ok:
        print(f"{RIGHT} {name} = {_describe(answer)}")
        return
    message = f"{WRONG} {name}: {why}." + (f" Look at: {hint}" if hint else "")
    if solution:
        raise AssertionError(f"the solution of {name} is wrong: {message}")
    print(message)


def agree(label: str, derived: Any, package: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Assert that a value derived in a notebook equals the package's, and say so in one line."""
    derived, package = np.asarray(derived, dtype=np.float64), np.asarray(package, dtype=np.float64)
    assert derived.shape == package.shape, f"{label}: derived shape {derived.shape}, package {package.shape}"
    np.testing.assert_allclose(derived, package, rtol=rtol, atol=atol, err_msg=label)
    diff = float(np.max(np.abs(derived - package))) if derived.size else 0.0
    print(f"{AGREE_MARK} {label} (shape {derived.shape}, max |diff| {diff:.1e}, rtol {rtol:g}, atol {atol:g})")


def last_word_level(signal: np.ndarray, cfg=None, tolerance_s: float = 0.03) -> int:
    """Exercise 02.last_word_level's reference: the highest WebRTC aggressiveness whose trimmed
    region ends within ``tolerance_s`` of level 0's end (the clip's last word still kept)."""
    from dataclasses import replace

    from ser_utils import config
    from ser_utils.data import audio

    cfg = cfg or config.PreprocessConfig()
    ends = [audio.speech_region(signal, cfg.sample_rate, replace(cfg, vad_aggressiveness=level), "webrtc")[1]
            for level in range(4)]
    return max(level for level, end in enumerate(ends) if end >= ends[0] - tolerance_s * cfg.sample_rate)
