"""Results of a sweep as the report's tables, beside the report's own numbers, and the human baseline.

Everything here reads whatever run folders exist (a partial sweep is fine) through
:func:`ser_utils.sweep.collect_results` and :func:`ser_utils.training.load_run`; nothing
trains. Numbers from the synthetic demo corpus are labelled as such wherever they are shown
(:func:`caption`, :func:`banner_html`), because they say nothing about CREMA-D.

Model selection: Table 2 picks each architecture's best configuration by *test* accuracy, as
the report does. That choice is optimistic (the test set chooses the winner);
``best_per_model(results, by="best_val_loss")`` selects on the validation set instead.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config

SYNTHETIC_CAPTION = "synthetic demo corpus — not CREMA-D"
FINISHED_STATUSES = ("complete", "diverged")
#: Columns holding fractions, shown as percentages.
PERCENT_COLUMNS = ("accuracy", "f1", "precision", "recall", "f1_macro", "uar", "report_accuracy")
#: Columns of the per-configuration tables (Tables 3 and 4 and the combined one).
TABLE_COLUMNS = ["run_id", "activation", "lr", "accuracy", "report_accuracy", "f1", "precision", "recall", "uar",
                 "best_epoch", "epochs_run", "status"]
#: Which model each numbered table shows. The combined configurations have no table number here.
TABLE_MODELS = {"table3": "2d", "table4": "1d", "table_combined": "combined"}

#: The course report's published numbers, to show beside ours. Only what is known is filled in:
#: the report's best test accuracy (combined, 64.1 %, ``config.REPORT_BEST_ACCURACY``), whose
#: activation and learning rate we do not know (None). The per-configuration tables (3, 4 and
#: the combined one) are honestly empty: their published values were not available to us. Fill
#: in rows as ``{"model": "2d", "activation": "silu", "lr": 0.001, "accuracy": 0.58}``.
REPORT_TABLES: dict[str, list[dict[str, Any]]] = {
    "table2": [{"model": m, "activation": None, "lr": None, "accuracy": acc}
               for m, acc in config.REPORT_BEST_ACCURACY.items()],
    "table3": [],
    "table4": [],
    "table_combined": [],
}

#: How a tied majority vote (``NEU:SAD``) scores against the intended emotion.
TIE_RULES = {
    "split": "a k-way tie that contains the intended emotion scores 1/k (a random tie-break, in expectation)",
    "strict": "a tie counts as wrong (this gives the 41.6% majority-vote agreement quoted for CREMA-D)",
    "lenient": "a tie counts as correct when it contains the intended emotion (an upper bound)",
}
#: The rule used for the headline human accuracy and the human confusion matrix.
TIE_RULE = "split"


# ----------------------------------------------------------------------- results
def load_results(runs_dir: str | Path = config.RUNS_DIR, results_csv: str | Path | None = None) -> pd.DataFrame:
    """The results table: read ``results_csv`` when given, else collected from the run folders."""
    from ser_utils import sweep

    if results_csv:
        path = Path(results_csv)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no results table; run `python -m ser_utils sweep` or leave "
                                    f"results_csv empty to collect from {runs_dir}")
        return sweep.sort_runs(pd.read_csv(path))
    return sweep.collect_results(runs_dir)


def finished(results: pd.DataFrame) -> pd.DataFrame:
    """Runs that finished (complete or diverged): the ones with test metrics."""
    if results.empty:
        return results
    return results[results["status"].isin(FINISHED_STATUSES)].reset_index(drop=True)


def is_synthetic(results: pd.DataFrame, default: bool = False) -> bool:
    """True when any run was trained on the synthetic demo corpus; ``default`` when no run says.

    The runs' own ``corpus`` field decides, not the notebook's data folder: runs copied from a
    CREMA-D machine are real even when analysed next to the demo corpus, and vice versa.
    """
    corpora = results["corpus"].dropna() if "corpus" in results else pd.Series(dtype=object)
    return bool((corpora == "synthetic").any()) if len(corpora) else default


def caption(title: str, synthetic: bool) -> str:
    """A table caption, labelled when the numbers come from the synthetic corpus."""
    return f"{title} — {SYNTHETIC_CAPTION}" if synthetic else title


def banner_html(synthetic: bool) -> str:
    """A visible red banner for the top of a page showing synthetic numbers ("" for CREMA-D)."""
    if not synthetic:
        return ""
    return ("<div class='synthetic-banner' style='border:2px solid #c0392b;background:#fdecea;padding:8px 12px;"
            "color:#c0392b;font-weight:bold;margin:8px 0'>"
            f"{html.escape(SYNTHETIC_CAPTION[0].upper() + SYNTHETIC_CAPTION[1:])}: every number on this page comes "
            "from generated speech and says nothing about CREMA-D.</div>")


def published(table: str) -> pd.DataFrame:
    """One of :data:`REPORT_TABLES` as a DataFrame (empty when the report's values are unknown)."""
    rows = REPORT_TABLES.get(table, [])
    return pd.DataFrame(rows, columns=["model", "activation", "lr", "accuracy"])


def best_per_model(results: pd.DataFrame, by: str = "accuracy") -> pd.DataFrame:
    """Table 2: each architecture's best finished configuration, with the report's accuracy beside it.

    ``by="accuracy"`` (highest test accuracy, as the report) or ``"best_val_loss"`` (lowest).
    """
    done = finished(results)
    columns = ["model", *TABLE_COLUMNS]
    if done.empty:
        return pd.DataFrame(columns=columns)
    ascending = by == "best_val_loss"
    if by not in done:
        raise ValueError(f"by={by!r}: not a results column; use 'accuracy' or 'best_val_loss'")
    best = done.sort_values(by, ascending=ascending, kind="stable").groupby("model", sort=False).head(1)
    report = published("table2").set_index("model")["accuracy"]
    best = best.assign(report_accuracy=best["model"].map(report))
    order = {m: i for i, m in enumerate(config.MODELS)}
    best = best.sort_values("model", key=lambda s: s.map(lambda m: order.get(m, len(order))))
    return best.reindex(columns=columns).reset_index(drop=True)


def configuration_table(results: pd.DataFrame, model: str, table: str | None = None) -> pd.DataFrame:
    """Tables 3 / 4 / combined: every configuration of one model (failed ones too, marked)."""
    rows = results[results["model"] == model].copy() if not results.empty else results.copy()
    report = published(table or _table_of(model))
    if not report.empty and not rows.empty:
        keyed = report.set_index(["activation", "lr"])["accuracy"]
        rows["report_accuracy"] = [keyed.get((a, float(lr)), np.nan) for a, lr in zip(rows["activation"], rows["lr"])]
    return rows.reindex(columns=TABLE_COLUMNS).reset_index(drop=True)


def _table_of(model: str) -> str:
    return next((t for t, m in TABLE_MODELS.items() if m == model), "")


def style_table(frame: pd.DataFrame, title: str, synthetic: bool, formats: Mapping[str, Any] | None = None) -> Any:
    """A Styler for reading: percentages, a green gradient on accuracy, the corpus in the caption.

    ``formats`` adds or overrides column formatters (one ``Styler.format`` call: a second call
    would reset the columns it does not name).
    """
    base = {c: "{:.1%}" for c in PERCENT_COLUMNS if c in frame}
    base.update({c: "{:g}" for c in ("lr",) if c in frame})
    base.update({c: "{:.0f}" for c in ("best_epoch", "epochs_run", "epochs") if c in frame})
    styler = frame.style.format({**base, **(formats or {})}, na_rep="—")
    if "accuracy" in frame and frame["accuracy"].notna().any():
        styler = styler.background_gradient(subset=["accuracy"], cmap="Greens")
    styler = styler.hide(axis="index").set_caption(html.escape(caption(title, synthetic)))
    return styler.set_table_styles([{"selector": "caption",
                                     "props": [("caption-side", "top"), ("font-weight", "bold"),
                                               ("color", "#c0392b" if synthetic else "inherit")]}])


def top_runs(results: pd.DataFrame, n: int = 3) -> list[str]:
    """The run ids of the ``n`` most accurate finished runs (best first)."""
    done = finished(results)
    return done.sort_values("accuracy", ascending=False, kind="stable")["run_id"].head(n).tolist()


def best_run(results: pd.DataFrame) -> str | None:
    """The run id with the highest test accuracy, or None when nothing finished."""
    ids = top_runs(results, 1)
    return ids[0] if ids else None


def load_run(runs_dir: str | Path, run_id: str) -> dict[str, Any]:
    """One run folder read back, as :func:`ser_utils.training.load_run` returns it.

    Read here with pandas alone so that the analysis and the report never import torch
    (seconds of start-up for a command that only reads CSV and JSON files).
    """
    run_dir = Path(runs_dir) / run_id

    def csv_or_none(name: str, **kwargs: Any) -> pd.DataFrame | None:
        path = run_dir / name
        return pd.read_csv(path, **kwargs) if path.is_file() else None

    from ser_utils.sweep import read_json

    return {"run_dir": run_dir, "run_id": run_id, "config": read_json(run_dir / "config.json"),
            "metrics": read_json(run_dir / "metrics.json"), "history": csv_or_none("history.csv"),
            "confusion": csv_or_none("confusion.csv", index_col=0), "predictions": csv_or_none("predictions.csv")}


# ------------------------------------------------------------------ confusions
def confused_pairs(confusion: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Off-diagonal cells ranked: ``true, predicted, count, rate`` (rate = share of the true class)."""
    counts = confusion.astype(float)
    totals = counts.sum(axis=1)
    rows = [{"true": t, "predicted": p, "count": counts.loc[t, p],
             "rate": counts.loc[t, p] / totals[t] if totals[t] else np.nan}
            for t in counts.index for p in counts.columns if t != p and counts.loc[t, p] > 0]
    frame = pd.DataFrame(rows, columns=["true", "predicted", "count", "rate"])
    return frame.sort_values(["count", "rate"], ascending=False, kind="stable").head(top).reset_index(drop=True)


def per_class_f1(metrics: Mapping[str, Any]) -> pd.Series:
    """A run's per-class F1 in emotion order."""
    values = metrics.get("per_class_f1") or {}
    return pd.Series({e: values.get(e, np.nan) for e in config.EMOTIONS}, name="F1", dtype=float)


def histories(runs_dir: str | Path, run_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``run_id -> history.csv`` for the runs that have one (Figure 9)."""
    out = {}
    for rid in run_ids:
        path = Path(runs_dir) / rid / "history.csv"
        if path.is_file():
            out[rid] = pd.read_csv(path)
    return out


# ------------------------------------------------------------- human baseline
def clip_file(path: str) -> str:
    """``/x/AudioWAV/1001_DFA_ANG_X.wav`` -> ``1001_DFA_ANG_XX`` (the summaryTable.csv key)."""
    from ser_utils import dataset

    return dataset.canonical_name(dataset.parse_name(Path(str(path)).name))


def vote_score(vote: str, intended: str, rule: str = TIE_RULE) -> float:
    """How far one majority vote matches the intended emotion under a :data:`TIE_RULES` rule."""
    if rule not in TIE_RULES:
        raise ValueError(f"rule={rule!r}: choose one of {', '.join(TIE_RULES)}")
    tied = str(vote).split(":")
    if intended not in tied:
        return 0.0
    if len(tied) == 1:
        return 1.0
    return {"split": 1.0 / len(tied), "strict": 0.0, "lenient": 1.0}[rule]


def human_vs_model(predictions: pd.DataFrame, votes: pd.DataFrame) -> pd.DataFrame:
    """The model's test clips with the listeners' voice-only vote: ``file, true, predicted, voice_vote``."""
    if "path" not in predictions:
        raise ValueError("predictions.csv has no 'path' column; re-run training to record the clips")
    frame = predictions[["path", "true", "predicted"]].copy()
    frame["file"] = frame["path"].map(clip_file)
    merged = frame.merge(votes[["file", "voice_vote"]], on="file", how="left")
    return merged[["file", "true", "predicted", "voice_vote"]]


def human_accuracy(votes: pd.DataFrame, intended: pd.Series | None = None) -> dict[str, float]:
    """Listener accuracy under every tie rule (``split``, ``strict``, ``lenient``) plus ``n`` clips.

    ``intended`` defaults to the emotion in each file name (``votes["file"]``).
    """
    intended = intended if intended is not None else votes["file"].str.split("_").str[2]
    pairs = [(v, t) for v, t in zip(votes["voice_vote"], intended) if isinstance(v, str)]
    out = {rule: float(np.mean([vote_score(v, t, rule) for v, t in pairs])) if pairs else np.nan for rule in TIE_RULES}
    out["n"] = len(pairs)
    return out


def human_confusion(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows intended emotion, columns the listeners' vote; a k-way tie adds 1/k to each tied emotion."""
    matrix = pd.DataFrame(0.0, index=pd.Index(config.EMOTIONS, name="true"), columns=list(config.EMOTIONS))
    for vote, true in zip(frame["voice_vote"], frame["true"]):
        if not isinstance(vote, str):
            continue
        tied = [e for e in vote.split(":") if e in matrix.columns]
        for emotion in tied:
            matrix.loc[true, emotion] += 1.0 / len(tied)
    return matrix


def model_confusion(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's confusion counts on the same clips (rows true, columns predicted)."""
    matrix = pd.crosstab(frame["true"], frame["predicted"]).reindex(
        index=list(config.EMOTIONS), columns=list(config.EMOTIONS), fill_value=0)
    matrix.index.name = "true"
    return matrix.astype(float)


def human_baseline(predictions: pd.DataFrame, votes: pd.DataFrame) -> dict[str, Any]:
    """Listeners vs the model on the model's test clips: accuracies, both confusions, coverage."""
    frame = human_vs_model(predictions, votes)
    voted = frame.dropna(subset=["voice_vote"])
    return {"clips": frame, "n_test": len(frame), "n_voted": len(voted),
            "human": human_accuracy(voted, intended=voted["true"]),
            "model_accuracy": float((voted["true"] == voted["predicted"]).mean()) if len(voted) else np.nan,
            "human_confusion": human_confusion(voted), "model_confusion": model_confusion(voted),
            "rule": TIE_RULES[TIE_RULE]}


def f1_from_confusion(matrix: pd.DataFrame) -> pd.Series:
    """Per-class F1 from a (possibly fractional) confusion matrix, rows true, columns predicted."""
    m = matrix.reindex(index=list(config.EMOTIONS), columns=list(config.EMOTIONS), fill_value=0).astype(float)
    tp = pd.Series(np.diag(m), index=m.index)
    precision = tp / m.sum(axis=0).replace(0, np.nan)
    recall = tp / m.sum(axis=1).replace(0, np.nan)
    return (2 * precision * recall / (precision + recall)).fillna(0.0).rename("F1")


def baseline_table(baseline: Mapping[str, Any]) -> pd.DataFrame:
    """Listeners (every tie rule) and the model: accuracy on the same test clips."""
    human = baseline["human"]
    rows = [{"who": f"listeners, voice only ({rule})", "accuracy": human[rule], "rule": TIE_RULES[rule]}
            for rule in TIE_RULES]
    rows.append({"who": "model", "accuracy": baseline["model_accuracy"], "rule": "argmax of the model's output"})
    frame = pd.DataFrame(rows)
    frame["clips"] = baseline["n_voted"]
    return frame


def sweep_status(results: pd.DataFrame, expected: int | None = None) -> str:
    """One line: how many runs there are per status, out of how many expected."""
    counts = results["status"].value_counts().to_dict() if len(results) else {}
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs"
    total = f" of {expected} configurations" if expected else ""
    return f"{len(results)} run folder(s){total}: {parts}"


def human_summary(accuracy: Mapping[str, float], label: str = "all clips") -> str:
    """One line: the listeners' accuracy under each tie rule, e.g. for all 7,442 clips."""
    rules = ", ".join(f"{accuracy[rule]:.1%} ({rule})" for rule in TIE_RULES)
    return f"listeners, voice only, on {label} ({accuracy['n']:,} clips): {rules}"
