"""Error analysis of one finished run from its own files: what a reader should learn from its mistakes.

Notebook 08's last section reads a run's ``confusion.csv`` and ``predictions.csv`` (no model,
no torch) and turns them into findings computed from the numbers: the best and worst class, the
most confused pair and its rate, the misclassified clips of that pair (to listen to), and how
well the predicted probabilities are calibrated (reliability table and expected calibration
error, ECE). The model-based part (occlusion maps, embeddings) is :mod:`attribution`.

ECE, as in Guo et al. (2017, "On calibration of modern neural networks"): the top-1 confidences
are put in ``n_bins`` equal-width bins ``[lo, hi)`` (a confidence of exactly 1 joins the last
bin); ECE = sum over bins of (clips in the bin / all clips) * |accuracy in the bin - mean
confidence in the bin|. torchmetrics' ``multiclass_calibration_error`` (norm ``l1``) computes the
same number (it gives confidence 1 a bin of its own; the tests compare them away from that edge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ser_utils import config

PROB_PREFIX = "p_"
N_BINS = 10


# ------------------------------------------------------------------ the confusion, read by code
def read_confusion(confusion: pd.DataFrame) -> dict[str, Any]:
    """The facts of a confusion matrix (rows true, columns predicted).

    ``recall`` per class, ``best``/``worst`` class (highest/lowest recall), ``pair`` (true,
    predicted) with the most clips off the diagonal and its ``pair_count`` and ``pair_rate`` (share
    of the true class), ``accuracy``, ``chance`` (1 / classes) and ``n`` clips.
    """
    counts = confusion.astype(float)
    totals = counts.sum(axis=1)
    recall = pd.Series(np.diag(counts.to_numpy()) / np.where(totals > 0, totals, np.nan), index=counts.index)
    values = counts.to_numpy(copy=True)
    np.fill_diagonal(values, 0.0)
    off = pd.DataFrame(values, index=counts.index, columns=counts.columns)
    stacked = off.stack()
    pair = stacked.idxmax() if stacked.max() > 0 else None
    n = float(totals.sum())
    return {"recall": recall, "best": recall.idxmax(), "worst": recall.idxmin(), "pair": pair,
            "pair_count": int(stacked.max()) if pair else 0,
            "pair_rate": float(off.loc[pair] / totals[pair[0]]) if pair else float("nan"),
            "accuracy": float(np.trace(counts.to_numpy()) / n) if n else float("nan"),
            "chance": 1.0 / len(counts), "n": int(n)}


def confusion_findings(confusion: pd.DataFrame, run_id: str, synthetic: bool) -> str:
    """Markdown sentences about a confusion matrix, every number computed from it."""
    facts = read_confusion(confusion)
    recall = facts["recall"]
    lines = [f"**{run_id}** classifies {facts['accuracy']:.1%} of its {facts['n']} test clips correctly "
             f"(chance: {facts['chance']:.1%}; {_against_chance(facts['accuracy'], facts['chance'], facts['n'])})."]
    lines.append(f"Best recognised: **{facts['best']}** ({recall[facts['best']]:.1%} of its clips); worst: "
                 f"**{facts['worst']}** ({recall[facts['worst']]:.1%}).")
    if facts["pair"] is None:
        lines.append("No clip is misclassified: there is no confused pair.")
    else:
        true, predicted = facts["pair"]
        lines.append(f"The most frequent confusion: **{true} heard as {predicted}**, {facts['pair_count']} clips, "
                     f"{facts['pair_rate']:.1%} of the {true} clips.")
    if synthetic:
        lines.append(f"({config.SYNTHETIC_LABEL})")
    return "\n\n".join(lines)


def _against_chance(accuracy: float, chance: float, n: int) -> str:
    """Whether an accuracy is distinguishable from chance (two-sided exact binomial test, 5 %)."""
    from scipy.stats import binomtest

    p = binomtest(int(round(accuracy * n)), n, chance).pvalue if n else float("nan")
    verdict = "not distinguishable from chance" if not p < 0.05 else (
        "above chance" if accuracy > chance else "below chance")
    return f"{verdict}, binomial p = {p:.2g}"


def most_confused_with(confusion: pd.DataFrame, true: str) -> str | None:
    """The class that clips of ``true`` are most often predicted as (first in class order on a tie)."""
    row = confusion.loc[true].drop(true).astype(float)
    return str(row.idxmax()) if row.max() > 0 else None


# ------------------------------------------------------------------------ misclassified clips
def probabilities(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """``(probs [n, C], true class index [n], classes)`` from predictions.csv, or None without ``p_*`` columns."""
    columns = [c for c in predictions.columns if c.startswith(PROB_PREFIX)]
    if not columns or "true" not in predictions:
        return None
    classes = [c[len(PROB_PREFIX):] for c in columns]
    unknown = sorted(set(predictions["true"]) - set(classes))
    if unknown:
        raise ValueError(f"predictions.csv has true labels {unknown} without a probability column")
    lookup = {c: i for i, c in enumerate(classes)}
    return (predictions[columns].to_numpy(dtype=np.float64), predictions["true"].map(lookup).to_numpy(), classes)


def locate_clip(path: str, root: str | Path | None = None) -> Path | None:
    """The audio file of a predictions.csv path: the path itself, else the same name under ``root``
    (or its ``AudioWAV/``), as when the runs were trained on another machine; None when absent."""
    candidates = [Path(str(path))]
    if root is not None:
        name = Path(str(path)).name
        candidates += [Path(root) / "AudioWAV" / name, Path(root) / name]
    return next((c for c in candidates if c.is_file()), None)


def misclassified(predictions: pd.DataFrame, true: str, predicted: str, n: int = 3,
                  root: str | Path | None = None) -> pd.DataFrame:
    """The test clips of class ``true`` predicted as ``predicted``, most confident mistake first.

    Columns: ``path``, ``name``, ``confidence`` (the probability given to the wrong class, NaN
    without probabilities), ``p_true`` and ``file`` (the local audio file or None).
    """
    rows = predictions[(predictions["true"] == true) & (predictions["predicted"] == predicted)].copy()
    rows["confidence"] = rows.get(PROB_PREFIX + predicted, np.nan)
    rows["p_true"] = rows.get(PROB_PREFIX + true, np.nan)
    rows = rows.sort_values("confidence", ascending=False, kind="stable").head(n)
    rows["name"] = [Path(str(p)).name for p in rows["path"]]
    rows["file"] = [locate_clip(p, root) for p in rows["path"]]
    return rows[["path", "name", "confidence", "p_true", "file"]].reset_index(drop=True)


# ------------------------------------------------------------------------------ calibration
def _bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence: ``[k / n_bins, (k + 1) / n_bins)``, 1.0 in the last bin."""
    return np.clip(np.floor(np.asarray(confidence, dtype=np.float64) * n_bins).astype(int), 0, n_bins - 1)


def reliability_table(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """One row per confidence bin: ``lo``, ``hi``, ``n``, mean ``confidence``, ``accuracy``, ``gap``
    (accuracy - confidence; negative = overconfident) and ``weight`` (share of the clips)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape}: need [n, classes] and [n], n > 0")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    frame = pd.DataFrame({"bin": _bins(confidence, n_bins), "confidence": confidence, "correct": correct})
    grouped = frame.groupby("bin").agg(n=("correct", "size"), confidence=("confidence", "mean"),
                                       accuracy=("correct", "mean"))
    table = grouped.reindex(range(n_bins))
    table["n"] = table["n"].fillna(0).astype(int)
    table.insert(0, "lo", np.arange(n_bins) / n_bins)
    table.insert(1, "hi", (np.arange(n_bins) + 1) / n_bins)
    table["gap"] = table["accuracy"] - table["confidence"]
    table["weight"] = table["n"] / len(labels)
    return table.reset_index(drop=True)


def probs_from_confidence(confidence: Sequence[float], correct: Sequence[bool],
                          n_classes: int = len(config.EMOTIONS)) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels with the given top-1 confidences and right/wrong outcomes (for worked
    examples): class 0 gets ``confidence``, the others share the rest; the label is 0 when right, else 1."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if np.any(confidence <= 1.0 / n_classes) or np.any(confidence > 1):
        raise ValueError(f"confidences must lie in (1/{n_classes}, 1] to be the top-1 probability")
    probs = np.repeat(((1 - confidence) / (n_classes - 1))[:, None], n_classes, axis=1)
    probs[:, 0] = confidence
    return probs, np.where(np.asarray(correct, dtype=bool), 0, 1)


def ece_of(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10, weights: np.ndarray | None = None):
    """Expected calibration error: ``sum_b (n_b / N) |accuracy_b - confidence_b|`` over equal-width
    bins of the top probability. ``weights`` (clip counts, one row per bootstrap resample) give one ECE
    per row (the bootstrap of notebook 10's reliability diagram)."""
    bins = _bins(confidence, n_bins)
    onehot = np.eye(n_bins)[bins]  # clips x bins
    w = np.ones((1, len(bins))) if weights is None else np.atleast_2d(weights)
    gap = np.abs((w * correct) @ onehot - (w * confidence) @ onehot)  # per bin: n_b |acc_b - conf_b|
    ece = gap.sum(axis=1) / w.sum(axis=1)
    return float(ece[0]) if weights is None else ece


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE: the clip-weighted mean of |accuracy - confidence| over the confidence bins (module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    correct = (probs.argmax(axis=1) == np.asarray(labels)).astype(float)
    return ece_of(probs.max(axis=1), correct, n_bins)


def calibration_findings(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> str:
    """Markdown: ECE, mean confidence against accuracy, and what they say, computed."""
    probs = np.asarray(probs, dtype=np.float64)
    ece = expected_calibration_error(probs, labels, n_bins)
    confidence = float(probs.max(axis=1).mean())
    accuracy = float((probs.argmax(axis=1) == np.asarray(labels)).mean())
    gap = confidence - accuracy
    direction = ("overconfident: its probabilities promise more than it delivers" if gap > 0.01 else
                 "underconfident: it is right more often than its probabilities say" if gap < -0.01 else
                 "about as confident as it is accurate")
    return (f"ECE = **{ece:.3f}** ({n_bins} bins, {len(probs)} clips). Mean top-1 confidence {confidence:.1%} "
            f"against an accuracy of {accuracy:.1%}: the model is {direction} ({100 * gap:+.1f} points). A model at "
            f"chance with probabilities near 1/{probs.shape[1]} can have a small ECE: calibration is not accuracy.")


# ---------------------------------------------------------------------------- exercises
def verdict(answer: Any, expected: Any, hint: str, tolerance: float = 1e-3) -> str:
    """An exercise's check: right, or what to look at (numbers within ``tolerance``, else equality)."""
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return f"not answered yet. Hint: {hint}"
    try:
        right = bool(abs(float(answer) - float(expected)) <= tolerance)
    except (TypeError, ValueError):
        right = _normalised(answer) == _normalised(expected)
    shown = f"{expected:.4g}" if isinstance(expected, float) else expected
    return f"right: {shown}" if right else f"not yet ({answer!r}). Hint: {hint}"


def _normalised(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().upper()
    if isinstance(value, Sequence):
        return tuple(_normalised(v) for v in value)
    return value
