"""1D and 2D features of the report (section 3): what the numbers of one clip are.

1D, ``[27, 301]`` per clip: ZCR (row 0), 12 chroma (rows 1-12), 13 MFCC (rows 13-25), RMS
(row 26); frame 512, hop 160, the clip fixed to 3.0 s. 2D, ``[1, 64, 64]``: the log-mel
image scaled to [0, 1] and resized.

Why it is fast (see benchmarks/bench_features.py): the straightforward version calls
``librosa.feature.*(y=...)`` once per feature, so every call recomputes an STFT and rebuilds
its filterbank, and chroma re-estimates the tuning. Here one STFT (n_fft 512) feeds chroma and
MFCC, filterbanks are built once per process, and the chroma tuning is fixed at 0. The values
are librosa's: the tests compare every row with the direct librosa call.

:func:`extract` runs a whole manifest through :mod:`ser_utils.features.cache` (worker pool,
on-disk cache, :class:`~ser_utils.features.cache.FeatureSet`). Callers import the package
(``from ser_utils import features``), which re-exports the public names of all three modules.
A change that alters the numbers must bump ``ser_utils.features.cache.FEATURES_VERSION``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import scipy.sparse

from ser_utils import config
from ser_utils.data import audio
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig
from ser_utils.features.cache import (VAR_DTYPE, ClipFeatures, FeatureSet, build_cache, cache_is_complete, cache_key,
                                     load_cache, manifest_paths)
from ser_utils.features.dsp import (FIX_CROP, fix_length, hann, power_spectrogram, power_to_db, resize_image,
                                    rms_row, single_blas_thread, zcr_row)

__all__ = [
    "MFCC_N_MELS", "CHROMA_TUNING", "chroma_rows", "mfcc_rows", "frames_1d", "row_slices", "row_labels",
    "fixed_samples", "features_1d", "logmel_scaled", "features_2d", "stats_1d", "clip_features", "extract",
]

#: Mel bands behind the 13 MFCC: librosa's default, which the report's mfcc(y=...) used.
MFCC_N_MELS = 128
#: Chroma filterbank tuning (in fractions of a chroma bin). See chroma_rows.
CHROMA_TUNING = 0.0


# ------------------------------------------------------------------ filterbanks
@dataclass(frozen=True)
class _Bank1D:
    window: np.ndarray  # periodic Hann, as librosa.stft uses
    chroma: np.ndarray  # [n_chroma, n_fft/2+1]
    mel: scipy.sparse.csr_matrix  # [MFCC_N_MELS, n_fft/2+1]: ~2% non-zero, so sparse is 4x faster
    dct: np.ndarray  # [n_mfcc, MFCC_N_MELS]: orthonormal DCT-II rows, as librosa.feature.mfcc


@dataclass(frozen=True)
class _Bank2D:
    window: np.ndarray
    mel: scipy.sparse.csr_matrix


@functools.lru_cache(maxsize=8)
def _bank_1d(sr: int, n_fft: int, n_chroma: int, n_mfcc: int) -> _Bank1D:
    """The 1D filterbanks, built once per process and configuration (not once per clip)."""
    import librosa

    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=MFCC_N_MELS)
    chroma = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=CHROMA_TUNING, n_chroma=n_chroma)
    dct = scipy.fft.dct(np.eye(MFCC_N_MELS), type=2, norm="ortho", axis=0)[:n_mfcc]
    return _Bank1D(window=hann(n_fft), chroma=chroma.astype(np.float32),
                   mel=scipy.sparse.csr_matrix(mel.astype(np.float32)), dct=dct.astype(np.float32))


@functools.lru_cache(maxsize=8)
def _bank_2d(sr: int, n_fft: int, n_mels: int, fmax: float) -> _Bank2D:
    import librosa

    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
    return _Bank2D(window=hann(n_fft), mel=scipy.sparse.csr_matrix(mel.astype(np.float32)))


# ---------------------------------------------------------------------- 1D rows
def chroma_rows(power: np.ndarray, bank: _Bank1D) -> np.ndarray:
    """``librosa.feature.chroma_stft(S=power, tuning=0.0)``: chroma energy, max-normalised per frame.

    ``tuning=0.0`` skips librosa's per-clip tuning estimate (a pitch track of the whole clip,
    which costs more than the rest of the 1D features together). Speech is not tuned to
    A440, so a per-clip estimate shifts the chroma bins by a clip-dependent fraction of a
    semitone; a fixed reference makes chroma comparable across clips. The benchmark reports
    how much the two differ.
    """
    import librosa

    return librosa.util.normalize(bank.chroma @ power, norm=np.inf, axis=0)


def mfcc_rows(power: np.ndarray, bank: _Bank1D) -> np.ndarray:
    """``librosa.feature.mfcc(S=power_to_db(mel))`` with librosa's defaults (128 mels, top_db 80)."""
    return bank.dct @ power_to_db(bank.mel @ power)


@single_blas_thread
def frames_1d(signal: np.ndarray, sr: int = config.SAMPLE_RATE, cfg: Feature1DConfig = Feature1DConfig()) -> np.ndarray:
    """The 27 feature rows for every frame of a signal of any length: ``[27, 1 + len // hop]``."""
    n_fft, hop = cfg.frame_length, cfg.hop_length
    bank = _bank_1d(sr, n_fft, cfg.n_chroma, cfg.n_mfcc)
    power = power_spectrogram(signal, n_fft, hop, bank.window)
    rows = [zcr_row(signal, n_fft, hop)[None], chroma_rows(power, bank), mfcc_rows(power, bank),
            rms_row(signal, n_fft, hop)[None]]
    return np.concatenate(rows, axis=0).astype(np.float32, copy=False)


def row_slices(cfg: Feature1DConfig = Feature1DConfig()) -> dict[str, slice]:
    """Which rows of the 1D array hold which feature: zcr, chroma, mfcc, rms."""
    mfcc_start = 1 + cfg.n_chroma
    return {"zcr": slice(0, 1), "chroma": slice(1, mfcc_start),
            "mfcc": slice(mfcc_start, mfcc_start + cfg.n_mfcc), "rms": slice(cfg.n_rows - 1, cfg.n_rows)}


def row_labels(cfg: Feature1DConfig = Feature1DConfig()) -> list[str]:
    """One label per 1D row, for plot axes: ZCR, chroma C..B, MFCC 0..12, RMS."""
    pitches = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    chroma = [f"chroma {p}" for p in pitches] if cfg.n_chroma == 12 else [f"chroma {i}" for i in range(cfg.n_chroma)]
    return ["ZCR", *chroma, *(f"MFCC {i}" for i in range(cfg.n_mfcc)), "RMS"]


def fixed_samples(sr: int = config.SAMPLE_RATE, cfg: Feature1DConfig = Feature1DConfig()) -> int:
    """Samples of the fixed 1D duration (48,000 for 3.0 s at 16 kHz)."""
    return int(round(cfg.duration_s * sr))


def features_1d(signal: np.ndarray, sr: int = config.SAMPLE_RATE,
                cfg: Feature1DConfig = Feature1DConfig()) -> np.ndarray:
    """The report's 1D features, float32 ``[27, 301]``: the signal fixed to 3.0 s, then frames_1d."""
    fixed, _ = fix_length(signal, fixed_samples(sr, cfg))
    return frames_1d(fixed, sr, cfg)


# ---------------------------------------------------------------------------- 2D
def logmel_scaled(signal: np.ndarray, sr: int = config.SAMPLE_RATE,
                  cfg: Feature2DConfig = Feature2DConfig()) -> np.ndarray:
    """Log-mel ``[n_mels, 1 + len // hop]`` in [0, 1]: power_to_db(ref=max, top_db 80), min-max per clip.

    fmax is ``cfg.effective_fmax(sr)``: the report's 10 kHz lies above the 8 kHz Nyquist
    limit of 16 kHz audio, where there is no signal, so it is clamped to sr / 2.
    """
    bank = _bank_2d(sr, cfg.n_fft, cfg.n_mels, cfg.effective_fmax(sr))
    power = power_spectrogram(signal, cfg.n_fft, cfg.hop_length, bank.window)
    db = power_to_db(bank.mel @ power, ref_max=True)
    low, high = db.min(), db.max()
    if high <= low:
        return np.zeros_like(db, dtype=np.float32)
    return ((db - low) / (high - low)).astype(np.float32)


def features_2d(signal: np.ndarray, sr: int = config.SAMPLE_RATE,
                cfg: Feature2DConfig = Feature2DConfig()) -> np.ndarray:
    """The report's 2D feature, float32 ``[1, 64, 64]`` in [0, 1]: logmel_scaled resized to size x size."""
    image = resize_image(logmel_scaled(signal, sr, cfg), cfg.size, cfg.size)
    return image[None].astype(np.float32, copy=False)


# ----------------------------------------------------------------- standardising
def stats_1d(x1d: np.ndarray, train_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and std (floored at 1e-8) over the training clips and all their frames."""
    train_mask = np.asarray(train_mask, dtype=bool)
    if train_mask.shape != (len(x1d),):
        raise ValueError(f"train_mask has shape {train_mask.shape}; expected ({len(x1d)},), one flag per clip")
    if not train_mask.any():
        raise ValueError("train_mask selects no clip; standardisation needs training clips")
    train = np.asarray(x1d[train_mask], dtype=np.float64)
    mean = train.mean(axis=(0, 2))
    std = np.maximum(train.std(axis=(0, 2)), 1e-8)
    return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------------- one clip
def clip_features(pre_out: audio.Preprocessed, f1: Feature1DConfig, f2: Feature2DConfig) -> ClipFeatures:
    """Fixed and variable-length features of one preprocessed clip.

    For a clip no longer than 3 s the variable 1D frames are the first frames of the
    padded clip's (the STFT zero-pads the same way, and zero frames change neither the
    per-frame chroma nor the top_db reference), so only ZCR (edge padding) is recomputed;
    longer clips are computed twice.
    """
    signal, sr = pre_out.signal, pre_out.sample_rate
    fixed, fix = fix_length(signal, fixed_samples(sr, f1))
    x1d = frames_1d(fixed, sr, f1)
    n_var = 1 + len(signal) // f1.hop_length
    if fix == FIX_CROP:
        var1 = frames_1d(signal, sr, f1)
    else:
        var1 = x1d[:, :n_var].copy()
        var1[0] = zcr_row(signal, f1.frame_length, f1.hop_length)
    mel = logmel_scaled(signal, sr, f2)
    x2d = resize_image(mel, f2.size, f2.size)[None].astype(np.float32, copy=False)
    info = {"fix": fix, "vad_fallback": pre_out.vad_fallback, "duration_in_s": pre_out.duration_in_s,
            "duration_out_s": pre_out.duration_out_s, "speech_start": pre_out.speech_start,
            "speech_end": pre_out.speech_end, "frames_len": var1.shape[1], "mel_len": mel.shape[1]}
    return ClipFeatures(x1d=x1d, x2d=x2d, frames_var=var1.T.astype(VAR_DTYPE), mel_var=mel.T.astype(VAR_DTYPE),
                        info=info)


def _extract_one(path: str, pre: PreprocessConfig, f1: Feature1DConfig, f2: Feature2DConfig) -> ClipFeatures:
    """Preprocess and featurise one file; BadClipError for an unusable clip."""
    return clip_features(audio.preprocess(path, pre), f1, f2)


# ------------------------------------------------------------------- the corpus
def extract(manifest: pd.DataFrame, cache_root: Path = config.FEATURES_DIR, pre: PreprocessConfig = PreprocessConfig(),
            f1: Feature1DConfig = Feature1DConfig(), f2: Feature2DConfig = Feature2DConfig(), jobs: int | None = None,
            progress: bool = True, force: bool = False) -> FeatureSet:
    """Features of every clip of ``manifest`` (column ``path``), from the cache when it is current.

    The cache folder ``cache_root/<key>/`` is complete only once its ``meta.json`` exists
    (it is written last, then the folder is renamed into place), so an interrupted run is
    recomputed, never half-read. Bad clips are skipped, listed in ``FeatureSet.skipped``
    (and ``skipped.csv``) and counted in a warning. ``jobs`` defaults to os.cpu_count();
    ``jobs=1`` runs in this process. ``force`` recomputes even when the cache is current.
    """
    paths = manifest_paths(manifest)
    key = cache_key(paths, pre, f1, f2)
    cache_dir = Path(cache_root) / key
    from_cache = not force and cache_is_complete(cache_dir)
    if not from_cache:
        build_cache(paths, cache_dir, _extract_one, pre, f1, f2, jobs, progress)
    features = load_cache(cache_dir, manifest)
    features.from_cache = from_cache
    if len(features.skipped):
        warnings.warn(f"{len(features.skipped)} of {len(paths)} clips skipped as bad audio (e.g. "
                      f"{features.skipped['path'].iloc[0]}: {features.skipped['reason'].iloc[0]}); "
                      f"see FeatureSet.skipped or {cache_dir / 'skipped.csv'}", stacklevel=2)
    return features
