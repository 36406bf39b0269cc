"""Waveform augmentation (``--augment wave``): speed perturbation, gain and additive noise at a
random SNR, applied to a loaded clip before preprocessing and feature extraction.

Why our own numpy/soxr code rather than a library: audiomentations 0.43 (the maintained numpy
library) requires ``soxr < 1.0`` and would downgrade the soxr 1.1 our preprocessing resamples
with (which is part of the feature cache key: every cache would be recomputed, and the numbers
could move); torch-audiomentations requires torchaudio, whose wheels pin a torch version for
which none is published here. The operations are short and standard: speed perturbation is a
resampling, as Kaldi recipes do with sox (factors 0.9, 1.0, 1.1: tempo and pitch change
together); coloured noise is white noise shaped to a 1/f^exponent power spectrum; the other
noise is the non-speech parts (before and after the speech region the VAD found) of other
training clips, so nothing is downloaded.

Note: the preprocessing z-scores every clip, so a gain changes the features only through the
voice activity detection (which is level-dependent) and the noise added after it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser_utils import config
from ser_utils.config import WaveAugmentConfig
from ser_utils.data import audio

#: Non-speech pieces shorter than this are not worth keeping in the noise bank (seconds).
MIN_NOISE_S = 0.1


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS float32 noise of ``n`` samples with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 2 else 1.0
    spectrum = spectrum / freqs ** (exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return (noise / max(np.sqrt(np.mean(noise ** 2)), 1e-12)).astype(np.float32)


def add_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` plus ``noise`` (as long as it) scaled to ``snr_db`` dB below the signal's power."""
    power_signal = float(np.mean(np.square(signal, dtype=np.float64)))
    power_noise = max(float(np.mean(np.square(noise, dtype=np.float64))), 1e-20)
    scale = np.sqrt(power_signal / (power_noise * 10.0 ** (snr_db / 10.0)))
    return (signal + scale * noise).astype(np.float32)


def speed(signal: np.ndarray, factor: float, sample_rate: int = config.SAMPLE_RATE) -> np.ndarray:
    """Speed perturbation: played ``factor`` times faster (shorter by 1/factor, pitch up by factor)."""
    if factor == 1.0:
        return signal
    return audio.resample(signal, int(round(sample_rate * factor)), sample_rate)


def gain(signal: np.ndarray, db: float) -> np.ndarray:
    return (signal * 10.0 ** (db / 20.0)).astype(np.float32)


def non_speech(untrimmed: np.ndarray, start: int, end: int, sample_rate: int = config.SAMPLE_RATE) -> list[np.ndarray]:
    """The parts of a clip before ``start`` and after ``end`` (its speech region), when long enough
    and not silent: the room and noise floor of a recording, without its voice."""
    pieces = [untrimmed[:start], untrimmed[end:]]
    return [np.asarray(p, np.float32) for p in pieces if len(p) >= MIN_NOISE_S * sample_rate and np.std(p) > 1e-6]


@dataclass
class NoiseBank:
    """Non-speech pieces of training clips, concatenated, with the clip each came from."""

    samples: np.ndarray  # float32, every piece end to end
    offsets: np.ndarray  # int64 [n_pieces + 1]
    sources: np.ndarray  # str [n_pieces]: the clip (file name) of each piece

    def __len__(self) -> int:
        return len(self.sources)

    def piece(self, i: int) -> np.ndarray:
        return self.samples[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def from_pieces(cls, pieces: Sequence[tuple[str, np.ndarray]]) -> "NoiseBank":
        lengths = [len(p) for _, p in pieces]
        samples = np.concatenate([p for _, p in pieces]).astype(np.float32) if pieces else np.zeros(0, np.float32)
        return cls(samples, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   np.array([s for s, _ in pieces], dtype=str))

    def draw(self, n: int, rng: np.random.Generator, exclude: str = "") -> np.ndarray | None:
        """``n`` samples of one piece from another clip than ``exclude`` (looped from a random
        offset), unit RMS; None when the bank has no such piece."""
        candidates = np.flatnonzero(self.sources != exclude)
        if candidates.size == 0:
            return None
        piece = self.piece(int(rng.choice(candidates)))
        looped = np.resize(np.roll(piece, -int(rng.integers(len(piece)))), n).astype(np.float64)
        looped -= looped.mean()
        return (looped / max(np.sqrt(np.mean(looped ** 2)), 1e-12)).astype(np.float32)


def clip_rng(seed: int, copy: int, name: str) -> np.random.Generator:
    """The generator of one augmented copy: the same seed, copy and clip name give the same draw."""
    return np.random.default_rng([seed, copy, zlib.crc32(name.encode())])


def augment_wave(signal: np.ndarray, rng: np.random.Generator, cfg: WaveAugmentConfig = WaveAugmentConfig(),
                 bank: NoiseBank | None = None, source: str = "",
                 sample_rate: int = config.SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """One augmented copy of a loaded clip and what was drawn: speed, then gain, then noise."""
    factor = float(rng.choice(cfg.speeds))
    level = float(rng.uniform(*cfg.gain_db))
    snr = float(rng.uniform(*cfg.snr_db))
    out = gain(speed(signal, factor, sample_rate), level)
    noise, kind = None, ""
    if bank is not None and len(bank) and rng.random() < cfg.p_babble:
        noise, kind = bank.draw(len(out), rng, exclude=source), "non-speech of another clip"
    if noise is None:
        exponent = float(rng.choice(cfg.noise_exponents))
        noise, kind = coloured_noise(len(out), exponent, rng), f"1/f^{exponent:g} noise"
    return add_at_snr(out, noise, snr), {"speed": factor, "gain_db": level, "snr_db": snr, "noise": kind}
