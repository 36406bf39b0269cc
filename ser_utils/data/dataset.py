"""CREMA-D file names, the manifest, the train/val/test splits, and finding the data.

Everything downstream works from the manifest: one row per clip, parsed from the file
name alone (``AAAA_SSS_EEE_LL.wav``), so a folder of CREMA-D-named wavs is all the
suite needs. Names that do not parse are skipped and listed with the reason; they never
silently join the data. A clone made without Git LFS holds 130-byte text pointers named
``.wav``; those are recognised here, before any decoder sees them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ser_utils import config
from ser_utils.errors import UserError

NAME_PATTERN = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})\.wav$")
LFS_POINTER_PREFIX = b"version https://git-lfs"
LFS_POINTER_MAX_BYTES = 1024
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
LISTENER_VOTES_FILE = Path("processedResults") / "summaryTable.csv"
DEMO_MARKER = "demo_corpus.json"  # written by ser_utils.data.demo_corpus
MANIFEST_COLUMNS = ["path", "file", "actor", "sentence", "emotion", "intensity"]

GET_DATA_HINT = (
    "get CREMA-D with `git lfs install && git clone https://github.com/CheyneyComputerScience/CREMA-D`"
    " and pass --data (or set CREMA_D_DIR), or make the demo corpus with"
    " `python -m ser_utils demo-data --out data/demo-corpus`"
)


class DataError(UserError):
    """Bad data input; the message is one line naming the file or folder and the fix."""


@dataclass(frozen=True)
class ClipName:
    """The four fields of a CREMA-D file name."""

    actor: int
    sentence: str
    emotion: str
    intensity: str


@dataclass(frozen=True)
class DataLocation:
    """Where the audio is, and the repository root that may hold the metadata files."""

    audio_dir: Path
    root: Path


# ----------------------------------------------------------------------- names
def parse_name(name: str) -> ClipName:
    """Parse ``AAAA_SSS_EEE_LL.wav`` strictly; raise ValueError saying what is wrong.

    Some CREMA-D copies hold a level ``X``: it is read as ``XX``. A name must also lie on
    the recording grid: sentence IEO at LO/MD/HI (NEU at XX), every other sentence at XX.
    """
    match = NAME_PATTERN.match(Path(name).name)
    if not match:
        raise ValueError("not a CREMA-D name (expected AAAA_SSS_EEE_LL.wav)")
    actor_s, sentence, emotion, level = match.groups()
    actor = int(actor_s)
    if level == "X":
        level = "XX"
    if not config.FIRST_ACTOR <= actor <= config.LAST_ACTOR:
        raise ValueError(f"actor {actor} outside {config.FIRST_ACTOR}-{config.LAST_ACTOR}")
    if sentence not in config.SENTENCES:
        raise ValueError(f"unknown sentence code {sentence}")
    if emotion not in config.EMOTIONS:
        raise ValueError(f"unknown emotion code {emotion}")
    if level not in config.LEVELS:
        raise ValueError(f"unknown level {level}")
    if level not in expected_levels(sentence, emotion):
        raise ValueError(f"{sentence}/{emotion} is not recorded at level {level} in CREMA-D")
    return ClipName(actor, sentence, emotion, level)


def expected_levels(sentence: str, emotion: str) -> tuple[str, ...]:
    """The levels CREMA-D recorded for a sentence and emotion."""
    if sentence == config.LEVELLED_SENTENCE and emotion != "NEU":
        return ("LO", "MD", "HI")
    return ("XX",)


def grid_names(actors: range | list[int] | None = None) -> list[str]:
    """Every name of the full CREMA-D recording grid (7,462 for the 91 actors)."""
    actors = actors if actors is not None else range(config.FIRST_ACTOR, config.LAST_ACTOR + 1)
    return [
        f"{actor}_{sentence}_{emotion}_{level}.wav"
        for actor in actors
        for sentence in config.SENTENCES
        for emotion in config.EMOTIONS
        for level in expected_levels(sentence, emotion)
    ]


def canonical_name(clip: ClipName) -> str:
    """The clip's name without extension, level ``X`` written ``XX`` (as summaryTable.csv)."""
    return f"{clip.actor}_{clip.sentence}_{clip.emotion}_{clip.intensity}"


def is_lfs_pointer(path: Path) -> bool:
    """True for a Git LFS pointer file (what a clone without LFS leaves in place of audio)."""
    try:
        if path.stat().st_size > LFS_POINTER_MAX_BYTES:
            return False
        with open(path, "rb") as handle:
            return handle.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


# -------------------------------------------------------------------- locating
def locate(data: str | Path | None = None) -> DataLocation:
    """Find the audio given the repository root, its ``AudioWAV/`` or a flat folder of wavs.

    ``None`` means ``$CREMA_D_DIR`` or, unset, the demo corpus under ``data/demo-corpus``.
    """
    folder = Path(data).expanduser() if data is not None else config.default_data_dir()
    if not folder.exists():
        raise DataError(f"{folder}: no such folder; {GET_DATA_HINT}")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; pass the CREMA-D root, its AudioWAV/ or a folder of wavs")
    if (folder / "AudioWAV").is_dir():
        return DataLocation(audio_dir=folder / "AudioWAV", root=folder)
    if folder.name == "AudioWAV":
        return DataLocation(audio_dir=folder, root=folder.parent)
    return DataLocation(audio_dir=folder, root=folder)


def is_synthetic(root: str | Path) -> bool:
    """True when the folder is the generated demo corpus (never to be reported as CREMA-D)."""
    return (Path(root) / DEMO_MARKER).is_file()


def corpus_label(root: str | Path) -> str:
    """``"synthetic"`` for the demo corpus, ``"crema-d"`` otherwise."""
    return "synthetic" if is_synthetic(root) else "crema-d"


def corpus_fingerprint(paths) -> str:
    """Which clips a corpus holds, in a short string: ``"<n> clips #<hash of the sorted file names>"``.

    Recorded with every run and compared before a finished run is reused, so that a run trained
    on another corpus with the same label (an 8-actor demo corpus against the 91-actor one, a
    CREMA-D subset) is never taken for this one. It is computed from the names a scan finds
    (:func:`scan`), bad audio included, so the sweep (before any feature is extracted) and the
    training (after bad clips are skipped) agree.
    """
    import hashlib

    names = sorted(os.path.basename(str(p)) for p in paths)
    digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:12]
    return f"{len(names)} clips #{digest}"


# -------------------------------------------------------------------- manifest
def scan(data: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse every ``.wav`` in the audio folder -> (clips, skipped).

    ``skipped`` has columns ``path, reason``. Raises :class:`DataError` for a missing or
    empty folder and for Git LFS pointers (one error for all of them, with the fix).
    """
    location = locate(data)
    wavs = sorted(p for p in location.audio_dir.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if not wavs:
        raise DataError(f"{location.audio_dir}: no .wav files; {GET_DATA_HINT}")
    pointers = [p for p in wavs if is_lfs_pointer(p)]
    if pointers:
        raise DataError(
            f"{location.audio_dir}: {len(pointers)} of {len(wavs)} .wav files are Git LFS pointers"
            f" (e.g. {pointers[0].name}), not audio; run `git lfs install && git lfs pull` in the CREMA-D clone"
        )
    rows, skipped = [], []
    for path in wavs:
        try:
            clip = parse_name(path.name)
        except ValueError as err:
            skipped.append({"path": str(path), "reason": str(err)})
            continue
        rows.append({"path": str(path.resolve()), "file": canonical_name(clip), "actor": clip.actor,
                     "sentence": clip.sentence, "emotion": clip.emotion, "intensity": clip.intensity})
    clips = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    clips = _drop_duplicate_clips(clips, skipped)
    if clips.empty:
        raise DataError(f"{location.audio_dir}: no file has a CREMA-D name (e.g. 1001_DFA_ANG_XX.wav); {GET_DATA_HINT}")
    clips = join_demographics(clips, location.root)
    clips["corpus"] = corpus_label(location.root)
    return clips.reset_index(drop=True), pd.DataFrame(skipped, columns=["path", "reason"])


def _drop_duplicate_clips(clips: pd.DataFrame, skipped: list[dict]) -> pd.DataFrame:
    """``..._X.wav`` and ``..._XX.wav`` of the same clip: keep the first, list the other."""
    duplicated = clips["file"].duplicated()
    for path in clips.loc[duplicated, "path"]:
        skipped.append({"path": path, "reason": "duplicate of a clip already listed"})
    return clips.loc[~duplicated]


def join_demographics(clips: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Add ``age`` and ``sex`` from ``VideoDemographics.csv`` when it sits at the root."""
    path = Path(root) / DEMOGRAPHICS_FILE
    if not path.is_file():
        return clips
    try:
        demo = pd.read_csv(path)
        demo = demo.rename(columns={"ActorID": "actor", "Age": "age", "Sex": "sex"})[["actor", "age", "sex"]]
    except (KeyError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: unreadable demographics ({err}); remove it or restore the original file") from err
    demo["sex"] = demo["sex"].str.lower()
    return clips.merge(demo, on="actor", how="left")


def manifest(data: str | Path | None = None, split_method: str = "random", seed: int = config.SEED) -> pd.DataFrame:
    """The manifest: one row per clip with its split. Skipped files are in ``.attrs['skipped']``."""
    clips, skipped = scan(data)
    frame = split(clips, method=split_method, seed=seed)
    frame.attrs["skipped"] = skipped
    return frame


# ---------------------------------------------------------------------- splits
def split(clips: pd.DataFrame, method: str = "random", seed: int = config.SEED,
          test_size: float = 0.30, val_size: float = 0.05) -> pd.DataFrame:
    """Return a copy of ``clips`` with a ``split`` column (train / val / test).

    ``random`` is the report's protocol: stratified by emotion, ``test_size`` for test,
    then ``val_size`` of the rest for validation. ``speaker`` keeps every actor in one
    split (the rigorous protocol the report lacked): actors are shuffled within sex and
    interleaved, so both splits keep the sex ratio; each actor recorded every emotion,
    so the emotion balance follows.
    """
    if method == "random":
        labels = _random_split(clips, seed, test_size, val_size)
    elif method == "speaker":
        labels = _speaker_split(clips, seed, test_size, val_size)
    else:
        raise UserError(f"unknown split method {method!r}; choose one of {', '.join(config.SPLITS)}")
    out = clips.copy()
    out["split"] = labels
    return out


def _random_split(clips: pd.DataFrame, seed: int, test_size: float, val_size: float) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(clips))
    emotion = clips["emotion"].to_numpy()
    if len(clips) < 2 * len(set(emotion)) + 2:
        raise DataError(f"only {len(clips)} clips: too few for a stratified train/val/test split")
    try:
        rest, test = train_test_split(index, test_size=test_size, stratify=emotion, random_state=seed)
        train, val = train_test_split(rest, test_size=val_size, stratify=emotion[rest], random_state=seed)
    except ValueError as err:  # scikit-learn: too few clips of a class for a stratified split
        counts = ", ".join(f"{e} {n}" for e, n in pd.Series(emotion).value_counts().sort_index().items())
        raise DataError(f"{len(clips)} clips ({counts}) are too few for the stratified split "
                        f"(30% test, then 5% validation): {' '.join(str(err).split())[:160]}; use more actors") from None
    labels = np.empty(len(clips), dtype=object)
    labels[train], labels[val], labels[test] = "train", "val", "test"
    return labels


def _speaker_split(clips: pd.DataFrame, seed: int, test_size: float, val_size: float) -> np.ndarray:
    actors = np.array(sorted(clips["actor"].unique()))
    if len(actors) < 3:
        raise DataError(f"only {len(actors)} actor(s): the speaker split needs at least 3")
    rng = np.random.default_rng(seed)
    sex = clips.groupby("actor")["sex"].first() if "sex" in clips else pd.Series("?", index=actors)
    order_key = {}
    for _, group in pd.Series(actors, index=actors).groupby(sex.reindex(actors).fillna("?").to_numpy()):
        shuffled = rng.permutation(group.to_numpy())
        for rank, actor in enumerate(shuffled):
            order_key[actor] = (rank + 0.5) / len(shuffled)  # proportional interleave of sexes
    ordered = sorted(actors, key=lambda a: (order_key[a], a))
    n_test = max(1, int(round(test_size * len(ordered))))
    n_val = max(1, int(round(val_size * (len(ordered) - n_test))))
    assignment = {a: "test" for a in ordered[:n_test]}
    assignment.update({a: "val" for a in ordered[n_test:n_test + n_val]})
    assignment.update({a: "train" for a in ordered[n_test + n_val:]})
    return clips["actor"].map(assignment).to_numpy(dtype=object)


def check_split(frame: pd.DataFrame, label: str = "corpus") -> None:
    """Raise one :class:`DataError` unless train, val and test each hold every emotion.

    Called before a sweep starts, so a corpus too small for its split is reported once, with the
    numbers, instead of failing inside every run.
    """
    counts = pd.crosstab(frame["emotion"], frame["split"]).reindex(
        index=sorted(set(frame["emotion"])), columns=["train", "val", "test"], fill_value=0)
    empty = [f"{split} has no {emotion}" for split in counts.columns for emotion in counts.index
             if counts.loc[emotion, split] == 0]
    if empty:
        sizes = ", ".join(f"{s} {int(counts[s].sum())}" for s in counts.columns)
        raise DataError(f"{label}: {len(frame)} clips split into {sizes}, but {'; '.join(empty[:4])}"
                        f"{' ...' if len(empty) > 4 else ''}; every split needs every emotion: use more actors "
                        f"(the demo corpus: --actors 3 or more) or the random split")


# -------------------------------------------------------------- listener votes
def load_listener_votes(root: str | Path) -> pd.DataFrame | None:
    """The listeners' voice-only majority votes from a real CREMA-D copy, or None.

    Reads ``processedResults/summaryTable.csv`` (or ``summaryTable.csv`` at the root) and
    returns ``file, voice_vote, voice_level`` with votes as emotion codes; ties (``N:S``)
    keep every tied code, separated by ``:``.
    """
    root = Path(root)
    for candidate in (root / LISTENER_VOTES_FILE, root / LISTENER_VOTES_FILE.name):
        if candidate.is_file():
            table = pd.read_csv(candidate)
            votes = table["VoiceVote"].astype(str).map(
                lambda v: ":".join(config.VOTE_LETTERS.get(x, "?") for x in v.split(":")))
            return pd.DataFrame({"file": table["FileName"], "voice_vote": votes,
                                 "voice_level": table["VoiceLevel"]})
    return None
