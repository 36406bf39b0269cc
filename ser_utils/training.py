"""Train one configuration and write its run folder: the report's protocol, made fast and safe.

:func:`run` trains ``TrainConfig`` on a :class:`TrainingData` and writes
``<out_dir>/<cfg.run_id>/``:

============== ==============================================================================
config.json    the configuration, the data it saw (corpus, split sizes) and the schedule used
history.csv    per epoch: train/val loss and accuracy, learning rate, epoch time
best.pt        the checkpoint with the lowest validation loss (state_dict + config + x1d stats)
predictions.csv one row per test clip: index, path, true, predicted, one probability per class
confusion.csv  rows = true emotion, columns = predicted emotion
metrics.json   written last: status (complete | diverged | failed) and the test metrics
============== ==============================================================================

A folder is *finished* only when metrics.json exists with status complete or diverged; every
file is written to a temporary name and moved into place with ``os.replace``, so a crash never
leaves a half-written file, and a finished run is never overwritten unless ``force=True``.

Speed: the features are moved to the device once as tensors; each epoch draws one permutation
and batches by index slicing (no DataLoader, no per-clip Python); losses and accuracies are
accumulated on the device and read back once per epoch. On CUDA the forward pass runs under
bf16 autocast and 2D inputs use channels_last. On CPU all usable cores are used.

Determinism: on CPU two runs with the same seed give identical histories and metrics (python,
numpy and torch are seeded, the batch order comes from a dedicated generator, and
``torch.use_deterministic_algorithms`` is switched on for the duration of the run). On CUDA
results are *not* bit-reproducible: cuDNN convolution backward passes accumulate with atomics,
``cudnn.benchmark`` may choose different kernels from run to run, and bf16 autocast amplifies the
resulting rounding differences. Expect run-to-run differences of a few tenths of a point there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ser_utils import config
from ser_utils.config import TrainConfig
from ser_utils.models import MODEL_REGISTRY, build_model, count_parameters, get_activation
from ser_utils.models_alt import LENGTH_OF, needs_lengths

STATUS_COMPLETE, STATUS_DIVERGED, STATUS_FAILED = "complete", "diverged", "failed"
#: Statuses that make a run folder finished (never overwritten without force).
FINISHED_STATUSES = (STATUS_COMPLETE, STATUS_DIVERGED)
#: Files :func:`run` owns in a run folder (metrics.json is always written last).
RUN_FILES = ("config.json", "history.csv", "best.pt", "predictions.csv", "confusion.csv", "metrics.json")
SPLIT_NAMES = ("train", "val", "test")

#: An epoch's mean training loss above this many times ln(n_classes) (the loss of a uniform
#: guess, ~1.79 nats for 6 classes) counts as divergence: the logits are then thousands of
#: nats apart. Adam with a huge rate (lr 1e4) blows the loss up to ~1e9 without ever producing
#: inf/NaN because GroupNorm renormalises the exploding activations, so a finite-loss test
#: alone would let such a run burn its whole budget. Transient spikes of healthy runs at
#: lr 0.1 stay in the tens.
DIVERGENCE_LOSS_FACTOR = 1000.0
#: Batch size for evaluation (no gradients, so larger than the training batch).
EVAL_BATCH_SIZE = 512
#: Evaluation batch of variable-length models: their un-resized spectrograms are up to 5x wider.
VARLEN_EVAL_BATCH_SIZE = 128
#: Length-bucketed training batches (variable-length models) are sorted within shuffled chunks
#: of this many batches: little padding, yet every epoch mixes lengths differently.
BUCKET_CHUNK_BATCHES = 20
#: Inputs standardised with training-split statistics (TrainingData.standardize).
STANDARDIZED_INPUTS = ("x1d", "x1d_var", "x1d_avg")
#: TrainingData fields with one row per clip (sliced together by TrainingData.take).
ROW_FIELDS = ("x1d", "x2d", "y", "split", "ids", "x1d_var", "len1d", "x2d_var", "len2d", "x1d_avg")


class RunExistsError(FileExistsError):
    """The run folder already holds a finished run (metrics.json complete/diverged); pass force=True."""


# ============================================================================ data
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
        manifest = fs.manifest
        if split_method is not None:
            from ser_utils import dataset  # imported here: the data layer is only needed on this path

            manifest = dataset.split(manifest, method=split_method, seed=seed)
        data = cls.from_manifest(manifest, fs.x1d, fs.x2d, split_method=split_method)
        data.features = fs  # the variable-length store, read only when a model asks (with_inputs)
        return data

    def indices(self, name: str) -> np.ndarray:
        """Row indices of one split (``train``, ``val`` or ``test``)."""
        return np.flatnonzero(self.split == name)

    def info(self) -> dict[str, Any]:
        """The description stored in config.json and metrics.json."""
        counts = {f"n_{s}": int((self.split == s).sum()) for s in SPLIT_NAMES}
        info = {"corpus": self.corpus, "split_method": self.split_method, "classes": list(self.classes), **counts,
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
        from ser_utils.features import stats_1d  # the one definition, shared with the notebooks

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


# ======================================================================= schedule
def lr_lambda(step: int, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Learning-rate factor at optimiser step ``step`` (0-based): linear warm-up, then cosine.

    Warm-up rises linearly from 1/(warmup_steps+1) (close to 0, but not a wasted zero step)
    to exactly 1.0 at ``step == warmup_steps``; the cosine then decays from 1.0 to exactly
    ``final_fraction`` at the last step (``total_steps - 1``). Steps past the end stay there.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = total_steps - 1 - warmup_steps
    if span <= 0:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / span)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_steps(cfg: TrainConfig, n_train: int) -> dict[str, int]:
    """Steps per epoch, total steps and warm-up steps for a configuration.

    The warm-up is capped at half the run, so a short smoke-test run (say 2 epochs with the
    default 5 warm-up epochs) still reaches the full rate and decays, instead of never leaving
    the warm-up. With the report's 150 epochs the cap never applies.
    """
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total // 2)
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total, "warmup_steps": warmup}


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                   n_train: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over :func:`lr_lambda`, to be stepped once per batch."""
    steps = schedule_steps(cfg, n_train)
    fn = functools.partial(lr_lambda, total_steps=steps["total_steps"], warmup_steps=steps["warmup_steps"],
                           final_fraction=cfg.final_lr_fraction)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


# ================================================================== device, seeds
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when available, else the CPU; otherwise as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    return device


def device_name(device: torch.device) -> str:
    """Human-readable device, e.g. ``NVIDIA H100 80GB HBM3`` or ``cpu (16 threads)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def usable_cpus() -> int:
    """Cores this process may run on (the affinity mask, which os.cpu_count ignores)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_runtime(device: torch.device) -> Iterator[None]:
    """Process-wide torch settings for one run, restored afterwards.

    CPU: all usable cores, deterministic algorithms (warn-only, so an op without a
    deterministic CPU kernel warns rather than fails). CUDA: cuDNN autotuning, which is fast
    but one of the reasons CUDA runs are not bit-reproducible.
    """
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    try:
        if device.type == "cpu":
            torch.set_num_threads(usable_cpus())
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no loss scaling needed with bf16); a no-op on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device_tensors(data: TrainingData, names: tuple[str, ...], device: torch.device) -> dict[str, torch.Tensor]:
    """The model's input arrays as device tensors, once (2D in channels_last on CUDA)."""
    tensors = {}
    for name in names:
        array = getattr(data, name, None)
        if array is None:
            raise ValueError(f"the model reads {name!r} but the TrainingData has no {name}")
        dtype = torch.long if name in LENGTH_OF.values() else torch.float32  # lengths stay integers
        tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=dtype).to(device)
        if tensor.ndim == 4 and device.type == "cuda":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        tensors[name] = tensor
    return tensors


# =================================================================== the hot loop
def batch_inputs(model: nn.Module, tensors: dict[str, torch.Tensor], batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The arguments of ``model.forward`` for the clips ``batch``: one gather per input tensor.

    The single seam between the preloaded tensors and a model, shared by training and
    evaluation, so an architecture with other inputs (variable lengths, ...) extends it here.

    Variable-length models (``needs_lengths``): each padded tensor is cropped to the longest
    clip of the batch, so a batch is padded only as far as it needs (one small host sync).
    """
    if not needs_lengths(model):
        return tuple(tensors[name][batch] for name in model.inputs)
    inputs = {name: tensors[name][batch] for name in model.inputs}
    for var, length in LENGTH_OF.items():
        if var in inputs and length in inputs:
            inputs[var] = inputs[var][..., :max(int(inputs[length].max()), 1)]
    return tuple(inputs[name] for name in model.inputs)


def sort_lengths(model: nn.Module, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """CPU lengths (one per clip) that bucket a variable-length model's batches: the 2D ones when
    it reads them (the costlier trunk), else the 1D ones."""
    names = [length for length in ("len2d", "len1d") if length in model.inputs]
    return tensors[names[0]].cpu()


def length_batches(idx: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                   chunk_batches: int = BUCKET_CHUNK_BATCHES) -> list[torch.Tensor]:
    """Training batches of similar length: shuffle ``idx``, sort each chunk of ``chunk_batches``
    batches by ``lengths[idx]``, cut it into batches, and shuffle the batches.

    Every clip appears once; only the last batch of a chunk can be short. ``lengths`` is indexed
    by clip (CPU). Deterministic for a given generator state (stable sorts).
    """
    order = idx[torch.randperm(len(idx), generator=generator)]
    chunk = batch_size * max(1, chunk_batches)
    batches: list[torch.Tensor] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[torch.argsort(lengths[part], stable=True)]
        batches.extend(part.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _train_batches(model: nn.Module, tensors: dict[str, torch.Tensor], train_idx: torch.Tensor, batch_size: int,
                   generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """The batches of one epoch: slices of one permutation, or length buckets for variable-length models."""
    if needs_lengths(model):
        for batch in length_batches(train_idx, sort_lengths(model, tensors), batch_size, generator):
            yield batch.to(device, non_blocking=True)
        return
    order = train_idx[torch.randperm(len(train_idx), generator=generator)].to(device, non_blocking=True)
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, tensors: dict[str, torch.Tensor],
                y: torch.Tensor, train_idx: torch.Tensor, batch_size: int,
                generator: torch.Generator) -> tuple[float, float]:
    """One pass over the training clips in a fresh random order; returns (mean loss, accuracy).

    ``train_idx`` lives on the CPU (the permutation is drawn there from ``generator`` for
    reproducibility) and is moved to the device once per epoch; batches are slices of it.
    Loss and correct counts accumulate on the device: one host sync per epoch. Variable-length
    models get length-bucketed batches instead (:func:`length_batches`).
    """
    model.train()
    device = y.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    for batch in _train_batches(model, tensors, train_idx, batch_size, generator, device):
        target = y[batch]
        with autocast(device):
            logits = model(*batch_inputs(model, tensors, batch))
        loss = F.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(batch)
        correct += (logits.detach().argmax(1) == target).sum()
    mean_loss, accuracy = (torch.stack([loss_sum, correct]) / len(train_idx)).tolist()
    return mean_loss, accuracy


@torch.inference_mode()
def evaluate(model: nn.Module, tensors: dict[str, torch.Tensor], y: torch.Tensor, idx: torch.Tensor,
             batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float, torch.Tensor]:
    """(mean cross-entropy, accuracy, float32 logits on the CPU) over the clips ``idx``, in eval mode.

    Variable-length models see the clips sorted by length (less padding; the logits are put
    back in ``idx`` order) in batches of at most VARLEN_EVAL_BATCH_SIZE.
    """
    model.eval()
    device = y.device
    order = None
    if needs_lengths(model):
        order = torch.argsort(sort_lengths(model, tensors)[idx.cpu()], stable=True)
        batch_size = min(batch_size, VARLEN_EVAL_BATCH_SIZE)
    idx = idx.to(device)
    run_idx = idx if order is None else idx[order.to(device)]
    chunks = []
    for start in range(0, len(run_idx), batch_size):
        batch = run_idx[start:start + batch_size]
        with autocast(device):
            chunks.append(model(*batch_inputs(model, tensors, batch)).float())
    logits = torch.cat(chunks)
    if order is not None:
        logits = logits[torch.argsort(order).to(device)]
    target = y[idx]
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(1) == target).float().mean()
    loss_value, acc_value = torch.stack([loss, acc]).tolist()
    return loss_value, acc_value, logits.cpu()


def is_diverged(loss: float, n_classes: int) -> bool:
    """Non-finite, or more than DIVERGENCE_LOSS_FACTOR times the loss of a uniform guess."""
    return not math.isfinite(loss) or loss > DIVERGENCE_LOSS_FACTOR * math.log(max(n_classes, 2))


# ======================================================================== metrics
def classification_metrics(y_true: torch.Tensor, probs: torch.Tensor, classes: tuple[str, ...]) -> dict[str, Any]:
    """The report's test metrics (torchmetrics) plus macro F1, UAR and per-class F1.

    accuracy is micro (plain) accuracy; f1/precision/recall are support-weighted, as in the
    report; uar is the unweighted average recall (mean per-class recall), the usual SER metric
    that is not flattered by class imbalance.
    """
    from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score,
                                             MulticlassPrecision, MulticlassRecall)

    k = len(classes)
    y_true = y_true.cpu()
    probs = probs.cpu().float()

    def score(metric: Any) -> torch.Tensor:
        return metric(probs, y_true)

    per_class = score(MulticlassF1Score(num_classes=k, average=None))
    return {
        "accuracy": float(score(MulticlassAccuracy(num_classes=k, average="micro"))),
        "f1": float(score(MulticlassF1Score(num_classes=k, average="weighted"))),
        "precision": float(score(MulticlassPrecision(num_classes=k, average="weighted"))),
        "recall": float(score(MulticlassRecall(num_classes=k, average="weighted"))),
        "f1_macro": float(score(MulticlassF1Score(num_classes=k, average="macro"))),
        "uar": float(score(MulticlassRecall(num_classes=k, average="macro"))),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class)},
        "confusion": score(MulticlassConfusionMatrix(num_classes=k)).numpy(),
    }


def chance_probs(data: TrainingData, n: int) -> torch.Tensor:
    """Class priors of the training split for ``n`` clips: the predictions of a run that learnt nothing."""
    counts = np.bincount(data.y[data.split == "train"], minlength=len(data.classes)).astype(np.float64)
    priors = counts / counts.sum() if counts.sum() else np.full(len(data.classes), 1.0 / len(data.classes))
    return torch.as_tensor(priors, dtype=torch.float32).expand(n, -1).clone()


# ======================================================================= file I/O
def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` and move the result into place; a crash leaves no partial file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> python, so the JSON is strict."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, payload: dict) -> None:
    text = json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def write_csv(path: Path, frame: pd.DataFrame, index: bool = False) -> None:
    _atomic_write(path, lambda tmp: frame.to_csv(tmp, index=index))


def read_status(run_dir: Path) -> str | None:
    """The status recorded in ``run_dir/metrics.json``, or None when absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def is_finished(run_dir: str | Path) -> bool:
    """True when the folder holds a finished run (metrics.json with status complete or diverged)."""
    return read_status(Path(run_dir)) in FINISHED_STATUSES


def _prepare_folder(run_dir: Path, force: bool) -> None:
    """Refuse a finished run unless forced; otherwise clear our files, metrics.json first.

    Only the files :func:`run` writes are removed: the sweep's executed notebook in the same
    folder stays.
    """
    if is_finished(run_dir) and not force:
        raise RunExistsError(f"{run_dir} holds a finished run (status {read_status(run_dir)!r}); "
                             f"pass force=True to train it again")
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", *RUN_FILES):  # metrics.json first: the folder stops counting as finished
        (run_dir / name).unlink(missing_ok=True)


# ============================================================================ run
@dataclass
class FitResult:
    """What the epoch loop hands to the evaluation: history, best weights, outcome."""

    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor] | None
    best_epoch: int
    best_val_loss: float
    status: str
    epoch_times: list[float]
    note: str = ""


def as_training_data(data: Any, cfg: TrainConfig) -> TrainingData:
    """A TrainingData as is; a ``features.FeatureSet`` split by ``cfg.split`` and ``cfg.seed``.

    ``cfg.seed`` seeds both the split and the weights, as in notebook 07 (the default 42 is
    the report's split; another seed gets its own run id, ``...-seedN``).
    """
    if isinstance(data, TrainingData):
        return data
    if all(hasattr(data, name) for name in ("manifest", "x1d", "x2d")):
        return TrainingData.from_features(data, split_method=cfg.split, seed=cfg.seed)
    raise TypeError(f"run() needs a TrainingData or a features.FeatureSet, got {type(data).__name__}")


def _validate(cfg: TrainConfig, data: TrainingData) -> None:
    if cfg.model not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {cfg.model!r}; registered models: {', '.join(MODEL_REGISTRY)}")
    get_activation(cfg.activation)  # raises ValueError listing the valid names
    if data.split_method is not None and data.split_method != cfg.split:
        raise ValueError(f"the data were split with {data.split_method!r} but cfg.split is {cfg.split!r}")
    for name in SPLIT_NAMES:
        if not (data.split == name).any():
            raise ValueError(f"the data have no {name} clips")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")


def _fit(cfg: TrainConfig, model: nn.Module, tensors: dict[str, torch.Tensor], y: torch.Tensor,
         idx: dict[str, torch.Tensor], n_classes: int, progress: bool, wandb_run: Any) -> FitResult:
    """The epoch loop: train, validate, keep the best-validation-loss weights, stop on divergence."""
    from tqdm.auto import tqdm

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, len(idx["train"]))
    generator = torch.Generator().manual_seed(cfg.seed)
    result = FitResult(history=[], best_state=None, best_epoch=0, best_val_loss=math.inf,
                       status=STATUS_COMPLETE, epoch_times=[])
    bar = tqdm(range(1, cfg.epochs + 1), desc=cfg.run_id, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(model, optimizer, scheduler, tensors, y, idx["train"],
                                            cfg.batch_size, generator)
        lr = optimizer.param_groups[0]["lr"]
        val_loss, val_acc = math.nan, math.nan
        if not is_diverged(train_loss, n_classes):
            val_loss, val_acc, _ = evaluate(model, tensors, y, idx["val"])
        result.epoch_times.append(time.perf_counter() - start)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
               "val_acc": val_acc, "lr": lr, "epoch_time_s": result.epoch_times[-1]}
        result.history.append(row)
        if wandb_run is not None:
            wandb_run.log({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if is_diverged(train_loss, n_classes) or not math.isfinite(val_loss):
            result.status = STATUS_DIVERGED
            result.note = f"loss diverged at epoch {epoch} (train {train_loss:.4g}, val {val_loss:.4g})"
            break
        if val_loss < result.best_val_loss:
            result.best_val_loss, result.best_epoch = val_loss, epoch
            result.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", val_loss=f"{val_loss:.3f}",
                        val_acc=f"{val_acc:.3f}", lr=f"{lr:.2e}")
    bar.close()
    return result


def _test_predictions(model: nn.Module, fit: FitResult, data: TrainingData, tensors: dict[str, torch.Tensor],
                      y: torch.Tensor, test_idx: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(test loss, probabilities) of the best checkpoint, or chance-level when there is none."""
    if fit.best_state is None:
        return math.nan, chance_probs(data, len(test_idx))
    model.load_state_dict(fit.best_state)
    loss, _, logits = evaluate(model, tensors, y, test_idx)
    return loss, logits.softmax(dim=1)


def _predictions_frame(data: TrainingData, test_idx: np.ndarray, probs: torch.Tensor) -> pd.DataFrame:
    classes = np.array(data.classes)
    frame = pd.DataFrame({"index": test_idx})
    if data.ids is not None:
        frame["path"] = data.ids[test_idx]
    frame["true"] = classes[data.y[test_idx]]
    frame["predicted"] = classes[probs.argmax(1).numpy()]
    for i, c in enumerate(data.classes):
        frame[f"p_{c}"] = probs[:, i].numpy()
    return frame


def _checkpoint(cfg: TrainConfig, fit: FitResult, data: TrainingData) -> dict[str, Any]:
    def stat(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(a)

    checkpoint = {"state_dict": fit.best_state, "config": cfg.to_dict(), "run_id": cfg.run_id,
                  "classes": list(data.classes), "epoch": fit.best_epoch, "val_loss": fit.best_val_loss,
                  "x1d_mean": stat(data.x1d_mean), "x1d_std": stat(data.x1d_std)}
    if data.input_stats:  # the alternatives' standardisation (x1d_var, x1d_avg)
        checkpoint["input_stats"] = {k: [stat(m), stat(s)] for k, (m, s) in data.input_stats.items()}
    return checkpoint


def _start_wandb(cfg: TrainConfig, run_dir: Path, run_config: dict) -> Any:
    """Start a W&B run (lazily imported; WANDB_MODE=offline works without an account)."""
    try:
        import wandb
    except ImportError as err:
        raise ImportError("cfg.wandb=True needs Weights & Biases, which is not installed: "
                          "pip install 'ser_utils[wandb]' (or pip install wandb)") from err
    project = os.environ.get("WANDB_PROJECT", "ser-crema-d")
    return wandb.init(project=project, name=cfg.run_id, config=_jsonable(run_config), dir=str(run_dir))


def _finish_wandb(wandb_run: Any, metrics: dict | None, failed: bool = False) -> None:
    if wandb_run is None:
        return
    if metrics is not None:
        flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        flat.update({f"f1_{c}": v for c, v in metrics.get("per_class_f1", {}).items()})
        wandb_run.summary.update(_jsonable(flat))
    wandb_run.finish(exit_code=1 if failed else 0)


def _run_config(cfg: TrainConfig, data: TrainingData, device: torch.device) -> dict[str, Any]:
    return {**cfg.to_dict(), "run_id": cfg.run_id, "data": data.info(),
            "schedule": schedule_steps(cfg, int((data.split == "train").sum())),
            "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _train_and_write(cfg: TrainConfig, data: TrainingData, run_dir: Path, device: torch.device,
                     progress: bool, wandb_run: Any) -> dict[str, Any]:
    """Everything between the folder check and metrics.json: train, evaluate, write the files."""
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    model = build_model(cfg.model, n_classes=len(data.classes), activation=cfg.activation,
                        dropout_conv=cfg.dropout_conv, dropout_head=cfg.dropout_head).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    data = data.with_inputs(model.inputs)  # the alternatives' inputs; the same object for the report's models
    if any(name in model.inputs for name in STANDARDIZED_INPUTS):
        data = data.standardize()
    tensors = to_device_tensors(data, model.inputs, device)
    y = torch.as_tensor(data.y).to(device)
    idx = {s: torch.as_tensor(data.indices(s)) for s in SPLIT_NAMES}

    fit = _fit(cfg, model, tensors, y, idx, len(data.classes), progress, wandb_run)
    test_loss, probs = _test_predictions(model, fit, data, tensors, y, idx["test"])
    scores = classification_metrics(torch.as_tensor(data.y[idx["test"].numpy()]), probs, data.classes)

    write_csv(run_dir / "history.csv", pd.DataFrame(fit.history))
    if fit.best_state is not None:
        _atomic_write(run_dir / "best.pt", lambda tmp: torch.save(_checkpoint(cfg, fit, data), tmp))
    confusion = pd.DataFrame(scores.pop("confusion"), index=pd.Index(data.classes, name="true"),
                             columns=list(data.classes))
    write_csv(run_dir / "confusion.csv", confusion, index=True)
    write_csv(run_dir / "predictions.csv", _predictions_frame(data, idx["test"].numpy(), probs))

    info = data.info()
    metrics = {
        "status": fit.status, "run_id": cfg.run_id, "model": cfg.model, "activation": cfg.activation,
        "lr": cfg.lr, "split": cfg.split, "seed": cfg.seed, "epochs": cfg.epochs, **scores,
        "test_loss": test_loss, "best_epoch": fit.best_epoch, "epochs_run": len(fit.history),
        "best_val_loss": fit.best_val_loss, "wall_time_s": time.perf_counter() - t0,
        "time_per_epoch_s": float(np.mean(fit.epoch_times)) if fit.epoch_times else math.nan,
        "n_params": count_parameters(model), "device": str(device), "device_name": device_name(device),
        "corpus": info["corpus"], "n_train": info["n_train"], "n_val": info["n_val"], "n_test": info["n_test"],
        "note": fit.note or None,
    }
    return metrics


def run(cfg: TrainConfig, data: TrainingData | Any, out_dir: str | Path = config.RUNS_DIR, force: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Train one configuration, write ``out_dir/<cfg.run_id>/`` and return its metrics dict.

    ``data`` is a :class:`TrainingData` or a ``features.FeatureSet`` (split here by
    ``cfg.split``, see :func:`as_training_data`). x1d is standardised inside the run with
    training-split statistics (:meth:`TrainingData.standardize`), never in the feature cache.

    Raises :class:`RunExistsError` when that folder holds a finished run and ``force`` is
    False. A diverging run (non-finite or exploding loss) is *not* an error: it stops early
    and is recorded with status ``diverged`` and the test metrics of its best checkpoint
    (chance-level predictions when no epoch finished cleanly). Any other exception writes
    metrics.json with status ``failed`` and the error, then propagates, so the sweep can record
    it and move on; a failed folder is not finished, so the next call retries it.
    """
    data = as_training_data(data, cfg)
    run_dir = Path(out_dir) / cfg.run_id
    _validate(cfg, data)
    device = resolve_device(cfg.device)
    _prepare_folder(run_dir, force)
    wandb_run = None
    with torch_runtime(device):
        run_config = _run_config(cfg, data, device)
        try:
            write_json(run_dir / "config.json", run_config)
            if cfg.wandb:
                wandb_run = _start_wandb(cfg, run_dir, run_config)
            metrics = _train_and_write(cfg, data, run_dir, device, progress, wandb_run)
            write_json(run_dir / "metrics.json", metrics)  # last: marks the folder finished
        except Exception as err:
            _write_failed(run_dir, cfg, err)
            with contextlib.suppress(Exception):
                _finish_wandb(wandb_run, None, failed=True)
            raise
    try:
        _finish_wandb(wandb_run, metrics)
    except Exception as err:  # the run folder is the record; a logging hiccup must not fail the run
        warnings.warn(f"Weights & Biases could not finish the run: {err}", stacklevel=2)
    return _jsonable(metrics)


def _write_failed(run_dir: Path, cfg: TrainConfig, err: BaseException) -> None:
    payload = {"status": STATUS_FAILED, "run_id": cfg.run_id, "model": cfg.model, "activation": cfg.activation,
               "lr": cfg.lr, "split": cfg.split, "seed": cfg.seed, "epochs": cfg.epochs,
               "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    with contextlib.suppress(OSError):
        write_json(run_dir / "metrics.json", payload)


# ======================================================================= reading back
def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A run folder read back: ``config``, ``metrics`` (dicts), ``history``, ``confusion`` and
    ``predictions`` (DataFrames); a missing file gives None, so failed runs load too."""
    run_dir = Path(run_dir)

    def json_or_none(name: str) -> dict | None:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    def csv_or_none(name: str, **kwargs: Any) -> pd.DataFrame | None:
        path = run_dir / name
        return pd.read_csv(path, **kwargs) if path.is_file() else None

    return {"run_dir": run_dir, "run_id": run_dir.name, "config": json_or_none("config.json"),
            "metrics": json_or_none("metrics.json"), "history": csv_or_none("history.csv"),
            "confusion": csv_or_none("confusion.csv", index_col=0), "predictions": csv_or_none("predictions.csv")}


def load_model(run_dir: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The best checkpoint of a run as a model in eval mode (with ``x1d_mean``/``x1d_std`` attached)."""
    ckpt = torch.load(Path(run_dir) / "best.pt", map_location=map_location, weights_only=True)
    cfg = ckpt["config"]
    model = build_model(cfg["model"], n_classes=len(ckpt["classes"]), activation=cfg["activation"],
                        dropout_conv=cfg["dropout_conv"], dropout_head=cfg["dropout_head"])
    model.load_state_dict(ckpt["state_dict"])
    model.x1d_mean, model.x1d_std = ckpt.get("x1d_mean"), ckpt.get("x1d_std")
    model.input_stats = {k: (np.asarray(m), np.asarray(s)) for k, (m, s) in (ckpt.get("input_stats") or {}).items()}
    return model.eval()


def predict(model: nn.Module, data: TrainingData, idx: np.ndarray | None = None, device: str = "auto",
            batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Class probabilities [len(idx), n_classes] for the clips ``idx`` (all clips when None).

    x1d is standardised as in :func:`run`: with the statistics attached to the model by
    :func:`load_model` when present, else with the data's own training split (identical for
    the data the model was trained on).
    """
    dev = resolve_device(device)
    if "x1d" in model.inputs and not data.standardized:
        mean, std = getattr(model, "x1d_mean", None), getattr(model, "x1d_std", None)
        if mean is not None:
            mean, std = np.asarray(mean), np.asarray(std)
            x1d = ((data.x1d - mean[None, :, None]) / std[None, :, None]).astype(np.float32)
            data = replace(data, x1d=x1d, x1d_mean=mean, x1d_std=std)
        else:
            data = data.standardize()
    data = data.with_inputs(model.inputs)
    if any(name in model.inputs for name in ("x1d_var", "x1d_avg")):
        data = data.standardize_inputs(getattr(model, "input_stats", None) or None)
    idx = np.arange(len(data.y)) if idx is None else np.array(idx, dtype=np.int64)
    model = model.to(dev)
    tensors = to_device_tensors(data, model.inputs, dev)
    y = torch.as_tensor(data.y).to(dev)
    _, _, logits = evaluate(model, tensors, y, torch.as_tensor(idx))
    return logits.softmax(dim=1).numpy()


def run_summary(run_dir: str | Path, source: str = "") -> dict[str, Any]:
    """One row comparing runs (notebook 09): test metrics, size, cost and the train-validation gap.

    ``train_acc``/``val_acc`` and ``train_loss``/``val_loss`` are taken at the best epoch (the
    checkpoint that was tested); ``gap_acc`` = train_acc - val_acc, ``gap_loss`` = val_loss -
    train_loss (positive: overfitting). The training figures are averaged over the epoch with
    dropout active, so they understate the gap a little. ``source`` labels where the run came
    from (e.g. "sweep", "quick"); ``family`` is "report" for the report's models.
    """
    run = load_run(run_dir)
    metrics, history = run["metrics"] or {}, run["history"]
    at_best: dict[str, Any] = {}
    if history is not None and len(history):
        rows = history[history["epoch"] == (metrics.get("best_epoch") or -1)]
        at_best = (rows if len(rows) else history.tail(1)).iloc[0].to_dict()
    nan = float("nan")
    train_acc, val_acc = at_best.get("train_acc", nan), at_best.get("val_acc", nan)
    train_loss, val_loss = at_best.get("train_loss", nan), at_best.get("val_loss", nan)
    model = metrics.get("model") or (run["config"] or {}).get("model")
    return {"label": run["run_id"] + (f" ({source})" if source else ""), "run_id": run["run_id"],
            "run_dir": run["run_dir"], "source": source,
            "family": "report" if model in config.MODELS else "alternative",
            "model": model, "activation": metrics.get("activation"), "lr": metrics.get("lr"),
            "status": metrics.get("status"), "accuracy": metrics.get("accuracy", nan), "f1": metrics.get("f1", nan),
            "uar": metrics.get("uar", nan), "n_params": metrics.get("n_params"),
            "time_per_epoch_s": metrics.get("time_per_epoch_s", nan), "epochs": metrics.get("epochs"),
            "epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
            "n_train": metrics.get("n_train"), "train_acc": train_acc, "val_acc": val_acc,
            "gap_acc": train_acc - val_acc, "train_loss": train_loss, "val_loss": val_loss,
            "gap_loss": val_loss - train_loss, "corpus": metrics.get("corpus"),
            "device": metrics.get("device_name") or metrics.get("device")}
