"""Where a model fails: accuracy by intensity, sex and actor, the random-vs-speaker split gap,
runs that cannot be told apart from the best, repetitions over seeds, and the model beside the
listeners on real CREMA-D.

Every accuracy comes with a 95% interval (Wilson for one proportion, a t-interval across seeds),
because the groups are small: a single actor has about 25 test clips, so a 10-point difference
between two actors means little on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ser_utils import analysis, config, runs, stats
from ser_utils.data import dataset

#: Listener agreement with the intended emotion, from the voice-only majority vote.
AGREEMENT_LEVELS = ("listeners agree", "tie incl. intended", "listeners disagree")


# ----------------------------------------------------------------- per clip
def clip_attributes(paths: pd.Series, root: str | Path | None = None) -> pd.DataFrame:
    """Per clip, from its CREMA-D name: ``actor, sentence, emotion, intensity`` and, when the
    corpus root has ``VideoDemographics.csv``, ``sex`` and ``age``. Indexed like ``paths``."""
    names = [dataset.parse_name(Path(str(p)).name) for p in paths]
    frame = pd.DataFrame({"actor": [n.actor for n in names], "sentence": [n.sentence for n in names],
                          "emotion": [n.emotion for n in names], "intensity": [n.intensity for n in names]},
                         index=paths.index)
    if root is not None:
        joined = dataset.join_demographics(frame.reset_index(drop=True), Path(root))
        for column in ("sex", "age"):
            if column in joined:
                frame[column] = joined[column].to_numpy()
    return frame


def accuracy_by(predictions: pd.DataFrame, column: str, root: str | Path | None = None) -> pd.DataFrame:
    """Test accuracy of one run per group of ``column`` (``intensity``, ``sex``, ``actor``, ``emotion``,
    ``sentence``): ``n, correct, accuracy, lo, hi`` (Wilson 95%), largest groups first for actors."""
    if "path" not in predictions:
        raise ValueError("predictions.csv has no 'path' column; re-run training to record the clips")
    attrs = clip_attributes(predictions["path"], root)
    if column not in attrs:
        raise ValueError(f"no {column!r} for these clips (sex and age need VideoDemographics.csv at the corpus root)")
    correct = (predictions["true"] == predictions["predicted"]).astype(int)
    grouped = correct.groupby(attrs[column].to_numpy())
    table = pd.DataFrame({"n": grouped.size(), "correct": grouped.sum()})
    table["accuracy"] = table["correct"] / table["n"]
    table["lo"], table["hi"] = stats.wilson_interval(table["correct"].to_numpy(), table["n"].to_numpy())
    table.index.name = column
    if column == "intensity":
        table = table.reindex([lvl for lvl in config.LEVELS if lvl in table.index])
    return table


# -------------------------------------------------------------- across runs
def split_gap(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, the best accuracy on the random split beside the best on the speaker-independent
    split and the gap (random - speaker, points) with its 95% Newcombe interval (``gap_lo``,
    ``gap_hi``) and the two-proportion test (``p``): the two splits test different clips, so the
    comparison is of independent proportions (needs ``n_test`` in the results); ``not run``
    where a split has no finished run. One run per split: seed noise not included."""
    done = runs.finished(results)
    rows = []
    for model in dict.fromkeys([*config.MODELS, *done.get("model", pd.Series(dtype=str))]):
        best = {}
        for split in config.SPLITS:
            part = done[(done["model"] == model) & (done["split"] == split)] if len(done) else done
            best[split] = part.loc[part["accuracy"].idxmax()] if len(part) else None
        row = {"model": model}
        for split, run in best.items():
            row[f"{split}_run"] = None if run is None else run["run_id"]
            row[f"{split}_accuracy"] = np.nan if run is None else float(run["accuracy"])
        both = all(run is not None for run in best.values())
        row["gap_points"] = (row["random_accuracy"] - row["speaker_accuracy"]) * 100 if both else np.nan
        sizes = [pd.to_numeric(run.get("n_test"), errors="coerce") if run is not None else np.nan
                 for run in best.values()]
        row.update(gap_lo=np.nan, gap_hi=np.nan, p=np.nan)
        if both and all(pd.notna(n) and n > 0 for n in sizes):
            # different test clips (the speaker split holds out whole actors): independent proportions
            (n1, n2), (a1, a2) = (int(n) for n in sizes), (row["random_accuracy"], row["speaker_accuracy"])
            k1, k2 = round(a1 * n1), round(a2 * n2)
            gap = stats.newcombe_interval(k1, n1, k2, n2)
            row.update(gap_lo=100 * gap.lo, gap_hi=100 * gap.hi, p=stats.two_proportion_pvalue(k1, n1, k2, n2))
        row["status"] = "measured" if both else "not run"
        rows.append(row)
    return pd.DataFrame(rows)


def seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Repetitions: per configuration (model, activation, lr, epochs, split, split seed), the mean
    and standard deviation of the test accuracy across training seeds with a t-interval, beside the
    mean single-run bootstrap interval (test-set noise) so the two sources of spread can be compared."""
    done = runs.finished(results)
    keys = [k for k in ("model", "activation", "lr", "epochs", "split", "split_seed") if k in done]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "seeds", "mean", "sd", "lo", "hi", "single_run_halfwidth"])
    rows = []
    for key, group in done.groupby(keys, dropna=False, sort=False):
        t = stats.t_interval(group["accuracy"].astype(float).to_numpy())
        half = ((group.get("accuracy_hi") - group.get("accuracy_lo")) / 2).mean() if "accuracy_hi" in group else np.nan
        rows.append({**dict(zip(keys, key)), "seeds": len(group), "mean": t["mean"], "sd": t["sd"],
                     "lo": t["lo"], "hi": t["hi"], "single_run_halfwidth": half})
    return pd.DataFrame(rows)


def _correctness(run_dir: Path) -> pd.Series | None:
    frame = runs.load_run(run_dir)["predictions"]
    if frame is None or "path" not in frame:
        return None
    return pd.Series((frame["true"] == frame["predicted"]).to_numpy(), index=frame["path"].astype(str))


def tied_with_best(results: pd.DataFrame, runs_dir: str | Path, alpha: float = 0.05) -> pd.DataFrame:
    """Per model and protocol (split method, split seed, epochs), every finished run compared with
    that group's best run on the same test clips: McNemar's exact test, Holm-corrected within the
    group. A speaker-split run is never tested against the random-split best, nor a 1-epoch run
    against a 12-epoch one. ``tied`` marks runs that cannot be told apart from their group's best
    (Figure 7 marks them); one seed each: seed noise not included."""
    done = runs.finished(results)
    rows = []
    keys = [k for k in ("model", "split", "split_seed", "epochs") if k in done]
    for key, group in done.groupby(keys, sort=False, dropna=False):
        model = key[0] if isinstance(key, tuple) else key
        best = group.loc[group["accuracy"].idxmax()]
        best_correct = _correctness(Path(runs_dir) / best["run_id"])
        found = []
        for run in group.itertuples():
            if run.run_id == best["run_id"] or best_correct is None:
                continue
            other = _correctness(Path(runs_dir) / run.run_id)
            common = best_correct.index.intersection(other.index) if other is not None else []
            if len(common) == 0:
                continue
            test = stats.mcnemar_exact(best_correct[common].to_numpy(), other[common].to_numpy())
            found.append({"model": model, "run_id": run.run_id, "best": best["run_id"],
                          "difference_points": (best["accuracy"] - run.accuracy) * 100, "p": test.pvalue})
        if found:
            for row, adjusted in zip(found, stats.holm([r["p"] for r in found])):
                row["p_holm"] = float(adjusted)
                row["tied"] = bool(adjusted >= alpha)
        rows += found
        rows.append({"model": model, "run_id": best["run_id"], "best": best["run_id"], "difference_points": 0.0,
                     "p": np.nan, "p_holm": np.nan, "tied": True})
    return pd.DataFrame(rows, columns=["model", "run_id", "best", "difference_points", "p", "p_holm", "tied"])


# ------------------------------------------------------ people and the model
def listener_agreement(vote: str, intended: str) -> str:
    """How the listeners' voice-only majority relates to the intended emotion (:data:`AGREEMENT_LEVELS`)."""
    tied = str(vote).split(":")
    if intended not in tied:
        return AGREEMENT_LEVELS[2]
    return AGREEMENT_LEVELS[0] if len(tied) == 1 else AGREEMENT_LEVELS[1]


def accuracy_by_listener_agreement(predictions: pd.DataFrame, votes: pd.DataFrame) -> pd.DataFrame:
    """The model's accuracy on clips the listeners recognised, tied on, or got wrong (Wilson 95%)."""
    frame = analysis.human_vs_model(predictions, votes).dropna(subset=["voice_vote"])
    level = [listener_agreement(v, t) for v, t in zip(frame["voice_vote"], frame["true"])]
    correct = (frame["true"] == frame["predicted"]).astype(int).groupby(level)
    table = pd.DataFrame({"n": correct.size(), "correct": correct.sum()}).reindex(list(AGREEMENT_LEVELS)).fillna(0)
    table["accuracy"] = np.where(table["n"] > 0, table["correct"] / table["n"].clip(lower=1), np.nan)
    lo, hi = stats.wilson_interval(table["correct"].astype(int).to_numpy(), table["n"].astype(int).to_numpy())
    table["lo"], table["hi"] = np.where(table["n"] > 0, lo, np.nan), np.where(table["n"] > 0, hi, np.nan)
    table.index.name = "listeners"
    return table


def model_listener_kappa(predictions: pd.DataFrame, votes: pd.DataFrame) -> dict[str, float]:
    """Cohen's kappa between the model's prediction and the listeners' majority vote, on the clips
    with a single (untied) majority: how far the model errs like people do."""
    frame = analysis.human_vs_model(predictions, votes).dropna(subset=["voice_vote"])
    single = frame[~frame["voice_vote"].str.contains(":")]
    if single.empty:
        return {"kappa": np.nan, "n": 0}
    return {"kappa": stats.cohen_kappa(single["predicted"].to_numpy(), single["voice_vote"].to_numpy()),
            "n": int(len(single))}


def sections_not_run(results: pd.DataFrame, synthetic: bool) -> dict[str, str]:
    """One line per analysis section the runs cannot fill (``seeds``, ``speaker``, ``listeners``),
    saying what would make it run; a section that can run is absent."""
    done = runs.finished(results)
    lines = {}
    seeds = done.groupby(["model", "activation", "lr"])["seed"].nunique() if len(done) and "seed" in done else []
    if not len(seeds) or int(max(seeds)) < 2:
        lines["seeds"] = ("Repetitions across seeds: one seed per configuration; run the sweep with "
                          "--seeds 42,43,44 to measure seed-to-seed variance and put it into the verdicts.")
    if not len(done) or "split" not in done or not (done["split"] == "speaker").any():
        lines["speaker"] = "Random vs speaker-independent split: no speaker-split run; run the sweep with --split speaker."
    if synthetic:
        lines["listeners"] = ("People and the model: the listeners' votes exist for real CREMA-D only; point data_dir "
                              "(or $CREMA_D_DIR) at a CREMA-D copy.")
    return lines


def needs_real_crema_d(votes: Mapping | pd.DataFrame | None) -> str | None:
    """The one line notebook 08 shows instead of the people-and-model section on the demo corpus."""
    if votes is None:
        return ("The listeners' votes exist for real CREMA-D only (processedResults/summaryTable.csv in the "
                "CREMA-D repository): point data_dir at a CREMA-D copy to compare the model with people.")
    return None
