"""Finished runs lined up clip by clip, so that two configurations are compared on the same test clips.

The claims table (:mod:`ser_utils.analysis.claims`) asks "does A beat B?" many times over one sweep; this
module reads the runs' predictions once, aligns every run evaluated on one test split on their
common clips, draws the bootstrap resamples of each test split once and shares them between all
the runs on it (so intervals of differences are paired), and answers comparisons with the exact
McNemar test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config, stats
from ser_utils.analysis import published
from ser_utils.runs import FINISHED_STATUSES

_TRUE_COLUMNS = ("y_true", "true")
_PRED_COLUMNS = ("y_pred", "predicted")
_KEY_COLUMNS = ("file", "path", "index")


def configuration_key(model: str, activation: str, lr: float) -> str:
    """The key of a configuration across seeds and splits, e.g. ``2d-silu-lr0.001``."""
    return published.run_id(model, activation, lr)


def _column(frame: pd.DataFrame, names: Sequence[str], run_id: str, what: str) -> str | None:
    found = next((c for c in names if c in frame.columns), None)
    if found is None and what:
        raise ValueError(f"predictions of {run_id}: no {what} column (looked for {', '.join(names)}; "
                         f"found {', '.join(map(str, frame.columns))}); pass the run's predictions.csv")
    return found


def _clip_key(value: Any) -> str:
    """A clip's key: ``/x/AudioWAV/1001_DFA_ANG_XX.wav`` -> ``1001_DFA_ANG_XX``; an index as text."""
    name = str(value).replace("\\", "/").rpartition("/")[2]
    return name[:-4] if name.lower().endswith(".wav") else name


class PairedRuns:
    """Finished runs by configuration and replicate, the runs of each test set aligned on common clips.

    A replicate is ``(seed, clip set)``. The clip set is the test split a run was evaluated on:
    its ``split`` and ``split_seed`` (the split's own seed) where the results carry one, else its
    training ``seed`` (which drew the split before the two were separated). Runs on one clip set
    are resampled together, so repetitions that share the report's split stay paired.
    """

    def __init__(self, results: pd.DataFrame, predictions: Mapping[str, pd.DataFrame],
                 histories: Mapping[str, pd.DataFrame] | None, split: str | None, n_boot: int, seed: int):
        missing = [c for c in ("run_id", "model", "activation", "lr") if c not in results.columns]
        if missing:
            raise ValueError(f"results frame lacks column(s) {', '.join(missing)}; "
                             "build it with ser_utils.runs.collect_results(runs_dir)")
        frame = results.copy()
        if "status" in frame:
            frame = frame[frame["status"].isin(FINISHED_STATUSES)]
        if split is not None and "split" in frame:
            frame = frame[frame["split"].isna() | (frame["split"] == split)]
        frame["seed"] = self._ints(frame, "seed", pd.Series(config.SEED, index=frame.index))
        frame["clip_set"] = [f"{sp}/{ss}" for sp, ss in zip(
            frame["split"].fillna("random") if "split" in frame else ["random"] * len(frame),
            self._ints(frame, "split_seed", frame["seed"]))]
        frame["cfg"] = [configuration_key(m, a, lr) for m, a, lr in zip(frame["model"], frame["activation"], frame["lr"])]
        self.rows = frame.set_index("run_id", drop=False)
        self.histories = dict(histories or {})
        self.n_boot, self.boot_seed = n_boot, seed
        self.labels = list(config.EMOTIONS)
        # cfg -> {(seed, clip set): run_id}, only runs with predictions
        self.by_cfg: dict[str, dict[tuple[int, str], str]] = {}
        self.clip_set: dict[str, str] = {}
        clips: dict[str, dict[str, pd.DataFrame]] = {}
        for run_id, cfg, run_seed, clip_set in zip(frame["run_id"], frame["cfg"], frame["seed"], frame["clip_set"]):
            if run_id not in predictions or predictions[run_id] is None:
                continue
            replicates = self.by_cfg.setdefault(cfg, {})
            if (run_seed, clip_set) in replicates:
                # the same configuration trained twice (e.g. the sweep's run and one by hand with
                # other epochs): the claims use the first, in the results' grid order
                continue
            replicates[run_seed, clip_set] = run_id
            self.clip_set[run_id] = clip_set
            clips.setdefault(clip_set, {})[run_id] = self._normalise(run_id, predictions[run_id])
        self.y_true: dict[str, np.ndarray] = {}
        self.pred: dict[str, np.ndarray] = {}
        for clip_set, frames in clips.items():
            self._align(clip_set, frames)
        self._stream = {c: i for i, c in enumerate(sorted(clips))}
        self._counts: dict[str, np.ndarray] = {}
        self._acc: dict[str, dict[str, tuple[float, np.ndarray]]] = {}

    @staticmethod
    def _ints(frame: pd.DataFrame, column: str, default: pd.Series) -> pd.Series:
        values = pd.to_numeric(frame[column], errors="coerce") if column in frame else default
        return values.fillna(default).astype(int)

    def _normalise(self, run_id: str, frame: pd.DataFrame) -> pd.DataFrame:
        true = _column(frame, _TRUE_COLUMNS, run_id, "true-emotion")
        pred = _column(frame, _PRED_COLUMNS, run_id, "predicted-emotion")
        key = _column(frame, _KEY_COLUMNS, run_id, "")
        keys = [_clip_key(v) for v in frame[key].tolist()] if key else [str(i) for i in range(len(frame))]
        out = pd.DataFrame({"y_true": frame[true].astype(str).to_numpy(), "y_pred": frame[pred].astype(str).to_numpy()},
                           index=pd.Index(keys, dtype=object))
        bad = sorted(set(np.unique(out.to_numpy()).tolist()) - set(self.labels))
        if bad:
            raise ValueError(f"predictions of {run_id}: labels {bad} are not emotion codes "
                             f"({', '.join(self.labels)})")
        if out.index.has_duplicates:
            raise ValueError(f"predictions of {run_id}: clip {out.index[out.index.duplicated()][0]!r} appears twice")
        return out

    def _align(self, clip_set: str, frames: dict[str, pd.DataFrame]) -> None:
        common = None
        for frame in frames.values():
            common = frame.index if common is None else common.intersection(frame.index, sort=False)
        common = common.sort_values()
        if len(common) == 0:
            raise ValueError(f"split {clip_set}: the runs {', '.join(frames)} share no test clip; "
                             "were they evaluated on different splits?")
        lookup = {e: i for i, e in enumerate(self.labels)}
        first_id, first = next(iter(frames.items()))
        y_true = first.loc[common, "y_true"].to_numpy()
        for run_id, frame in frames.items():
            aligned = frame.loc[common]
            clash = np.flatnonzero(aligned["y_true"].to_numpy() != y_true)
            if clash.size:
                raise ValueError(f"runs {first_id} and {run_id} (split {clip_set}) disagree on the true emotion of "
                                 f"clip {common[clash[0]]!r}; are they from different corpora or splits?")
            self.pred[run_id] = aligned["y_pred"].map(lookup).to_numpy(np.int64)
        self.y_true[clip_set] = pd.Series(y_true).map(lookup).to_numpy(np.int64)

    # -- access
    def has(self, cfg: str) -> bool:
        return bool(self.by_cfg.get(cfg))

    def configs(self, model: str | None = None) -> list[str]:
        models = dict(zip(self.rows["cfg"], self.rows["model"]))
        return [c for c in self.by_cfg if model is None or models.get(c) == model]

    def truth(self, run_id: str) -> np.ndarray:
        return self.y_true[self.clip_set[run_id]]

    def counts(self, clip_set: str) -> np.ndarray:
        """The resamples of one test set, drawn once and shared by every run evaluated on it."""
        if clip_set not in self._counts:
            stream = np.random.SeedSequence([self.boot_seed, self._stream[clip_set]])
            self._counts[clip_set] = stats.resample_counts(self.y_true[clip_set].size, self.n_boot, stream)
        return self._counts[clip_set]

    def accuracy_replicates(self, clip_set: str) -> dict[str, tuple[float, np.ndarray]]:
        """``run_id -> (accuracy, replicates)`` for every run on a test set: one product over its resamples."""
        if clip_set not in self._acc:
            ids = [r for r, c in self.clip_set.items() if c == clip_set]
            preds = np.stack([self.pred[r] for r in ids])
            reps = stats.replicate_accuracies(self.y_true[clip_set], preds, self.counts(clip_set))
            acc = (preds == self.y_true[clip_set][None, :]).mean(axis=1)
            self._acc[clip_set] = {r: (float(a), rep) for r, a, rep in zip(ids, acc, reps)}
        return self._acc[clip_set]

    # -- comparisons
    def compare(self, strata: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
        """A beats B in accuracy, pooled over strata (pairs of configurations) and their shared replicates.

        The estimate is the mean of the paired differences; its interval is the paired bootstrap
        (as :func:`ser_utils.stats.paired_bootstrap`, one set of resamples per test set); the
        p-value is the exact McNemar test, each clip counted once with its correctness difference
        averaged over the pairs evaluated on it (as :func:`ser_utils.stats.mcnemar_exact` with
        runs x clips arrays), the clips of different test sets pooled.
        """
        pairs = []
        for a, b in strata:
            ra, rb = self.by_cfg.get(a, {}), self.by_cfg.get(b, {})
            pairs += [(ra[key], rb[key]) for key in sorted(set(ra) & set(rb))]
        if not pairs:
            return None
        tables = {c: self.accuracy_replicates(c) for c in sorted({self.clip_set[a] for a, _ in pairs})}
        got = [(tables[self.clip_set[a]][a], tables[self.clip_set[b]][b]) for a, b in pairs]
        lo, hi = stats.percentile_interval(np.mean([ra[1] - rb[1] for ra, rb in got], axis=0))
        # each clip counts once: its correctness difference averaged over the pairs on its test set
        per_clip = [np.mean([(self.pred[a] == self.truth(a)).astype(float) - (self.pred[b] == self.truth(b))
                             for a, b in pairs if self.clip_set[a] == clip_set], axis=0) for clip_set in tables]
        test = stats.sign_test(np.concatenate(per_clip))
        seeds = {key for a, b in strata for key in set(self.by_cfg.get(a, {})) & set(self.by_cfg.get(b, {}))}
        return {"effect": float(np.mean([ra[0] - rb[0] for ra, rb in got])), "lo": float(lo), "hi": float(hi),
                "p": test.pvalue, "test": "McNemar exact", "n_clips": int(sum(self.y_true[c].size for c in tables)),
                "seeds": len(seeds)}

    def confusions(self, cfg: str) -> tuple[np.ndarray, np.ndarray, int, int] | None:
        """Confusion summed over a configuration's replicates, its bootstrap replicates ``(n_boot, K, K)``
        (runs on one split resampled together), the number of replicates and of distinct clips."""
        runs = list(self.by_cfg.get(cfg, {}).values())
        if not runs:
            return None
        k = len(self.labels)
        full = sum(stats.confusion(self.truth(r), self.pred[r], range(k)) for r in runs)
        boot = sum(stats.bootstrap_confusions(self.truth(r), self.pred[r], labels=range(k),
                                              counts=self.counts(self.clip_set[r])) for r in runs)
        clips = sum(self.y_true[c].size for c in {self.clip_set[r] for r in runs})
        return full, boot, len(runs), int(clips)
