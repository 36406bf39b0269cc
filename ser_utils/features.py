"""1D and 2D features of the report (section 3) and the on-disk cache that computes them once.

1D, ``[27, 301]`` per clip: ZCR (row 0), 12 chroma (rows 1-12), 13 MFCC (rows 13-25), RMS
(row 26); frame 512, hop 160, the clip fixed to 3.0 s. 2D, ``[1, 64, 64]``: the log-mel
image scaled to [0, 1] and resized.

Why it is fast (see benchmarks/bench_features.py): the straightforward version calls
``librosa.feature.*(y=...)`` once per feature, so every call recomputes an STFT and rebuilds
its filterbank, and chroma re-estimates the tuning. Here one STFT (n_fft 512) feeds chroma and
MFCC, filterbanks are built once per process, and the chroma tuning is fixed at 0. The values
are librosa's: the tests compare every row with the direct librosa call.

:func:`extract` runs a whole manifest in parallel and caches the arrays under
``outputs/features/<key>/``; the key hashes the configurations, FEATURES_VERSION, library
versions and each file's path, size and mtime (not the split, so a re-split reuses it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import scipy.sparse

from ser_utils import audio, config
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig

#: Bump when a change to this module (or audio.py) changes the numbers: old caches then miss.
FEATURES_VERSION = 1
#: Mel bands behind the 13 MFCC: librosa's default, which the report's mfcc(y=...) used.
MFCC_N_MELS = 128
#: Chroma filterbank tuning (in fractions of a chroma bin). See chroma_rows.
CHROMA_TUNING = 0.0
#: librosa.zero_crossings' default: samples this close to 0 count as 0 (positive).
ZCR_THRESHOLD = 1e-10
#: Variable-length arrays are stored at half precision: they are for later models, and
#: values in [0, 1] or MFCC in the hundreds lose nothing that matters at 11 bits.
VAR_DTYPE = np.float16
#: Pool start method on Linux. "fork" starts workers in milliseconds with
#: everything imported; "spawn"/"forkserver" re-import librosa in each worker (about 2 s)
#: and re-run an unguarded ``__main__`` script. Workers use no torch or OpenMP, so the
#: usual fork hazards do not apply. Elsewhere (macOS, Windows) the platform default is used.
MP_START_METHOD = "fork"

#: A temporary cache folder this old belongs to a killed run (a live one is far younger).
STALE_TEMP_S = 6 * 3600

FIX_PAD, FIX_CROP, FIX_EXACT = "pad", "crop", "exact"
CLIP_COLUMNS = ["path", "fix", "vad_fallback", "duration_in_s", "duration_out_s",
                "speech_start", "speech_end", "frames_len", "mel_len"]


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
    return _Bank1D(window=_hann(n_fft), chroma=chroma.astype(np.float32),
                   mel=scipy.sparse.csr_matrix(mel.astype(np.float32)), dct=dct.astype(np.float32))


@functools.lru_cache(maxsize=8)
def _bank_2d(sr: int, n_fft: int, n_mels: int, fmax: float) -> _Bank2D:
    import librosa

    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
    return _Bank2D(window=_hann(n_fft), mel=scipy.sparse.csr_matrix(mel.astype(np.float32)))


def _hann(n_fft: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        return None
    return ThreadpoolController()


def _single_blas_thread(func):
    """Run ``func`` with one BLAS thread (a 4 us switch with a cached controller).

    The products here are small (e.g. 12 x 257 x 301): threads only add overhead (10x
    slower on a busy machine) and OpenBLAS picks different kernels with the thread count,
    so the same clip would differ in the last float32 bit between a notebook and the pool.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        controller = _blas_controller()
        limit = controller.limit(limits=1, user_api="blas") if controller is not None else contextlib.nullcontext()
        with limit:
            return func(*args, **kwargs)
    return wrapper


# ------------------------------------------------------------------------- STFT
def power_spectrogram(signal: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray | None = None) -> np.ndarray:
    """``|STFT|**2``, ``[n_fft/2+1, 1 + len // hop]``, equal to librosa.stft's (center=True,
    zero padding, periodic Hann) up to float32 rounding.

    Computed with scipy.fft on a strided view of the frames: the same transform as
    ``librosa.stft`` without its per-call overhead, about 3x faster at these sizes.
    """
    window = _hann(n_fft) if window is None else window
    frames = _framed(_padded(signal, n_fft // 2), n_fft, hop_length).T
    spectrum = scipy.fft.rfft(frames * window, axis=-1)
    power = spectrum.real**2
    power += spectrum.imag**2
    return np.ascontiguousarray(power.T)


_DB_PER_NEPER = np.float32(10.0 / np.log(10.0))


def power_to_db(power: np.ndarray, ref_max: bool = False, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """``librosa.power_to_db(power, ref=np.max if ref_max else 1.0, amin, top_db)``, 4x faster.

    Uses the natural log scaled to decibels: numpy vectorises float32 ``log`` with SIMD but
    not ``log10``; the two agree within 3e-6 dB.
    """
    db = np.log(np.maximum(power, np.float32(amin))) * _DB_PER_NEPER
    if ref_max:
        db -= _DB_PER_NEPER * np.log(np.float32(max(amin, float(power.max()))))
    return np.maximum(db, db.max() - np.float32(top_db))


# ---------------------------------------------------------------------- 1D rows
def zcr_row(signal: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length, hop_length)[0]`` via one cumulative sum.

    Same definition (edge padding; |y| <= 1e-10 counts as 0 and 0 as positive, so a sample
    is "negative" exactly when y < -1e-10; a frame's first sample is never a crossing),
    computed once over the signal instead of per frame: identical values, a fifth of the time.
    """
    y = _padded(signal, frame_length // 2, edge=True)
    negative = y < -np.float32(ZCR_THRESHOLD)
    total = np.concatenate([[0], np.cumsum(negative[1:] != negative[:-1], dtype=np.int32)])
    starts = np.arange(1 + (len(y) - frame_length) // hop_length) * hop_length
    return (total[starts + frame_length - 1] - total[starts]) / frame_length


def rms_row(signal: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.rms(y=...)``: RMS of the raw (unwindowed) samples of each frame.

    Same arithmetic as librosa (zero padding, mean of squares over the frame axis of the
    same strided view), without np.pad's overhead. Not derived from the STFT:
    ``rms(S=...)`` of a Hann-windowed STFT is the RMS of the *windowed* frame (about 0.6x,
    and a different shape), not the report's RMS; the time-domain version is as cheap as ZCR.
    """
    frames = _framed(_padded(signal, frame_length // 2), frame_length, hop_length)
    return np.sqrt(np.mean(np.square(frames), axis=0))


def _padded(signal: np.ndarray, half: int, edge: bool = False) -> np.ndarray:
    """float32 ``signal`` with ``half`` samples each side: zeros, or copies of the end samples."""
    n = len(signal)
    out = np.zeros(n + 2 * half, np.float32)
    out[half:half + n] = signal
    if edge and n:
        out[:half], out[half + n:] = signal[0], signal[-1]
    return out


def _framed(padded: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``[frame_length, n_frames]`` strided view, as librosa.util.frame."""
    return np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length].T


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


@_single_blas_thread
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


def fix_length(signal: np.ndarray, n_samples: int) -> tuple[np.ndarray, str]:
    """Zero-pad or crop the *end* to ``n_samples``; also say which (``"pad"``, ``"crop"``, ``"exact"``)."""
    n = len(signal)
    if n < n_samples:
        padded = np.zeros(n_samples, dtype=signal.dtype)
        padded[:n] = signal
        return padded, FIX_PAD
    if n > n_samples:
        return signal[:n_samples], FIX_CROP
    return signal, FIX_EXACT


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


@functools.lru_cache(maxsize=1024)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of antialiased linear interpolation (PIL's "bilinear").

    Half-pixel centres (align_corners=False); when shrinking, the triangle filter widens to
    the scale factor so every input frame contributes (plain bilinear would skip frames of
    long clips). Equals torch.nn.functional.interpolate(mode="bilinear", antialias=True);
    deterministic, and numpy only so workers need not import torch. Rows sum to 1, so
    values stay in [0, 1].
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    lo = np.maximum((centres - support + 0.5).astype(int), 0)  # PIL's window, truncated like C
    hi = np.minimum((centres + support + 0.5).astype(int), n_in)
    taps = np.arange(n_in)
    weights = np.clip(1.0 - np.abs((taps[None, :] - centres[:, None] + 0.5) / support), 0.0, None)
    weights *= (taps[None, :] >= lo[:, None]) & (taps[None, :] < hi[:, None])
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@_single_blas_thread
def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D array with antialiased bilinear interpolation (see _resize_matrix)."""
    rows, cols = image.shape
    out = image if rows == height else _resize_matrix(rows, height) @ image
    return out if cols == width else out @ _resize_matrix(cols, width).T


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


def standardize_1d(x1d: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
    """Standardise each of the 27 rows with training-split statistics only.

    Done at training time, never baked into the cache: the statistics depend on the split,
    and computing them on validation or test clips would leak them into training.
    """
    mean, std = stats_1d(x1d, train_mask)
    return ((np.asarray(x1d, dtype=np.float32) - mean[None, :, None]) / std[None, :, None]).astype(np.float32)


# ---------------------------------------------------------------------- one clip
@dataclass
class ClipFeatures:
    """Everything extracted from one clip (what a worker sends back)."""

    x1d: np.ndarray  # [27, 301] float32
    x2d: np.ndarray  # [1, 64, 64] float32
    frames_var: np.ndarray  # [T', 27] VAR_DTYPE: 1D rows of the unfixed signal, time-major
    mel_var: np.ndarray  # [T, 64] VAR_DTYPE: scaled log-mel before resizing, time-major
    info: dict


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


_OUTPUT_ARRAYS: dict[str, np.ndarray] = {}


def _output_arrays(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """The x1d/x2d ``.npy`` files being filled in ``folder``, opened once per process."""
    if _OUTPUT_ARRAYS.get("folder") != folder:
        _OUTPUT_ARRAYS.update(folder=folder, x1d=np.load(Path(folder) / "x1d.npy", mmap_mode="r+"),
                              x2d=np.load(Path(folder) / "x2d.npy", mmap_mode="r+"))
    return _OUTPUT_ARRAYS["x1d"], _OUTPUT_ARRAYS["x2d"]


def _work(task: tuple) -> tuple[int, ClipFeatures | None, str | None]:
    """Pool task: ``(index, features, None)`` or ``(index, None, reason)`` for a bad clip.

    The fixed-size arrays go straight into the memory-mapped output files at row ``index``
    (the rows of different clips never overlap), so only the small variable-length parts
    travel back through the pool's pipe: the parent process stays nearly idle.
    """
    index, path, pre, f1, f2, folder = task
    try:
        features = _extract_one(path, pre, f1, f2)
    except audio.BadClipError as err:
        return index, None, err.reason
    x1d, x2d = _output_arrays(folder)
    x1d[index], x2d[index] = features.x1d, features.x2d
    features.x1d = features.x2d = None
    return index, features, None


def _init_worker() -> None:
    """One BLAS/OpenMP thread per worker (the pool is the parallelism), and Ctrl-C to the parent only."""
    import signal

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_threads()


def _limit_threads():
    """threadpoolctl's limit to 1 thread (it is installed with scikit-learn), or None without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return None
    return threadpool_limits(limits=1)


# ------------------------------------------------------------------- the corpus
@dataclass
class FeatureSet:
    """The features of a manifest, row-aligned with ``manifest``.

    ``x1d``/``x2d`` and the variable-length stores are copy-on-write memory maps of the
    cache files (read lazily; writing to them never changes the cache). ``clips`` holds
    per-clip facts aligned with ``manifest``: ``fix`` (pad / crop / exact to 3.0 s),
    ``vad_fallback``, ``duration_in_s``/``duration_out_s`` (before/after VAD),
    ``speech_start``/``speech_end`` and the variable lengths ``frames_len``/``mel_len``.
    """

    manifest: pd.DataFrame
    x1d: np.ndarray
    x2d: np.ndarray
    skipped: pd.DataFrame
    key: str
    cache_dir: Path
    clips: pd.DataFrame
    from_cache: bool = False
    var_frames: np.ndarray = field(default=None, repr=False)  # [sum T', 27] time-major
    var_frames_offsets: np.ndarray = field(default=None, repr=False)  # [n_stored + 1] int64
    var_mel: np.ndarray = field(default=None, repr=False)  # [sum T, 64] time-major
    var_mel_offsets: np.ndarray = field(default=None, repr=False)
    stored_row: np.ndarray = field(default=None, repr=False)  # FeatureSet row -> row in the cache

    def __len__(self) -> int:
        return len(self.manifest)

    def frames_var(self, i: int) -> np.ndarray:
        """1D rows of clip ``i`` before fixing to 3 s: float32 ``[27, T']``."""
        return self._var(self.var_frames, self.var_frames_offsets, i)

    def mel_var(self, i: int) -> np.ndarray:
        """Scaled log-mel of clip ``i`` before resizing: float32 ``[64, T]`` in [0, 1]."""
        return self._var(self.var_mel, self.var_mel_offsets, i)

    def _var(self, store: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
        row = self.stored_row[i]
        return np.asarray(store[offsets[row]:offsets[row + 1]], dtype=np.float32).T

    @property
    def frames_lengths(self) -> np.ndarray:
        return self.clips["frames_len"].to_numpy()

    @property
    def mel_lengths(self) -> np.ndarray:
        return self.clips["mel_len"].to_numpy()

    def var_batch(self, kind: str, indices) -> tuple[np.ndarray, np.ndarray]:
        """Zero-padded ``[B, C, T_max]`` float32 and the lengths, for ``kind`` "frames" or "mel"."""
        getter = {"frames": self.frames_var, "mel": self.mel_var}.get(kind)
        if getter is None:
            raise ValueError(f"kind={kind!r}: choose 'frames' or 'mel'")
        items = [getter(i) for i in indices]
        lengths = np.array([item.shape[1] for item in items], dtype=np.int64)
        batch = np.zeros((len(items), items[0].shape[0] if items else 0, lengths.max(initial=0)), np.float32)
        for b, item in enumerate(items):
            batch[b, :, :item.shape[1]] = item
        return batch, lengths

    @property
    def vad_fallback(self) -> np.ndarray:
        return self.clips["vad_fallback"].to_numpy(dtype=bool)

    @property
    def padded(self) -> np.ndarray:
        return (self.clips["fix"] == FIX_PAD).to_numpy()

    @property
    def cropped(self) -> np.ndarray:
        return (self.clips["fix"] == FIX_CROP).to_numpy()


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
    from_cache = not force and is_complete(cache_dir)
    if not from_cache:
        _compute(paths, cache_dir, pre, f1, f2, jobs, progress)
    features = load_cache(cache_dir, manifest)
    features.from_cache = from_cache
    if len(features.skipped):
        warnings.warn(f"{len(features.skipped)} of {len(paths)} clips skipped as bad audio (e.g. "
                      f"{features.skipped['path'].iloc[0]}: {features.skipped['reason'].iloc[0]}); "
                      f"see FeatureSet.skipped or {cache_dir / 'skipped.csv'}", stacklevel=2)
    return features


def manifest_paths(manifest: pd.DataFrame) -> list[str]:
    """The manifest's paths as absolute strings; ValueError for a missing column, no rows or duplicates."""
    if "path" not in manifest:
        raise ValueError("the manifest has no 'path' column; build it with ser_utils.dataset.manifest()")
    if len(manifest) == 0:
        raise ValueError("the manifest has no rows; nothing to extract")
    paths = [os.path.abspath(p) for p in manifest["path"].astype(str)]
    if len(set(paths)) != len(paths):
        raise ValueError("the manifest lists a file twice; drop the duplicate rows")
    return paths


def cache_key(paths: list[str], pre: PreprocessConfig, f1: Feature1DConfig, f2: Feature2DConfig) -> str:
    """``v<version>-<n clips>-<hash>``: configurations, code and library versions, and each
    file's path, size and mtime (in sorted order, so a reordered manifest still hits)."""
    import librosa

    files = []
    for path in sorted(paths):
        try:
            stat = os.stat(path)
            files.append((path, stat.st_size, stat.st_mtime_ns))
        except OSError:
            files.append((path, -1, 0))  # missing now: becomes a skipped clip, recomputed once it exists
    payload = {"version": FEATURES_VERSION, "pre": asdict(pre), "f1": asdict(f1), "f2": asdict(f2),
               "librosa": librosa.__version__, "soxr": _version("soxr"), "files": files}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    return f"v{FEATURES_VERSION}-{len(paths)}-{digest}"


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except (ImportError, AttributeError):
        return "?"


def is_complete(cache_dir: Path) -> bool:
    """True when ``meta.json`` exists, parses and names this folder's key and our version."""
    try:
        meta = json.loads((Path(cache_dir) / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("key") == Path(cache_dir).name and meta.get("version") == FEATURES_VERSION


# -------------------------------------------------------------------- computing
def _compute(paths: list[str], cache_dir: Path, pre: PreprocessConfig, f1: Feature1DConfig, f2: Feature2DConfig,
             jobs: int | None, progress: bool) -> None:
    """Extract every clip into a temporary folder, then rename it to ``cache_dir``."""
    started = time.perf_counter()
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths)))
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp(cache_dir)
    tmp = cache_dir.parent / f".{cache_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        collected = _run_all(paths, pre, f1, f2, jobs, progress, tmp)
        meta = {"key": cache_dir.name, "version": FEATURES_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "pre": asdict(pre), "f1": asdict(f1), "f2": asdict(f2), "jobs": jobs,
                "sample_rate": pre.sample_rate}
        collected.save(tmp, meta, started)
        _publish(tmp, cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_temp(cache_dir: Path) -> None:
    """Delete this key's temporary folders left by a killed run (older than STALE_TEMP_S)."""
    for folder in cache_dir.parent.glob(f".{cache_dir.name}.*"):
        try:
            if time.time() - folder.stat().st_mtime > STALE_TEMP_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


class _Collected:
    """Worker results gathered in manifest order: fixed arrays preallocated (no stacking
    copy of ~360 MB for the full corpus), variable-length parts and facts per clip."""

    def __init__(self, paths: list[str], f1: Feature1DConfig, f2: Feature2DConfig, sample_rate: int, folder: Path):
        n = len(paths)
        self.paths = paths
        # Preallocated .npy files the workers fill in place (see _work).
        self.x1d = np.lib.format.open_memmap(folder / "x1d.npy", "w+", np.float32, (n, f1.n_rows, f1.n_frames(sample_rate)))
        self.x2d = np.lib.format.open_memmap(folder / "x2d.npy", "w+", np.float32, (n, 1, f2.size, f2.size))
        self.frames_var: list = [None] * n
        self.mel_var: list = [None] * n
        self.info: list = [None] * n
        self.reasons: dict[int, str] = {}

    def add(self, index: int, features: ClipFeatures | None, reason: str | None) -> None:
        if features is None:
            self.reasons[index] = reason
            return
        self.frames_var[index], self.mel_var[index] = features.frames_var, features.mel_var
        self.info[index] = {"path": self.paths[index], **features.info}

    def save(self, folder: Path, meta: dict, started: float) -> None:
        """Write the kept clips' arrays, clips.csv, skipped.csv, and meta.json last."""
        kept = np.array([i for i in range(len(self.paths)) if i not in self.reasons], dtype=np.int64)
        skipped = pd.DataFrame([{"path": self.paths[i], "reason": r} for i, r in sorted(self.reasons.items())],
                               columns=["path", "reason"])
        if kept.size == 0:
            raise ValueError(f"all {len(self.paths)} clips are bad audio, e.g. {skipped['path'].iloc[0]}: "
                             f"{skipped['reason'].iloc[0]}")
        for name in ("x1d", "x2d"):
            array = getattr(self, name)
            array.flush()
            if kept.size < len(self.paths):  # drop the bad clips' unwritten rows
                compact = np.array(array[kept])
                setattr(self, name, None)
                del array
                np.save(folder / f".{name}.compact.npy", compact)
                os.replace(folder / f".{name}.compact.npy", folder / f"{name}.npy")
        for name in ("frames_var", "mel_var"):
            parts = [getattr(self, name)[i] for i in kept]
            np.save(folder / f"{name}.npy", np.concatenate(parts))
            lengths = np.cumsum([len(part) for part in parts])
            np.save(folder / f"{name}_offsets.npy", np.concatenate([[0], lengths]).astype(np.int64))
        pd.DataFrame([self.info[i] for i in kept], columns=CLIP_COLUMNS).to_csv(folder / "clips.csv", index=False)
        skipped.to_csv(folder / "skipped.csv", index=False)
        meta.update(n_clips=int(kept.size), n_skipped=len(skipped), elapsed_s=round(time.perf_counter() - started, 2))
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))


def _run_all(paths: list[str], pre, f1, f2, jobs: int, progress: bool, folder: Path) -> _Collected:
    """Every clip's features or bad-clip reason; pooled when jobs > 1. Fixed arrays land in ``folder``."""
    from tqdm.auto import tqdm

    tasks = [(i, path, pre, f1, f2, str(folder)) for i, path in enumerate(paths)]
    _bank_1d(pre.sample_rate, f1.frame_length, f1.n_chroma, f1.n_mfcc)  # built once here, inherited by forked workers
    _bank_2d(pre.sample_rate, f2.n_fft, f2.n_mels, f2.effective_fmax(pre.sample_rate))
    collected = _Collected(paths, f1, f2, pre.sample_rate, folder)
    with tqdm(total=len(paths), desc="features", unit="clip", disable=not progress) as bar:
        for index, features, reason in _iterate(tasks, jobs):
            collected.add(index, features, reason)
            bar.update()
    _OUTPUT_ARRAYS.clear()  # the in-process path (jobs == 1) opened them here
    return collected


def _iterate(tasks: list, jobs: int):
    """Yield ``_work`` results: in this process (one BLAS thread) when jobs == 1, else from a pool."""
    if jobs == 1:
        limits = _limit_threads()
        try:
            yield from map(_work, tasks)
        finally:
            if limits is not None:
                limits.restore_original_limits()
        return
    context = multiprocessing.get_context(MP_START_METHOD if sys.platform.startswith("linux") else None)
    chunksize = max(1, min(32, len(tasks) // (jobs * 8)))
    with context.Pool(jobs, initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_work, tasks, chunksize=chunksize)


def _publish(tmp: Path, cache_dir: Path) -> None:
    """Move the finished folder into place; an existing folder (stale, or forced) is replaced."""
    if cache_dir.exists():
        old = cache_dir.parent / f".{cache_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(cache_dir, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, cache_dir)
    except OSError:
        if not is_complete(cache_dir):  # a concurrent run finishing first is fine; anything else is not
            raise


# ---------------------------------------------------------------------- loading
def load_cache(cache_dir: Path, manifest: pd.DataFrame) -> FeatureSet:
    """The FeatureSet of a complete cache folder, aligned to ``manifest``'s row order."""
    cache_dir = Path(cache_dir)
    if not is_complete(cache_dir):
        raise FileNotFoundError(f"{cache_dir}: no complete feature cache (meta.json missing); run features.extract()")
    clips = pd.read_csv(cache_dir / "clips.csv")
    skipped = pd.read_csv(cache_dir / "skipped.csv", dtype=str).fillna("")
    stored = {path: row for row, path in enumerate(clips["path"])}
    paths = [os.path.abspath(p) for p in manifest["path"].astype(str)]
    keep = np.array([p in stored for p in paths], dtype=bool)
    rows = np.array([stored[p] for p, k in zip(paths, keep) if k], dtype=np.int64)
    # copy-on-write maps: writable for torch.from_numpy, yet a write never reaches the cache file
    arrays = {name: np.load(cache_dir / f"{name}.npy", mmap_mode="c")
              for name in ("x1d", "x2d", "frames_var", "frames_var_offsets", "mel_var", "mel_var_offsets")}
    in_order = np.array_equal(rows, np.arange(len(clips)))
    x1d = arrays["x1d"] if in_order else arrays["x1d"][rows]
    x2d = arrays["x2d"] if in_order else arrays["x2d"][rows]
    return FeatureSet(manifest=manifest.loc[keep].reset_index(drop=True), x1d=x1d, x2d=x2d, skipped=skipped,
                      key=cache_dir.name, cache_dir=cache_dir, clips=clips.iloc[rows].reset_index(drop=True),
                      var_frames=arrays["frames_var"], var_frames_offsets=np.asarray(arrays["frames_var_offsets"]),
                      var_mel=arrays["mel_var"], var_mel_offsets=np.asarray(arrays["mel_var_offsets"]),
                      stored_row=rows)
