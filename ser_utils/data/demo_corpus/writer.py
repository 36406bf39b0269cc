"""Writing the corpus: rendering clips, the parallel pool, the files, the README and the marker.

Why workers: eSpeak NG keeps process-global synthesis state (pitch flutter phase, wave phase)
that leaks from one utterance into the next and cannot be reset through its API. So each actor
is rendered in a fresh worker process (``max_tasks_per_child=1``), always in the same clip order;
eSpeak's noise generator is re-seeded before every clip; and every random draw comes from a
generator seeded by ``(seed, file name)``. The same seed therefore gives byte-identical files
whatever ``jobs`` is. Workers start with ``forkserver`` (or ``spawn``), never plain ``fork``
(:mod:`ser_utils.workers`).

Why the marker is last: ``demo_corpus.json`` (``dataset.DEMO_MARKER``) is what the dataset code
uses to recognise the corpus as synthetic; it is written last and atomically, and a partial
marker is present while generation runs, so an interrupted generation is recognisable. The
partial marker records the seed, the generator version and the actors finished so far: a re-run
with the same seed resumes (finished actors are kept, the others rendered whole, since an actor's
clips depend on the eSpeak state of the clips before them); any other re-run overwrites. Every file goes through :mod:`ser_utils.fileio` (never half a file).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ser_utils.config import DEMO_CORPUS_DIR, FIRST_ACTOR, N_ACTORS, SAMPLE_RATE, SEED
from ser_utils.data.dataset import DEMO_MARKER, DEMOGRAPHICS_FILE, NAME_PATTERN
from ser_utils.data.dataset import is_synthetic as is_demo_corpus
from ser_utils.data.demo_corpus.acoustics import (
    MAX_SPEECH_S,
    record,
    recording_session,
    to_pcm16,
    trim,
    voice_quality,
)
from ser_utils.data.demo_corpus.espeak import engine as espeak_engine
from ser_utils.data.demo_corpus.espeak import espeak_version
from ser_utils.data.demo_corpus.seeding import check_seed, seeded_rng, stable_int
from ser_utils.data.demo_corpus.voices import (
    ActorProfile,
    actor_clip_names,
    check_n_actors,
    clip_names,
    make_actors,
    plan_clip,
)
from ser_utils import workers
from ser_utils.fileio import json_text, write_bytes
from ser_utils.errors import UserError

#: The corpus marker is the dataset's: one name, defined there.
CORPUS_MARKER = DEMO_MARKER
#: Written first and removed last: lets a re-run overwrite an interrupted generation.
PARTIAL_MARKER = ".demo_corpus.partial"
GENERATOR = "ser_utils.data.demo_corpus"
#: Bump when the rendering changes, so cached features of an older corpus are not reused.
GENERATOR_VERSION = "1.0"
README_FIRST_LINE = "SYNTHETIC DEMO CORPUS - NOT CREMA-D"
AUDIO_SUBDIR = "AudioWAV"
README_FILE = "README.txt"
DEFAULT_OUT_DIR = DEMO_CORPUS_DIR


# ---------------------------------------------------------------------------- clips
def render_clip(actor: ActorProfile, name: str, seed: int) -> np.ndarray:
    """One clip as int16 samples at 16 kHz (uses this process's eSpeak)."""
    plan = plan_clip(actor, name, seed)
    engine = espeak_engine()
    rng = seeded_rng(seed, "dsp", name)
    rate = plan.rate
    for _ in range(4):  # very slow renditions are sped up to fit the 5 s limit
        raw = engine.synth(plan.text, plan.voice, rate=rate, pitch=plan.pitch,
                           pitch_range=plan.pitch_range, word_gap=plan.word_gap,
                           seed=stable_int(seed, "espeak", name))
        speech_s = len(trim(raw / 32768.0, engine.sample_rate)) / engine.sample_rate
        speech_s /= plan.vocal_tract
        if speech_s <= MAX_SPEECH_S:
            break
        rate = int(math.ceil(rate * speech_s / (MAX_SPEECH_S - 0.3)))
    speech = voice_quality(raw, engine.sample_rate, plan, rng)
    return to_pcm16(record(speech, plan, recording_session(actor, seed)))


# ---------------------------------------------------------------------------- files
def _wav_bytes(samples: np.ndarray) -> bytes:
    """A 16 kHz mono 16-bit PCM WAV file's bytes (written atomically by the caller)."""
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
        write_bytes(Path(audio_dir) / name, _wav_bytes(samples))
        durations.append(len(samples) / SAMPLE_RATE)
    return actor.actor_id, durations


def _check_out_dir(out: Path) -> None:
    """Refuse to write into what looks like a real corpus (wavs, but no demo marker)."""
    audio = out / AUDIO_SUBDIR
    if not audio.is_dir() or is_demo_corpus(out) or (out / PARTIAL_MARKER).exists():
        return
    if any(NAME_PATTERN.match(p.name) for p in audio.iterdir()):
        raise UserError(
            f"{audio} already holds CREMA-D-named wavs and is not a demo corpus; "
            "choose another --out folder"
        )


def _remove_stale_clips(audio: Path, keep: set[str]) -> None:
    """Drop clips of actors beyond n_actors left by an earlier, larger demo corpus."""
    for path in audio.iterdir():
        if NAME_PATTERN.match(path.name) and path.name not in keep:
            path.unlink()


def _run_workers(actors: list[ActorProfile], seed: int, out: Path, jobs: int, progress: bool) -> list[float]:
    """Render every actor in its own fresh worker process (see the module docstring); actors the
    partial marker lists as finished by an interrupted run with the same seed are kept."""
    from tqdm.auto import tqdm

    audio = out / AUDIO_SUBDIR
    state = _partial_state(out, seed)
    kept = [a for a in actors if a.actor_id in state["finished"] and _actor_durations(audio, a) is not None]
    durations = [d for a in kept for d in _actor_durations(audio, a)]
    state["finished"] = sorted(a.actor_id for a in kept)
    tasks = [(a, seed, str(audio)) for a in actors if a not in kept]
    total = sum(len(actor_clip_names(a.actor_id)) for a in actors)
    with tqdm(total=total, initial=len(durations), desc="demo corpus", unit="clip", disable=not progress) as bar:
        # one fresh process per actor (max_tasks_per_child=1): eSpeak keeps state between
        # utterances, and the bytes must not depend on which actors a worker rendered before
        for actor_id, clip_durations in workers.imap_unordered(
                _render_actor, tasks, jobs, describe=lambda task: f"actor {task[0].actor_id}", what="actor",
                after="the actors finished so far are kept; run the same command again to finish the corpus",
                max_tasks_per_child=1):
            durations.extend(clip_durations)
            state["finished"].append(actor_id)
            write_bytes(out / PARTIAL_MARKER, json_text(state).encode())
            bar.update(len(clip_durations))
    return durations


def _partial_state(out: Path, seed: int) -> dict:
    """The partial marker's record of an interrupted run with this seed and generator version, or a fresh one."""
    import json

    fresh = {"seed": int(seed), "version": GENERATOR_VERSION, "finished": []}
    try:
        state = json.loads((out / PARTIAL_MARKER).read_text())
    except (OSError, ValueError):
        return fresh
    if not isinstance(state, dict) or {k: state.get(k) for k in ("seed", "version")} != {
            "seed": fresh["seed"], "version": fresh["version"]} or not isinstance(state.get("finished"), list):
        return fresh
    return {**fresh, "finished": [int(a) for a in state["finished"]]}


def _actor_durations(audio: Path, actor: ActorProfile) -> list[float] | None:
    """The durations of an actor's clips on disk, in render order; None when one is missing or unreadable."""
    import soundfile

    try:
        return [soundfile.info(str(audio / name)).frames / SAMPLE_RATE for name in actor_clip_names(actor.actor_id)]
    except (OSError, RuntimeError, soundfile.LibsndfileError):
        return None


def write_demographics(path: Path | str, actors: list[ActorProfile]) -> Path:
    """``VideoDemographics.csv`` in the real file's format: strings quoted, numbers not."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
    for a in actors:
        writer.writerow([a.actor_id, a.age, a.sex, a.race, a.ethnicity])
    return write_bytes(path, buf.getvalue().encode())


def _readme_text(n_actors: int, seed: int, n_clips: int, version: str) -> str:
    """README.txt: says synthetic on its first line, and how the corpus was made."""
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
    """The marker's content: the parameters and the actors (strict JSON: no hum is null)."""
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


def generate(out_dir: Path | str = DEFAULT_OUT_DIR, n_actors: int = N_ACTORS, seed: int = SEED,
             jobs: int | None = None, progress: bool = True) -> Path:
    """Write the synthetic CREMA-D-shaped corpus under ``out_dir`` and return ``out_dir``.

    Files: ``AudioWAV/*.wav`` (82 per actor, 7,462 for 91 actors), ``VideoDemographics.csv``,
    ``README.txt`` and, last, the marker ``demo_corpus.json``. Other content of ``out_dir``
    is left alone; a previous demo corpus there is overwritten.
    """
    check_n_actors(n_actors)
    check_seed(seed)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"jobs must be a positive integer, got {jobs!r}")
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out)
    audio = out / AUDIO_SUBDIR
    audio.mkdir(parents=True, exist_ok=True)
    if not (out / PARTIAL_MARKER).exists():
        write_bytes(out / PARTIAL_MARKER, json_text(_partial_state(out, seed)).encode())
    (out / CORPUS_MARKER).unlink(missing_ok=True)  # absent until the corpus is complete

    actors = make_actors(n_actors, seed)
    _remove_stale_clips(audio, set(clip_names(n_actors)))
    write_demographics(out / DEMOGRAPHICS_FILE, actors)
    durations = _run_workers(actors, seed, out, min(jobs, n_actors), progress)
    version = espeak_version()
    n_clips = len(durations)
    write_bytes(out / README_FILE, _readme_text(n_actors, seed, n_clips, version).encode())
    marker = _marker(n_actors, seed, n_clips, version, durations, actors)
    # bytes, not write_json: the same file on every platform (no newline translation)
    write_bytes(out / CORPUS_MARKER, json_text(marker).encode())
    (out / PARTIAL_MARKER).unlink(missing_ok=True)
    return out

