"""The report's findings as data, and a verdict on each computed from our runs.

Why: a reproduction is only as good as its comparisons. "SiLU beats ReLU by 5.9 points" is a
claim about two runs on 2,233 test clips; whether our runs reproduce it depends on a paired
test on those clips, not on which of two numbers is larger. :data:`CLAIMS` lists the report's
findings; :func:`assess` evaluates each against a sweep and :func:`evaluate` returns the table
(one row per finding: what the report says, what we measure with a 95% interval, the p-value
and a verdict).

Verdicts (:func:`verdict`):

* ``reproduced`` -- every comparison the finding makes is significant in the report's direction;
* ``contradicted`` -- at least one comparison is significant in the opposite direction;
* ``not significant`` -- neither: our data cannot tell (the difference is within the noise);
* ``not run`` -- runs the finding needs are missing (failed, still running, no predictions),
  unless the runs present already contradict it.

Tests: accuracy differences use the exact McNemar test on the clips both runs classified (with
several seeds or, where a finding pools them, activations on one test split, each clip counts
once with the sign of its mean correctness difference; clips of different splits are pooled);
per-class F1 and confusion-share differences use the clip bootstrap. A finding that makes
several comparisons ("X is the best of the 27") Holm-corrects them; the row shows the deciding
comparison (the weakest one in the report's direction, or the strongest contradiction). Effect
intervals are paired clip-bootstrap percentile intervals (seeded, default 42); they describe
test-set sampling of the mean over the seeds present (runs on one split resampled together),
not seed-to-seed training variance (see :func:`ser_utils.stats.t_interval` for that).

Runs: a results frame with one row per run (``run_id, model, activation, lr`` and, when
present, ``seed, split_seed, status, split, n_train, n_val``; see ``runs.collect_results``)
and a mapping ``run_id -> predictions`` (the run folder's ``predictions.csv``: ``true`` /
``predicted`` or ``y_true`` / ``y_pred`` as emotion codes, and ``path``/``file``/``index``
naming the clip). Runs evaluated on one test split (the same ``split_seed``, or, in results
without one, the same ``seed``) are paired on the clip key and resampled together. Statuses
``complete`` and ``diverged`` count as finished (a diverged run is a result: it predicts with
its best checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config, stats
from ser_utils.analysis import published
from ser_utils.analysis.paired_runs import PairedRuns, configuration_key

VERDICTS = ("reproduced", "contradicted", "not significant", "not run")
ALPHA = 0.05
TABLE_COLUMNS = ["id", "finding", "report_says", "we_measure", "effect", "lo", "hi", "p_value", "verdict",
                 "comparisons", "seeds", "detail"]
COMPARISON_COLUMNS = ["id", "a", "b", "effect", "lo", "hi", "p", "p_holm", "test", "n_clips", "seeds"]


@dataclass(frozen=True)
class Claim:
    """One finding of the report: an id, its wording, and how it is tested (``kind`` + ``params``)."""

    id: str
    finding: str
    kind: str
    params: dict = field(default_factory=dict)


_cfg = configuration_key


_BEST_2D = ("2d", "silu", 0.001)
CLAIMS: tuple[Claim, ...] = (
    Claim("best-overall", "The 2D CNN with SiLU at lr 0.001 is the best model overall", "best",
          {"config": _BEST_2D, "scope": None}),
    Claim("silu-over-relu-2d", "SiLU beats ReLU for the 2D CNN at lr 0.001 (by about 6 points)", "beats",
          {"a": _BEST_2D, "b": ("2d", "relu", 0.001)}),
    Claim("best-1d", "ELU at lr 0.01 is the best 1D CNN configuration", "best",
          {"config": ("1d", "elu", 0.01), "scope": "1d"}),
    Claim("lr-2d", "lr 0.001 is the best learning rate for the 2D CNN", "lr_best", {"model": "2d", "lr": 0.001}),
    Claim("lr-combined", "lr 0.001 is the best learning rate for the combined model", "lr_best",
          {"model": "combined", "lr": 0.001}),
    Claim("lr-1d", "lr 0.01 is the best learning rate for the 1D CNN", "lr_best", {"model": "1d", "lr": 0.01}),
    Claim("lr0.1-unstable", "lr 0.1 is unstable for every model (below both smaller rates)", "lr_worst",
          {"models": ("1d", "2d", "combined"), "lr": 0.1}),
    Claim("varlen-over-fixed", "Variable-length input beats fixed-size input for the combined model", "beats",
          {"a": ("combined-varlen", "silu", 0.001), "b": ("combined", "silu", 0.001)}),
    Claim("2d-over-combined", "The 2D CNN beats the combined model", "beats",
          {"a": _BEST_2D, "b": ("combined", "silu", 0.001)}),
    Claim("resnet101-overfits", "ResNet-101 overfits (training accuracy far above validation)", "overfits",
          {"config": ("resnet101", "relu", 0.001)}),
    Claim("class-ranking", "Anger and happiness are recognised best, fear worst", "class_rank",
          {"config": _BEST_2D, "best": published.BEST_RECOGNISED, "worst": published.WORST_RECOGNISED}),
    Claim("confused-pairs", "The most confused pairs are fear-sadness, disgust-anger and neutral-sadness",
          "confused_pairs", {"config": _BEST_2D, "pairs": published.CONFUSED_PAIRS}),
)


@dataclass
class Assessment:
    """What :func:`assess` returns: the findings table and every comparison behind it."""

    table: pd.DataFrame
    comparisons: pd.DataFrame


# ------------------------------------------------------------------------------ verdict
def verdict(effects: Sequence[float], pvalues: Sequence[float], alpha: float = ALPHA, complete: bool = True) -> str:
    """The verdict of a finding from its comparisons.

    ``effects`` are signed so that positive is the report's direction; ``pvalues`` are already
    adjusted (Holm) where a finding makes several comparisons; ``complete`` is False when some
    comparisons could not be made (missing runs). A significant contradiction wins over missing
    runs; otherwise missing runs give ``not run``.
    """
    e = np.asarray(effects, dtype=float)
    p = np.asarray(pvalues, dtype=float)
    if e.shape != p.shape:
        raise ValueError(f"verdict: {e.size} effects but {p.size} p-values")
    if e.size == 0:
        return "not run"
    significant = np.isfinite(p) & (p < alpha)
    if np.any(significant & (e < 0)):
        return "contradicted"
    if not complete:
        return "not run"
    if np.all(significant & (e > 0)):
        return "reproduced"
    return "not significant"


def _deciding(effects: np.ndarray, pvalues: np.ndarray, alpha: float) -> int:
    """Index of the comparison a row shows: the strongest contradiction, else the weakest support."""
    p = np.where(np.isfinite(pvalues), pvalues, np.inf)
    contra = np.flatnonzero((p < alpha) & (effects < 0))
    if contra.size:
        return int(contra[np.lexsort((effects[contra], p[contra]))[0]])
    return int(np.lexsort((effects, -p))[0])


# ------------------------------------------------------------------------------ evaluators
def _row(claim: Claim, report_says: str, comps: list[dict], alpha: float, complete: bool,
         describe: Any, detail: str = "") -> tuple[dict, list[dict]]:
    """A finding's row from its comparisons (``effect`` signed in the report's direction)."""
    if comps:
        adjusted = stats.holm([c["p"] for c in comps])
        for c, p in zip(comps, adjusted):
            c["p_holm"] = float(p)
    effects = np.array([c["effect"] for c in comps], dtype=float)
    pvalues = np.array([c.get("p_holm", np.nan) for c in comps], dtype=float)
    result = verdict(effects, pvalues, alpha, complete)
    row = {"id": claim.id, "finding": claim.finding, "report_says": report_says, "we_measure": "—",
           "effect": math.nan, "lo": math.nan, "hi": math.nan, "p_value": math.nan, "verdict": result,
           "comparisons": len(comps), "seeds": max((c["seeds"] for c in comps), default=0), "detail": detail}
    if comps:
        c = comps[_deciding(effects, pvalues, alpha)]
        row.update(effect=c["effect"], lo=c["lo"], hi=c["hi"], p_value=c["p_holm"], we_measure=describe(c))
    return row, [{"id": claim.id, **{k: c.get(k) for k in COMPARISON_COLUMNS if k != "id"}} for c in comps]


def _points(c: dict, unit: str = "points") -> str:
    return f"{100 * c['effect']:+.1f} {unit} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] ({c['a']} vs {c['b']})"


def _missing(cfgs: Sequence[str], runs: PairedRuns) -> list[str]:
    return [c for c in cfgs if not runs.has(c)]


def _missing_note(missing: Sequence[str]) -> str:
    return f"not run or no predictions: {', '.join(missing)}" if missing else ""


def _pct(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _published_acc(cfg: tuple) -> Any:
    row = published.lookup(*cfg)
    return None if row is None else row["accuracy"]


def _grid(model: str | None = None) -> list[str]:
    models = config.MODELS if model is None else (model,)
    return [_cfg(m, a, lr) for m in models for a in config.ACTIVATIONS for lr in config.LEARNING_RATES]


def _best(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    target = _cfg(*claim.params["config"])
    scope = claim.params["scope"]
    rows = published.all_rows()
    if scope is not None:
        rows = rows[rows["model"] == scope]
    others = rows[rows["run_id"] != target].drop_duplicates("run_id").sort_values("accuracy", ascending=False)
    runner = others.iloc[0]
    says = (f"{target}: {_pct(_published_acc(claim.params['config']))}, next {runner['run_id']}: "
            f"{_pct(runner['accuracy'])}")
    required = [c for c in _grid(scope) if c != target]
    competitors = [c for c in dict.fromkeys(required + runs.configs(scope)) if c != target]
    comps = []
    if runs.has(target):
        for other in competitors:
            result = runs.compare([(target, other)])
            if result is not None:
                comps.append({"a": target, "b": other, **result})
    missing = _missing([target, *required], runs)
    detail = f"{target} against {len(comps)} other configuration(s), Holm-corrected"
    if missing:
        detail += "; " + _missing_note(missing)
    return _row(claim, says, comps, alpha, not missing, _points, detail)


def _beats(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    a, b = _cfg(*claim.params["a"]), _cfg(*claim.params["b"])
    pa, pb = _published_acc(claim.params["a"]), _published_acc(claim.params["b"])
    gap = "" if pa is None or pb is None else f" ({100 * (pa - pb):+.1f} points)"
    says = f"{a} {_pct(pa)} vs {b} {_pct(pb)}{gap}"
    result = runs.compare([(a, b)])
    comps = [] if result is None else [{"a": a, "b": b, **result}]
    missing = _missing([a, b], runs)
    return _row(claim, says, comps, alpha, not missing, _points, _missing_note(missing))


def _lr_says(model: str, lr: float) -> str:
    rows = published.all_rows()
    rows = rows[(rows["model"] == model) & rows["table"].isin(["table3", "table4"])]
    if rows.empty:
        return f"lr {lr:g} best for {model} (no per-configuration table published)"
    best = rows.loc[rows.groupby("activation")["accuracy"].idxmax()]
    parts = [f"{a}: lr {x:g} ({_pct(acc)})" for a, x, acc in zip(best["activation"], best["lr"], best["accuracy"])]
    return "best lr per activation: " + ", ".join(parts)


def _pooled(model: str, winner: float, loser: float) -> list[tuple[str, str]]:
    return [(_cfg(model, act, winner), _cfg(model, act, loser)) for act in config.ACTIVATIONS]


def _compare_lrs(model: str, winner: float, loser: float, runs: PairedRuns, comps: list[dict], missing: list) -> None:
    """Compare two learning rates of one model, pooled over the activations; append the result and
    any missing configuration to ``comps`` and ``missing``."""
    strata = _pooled(model, winner, loser)
    missing += _missing([c for pair in strata for c in pair], runs)
    result = runs.compare(strata)
    if result is not None:
        comps.append({"a": f"{model} lr{winner:g}", "b": f"{model} lr{loser:g}", **result})


def _lr_best(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    model, lr = claim.params["model"], claim.params["lr"]
    comps, missing = [], []
    for other in (x for x in config.LEARNING_RATES if not math.isclose(x, lr)):
        _compare_lrs(model, lr, other, runs, comps, missing)
    missing = list(dict.fromkeys(missing))
    detail = "accuracy pooled over the activations, Holm over the other learning rates"
    if missing:
        detail += "; " + _missing_note(missing)
    return _row(claim, _lr_says(model, lr), comps, alpha, not missing, _points, detail)


def _lr_worst(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    lr = claim.params["lr"]
    comps, missing = [], []
    for model in claim.params["models"]:
        for other in (x for x in config.LEARNING_RATES if not math.isclose(x, lr)):
            _compare_lrs(model, other, lr, runs, comps, missing)
    missing = list(dict.fromkeys(missing))
    rows = published.all_rows()
    low = rows[rows["lr"].map(lambda x: math.isclose(x, lr)) & rows["table"].isin(["table3", "table4"])]
    says = (f"lr {lr:g}: {_pct(low['accuracy'].min())}-{_pct(low['accuracy'].max())} "
            f"(Tables 3-4) vs up to {_pct(rows['accuracy'].max())} at smaller rates")
    ids = [r for m in claim.params["models"] for a in config.ACTIVATIONS
           for r in runs.by_cfg.get(_cfg(m, a, lr), {}).values()]
    diverged = int((runs.rows.loc[ids, "status"] == "diverged").sum()) if ids and "status" in runs.rows else 0
    detail = f"{diverged} of {len(ids)} lr {lr:g} run(s) diverged; pooled over activations, Holm over models x rates"
    if missing:
        detail += "; " + _missing_note(missing)
    return _row(claim, says, comps, alpha, not missing, _points, detail)


def _last_finite(history: pd.DataFrame, run_id: str) -> tuple[float, float]:
    for col in ("train_acc", "val_acc"):
        if col not in history:
            raise ValueError(f"history of {run_id}: no {col} column; pass the run's history.csv")
    ok = history[np.isfinite(history["train_acc"].astype(float)) & np.isfinite(history["val_acc"].astype(float))]
    if ok.empty:
        return math.nan, math.nan
    last = ok.iloc[-1]
    return float(last["train_acc"]), float(last["val_acc"])


def _split_size(runs: PairedRuns, run_id: str, name: str) -> tuple[int, bool]:
    value = runs.rows.loc[run_id].get(f"n_{name}") if f"n_{name}" in runs.rows else None
    if value is not None and pd.notna(value) and float(value) > 0:
        return int(value), False
    return published.SPLIT_SIZES[name], True


def _overfits(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    target = _cfg(*claim.params["config"])
    report = published.RESNET101_TRAIN_VAL
    says = (f"{target}: train about {report['train_acc']:.2f} vs validation {report['val_acc']:.2f} "
            f"(gap {100 * (report['train_acc'] - report['val_acc']):+.0f} points)")
    seeds = {s: r for s, r in runs.by_cfg.get(target, {}).items() if r in runs.histories}
    if not seeds:
        note = f"needs {target} with its history.csv (train_acc, val_acc per epoch)"
        return _row(claim, says, [], alpha, False, _points, note)
    # runs on one split share their training and validation clips: average their accuracies and
    # count those clips once; the clips of different splits add up
    per_split: dict[str, list[tuple[float, float, int, int]]] = {}
    assumed = False
    for run_id in seeds.values():
        train, val = _last_finite(runs.histories[run_id], run_id)
        if not (math.isfinite(train) and math.isfinite(val)):
            continue
        (nt, a1), (nv, a2) = _split_size(runs, run_id, "train"), _split_size(runs, run_id, "val")
        assumed |= a1 or a2
        per_split.setdefault(runs.clip_set[run_id], []).append((train, val, nt, nv))
    if not per_split:
        return _row(claim, says, [], alpha, False, _points, f"{target}: no epoch with finite train and val accuracy")
    k1 = n1 = k2 = n2 = 0
    for values in per_split.values():
        train, val = np.mean([v[0] for v in values]), np.mean([v[1] for v in values])
        nt, nv = values[0][2], values[0][3]
        k1, n1, k2, n2 = k1 + round(train * nt), n1 + nt, k2 + round(val * nv), n2 + nv
    gap = stats.newcombe_interval(k1, n1, k2, n2)
    comp = {"a": f"{target} train", "b": f"{target} validation", "effect": gap.estimate, "lo": gap.lo, "hi": gap.hi,
            "p": stats.two_proportion_pvalue(k1, n1, k2, n2), "test": "two-proportion z (last epoch)",
            "n_clips": n1 + n2, "seeds": len(seeds)}

    def describe(c: dict) -> str:
        return (f"train {k1 / n1:.2f} vs validation {k2 / n2:.2f}: gap {100 * c['effect']:+.1f} points "
                f"[{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}]")

    detail = "last epoch with both accuracies; Newcombe interval"
    if assumed:
        detail += "; split sizes not in the results, the report's used"
    return _row(claim, says, [comp], alpha, True, describe, detail)


def _bootstrap_comparisons(names: list[tuple[str, str]], values: np.ndarray, reps: np.ndarray,
                           seeds: int, n_clips: int, level: float = stats.LEVEL) -> list[dict]:
    """``values``/``reps``: per-comparison differences (positive = report's direction) and replicates."""
    comps = []
    for (a, b), est, rep in zip(names, values, reps):
        lo, hi = stats.percentile_interval(rep, level)
        comps.append({"a": a, "b": b, "effect": float(est), "lo": float(lo), "hi": float(hi),
                      "p": stats.bootstrap_pvalue(rep, float(est)), "test": "clip bootstrap",
                      "n_clips": n_clips, "seeds": seeds})
    return comps


def _class_rank(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    target = _cfg(*claim.params["config"])
    best, worst = tuple(claim.params["best"]), tuple(claim.params["worst"])
    report = published.per_class_f1()
    says = ", ".join(f"{e} F1 {report[e]:.2f}" for e in (*best, *worst) if pd.notna(report.get(e)))
    pooled = runs.confusions(target)
    if pooled is None:
        return _row(claim, says + f" ({target})", [], alpha, False, _points, _missing_note([target]))
    full, boot, n_seeds, n_clips = pooled
    idx = {e: i for i, e in enumerate(runs.labels)}
    pairs = [(b, o) for b in best for o in runs.labels if o not in best]
    pairs += [(o, w) for w in worst for o in runs.labels if o not in worst and (o, w) not in pairs]
    f1_full, f1_boot = stats.per_class_f1_of(full), stats.per_class_f1_of(boot)
    values = np.array([f1_full[idx[a]] - f1_full[idx[b]] for a, b in pairs])
    reps = np.stack([f1_boot[:, idx[a]] - f1_boot[:, idx[b]] for a, b in pairs])
    comps = _bootstrap_comparisons([(f"F1 {a}", f"F1 {b}") for a, b in pairs], values, reps, n_seeds, n_clips)
    ranked = sorted(runs.labels, key=lambda e: -f1_full[idx[e]])

    def describe(c: dict) -> str:
        order = " > ".join(f"{e} {f1_full[idx[e]]:.2f}" for e in ranked)
        return f"{c['a']} - {c['b']} = {c['effect']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]; F1: {order}"

    detail = f"per-class F1 of {target}, pooled over {n_seeds} seed(s); Holm over {len(comps)} class pairs"
    return _row(claim, says + f" ({target})", comps, alpha, True, describe, detail)


def _confused_pairs(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    target = _cfg(*claim.params["config"])
    claimed = [tuple(sorted(p)) for p in claim.params["pairs"]]
    says = ", ".join("-".join(p) for p in claim.params["pairs"]) + f" ({target}; read as unordered pairs)"
    pooled = runs.confusions(target)
    if pooled is None:
        return _row(claim, says, [], alpha, False, _points, _missing_note([target]))
    full, boot, n_seeds, n_clips = pooled
    idx = {e: i for i, e in enumerate(runs.labels)}
    all_pairs = [(a, b) for i, a in enumerate(runs.labels) for b in runs.labels[i + 1:]]

    def share(conf: np.ndarray, pair: tuple[str, str]) -> np.ndarray:
        i, j = idx[pair[0]], idx[pair[1]]
        return (conf[..., i, j] + conf[..., j, i]) / conf.sum(axis=(-2, -1))

    others = [p for p in all_pairs if p not in claimed]
    names = [(c, o) for c in claimed for o in others]
    values = np.array([share(full, c) - share(full, o) for c, o in names])
    reps = np.stack([share(boot, c) - share(boot, o) for c, o in names])
    comps = _bootstrap_comparisons([("-".join(c), "-".join(o)) for c, o in names], values, reps, n_seeds,
                                   n_clips)
    top = sorted(all_pairs, key=lambda p: -share(full, p))[:len(claimed)]

    def describe(c: dict) -> str:
        shown = ", ".join(f"{'-'.join(p)} {100 * share(full, p):.1f}%" for p in top)
        return (f"top: {shown}; {c['a']} - {c['b']} = {100 * c['effect']:+.1f} points "
                f"[{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] of the test clips")

    detail = (f"confusions both ways as a share of the test clips, pooled over {n_seeds} seed(s); "
              f"Holm over {len(comps)} pair comparisons")
    return _row(claim, says, comps, alpha, True, describe, detail)


_EVALUATORS = {"best": _best, "beats": _beats, "lr_best": _lr_best, "lr_worst": _lr_worst, "overfits": _overfits,
               "class_rank": _class_rank, "confused_pairs": _confused_pairs}
#: Claims whose p-values come from the bootstrap (their resolution is 1 / (n_boot + 1)).
_BOOTSTRAP_KINDS = ("class_rank", "confused_pairs")


def _bootstrap_comparisons_needed(claim: Claim) -> int:
    if claim.kind == "class_rank":
        best, worst = len(claim.params["best"]), len(claim.params["worst"])
        k = len(config.EMOTIONS)
        return best * (k - best) + worst * (k - worst) - best * worst
    n_pairs = len(config.EMOTIONS) * (len(config.EMOTIONS) - 1) // 2
    return len(claim.params["pairs"]) * (n_pairs - len(claim.params["pairs"]))


# ------------------------------------------------------------------------------ entry points
def assess(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame],
           histories: Mapping[str, pd.DataFrame] | None = None, claims: Sequence[Claim] = CLAIMS,
           split: str | None = "random", alpha: float = ALPHA, n_boot: int = stats.N_BOOT,
           seed: int = config.SEED) -> Assessment:
    """Evaluate ``claims`` against a sweep: the findings table and the comparisons behind each row.

    ``results``: one row per run (``ser_utils.runs.collect_results``); ``predictions``:
    ``run_id -> predictions.csv`` frame; ``histories``: ``run_id -> history.csv`` frame (for the
    overfitting finding). ``split`` keeps the runs of that protocol (None: all). ``n_boot`` must
    let the bootstrap-tested findings reach significance after Holm (p >= 1 / (n_boot + 1)).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r}: must be between 0 and 1 (e.g. 0.05)")
    for claim in claims:
        if claim.kind not in _EVALUATORS:
            raise ValueError(f"claim {claim.id!r}: unknown kind {claim.kind!r}; known: {', '.join(_EVALUATORS)}")
        if claim.kind in _BOOTSTRAP_KINDS:
            needed = _bootstrap_comparisons_needed(claim)
            if needed / (n_boot + 1) >= alpha:
                raise ValueError(f"n_boot={n_boot} is too small for claim {claim.id!r}: with {needed} Holm-corrected "
                                 f"bootstrap comparisons it can never be significant; use n_boot >= "
                                 f"{math.ceil(needed / alpha)}")
    runs = PairedRuns(results, predictions, histories, split, n_boot, seed)
    rows, comparisons = [], []
    for claim in claims:
        row, comps = _EVALUATORS[claim.kind](claim, runs, alpha)
        rows.append(row)
        comparisons.extend(comps)
    return Assessment(pd.DataFrame(rows, columns=TABLE_COLUMNS),
                      pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS))


def evaluate(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame],
             histories: Mapping[str, pd.DataFrame] | None = None, **kwargs: Any) -> pd.DataFrame:
    """The findings table of :func:`assess` (one row per finding, columns :data:`TABLE_COLUMNS`)."""
    return assess(results, predictions, histories, **kwargs).table
