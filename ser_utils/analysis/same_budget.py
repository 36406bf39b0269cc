"""Two models trained at the same budget, compared on the same test clips (notebook 12).

The report's Future Work asks whether attention pooling or a transformer beats its CNNs. Such a
comparison means something only when the two runs differ in the model alone: same activation,
learning rate, epochs, batch size, seed, split, corpus and training clips. This module picks the
runs (the sweep's when both models of a pair have one at the chosen settings, else the notebook's
quick runs of both), refuses pairs that differ in anything else ("not comparable", naming what
differs), and answers the others with the suite's paired test (:class:`PairedRuns`: exact
McNemar on the shared test clips, paired bootstrap interval of the accuracy difference).
It also reads, for a few clips, what a model's attentive pooling weighs over time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config, runs, stats
from ser_utils.analysis.paired_runs import PairedRuns, configuration_key
from ser_utils.models import attentive_pool
from ser_utils.training import checkpoint

#: Settings that may differ between the two runs of a pair: the model, and what only names the run.
VARIED = ("model",)
#: Significance level of the paired test.
ALPHA = 0.05


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"2d-attn:2d,transformer:2d"`` -> ``[("2d-attn", "2d"), ("transformer", "2d")]`` (new model first)."""
    pairs = []
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        new, sep, base = item.partition(":")
        if not sep or not new.strip() or not base.strip():
            raise ValueError(f"pair {item!r}: write NEW:BASELINE, e.g. transformer:2d")
        pairs.append((new.strip(), base.strip()))
    return pairs


def pair_models(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Every model of the pairs, once, in order."""
    return list(dict.fromkeys(m for pair in pairs for m in pair))


def sweep_runs(results: pd.DataFrame, runs_dir: str | Path, models: Sequence[str], activation: str,
               lr: float) -> dict[str, Path]:
    """``model -> run folder``: a finished run of each model at ``activation`` and ``lr`` (seed and split
    of the report's protocol first, then grid order); models without one are left out."""
    if results.empty:
        return {}
    found = runs.sort_runs(runs.finished(results))
    found = found[(found["activation"] == activation) & np.isclose(pd.to_numeric(found["lr"]), lr)]
    default = config.TrainConfig()
    protocol = (pd.to_numeric(found["seed"], errors="coerce").fillna(default.seed) == default.seed) & \
               (found["split"].fillna(default.split) == default.split)
    found = pd.concat([found[protocol], found[~protocol]])
    return {m: Path(runs_dir) / found.loc[found["model"] == m, "run_id"].iloc[0]
            for m in models if (found["model"] == m).any()}


def models_to_train(pairs: Sequence[tuple[str, str]], found: Mapping[str, Path]) -> list[str]:
    """Models to train quickly: both models of every pair the sweep does not cover completely, so that
    the two runs of a pair always share one budget."""
    return pair_models([p for p in pairs if not all(m in found for m in p)])


def choose_runs(pairs: Sequence[tuple[str, str]], found: Mapping[str, Path],
                quick: Mapping[str, Path]) -> list[tuple[Path, Path, str]]:
    """``(new run, baseline run, source)`` per pair: the sweep's runs when both exist, else both quick runs."""
    chosen = []
    for new, base in pairs:
        source = found if new in found and base in found else quick
        chosen.append((Path(source[new]), Path(source[base]), "sweep" if source is found else "quick"))
    return chosen


def budget_differences(run_a: str | Path, run_b: str | Path) -> list[str]:
    """What differs between two runs besides the model: result-affecting settings, corpus, training clips."""
    a = runs.recorded_settings(run_a)
    requested = {key: a.get(key) for key in config.RESULT_FIELDS if key not in VARIED}
    diffs = runs.differences(run_b, requested, corpus=a.get("corpus"), corpus_clips=a.get("corpus_clips"))
    n_a = (runs.load_run(run_a)["metrics"] or {}).get("n_train")
    n_b = (runs.load_run(run_b)["metrics"] or {}).get("n_train")
    if n_a != n_b:
        diffs.append(f"training clips {n_b} -> {n_a}")
    return diffs


def paired_comparison(run_a: str | Path, run_b: str | Path, n_boot: int = stats.N_BOOT,
                      seed: int = stats.SEED, alpha: float = ALPHA) -> dict[str, Any]:
    """Run A against run B on their common test clips: accuracies, the difference A - B with its paired
    bootstrap interval, the exact McNemar p-value and a verdict (``A better``, ``B better``,
    ``not significant`` or ``not comparable: ...``)."""
    run_a, run_b = Path(run_a), Path(run_b)
    a, b = runs.load_run(run_a), runs.load_run(run_b)
    row: dict[str, Any] = {"new": run_a.name, "baseline": run_b.name, "new_dir": str(run_a), "baseline_dir": str(run_b),
                           "accuracy_new": (a["metrics"] or {}).get("accuracy", np.nan),
                           "accuracy_baseline": (b["metrics"] or {}).get("accuracy", np.nan)}
    nan = {"difference": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n_clips": 0}
    if a["predictions"] is None or b["predictions"] is None:
        return {**row, **nan, "verdict": "not comparable: a run has no predictions.csv (not finished)"}
    diffs = budget_differences(run_a, run_b)
    if diffs:
        return {**row, **nan, "verdict": "not comparable: " + "; ".join(diffs)}
    frame = pd.DataFrame([{**(r["metrics"] or {}), **(r["config"] or {}), "run_id": r["run_id"],
                           "status": (r["metrics"] or {}).get("status")} for r in (a, b)])
    paired = PairedRuns(frame, {a["run_id"]: a["predictions"], b["run_id"]: b["predictions"]}, None, None, n_boot, seed)
    keys = [configuration_key(m, act, lr) for m, act, lr in zip(frame["model"], frame["activation"], frame["lr"])]
    result = paired.compare([(keys[0], keys[1])])
    if result is None:
        return {**row, **nan, "verdict": "not comparable: the runs were tested on different clips"}
    verdict = "not significant"
    if result["p"] < alpha:
        verdict = f"{run_a.name} better" if result["effect"] > 0 else f"{run_b.name} better"
    return {**row, "difference": result["effect"], "lo": result["lo"], "hi": result["hi"], "p": result["p"],
            "n_clips": result["n_clips"], "verdict": verdict}


def comparison_table(chosen: Sequence[tuple[Path, Path, str]], n_boot: int = stats.N_BOOT,
                     seed: int = stats.SEED) -> pd.DataFrame:
    """One row per pair (:func:`paired_comparison`), with the runs' source (sweep or quick)."""
    rows = [{**paired_comparison(a, b, n_boot, seed), "source": source} for a, b, source in chosen]
    return pd.DataFrame(rows)


def findings(table: pd.DataFrame, synthetic: bool) -> list[str]:
    """The comparison in sentences, computed from ``table`` (:func:`comparison_table`)."""
    lines = []
    for row in table.itertuples():
        head = f"**{row.new}** against **{row.baseline}** ({row.source} runs)"
        if str(row.verdict).startswith("not comparable"):
            lines.append(f"{head}: {row.verdict}, so no test is made.")
            continue
        lines.append(f"{head}: test accuracy {row.accuracy_new:.1%} against {row.accuracy_baseline:.1%} on "
                     f"{row.n_clips} shared test clips, a difference of {100 * row.difference:+.1f} points "
                     f"(95% paired bootstrap interval {100 * row.lo:+.1f} to {100 * row.hi:+.1f}), exact McNemar "
                     f"p = {row.p:.3g}: **{row.verdict}**.")
    if (table["source"] == "quick").any():
        lines.append("Quick runs (few epochs on few clips) only show that the models train; their differences say "
                     "nothing about the full protocol.")
    if synthetic:
        lines.append(f"All of this is measured on the {config.SYNTHETIC_LABEL}.")
    return lines


# ---------------------------------------------------------------- what the attention looks at
def attention_over_clips(model: Any, data: Any, rows: Sequence[int]) -> list[dict[str, Any]]:
    """For each clip ``rows[i]`` of a TrainingData, the weights ``model``'s attentive pooling gives its
    time steps, the seconds each step covers, the predicted emotion, the clip's duration after
    preprocessing (when the FeatureSet records it) and the share of the weight on steps that start
    past the clip's end (the 3 s input's padding, for ``1d-attn``).

    Each clip goes through :func:`ser_utils.training.checkpoint.predict` alone (the model's own
    standardisation, no padding), then the pooling's recorded weights are read. Seconds per step:
    the transformer's tokens are 4 log-mel frames; ``2d-attn``'s 4 steps share the clip (its image
    squeezes the whole clip to 64 columns); ``1d-attn``'s 37 steps are 8 of the 3.01 s input's frames.
    """
    pool = attentive_pool(model)
    data = data.with_inputs(model.inputs)
    f1, f2 = config.Feature1DConfig(), config.Feature2DConfig()
    clips = getattr(data.features, "clips", None)
    feature_rows = np.arange(len(data.y)) if data.feature_rows is None else np.asarray(data.feature_rows)
    out = []
    for row in rows:
        probs = checkpoint.predict(model, data, [int(row)], device="cpu")[0]
        weights = pool.last_weights[0].numpy().copy()
        duration = np.nan
        if clips is not None and "duration_out_s" in clips:
            duration = float(clips["duration_out_s"].iloc[feature_rows[row]])
        if "x2d_var" in model.inputs:
            step_s = model.SUBSAMPLING * f2.hop_length / config.SAMPLE_RATE
        elif "x2d" in model.inputs and np.isfinite(duration):
            step_s = duration / len(weights)
        elif "x2d" in model.inputs:
            raise ValueError("the clip durations are needed to place 2d-attn's steps in time: "
                             "build the data with TrainingData.from_features(feature_set)")
        else:
            step_s = (f1.n_frames() // len(weights)) * f1.hop_length / config.SAMPLE_RATE
        starts = np.arange(len(weights)) * step_s
        past_end = float(weights[starts >= duration - 1e-9].sum()) if np.isfinite(duration) else np.nan
        out.append({"row": int(row), "weights": weights, "step_s": step_s, "duration_s": duration,
                    "weight_past_end": past_end,
                    "predicted": list(getattr(model, "classes", config.EMOTIONS))[int(np.argmax(probs))],
                    "true": data.classes[int(data.y[row])]})
    return out


def attention_summary(readings: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per model and clip of :func:`attention_over_clips`: steps, the largest weight against the
    uniform ``1 / steps`` that average pooling gives, and the share of weight past the clip's end."""
    rows = [{"run": run, "clip": r["row"], "true": r["true"], "predicted": r["predicted"], "steps": len(r["weights"]),
             "max weight / uniform": float(np.max(r["weights"]) * len(r["weights"])),
             "clip s": r["duration_s"], "weight past clip end": r["weight_past_end"]}
            for run, found in readings.items() for r in found]
    return pd.DataFrame(rows)


def attention_findings(summary: pd.DataFrame) -> list[str]:
    """What the attention weights do, per run, computed from :func:`attention_summary`."""
    lines = []
    for run, group in summary.groupby("run", sort=False):
        peak = group["max weight / uniform"].mean()
        shape = "nearly flat (close to average pooling)" if peak < 1.5 else f"peaked ({peak:.1f}x the uniform weight)"
        line = f"**{run}**: weights {shape} on average over {len(group)} clip(s)"
        past = group["weight past clip end"].dropna()
        if len(past) and past.max() > 0:
            line += f"; {past.mean():.0%} of the weight on steps past the clip's end (the input's padding)"
        lines.append(line + ".")
    return lines
