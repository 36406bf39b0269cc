"""What a model hears in a recording: the recording cut into windows, and each window's model inputs.

The models were trained on CREMA-D-length clips (1-5 s of speech after trimming): the 1D input
holds a clip's first 3 s, the 2D image the whole clip squeezed to 64 columns. A new recording
is preprocessed exactly as a training clip (:func:`ser_utils.data.audio.preprocess`: mono, 16 kHz,
VAD trim of the leading and trailing non-speech, z-score), then:

* speech no longer than the longest clip the model was trained and tested on
  (``WindowPlan.whole_max_s``, recorded in the checkpoint): **one window, the whole recording**,
  featurised exactly as a test clip was, so the corpus' own clips get the probabilities of the
  run's ``predictions.csv``;
* longer speech: **windows of 3 s** (the 1D input's span) **every** ``hop_s`` **(1 s)**, the last
  one ending where the speech ends. Each window is z-scored on its own (every training clip had
  zero mean and unit variance) and featurised as a clip; the recording's probabilities are the
  mean of its windows'.

The features are the training ones: :func:`ser_utils.features.definitions.features_1d` and
:func:`~ser_utils.features.definitions.features_2d` with the checkpoint's configurations, and for the
variable-length and mean-1D models :func:`~ser_utils.features.definitions.clip_features`, whose frames are
stored at ``var_dtype`` (float16) as the feature cache stores them; ``x1d_avg`` is the mean over
the window's valid frames only, never over the zero padding of the fixed 301 frames.

Everything here is numpy (no torch), so the predictor's worker processes can run it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ser_utils import features
from ser_utils.data import audio
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig

#: Seconds between the starts of two windows of a long recording.
DEFAULT_HOP_S = 1.0
#: Speech shorter than this (after VAD trimming) is too little to judge an emotion by.
MIN_SPEECH_S = 0.5
#: A recording whose loudest sample stays below this (dBFS) is silence, whatever the VAD says.
SILENCE_PEAK_DBFS = -60.0
#: Inputs computed by clip_features (the variable-length store); the others need less work.
VARIABLE_INPUTS = ("x1d_var", "len1d", "x2d_var", "len2d", "x1d_avg")


@dataclass(frozen=True)
class WindowPlan:
    """How a recording is cut: ``window_s`` long windows every ``hop_s`` once speech exceeds ``whole_max_s``."""

    window_s: float = 3.0
    hop_s: float = DEFAULT_HOP_S
    whole_max_s: float = 3.0

    def __post_init__(self) -> None:
        if not (self.hop_s > 0 and self.window_s > 0 and math.isfinite(self.hop_s)):
            raise ValueError(f"window {self.window_s} s, hop {self.hop_s} s: both must be positive seconds")


def window_bounds(n_samples: int, sample_rate: int, plan: WindowPlan) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges of the windows of ``n_samples`` of speech.

    Up to ``plan.whole_max_s`` one window covers everything (as a test clip). Beyond, windows of
    ``window_s`` start every ``hop_s``; when the last regular one stops short of the end, one
    more ends exactly at the end, so every sample is heard. 20 s with 3 s windows every 1 s:
    starts 0, 1, ..., 17 s, 18 windows.
    """
    if n_samples <= round(plan.whole_max_s * sample_rate):
        return [(0, n_samples)]
    size = int(round(plan.window_s * sample_rate))
    hop = max(1, int(round(plan.hop_s * sample_rate)))
    starts = list(range(0, n_samples - size + 1, hop))
    if starts[-1] + size < n_samples:
        starts.append(n_samples - size)
    return [(start, start + size) for start in starts]


@dataclass(frozen=True)
class InputSpec:
    """What a model reads and how its training inputs were made (from a checkpoint); picklable."""

    inputs: tuple[str, ...]
    pre: PreprocessConfig = PreprocessConfig()
    f1: Feature1DConfig = Feature1DConfig()
    f2: Feature2DConfig = Feature2DConfig()
    plan: WindowPlan = WindowPlan()
    var_dtype: str = "float16"

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], inputs: tuple[str, ...], hop_s: float | None = None) -> "InputSpec":
        """The spec of a checkpoint (:mod:`ser_utils.training.checkpoint`); ``hop_s`` overrides the default hop."""
        f1 = Feature1DConfig(**ckpt["feature_1d"])
        longest = ckpt.get("longest_clip_s") or 0.0
        plan = WindowPlan(window_s=f1.duration_s, hop_s=DEFAULT_HOP_S if hop_s is None else float(hop_s),
                          whole_max_s=max(float(longest), f1.duration_s))
        return cls(inputs=tuple(inputs), pre=PreprocessConfig(**ckpt["preprocess"]), f1=f1,
                   f2=Feature2DConfig(**ckpt["feature_2d"]), plan=plan, var_dtype=ckpt.get("var_dtype", "float16"))


@dataclass
class Recording:
    """A recording ready for the model: its windows (in seconds of the recording) and their inputs."""

    source: str
    duration_s: float
    speech_s: float
    starts_s: list[float]
    ends_s: list[float]
    inputs: list[dict[str, np.ndarray]] = field(repr=False)

    @property
    def n_windows(self) -> int:
        return len(self.starts_s)


def prepare(source: str | os.PathLike | np.ndarray, spec: InputSpec, sample_rate: int | None = None,
            name: str | None = None) -> Recording:
    """Preprocess a file (or a 1-D signal with its ``sample_rate``), cut it into windows and featurise them.

    Raises :class:`ser_utils.data.audio.BadClipError` (``"<file>: <reason>"``) for an unreadable,
    silent or too short recording.
    """
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise audio.BadClipError(name or source, "no such file; check the path")
    try:
        pre = audio.preprocess(source, spec.pre, sr=sample_rate)
    except audio.BadClipError as err:
        if name is None:
            raise
        raise audio.BadClipError(name, err.reason) from None
    label = name or pre.source
    rate = pre.sample_rate
    peak = float(np.max(np.abs(pre.untrimmed)))
    if 20 * math.log10(max(peak, 1e-12)) < SILENCE_PEAK_DBFS:
        raise audio.BadClipError(label, f"silent (peak {20 * math.log10(max(peak, 1e-12)):.0f} dBFS); "
                                        "record closer to the microphone")
    if pre.duration_out_s < MIN_SPEECH_S:
        raise audio.BadClipError(label, f"only {pre.duration_out_s:.2f} s of speech (at least {MIN_SPEECH_S} s "
                                        "needed); record a whole sentence")
    bounds = window_bounds(len(pre.signal), rate, spec.plan)
    whole = len(bounds) == 1 and bounds[0] == (0, len(pre.signal))
    inputs = []
    for start, end in bounds:
        signal = pre.signal if whole else _renormalised(pre.signal[start:end], spec.pre.zscore)
        inputs.append(window_inputs(replace(pre, signal=signal), spec))
    offset = pre.speech_start / rate
    return Recording(source=label, duration_s=pre.duration_in_s, speech_s=pre.duration_out_s,
                     starts_s=[offset + s / rate for s, _ in bounds], ends_s=[offset + e / rate for _, e in bounds],
                     inputs=inputs)


def prepare_task(task: tuple) -> tuple[int, Recording | None, str | None]:
    """A pool worker's job: one recording prepared, or its one-line error (it never stops the others).

    ``task`` is ``(index, source, spec, sample_rate, name)``. It lives here, not in
    :mod:`ser_utils.predict.predictor`, because a worker imports the module of the function it runs:
    this one does not import torch (1.5 s per worker).
    """
    index, source, spec, sample_rate, name = task
    try:
        return index, prepare(source, spec, sample_rate=sample_rate, name=name), None
    except audio.BadClipError as err:
        return index, None, str(err)
    except Exception as err:  # a file no decoder step expected: reported for this file, the rest go on
        return index, None, f"{name}: could not be processed ({type(err).__name__}: {' '.join(str(err).split())[:160]})"


def _renormalised(window: np.ndarray, zscore: bool) -> np.ndarray:
    """A window z-scored on its own, like a training clip (left as is when it has no variation)."""
    if not zscore or not window.std() > audio.MIN_STD:
        return np.ascontiguousarray(window, dtype=np.float32)
    return audio.zscore(window)


def window_inputs(window: audio.Preprocessed, spec: InputSpec) -> dict[str, np.ndarray]:
    """The model inputs of one window (one clip), as the training features computed them.

    Fixed-size inputs: ``x1d`` [27, 301], ``x2d`` [1, 64, 64]. Variable-length ones (only when the
    model reads them): ``x1d_var`` [27, T'], ``x2d_var`` [1, 64, T] with their lengths, and
    ``x1d_avg`` [27], the mean over the valid frames, all from frames rounded to ``var_dtype``
    as the feature cache stores them.
    """
    need = set(spec.inputs)
    signal, rate = window.signal, window.sample_rate
    if not need & set(VARIABLE_INPUTS):
        out = {}
        if "x1d" in need:
            out["x1d"] = features.features_1d(signal, rate, spec.f1)
        if "x2d" in need:
            out["x2d"] = features.features_2d(signal, rate, spec.f2)
        return out
    clip = features.clip_features(window, spec.f1, spec.f2)
    # As FeatureSet.frames_var / mel_var read them back: stored time-major at var_dtype, then float32 [C, T].
    frames = np.asarray(clip.frames_var.astype(spec.var_dtype), dtype=np.float32).T
    mel = np.asarray(clip.mel_var.astype(spec.var_dtype), dtype=np.float32).T
    out = {"x1d": clip.x1d, "x2d": clip.x2d, "x1d_var": frames, "len1d": np.int64(frames.shape[1]),
           "x2d_var": mel[None], "len2d": np.int64(mel.shape[1])}
    if "x1d_avg" in need:
        out["x1d_avg"] = frames.mean(axis=1).astype(np.float32)
    return {name: value for name, value in out.items() if name in need}


@functools.lru_cache(maxsize=8)
def warm_up(spec: InputSpec) -> None:
    """Import the feature libraries and build the filterbanks now, in this process.

    The first recording a process prepares pays for librosa's lazy imports and the filterbanks
    (seconds in a fresh process); ``benchmarks/bench_predict.py`` calls this to time that one-off
    cost apart from the per-clip rate. Nothing else needs it: the features build what they need
    on first use.
    """
    rate = spec.pre.sample_rate
    signal = np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    audio.speech_frames(0.1 * signal, rate, spec.pre)
    window = audio.Preprocessed(signal=signal, sample_rate=rate, speech_start=0, speech_end=rate, vad_fallback=False,
                                duration_in_s=1.0, duration_out_s=1.0, untrimmed=signal)
    window_inputs(window, spec)
    window_inputs(window, replace(spec, inputs=("x1d", "x2d")))


def stack_windows(windows: list[dict[str, np.ndarray]], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A batch of windows' inputs: fixed ones stacked, variable-length ones zero-padded to the longest."""
    batch: dict[str, np.ndarray] = {}
    for name in names:
        items = [w[name] for w in windows]
        if name in ("x1d_var", "x2d_var"):
            longest = max(item.shape[-1] for item in items)
            padded = np.zeros((len(items), *items[0].shape[:-1], longest), dtype=np.float32)
            for i, item in enumerate(items):
                padded[i, ..., :item.shape[-1]] = item
            batch[name] = padded
        else:
            batch[name] = np.stack(items)
    return batch
