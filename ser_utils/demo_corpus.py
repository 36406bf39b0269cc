"""A CREMA-D-shaped synthetic corpus: the embedded default dataset when CREMA-D is absent.

Real CREMA-D audio cannot be fetched everywhere this project runs (no network, no Git LFS),
yet every notebook, test and command needs audio laid out exactly like CREMA-D. This module
writes such a corpus from nothing: eSpeak NG (through the ``espeakng-loader`` wheel) speaks
the 12 CREMA-D sentences for every actor, emotion and level of the CREMA-D grid, and numpy /
scipy post-processing adds voice quality and recording conditions.

Why it is useful and not a toy: the emotions are rendered from the published acoustic
correlates of vocal emotion (Murray & Arnott 1993) -- pitch level and range, speech rate,
loudness, spectral tilt, breathiness, tremor and jitter -- scaled by the intensity level,
by each synthetic actor's expressiveness and per-emotion skill, with actor-specific habits and
per-clip random variation. Models therefore have something real to learn, and the classes
overlap the way acted emotions do (far from 100% separable).

Why it is labelled everywhere: no number computed on it is a CREMA-D result. The corpus
root holds ``README.txt`` (first line ``SYNTHETIC DEMO CORPUS - NOT CREMA-D``) and the marker
``demo_corpus.json`` that the dataset code uses to detect it; the marker is written last and
atomically, so an interrupted generation is recognisable by its absence.

Determinism: eSpeak NG keeps process-global synthesis state (pitch flutter phase, wave phase)
that leaks from one utterance into the next and cannot be reset through its API, and seeds its
noise generator from the clock. So each actor is rendered in a fresh worker process, always in
the same clip order; eSpeak's noise generator is re-seeded before every clip; and every random
draw comes from a generator seeded by ``(seed, file name)`` through a SHA-256 hash. The same
seed therefore gives byte-identical files whatever ``jobs`` is. Because workers are started
with ``forkserver`` (or ``spawn``), a script calling :func:`generate` needs the usual
``if __name__ == "__main__":`` guard (notebooks and ``python -m ser_utils`` are fine).

Importing this module has no side effects: eSpeak is loaded and initialised on first use,
once per process.
"""

from __future__ import annotations

import csv
import ctypes
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ser_utils.config import (
    DEMO_CORPUS_DIR,
    EMOTIONS,
    FIRST_ACTOR,
    LEVELLED_SENTENCE,
    N_ACTORS,
    SAMPLE_RATE,
    SENTENCES,
)

__all__ = [
    "AUDIO_SUBDIR",
    "CORPUS_MARKER",
    "DEFAULT_OUT_DIR",
    "DEMOGRAPHICS_FILE",
    "GENERATOR_VERSION",
    "README_FIRST_LINE",
    "ActorProfile",
    "ClipPlan",
    "EmotionStyle",
    "STYLES",
    "actor_clip_names",
    "clip_names",
    "espeak_version",
    "generate",
    "is_demo_corpus",
    "make_actors",
    "plan_clip",
    "render_clip",
    "write_demographics",
]

# ------------------------------------------------------------------------- constants
CORPUS_MARKER = "demo_corpus.json"
#: Written first and removed last: lets a re-run overwrite an interrupted generation.
PARTIAL_MARKER = ".demo_corpus.partial"
GENERATOR = "ser_utils.demo_corpus"
#: Bump when the rendering changes, so cached features of an older corpus are not reused.
GENERATOR_VERSION = "1.0"
README_FIRST_LINE = "SYNTHETIC DEMO CORPUS - NOT CREMA-D"
AUDIO_SUBDIR = "AudioWAV"
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
README_FILE = "README.txt"
DEFAULT_OUT_DIR = DEMO_CORPUS_DIR

#: CREMA-D's 91 actors are 48 male and 43 female; smaller corpora keep the ratio.
MALE_FRACTION = 48 / 91
MIN_AGE, MAX_AGE = 20, 74
#: (value, probability) close to the real actor pool's make-up.
RACES = (("Caucasian", 0.67), ("African American", 0.24), ("Asian", 0.08), ("Unknown", 0.01))
ETHNICITIES = (("Not Hispanic", 0.89), ("Hispanic", 0.11))

#: eSpeak NG voices: American English, a few New York accents for variety.
BASE_VOICES = (("en-us", 0.85), ("en-us-nyc", 0.15))
#: eSpeak NG voice variants (``voices/!v``) that sound human, by sex.
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "Andy", "Lee", "travis", "victor")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Andrea", "belinda", "linda", "steph")

ESPEAK_VOLUME = 70  # < 100 leaves headroom: some variants clip inside eSpeak at 100
#: eSpeak's pitch parameter (0-100) against the F0 it gives, in semitones from pitch 50
#: (measured on en-us, +f1 and +Alicia with librosa.yin; the voices share it roughly).
PITCH_PARAM_GRID = (0.0, 25.0, 50.0, 75.0, 100.0)
PITCH_SEMITONE_GRID = (-6.5, -3.4, 0.0, 4.4, 8.9)

#: CREMA-D clips last about 1.3-5 s; room noise either side makes voice activity detection matter.
MIN_DURATION_S, MAX_DURATION_S = 1.3, 5.0
PAD_RANGE_S = (0.15, 0.7)
MAX_SPEECH_S = 4.5
LEVEL_RANGE_DBFS = (-30.0, -12.0)  # speech RMS
SNR_RANGE_DB = (15.0, 40.0)
PEAK_LIMIT = 0.97

#: How strongly each intensity level is acted; XX (unspecified) is about MD.
LEVEL_SCALE = {"LO": 0.5, "MD": 1.0, "HI": 1.5, "XX": 1.0}

_WAV_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")


# ----------------------------------------------------------------------- the grid
def actor_clip_names(actor: int) -> list[str]:
    """The 82 CREMA-D file names of one actor, in a fixed order (the rendering order).

    Sentence IEO is recorded at LO, MD and HI for the five non-neutral emotions and at XX for
    neutral; the other 11 sentences at XX for all six emotions: 6 + 15 + 66 = 82.
    """
    names = []
    for sentence in SENTENCES:
        for emotion in EMOTIONS:
            if sentence == LEVELLED_SENTENCE and emotion != "NEU":
                levels = ("LO", "MD", "HI")
            else:
                levels = ("XX",)
            names.extend(f"{actor}_{sentence}_{emotion}_{level}.wav" for level in levels)
    return names


def clip_names(n_actors: int = N_ACTORS) -> list[str]:
    """Every file name of the CREMA-D grid for actors 1001 .. 1000 + n_actors (7,462 for 91)."""
    _check_n_actors(n_actors)
    return [name for actor in _actor_ids(n_actors) for name in actor_clip_names(actor)]


def _actor_ids(n_actors: int) -> range:
    return range(FIRST_ACTOR, FIRST_ACTOR + n_actors)


def _parse_name(name: str) -> tuple[int, str, str, str]:
    match = _WAV_NAME.match(name)
    if not match:
        raise ValueError(f"not a CREMA-D file name: {name!r}")
    actor, sentence, emotion, level = match.groups()
    return int(actor), sentence, emotion, level


def _check_n_actors(n_actors: int) -> None:
    if isinstance(n_actors, bool) or not isinstance(n_actors, (int, np.integer)) or not (
        1 <= n_actors <= N_ACTORS
    ):
        raise ValueError(f"n_actors must be an integer from 1 to {N_ACTORS}, got {n_actors!r}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


# ---------------------------------------------------------------------- randomness
def _stable_int(*parts: object) -> int:
    """A 128-bit integer from the parts' text: stable across runs and platforms, unlike hash()."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:16], "little")


def _rng(seed: int, *tags: object) -> np.random.Generator:
    """An independent generator for one purpose (e.g. ``"plan", file_name``) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _stable_int(*tags)]))


def _choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    values, weights = zip(*options)
    weights = np.asarray(weights, dtype=float)
    return values[int(rng.choice(len(values), p=weights / weights.sum()))]


# ------------------------------------------------------------------------- actors
@dataclass(frozen=True)
class ActorProfile:
    """One synthetic actor: demographics, voice, speaking habits and recording session.

    The session fields model CREMA-D's recording conditions, which vary by actor more than
    by clip (same booth, microphone placement and gain within a session).
    """

    actor_id: int
    sex: str
    age: int
    race: str
    ethnicity: str
    voice: str  # eSpeak NG voice name, e.g. "en-us+m3"
    pitch: float  # eSpeak pitch parameter at neutral (0-100)
    rate: float  # words per minute at neutral
    pitch_range: float  # eSpeak range parameter at neutral (0-100)
    expressiveness: float  # multiplies every emotional deviation
    skill: dict  # emotion -> how convincingly this actor portrays it (multiplier)
    vocal_tract: float  # frequency scale applied at resampling (formants and F0)
    breath: float  # baseline breathiness (noise / voice RMS)
    tremor: float  # baseline vocal tremor depth (fraction of F0)
    jitter: float  # baseline slow F0 irregularity (fraction of F0)
    level_dbfs: float  # session speech level
    snr_db: float  # session signal-to-noise ratio
    noise_slope: float  # room noise spectrum ~ 1 / f ** noise_slope
    hum_db: float  # mains hum relative to the noise floor (-inf: none)
    hum_hz: float
    rt60_s: float  # room reverberation time
    drr_db: float  # direct-to-reverberant ratio
    highpass_hz: float  # microphone / preamp low cut
    mic_tilt_db: float  # microphone brightness


def _sexes(n_actors: int, seed: int) -> list[str]:
    """48:43 male:female as closely as n allows, both present when n >= 2, order seeded."""
    n_male = int(round(n_actors * MALE_FRACTION))
    if n_actors >= 2:
        n_male = min(max(n_male, 1), n_actors - 1)
    sexes = np.array(["Male"] * n_male + ["Female"] * (n_actors - n_male))
    return list(_rng(seed, "sexes", n_actors).permutation(sexes))


def _draw_age(rng: np.random.Generator) -> int:
    """Mostly young adults with a tail to 74, like the CREMA-D actor pool."""
    if rng.random() < 0.6:
        return int(rng.integers(MIN_AGE, 36))
    return int(rng.integers(36, MAX_AGE + 1))


def _draw_actor(actor_id: int, sex: str, seed: int) -> ActorProfile:
    rng = _rng(seed, "actor", actor_id)
    age = _draw_age(rng)
    variants = MALE_VARIANTS if sex == "Male" else FEMALE_VARIANTS
    voice = f"{_choice(rng, BASE_VOICES)}+{variants[int(rng.integers(len(variants)))]}"
    pitch = rng.uniform(40, 70) if sex == "Male" else rng.uniform(30, 55)
    rate = rng.uniform(150, 195) * (1 - 0.004 * max(0, age - 40))
    older = max(0, age - 50) / 25
    hum = rng.random() < 0.3
    return ActorProfile(
        actor_id=actor_id,
        sex=sex,
        age=age,
        race=_choice(rng, RACES),
        ethnicity=_choice(rng, ETHNICITIES),
        voice=voice,
        pitch=float(pitch),
        rate=float(rate),
        pitch_range=float(rng.uniform(35, 65)),
        expressiveness=float(np.clip(rng.lognormal(0.0, 0.3), 0.4, 1.8)),
        skill={e: float(rng.uniform(0.5, 1.3)) for e in EMOTIONS},
        vocal_tract=float(rng.uniform(0.94, 1.06)),
        breath=float(rng.uniform(0.01, 0.05) * (1 + older)),
        tremor=float(rng.uniform(0.001, 0.004) * (1 + older)),
        jitter=float(rng.uniform(0.001, 0.004) * (1 + older)),
        level_dbfs=float(rng.uniform(-26, -17)),
        snr_db=float(rng.uniform(20, 35)),
        noise_slope=float(rng.uniform(0.6, 1.6)),
        hum_db=float(rng.uniform(-12, 0)) if hum else float("-inf"),
        hum_hz=60.0,
        rt60_s=float(rng.uniform(0.1, 0.4)),
        drr_db=float(rng.uniform(6, 20)),
        highpass_hz=float(rng.uniform(50, 120)),
        mic_tilt_db=float(rng.normal(0, 1.5)),
    )


def make_actors(n_actors: int = N_ACTORS, seed: int = 42) -> list[ActorProfile]:
    """The synthetic actors 1001 .. 1000 + n_actors (no audio, no eSpeak: cheap to test)."""
    _check_n_actors(n_actors)
    _check_seed(seed)
    sexes = _sexes(n_actors, seed)
    return [_draw_actor(a, s, seed) for a, s in zip(_actor_ids(n_actors), sexes)]


def write_demographics(path: Path | str, actors: list[ActorProfile]) -> Path:
    """``VideoDemographics.csv`` in the real file's format: strings quoted, numbers not."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
    for a in actors:
        writer.writerow([a.actor_id, a.age, a.sex, a.race, a.ethnicity])
    return _write_atomic(Path(path), buf.getvalue().encode())


# ------------------------------------------------------------------------ emotions
@dataclass(frozen=True)
class EmotionStyle:
    """How one emotion departs from the actor's neutral voice at intensity 1 (about MD).

    Directions follow Murray & Arnott (1993), Table 1: anger -- much higher and wider pitch,
    louder, slightly faster, brighter; disgust -- very much lower pitch, slightly wider range,
    much slower, grumbled (darker, creaky); fear -- very much higher and wider pitch, much
    faster, irregular voicing (tremor, jitter), breathy; happiness -- higher, much wider
    pitch, slightly faster, smooth upward inflections, brighter; sadness -- slightly lower,
    narrower pitch, slower, quieter, breathy and darker, downward inflections.
    """

    pitch_st: float = 0.0  # mean pitch shift, semitones
    range_log: float = 0.0  # log factor on the pitch range
    rate_log: float = 0.0  # log factor on the speech rate
    loud_db: float = 0.0  # speech level
    tilt_db: float = 0.0  # high-shelf gain (> 0 brighter)
    breath_log: float = 0.0  # log factor on breathiness
    tremor: float = 0.0  # added F0 tremor depth (fraction)
    jitter: float = 0.0  # added slow F0 irregularity (fraction)
    amp_tremor: float = 0.0  # amplitude tremor depth (fraction)
    word_gap: float = 0.0  # extra pause between words, eSpeak units of 10 ms
    final_pitch_pct: float = 0.0  # last word: + rises, - falls
    final_rate_pct: float = 0.0  # last word lengthening (-) or clipping (+)
    focus_pitch_pct: float = 0.0  # one stressed word
    focus_volume_pct: float = 0.0
    focus_rate_pct: float = 0.0
    p_exclaim: float = 0.05  # chance of an exclamation tune ("!")
    p_question: float = 0.03  # chance of a question tune ("?")


STYLES: dict[str, EmotionStyle] = {
    "ANG": EmotionStyle(3.0, 0.40, 0.06, 6.0, 4.5, -0.6, 0.0, 0.004, 0.0, 0,
                        -5, 0, 12, 40, -5, 0.55, 0.02),
    "DIS": EmotionStyle(-3.5, 0.10, -0.20, -1.0, -3.0, 0.3, 0.0, 0.006, 0.02, 2,
                        -10, -20, -10, 10, -30, 0.15, 0.05),
    "FEA": EmotionStyle(5.5, 0.40, 0.20, 1.5, 1.0, 0.7, 0.025, 0.010, 0.12, 0,
                        10, 10, 15, 0, 10, 0.30, 0.15),
    "HAP": EmotionStyle(2.0, 0.45, 0.05, 2.5, 2.5, 0.3, 0.0, 0.002, 0.0, 0,
                        20, 0, 12, 15, 0, 0.45, 0.03),
    "NEU": EmotionStyle(),
    "SAD": EmotionStyle(-1.2, -0.45, -0.18, -4.5, -3.5, 1.0, 0.008, 0.003, 0.05, 3,
                        -12, -15, -4, -15, -15, 0.03, 0.03),
}

#: Per-clip spread of every cue, whatever the emotion: what makes the classes overlap.
CLIP_SPREAD = EmotionStyle(
    pitch_st=1.0, range_log=0.15, rate_log=0.06, loud_db=1.5, tilt_db=1.5, breath_log=0.3,
    tremor=0.002, jitter=0.002, amp_tremor=0.01, word_gap=0.8, final_pitch_pct=8.0,
    final_rate_pct=8.0, focus_pitch_pct=6.0, focus_volume_pct=10.0, focus_rate_pct=8.0,
)
#: Actors' idiosyncratic way of portraying an emotion, relative to CLIP_SPREAD.
ACTOR_HABIT = 0.7
#: Spread of each cue's realisation around the style (log-normal sigma).
CUE_REALISATION = 0.25


# ----------------------------------------------------------------------- clip plan
@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render one clip; a pure function of (actor, file name, seed)."""

    name: str
    voice: str
    text: str  # SSML for eSpeak
    rate: int
    pitch: int
    pitch_range: int
    word_gap: int
    intensity: float
    tremor: float
    tremor_hz: float
    jitter: float
    amp_tremor: float
    amp_tremor_hz: float
    breath: float
    tilt_db: float
    tilt_hz: float
    highpass_hz: float
    vocal_tract: float
    level_dbfs: float
    snr_db: float
    drr_db: float
    noise_offset: float  # where in the session's room noise this clip starts (0-1)
    lead_s: float
    trail_s: float


def _pitch_param(base: float, shift_st: float) -> int:
    """eSpeak pitch parameter that shifts ``base``'s F0 by ``shift_st`` semitones."""
    st = np.interp(base, PITCH_PARAM_GRID, PITCH_SEMITONE_GRID) + shift_st
    return int(round(float(np.clip(np.interp(st, PITCH_SEMITONE_GRID, PITCH_PARAM_GRID), 0, 100))))


def _intensity(actor: ActorProfile, emotion: str, level: str, rng: np.random.Generator) -> float:
    """How strongly this clip carries its emotion: level x actor x a clip-to-clip draw.

    One clip in six is acted flatly (x0.3), as many acted clips are unconvincing: CREMA-D's
    listeners recognised only 41% of the intended emotions from the voice alone.
    """
    flat = 0.3 if rng.random() < 1 / 6 else 1.0
    realisation = rng.lognormal(0.0, 0.35) * flat
    return LEVEL_SCALE[level] * actor.expressiveness * actor.skill[emotion] * realisation


def _cues(actor: ActorProfile, emotion: str, intensity: float, seed: int,
          rng: np.random.Generator) -> dict[str, float]:
    """Each cue = style x intensity x realisation + the actor's habit + clip noise."""
    style = asdict(STYLES[emotion])
    spread = asdict(CLIP_SPREAD)
    habit_rng = _rng(seed, "habit", actor.actor_id, emotion)
    cues = {}
    for key, value in style.items():
        if key.startswith("p_"):
            continue
        habit = habit_rng.normal(0.0, spread[key] * ACTOR_HABIT) if emotion != "NEU" else 0.0
        realised = value * intensity * rng.lognormal(0.0, CUE_REALISATION)
        cues[key] = float(realised + habit + rng.normal(0.0, spread[key]))
    return cues


def _terminal(style: EmotionStyle, intensity: float, rng: np.random.Generator) -> str:
    """Sentence-final punctuation: picks eSpeak's statement, exclamation or question tune."""
    w = min(1.0, intensity)
    neutral = STYLES["NEU"]
    p_excl = w * style.p_exclaim + (1 - w) * neutral.p_exclaim
    p_quest = w * style.p_question + (1 - w) * neutral.p_question
    u = rng.random()
    return "!" if u < p_excl else "?" if u < p_excl + p_quest else "."


def _pct(value: float, low: float = -50.0, high: float = 80.0) -> str:
    """An SSML relative change, bounded so that extreme draws stay speech-like."""
    return f"{int(round(min(max(value, low), high))):+d}%"


def _ssml(sentence: str, cues: dict[str, float], terminal: str, rng: np.random.Generator) -> str:
    """The sentence with one stressed (focus) word and a shaped last word.

    Every clip gets the same tag structure, whatever the emotion, so the markup itself is
    no cue; the punctuation sits inside the last tag (outside, eSpeak adds a pause).
    """
    words = [w.replace("&", "&amp;").replace("<", "&lt;") for w in sentence.split()]
    focus = int(rng.integers(len(words) - 1))
    words[focus] = (
        f'<prosody pitch="{_pct(cues["focus_pitch_pct"])}" '
        f'volume="{_pct(cues["focus_volume_pct"])}" rate="{_pct(cues["focus_rate_pct"])}">'
        f"{words[focus]}</prosody>"
    )
    words[-1] = (
        f'<prosody pitch="{_pct(cues["final_pitch_pct"])}" rate="{_pct(cues["final_rate_pct"])}">'
        f"{words[-1]}{terminal}</prosody>"
    )
    return "<speak>" + " ".join(words) + "</speak>"


def plan_clip(actor: ActorProfile, name: str, seed: int) -> ClipPlan:
    """All the random choices for one clip, drawn from a generator seeded by (seed, name)."""
    actor_id, sentence, emotion, level = _parse_name(name)
    if actor_id != actor.actor_id:
        raise ValueError(f"{name} does not belong to actor {actor.actor_id}")
    rng = _rng(seed, "plan", name)
    intensity = _intensity(actor, emotion, level, rng)
    c = _cues(actor, emotion, intensity, seed, rng)
    text = _ssml(SENTENCES[sentence], c, _terminal(STYLES[emotion], intensity, rng), rng)
    level_db = actor.level_dbfs + c["loud_db"]
    return ClipPlan(
        name=name,
        voice=actor.voice,
        text=text,
        rate=int(round(np.clip(actor.rate * math.exp(c["rate_log"]), 110, 320))),
        pitch=_pitch_param(actor.pitch, c["pitch_st"]),
        pitch_range=int(round(np.clip(actor.pitch_range * math.exp(c["range_log"]), 5, 100))),
        word_gap=int(np.clip(round(c["word_gap"]), 0, 8)),
        intensity=float(intensity),
        tremor=float(max(0.0, actor.tremor + c["tremor"])),
        tremor_hz=float(rng.uniform(4.0, 8.0)),
        jitter=float(max(0.0, actor.jitter + c["jitter"])),
        amp_tremor=float(np.clip(c["amp_tremor"], 0.0, 0.4)),
        amp_tremor_hz=float(rng.uniform(4.0, 8.0)),
        breath=float(np.clip(actor.breath * math.exp(c["breath_log"]), 0.0, 0.5)),
        tilt_db=float(np.clip(actor.mic_tilt_db + c["tilt_db"], -12, 12)),
        tilt_hz=float(rng.uniform(700, 1500)),
        highpass_hz=actor.highpass_hz,
        vocal_tract=actor.vocal_tract,
        level_dbfs=float(np.clip(level_db, *LEVEL_RANGE_DBFS)),
        snr_db=float(np.clip(actor.snr_db + rng.normal(0, 2.5), *SNR_RANGE_DB)),
        drr_db=float(actor.drr_db + rng.normal(0, 1.0)),
        noise_offset=float(rng.random()),
        lead_s=float(rng.uniform(*PAD_RANGE_S)),
        trail_s=float(rng.uniform(*PAD_RANGE_S)),
    )


# -------------------------------------------------------------------------- eSpeak
class _EspeakVoice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# speak_lib.h enums
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _load_library() -> ctypes.CDLL:
    """libespeak-ng from the espeakng-loader wheel, with the speak_lib.h signatures."""
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise RuntimeError(
            "the demo corpus needs eSpeak NG: pip install espeakng-loader"
        ) from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_EspeakVoice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    return lib


def _load_libc() -> ctypes.CDLL | None:
    """The C library, whose rand() eSpeak's wave generator may also draw from."""
    try:
        return ctypes.CDLL(None) if os.name != "nt" else ctypes.cdll.msvcrt
    except (OSError, AttributeError):  # pragma: no cover - exotic platforms
        return None


def espeak_version() -> str:
    """The eSpeak NG version string (loads the library; does not initialise it)."""
    return _load_library().espeak_Info(None).decode()


class _Espeak:
    """eSpeak NG in synchronous mode: text in, int16 samples at 22,050 Hz out.

    eSpeak's state is process-global, so there is one instance per process (:func:`_engine`).
    Rate, pitch, range, volume and word gap persist between calls, so :meth:`synth` sets all
    of them every time.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = _load_library()
        self._libc = _load_libc()
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise with data at {data.decode()}")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive by this reference
        self.lib.espeak_SetSynthCallback(self._callback)
        self._voices = self._list("")
        self._variants = self._list("variant")
        self._checked: set[str] = set()

    def _collect(self, wav, n_samples, _events) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = go on synthesising

    def _list(self, languages: str) -> set[str]:
        """Identifiers' last component (``en-us``, ``m3``) of voices or of variants."""
        spec = None
        if languages:
            spec = _EspeakVoice()
            spec.languages = languages.encode()
        found = self.lib.espeak_ListVoices(ctypes.byref(spec) if spec else None)
        names, i = set(), 0
        while found[i]:
            names.add(found[i].contents.identifier.decode().rsplit("/", 1)[-1])
            i += 1
        return names

    def set_voice(self, voice: str) -> None:
        """Select ``base+variant``; eSpeak ignores unknown variants silently, so check first."""
        if voice not in self._checked:
            base, _, variant = voice.partition("+")
            if base.lower() not in {v.lower() for v in self._voices}:
                raise ValueError(f"eSpeak NG has no voice {base!r}")
            if variant and variant not in self._variants:
                raise ValueError(f"eSpeak NG has no voice variant {variant!r}")
            self._checked.add(voice)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG could not select voice {voice!r}")

    def seed(self, value: int) -> None:
        """Seed eSpeak's noise generators (breath, aspiration); else they follow the clock."""
        value &= 0x7FFFFFFF
        if hasattr(self.lib, "espeak_ng_SetRandSeed"):
            self.lib.espeak_ng_SetRandSeed(value)
        if self._libc is not None:
            self._libc.srand(ctypes.c_uint(value))

    def synth(self, text: str, voice: str, *, rate: int, pitch: int, pitch_range: int,
              volume: int = ESPEAK_VOLUME, word_gap: int = 0, ssml: bool = True,
              seed: int = 0) -> np.ndarray:
        """Speak ``text`` (SSML when ``ssml``) and return its int16 samples."""
        self.set_voice(voice)
        self.seed(seed)
        for param, value in ((_RATE, rate), (_VOLUME, volume), (_PITCH, pitch),
                             (_RANGE, pitch_range), (_WORDGAP, word_gap)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        data = text.encode() + b"\0"
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"eSpeak NG failed (status {status}) on {text!r}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)


_ENGINE: _Espeak | None = None


def _engine() -> _Espeak:
    """This process's eSpeak, initialised on first use."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


# ------------------------------------------------------------------- voice quality
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _trim(x: np.ndarray, sr: int, threshold: float = 1e-3, margin_s: float = 0.01) -> np.ndarray:
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


def _voice_quality(raw: np.ndarray, sr: int, plan: ClipPlan,
                   rng: np.random.Generator) -> np.ndarray:
    """eSpeak output -> expressive voice at 16 kHz (speech only, no pads yet)."""
    x = _trim(raw.astype(np.float64) / 32768.0, sr)
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
class _Session:
    """One actor's recording room, built once per worker: the same room for all 82 clips."""

    reverb_tail: np.ndarray
    noise: np.ndarray  # unit RMS, SESSION_NOISE_S long; each clip reads a stretch of it


SESSION_NOISE_S = 12.0
_SESSIONS: dict[tuple[int, int], tuple[ActorProfile, _Session]] = {}


def _session(actor: ActorProfile, seed: int) -> _Session:
    key = (int(seed), actor.actor_id)
    cached = _SESSIONS.get(key)
    if cached is not None and cached[0] == actor:
        return cached[1]
    rng = _rng(seed, "session", actor.actor_id)
    sr = SAMPLE_RATE
    session = _Session(
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


def _record(speech: np.ndarray, plan: ClipPlan, session: _Session) -> np.ndarray:
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


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def render_clip(actor: ActorProfile, name: str, seed: int) -> np.ndarray:
    """One clip as int16 samples at 16 kHz (uses this process's eSpeak)."""
    plan = plan_clip(actor, name, seed)
    engine = _engine()
    rng = _rng(seed, "dsp", name)
    rate = plan.rate
    for _ in range(4):  # very slow renditions are sped up to fit the 5 s limit
        raw = engine.synth(plan.text, plan.voice, rate=rate, pitch=plan.pitch,
                           pitch_range=plan.pitch_range, word_gap=plan.word_gap,
                           seed=_stable_int(seed, "espeak", name))
        speech_s = len(_trim(raw / 32768.0, engine.sample_rate)) / engine.sample_rate
        speech_s /= plan.vocal_tract
        if speech_s <= MAX_SPEECH_S:
            break
        rate = int(math.ceil(rate * speech_s / (MAX_SPEECH_S - 0.3)))
    speech = _voice_quality(raw, engine.sample_rate, plan, rng)
    return _to_pcm16(_record(speech, plan, _session(actor, seed)))


# ---------------------------------------------------------------------------- files
def _write_atomic(path: Path, data: bytes) -> Path:
    """Write via a temporary file in the same folder and os.replace: never a half file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _wav_bytes(samples: np.ndarray) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _render_actor(task: tuple[ActorProfile, int, str]) -> tuple[int, list[float]]:
    """Worker: write one actor's 82 clips in a fixed order; return (actor, durations)."""
    actor, seed, audio_dir = task
    durations = []
    for name in actor_clip_names(actor.actor_id):
        samples = render_clip(actor, name, seed)
        _write_atomic(Path(audio_dir) / name, _wav_bytes(samples))
        durations.append(len(samples) / SAMPLE_RATE)
    return actor.actor_id, durations


#: Imported once by the fork server, so that each fresh worker does not pay for it (~2 s).
_PRELOAD = ("scipy.signal", "scipy.ndimage", "scipy.fft", "soxr", "soundfile", "tqdm.auto")


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where available (clean children, fast), else spawn -- never plain fork.

    Fork would copy the parent's eSpeak state (if it ever synthesised), breaking determinism,
    and is unsafe in threaded parents such as Jupyter kernels.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD) + [__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _check_out_dir(out: Path) -> None:
    """Refuse to write into what looks like a real corpus (wavs, but no demo marker)."""
    audio = out / AUDIO_SUBDIR
    if not audio.is_dir() or is_demo_corpus(out) or (out / PARTIAL_MARKER).exists():
        return
    if any(_WAV_NAME.match(p.name) for p in audio.iterdir()):
        raise FileExistsError(
            f"{audio} already holds CREMA-D-named wavs and is not a demo corpus; "
            "choose another --out folder"
        )


def _remove_stale_clips(audio: Path, keep: set[str]) -> None:
    """Drop clips of actors beyond n_actors left by an earlier, larger demo corpus."""
    for path in audio.iterdir():
        if _WAV_NAME.match(path.name) and path.name not in keep:
            path.unlink()


def _run_workers(actors: list[ActorProfile], seed: int, audio: Path, jobs: int,
                 progress: bool) -> list[float]:
    """Render every actor in its own fresh worker process (see the module docstring)."""
    from tqdm.auto import tqdm

    tasks = [(a, seed, str(audio)) for a in actors]
    durations: list[float] = []
    total = sum(len(actor_clip_names(a.actor_id)) for a in actors)
    with tqdm(total=total, desc="demo corpus", unit="clip", disable=not progress) as bar:
        with _pool_context().Pool(processes=jobs, maxtasksperchild=1) as pool:
            for _, clip_durations in pool.imap_unordered(_render_actor, tasks):
                durations.extend(clip_durations)
                bar.update(len(clip_durations))
    return durations


def _readme_text(n_actors: int, seed: int, n_clips: int, version: str) -> str:
    return f"""{README_FIRST_LINE}

This folder is laid out like the CREMA-D repository (AudioWAV/AAAA_SSS_EEE_LL.wav and
VideoDemographics.csv) but holds no CREMA-D data. It was synthesised by {GENERATOR}
{GENERATOR_VERSION} so that the notebooks and tests run where CREMA-D is unavailable.
No number computed on it is a CREMA-D result.

How it was made
- Speech: eSpeak NG {version} (espeakng-loader wheel), American English voices with
  male (+m1..+m7 and others) or female (+f1..+f5 and others) variants per synthetic actor.
- Actors: {n_actors} (IDs {FIRST_ACTOR}-{FIRST_ACTOR + n_actors - 1}), each with a sex (48:43
  male:female ratio), an age, a voice, a baseline pitch, pitch range, speech rate and
  vocal-tract length, an expressiveness and a per-emotion skill, drawn from the seed.
  Demographics in VideoDemographics.csv are invented.
- Emotions (Murray & Arnott 1993): anger - higher pitch, wider range, louder, slightly faster,
  brighter; disgust - much lower pitch, slower, darker, creaky; fear - much higher and wider
  pitch, faster, tremor, jitter, breathy; happiness - higher pitch, much wider range, upward
  final inflections, brighter; sadness - slightly lower and narrower pitch, slower, quieter,
  breathy, darker, falling inflections; neutral - the actor's baseline. Deviations scale with
  the level (LO 0.5, MD 1, HI 1.5, XX 1), the actor's expressiveness and skill, the actor's own
  habits and per-clip random variation (one clip in six acted flatly), so classes overlap.
- Voice quality: breathiness (envelope-shaped noise), tremor and jitter (time warping),
  amplitude tremor, spectral tilt (first-order shelf), microphone low cut.
- Recording: resampled 22,050 -> 16,000 Hz (soxr), speech level -30..-12 dBFS, small-room
  reverberation, 1/f-type room noise (some sessions with 60 Hz hum) at 15-40 dB SNR, with
  0.2-0.8 s of room noise before and after the speech; clips last 1.3-5 s; 16-bit mono PCM.
- Seed: {seed}. Clips: {n_clips}. The same seed gives byte-identical files.
"""


def _marker(n_actors: int, seed: int, n_clips: int, version: str, durations: list[float],
            actors: list[ActorProfile]) -> dict:
    d = np.asarray(durations) if durations else np.zeros(1)
    return {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "synthetic": True,
        "note": "Synthetic demo corpus: no number computed on it is a CREMA-D result.",
        "seed": int(seed),
        "n_actors": int(n_actors),
        "n_clips": int(n_clips),
        "espeak_ng": version,
        "sample_rate": SAMPLE_RATE,
        "duration_s": {"min": round(float(d.min()), 3), "median": round(float(np.median(d)), 3),
                       "max": round(float(d.max()), 3)},
        "actors": [asdict(a) for a in actors],
    }


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()


def _json_safe(actors: list[ActorProfile]) -> list[ActorProfile]:
    """JSON has no -inf: the marker records 'no hum' as None."""
    from dataclasses import replace

    return [replace(a, hum_db=None) if not math.isfinite(a.hum_db) else a for a in actors]


def is_demo_corpus(root: Path | str) -> bool:
    """True when ``root`` (the corpus root) holds the demo-corpus marker file."""
    return (Path(root) / CORPUS_MARKER).is_file()


def generate(out_dir: Path | str = DEFAULT_OUT_DIR, n_actors: int = N_ACTORS, seed: int = 42,
             jobs: int | None = None, progress: bool = True) -> Path:
    """Write the synthetic CREMA-D-shaped corpus under ``out_dir`` and return ``out_dir``.

    Files: ``AudioWAV/*.wav`` (82 per actor, 7,462 for 91 actors), ``VideoDemographics.csv``,
    ``README.txt`` and, last, the marker ``demo_corpus.json``. Other content of ``out_dir``
    is left alone; a previous demo corpus there is overwritten.
    """
    _check_n_actors(n_actors)
    _check_seed(seed)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out)
    audio = out / AUDIO_SUBDIR
    audio.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / PARTIAL_MARKER, b"generation in progress\n")
    (out / CORPUS_MARKER).unlink(missing_ok=True)  # absent until the corpus is complete

    actors = make_actors(n_actors, seed)
    _remove_stale_clips(audio, set(clip_names(n_actors)))
    write_demographics(out / DEMOGRAPHICS_FILE, actors)
    durations = _run_workers(actors, seed, audio, min(jobs, n_actors), progress)
    version = espeak_version()
    n_clips = len(durations)
    _write_atomic(out / README_FILE, _readme_text(n_actors, seed, n_clips, version).encode())
    marker = _marker(n_actors, seed, n_clips, version, durations, _json_safe(actors))
    _write_atomic(out / CORPUS_MARKER, _json_bytes(marker))
    (out / PARTIAL_MARKER).unlink(missing_ok=True)
    return out


if __name__ == "__main__":  # pragma: no cover - convenience: python -m ser_utils.demo_corpus DIR
    generate(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT_DIR)
