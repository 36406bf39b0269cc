"""Results of a sweep as the report's tables, beside the report's own numbers, and the human baseline.

Everything here reads whatever run folders exist (a partial sweep is fine) through
:mod:`ser_utils.runs` (``load_results``, ``load_run``); nothing
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

from ser_utils import config, runs, stats
from ser_utils.analysis import published

#: Columns holding fractions, shown as percentages.
PERCENT_COLUMNS = ("accuracy", "f1", "precision", "recall", "f1_macro", "uar", "report_accuracy", "mean", "sd",
                   "lo", "hi")
#: Columns of the per-configuration tables (Tables 3 and 4 and the combined one).
TABLE_COLUMNS = ["run_id", "activation", "lr", "split", "seeds", "accuracy", "sd", "accuracy_ci", "report_accuracy",
                 "difference",
                 "report_inside_ci", "f1", "f1_ci", "precision", "recall", "uar", "uar_ci", "best_epoch", "epochs_run",
                 "status"]

#: How a tied majority vote (``NEU:SAD``) scores against the intended emotion.
TIE_RULES = {
    "split": "a k-way tie that contains the intended emotion scores 1/k (a random tie-break, in expectation)",
    "strict": "a tie counts as wrong (on all 7,442 clips we compute 41.6% this way from the released majority votes; Cao et al. 2014 publish 40.9% voice-only, counted their own way)",
    "lenient": "a tie counts as correct when it contains the intended emotion (an upper bound)",
}
#: The rule used for the headline human accuracy and the human confusion matrix.
TIE_RULE = "split"


# ----------------------------------------------------------------------- results
def is_synthetic(results: pd.DataFrame, default: bool = False) -> bool:
    """True when any run was trained on the synthetic demo corpus; ``default`` when no run says.

    The runs' own ``corpus`` field decides, not the notebook's data folder: runs copied from a
    CREMA-D machine are real even when analysed next to the demo corpus, and vice versa.
    """
    corpora = results["corpus"].dropna() if "corpus" in results else pd.Series(dtype=object)
    return bool((corpora == "synthetic").any()) if len(corpora) else default


def caption(title: str, synthetic: bool) -> str:
    """A table caption, labelled when the numbers come from the synthetic corpus."""
    return f"{title} — {config.SYNTHETIC_LABEL}" if synthetic else title


def banner_html(synthetic: bool) -> str:
    """A visible red banner for the top of a page showing synthetic numbers ("" for CREMA-D)."""
    if not synthetic:
        return ""
    return ("<div class='synthetic-banner' style='border:2px solid #c0392b;background:#fdecea;padding:8px 12px;"
            "color:#c0392b;font-weight:bold;margin:8px 0'>"
            f"{html.escape(config.SYNTHETIC_LABEL[0].upper() + config.SYNTHETIC_LABEL[1:])}: every number on this page comes "
            "from generated speech and says nothing about CREMA-D.</div>")


#: What makes runs repetitions of one configuration (all but the training seed).
SEED_GROUP = ("model", "activation", "lr", "epochs", "split", "split_seed")


def over_seeds(done: pd.DataFrame) -> pd.DataFrame:
    """Finished runs, one row per configuration and protocol: a configuration trained with several
    seeds shows their mean accuracy, standard deviation (``sd``) and 95% t-interval (as
    ``accuracy_lo``/``accuracy_hi``), never its best seed; ``seeds`` counts them. One seed keeps
    the run's own bootstrap interval. The other metrics are averaged (their intervals dropped)."""
    keys = [k for k in SEED_GROUP if k in done]
    if done.empty:
        return done.assign(seeds=pd.Series(dtype=float), sd=pd.Series(dtype=float))
    rows = []
    for _, group in done.groupby(keys, dropna=False, sort=False):
        row = group.iloc[0].to_dict()
        row.update(seeds=len(group), sd=np.nan)
        if len(group) > 1:
            t = stats.t_interval(pd.to_numeric(group["accuracy"], errors="coerce"))
            row.update(run_id=f"{row['run_id']} (+{len(group) - 1} seeds)", accuracy=t["mean"], sd=t["sd"],
                       accuracy_lo=t["lo"], accuracy_hi=t["hi"])
            for metric in ("f1", "precision", "recall", "f1_macro", "uar"):
                if metric in group:
                    row[metric] = pd.to_numeric(group[metric], errors="coerce").mean()
            row.update({f"{m}_{end}": np.nan for m in ("f1", "uar") for end in ("lo", "hi")})
        rows.append(row)
    return pd.DataFrame(rows)


def _report_accuracy(rows: pd.DataFrame) -> list[float]:
    """The report's published accuracy for each row's own configuration (random split only: the
    report has no speaker-independent numbers); NaN where it published none."""
    split = rows["split"] if "split" in rows else pd.Series("random", index=rows.index)
    return [(published.lookup(m, a, lr) or {}).get("accuracy", np.nan) if pd.isna(sp) or sp == "random"
            else np.nan for m, a, lr, sp in zip(rows["model"], rows["activation"], rows["lr"], split)]


def best_per_model(results: pd.DataFrame, by: str = "accuracy") -> pd.DataFrame:
    """Table 2: each architecture's best finished configuration per split method (splits are never
    mixed), seeds as their mean (:func:`over_seeds`), with the report's accuracy of that same
    configuration beside it (NaN where the report published none).

    ``by="accuracy"`` (highest test accuracy, as the report) or ``"best_val_loss"`` (lowest). Runs
    with data augmentation (``augment`` other than none) are not the report's protocol: left out.
    """
    done = runs.finished(results)
    if "augment" in done:
        done = done[done["augment"].fillna("none") == "none"]
    columns = ["model", *TABLE_COLUMNS]
    if done.empty:
        return pd.DataFrame(columns=columns)
    ascending = by == "best_val_loss"
    if by not in done:
        raise ValueError(f"by={by!r}: not a results column; use 'accuracy' or 'best_val_loss'")
    done = over_seeds(done)
    groups = [k for k in ("model", "split") if k in done]
    best = done.sort_values(by, ascending=ascending, kind="stable").groupby(groups, sort=False, dropna=False).head(1)
    best = with_intervals(best.assign(report_accuracy=_report_accuracy(best)))
    order = {m: i for i, m in enumerate(config.MODELS)}
    best = best.sort_values(groups, key=lambda s: s.map(lambda m: order.get(m, len(order))) if s.name == "model" else s,
                            kind="stable")
    return best.reindex(columns=columns).reset_index(drop=True)


def with_intervals(rows: pd.DataFrame) -> pd.DataFrame:
    """Add the 95% intervals as text (``accuracy_ci``, ``f1_ci``, ``uar_ci``: ``"57.9-62.0"``), the
    difference from the report (``difference``, points) and whether the report's number lies
    inside our interval (``report_inside_ci``)."""
    rows = rows.copy()
    for metric in ("accuracy", "f1", "uar"):
        lo, hi = rows.get(f"{metric}_lo"), rows.get(f"{metric}_hi")
        rows[f"{metric}_ci"] = ([f"{a * 100:.1f}-{b * 100:.1f}" if pd.notna(a) and pd.notna(b) else None
                                 for a, b in zip(lo, hi)] if lo is not None and hi is not None else None)
    report = pd.to_numeric(rows.get("report_accuracy"), errors="coerce")
    rows["difference"] = (pd.to_numeric(rows["accuracy"], errors="coerce") - report) * 100
    lo = pd.to_numeric(rows.get("accuracy_lo", pd.Series(np.nan, index=rows.index)), errors="coerce")
    hi = pd.to_numeric(rows.get("accuracy_hi", pd.Series(np.nan, index=rows.index)), errors="coerce")
    known = report.notna() & lo.notna()
    rows["report_inside_ci"] = [("yes" if a <= r <= b else "no") if k else None
                                for r, a, b, k in zip(report, lo, hi, known)]
    return rows


def configuration_table(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """Tables 3 / 4 / combined: every configuration of one model, one row per configuration and
    split (seeds as mean, sd and t-interval: :func:`over_seeds`; failed and unfinished runs too,
    marked), with the report's published accuracy of the same configuration beside it (none for
    the combined model, nor for the speaker-independent split)."""
    rows = results[results["model"] == model].copy() if not results.empty else results.copy()
    if not rows.empty:
        done = runs.finished(rows)
        other = rows[~rows["run_id"].isin(done["run_id"])]
        rows = runs.sort_runs(pd.concat([over_seeds(done), other], ignore_index=True))
        rows = with_intervals(rows.assign(report_accuracy=_report_accuracy(rows)))
    return rows.reindex(columns=TABLE_COLUMNS).reset_index(drop=True)


def training_setup(cfg: config.TrainConfig, warmup_steps: int, steps_per_epoch: int) -> pd.DataFrame:
    """The report's Table 1 (training setup) beside the values ``cfg`` trains with (notebook 07).

    ``warmup_steps`` and ``steps_per_epoch`` are the run's (``training.schedule_steps``): the
    warm-up row shows the cap at half the run and the first step's factor, 1/(w+1).
    """
    ours = {"optimiser": "Adam", "learning rate": f"{cfg.lr:g}", "epochs": str(cfg.epochs),
            "batch size": str(cfg.batch_size), "weight decay": f"{cfg.weight_decay:g}",
            "warm-up": (f"{warmup_steps / steps_per_epoch:.2f} epochs = {warmup_steps} steps (asked "
                        f"{cfg.warmup_epochs}, capped at half the run), linear from (step + 1) / (w + 1)"),
            "schedule after warm-up": f"cosine to {cfg.final_lr_fraction:.1%} of the rate",
            "dropout (conv blocks / head)": f"{cfg.dropout_conv:g} / {cfg.dropout_head:g}",
            "checkpoint tested": "lowest validation loss"}
    rows = [{"setting": name, "report (Table 1)": report, "this run": ours[name]}
            for name, report in published.TRAINING_SETUP.items()]
    return pd.DataFrame(rows)


def style_table(frame: pd.DataFrame, title: str, synthetic: bool, formats: Mapping[str, Any] | None = None) -> Any:
    """A Styler for reading: percentages, a green gradient on accuracy, the corpus in the caption.

    ``formats`` adds or overrides column formatters (one ``Styler.format`` call: a second call
    would reset the columns it does not name).
    """
    base = {c: "{:.1%}" for c in PERCENT_COLUMNS if c in frame}
    base.update({c: "{:g}" for c in ("lr",) if c in frame})
    base.update({c: "{:.0f}" for c in ("best_epoch", "epochs_run", "epochs", "seeds") if c in frame})
    base.update({c: "{:+.1f}" for c in ("difference", "difference_points", "gap_points", "gap_lo", "gap_hi",
                                         "lo_points", "hi_points") if c in frame})
    base.update({c: "{:.3g}" for c in ("p", "p_holm") if c in frame})
    styler = frame.style.format({**base, **(formats or {})}, na_rep="—")
    if "accuracy" in frame and frame["accuracy"].notna().any():
        styler = styler.background_gradient(subset=["accuracy"], cmap="Greens")
    styler = styler.hide(axis="index").set_caption(html.escape(caption(title, synthetic)))
    return styler.set_table_styles([{"selector": "caption",
                                     "props": [("caption-side", "top"), ("font-weight", "bold"),
                                               ("color", "#c0392b" if synthetic else "inherit")]}])


def top_runs(results: pd.DataFrame, n: int = 3) -> list[str]:
    """The run ids of the ``n`` most accurate finished runs (best first)."""
    done = runs.finished(results)
    return done.sort_values("accuracy", ascending=False, kind="stable")["run_id"].head(n).tolist()


def best_run(results: pd.DataFrame) -> str | None:
    """The run id with the highest test accuracy, or None when nothing finished."""
    ids = top_runs(results, 1)
    return ids[0] if ids else None


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
    return runs.load_tables(runs_dir, run_ids, runs.HISTORY_FILE)


# ------------------------------------------------------------- human baseline
def clip_file(path: str) -> str:
    """``/x/AudioWAV/1001_DFA_ANG_X.wav`` -> ``1001_DFA_ANG_XX`` (the summaryTable.csv key)."""
    from ser_utils.data import dataset

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
    """Listeners (every tie rule) and the model: accuracy on the same test clips, and for each rule
    the model's lead over the listeners (``difference_points``) with its 95% interval and the exact
    paired sign-flip test on those clips (:func:`ser_utils.stats.mean_difference_test`; one model
    run: its seed noise is not included)."""
    human = baseline["human"]
    voted = baseline["clips"].dropna(subset=["voice_vote"])
    model = (voted["true"] == voted["predicted"]).to_numpy(float)
    rows = []
    for rule in TIE_RULES:
        row = {"who": f"listeners, voice only ({rule})", "accuracy": human[rule], "rule": TIE_RULES[rule]}
        if len(voted) > 1:
            people = np.array([vote_score(v, t, rule) for v, t in zip(voted["voice_vote"], voted["true"])])
            test = stats.mean_difference_test([(model - people)[None, :]])
            row.update(difference_points=100 * test.effect, lo_points=100 * test.lo, hi_points=100 * test.hi,
                       p=test.pvalue)
        rows.append(row)
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


# -------------------------------------------------------- alternatives (notebook 09)
def comparison_findings(table: pd.DataFrame, synthetic: bool) -> list[str]:
    """The conclusions of notebook 09, computed from its comparison table (``runs.run_summary`` rows).

    Each sentence states a measured number, so it changes with the table; comparisons between a
    full run and a quick run (few epochs, few clips) are flagged as not comparable.
    """
    rows = table.dropna(subset=["accuracy"]).set_index("label", drop=False)
    if rows.empty:
        return ["No finished run to compare yet."]
    findings = []
    best = rows.loc[rows["accuracy"].idxmax()]
    findings.append(f"Highest test accuracy: **{best['label']}** at {best['accuracy']:.1%}.")
    sized = rows.dropna(subset=["n_params", "n_train"])
    if len(sized):
        per_clip = (sized["n_params"] / sized["n_train"]).sort_values(ascending=False)
        findings.append("Parameters per training clip: " + ", ".join(
            f"{label} {value:,.0f}" for label, value in per_clip.items()) + ".")
    gaps = rows.dropna(subset=["gap_acc"])
    if len(gaps):
        worst = gaps.loc[gaps["gap_acc"].idxmax()]
        findings.append(f"Largest train-validation gap: **{worst['label']}**, training accuracy "
                        f"{worst['train_acc']:.1%} against validation {worst['val_acc']:.1%} "
                        f"({worst['gap_acc'] * 100:+.1f} points) at its best epoch.")
    by_model = {r["model"]: r for _, r in rows.iterrows()}
    for other, what in (("combined-varlen", "variable-length input"), ("combined-mean1d", "mean-pooled 1D features")):
        if other in by_model and "combined" in by_model:
            a, b = by_model[other], by_model["combined"]
            note = "" if a["source"] == b["source"] else " (not comparable: one is a quick run)"
            findings.append(f"{what} against the fixed-size combined model: {a['accuracy']:.1%} vs "
                            f"{b['accuracy']:.1%} ({(a['accuracy'] - b['accuracy']) * 100:+.1f} points){note}.")
    if synthetic:
        findings.append(f"Every number here is from the {config.SYNTHETIC_LABEL}: none says anything about CREMA-D.")
    return findings
