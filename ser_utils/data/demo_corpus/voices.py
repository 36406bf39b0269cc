"""The synthetic actors and how they act: who speaks, with which voice, in which emotion style.

Why this is more than a toy: the emotions are rendered from the published acoustic correlates
of vocal emotion (Murray & Arnott 1993) -- pitch level and range, speech rate, loudness,
spectral tilt, breathiness, tremor and jitter -- scaled by the intensity level, by each
synthetic actor's expressiveness and per-emotion skill, with actor-specific habits and per-clip
random variation. Models therefore have something real to learn, and the classes overlap the
way acted emotions do (far from 100% separable).

Everything here is a pure function of ``(seed, actor, file name)``: no audio, no eSpeak, cheap
to test. :func:`plan_clip` turns one CREMA-D file name into a :class:`ClipPlan`, all the random
choices the renderer (``writer``) then hands to eSpeak and to the DSP (``acoustics``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ser_utils.config import EMOTIONS, FIRST_ACTOR, N_ACTORS, SEED, SENTENCES
from ser_utils.data.dataset import grid_names, parse_name
from ser_utils.data.demo_corpus.seeding import check_seed, seeded_rng, weighted_choice
from ser_utils.errors import UserError

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

#: eSpeak's pitch parameter (0-100) against the F0 it gives, in semitones from pitch 50
#: (measured on en-us, +f1 and +Alicia with librosa.yin; the voices share it roughly).
PITCH_PARAM_GRID = (0.0, 25.0, 50.0, 75.0, 100.0)
PITCH_SEMITONE_GRID = (-6.5, -3.4, 0.0, 4.4, 8.9)

#: Room noise before and after the speech: makes voice activity detection matter.
PAD_RANGE_S = (0.15, 0.7)
LEVEL_RANGE_DBFS = (-30.0, -12.0)  # speech RMS
SNR_RANGE_DB = (15.0, 40.0)

#: How strongly each intensity level is acted; XX (unspecified) is about MD.
LEVEL_SCALE = {"LO": 0.5, "MD": 1.0, "HI": 1.5, "XX": 1.0}


# ----------------------------------------------------------------------- the grid
def actor_clip_names(actor: int) -> list[str]:
    """The 82 CREMA-D file names of one actor, in a fixed order (the rendering order).

    Sentence IEO is recorded at LO, MD and HI for the five non-neutral emotions and at XX for
    neutral; the other 11 sentences at XX for all six emotions: 6 + 15 + 66 = 82.
    """
    return grid_names([actor])


def clip_names(n_actors: int = N_ACTORS) -> list[str]:
    """Every file name of the CREMA-D grid for actors 1001 .. 1000 + n_actors (7,462 for 91)."""
    check_n_actors(n_actors)
    return grid_names(actor_ids(n_actors))


def actor_ids(n_actors: int) -> range:
    """The IDs of the first ``n_actors`` actors (1001 ..)."""
    return range(FIRST_ACTOR, FIRST_ACTOR + n_actors)


def check_n_actors(n_actors: int) -> None:
    """Refuse anything but an integer from 1 to 91 (the CREMA-D actor pool)."""
    if isinstance(n_actors, bool) or not isinstance(n_actors, (int, np.integer)) or not (
        1 <= n_actors <= N_ACTORS
    ):
        raise UserError(f"n_actors must be an integer from 1 to {N_ACTORS}, got {n_actors!r}")


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
    return list(seeded_rng(seed, "sexes", n_actors).permutation(sexes))


def _draw_age(rng: np.random.Generator) -> int:
    """Mostly young adults with a tail to 74, like the CREMA-D actor pool."""
    if rng.random() < 0.6:
        return int(rng.integers(MIN_AGE, 36))
    return int(rng.integers(36, MAX_AGE + 1))


def _draw_actor(actor_id: int, sex: str, seed: int) -> ActorProfile:
    rng = seeded_rng(seed, "actor", actor_id)
    age = _draw_age(rng)
    variants = MALE_VARIANTS if sex == "Male" else FEMALE_VARIANTS
    voice = f"{weighted_choice(rng, BASE_VOICES)}+{variants[int(rng.integers(len(variants)))]}"
    pitch = rng.uniform(40, 70) if sex == "Male" else rng.uniform(30, 55)
    rate = rng.uniform(150, 195) * (1 - 0.004 * max(0, age - 40))
    older = max(0, age - 50) / 25
    hum = rng.random() < 0.3
    return ActorProfile(
        actor_id=actor_id,
        sex=sex,
        age=age,
        race=weighted_choice(rng, RACES),
        ethnicity=weighted_choice(rng, ETHNICITIES),
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


def make_actors(n_actors: int = N_ACTORS, seed: int = SEED) -> list[ActorProfile]:
    """The synthetic actors 1001 .. 1000 + n_actors (no audio, no eSpeak: cheap to test)."""
    check_n_actors(n_actors)
    check_seed(seed)
    sexes = _sexes(n_actors, seed)
    return [_draw_actor(a, s, seed) for a, s in zip(actor_ids(n_actors), sexes)]


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
    habit_rng = seeded_rng(seed, "habit", actor.actor_id, emotion)
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
    try:
        clip = parse_name(name)
    except ValueError as err:
        raise ValueError(f"{name!r}: {err}") from err
    sentence, emotion, level = clip.sentence, clip.emotion, clip.intensity
    if clip.actor != actor.actor_id:
        raise ValueError(f"{name} does not belong to actor {actor.actor_id}")
    rng = seeded_rng(seed, "plan", name)
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
