"""The features of K augmented copies of every training clip (``--augment wave``), cached on disk.

Why a cache: waveform augmentation happens before feature extraction, so it cannot reuse the
cached features; extracting augmented clips in every epoch would cost a feature pass per epoch.
Instead ``copies`` augmented copies per training clip are extracted once, with the feature
cache's own worker pool and atomic folder (:func:`ser_utils.features.cache.build_cache`), and
training draws one per clip and epoch. Validation and test clips are never augmented: only the
rows the caller names (the training split) are. The folder ``<features>/wave/<key>/`` is keyed
like the feature cache (configurations, code and library versions, each file's identity) plus
the augmentation settings, the seed and the training clips, so a second call loads it.

Each copy is drawn from its own generator (:func:`ser_utils.data.augment.clip_rng`: the seed, the
copy and the clip's name), so it does not depend on which worker made it. The noise bank (the
non-speech parts of ``bank_clips`` training clips, cut with the speech regions the feature cache
recorded) is written beside the folder as ``noise-<key>.npz`` and read once per worker.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ser_utils import config, fileio
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig, WaveAugmentConfig
from ser_utils.data import audio
from ser_utils.data import augment as wave_augment
from ser_utils.features.cache import FEATURES_VERSION, ClipFeatures, build_cache, cache_is_complete, cache_key
from ser_utils.features.definitions import clip_features

#: Sub-folder of the feature cache root holding the augmented copies (``prune`` leaves it alone).
WAVE_DIR = "wave"
#: Separates a clip's path from its copy number in the cache's clip list.
COPY_MARK = "#copy"


@dataclass
class WaveCopies:
    """``x1d`` float32 ``[K, n, 27, 301]`` and ``x2d`` ``[K, n, 1, 64, 64]``: copy k of clip i (the
    i-th of ``paths``). ``augmented`` [K, n] is False where a copy came out as bad audio and the
    clip's plain features stand in (``skipped`` lists them)."""

    x1d: np.ndarray
    x2d: np.ndarray
    augmented: np.ndarray
    paths: list[str]
    key: str
    cache_dir: Path
    skipped: pd.DataFrame
    from_cache: bool = False


def copy_name(path: str, copy: int) -> str:
    return f"{path}{COPY_MARK}{copy}"


_BANKS: dict[str, wave_augment.NoiseBank] = {}


def _bank(path: str) -> wave_augment.NoiseBank:
    """The noise bank file, read once per process."""
    if path not in _BANKS:
        with np.load(path, allow_pickle=False) as stored:
            _BANKS[path] = wave_augment.NoiseBank(stored["samples"], stored["offsets"], stored["sources"])
    return _BANKS[path]


def _augment_one(task: str, pre: PreprocessConfig, f1: Feature1DConfig, f2: Feature2DConfig, *,
                 wave: WaveAugmentConfig, bank_file: str, seed: int) -> ClipFeatures:
    """Pool task: load ``<path>#copy<k>``, augment it with copy k's generator, preprocess, featurise."""
    path, _, copy = task.rpartition(COPY_MARK)
    name = os.path.basename(path)
    signal = audio.load(path, pre.sample_rate)
    augmented, _ = wave_augment.augment_wave(signal, wave_augment.clip_rng(seed, int(copy), name), wave,
                                             _bank(bank_file), source=name, sample_rate=pre.sample_rate)
    return clip_features(audio.preprocess(augmented, pre, sr=pre.sample_rate), f1, f2)


def wave_key(paths: list[str], wave: WaveAugmentConfig, seed: int, pre: PreprocessConfig, f1: Feature1DConfig,
             f2: Feature2DConfig) -> str:
    """``v<version>-<n copies>-<hash>``: the feature cache key of the clips plus the augmentation and seed."""
    base = cache_key(paths, pre, f1, f2)
    payload = json.dumps({"base": base, "wave": asdict(wave), "seed": seed}, sort_keys=True)
    return f"v{FEATURES_VERSION}-{len(paths) * wave.copies}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def noise_bank(features, rows: np.ndarray, wave: WaveAugmentConfig, seed: int) -> wave_augment.NoiseBank:
    """Non-speech pieces of ``wave.bank_clips`` of the FeatureSet rows ``rows`` (drawn with ``seed``)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(rows, size=min(wave.bank_clips, len(rows)), replace=False) if len(rows) else []
    pieces = []
    for row in sorted(int(r) for r in chosen):
        path = str(features.manifest["path"].iloc[row])
        facts = features.clips.iloc[row]
        try:
            untrimmed = audio.load(path)
        except audio.BadClipError:
            continue
        for piece in wave_augment.non_speech(untrimmed, int(facts["speech_start"]), int(facts["speech_end"])):
            pieces.append((os.path.basename(path), piece))
    return wave_augment.NoiseBank.from_pieces(pieces)


def augmented_copies(features, rows, wave: WaveAugmentConfig = WaveAugmentConfig(), seed: int = config.SEED,
                     cache_root: str | Path | None = None, jobs: int | None = None, progress: bool = True,
                     pre: PreprocessConfig = PreprocessConfig(), f1: Feature1DConfig = Feature1DConfig(),
                     f2: Feature2DConfig = Feature2DConfig()) -> WaveCopies:
    """K augmented copies of the clips at FeatureSet rows ``rows`` (the training clips), from the
    cache under ``cache_root`` (default ``<the FeatureSet's cache root>/wave``) or built there."""
    rows = np.asarray(rows, dtype=np.int64)
    if wave.copies < 1:
        raise ValueError(f"WaveAugmentConfig.copies={wave.copies}: at least one augmented copy per clip")
    paths = [os.path.abspath(str(p)) for p in features.manifest["path"].iloc[rows]]
    root = Path(cache_root) if cache_root is not None else Path(features.cache_dir).parent / WAVE_DIR
    key = wave_key(paths, wave, seed, pre, f1, f2)
    cache_dir = root / key
    from_cache = cache_is_complete(cache_dir)
    if not from_cache:
        root.mkdir(parents=True, exist_ok=True)
        bank = noise_bank(features, rows, wave, seed)
        bank_file = root / f"noise-{key}.npz"
        fileio.write_atomic(bank_file, lambda tmp: _save_bank(tmp, bank))
        tasks = [copy_name(path, k) for path in paths for k in range(wave.copies)]
        featurize = functools.partial(_augment_one, wave=wave, bank_file=str(bank_file), seed=seed)
        build_cache(tasks, cache_dir, featurize, pre, f1, f2, jobs, progress)
    return _load(cache_dir, paths, features, rows, wave.copies, from_cache)


def _save_bank(path: Path, bank: wave_augment.NoiseBank) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, samples=bank.samples, offsets=bank.offsets, sources=bank.sources)


def _load(cache_dir: Path, paths: list[str], features, rows: np.ndarray, copies: int, from_cache: bool) -> WaveCopies:
    stored = {name: i for i, name in enumerate(pd.read_csv(cache_dir / "clips.csv")["path"])}
    skipped = pd.read_csv(cache_dir / "skipped.csv", dtype=str).fillna("")
    x1d_cache = np.load(cache_dir / "x1d.npy", mmap_mode="r")
    x2d_cache = np.load(cache_dir / "x2d.npy", mmap_mode="r")
    n = len(paths)
    x1d = np.empty((copies, n, *x1d_cache.shape[1:]), np.float32)
    x2d = np.empty((copies, n, *x2d_cache.shape[1:]), np.float32)
    augmented = np.zeros((copies, n), dtype=bool)
    for k in range(copies):
        found = np.array([stored.get(copy_name(p, k), -1) for p in paths])
        augmented[k] = found >= 0
        x1d[k] = np.where(augmented[k][:, None, None], x1d_cache[np.maximum(found, 0)], features.x1d[rows])
        x2d[k] = np.where(augmented[k][:, None, None, None], x2d_cache[np.maximum(found, 0)], features.x2d[rows])
    return WaveCopies(x1d=x1d, x2d=x2d, augmented=augmented, paths=paths, key=cache_dir.name, cache_dir=cache_dir,
                      skipped=skipped, from_cache=from_cache)
