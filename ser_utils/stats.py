"""Uncertainty and significance for test-set results: intervals, paired tests, corrections.

Why this module: one test split of 2,233 clips gives an accuracy whose 95% interval is about
+-2 points, and several of the report's findings are differences of one or two points. Every
number the analysis shows next to the report's should therefore carry an interval, and every
"A beats B" a paired test on the same clips. Everything here is pure numpy/scipy on per-clip
labels or correctness, seeded (default 42) and deterministic.

The bootstrap is vectorised over replicates: the clips drawn in each replicate become a
``(n_boot, n_clips)`` matrix of draw counts (one ``np.bincount``), and the confusion matrices
of every replicate, for one run or a stack of runs on the same clips, are one matrix product of
those counts with the runs' one-hot (true, predicted) cells. Runs evaluated on the same clips
with the same seed see the same resamples, so their intervals and differences are consistent.
Metrics (all from confusion matrices, so they agree with scikit-learn on the full sample):

* ``accuracy``: share of clips classified correctly;
* ``f1``: support-weighted F1 (the report's F1; ``f1_score(average="weighted")``);
* ``ua``: unweighted average recall (macro recall over the classes present in ``y_true``;
  ``balanced_accuracy_score``), the usual SER figure that does not reward the majority class.

Bootstrap intervals are percentile intervals; bootstrap p-values are two-sided with the
replicates shifted to the null (:func:`bootstrap_pvalue`).

The test of a mean paired difference in accuracy (:func:`mean_difference_test`) is the one the
claims table prints: the exact sign-flip permutation test with one training seed (McNemar's exact
test for one pair), the clip x seed random-effects t-test with several seeds (seed-to-seed
variance included). See docs/statistics.md.

This module is larger than the 550-line guideline on purpose: every test-set statistic of the suite (intervals,
paired tests, corrections) lives in this one module, so the notebooks, the claims table and the
report cannot drift apart in how they compute uncertainty.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from ser_utils import config

LEVEL = 0.95
N_BOOT = 1000
SEED = config.SEED
#: Runs per resample product in :func:`intervals_frame` (about 50 MB of confusion matrices at 1,000 replicates).
_RUNS_PER_PRODUCT = 96


class Interval(NamedTuple):
    """A point estimate and its interval."""

    estimate: float
    lo: float
    hi: float


class McNemarResult(NamedTuple):
    """Exact McNemar test: ``b`` clips only A got right, ``c`` only B got right, two-sided p."""

    b: int
    c: int
    pvalue: float


class MeanDifference(NamedTuple):
    """A mean paired difference, its interval and the p-value of the test of that same mean."""

    effect: float
    lo: float
    hi: float
    pvalue: float
    test: str
    df: float
    n_clips: int
    n_seeds: int


class PairedResult(NamedTuple):
    """Difference A - B of a metric on the same clips (mean over pairs), interval and p-value."""

    diff: float
    lo: float
    hi: float
    pvalue: float
    n_pairs: int


# ------------------------------------------------------------------ validation
def _check_level(level: float) -> float:
    if not 0 < float(level) < 1:
        raise ValueError(f"level={level!r}: must be between 0 and 1 (e.g. 0.95)")
    return float(level)


def _check_n_boot(n_boot: int) -> int:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot={n_boot!r}: needs at least one bootstrap replicate (e.g. 1000)")
    return int(n_boot)


def encode(y_true: Any, y_pred: Any, labels: Sequence | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Labels (strings or ints) as class indices ``0..K-1``; ``y_pred`` may be 2-D (runs x clips).

    ``labels`` fixes the classes and their order (default: the sorted union of both). A label
    outside ``labels`` is an error naming it.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1:
        raise ValueError(f"y_true must be one label per clip (1-D), got shape {t.shape}")
    if p.shape[-1] != t.shape[0] or p.ndim not in (1, 2):
        raise ValueError(f"y_pred has shape {p.shape} but y_true has {t.shape[0]} clips; "
                         "pass one prediction per clip (or a runs x clips array)")
    if t.size == 0:
        raise ValueError("no clips: y_true is empty")
    if labels is None:
        labels = sorted(set(np.unique(t).tolist()) | set(np.unique(p).tolist()))
    labels = list(labels)
    lookup = {label: i for i, label in enumerate(labels)}

    def codes(values: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(values, return_inverse=True)
        missing = [u for u in uniq.tolist() if u not in lookup]
        if missing:
            raise ValueError(f"label(s) {missing} are not among the classes {labels}")
        return np.array([lookup[u] for u in uniq.tolist()], dtype=np.int64)[inverse].reshape(values.shape)

    return codes(t), codes(p), labels


# ------------------------------------------------------------------ metrics from confusion matrices
def confusion(y_true: Any, y_pred: Any, labels: Sequence | None = None) -> np.ndarray:
    """The ``K x K`` confusion matrix (rows true, columns predicted) of one run."""
    t, p, labels = encode(y_true, y_pred, labels)
    k = len(labels)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def accuracy_of(conf: np.ndarray) -> np.ndarray:
    """Accuracy of confusion matrices ``(..., K, K)``."""
    conf = np.asarray(conf, dtype=float)
    return np.trace(conf, axis1=-2, axis2=-1) / conf.sum(axis=(-2, -1))


def per_class_f1_of(conf: np.ndarray) -> np.ndarray:
    """Per-class F1 ``2TP / (2TP + FP + FN)`` of ``(..., K, K)`` matrices (0 where undefined, as sklearn)."""
    conf = np.asarray(conf, dtype=float)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    denom = conf.sum(axis=-1) + conf.sum(axis=-2)  # (TP + FN) + (TP + FP)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)


def weighted_f1_of(conf: np.ndarray) -> np.ndarray:
    """Support-weighted F1 of ``(..., K, K)`` matrices."""
    conf = np.asarray(conf, dtype=float)
    support = conf.sum(axis=-1)
    return (per_class_f1_of(conf) * support).sum(axis=-1) / support.sum(axis=-1)


def recall_of(conf: np.ndarray) -> np.ndarray:
    """Per-class recall of ``(..., K, K)`` matrices (NaN for a class absent from ``y_true``)."""
    conf = np.asarray(conf, dtype=float)
    support = conf.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diagonal(conf, axis1=-2, axis2=-1) / support


def ua_of(conf: np.ndarray) -> np.ndarray:
    """Unweighted average recall over the classes present in ``y_true`` (macro recall)."""
    return np.nanmean(recall_of(conf), axis=-1)


#: Metric name -> function of confusion matrices ``(..., K, K)``.
METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"accuracy": accuracy_of, "f1": weighted_f1_of,
                                                           "ua": ua_of}


def _metric(metric: str | Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: choose one of {', '.join(METRICS)} "
                         "(or pass a function of (..., K, K) confusion matrices)")
    return METRICS[metric]


# ------------------------------------------------------------------ bootstrap machinery
@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Run the resample products on one BLAS thread.

    Why: they are skinny (a few runs x clips x replicates). OpenBLAS's threads cost more than they
    save there and stall when the cores are busy: on this project's shared 2-core machine a 6-run
    product took 30-58 ms with two threads and 4 ms with one; the 87-run product of a whole
    sweep takes the same time either way.
    """
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller is not None else contextlib.nullcontext()


def resample_counts(n: int, n_boot: int = N_BOOT, seed: Any = SEED) -> np.ndarray:
    """How often each of ``n`` clips is drawn in each of ``n_boot`` resamples: ``(n_boot, n)`` float32.

    Row ``b`` is the resample ``rng.integers(0, n, n)`` of the ``b``-th draw of
    ``np.random.default_rng(seed)``, the same clips a per-replicate loop would draw.
    """
    n, n_boot = int(n), _check_n_boot(n_boot)
    if n < 1:
        raise ValueError("no clips to resample (n=0)")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx += (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def bootstrap_confusions(y_true: Any, y_pred: Any, n_boot: int = N_BOOT, seed: int = SEED,
                         labels: Sequence | None = None, counts: np.ndarray | None = None) -> np.ndarray:
    """Confusion matrices of every bootstrap resample: ``(n_boot, K, K)``, or ``(runs, n_boot, K, K)``.

    ``y_pred`` 2-D (runs x clips) evaluates several runs on the same resamples in one product.
    ``counts`` (from :func:`resample_counts`) reuses resamples already drawn.
    """
    t, p, labels = encode(y_true, y_pred, labels)
    k, n = len(labels), t.shape[0]
    if counts is None:
        counts = resample_counts(n, n_boot, seed)
    if counts.shape[1] != n:
        raise ValueError(f"counts are for {counts.shape[1]} clips but y_true has {n}")
    runs = p.reshape(-1, n)
    onehot = np.zeros((n, runs.shape[0] * k * k), dtype=np.float32)
    cells = t[None, :] * k + runs + (np.arange(runs.shape[0]) * k * k)[:, None]
    onehot[np.broadcast_to(np.arange(n), cells.shape).ravel(), cells.ravel()] = 1.0
    with _one_blas_thread():
        product = counts @ onehot
    conf = np.rint(product).astype(np.int64)  # exact: integer sums far below 2**24
    conf = conf.reshape(counts.shape[0], runs.shape[0], k, k).transpose(1, 0, 2, 3)
    return conf[0] if p.ndim == 1 else conf


def replicate_accuracies(y_true: Any, y_pred: Any, counts: np.ndarray) -> np.ndarray:
    """Accuracy of every run in every resample: ``(runs, n_boot)`` (``(n_boot,)`` for one run).

    The accuracy-only route of :func:`bootstrap_confusions` (same numbers): one product of the
    resample counts with the runs' per-clip correctness, so all the runs on one test set cost
    one pass over ``counts``; a paired difference is then a difference of rows.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if p.shape[-1] != t.shape[0] or counts.shape[1] != t.shape[0]:
        raise ValueError(f"y_true has {t.shape[0]} clips, y_pred {p.shape}, counts {counts.shape}; "
                         "pass one prediction per clip and resamples drawn for these clips")
    correct = (p.reshape(-1, t.shape[0]) == t[None, :]).astype(np.float32)
    with _one_blas_thread():
        product = counts @ correct.T  # (n_boot, runs); integer sums: exact in float32
    reps = product.T.astype(np.float64) / t.shape[0]
    return reps[0] if p.ndim == 1 else reps


def percentile_interval(replicates: np.ndarray, level: float = LEVEL, axis: int = 0) -> tuple[Any, Any]:
    """Percentile interval of bootstrap replicates along ``axis`` (NaN replicates ignored)."""
    alpha = 1 - _check_level(level)
    lo, hi = np.nanquantile(np.asarray(replicates, dtype=float), [alpha / 2, 1 - alpha / 2], axis=axis)
    return lo, hi


def bootstrap_pvalue(replicates: np.ndarray, estimate: float) -> float:
    """Two-sided bootstrap p-value of ``estimate`` against 0, the replicates shifted to the null.

    ``(1 + #{|r - estimate| >= |estimate|}) / (1 + n_boot)``: the share of null-centred
    replicates at least as far from 0 as the estimate (never exactly 0).
    """
    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not math.isfinite(estimate) or reps.size == 0:
        return math.nan
    extreme = np.count_nonzero(np.abs(reps - estimate) >= abs(estimate) - 1e-12)
    return float((1 + extreme) / (1 + reps.size))


def bootstrap_interval(y_true: Any, y_pred: Any, metric: str | Callable = "accuracy", n_boot: int = N_BOOT,
                       seed: int = SEED, level: float = LEVEL, labels: Sequence | None = None) -> Interval:
    """Estimate and percentile bootstrap interval of one metric of one run (clips resampled)."""
    fn = _metric(metric)
    _check_level(level)
    t, p, labels = encode(y_true, y_pred, labels)
    if p.ndim != 1:
        raise ValueError("bootstrap_interval takes one run; use intervals_frame for several")
    estimate = float(fn(confusion(t, p, range(len(labels)))))
    lo, hi = percentile_interval(fn(bootstrap_confusions(t, p, n_boot, seed, range(len(labels)))), level)
    return Interval(estimate, float(lo), float(hi))


def intervals_frame(y_true: Any, predictions: Mapping[str, Any], n_boot: int = N_BOOT, seed: int = SEED,
                    level: float = LEVEL, labels: Sequence | None = None) -> pd.DataFrame:
    """Accuracy, weighted F1 and UA with intervals for several runs on the same clips, one row per run.

    ``predictions`` maps a run id to that run's predictions, aligned with ``y_true``. All runs
    share one set of resamples (one matrix product), which is what makes a whole sweep fast.
    Columns: ``run_id, n, accuracy, accuracy_lo, accuracy_hi, f1, f1_lo, f1_hi, ua, ua_lo, ua_hi``.
    """
    _check_level(level)
    names = list(predictions)
    columns = ["run_id", "n", *[f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")]]
    if not names:
        return pd.DataFrame(columns=columns)
    stacked = np.stack([np.asarray(predictions[name]) for name in names])
    t, p, labels = encode(y_true, stacked, labels)
    k = len(labels)
    full = np.stack([np.bincount(t * k + row, minlength=k * k).reshape(k, k) for row in p])
    counts = resample_counts(t.size, n_boot, seed)
    rows: dict[str, Any] = {"run_id": names, "n": [int(t.size)] * len(names)}
    parts: dict[str, list] = {f"{m}{s}": [] for m in METRICS for s in ("_lo", "_hi")}
    for start in range(0, len(names), _RUNS_PER_PRODUCT):  # bounded memory for any number of runs
        boot = bootstrap_confusions(t, p[start:start + _RUNS_PER_PRODUCT], labels=range(k), counts=counts)
        for name, fn in METRICS.items():
            lo, hi = percentile_interval(fn(boot), level, axis=1)
            parts[f"{name}_lo"].append(lo)
            parts[f"{name}_hi"].append(hi)
    for name, fn in METRICS.items():
        rows.update({name: fn(full), f"{name}_lo": np.concatenate(parts[f"{name}_lo"]),
                     f"{name}_hi": np.concatenate(parts[f"{name}_hi"])})
    return pd.DataFrame(rows, columns=columns)


def run_intervals(y_true: Any, y_pred: Any, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL,
                  labels: Sequence | None = None) -> dict[str, float]:
    """``{"n", "accuracy", "accuracy_lo", "accuracy_hi", "f1", ..., "ua_hi"}`` for one run."""
    if np.asarray(y_pred).ndim != 1:
        raise ValueError("run_intervals takes one run; use intervals_frame for several")
    row = intervals_frame(y_true, {"run": y_pred}, n_boot, seed, level, labels).iloc[0]
    return {k: (int(v) if k == "n" else float(v)) for k, v in row.items() if k != "run_id"}


def wilson_interval(k: Any, n: Any, level: float = LEVEL) -> tuple[Any, Any]:
    """Wilson score interval of a proportion ``k / n`` (arrays broadcast; NaN where ``n == 0``).

    Why Wilson rather than ``p +- 1.96 se``: it stays inside [0, 1] and keeps its coverage for
    proportions near 0 or 1 and for small ``n`` (a per-class recall on 30 clips, say).
    """
    z = sps.norm.ppf(0.5 + _check_level(level) / 2)
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if np.any(k_arr < 0) or np.any(n_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k!r}, n={n!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k_arr / n_arr
        denom = 1 + z * z / n_arr
        centre = (phat + z * z / (2 * n_arr)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n_arr + z * z / (4 * n_arr * n_arr)) / denom
        lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


# ------------------------------------------------------------------ paired comparisons
def _correctness(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be per-clip correctness (True/False or 1/0)")
        arr = arr.astype(bool)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (clips) or 2-D (runs x clips), got shape {arr.shape}")
    return arr


def sign_test(differences: Any) -> McNemarResult:
    """Exact two-sided sign test: ``b`` positive and ``c`` negative differences, zeros dropped.

    On per-clip differences of correctness (1, 0, -1) this is the exact McNemar test.
    """
    d = np.asarray(differences, dtype=float).ravel()
    b, c = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
    pvalue = 1.0 if b + c == 0 else min(1.0, 2.0 * float(sps.binom.cdf(min(b, c), b + c, 0.5)))
    return McNemarResult(b, c, pvalue)


def mcnemar_exact(correct_a: Any, correct_b: Any) -> McNemarResult:
    """Exact McNemar test of two classifiers on the same clips (two-sided binomial on discordant clips).

    ``correct_a[i]`` / ``correct_b[i]``: whether A / B got clip ``i`` right. Runs on *different*
    clips (seeds that each drew their own split) may be concatenated into one vector: the
    discordant clips are pooled. Several runs on the *same* clips (seeds sharing the report's
    split) go in as 2-D arrays (runs x clips, row ``j`` of A paired with row ``j`` of B): each clip
    then counts once, with the sign of its mean difference (a sign test; one row is McNemar).
    Concatenating them instead would count every clip once per seed, as if the seeds had
    brought new clips, and overstate the evidence.
    """
    a, b = _correctness(correct_a, "correct_a"), _correctness(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"correct_a has shape {a.shape} but correct_b {b.shape}; pass the same clips in order")
    diff = a.astype(np.int8) - b.astype(np.int8)
    return sign_test(diff if diff.ndim == 1 else diff.mean(axis=0))


def _as_groups(y_true: Any, pred_a: Any, pred_b: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Normalise the paired inputs to ``[(y_true, a_runs, b_runs)]``, one entry per clip set."""
    if isinstance(y_true, (list, tuple)) and len(y_true) and np.ndim(y_true[0]) == 1:
        if not (isinstance(pred_a, (list, tuple)) and isinstance(pred_b, (list, tuple))
                and len(pred_a) == len(pred_b) == len(y_true)):
            raise ValueError("with one y_true per clip set, pass pred_a and pred_b as lists of the same length")
        groups = list(zip(y_true, pred_a, pred_b))
    else:
        groups = [(y_true, pred_a, pred_b)]
    out = []
    for i, (t, a, b) in enumerate(groups):
        t, a, b = np.asarray(t), np.asarray(a), np.asarray(b)
        a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        if a2.shape != b2.shape or a2.shape[1] != t.shape[0]:
            raise ValueError(f"clip set {i}: y_true has {t.shape[0]} clips, pred_a {a.shape}, pred_b {b.shape}; "
                             "A and B need one prediction per clip for the same runs")
        out.append((t, a2, b2))
    return out


def paired_bootstrap(y_true: Any, pred_a: Any, pred_b: Any, metric: str | Callable = "accuracy",
                     n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL,
                     labels: Sequence | None = None, counts: Any = None) -> PairedResult:
    """Difference ``metric(A) - metric(B)`` on the same clips, averaged over pairs, with a bootstrap interval.

    Shapes: one clip set -- ``y_true`` 1-D and ``pred_a``/``pred_b`` 1-D (one pair) or 2-D
    (pairs x clips: A and B at three seeds on the report's split, or at three activations);
    several clip sets (e.g. seeds that each drew their own split) -- lists of those. Within a clip set
    every pair is resampled on the same clips (paired); clip sets are resampled independently
    (the first with ``seed``, as :func:`intervals_frame`; set ``i`` with ``SeedSequence([seed, i])``).
    ``counts``: resamples already drawn (:func:`resample_counts`), one per clip set, to reuse.
    The estimate is the mean over all pairs of the per-pair difference; the p-value is the
    shifted-null bootstrap p (:func:`bootstrap_pvalue`; for accuracy, :func:`mcnemar_exact` is
    the exact alternative).
    """
    fn = _metric(metric)
    _check_level(level)
    groups = _as_groups(y_true, pred_a, pred_b)
    if counts is not None:
        counts = [counts] if isinstance(counts, np.ndarray) else list(counts)
        if len(counts) != len(groups):
            raise ValueError(f"counts: got {len(counts)} resample matrices for {len(groups)} clip sets")
    if labels is None:
        labels = sorted(set().union(*[set(np.unique(x).tolist()) for g in groups for x in g]))
    estimates, replicates = [], []
    for i, (t, a, b) in enumerate(groups):
        tt, ab, labels_ = encode(t, np.concatenate([a, b]), labels)
        k, r, n = len(labels_), a.shape[0], tt.size
        draws = counts[i] if counts is not None else \
            resample_counts(n, n_boot, seed if i == 0 else np.random.SeedSequence([seed, i]))
        if draws.shape[1] != n:
            raise ValueError(f"counts[{i}] are for {draws.shape[1]} clips but clip set {i} has {n}")
        if fn is accuracy_of:  # the same numbers as the confusion route, from correctness alone
            correct = (ab == tt[None, :]).astype(np.float64)
            estimates.append(correct[:r].mean(axis=1) - correct[r:].mean(axis=1))
            boot = replicate_accuracies(tt, ab, draws)
            replicates.append(boot[:r] - boot[r:])
            continue
        full = np.stack([np.bincount(tt * k + row, minlength=k * k).reshape(k, k) for row in ab])
        boot = fn(bootstrap_confusions(tt, ab, labels=range(k), counts=draws))  # (2r, n_boot)
        values = fn(full)
        estimates.append(values[:r] - values[r:])
        replicates.append(boot[:r] - boot[r:])
    est = np.concatenate(estimates)
    reps = np.concatenate(replicates).mean(axis=0)
    diff = float(est.mean())
    lo, hi = percentile_interval(reps, level)
    return PairedResult(diff, float(lo), float(hi), bootstrap_pvalue(reps, diff), int(est.size))


def signflip_pvalue(values: Any) -> float:
    """Exact two-sided paired sign-flip permutation p-value of the sum (or mean) of integer per-clip values.

    Under the null each clip's value is as likely to carry either sign (A and B exchangeable on
    that clip); the p-value is the share of the ``2**n`` sign assignments whose sum is at least
    as far from 0 as the observed one. Computed exactly by convolving, per distinct magnitude
    ``k`` held by ``n_k`` clips, the distribution ``k * (2 * Binomial(n_k, 1/2) - n_k)``. On
    values in {-1, 0, 1} (one pair's correctness differences) this is McNemar's exact test.
    """
    x = np.asarray(values).ravel()
    if x.size and not np.all(np.isclose(x, np.round(x))):
        raise ValueError("signflip_pvalue: values must be integers (e.g. per-clip sums of correctness differences)")
    x = np.round(x).astype(np.int64)
    observed = abs(int(x.sum()))
    mags, counts = np.unique(np.abs(x[x != 0]), return_counts=True)
    total = int((mags * counts).sum())
    if total == 0:
        return 1.0
    pmf = np.ones(1)  # distribution of T = the sum of the magnitudes that keep a + sign
    for k, n in zip(mags.tolist(), counts.tolist()):
        step = np.zeros(k * n + 1)
        step[::k] = sps.binom.pmf(np.arange(n + 1), n, 0.5)
        pmf = np.convolve(pmf, step)
    sums = 2 * np.arange(pmf.size) - total  # S = T - (total - T)
    return float(min(1.0, pmf[np.abs(sums) >= observed].sum()))


def _t_result(effect: float, var: float, df: float, level: float, test: str, n_clips: int,
              n_seeds: int) -> MeanDifference:
    se = math.sqrt(max(var, 0.0))
    if se == 0:
        p = 1.0 if effect == 0 else 0.0
        return MeanDifference(effect, effect, effect, p, test, df, n_clips, n_seeds)
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * sps.t.sf(abs(effect) / se, df))
    return MeanDifference(effect, effect - half, effect + half, p, test, float(df), n_clips, n_seeds)


def seed_clip_variance(diff: Any) -> tuple[float, float]:
    """Variance of the grand mean of a seeds x clips matrix of paired differences, and its degrees of freedom.

    Two-way random effects (clip and seed, crossed: every seed evaluated on the same clips):
    ``Var(mean) = MS_seed / (n N) + max(MS_clip - MS_residual, 0) / (n N)`` estimates
    ``(sd_seed**2 + sd_residual**2 / N) / n + sd_clip**2 / N``. Degrees of freedom by
    Satterthwaite (near ``n - 1`` when the seeds dominate). Why: with several seeds on one test
    split the test-set sampling is shared by the seeds (their spread alone misses it) and the
    seed noise is shared by the clips (the clip spread alone misses it). The seed term is never
    truncated: with three seeds its estimate is rough, which is what Student's t allows for; in
    the simulation of :mod:`ser_utils.analysis.null_simulation` the false-positive rate stays
    near 5% for 3 and 5 seeds with seed-to-seed SD of 0-2 points.
    """
    d = np.asarray(diff, dtype=float)
    n, big_n = d.shape
    if n < 2 or big_n < 2:
        raise ValueError(f"seed_clip_variance: need at least 2 seeds and 2 clips, got {d.shape}")
    grand = d.mean()
    rows, cols = d.mean(axis=1), d.mean(axis=0)
    ms_seed = big_n * float(((rows - grand) ** 2).sum()) / (n - 1)
    ms_clip = n * float(((cols - grand) ** 2).sum()) / (big_n - 1)
    df_res = (n - 1) * (big_n - 1)
    ms_res = float(((d - rows[:, None] - cols[None, :] + grand) ** 2).sum()) / df_res
    # seeds: MS_seed / (n N) = (sd_seed**2 + sd_residual**2 / N) / n, n - 1 degrees of freedom, never
    # truncated (a low estimate from few seeds is what Student's t allows for); clips: the test
    # set shared by the seeds, (MS_clip - MS_res) / (n N) = sd_clip**2 / N, set to 0 when negative
    terms = [(ms_seed, n - 1), (max(ms_clip - ms_res, 0.0), big_n - 1)]
    num = sum(m for m, _ in terms)
    if num <= 0:
        return 0.0, float(n - 1)
    df = num ** 2 / sum(m ** 2 / f for m, f in terms)
    return num / (n * big_n), float(df)


def mean_difference_test(groups: Sequence[Any], level: float = LEVEL) -> MeanDifference:
    """Test of the mean paired difference in accuracy, A - B, with the interval of that same mean.

    ``groups``: one array per test split, ``seeds x clips`` of per-clip correctness differences
    (each in [-1, 1]; a row may be the mean over several pairs of configurations, e.g. three
    activations, evaluated with that seed). The effect is the mean difference (over the splits,
    the mean of each split's mean). The test:

    * one split, one seed: exact sign-flip permutation test of the per-clip values scaled to
      integers (McNemar's exact test for one pair); t interval (normal) of the clip mean. The
      seed-to-seed noise is not included (``test`` says so);
    * one split, several seeds: :func:`seed_clip_variance`, Student t with Satterthwaite df;
    * several splits: one-sample t-test of the splits' means (each split an independent
      replicate of the whole experiment; its spread holds clip and seed noise).
    """
    _check_level(level)
    mats = [np.atleast_2d(np.asarray(g, dtype=float)) for g in groups]
    if not mats or any(m.size == 0 for m in mats):
        raise ValueError("mean_difference_test: no paired differences")
    if any(np.abs(m).max() > 1 for m in mats):
        raise ValueError("mean_difference_test: differences of correctness lie in [-1, 1]")
    n_clips = int(sum(m.shape[1] for m in mats))
    n_seeds = max(m.shape[0] for m in mats)
    if len(mats) > 1:
        means = np.array([m.mean() for m in mats])
        k = means.size
        return _t_result(float(means.mean()), float(means.var(ddof=1)) / k, k - 1, level,
                         f"t-test over {k} test splits", n_clips, n_seeds)
    d = mats[0]
    effect = float(d.mean())
    if d.shape[0] == 1:
        row = d[0]
        var = float(row.var(ddof=1)) / row.size if row.size > 1 else 0.0
        result = _t_result(effect, var, row.size - 1, level, "", n_clips, 1)
        # the per-clip values are means over the pairs: multiply back to integer sums
        scale = next((s for s in range(1, 65) if np.allclose(row * s, np.round(row * s))), None)
        if scale is None:
            raise ValueError("mean_difference_test: per-clip values are not means of correctness differences")
        test = "McNemar exact" if scale == 1 else "sign-flip permutation (exact)"
        return result._replace(pvalue=signflip_pvalue(row * scale), test=f"{test}; one seed: seed noise not included")
    var, df = seed_clip_variance(d)
    return _t_result(effect, var, df, level, f"clip x seed t-test ({d.shape[0]} seeds)", n_clips, d.shape[0])


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, level: float = LEVEL) -> Interval:
    """Difference ``k1/n1 - k2/n2`` of two independent proportions with Newcombe's hybrid score interval.

    Why: train and validation accuracy are measured on different clips (independent samples);
    Newcombe's interval combines their Wilson intervals and keeps its coverage near 0 and 1.
    """
    if min(n1, n2) <= 0:
        raise ValueError(f"newcombe_interval: both samples need clips, got n1={n1}, n2={n2}")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    return Interval(d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2))


def two_proportion_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p of the pooled two-proportion z-test of ``k1/n1 == k2/n2`` (1 when both are 0 or 1)."""
    if min(n1, n2) <= 0:
        raise ValueError(f"two_proportion_pvalue: both samples need clips, got n1={n1}, n2={n2}")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * sps.norm.sf(abs(k1 / n1 - k2 / n2) / se))


def holm(pvalues: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p[ok].min()}..{p[ok].max()}")
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


# ------------------------------------------------------------------ across seeds, agreement
def t_interval(values: Any, level: float = LEVEL) -> dict[str, float]:
    """Mean, sample sd and Student-t interval of a metric across seeds (``n``, NaNs dropped).

    With one value the mean is that value and sd/lo/hi are NaN: one seed gives no spread.
    """
    _check_level(level)
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "lo": math.nan, "hi": math.nan}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": math.nan, "lo": math.nan, "hi": math.nan}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half}


def cohen_kappa(a: Any, b: Any) -> float:
    """Cohen's kappa between two labelings of the same clips (NaN when chance agreement is 1)."""
    t, p, labels = encode(a, b)
    k = len(labels)
    conf = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(float)
    n = conf.sum()
    observed = np.trace(conf) / n
    expected = float(conf.sum(axis=1) @ conf.sum(axis=0)) / (n * n)
    return math.nan if expected == 1 else float((observed - expected) / (1 - expected))
