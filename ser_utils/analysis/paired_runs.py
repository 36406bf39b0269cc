"""Finished runs lined up clip by clip, so that two configurations are compared on the same test clips.

The claims table (:mod:`ser_utils.analysis.claims`) asks "does A beat B?" many times over one sweep; this
module reads the runs' predictions once, aligns every run evaluated on one test split on their
common clips, draws the bootstrap resamples of each test split once and shares them between all
the runs on it (so intervals of differences are paired), and answers comparisons with the test
of the mean paired difference (:func:`ser_utils.stats.mean_difference_test`: McNemar's exact test
for one pair, the exact sign-flip permutation test for several pairs of one seed, the clip x seed
t-test for several seeds).

It also says whether two runs may be compared at all (:meth:`PairedRuns.differences`: every
result-affecting setting other than the model, activation, learning rate and seed) and whether a
run carries information (:meth:`PairedRuns.uninformative`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config, runs, stats
from ser_utils.analysis import published
from ser_utils.runs import FINISHED_STATUSES

_TRUE_COLUMNS = ("y_true", "true")
_PRED_COLUMNS = ("y_pred", "predicted")
_KEY_COLUMNS = ("file", "path", "index")
#: Settings two compared runs must share: every result-affecting field except those a claim
#: varies (model, activation, learning rate) and the training seed (the replicate), plus the
#: corpus, its clips' fingerprint and the training-set size.
COMPARED_SETTINGS: tuple[str, ...] = tuple(f for f in config.RESULT_FIELDS if f not in ("model", "activation", "lr", "seed")) \
    + ("corpus", "corpus_clips", "n_train")
#: A run predicting one class for at least this share of its test clips is uninformative.
ONE_CLASS_SHARE = 0.9


def load_settings(runs_dir: Any, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``run_id -> the settings its config.json records`` (:func:`ser_utils.runs.recorded_settings`)."""
    from pathlib import Path

    return {r: runs.recorded_settings(Path(runs_dir) / r) for r in run_ids}


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value != ""


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0))
    except (TypeError, ValueError):
        return str(a) == str(b)


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
                 histories: Mapping[str, pd.DataFrame] | None, split: str | None, n_boot: int, seed: int,
                 settings: Mapping[str, Mapping[str, Any]] | None = None):
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
        self.settings = {r: self._settings_of(row, (settings or {}).get(r) or {})
                         for r, row in zip(frame["run_id"], frame.to_dict("records"))}
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

    def runs_of(self, cfg: str) -> list[str]:
        """The runs of a configuration with predictions (one per seed and test split)."""
        return list(self.by_cfg.get(cfg, {}).values())

    def seeds_of(self, run_ids: Sequence[str]) -> list[int]:
        return sorted({int(self.rows.loc[r, "seed"]) for r in run_ids if r in self.rows.index})

    def truth(self, run_id: str) -> np.ndarray:
        return self.y_true[self.clip_set[run_id]]

    def counts(self, clip_set: str) -> np.ndarray:
        """The resamples of one test set, drawn once and shared by every run evaluated on it."""
        if clip_set not in self._counts:
            stream = np.random.SeedSequence([self.boot_seed, self._stream[clip_set]])
            self._counts[clip_set] = stats.resample_counts(self.y_true[clip_set].size, self.n_boot, stream)
        return self._counts[clip_set]

    @staticmethod
    def _settings_of(row: Mapping[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
        """The compared settings of one run: its config.json where given, else its results row."""
        out = {}
        for name in COMPARED_SETTINGS:
            value = recorded.get(name) if _known(recorded.get(name)) else row.get(name)
            if _known(value):
                out[name] = value
        return out

    # -- may these runs be compared, do they say anything
    def differences(self, run_a: str, run_b: str) -> list[str]:
        """Settings in which two runs differ, e.g. ``["epochs 1 vs 12"]`` (a setting one of them does
        not record counts as a difference; one neither records is not compared)."""
        sa, sb = self.settings.get(run_a, {}), self.settings.get(run_b, {})
        diffs = []
        for name in COMPARED_SETTINGS:
            if name not in sa and name not in sb:
                continue
            va, vb = sa.get(name, "not recorded"), sb.get(name, "not recorded")
            if name not in sa or name not in sb or not _same(va, vb):
                diffs.append(f"{name} {va} vs {vb}")
        return diffs

    def uninformative(self, run_id: str) -> str | None:
        """Why a run carries no information about its configuration, or None.

        A run is uninformative when it predicts one class for at least :data:`ONE_CLASS_SHARE`
        of its test clips, or when the 95% Wilson interval of its accuracy contains chance (the
        share of the most frequent true class among its test clips: always answering it scores
        that much).
        """
        pred, truth = self.pred[run_id], self.truth(run_id)
        counts = np.bincount(pred, minlength=len(self.labels))
        top = int(counts.argmax())
        if counts[top] >= ONE_CLASS_SHARE * pred.size:
            return f"{run_id} predicts {self.labels[top]} for {counts[top]} of {pred.size} test clips"
        chance = float(np.bincount(truth, minlength=len(self.labels)).max() / truth.size)
        right = int((pred == truth).sum())
        lo, hi = stats.wilson_interval(right, truth.size)
        if lo <= chance <= hi:
            return (f"{run_id}: accuracy {right / truth.size:.1%} [{lo:.1%}, {hi:.1%}] includes chance "
                    f"({chance:.1%}, the largest class)")
        return None

    # -- comparisons
    def pairs(self, strata: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The run pairs behind a comparison: each stratum's runs matched on (seed, test split)."""
        out = []
        for a, b in strata:
            ra, rb = self.by_cfg.get(a, {}), self.by_cfg.get(b, {})
            out += [(ra[key], rb[key]) for key in sorted(set(ra) & set(rb))]
        return out

    def compare(self, strata: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
        """A beats B in accuracy, pooled over strata (pairs of configurations, e.g. three activations).

        The effect is the mean paired difference in accuracy; on each test split every seed gives
        one row, the per-clip correctness difference averaged over the strata evaluated with it;
        :func:`ser_utils.stats.mean_difference_test` tests that mean and gives its interval
        (seed-to-seed variance included when there are several seeds).
        """
        pairs = self.pairs(strata)
        if not pairs:
            return None
        rows: dict[str, dict[int, list[np.ndarray]]] = {}
        for a, b in pairs:
            diff = (self.pred[a] == self.truth(a)).astype(float) - (self.pred[b] == self.truth(b))
            seed = int(self.rows.loc[a, "seed"])
            rows.setdefault(self.clip_set[a], {}).setdefault(seed, []).append(diff)
        groups = [np.stack([np.mean(rows[c][s], axis=0) for s in sorted(rows[c])]) for c in sorted(rows)]
        test = stats.mean_difference_test(groups)
        seeds = sorted({int(self.rows.loc[a, "seed"]) for a, _ in pairs})
        return {"effect": test.effect, "lo": test.lo, "hi": test.hi, "p": test.pvalue, "test": test.test,
                "n_clips": test.n_clips, "seeds": len(seeds), "seed_list": seeds, "runs": pairs}

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
