"""Voice quality and recording conditions: eSpeak's dry output -> a clip recorded in a room.

Why: eSpeak alone sounds clean and uniform; acted emotion also lives in voice quality
(breathiness, tremor, jitter, spectral tilt) and CREMA-D's clips carry their recording session
(level, microphone, small-room reverberation, room noise, sometimes mains hum). Every function
here is plain numpy / scipy DSP driven by a :class:`~ser_utils.data.demo_corpus.voices.ClipPlan` and
a seeded generator, so it is deterministic; scipy, soxr are imported on first use.

Each actor's room (reverberation tail and a stretch of room noise) is built once per worker
process (:func:`recording_session`) and shared by the actor's 82 clips.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ser_utils.config import SAMPLE_RATE
from ser_utils.data.demo_corpus.seeding import seeded_rng

if TYPE_CHECKING:  # annotations only: the DSP reads the plan's fields, nothing else
    from ser_utils.data.demo_corpus.voices import ActorProfile, ClipPlan

#: CREMA-D clips last about 1.3-5 s.
MIN_DURATION_S, MAX_DURATION_S = 1.3, 5.0
#: Longest speech the renderer accepts (it speeds up slower renditions): leaves room for pads.
MAX_SPEECH_S = 4.5
PEAK_LIMIT = 0.97


# ------------------------------------------------------------------- voice quality
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def trim(x: np.ndarray, sr: int, threshold: float = 1e-3, margin_s: float = 0.01) -> np.ndarray:
    """Drop eSpeak's leading and trailing silence; the corpus adds its own room-noise pads."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if len(loud) == 0:
        return x
    margin = int(margin_s * sr)
    return x[max(0, loud[0] - margin): loud[-1] + margin + 1]


def _warp(x: np.ndarray, sr: int, tremor: float, tremor_hz: float, jitter: float,
          rng: np.random.Generator) -> np.ndarray:
    """Tremor and jitter as a time-varying playback rate: F0 (and formants) wobble slightly.

    Tremor is a sinusoid at 4-8 Hz; jitter is a random rate curve with knots every 25 ms.
    """
    n = len(x)
    if n < 2 or (tremor <= 0 and jitter <= 0):
        return x
    t = np.arange(n) / sr
    rate = 1.0 + tremor * np.sin(2 * np.pi * tremor_hz * t + rng.uniform(0, 2 * np.pi))
    knots = rng.standard_normal(int(t[-1] / 0.025) + 2) * jitter
    rate += np.interp(t, np.arange(len(knots)) * 0.025, knots)
    position = np.cumsum(np.clip(rate, 0.5, 1.5)) - rate[0]
    position = position[position <= n - 1]
    return np.interp(position, np.arange(n), x)


def _amp_tremor(x: np.ndarray, sr: int, depth: float, hz: float,
                rng: np.random.Generator) -> np.ndarray:
    if depth <= 0:
        return x
    t = np.arange(len(x)) / sr
    return x * (1.0 + depth * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi)))


def _envelope(x: np.ndarray, sr: int, win_s: float = 0.02) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(np.abs(x), size=max(1, int(win_s * sr)), mode="constant")


@functools.lru_cache(maxsize=256)
def _highpass_sos(cutoff_hz: float, sr: int) -> np.ndarray:
    """Second-order Butterworth high-pass (cached: designing it costs more than running it)."""
    from scipy.signal import butter

    return butter(2, cutoff_hz, btype="highpass", fs=sr, output="sos")


def _breath(x: np.ndarray, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Breathiness: high-passed noise that follows the voice's envelope, at ``amount`` x its RMS."""
    from scipy.signal import sosfilt

    if amount <= 0 or len(x) == 0:
        return x
    white = rng.standard_normal(len(x), dtype=np.float32)
    noise = sosfilt(_highpass_sos(1500.0, sr), white) * _envelope(x, sr)
    scale = amount * _rms(x) / max(_rms(noise), 1e-12)
    return x + scale * noise


def _shelf_sos(sr: int, gain_db: float, corner_hz: float) -> np.ndarray:
    """Spectral tilt: a first-order high shelf (unity at DC, ``gain_db`` at high frequencies)."""
    gain = 10 ** (gain_db / 20)
    k = 2.0 * sr
    wc = k * math.tan(math.pi * corner_hz / sr)  # pre-warped corner
    # bilinear transform of H(s) = (gain s + wc) / (s + wc), as one second-order section
    b0, b1 = (gain * k + wc) / (k + wc), (wc - gain * k) / (k + wc)
    return np.array([[b0, b1, 0.0, 1.0, (wc - k) / (k + wc), 0.0]])


def _microphone(x: np.ndarray, sr: int, tilt_db: float, tilt_hz: float,
                highpass_hz: float) -> np.ndarray:
    """Spectral tilt (voice effort and microphone) and the microphone's low cut, in one pass."""
    from scipy.signal import sosfilt

    sos = np.vstack([_shelf_sos(sr, tilt_db, tilt_hz), _highpass_sos(float(highpass_hz), sr)])
    return sosfilt(sos, x)


def _resample(x: np.ndarray, sr: int, vocal_tract: float) -> np.ndarray:
    """To 16 kHz; reading the input as ``vocal_tract`` x faster scales F0 and formants."""
    import soxr

    return soxr.resample(x, sr * vocal_tract, SAMPLE_RATE)


def voice_quality(raw: np.ndarray, sr: int, plan: ClipPlan,
                   rng: np.random.Generator) -> np.ndarray:
    """eSpeak output -> expressive voice at 16 kHz (speech only, no pads yet)."""
    x = trim(raw.astype(np.float64) / 32768.0, sr)
    x = _warp(x, sr, plan.tremor, plan.tremor_hz, plan.jitter, rng)
    x = _amp_tremor(x, sr, plan.amp_tremor, plan.amp_tremor_hz, rng)
    x = _breath(x, sr, plan.breath, rng)
    x = _resample(x, sr, plan.vocal_tract)
    return _microphone(x, SAMPLE_RATE, plan.tilt_db, plan.tilt_hz, plan.highpass_hz)


# -------------------------------------------------------------- recording conditions
def _active_rms(x: np.ndarray, sr: int, floor_db: float = -30.0) -> float:
    """Speech RMS over 20 ms frames within ``floor_db`` of the loudest: pauses don't count."""
    frame = int(0.02 * sr)
    n = len(x) // frame
    if n == 0:
        return _rms(x)
    power = np.mean(np.square(x[: n * frame].reshape(n, frame)), axis=1)
    active = power[power >= power.max() * 10 ** (floor_db / 10)]
    return float(np.sqrt(np.mean(active)))


def _reverb_tail(sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A small room's reverberation: unit-energy noise decaying by 60 dB in ``rt60`` seconds."""
    n = max(1, int(rt60 * sr))
    tail = rng.standard_normal(n) * np.exp(-6.908 * np.arange(1, n + 1) / sr / rt60)
    return tail / max(math.sqrt(float(np.sum(tail**2))), 1e-12)


def _room_noise(n: int, sr: int, slope: float, hum_db: float, hum_hz: float,
                rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS stationary noise with a 1/f**slope power spectrum, plus optional mains hum."""
    import scipy.fft

    n_fft = scipy.fft.next_fast_len(n, real=True)  # arbitrary lengths can be very slow
    spectrum = scipy.fft.rfft(rng.standard_normal(n_fft))
    spectrum *= np.maximum(np.fft.rfftfreq(n_fft, 1 / sr), 20.0) ** (-slope / 2)
    noise = scipy.fft.irfft(spectrum, n_fft)[:n]
    noise /= max(_rms(noise), 1e-12)
    if np.isfinite(hum_db):
        t = np.arange(n) / sr
        phase = rng.uniform(0, 2 * np.pi)
        hum = sum(np.sin(2 * np.pi * k * hum_hz * t + phase * k) / k for k in (1, 2, 3))
        noise += hum * (10 ** (hum_db / 20) / max(_rms(hum), 1e-12))
    return noise


@dataclass(frozen=True)
class Session:
    """One actor's recording room, built once per worker: the same room for all 82 clips."""

    reverb_tail: np.ndarray
    noise: np.ndarray  # unit RMS, SESSION_NOISE_S long; each clip reads a stretch of it


SESSION_NOISE_S = 12.0
_SESSIONS: dict[tuple[int, int], tuple[ActorProfile, Session]] = {}


def recording_session(actor: ActorProfile, seed: int) -> Session:
    """The actor's room under ``seed``, cached in this process (a worker renders one actor)."""
    key = (int(seed), actor.actor_id)
    cached = _SESSIONS.get(key)
    if cached is not None and cached[0] == actor:
        return cached[1]
    rng = seeded_rng(seed, "session", actor.actor_id)
    sr = SAMPLE_RATE
    session = Session(
        reverb_tail=_reverb_tail(sr, actor.rt60_s, rng),
        noise=_room_noise(int(SESSION_NOISE_S * sr), sr, actor.noise_slope, actor.hum_db,
                          actor.hum_hz, rng),
    )
    if len(_SESSIONS) > 8:
        _SESSIONS.clear()
    _SESSIONS[key] = (actor, session)
    return session


def _fit_pads(speech_s: float, lead_s: float, trail_s: float) -> tuple[float, float]:
    """Shrink or stretch the pads so the clip lasts within the CREMA-D range (1.3-5 s)."""
    lo, hi = MIN_DURATION_S + 0.02, MAX_DURATION_S - 0.02
    total = speech_s + lead_s + trail_s
    if total > hi:
        scale = max(hi - speech_s, 0.0) / (lead_s + trail_s)
        lead_s, trail_s = lead_s * scale, trail_s * scale
    elif total < lo:
        extra = (lo - total) / 2
        lead_s, trail_s = lead_s + extra, trail_s + extra
    return lead_s, trail_s


def record(speech: np.ndarray, plan: ClipPlan, session: Session) -> np.ndarray:
    """Place the speech in a room: level, reverberation, noise pads, noise floor, no clipping."""
    from scipy.signal import fftconvolve

    sr = SAMPLE_RATE
    speech = speech * (10 ** (plan.level_dbfs / 20) / max(_active_rms(speech, sr), 1e-12))
    lead_s, trail_s = _fit_pads(len(speech) / sr, plan.lead_s, plan.trail_s)
    lead, trail = int(round(lead_s * sr)), int(round(trail_s * sr))
    n = lead + len(speech) + trail
    impulse = np.concatenate(([1.0], session.reverb_tail * 10 ** (-plan.drr_db / 20)))
    wet = fftconvolve(speech, impulse)[: n - lead]
    clip = np.zeros(n)
    clip[lead: lead + len(wet)] = wet
    start = int(plan.noise_offset * (len(session.noise) - n))
    noise_rms = 10 ** ((plan.level_dbfs - plan.snr_db) / 20)
    clip += noise_rms * session.noise[start: start + n]
    peak = float(np.max(np.abs(clip)))
    if peak > PEAK_LIMIT:
        clip *= PEAK_LIMIT / peak
    return clip


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) -> int16, rounded and saturated."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
