"""Applying a trained run to new recordings: :class:`Predictor`, choosing the best run, batching for speed.

``Predictor.from_run(run_dir)`` (or ``Predictor.from_runs(runs_dir)``: the run with the lowest
validation loss, never the best test accuracy, which would let the test set pick the model)
loads a self-contained checkpoint (:mod:`ser_utils.inference`). ``.predict(paths)`` returns one
row per recording: the probabilities in the checkpoint's class order (the report's), the predicted
emotion and the number of windows (:mod:`ser_utils.windowing` says how a recording is cut);
``windows=True`` adds one row per window. ``.predict_array(signal, rate)`` does the same for a
signal in memory.

Speed: recordings are prepared (decode, preprocess, features) by a pool of worker processes
with the feature extraction's set-up (:mod:`ser_utils.workers`: started from a fork server that
has the feature libraries imported, one BLAS thread per worker, filterbanks built once per worker),
while this process scores the windows prepared so far, 256 at a time, with one torch thread (the workers hold the other cores; OpenMP threads that
must share cores stall). ``benchmarks/bench_predict.py`` measures it against one recording at a
time.

A recording that cannot be scored (unreadable, silent, under 0.5 s of speech) gets a one-line
error naming the file and a row with an ``error``; the others are scored regardless.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import audio, config, inference, runs, windowing, workers
from ser_utils.errors import UserError

#: File name endings searched for in a folder: the containers libsndfile decodes.
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                  ".snd", ".caf", ".w64", ".rf64")
#: Recordings handed to the pool at a time (bounds memory when the model is slower than the workers).
CHUNK_FILES = 512
#: Windows per forward pass (the 2D CNN's activations for 256 clips take ~150 MB).
BATCH_WINDOWS = 256
#: Below this many recordings the pool's start-up is not worth it.
MIN_FILES_FOR_POOL = 8


class SyntheticModelWarning(UserWarning):
    """The model was trained on the synthetic demo corpus: its predictions are not CREMA-D's lessons."""


@dataclass
class Predictions:
    """One row per recording (``recordings``), one per window (``windows``), both in one table (``long``,
    ``kind`` = recording / window: what the CSV output holds), and the failures' one-line messages."""

    recordings: pd.DataFrame
    windows: pd.DataFrame
    long: pd.DataFrame
    failures: list[str] = field(default_factory=list)


def prob_columns(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def find_audio(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files as given (whatever their name: the decoder decides) and, for each folder, the audio files
    under it (by :data:`AUDIO_SUFFIXES`, hidden files skipped), sorted. A folder with none is a UserError."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise UserError(f"{path}: no audio files in this folder ({', '.join(AUDIO_SUFFIXES[:7])}, ...); "
                                "pass recordings or a folder holding them")
            found += [str(p) for p in files]
        else:
            found.append(str(path))  # a missing file becomes that file's error, not the whole command's
    return found


def best_run(runs_dir: str | os.PathLike = config.RUNS_DIR) -> Path:
    """The finished run with the lowest validation loss (``metrics.json`` ``best_val_loss``) that has a checkpoint.

    Validation, not test: choosing by test accuracy would let the test set pick the model and
    overstate it. ``runs_dir`` may be a runs folder or a sweep's ``--out`` (holding ``runs/``).
    """
    from ser_utils.report import resolve_runs_dir

    folder = resolve_runs_dir(runs_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such runs folder; train a run first (make demo, or python -m ser_utils sweep)"
                        " or pass --run RUN_DIR")
    results = runs.finished(runs.collect_results(folder))
    if not results.empty:
        loss = pd.to_numeric(results["best_val_loss"], errors="coerce")
        usable = results[np.isfinite(loss) & results["run_id"].map(
            lambda r: (folder / str(r) / runs.CHECKPOINT_FILE).is_file())]
        if not usable.empty:
            usable = usable.assign(_loss=pd.to_numeric(usable["best_val_loss"])).sort_values(["_loss", "run_id"])
            return folder / str(usable["run_id"].iloc[0])
    raise UserError(f"{folder}: no finished run with a checkpoint; train one first (make demo, or "
                    "python -m ser_utils sweep) or pass --run RUN_DIR")


class Predictor:
    """A trained run applied to recordings: load once, predict many (see the module docstring).

    ``checkpoint``: a dict from :func:`ser_utils.inference.read_checkpoint`; ``hop_s``: seconds
    between the windows of a long recording (default 1); ``jobs``: worker processes (default: one
    per usable core); ``batch_size``: windows per forward pass.
    """

    def __init__(self, checkpoint: dict[str, Any], run_dir: str | os.PathLike | None = None, device: str = "auto",
                 hop_s: float | None = None, jobs: int | None = None, batch_size: int = BATCH_WINDOWS):
        import torch

        from ser_utils.models import INPUT_SHAPES
        from ser_utils.runtime import resolve_device, usable_cpus

        if hop_s is not None and not (isinstance(hop_s, (int, float)) and math.isfinite(hop_s) and hop_s > 0):
            raise UserError(f"hop {hop_s!r}: the seconds between windows must be a positive number, e.g. 1")
        self.checkpoint = checkpoint
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.model = inference.model_from_checkpoint(checkpoint, self.run_dir or "checkpoint")
        self.device = resolve_device(device)
        self.model.to(self.device)
        if any(len(INPUT_SHAPES[name]) == 3 for name in self.model.inputs):
            # 2D trunks: channels_last makes conv and max pooling ~25% faster on a CPU (same numbers to ~1e-6)
            self.model.to(memory_format=torch.channels_last)
        trained = tuple(checkpoint["classes"])
        rank = {c: i for i, c in enumerate(config.EMOTIONS)}
        #: The output's class order: the report's (config.EMOTIONS), whatever order the model was trained in.
        self.classes: tuple[str, ...] = tuple(sorted(trained, key=lambda c: (rank.get(c, len(rank)), trained.index(c))))
        self._order = [trained.index(c) for c in self.classes]
        self.spec = windowing.InputSpec.from_checkpoint(checkpoint, self.model.inputs, hop_s)
        self.precision = checkpoint["config"].get("numeric_precision", "auto")
        self.jobs = max(1, int(jobs or usable_cpus()))
        self.batch_size = int(batch_size)

    # --------------------------------------------------------------------- loading
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, warn: bool = True, **kwargs: Any) -> "Predictor":
        """The run's ``best.pt`` (CheckpointError, a UserError, when missing or of another version)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: no such run folder; pass a run folder (outputs/runs/<run_id>) or --runs DIR")
        path = run_dir / runs.CHECKPOINT_FILE
        predictor = cls(inference.read_checkpoint(path), run_dir=run_dir, **kwargs)
        if warn and predictor.warning:
            warnings.warn(predictor.warning, SyntheticModelWarning, stacklevel=2)
        return predictor

    @classmethod
    def from_runs(cls, runs_dir: str | os.PathLike = config.RUNS_DIR, **kwargs: Any) -> "Predictor":
        """The run of ``runs_dir`` with the lowest validation loss (:func:`best_run`)."""
        return cls.from_run(best_run(runs_dir), **kwargs)

    # ------------------------------------------------------------------------ facts
    @property
    def name(self) -> str:
        return str(self.checkpoint.get("run_id") or (self.run_dir.name if self.run_dir else "checkpoint"))

    @property
    def corpus(self) -> str:
        return str(self.checkpoint["corpus"])

    @property
    def synthetic(self) -> bool:
        return inference.is_synthetic_corpus(self.corpus)

    @property
    def warning(self) -> str | None:
        """The one-line warning for a model trained on the synthetic corpus, else None."""
        if not self.synthetic:
            return None
        return (f"{self.name} was trained on the {config.SYNTHETIC_LABEL}: its predictions show the pipeline "
                "working, not what a model learns from real emotional speech")

    def describe(self) -> str:
        """One line: which run, what model, trained on what, how recordings are cut."""
        facts = inference.describe(self.checkpoint)
        corpus = config.SYNTHETIC_LABEL if self.synthetic else self.corpus
        loss = f", validation loss {facts['val_loss']:.3f}" if facts["val_loss"] is not None else ""
        plan = self.spec.plan
        return (f"run {self.name} (model {facts['model']}, epoch {facts['epoch']}{loss}; trained on {corpus}); "
                f"speech up to {plan.whole_max_s:.2f} s is scored whole, longer in {plan.window_s:g} s windows "
                f"every {plan.hop_s:g} s")

    # ------------------------------------------------------------------- predicting
    def predict(self, path_or_paths: str | os.PathLike | Iterable[str | os.PathLike], windows: bool = False,
                progress: bool | None = None) -> pd.DataFrame:
        """One row per recording (files, or folders searched for audio); ``windows=True`` adds a row per
        window after its recording's (:attr:`Predictions.long`)."""
        result = self.score(find_audio(path_or_paths), progress=progress)
        return result.long if windows else result.recordings

    def predict_array(self, signal: np.ndarray, sample_rate: int, windows: bool = False,
                      name: str = audio.SIGNAL_NAME) -> pd.DataFrame:
        """As :meth:`predict` for a signal in memory (1-D mono, or [samples, channels], averaged)."""
        signal = np.asarray(signal, dtype=np.float32)
        if signal.ndim == 2:
            signal = signal.mean(axis=1, dtype=np.float32)
        result = self.score([signal], sample_rate=sample_rate, names=[name], progress=False)
        return result.long if windows else result.recordings

    def score(self, sources: Sequence[Any], sample_rate: int | None = None, names: Sequence[str] | None = None,
              progress: bool | None = None, on_error: Callable[[str], None] | None = None) -> Predictions:
        """Recordings and windows tables for file paths (or signals with ``sample_rate`` and ``names``).

        Streams: while the workers prepare the next recordings, this process scores the windows
        prepared so far, ``batch_size`` at a time. ``on_error(message)`` is called for each
        recording that fails, as it fails.
        """
        from tqdm.auto import tqdm

        names = [str(s) for s in sources] if names is None else list(names)
        rows: list[dict] = []
        window_rows: list[list[dict]] = []
        failures: list[str] = []
        pending: list[tuple[int, windowing.Recording | None, str | None]] = []
        pending_windows = 0
        show = len(sources) > 1 if progress is None else progress
        pooled = self.jobs > 1 and len(sources) >= MIN_FILES_FOR_POOL and all(
            isinstance(s, (str, os.PathLike)) for s in sources)
        with tqdm(total=len(sources), desc="predict", unit="file", disable=not show, file=sys.stderr) as bar:
            for i, recording, error in self._prepared(sources, sample_rate, names, pooled):
                bar.update()
                pending.append((i, recording, error))
                if error is not None:
                    failures.append(error)
                    if on_error is not None:
                        on_error(error)
                else:
                    pending_windows += recording.n_windows
                if pending_windows >= self.batch_size:
                    self._flush(pending, names, rows, window_rows, pooled)
                    pending_windows = 0
            # the pool has finished: the last batch gets every core
            self._flush(pending, names, rows, window_rows, pooled=False)
        return self._tables(rows, window_rows, failures)

    def _flush(self, pending: list, names: Sequence[str], rows: list, window_rows: list, pooled: bool) -> None:
        """Score the pending recordings' windows and append their rows (in input order); empty ``pending``."""
        scored = iter(self._forward([r for _, r, error in pending if error is None], threads=1 if pooled else None))
        for i, recording, error in pending:
            if error is not None:
                rows.append(self._failed_row(names[i], error))
                window_rows.append([])
                continue
            probs = next(scored)
            rows.append(self._recording_row(recording, probs))
            window_rows.append(self._window_rows(recording, probs))
        pending.clear()

    def _tables(self, rows: list[dict], window_rows: list[list[dict]], failures: list[str]) -> Predictions:
        probs = prob_columns(self.classes)
        columns = ["path", *probs, "predicted", "emotion", "n_windows", "duration_s", "speech_s", "error"]
        window_columns = ["path", "window", "start_s", "end_s", *probs, "predicted", "emotion"]
        long_columns = ["path", "kind", "window", "start_s", "end_s", *probs, "predicted", "emotion", "n_windows",
                        "duration_s", "speech_s", "error"]
        long_rows = []
        for row, windows in zip(rows, window_rows):
            span = {"start_s": windows[0]["start_s"], "end_s": windows[-1]["end_s"]} if windows else {}
            long_rows += [{**row, "kind": "recording", **span}] + [{**w, "kind": "window"} for w in windows]
        long = pd.DataFrame(long_rows, columns=long_columns)
        long["window"], long["n_windows"] = long["window"].astype("Int64"), long["n_windows"].astype("Int64")
        flat = [w for windows in window_rows for w in windows]
        return Predictions(pd.DataFrame(rows, columns=columns), pd.DataFrame(flat, columns=window_columns), long,
                           failures)

    def _prepared(self, sources: Sequence[Any], sample_rate: int | None, names: Sequence[str],
                  pooled: bool) -> Iterator[tuple[int, windowing.Recording | None, str | None]]:
        """``(index, recording or None, error or None)`` for every source, in order: in this process, or
        from the worker pool, CHUNK_FILES recordings at a time with the next chunk already submitted
        (so the workers never wait for this process, and prepared windows never pile up)."""

        def tasks(start: int, stop: int):
            return [(i, sources[i], self.spec, sample_rate, names[i]) for i in range(start, stop)]

        if not pooled:
            yield from map(windowing.prepare_task, tasks(0, len(sources)))
            return
        from ser_utils.feature_cache import MP_START_METHOD

        context = workers.pool_context(MP_START_METHOD)
        jobs = min(self.jobs, len(sources))
        starts = iter(range(0, len(sources), CHUNK_FILES))
        with context.Pool(jobs, initializer=workers.init_worker) as pool:

            def submit() -> Iterator | None:
                start = next(starts, None)
                if start is None:
                    return None
                chunk = tasks(start, min(start + CHUNK_FILES, len(sources)))
                return pool.imap(windowing.prepare_task, chunk, chunksize=max(1, min(8, len(chunk) // (jobs * 8))))

            current, upcoming = submit(), submit()
            while current is not None:
                yield from current
                current, upcoming = upcoming, submit()

    def _forward(self, recordings: list[windowing.Recording], threads: int | None = None) -> list[np.ndarray]:
        """Each recording's window probabilities [n_windows, n_classes], all windows in large batches.

        ``threads``: torch threads on a CPU (default: every usable core; 1 while the workers run,
        which a busy machine rewards: OpenMP threads stall when they must share cores).
        """
        from ser_utils.training_data import TrainingData

        windows = [w for r in recordings for w in r.inputs]
        if not windows:
            return []
        batch = windowing.stack_windows(windows, self.model.inputs)
        n = len(windows)
        extra = {k: v for k, v in batch.items() if k not in ("x1d", "x2d")}
        data = TrainingData(x1d=batch.get("x1d"), x2d=batch.get("x2d"), y=np.zeros(n, dtype=np.int64),
                            split=np.full(n, "test"), classes=tuple(self.checkpoint["classes"]), **extra)
        with _threads(self.device, threads):
            probs = inference.predict(self.model, data, device=str(self.device), batch_size=self.batch_size,
                                      precision=self.precision)
        probs = probs[:, self._order]
        bounds = np.cumsum([0] + [r.n_windows for r in recordings])
        return [probs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    # ------------------------------------------------------------------------ rows
    def _labels(self, probs: np.ndarray) -> tuple[str, str]:
        code = self.classes[int(np.argmax(probs))]
        return code, config.EMOTION_NAMES.get(code, code)

    def _recording_row(self, recording: windowing.Recording, window_probs: np.ndarray) -> dict[str, Any]:
        mean = window_probs.mean(axis=0) if len(window_probs) > 1 else window_probs[0]
        code, name = self._labels(mean)
        return {"path": recording.source, **dict(zip(prob_columns(self.classes), map(float, mean))),
                "predicted": code, "emotion": name, "n_windows": recording.n_windows,
                "duration_s": round(recording.duration_s, 4), "speech_s": round(recording.speech_s, 4), "error": ""}

    def _window_rows(self, recording: windowing.Recording, window_probs: np.ndarray) -> list[dict[str, Any]]:
        rows = []
        for k, (start, end, probs) in enumerate(zip(recording.starts_s, recording.ends_s, window_probs)):
            code, name = self._labels(probs)
            rows.append({"path": recording.source, "window": k, "start_s": round(start, 4), "end_s": round(end, 4),
                         **dict(zip(prob_columns(self.classes), map(float, probs))), "predicted": code,
                         "emotion": name})
        return rows

    def _failed_row(self, name: str, error: str) -> dict[str, Any]:
        return {"path": name, **{c: math.nan for c in prob_columns(self.classes)}, "predicted": "", "emotion": "",
                "n_windows": 0, "duration_s": math.nan, "speech_s": math.nan, "error": error}


@contextlib.contextmanager
def _threads(device: Any, threads: int | None = None) -> Iterator[None]:
    """Torch's CPU threads for the forward passes: ``threads``, or every usable core; restored after."""
    import torch

    from ser_utils.runtime import usable_cpus

    before = torch.get_num_threads()
    wanted = threads or usable_cpus()
    if device.type == "cpu" and before != wanted:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
