"""The report's findings as data, and a verdict on each computed from our runs.

Why: a reproduction is only as good as its comparisons. "SiLU beats ReLU by 5.9 points" is a
claim about two runs on 2,233 test clips; whether our runs reproduce it depends on a paired
test on those clips, on runs that differ only in what the claim varies, and on runs that learned
something. :data:`CLAIMS` lists the report's findings; :func:`assess` evaluates each against a
sweep and :func:`evaluate` returns the table (one row per finding: what the report says, what we
measure with a 95% interval, the p-value of the test of that same effect, the verdict and why).

Verdicts, in the order they are decided (docs/statistics.md says more):

* ``not run`` -- no comparison could be made (runs missing, failed, or without predictions);
  also when some are missing and the present ones do not contradict the finding;
* ``not comparable`` -- two compared runs differ in a result-affecting setting other than the
  one the finding varies (epochs, batch size, precision, corpus and its clips, split and split
  seed, training-set size...); the reason names it ("epochs 1 vs 12");
* ``uninformative`` -- a run the finding needs predicts one class for at least 90% of its test
  clips, or its accuracy's 95% Wilson interval contains chance (the largest class's share);
  the reason names the run ("predicts HAP for 197 of 197 test clips");
* ``contradicted`` -- the strongest comparison against the report is significant;
* ``reproduced`` -- every comparison goes the report's way and the weakest is significant;
* ``not significant`` -- otherwise: our data cannot tell.

"Significant" is after Holm's correction twice: over a finding's comparisons (it may make 26),
then over every finding of the table (the row's ``p_value`` is that final p of the comparison
shown). Tests: accuracy differences use :func:`ser_utils.stats.mean_difference_test` (exact
McNemar for one pair, the exact sign-flip permutation test of the mean for several pairs of one
seed, the clip x seed t-test with several seeds: seed-to-seed variance included; with one seed the
row says "one seed: seed noise not included"); per-class F1 and confusion-share differences use
the paired clip bootstrap (percentile interval, z-test on the bootstrap standard error).

Runs: a results frame with one row per run (``run_id, model, activation, lr`` and, when
present, ``seed, split_seed, status, split, epochs, corpus, n_train, n_val``; see
``runs.collect_results``), a mapping ``run_id -> predictions`` (the run folder's
``predictions.csv``) and optionally ``run_id -> settings`` (``paired_runs.load_settings``: batch
size, precision, the corpus fingerprint... from config.json). Runs evaluated on one test split
(the same ``split_seed``, or, in results without one, the same ``seed``) are paired on the clip
key. Statuses ``complete`` and ``diverged`` count as finished.

This module is larger than the 550-line guideline: the findings, their evaluators and the verdict rules are
read together when checking what a verdict means (docs/statistics.md follows this file's order);
the run-level machinery (pairing, settings, informativeness) is in ``paired_runs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ser_utils import config, stats
from ser_utils.analysis import published
from ser_utils.analysis.paired_runs import PairedRuns, configuration_key
from ser_utils.runs import FINISHED_STATUSES

VERDICTS = ("reproduced", "contradicted", "not significant", "not comparable", "uninformative", "not run")
ALPHA = 0.05
TABLE_COLUMNS = ["id", "finding", "report_says", "we_measure", "effect", "lo", "hi", "p_value", "verdict",
                 "reason", "test", "comparisons", "seeds", "detail"]
COMPARISON_COLUMNS = ["id", "a", "b", "effect", "lo", "hi", "p", "p_holm", "test", "n_clips", "seeds"]
ONE_SEED = "one seed: seed noise not included"


@dataclass(frozen=True)
class Claim:
    """One finding of the report: an id, its wording, and how it is tested (``kind`` + ``params``)."""

    id: str
    finding: str
    kind: str
    params: dict = field(default_factory=dict)


_cfg = configuration_key


_BEST_2D = ("2d", "silu", 0.001)
_BEST_1D = ("1d", "elu", 0.01)


def _best_combined() -> tuple[str, str, float]:
    """The report's best combined-model variant (Table 2), as a configuration."""
    rows = published.all_rows()
    best = rows[rows["model"].str.startswith("combined")].sort_values("accuracy", ascending=False).iloc[0]
    return best["model"], best["activation"], float(best["lr"])


CLAIMS: tuple[Claim, ...] = (
    Claim("best-overall", "The 2D CNN with SiLU at lr 0.001 is the best model overall", "best",
          {"config": _BEST_2D, "scope": None}),
    Claim("silu-over-relu-2d", "SiLU beats ReLU for the 2D CNN at lr 0.001 (by about 6 points)", "beats",
          {"a": _BEST_2D, "b": ("2d", "relu", 0.001)}),
    Claim("best-1d", "ELU at lr 0.01 is the best 1D CNN configuration", "best",
          {"config": _BEST_1D, "scope": "1d"}),
    Claim("2d-over-1d", "The 2D CNN beats the 1D CNN (each at its best configuration)", "beats",
          {"a": _BEST_2D, "b": _BEST_1D}),
    Claim("silu-best-2d", "SiLU is the best activation for the 2D CNN (at lr 0.001)", "act_best",
          {"model": "2d", "activation": "silu", "lr": 0.001}),
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
    Claim("2d-over-combined-best", "The 2D CNN beats the combined model's best variant", "beats",
          {"a": _BEST_2D, "b": _best_combined()}),
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
def _deciding(effects: np.ndarray, pvalues: np.ndarray) -> int:
    """The comparison a finding stands or falls on: the strongest one against the report (smallest
    p, then largest effect against) when any goes against it, else the weakest one for it."""
    p = np.where(np.isfinite(pvalues), pvalues, np.inf)
    against = np.flatnonzero(effects <= 0)
    if against.size:
        return int(against[np.lexsort((effects[against], p[against]))[0]])
    return int(np.lexsort((effects, -p))[0])


def verdict(effects: Sequence[float], pvalues: Sequence[float], alpha: float = ALPHA, complete: bool = True) -> str:
    """The statistical verdict of a finding from its comparisons.

    ``effects`` are signed so that positive is the report's direction; ``pvalues`` are final
    (Holm-adjusted); ``complete`` is False when some comparisons could not be made (missing
    runs). The finding stands or falls on one comparison (:func:`_deciding`): *contradicted* when
    it goes against the report significantly (even with runs missing), *reproduced* when every
    comparison goes the report's way and the weakest is significant, else *not run* (runs
    missing) or *not significant*. ``not comparable`` and ``uninformative`` are decided before
    any test, in :func:`assess`.
    """
    e = np.asarray(effects, dtype=float)
    p = np.asarray(pvalues, dtype=float)
    if e.shape != p.shape:
        raise ValueError(f"verdict: {e.size} effects but {p.size} p-values")
    if e.size == 0:
        return "not run"
    i = _deciding(e, p)
    significant = bool(np.isfinite(p[i]) and p[i] < alpha)
    if significant and e[i] < 0:
        return "contradicted"
    if not complete:
        return "not run"
    if significant and e[i] > 0:
        return "reproduced"
    return "not significant"


# ------------------------------------------------------------------------------ evaluators
def _first(items: Sequence[str], limit: int = 3) -> str:
    items = list(dict.fromkeys(items))
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _screen(comps: list[dict], runs: PairedRuns, used: Sequence[str]) -> tuple[str, str] | None:
    """``(verdict, reason)`` when the runs may not be compared or carry no information, else None."""
    differing = {}
    for c in comps:
        for a, b in c.get("runs", ()):
            for diff in runs.differences(a, b):
                differing.setdefault(diff, f"{diff} ({a} vs {b})")
    if differing:
        return "not comparable", _first(list(differing.values()))
    # "X is the best": only the claimed winner's runs must carry information (a competitor at
    # chance is simply beaten); "A beats B": both sides'
    ids = [r for c in comps for pair in c.get("runs", ()) for r in (pair[:1] if c.get("winner_only") else pair)]
    ids = list(dict.fromkeys(ids + list(used)))
    empty = [why for why in map(runs.uninformative, [r for r in ids if r in runs.pred]) if why]
    if empty:
        return "uninformative", _first(empty)
    return None


def _row(claim: Claim, report_says: str, comps: list[dict], complete: bool, describe: Any, runs: PairedRuns,
         detail: str = "", used: Sequence[str] = ()) -> tuple[dict, list[dict]]:
    """A finding's row from its comparisons (``effect`` signed in the report's direction); the
    verdict is final only after :func:`assess` has corrected over the whole table."""
    if comps:
        adjusted = stats.holm([c["p"] for c in comps])
        for c, p in zip(comps, adjusted):
            c["p_holm"] = float(p)
    seeds = sorted({s for c in comps for s in c.get("seed_list", ())} | set(runs.seeds_of(used)))
    row = {"id": claim.id, "finding": claim.finding, "report_says": report_says, "we_measure": "—",
           "effect": math.nan, "lo": math.nan, "hi": math.nan, "p_value": math.nan, "verdict": "not run",
           "reason": "", "test": "", "comparisons": len(comps), "seeds": ", ".join(map(str, seeds)),
           "detail": detail, "_p": math.nan, "_complete": complete, "_screen": None}
    if comps:
        effects = np.array([c["effect"] for c in comps], dtype=float)
        c = comps[_deciding(effects, np.array([c["p_holm"] for c in comps], dtype=float))]
        row.update(effect=c["effect"], lo=c["lo"], hi=c["hi"], _p=c["p_holm"], we_measure=describe(c), test=c["test"])
        row["_screen"] = _screen(comps, runs, used)
    elif not complete:
        row["reason"] = detail
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
    return _best_of(claim, says, target, competitors, required, runs,
                    f"against {len(competitors)} other configuration(s)")


def _best_of(claim: Claim, says: str, target: str, competitors: Sequence[str], required: Sequence[str],
             runs: PairedRuns, against: str) -> tuple[dict, list[dict]]:
    """``target`` is the best: one comparison with each competitor, Holm over them."""
    comps = []
    for other in competitors if runs.has(target) else ():
        result = runs.compare([(target, other)])
        if result is not None:
            comps.append({"a": target, "b": other, "winner_only": True, **result})
    missing = _missing([target, *required], runs)
    detail = f"{target} {against}, Holm-corrected" + ("; " + _missing_note(missing) if missing else "")
    return _row(claim, says, comps, not missing, _points, runs, detail)


def _beats(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    a, b = _cfg(*claim.params["a"]), _cfg(*claim.params["b"])
    pa, pb = _published_acc(claim.params["a"]), _published_acc(claim.params["b"])
    gap = "" if pa is None or pb is None else f" ({100 * (pa - pb):+.1f} points)"
    says = f"{a} {_pct(pa)} vs {b} {_pct(pb)}{gap}"
    result = runs.compare([(a, b)])
    comps = [] if result is None else [{"a": a, "b": b, **result}]
    missing = _missing([a, b], runs)
    return _row(claim, says, comps, not missing, _points, runs, _missing_note(missing))


def _act_best(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    model, act, lr = claim.params["model"], claim.params["activation"], claim.params["lr"]
    target = _cfg(model, act, lr)
    rows = published.all_rows()
    rows = rows[(rows["model"] == model) & rows["lr"].map(lambda x: math.isclose(x, lr))].drop_duplicates("run_id")
    says = ", ".join(f"{a} {_pct(x)}" for a, x in zip(rows["activation"], rows["accuracy"])) + f" (lr {lr:g})"
    others = [_cfg(model, a, lr) for a in config.ACTIVATIONS if a != act]
    return _best_of(claim, says, target, others, others, runs, f"against the other activations at lr {lr:g}")


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
        comps.append({"a": f"{model} lr{winner:g}", "b": f"{model} lr{loser:g}", "winner_only": True, **result})


def _lr_best(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    model, lr = claim.params["model"], claim.params["lr"]
    comps, missing = [], []
    for other in (x for x in config.LEARNING_RATES if not math.isclose(x, lr)):
        _compare_lrs(model, lr, other, runs, comps, missing)
    missing = list(dict.fromkeys(missing))
    detail = "accuracy pooled over the activations, Holm over the other learning rates"
    if missing:
        detail += "; " + _missing_note(missing)
    return _row(claim, _lr_says(model, lr), comps, not missing, _points, runs, detail)


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
    return _row(claim, says, comps, not missing, _points, runs, detail)


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
        return _row(claim, says, [], False, _points, runs, note)
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
        return _row(claim, says, [], False, _points, runs, f"{target}: no epoch with finite train and val accuracy")
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
    return _row(claim, says, [comp], True, describe, runs, detail, used=list(seeds.values()))


def _bootstrap_comparisons(names: list[tuple[str, str]], values: np.ndarray, reps: np.ndarray,
                           seeds: int, n_clips: int, level: float = stats.LEVEL) -> list[dict]:
    """``values``/``reps``: per-comparison differences (positive = report's direction) and replicates."""
    comps = []
    for (a, b), est, rep in zip(names, values, reps):
        lo, hi = stats.percentile_interval(rep, level)
        se = float(np.nanstd(rep, ddof=1))
        p = (1.0 if est == 0 else 0.0) if se == 0 else float(2 * sps.norm.sf(abs(est) / se))
        comps.append({"a": a, "b": b, "effect": float(est), "lo": float(lo), "hi": float(hi), "p": p,
                      "test": "clip bootstrap (z on its standard error)" + ("; " + ONE_SEED if seeds == 1 else
                                                                             "; seed noise not included"),
                      "n_clips": n_clips, "seeds": seeds})
    return comps


def _class_rank(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    target = _cfg(*claim.params["config"])
    best, worst = tuple(claim.params["best"]), tuple(claim.params["worst"])
    report = published.per_class_f1()
    says = ", ".join(f"{e} F1 {report[e]:.2f}" for e in (*best, *worst) if pd.notna(report.get(e)))
    pooled = runs.confusions(target)
    if pooled is None:
        return _row(claim, says + f" ({target})", [], False, _points, runs, _missing_note([target]))
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
    return _row(claim, says + f" ({target})", comps, True, describe, runs, detail, used=runs.runs_of(target))


def _confused_pairs(claim: Claim, runs: PairedRuns, alpha: float) -> tuple[dict, list[dict]]:
    target = _cfg(*claim.params["config"])
    claimed = [tuple(sorted(p)) for p in claim.params["pairs"]]
    says = ", ".join("-".join(p) for p in claim.params["pairs"]) + f" ({target}; read as unordered pairs)"
    pooled = runs.confusions(target)
    if pooled is None:
        return _row(claim, says, [], False, _points, runs, _missing_note([target]))
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
    return _row(claim, says, comps, True, describe, runs, detail, used=runs.runs_of(target))


_EVALUATORS = {"best": _best, "beats": _beats, "act_best": _act_best, "lr_best": _lr_best, "lr_worst": _lr_worst,
               "overfits": _overfits, "class_rank": _class_rank, "confused_pairs": _confused_pairs}


def _finish(rows: list[dict], alpha: float) -> None:
    """Holm over every finding the table tests, then each row's verdict and reason."""
    tested = [r for r in rows if r["_screen"] is None and math.isfinite(r["_p"])]
    for r, p in zip(tested, stats.holm([r["_p"] for r in tested])):
        r["p_value"] = float(p)
    for r in rows:
        if r["_screen"] is not None:
            r["verdict"], r["reason"] = r["_screen"]
            continue
        if r["comparisons"]:
            r["verdict"] = verdict([r["effect"]], [r["p_value"]], alpha, r["_complete"])
        if r["verdict"] == "not significant":
            found = f"{len(tested)} finding{'' if len(tested) == 1 else 's'}"
            r["reason"] = f"p = {r['p_value']:.3g} after Holm over the {found} tested (alpha {alpha:g})"
        elif r["verdict"] == "not run":
            r["reason"] = r["reason"] or r["detail"]
        if ONE_SEED in r["test"]:
            r["reason"] = "; ".join(x for x in (r["reason"], ONE_SEED) if x)


# ------------------------------------------------------------------------------ entry points
def assess(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame],
           histories: Mapping[str, pd.DataFrame] | None = None, claims: Sequence[Claim] = CLAIMS,
           split: str | None = "random", alpha: float = ALPHA, n_boot: int = stats.N_BOOT,
           seed: int = config.SEED, settings: Mapping[str, Mapping[str, Any]] | None = None) -> Assessment:
    """Evaluate ``claims`` against a sweep: the findings table and the comparisons behind each row.

    ``results``: one row per run (``ser_utils.runs.collect_results``); ``predictions``:
    ``run_id -> predictions.csv`` frame; ``histories``: ``run_id -> history.csv`` frame (for the
    overfitting finding); ``settings``: ``run_id -> recorded settings``
    (:func:`ser_utils.analysis.paired_runs.load_settings`; without it only the settings in
    ``results`` are compared). ``split`` keeps the runs of that protocol (None: all).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r}: must be between 0 and 1 (e.g. 0.05)")
    for claim in claims:
        if claim.kind not in _EVALUATORS:
            raise ValueError(f"claim {claim.id!r}: unknown kind {claim.kind!r}; known: {', '.join(_EVALUATORS)}")
    runs = PairedRuns(results, predictions, histories, split, n_boot, seed, settings)
    rows, comparisons = [], []
    for claim in claims:
        row, comps = _EVALUATORS[claim.kind](claim, runs, alpha)
        rows.append(row)
        comparisons.extend(comps)
    _finish(rows, alpha)
    return Assessment(pd.DataFrame(rows, columns=TABLE_COLUMNS),
                      pd.DataFrame(comparisons, columns=COMPARISON_COLUMNS))


def epoch_budgets(results: pd.DataFrame, split: str | None = "random") -> str:
    """One sentence when the models were trained for different numbers of epochs (e.g. the quick
    profile), computed from the finished runs; "" when every model had the same budget."""
    done = results[results["status"].isin(FINISHED_STATUSES)] if "status" in results else results
    if split is not None and "split" in done:
        done = done[done["split"].isna() | (done["split"] == split)]
    if done.empty or "epochs" not in done:
        return ""
    budgets = done.groupby("model")["epochs"].agg(lambda e: sorted({int(x) for x in e.dropna()}))
    if len({tuple(b) for b in budgets}) <= 1:
        return ""
    parts = ", ".join(f"{m} {'/'.join(map(str, b))}" for m, b in budgets.items())
    return (f"The models had different epoch budgets ({parts} epochs): every claim comparing models "
            f"across budgets is 'not comparable'.")


#: The columns notebook 08 and the report's front page show.
SHOWN_COLUMNS = ["finding", "report_says", "we_measure", "p_value", "verdict", "reason", "seeds"]


def assess_runs(results: pd.DataFrame, runs_dir: Any, **kwargs: Any) -> Assessment:
    """:func:`assess` on the finished runs under ``runs_dir``: their predictions, histories and
    recorded settings read from the run folders."""
    from ser_utils import runs as run_folders
    from ser_utils.analysis.paired_runs import load_settings

    done = list(run_folders.finished(results)["run_id"]) if len(results) else []
    return assess(results, run_folders.load_tables(runs_dir, done),
                  run_folders.load_tables(runs_dir, done, run_folders.HISTORY_FILE),
                  settings=load_settings(runs_dir, done), **kwargs)


def evaluate(results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame],
             histories: Mapping[str, pd.DataFrame] | None = None, **kwargs: Any) -> pd.DataFrame:
    """The findings table of :func:`assess` (one row per finding, columns :data:`TABLE_COLUMNS`)."""
    return assess(results, predictions, histories, **kwargs).table
