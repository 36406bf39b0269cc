"""The training-data container: features, labels and split as arrays, and their standardisation.

Why a container of arrays rather than a Dataset/DataLoader: the whole CREMA-D feature set fits in
memory (7,442 x 27 x 301 + 7,442 x 64 x 64 floats, ~360 MB), so a run moves it to the device once
and batches by index slicing (:mod:`ser_utils.training.batching`); no per-clip Python in the hot loop.

Standardisation (1D features per feature row, with training-split statistics only) is owned here:
training applies it inside the run, never in the feature cache, and the statistics travel into
the checkpoint so :mod:`ser_utils.training.checkpoint` applies exactly the same scaling to new recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config
from ser_utils.features.definitions import stats_1d
from ser_utils.models import LENGTH_OF

SPLIT_NAMES = ("train", "val", "test")
#: Inputs standardised with training-split statistics (TrainingData.standardize).
STANDARDIZED_INPUTS = ("x1d", "x1d_var", "x1d_avg")
#: TrainingData fields with one row per clip (sliced together by TrainingData.take).
ROW_FIELDS = ("x1d", "x2d", "y", "split", "ids", "x1d_var", "len1d", "x2d_var", "len2d", "x1d_avg")


@dataclass
class TrainingData:
    """Everything a run needs, as arrays: features, integer labels and the split of every clip.

    ``x1d`` is float32 [N, 27, 301], ``x2d`` float32 [N, 1, 64, 64] (either may be None when the
    model does not read it), ``y`` int [N] indexing ``classes``, ``split`` str [N] in
    train/val/test. ``ids`` (e.g. the clip paths) label predictions.csv. ``split_method``
    ("random"/"speaker") is checked against ``TrainConfig.split`` so a run folder's name never
    lies about its split. ``x1d_mean``/``x1d_std`` are set once x1d has been standardised.

    Inputs of the alternative models (notebook 09), built on demand by :meth:`with_inputs`:
    ``x1d_var`` float32 [N, 27, T'max] and ``x2d_var`` [N, 1, 64, Tmax], the un-cropped frames
    and the un-resized log-mel zero-padded to the longest clip, with ``len1d``/``len2d`` int [N]
    the valid frames per clip; ``x1d_avg`` [N, 27] the per-row mean over each clip's valid
    frames. ``input_stats`` holds their standardisation (name -> (mean, std)). ``features`` is
    the FeatureSet they are read from (``from_features`` sets it) and ``feature_rows`` maps each
    row to its FeatureSet row (None: the same row).
    """

    x1d: np.ndarray | None
    x2d: np.ndarray | None
    y: np.ndarray
    split: np.ndarray
    classes: tuple[str, ...] = config.EMOTIONS
    corpus: str = "unknown"
    corpus_clips: str | None = None  # dataset.corpus_fingerprint of the scanned corpus (from_features sets it)
    split_method: str | None = None
    ids: np.ndarray | None = None
    x1d_mean: np.ndarray | None = None
    x1d_std: np.ndarray | None = None
    x1d_var: np.ndarray | None = None
    len1d: np.ndarray | None = None
    x2d_var: np.ndarray | None = None
    len2d: np.ndarray | None = None
    x1d_avg: np.ndarray | None = None
    input_stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    features: Any = field(default=None, repr=False)
    feature_rows: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64)
        self.split = np.asarray(self.split).astype(str)
        n = len(self.y)
        for name in ROW_FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"TrainingData.{name} has {len(value)} rows, y has {n}")
        for var, length in LENGTH_OF.items():
            if (getattr(self, var) is None) != (getattr(self, length) is None):
                raise ValueError(f"TrainingData.{var} and .{length} go together: pass both or neither")
            if getattr(self, length) is not None:
                setattr(self, length, np.asarray(getattr(self, length), dtype=np.int64))
        unknown = sorted(set(self.split) - set(SPLIT_NAMES))
        if unknown:
            raise ValueError(f"split values must be train/val/test, got {unknown}")
        self.classes = tuple(self.classes)

    @property
    def standardized(self) -> bool:
        return self.x1d_mean is not None

    @classmethod
    def from_manifest(cls, manifest: pd.DataFrame, x1d: np.ndarray | None, x2d: np.ndarray | None,
                      classes: tuple[str, ...] = config.EMOTIONS, split_method: str | None = None) -> "TrainingData":
        """From a manifest with ``emotion`` and ``split`` columns, row-aligned with the arrays."""
        missing = {"emotion", "split"} - set(manifest.columns)
        if missing:
            raise ValueError(f"manifest lacks column(s) {sorted(missing)}")
        lookup = {c: i for i, c in enumerate(classes)}
        bad = sorted(set(manifest["emotion"]) - set(lookup))
        if bad:
            raise ValueError(f"unknown emotion code(s) {bad}; expected {list(classes)}")
        ids = manifest["path"].astype(str).to_numpy() if "path" in manifest else None
        return cls(x1d=x1d, x2d=x2d, y=manifest["emotion"].map(lookup).to_numpy(), split=manifest["split"].to_numpy(),
                   classes=tuple(classes), corpus=_corpus_of(manifest), split_method=split_method, ids=ids)

    @classmethod
    def from_features(cls, fs: Any, split_method: str | None = "random", seed: int = config.SEED) -> "TrainingData":
        """From a ``features.FeatureSet``: split its manifest (``dataset.split``) and label it.

        ``split_method=None`` keeps a ``split`` column the manifest already has.
        """
        from ser_utils.data import dataset  # imported here: the data layer is only needed on this path

        manifest = fs.manifest
        if split_method is not None:
            manifest = dataset.split(manifest, method=split_method, seed=seed)
        data = cls.from_manifest(manifest, fs.x1d, fs.x2d, split_method=split_method)
        skipped_clips = getattr(fs, "skipped", None)  # bad audio: part of the corpus, not of the arrays
        skipped = list(skipped_clips["path"]) if skipped_clips is not None and len(skipped_clips) else []
        data.corpus_clips = dataset.corpus_fingerprint(list(fs.manifest["path"]) + skipped)
        data.features = fs  # the variable-length store, read only when a model asks (with_inputs)
        return data

    def indices(self, name: str) -> np.ndarray:
        """Row indices of one split (``train``, ``val`` or ``test``)."""
        return np.flatnonzero(self.split == name)

    def info(self) -> dict[str, Any]:
        """The description stored in config.json and metrics.json."""
        counts = {f"n_{s}": int((self.split == s).sum()) for s in SPLIT_NAMES}
        info = {"corpus": self.corpus, "corpus_clips": self.corpus_clips, "split_method": self.split_method,
                "classes": list(self.classes), **counts,
                "x1d_shape": None if self.x1d is None else list(self.x1d.shape[1:]),
                "x2d_shape": None if self.x2d is None else list(self.x2d.shape[1:])}
        for name in ("x1d_var", "x2d_var", "x1d_avg"):  # only when present: the fixed-size record is unchanged
            if getattr(self, name) is not None:
                info[f"{name}_shape"] = list(getattr(self, name).shape[1:])
        return info

    def summary(self) -> pd.DataFrame:
        """Clips per split (rows) and class (columns, plus ``total``), titled with the corpus."""
        frame = pd.crosstab(pd.Categorical(self.split, categories=SPLIT_NAMES),
                            pd.Categorical(np.array(self.classes)[self.y], categories=self.classes), dropna=False)
        frame["total"] = frame.sum(axis=1)
        frame.index.name, frame.columns.name = f"split ({self.corpus})", None
        return frame

    def standardize(self) -> "TrainingData":
        """A copy with x1d standardised per feature row, with training-split statistics only.

        Each of the 27 rows (ZCR, chroma, MFCC, RMS) has its own scale; mean and standard
        deviation are taken over the training clips and all their frames
        (``features.stats_1d``, as ``features.standardize_1d``), so no validation or test
        information leaks into the inputs. The statistics travel with the copy (and into
        best.pt) so a checkpoint can be applied to new clips. Idempotent. The alternatives'
        inputs (``x1d_var``, ``x1d_avg``) are standardised too (:meth:`standardize_inputs`).
        """
        if self.x1d is None or self.standardized:
            return self.standardize_inputs()
        mean, std = stats_1d(self.x1d, self.split == "train")
        x1d = ((self.x1d - mean[None, :, None]) / std[None, :, None]).astype(np.float32)
        return replace(self, x1d=x1d, x1d_mean=mean, x1d_std=std).standardize_inputs()

    def standardize_inputs(self, stats: dict[str, tuple[Any, Any]] | None = None) -> "TrainingData":
        """A copy with ``x1d_var`` and ``x1d_avg`` standardised; ``self`` when there is nothing to do.

        ``x1d_var``: per feature row, over the valid frames of the training clips (the padding
        stays zero); ``x1d_avg``: per feature, over the training clips (the means vary less than
        the frames, so they get their own scale). ``stats`` (name -> (mean, std)) applies given
        statistics instead, e.g. a checkpoint's. Each input is standardised once (input_stats).
        """
        done = dict(self.input_stats or {})
        train = self.split == "train"
        updates: dict[str, Any] = {}
        if self.x1d_var is not None and "x1d_var" not in done:
            mean, std = (stats or {}).get("x1d_var") or masked_channel_stats(self.x1d_var, self.len1d, train)
            mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
            valid = (np.arange(self.x1d_var.shape[2])[None, :] < self.len1d[:, None])[:, None, :]
            scaled = (self.x1d_var - mean[None, :, None]) / std[None, :, None]
            updates["x1d_var"] = (scaled * valid).astype(np.float32)
            done["x1d_var"] = (mean, std)
        if self.x1d_avg is not None and "x1d_avg" not in done:
            if (stats or {}).get("x1d_avg") is not None:
                mean, std = (np.asarray(v, np.float32) for v in stats["x1d_avg"])
            else:
                if not train.any():
                    raise ValueError("no training clips to compute the standardisation statistics from")
                rows = np.asarray(self.x1d_avg[train], dtype=np.float64)
                mean, std = rows.mean(axis=0).astype(np.float32), np.maximum(rows.std(axis=0), 1e-8).astype(np.float32)
            updates["x1d_avg"] = ((self.x1d_avg - mean) / std).astype(np.float32)
            done["x1d_avg"] = (mean, std)
        return replace(self, **updates, input_stats=done) if updates else self

    # ------------------------------------------------------- the alternatives' inputs (notebook 09)
    def with_inputs(self, names: Sequence[str]) -> "TrainingData":
        """A copy holding every input ``names`` lists, built when missing; ``self`` when none is.

        ``x1d_var``/``len1d`` and ``x2d_var``/``len2d`` come from the FeatureSet's variable-length
        store (``var_batch``), zero-padded to the longest clip: for CREMA-D about 1 GB in float32,
        which the fixed-size models never build. ``x1d_avg`` is the per-row mean of each clip's
        *valid* frames (from the raw ``x1d_var``, else the FeatureSet), computed before
        standardisation, which then scales it (:meth:`standardize_inputs`); without either it
        falls back to the mean over the 301 fixed frames of ``x1d``.
        """
        updates: dict[str, Any] = {}
        for var, length in LENGTH_OF.items():
            if (var in names or length in names) and getattr(self, var) is None:
                updates[var], updates[length] = self._padded(var)
        if "x1d_avg" in names and self.x1d_avg is None:
            updates["x1d_avg"] = self._frame_means(updates.get("x1d_var"), updates.get("len1d"))
        return replace(self, **updates) if updates else self

    def _rows(self) -> np.ndarray:
        """The FeatureSet row of every clip."""
        return np.arange(len(self.y)) if self.feature_rows is None else np.asarray(self.feature_rows)

    def _padded(self, var: str) -> tuple[np.ndarray, np.ndarray]:
        kind = {"x1d_var": "frames", "x2d_var": "mel"}[var]
        if not hasattr(self.features, "var_batch"):
            raise ValueError(f"the model reads {var!r} (variable-length features), but this TrainingData has no "
                             f"FeatureSet to read them from: build it with TrainingData.from_features(feature_set) "
                             f"or pass {var} and {LENGTH_OF[var]}")
        batch, lengths = self.features.var_batch(kind, self._rows())
        return (batch[:, None] if kind == "mel" else batch), lengths

    def _frame_means(self, x1d_var: np.ndarray | None = None, len1d: np.ndarray | None = None) -> np.ndarray:
        """Per-row mean of each clip's valid (raw) 1D frames: float32 [N, 27]."""
        if x1d_var is None and self.x1d_var is not None and "x1d_var" not in (self.input_stats or {}):
            x1d_var, len1d = self.x1d_var, self.len1d  # raw, not yet standardised
        if x1d_var is not None:
            return (x1d_var.sum(axis=2, dtype=np.float64) / np.maximum(len1d, 1)[:, None]).astype(np.float32)
        if hasattr(self.features, "frames_var"):
            return np.stack([self.features.frames_var(int(r)).mean(axis=1) for r in self._rows()]).astype(np.float32)
        if self.x1d is None:
            raise ValueError("x1d_avg needs frames: x1d, x1d_var or a FeatureSet (TrainingData.from_features)")
        x1d = self.x1d
        if self.standardized:  # back to the raw scale, as the other two sources
            x1d = x1d * self.x1d_std[None, :, None] + self.x1d_mean[None, :, None]
        return np.asarray(x1d, dtype=np.float64).mean(axis=2).astype(np.float32)

    def take(self, rows: Sequence[int]) -> "TrainingData":
        """A copy with only the clips ``rows``, in that order (standardisation statistics are kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        sliced = {name: getattr(self, name)[rows] for name in ROW_FIELDS if getattr(self, name) is not None}
        return replace(self, **sliced, feature_rows=self._rows()[rows])

    def limit_train(self, max_train: int | None, seed: int = config.SEED) -> "TrainingData":
        """A copy with at most ``max_train`` training clips (drawn with ``seed``), every validation and
        test clip kept: for quick runs of slow models (notebook 09). ``None``/0 keeps everything."""
        train = self.indices("train")
        if not max_train or len(train) <= max_train:
            return self
        keep = np.random.default_rng(seed).choice(train, size=int(max_train), replace=False)
        return self.take(np.sort(np.concatenate([keep, self.indices("val"), self.indices("test")])))


def masked_channel_stats(x: np.ndarray, lengths: np.ndarray, train_mask: np.ndarray,
                         chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and std (float32 [C]) of padded x [N, C, T] over the training clips' valid frames.

    Accumulated in float64, a chunk of clips at a time (no float64 copy of the whole array);
    the std is floored at 1e-8 as ``features.stats_1d`` does.
    """
    rows = np.flatnonzero(np.asarray(train_mask, dtype=bool))
    if len(rows) == 0:
        raise ValueError("no training clips to compute the standardisation statistics from")
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    count = 0
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        valid = np.arange(x.shape[2])[None, :] < np.asarray(lengths)[part][:, None]
        values = np.asarray(x[part], dtype=np.float64) * valid[:, None, :]
        total += values.sum(axis=(0, 2))
        squares += (values ** 2).sum(axis=(0, 2))
        count += int(valid.sum())
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-8).astype(np.float32)


def _corpus_of(manifest: pd.DataFrame) -> str:
    if "corpus" not in manifest.columns:
        return "unknown"
    values = sorted(set(manifest["corpus"].astype(str)))
    return "+".join(values) if values else "unknown"

