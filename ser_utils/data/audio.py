"""Loading and preprocessing a clip: mono -> 16 kHz -> VAD trim -> z-score (report section 2).

``load`` reads whatever recording a user has (WAV from 8-bit unsigned to 32-bit float, FLAC, MP3;
through FFmpeg M4A/AAC, WebM/Opus, the sound of videos; any channel count and rate) and returns
float32 mono at the project rate. ``preprocess`` then trims the leading and trailing non-speech with a voice activity detector (VAD) and z-score normalises.

Every way a clip can be unusable raises :class:`BadClipError`, whose message is one line,
``<file>: <reason and fix>``; :func:`ser_utils.features.definitions.extract` catches it, lists the clip as
skipped and carries on, so one bad file never stops a corpus run.

VAD methods live in :data:`VAD_FUNCTIONS` (name -> per-frame speech flags) so a notebook can
run and plot them side by side; ``PreprocessConfig.vad`` picks the one preprocessing uses.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soxr

from ser_utils import config
from ser_utils.config import PreprocessConfig
from ser_utils.data import decoders
from ser_utils.data.decoders import BadClipError  # re-exported: callers catch audio.BadClipError

LFS_POINTER_PREFIX = b"version https://git-lfs"
LFS_POINTER_MAX_BYTES = 1024
SIGNAL_NAME = "<signal>"  # how errors name an in-memory signal

#: Sample rates and frame lengths the WebRTC VAD accepts (its C code supports no others).
WEBRTC_RATES = (8000, 16000, 32000, 48000)
WEBRTC_FRAME_MS = (10, 20, 30)
WEBRTC_ANALYSIS_RATE = 16_000  # other rates are resampled to this for the VAD only
#: Frames fed to a fresh WebRTC VAD before the clip (see webrtc_frames).
WEBRTC_PRIME_FRAMES = 10

#: Energy VAD: a frame is speech when louder than both (peak - RANGE) and (floor + MARGIN).
#: RANGE keeps quiet-but-real speech in clean recordings; MARGIN keeps stationary noise out
#: (frame energies of stationary noise vary by well under 10 dB), so an all-noise clip
#: finds no speech and falls back to the untrimmed clip.
ENERGY_RANGE_DB = 40.0
ENERGY_MARGIN_DB = 10.0
ENERGY_FLOOR_PERCENTILE = 10.0

#: The shortest clip worth analysing; shorter ones are bad clips, not features of zeros.
MIN_DURATION_S = 0.05
#: Below this standard deviation a z-scored clip would be numerical noise.
MIN_STD = 1e-7


@dataclass
class Preprocessed:
    """A preprocessed clip and what preprocessing did to it.

    ``speech_start``/``speech_end`` index ``untrimmed`` (the resampled mono signal before
    trimming and normalisation), so a plot can draw ``untrimmed`` and shade the kept region.
    ``signal`` is ``untrimmed[speech_start:speech_end]``, z-scored when configured.
    """

    signal: np.ndarray
    sample_rate: int
    speech_start: int
    speech_end: int
    vad_fallback: bool
    duration_in_s: float
    duration_out_s: float
    untrimmed: np.ndarray = field(repr=False)
    source: str = SIGNAL_NAME


# ------------------------------------------------------------------------ loading
def load(path: str | os.PathLike, sample_rate: int = config.SAMPLE_RATE) -> np.ndarray:
    """Read a recording as float32 mono at ``sample_rate`` (channels averaged, soxr HQ resampling).

    Any format libsndfile or FFmpeg reads (:mod:`ser_utils.data.decoders`). File-level problems
    (empty, Git LFS pointer, truncated, not audio, no audio stream) raise BadClipError before or
    instead of a decoder error, so the message says what to do.
    """
    path = Path(path)
    _check_file(path)
    data, file_rate = decoders.read(path)
    if data.shape[0] == 0:
        raise BadClipError(path, "no audio samples (header only); re-download the file")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise BadClipError(path, "NaN or infinite samples in the file; re-export it")
    return resample(mono, file_rate, sample_rate)


def resample(signal: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """soxr high-quality resampling to float32; a no-op copy-free return when the rates match."""
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if from_rate == to_rate:
        return signal
    return soxr.resample(signal, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def _check_file(path: Path) -> None:
    """Catch the bad files a decoder would report confusingly (or not at all)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadClipError(path, "file not found; rebuild the manifest") from None
    if size == 0:
        raise BadClipError(path, "empty file (0 bytes); re-download it")
    if size <= LFS_POINTER_MAX_BYTES and _starts_with(path, LFS_POINTER_PREFIX):
        raise BadClipError(path, "Git LFS pointer, not audio; run `git lfs pull` in the CREMA-D clone")
    problem = _wav_truncation(path, size)
    if problem:
        raise BadClipError(path, f"{problem}; re-download the file")


def _starts_with(path: Path, prefix: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(prefix)) == prefix


def _wav_truncation(path: Path, size: int) -> str | None:
    """Describe a RIFF/WAVE file cut short, else None.

    libsndfile silently decodes the part of a truncated file that is present, so a cut
    download would otherwise become a shorter clip. Walks the chunk list to the ``data``
    chunk and compares its declared size with the bytes on disk. Sizes 0 and 0xFFFFFFFF
    mean "unknown" (streaming writers, RF64) and are trusted. Non-RIFF files return None
    and are left to the decoder.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            handle.seek(pos)
            chunk_id, chunk_size = struct.unpack(order + "4sI", handle.read(8))
            if chunk_id == b"data":
                available = size - pos - 8
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    return f"truncated WAV (header promises {chunk_size} audio bytes, file holds {available})"
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return None  # no data chunk found: the decoder reports it


# ------------------------------------------------------------------- VAD methods
def webrtc_frames(signal: np.ndarray, sample_rate: int, cfg: PreprocessConfig) -> np.ndarray:
    """Per-frame speech flags from the WebRTC VAD (frames of ``cfg.vad_frame_ms``).

    The signal is converted to 16-bit PCM without gain: CREMA-D is 16-bit, so this hands
    the detector the recorded samples unchanged (peak-normalising would also amplify the
    room noise of quiet clips into "speech"). Rates WebRTC lacks are resampled to 16 kHz
    for the detector only; frames are in milliseconds, so the flags map back exactly.

    A fresh WebRTC VAD calls the first frames speech whatever they hold (its noise model
    starts unadapted, then hang-over extends it): on clips that open with room noise it
    flags the first ~90 ms and trimming never cuts the lead. So the detector is primed with
    the clip's WEBRTC_PRIME_FRAMES quietest frames (its own background) before the clip is
    scanned from the start.
    """
    if cfg.vad_frame_ms not in WEBRTC_FRAME_MS:
        raise ValueError(f"vad_frame_ms={cfg.vad_frame_ms}: WebRTC VAD takes 10, 20 or 30 ms frames")
    if not 0 <= cfg.vad_aggressiveness <= 3:
        raise ValueError(f"vad_aggressiveness={cfg.vad_aggressiveness}: WebRTC VAD takes 0-3")
    import webrtcvad  # deferred: only this method needs it

    rate = sample_rate if sample_rate in WEBRTC_RATES else WEBRTC_ANALYSIS_RATE
    x = resample(signal, sample_rate, rate)
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    step = rate * cfg.vad_frame_ms // 1000
    n_frames = len(pcm) // step
    frames = pcm[: n_frames * step].reshape(n_frames, step)
    vad = webrtcvad.Vad(cfg.vad_aggressiveness)
    energy = np.mean(frames.astype(np.float64) ** 2, axis=1)
    for i in np.argsort(energy, kind="stable")[:WEBRTC_PRIME_FRAMES]:
        vad.is_speech(frames[i].tobytes(), rate)
    return np.array([vad.is_speech(frame.tobytes(), rate) for frame in frames], dtype=bool)


def energy_frames(signal: np.ndarray, sample_rate: int, cfg: PreprocessConfig) -> np.ndarray:
    """Per-frame speech flags from frame energy relative to the clip's peak and noise floor.

    Level-independent and free of a trained model, it is the transparent baseline to compare
    WebRTC against. See ENERGY_* for the thresholds and why.
    """
    step = max(1, int(round(sample_rate * cfg.vad_frame_ms / 1000)))
    n_frames = len(signal) // step
    if n_frames == 0:
        return np.zeros(0, dtype=bool)
    frames = np.asarray(signal[: n_frames * step], dtype=np.float64).reshape(n_frames, step)
    level_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    floor_db = np.percentile(level_db, ENERGY_FLOOR_PERCENTILE)
    threshold = max(level_db.max() - ENERGY_RANGE_DB, floor_db + ENERGY_MARGIN_DB)
    return level_db > threshold


def no_vad_frames(signal: np.ndarray, sample_rate: int, cfg: PreprocessConfig) -> np.ndarray:
    """Every frame is speech: keeps the clip whole (the ablation without VAD)."""
    step = max(1, int(round(sample_rate * cfg.vad_frame_ms / 1000)))
    return np.ones(max(1, len(signal) // step), dtype=bool)


VadFunction = Callable[[np.ndarray, int, PreprocessConfig], np.ndarray]
#: name -> function(signal, sample_rate, cfg) returning one speech flag per cfg.vad_frame_ms frame.
VAD_FUNCTIONS: dict[str, VadFunction] = {
    "webrtc": webrtc_frames,
    "energy": energy_frames,
    "none": no_vad_frames,
}


def smooth_flags(flags: np.ndarray) -> np.ndarray:
    """Majority vote over 3 frames: drops an isolated speech frame (a click in the room
    noise would otherwise set the start) and fills a one-frame gap inside speech."""
    if len(flags) < 3:
        return flags.copy()
    padded = np.concatenate([flags[:1], flags, flags[-1:]]).astype(np.int8)
    return (padded[:-2] + padded[1:-1] + padded[2:]) >= 2


def speech_frames(signal: np.ndarray, sample_rate: int, cfg: PreprocessConfig = PreprocessConfig(),
                  method: str | None = None) -> np.ndarray:
    """Smoothed per-frame speech flags of ``method`` (default ``cfg.vad``), for plots and trimming."""
    method = cfg.vad if method is None else method
    if method not in VAD_FUNCTIONS:
        raise ValueError(f"unknown VAD method {method!r}; choose one of {', '.join(VAD_FUNCTIONS)}")
    return smooth_flags(VAD_FUNCTIONS[method](signal, sample_rate, cfg))


def speech_region(signal: np.ndarray, sample_rate: int, cfg: PreprocessConfig = PreprocessConfig(),
                  method: str | None = None) -> tuple[int, int, bool]:
    """``(start, end, fallback)`` in samples: first to last speech frame plus padding.

    Only leading and trailing non-speech is cut; pauses inside stay. With no speech frame
    (or a region shorter than MIN_DURATION_S) the whole clip is kept and ``fallback`` is True,
    so preprocessing never returns an empty signal.
    """
    n = len(signal)
    flags = speech_frames(signal, sample_rate, cfg, method)
    hits = np.flatnonzero(flags)
    if hits.size == 0:
        return 0, n, True
    to_samples = sample_rate / 1000.0
    start = int(round((hits[0] * cfg.vad_frame_ms - cfg.vad_padding_ms) * to_samples))
    end = int(round(((hits[-1] + 1) * cfg.vad_frame_ms + cfg.vad_padding_ms) * to_samples))
    start, end = max(0, start), min(n, end)
    if end - start < MIN_DURATION_S * sample_rate:
        return 0, n, True
    return start, end, False


# ------------------------------------------------------------------ preprocessing
def preprocess(path_or_signal: str | os.PathLike | np.ndarray, cfg: PreprocessConfig = PreprocessConfig(),
               sr: int | None = None) -> Preprocessed:
    """Mono -> ``cfg.sample_rate`` -> VAD trim -> z-score, the report's section 2.

    Give a file path, or a 1-D signal with its rate ``sr``. Raises BadClipError for clips
    with nothing to analyse (silent, constant, too short, non-finite after normalisation).
    """
    rate = cfg.sample_rate
    if isinstance(path_or_signal, (str, os.PathLike)):
        source = str(path_or_signal)
        untrimmed = load(path_or_signal, rate)
    else:
        source = SIGNAL_NAME
        untrimmed = _signal_input(path_or_signal, sr, rate)
    _check_signal(untrimmed, rate, source)
    start, end, fallback = speech_region(untrimmed, rate, cfg)
    signal = untrimmed[start:end]
    if cfg.zscore:
        signal = zscore(signal, source)
    return Preprocessed(signal=np.ascontiguousarray(signal, dtype=np.float32), sample_rate=rate,
                        speech_start=start, speech_end=end, vad_fallback=fallback,
                        duration_in_s=len(untrimmed) / rate, duration_out_s=(end - start) / rate,
                        untrimmed=untrimmed, source=source)


def _signal_input(signal: np.ndarray, sr: int | None, rate: int) -> np.ndarray:
    if sr is None:
        raise ValueError("preprocess(signal) needs the signal's sample rate: pass sr=")
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"preprocess(signal) takes a 1-D mono signal, got shape {signal.shape}; "
                         "average the channels first")
    if signal.size and not np.isfinite(signal).all():
        raise BadClipError(SIGNAL_NAME, "NaN or infinite samples")
    return resample(signal, sr, rate)


def _check_signal(signal: np.ndarray, rate: int, source: str) -> None:
    if signal.size == 0:
        raise BadClipError(source, "no audio samples; re-download the file")
    if signal.size < MIN_DURATION_S * rate:
        raise BadClipError(source, f"too short ({signal.size / rate * 1000:.0f} ms); not a speech clip")
    if not np.any(signal):
        raise BadClipError(source, "all silence (every sample is 0); re-record or drop the clip")
    if signal.max() == signal.min():
        raise BadClipError(source, "constant signal (no sound); re-record or drop the clip")


def zscore(signal: np.ndarray, source: str = SIGNAL_NAME) -> np.ndarray:
    """Zero mean, unit variance (statistics in float64); BadClipError if that is undefined."""
    x = signal.astype(np.float64)
    std = x.std()
    if not std > MIN_STD:
        raise BadClipError(source, f"no variation to normalise (std {std:.2g}); drop the clip")
    out = ((x - x.mean()) / std).astype(np.float32)
    if not np.isfinite(out).all():
        raise BadClipError(source, "NaN or infinite values after z-score normalisation")
    return out
