"""The feature cache: computing every clip of a manifest in a worker pool, storing the arrays on
disk once, and loading them back as a :class:`FeatureSet`.

What a clip's features are is :mod:`ser_utils.features.definitions`' business; it hands :func:`build_cache`
the per-clip function. The cache folder ``<cache_root>/<key>/`` holds ``x1d.npy``, ``x2d.npy``,
the variable-length stores ``frames_var.npy``/``mel_var.npy`` (+ ``*_offsets.npy``),
``clips.csv``, ``skipped.csv`` and, written last, ``meta.json``; it is built in a temporary
folder and renamed into place, so it is complete exactly when ``meta.json`` names its key
(:func:`cache_is_complete`). The key (:func:`cache_key`) hashes the configurations,
:data:`FEATURES_VERSION`, library versions and each file's path, size and mtime (not the split,
so a re-split reuses it). :func:`prune` removes the folders of other parameter sets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser_utils import fileio, workers
from ser_utils.data import audio
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig
from ser_utils.features.dsp import FIX_CROP, FIX_PAD

#: Bump when a change to the feature code (features.py, dsp.py) or audio.py changes the numbers:
#: old caches then miss.
FEATURES_VERSION = 1
#: Variable-length arrays are stored at half precision: they are for later models, and
#: values in [0, 1] or MFCC in the hundreds lose nothing that matters at 11 bits.
VAR_DTYPE = np.float16

#: A temporary cache folder this old belongs to a killed run (a live one is far younger).
STALE_TEMP_S = 6 * 3600

#: Columns of ``clips.csv``: per-clip facts next to the arrays.
CLIP_COLUMNS = ["path", "fix", "vad_fallback", "duration_in_s", "duration_out_s",
                "speech_start", "speech_end", "frames_len", "mel_len"]


# ---------------------------------------------------------------------- one clip
@dataclass
class ClipFeatures:
    """Everything extracted from one clip: what the per-clip function returns and a worker sends back."""

    x1d: np.ndarray  # [27, 301] float32
    x2d: np.ndarray  # [1, 64, 64] float32
    frames_var: np.ndarray  # [T', 27] VAR_DTYPE: 1D rows of the unfixed signal, time-major
    mel_var: np.ndarray  # [T, 64] VAR_DTYPE: scaled log-mel before resizing, time-major
    info: dict


#: The per-clip function :func:`build_cache` runs: ``featurize(path, pre, f1, f2) -> ClipFeatures``.
Featurize = Callable[[str, PreprocessConfig, Feature1DConfig, Feature2DConfig], ClipFeatures]


# ---------------------------------------------------------------- worker processes
_OUTPUT_ARRAYS: dict[str, np.ndarray] = {}


def _output_arrays(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """The x1d/x2d ``.npy`` files being filled in ``folder``, opened once per process."""
    if _OUTPUT_ARRAYS.get("folder") != folder:
        _OUTPUT_ARRAYS.update(folder=folder, x1d=np.load(Path(folder) / "x1d.npy", mmap_mode="r+"),
                              x2d=np.load(Path(folder) / "x2d.npy", mmap_mode="r+"))
    return _OUTPUT_ARRAYS["x1d"], _OUTPUT_ARRAYS["x2d"]


def _work(task: tuple) -> tuple[int, ClipFeatures | None, str | None]:
    """Pool task: ``(index, features, None)`` or ``(index, None, reason)`` for a bad clip.

    ``task`` is ``(index, path, featurize, pre, f1, f2, folder)``; ``featurize`` is a module-level
    function (pickled by name), e.g. ``features._extract_one``.

    The fixed-size arrays go straight into the memory-mapped output files at row ``index``
    (the rows of different clips never overlap), so only the small variable-length parts
    travel back through the pool's pipe: the parent process stays nearly idle.
    """
    index, path, featurize, pre, f1, f2, folder = task
    try:
        features = featurize(path, pre, f1, f2)
    except audio.BadClipError as err:
        return index, None, err.reason
    x1d, x2d = _output_arrays(folder)
    x1d[index], x2d[index] = features.x1d, features.x2d
    features.x1d = features.x2d = None
    return index, features, None


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


# ---------------------------------------------------------------------- the key
def manifest_paths(manifest: pd.DataFrame) -> list[str]:
    """The manifest's paths as absolute strings; ValueError for a missing column, no rows or duplicates."""
    if "path" not in manifest:
        raise ValueError("the manifest has no 'path' column; build it with ser_utils.data.dataset.manifest()")
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


def cache_is_complete(cache_dir: Path) -> bool:
    """True when the cache folder's ``meta.json`` exists, parses and names this folder's key and our version.

    About the feature cache only (not a training run: see ``ser_utils.runs.is_complete``).
    """
    meta = fileio.read_json(Path(cache_dir) / "meta.json")
    return meta is not None and meta.get("key") == Path(cache_dir).name and meta.get("version") == FEATURES_VERSION


# ---------------------------------------------------------------------- hygiene
#: The name of a cache folder (:func:`cache_key`), and of the temporary (``.tmp-``) and
#: replaced (``.old-``) folders around one: only these are ever removed by :func:`prune`.
CACHE_NAME = re.compile(r"^v\d+-\d+-[0-9a-f]{16}$")
LEFTOVER_NAME = re.compile(r"^\.(v\d+-\d+-[0-9a-f]{16})\.(tmp|old)-")
#: The main job warns when the cache root holds more than this (bytes): every corpus, parameter
#: set or feature version leaves a full copy (535 MB for the demo corpus) that nothing removes.
LARGE_CACHE_BYTES = 5 * 10**9


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symbolic links not followed); 0 when it is missing."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def prunable(cache_root: Path, keep: str) -> list[Path]:
    """The folders :func:`prune` would remove: every cache folder other than ``keep``, replaced
    folders, and temporary folders of killed runs (older than STALE_TEMP_S; a younger one may
    belong to an extraction running now). Anything not named like a cache folder is left alone."""
    cache_root = Path(cache_root)
    if not cache_root.is_dir():
        return []
    found = []
    for path in sorted(cache_root.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        leftover = LEFTOVER_NAME.match(path.name)
        if CACHE_NAME.match(path.name) and path.name != keep:
            found.append(path)
        elif leftover and (leftover.group(2) == "old" or time.time() - path.stat().st_mtime > STALE_TEMP_S):
            found.append(path)
    return found


def prune(cache_root: Path, keep: str) -> list[tuple[Path, int]]:
    """Remove the cache folders of other parameter sets, corpora or versions under ``cache_root``
    (:func:`prunable`), keeping the folder named ``keep``; return each removed folder and its bytes."""
    if not CACHE_NAME.match(keep):
        raise ValueError(f"{keep!r} is not a feature-cache key (v<version>-<clips>-<hash>); nothing removed")
    removed = []
    for path in prunable(cache_root, keep):
        size = folder_size(path)
        shutil.rmtree(path)
        removed.append((path, size))
    return removed


def large_cache_warning(cache_root: Path, limit: int | None = None) -> str | None:
    """A one-line warning when ``cache_root`` holds more than ``limit`` bytes (default
    :data:`LARGE_CACHE_BYTES`), else None."""
    limit = LARGE_CACHE_BYTES if limit is None else limit
    size = folder_size(Path(cache_root))
    if size <= limit:
        return None
    return (f"the feature cache {cache_root} holds {size / 1e9:.1f} GB (over {limit / 1e9:g} GB): one full copy per "
            f"corpus and parameter set; `python -m ser_utils features --data DIR --out {cache_root} --prune` "
            f"keeps only the current one")


# -------------------------------------------------------------------- computing
def build_cache(paths: list[str], cache_dir: Path, featurize: Featurize, pre: PreprocessConfig,
                f1: Feature1DConfig, f2: Feature2DConfig, jobs: int | None, progress: bool) -> None:
    """Run ``featurize(path, pre, f1, f2)`` on every clip into a temporary folder, then rename it to ``cache_dir``.

    ``featurize`` returns a :class:`ClipFeatures` or raises ``audio.BadClipError`` (the clip is
    then listed as skipped); it must be a module-level function so the pool can pickle it by name.
    ``jobs`` defaults to os.cpu_count(); ``jobs=1`` runs in this process.
    """
    started = time.perf_counter()
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(paths)))
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp(cache_dir)
    tmp = cache_dir.parent / f".{cache_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        collected = _run_all(paths, featurize, pre, f1, f2, jobs, progress, tmp)
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
                fileio.write_atomic(folder / f"{name}.npy", lambda tmp: _save_npy(tmp, compact))
        for name in ("frames_var", "mel_var"):
            parts = [getattr(self, name)[i] for i in kept]
            np.save(folder / f"{name}.npy", np.concatenate(parts))
            lengths = np.cumsum([len(part) for part in parts])
            np.save(folder / f"{name}_offsets.npy", np.concatenate([[0], lengths]).astype(np.int64))
        fileio.write_csv(folder / "clips.csv", pd.DataFrame([self.info[i] for i in kept], columns=CLIP_COLUMNS))
        fileio.write_csv(folder / "skipped.csv", skipped)
        meta.update(n_clips=int(kept.size), n_skipped=len(skipped), elapsed_s=round(time.perf_counter() - started, 2))
        fileio.write_text(folder / "meta.json", json.dumps(meta, indent=2))


def _run_all(paths: list[str], featurize: Featurize, pre, f1, f2, jobs: int, progress: bool,
             folder: Path) -> _Collected:
    """Every clip's features or bad-clip reason; pooled when jobs > 1. Fixed arrays land in ``folder``."""
    from tqdm.auto import tqdm

    tasks = [(i, path, featurize, pre, f1, f2, str(folder)) for i, path in enumerate(paths)]
    collected = _Collected(paths, f1, f2, pre.sample_rate, folder)
    with tqdm(total=len(paths), desc="features", unit="clip", disable=not progress) as bar:
        for index, features, reason in _iterate(tasks, jobs):
            collected.add(index, features, reason)
            bar.update()
    _OUTPUT_ARRAYS.clear()  # the in-process path (jobs == 1) opened them here
    return collected


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to exactly ``path`` (given a name, np.save would append ``.npy``)."""
    with open(path, "wb") as handle:
        np.save(handle, array)


def _iterate(tasks: list, jobs: int):
    """Yield ``_work`` results: in this process (one BLAS thread) when jobs == 1, else from a pool
    whose dead worker ends the extraction with a one-line error (:func:`ser_utils.workers.imap_unordered`).
    The pool's start method is :func:`ser_utils.workers.start_method` (forkserver on Linux)."""
    if jobs == 1:
        limits = workers.limit_threads()
        try:
            yield from map(_work, tasks)
        finally:
            if limits is not None:
                limits.restore_original_limits()
        return
    chunksize = max(1, min(32, len(tasks) // (jobs * 8)))
    yield from workers.imap_unordered(
        _work, tasks, jobs, chunksize, describe=lambda task: task[1], what="clip",
        after="no feature cache was written (it appears only when complete); run the same command again "
              "(with --jobs 1 if it happens again)")


def _publish(tmp: Path, cache_dir: Path) -> None:
    """Move the finished folder into place; an existing folder (stale, or forced) is replaced."""
    if cache_dir.exists():
        old = cache_dir.parent / f".{cache_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(cache_dir, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, cache_dir)
    except OSError:
        if not cache_is_complete(cache_dir):  # a concurrent run finishing first is fine; anything else is not
            raise


# ---------------------------------------------------------------------- loading
def load_cache(cache_dir: Path, manifest: pd.DataFrame) -> FeatureSet:
    """The FeatureSet of a complete cache folder, aligned to ``manifest``'s row order."""
    cache_dir = Path(cache_dir)
    if not cache_is_complete(cache_dir):
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
