"""The synthetic demo corpus: CREMA-D's layout and formats, determinism, and real emotion cues.

Small corpora only (2-4 actors, 164-328 clips) so the file runs in well under a minute.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_utils.data import dataset
from ser_utils.data import demo_corpus as dc
from ser_utils.errors import UserError
from ser_utils.config import EMOTIONS, N_CLIPS_GRID, SENTENCES
from ser_utils.data.demo_corpus.espeak import engine
from ser_utils.data.demo_corpus.writer import _remove_stale_clips

NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")


def _generate(root: Path, **kwargs) -> Path:
    kwargs.setdefault("seed", 42)
    kwargs.setdefault("progress", False)
    return dc.generate(root, **kwargs)


def _wavs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / dc.AUDIO_SUBDIR).glob("*.wav"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two actors, rendered by two workers."""
    return _generate(tmp_path_factory.mktemp("demo2"), n_actors=2, jobs=2)


@pytest.fixture(scope="module")
def corpus4(tmp_path_factory) -> Path:
    """Four actors: enough to see the emotion cues through actor and clip variation."""
    return _generate(tmp_path_factory.mktemp("demo4"), n_actors=4, jobs=2)


# ------------------------------------------------------------------------ layout
def test_file_names_follow_the_crema_d_grid(corpus):
    names = sorted(_wavs(corpus))
    assert len(names) == 164
    assert names == sorted(dc.clip_names(2))
    parsed = [NAME.match(n).groups() for n in names]
    assert {p[0] for p in parsed} == {"1001", "1002"}
    for actor in ("1001", "1002"):
        mine = [p for p in parsed if p[0] == actor]
        assert len(mine) == 82
        assert {p[1] for p in mine} == set(SENTENCES)
        assert {p[2] for p in mine} == set(EMOTIONS)
        ieo = Counter((p[2], p[3]) for p in mine if p[1] == "IEO")
        assert ieo[("NEU", "XX")] == 1
        for emotion in set(EMOTIONS) - {"NEU"}:
            assert {lvl for (e, lvl) in ieo if e == emotion} == {"LO", "MD", "HI"}
        assert all(p[3] == "XX" for p in mine if p[1] != "IEO")


def test_full_grid_has_7462_names():
    names = dc.clip_names(91)
    assert len(names) == len(set(names)) == N_CLIPS_GRID
    assert names[0].startswith("1001_") and names[-1].startswith("1091_")


def test_no_temporary_files_are_left(corpus):
    leftovers = [p.name for p in corpus.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []
    assert not (corpus / dc.PARTIAL_MARKER).exists()


# ------------------------------------------------------------------------- audio
def test_audio_is_16khz_mono_pcm16_within_crema_d_durations(corpus):
    durations = []
    for path in (corpus / dc.AUDIO_SUBDIR).glob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (
            16_000, 1, "PCM_16", "WAV"), path.name
        durations.append(info.duration)
        assert 1.3 <= info.duration <= 5.0, (path.name, info.duration)
    assert 2.0 <= float(np.median(durations)) <= 3.0


def test_clips_are_speech_over_room_noise_without_clipping(corpus):
    for path in sorted((corpus / dc.AUDIO_SUBDIR).glob("1001_*.wav"))[:20]:
        x, sr = sf.read(path, dtype="int16")
        assert np.abs(x.astype(int)).max() < 32767, path.name
        x = x / 32768.0
        frames = x[: len(x) // 320 * 320].reshape(-1, 320)
        level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        # loud speech somewhere, and a noise floor (never digital silence) at the edges
        assert level.max() > -30, path.name
        assert level[0] > -90 and level[-1] > -90, path.name
        assert level.max() - min(level[0], level[-1]) > 10, path.name


# ------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes_whatever_jobs(corpus, tmp_path):
    again = _generate(tmp_path / "again", n_actors=2, jobs=1)
    assert _wavs(again) == _wavs(corpus)
    for name in (dc.DEMOGRAPHICS_FILE, "README.txt", dc.CORPUS_MARKER):
        assert (again / name).read_bytes() == (corpus / name).read_bytes(), name


def test_another_seed_gives_other_audio(corpus, tmp_path):
    other = _wavs(_generate(tmp_path / "other", n_actors=2, jobs=2, seed=7))
    same = [name for name, data in _wavs(corpus).items() if other[name] == data]
    assert same == []


def test_clip_plan_depends_only_on_actor_name_and_seed():
    actor = dc.make_actors(2, 42)[0]
    name = "1001_IEO_ANG_HI.wav"
    assert dc.plan_clip(actor, name, 42) == dc.plan_clip(actor, name, 42)
    assert dc.plan_clip(actor, name, 42) != dc.plan_clip(actor, name, 43)
    with pytest.raises(ValueError):
        dc.plan_clip(actor, "1002_IEO_ANG_HI.wav", 42)
    with pytest.raises(ValueError, match="1001_IEO_ANG_XX.wav") as err:  # off the CREMA-D grid
        dc.plan_clip(actor, "1001_IEO_ANG_XX.wav", 42)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ demographics
def test_demographics_match_crema_d_for_91_actors(tmp_path):
    actors = dc.make_actors(91, 42)
    assert Counter(a.sex for a in actors) == {"Male": 48, "Female": 43}
    assert all(20 <= a.age <= 74 for a in actors)
    assert [a.actor_id for a in actors] == list(range(1001, 1092))
    assert all(a.voice.split("+")[1] in dc.MALE_VARIANTS for a in actors if a.sex == "Male")
    assert all(a.voice.split("+")[1] in dc.FEMALE_VARIANTS for a in actors if a.sex == "Female")
    path = dc.write_demographics(tmp_path / "VideoDemographics.csv", actors)
    lines = path.read_text().splitlines()
    assert lines[0] == '"ActorID","Age","Sex","Race","Ethnicity"'
    row = re.compile(r'^10\d\d,\d\d,"(Male|Female)","(Caucasian|African American|Asian|Unknown)",'
                     r'"(Not Hispanic|Hispanic)"$')
    assert len(lines) == 92 and all(row.match(line) for line in lines[1:]), lines[1]
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["Race"] for r in rows} >= {"Caucasian", "African American"}


@pytest.mark.parametrize("n", [2, 3, 5, 10, 45])
def test_small_corpora_keep_the_sex_ratio_and_both_sexes(n):
    sexes = Counter(a.sex for a in dc.make_actors(n, 42))
    assert sexes["Male"] >= 1 and sexes["Female"] >= 1
    assert abs(sexes["Male"] - n * 48 / 91) <= 1


def test_corpus_demographics_file(corpus):
    with (corpus / dc.DEMOGRAPHICS_FILE).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["ActorID"] for r in rows] == ["1001", "1002"]
    assert {r["Sex"] for r in rows} == {"Male", "Female"}


# ----------------------------------------------------------------- labels, marker
def test_readme_says_synthetic(corpus):
    text = (corpus / "README.txt").read_text()
    assert text.splitlines()[0] == "SYNTHETIC DEMO CORPUS - NOT CREMA-D"
    assert "eSpeak NG 1." in text and "Seed: 42" in text
    assert "No number computed on it is a CREMA-D result" in text


def test_marker_records_the_parameters(corpus):
    assert dc.CORPUS_MARKER == "demo_corpus.json"
    assert dc.is_demo_corpus(corpus) and not dc.is_demo_corpus(corpus / dc.AUDIO_SUBDIR)
    assert dataset.corpus_label(corpus) == "synthetic"  # what labels every number synthetic
    marker = json.loads((corpus / dc.CORPUS_MARKER).read_text())
    assert marker["generator"] == "ser_utils.data.demo_corpus"
    assert (marker["seed"], marker["n_actors"], marker["n_clips"]) == (42, 2, 164)
    assert marker["version"] == dc.GENERATOR_VERSION
    assert 1.3 <= marker["duration_s"]["min"] <= marker["duration_s"]["max"] <= 5.0
    newest_wav = max(p.stat().st_mtime_ns for p in (corpus / dc.AUDIO_SUBDIR).iterdir())
    assert (corpus / dc.CORPUS_MARKER).stat().st_mtime_ns >= newest_wav  # written last


# ------------------------------------------------------------------------ inputs
@pytest.mark.parametrize("n", [0, 92, -3, 2.5, "4", True])
def test_bad_n_actors_is_a_one_line_value_error(tmp_path, n):
    with pytest.raises(ValueError, match="n_actors must be an integer from 1 to 91") as err:
        dc.generate(tmp_path, n_actors=n, progress=False)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs", [{"jobs": 0}, {"seed": -1}])
def test_bad_jobs_or_seed(tmp_path, kwargs):
    with pytest.raises(ValueError):
        dc.generate(tmp_path, n_actors=1, progress=False, **kwargs)


def test_refuses_to_overwrite_a_real_corpus(tmp_path):
    audio = tmp_path / "AudioWAV"
    audio.mkdir()
    (audio / "1001_DFA_ANG_XX.wav").write_bytes(b"real data")
    with pytest.raises(UserError, match="not a demo corpus"):
        dc.generate(tmp_path, n_actors=1, progress=False)
    assert (audio / "1001_DFA_ANG_XX.wav").read_bytes() == b"real data"
    assert not dc.is_demo_corpus(tmp_path)


def test_stale_clips_of_a_larger_demo_corpus_are_removed(tmp_path):
    for name in ("1001_DFA_ANG_XX.wav", "1003_DFA_ANG_XX.wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    _remove_stale_clips(tmp_path, keep=set(dc.clip_names(2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1001_DFA_ANG_XX.wav", "notes.txt"]


def test_unknown_voices_are_rejected():
    espeak = engine()
    with pytest.raises(ValueError, match="variant"):
        espeak.set_voice("en-us+nosuchvariant")
    with pytest.raises(ValueError, match="voice"):
        espeak.set_voice("xx-nosuchlanguage")
    for variant in dc.MALE_VARIANTS + dc.FEMALE_VARIANTS:
        espeak.set_voice(f"en-us+{variant}")


# -------------------------------------------------------------------- structure
def test_imports_go_one_way_and_load_nothing():
    """dataset/config never import the generator; importing it starts no eSpeak."""
    code = (
        "import sys; import ser_utils.data.dataset, ser_utils.config\n"
        "assert not [m for m in sys.modules if m.startswith('ser_utils.data.demo_corpus')]\n"
        "import ser_utils.data.demo_corpus.espeak as e; assert e._ENGINE is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    package = Path(dc.__file__).parent
    for module in ("espeak", "seeding", "voices", "acoustics"):
        imported = {node.module for node in ast.walk(ast.parse((package / f"{module}.py").read_text()))
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert "ser_utils.data.demo_corpus.writer" not in imported, module


# -------------------------------------------------------------- emotion is real
def _prosody(path: Path) -> tuple[float, float, float]:
    """(speech level dB, median F0 in semitones, speech seconds) of one clip."""
    import librosa

    y, sr = sf.read(path)
    hop = 160
    rms = librosa.feature.rms(y=y, frame_length=512, hop_length=hop)[0]
    active = rms > rms.max() * 10 ** (-25 / 20)
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=hop)
    n = min(len(f0), len(active))
    level = 20 * np.log10(np.sqrt(np.mean(rms[active] ** 2)))
    pitch = 12 * np.log2(np.median(f0[:n][active[:n]]))
    return float(level), float(pitch), float(active.sum() * hop / sr)


@pytest.fixture(scope="module")
def prosody(corpus4):
    """Per-clip prosody relative to the actor's neutral clips (speech length: per sentence)."""
    rows = []
    for path in sorted((corpus4 / dc.AUDIO_SUBDIR).glob("*.wav")):
        actor, sentence, emotion, _ = NAME.match(path.name).groups()
        rows.append((actor, sentence, emotion, *_prosody(path)))
    actors = np.array([r[0] for r in rows])
    sentences = np.array([r[1] for r in rows])
    emotions = np.array([r[2] for r in rows])
    x = np.array([r[3:] for r in rows])
    for s in set(sentences):  # durations: relative to the sentence's mean length
        x[sentences == s, 2] = np.log(x[sentences == s, 2] / x[sentences == s, 2].mean())
    for a in set(actors):
        x[actors == a] -= x[(actors == a) & (emotions == "NEU")].mean(axis=0)
    return actors, emotions, x


def test_emotion_cues_follow_murray_and_arnott(prosody):
    _, emotions, x = prosody
    mean = {e: x[emotions == e].mean(axis=0) for e in EMOTIONS}
    level, pitch, length = 0, 1, 2
    assert mean["ANG"][level] > mean["SAD"][level] + 3  # anger louder than sadness (dB)
    assert mean["ANG"][level] > 1 and mean["SAD"][level] < -1
    assert mean["FEA"][pitch] > mean["DIS"][pitch] + 3  # fear higher than disgust (semitones)
    assert mean["FEA"][pitch] > 1 and mean["DIS"][pitch] < -1
    assert mean["HAP"][pitch] > 0.5
    assert mean["SAD"][length] > mean["FEA"][length] + 0.1  # sadness slower than fear
    assert mean["DIS"][length] > 0.05


def test_emotions_are_learnable_but_not_trivial(prosody):
    """Leave-one-actor-out nearest centroid on 3 prosody features: above chance, far from 100%."""
    actors, emotions, x = prosody
    correct = 0
    for held_out in set(actors):
        train, test = actors != held_out, actors == held_out
        scale = x[train].std(axis=0)
        centroids = np.array([x[train & (emotions == e)].mean(axis=0) for e in EMOTIONS])
        dist = (((x[test, None, :] - centroids[None]) / scale) ** 2).sum(axis=2)
        predicted = np.array(EMOTIONS)[dist.argmin(axis=1)]
        correct += int((predicted == emotions[test]).sum())
    accuracy = correct / len(emotions)
    assert 0.3 < accuracy < 0.8, accuracy
