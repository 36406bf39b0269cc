"""Applying a trained run to new recordings: :class:`Predictor`, choosing the best run, batching for speed.

``Predictor.from_run(run_dir)`` (or ``Predictor.from_runs(runs_dir)``: the run with the lowest
validation loss, never the best test accuracy, which would let the test set pick the model)
loads a self-contained checkpoint (:mod:`ser_utils.training.checkpoint`). ``.predict(paths)`` returns one
row per recording: the probabilities in the checkpoint's class order (the report's), the predicted
emotion and the number of windows (:mod:`ser_utils.predict.windowing` says how a recording is cut);
``windows=True`` adds one row per window. ``.predict_array(signal, rate)`` does the same for a
signal in memory.

Speed, on a CPU: a pool of worker processes (:mod:`ser_utils.workers`: started from a fork
server with torch and the feature libraries imported, one thread each) each holds the model and
scores whole chunks of recordings, decoding, preprocessing, features and forward passes, and
sends back only the probabilities. This process only hands out the chunks and collects the rows.
One process per core doing everything is the fastest split on a CPU: the forward pass is most of
the work (the 2D CNN's 0.4 GMAC per clip), a model scoring in the parent while workers prepare
would leave it the bottleneck, and OpenMP threads that share cores with other processes stall.
The pool is started on the first call and kept (each worker holds the model) until
:meth:`Predictor.close`, the end of a ``with`` block or the predictor's deletion.

On a GPU (or with ``score_in_workers=False``), the workers only prepare the recordings and this
process scores the windows prepared so far, ``batch_size`` at a time. Fewer than
:data:`MIN_FILES_FOR_POOL` recordings, or signals in memory, are scored here without a pool.
``benchmarks/bench_predict.py`` measures it against one recording at a time.

Recordings come in any format :mod:`ser_utils.data.decoders` reads (libsndfile, else FFmpeg: a
phone's M4A, a browser's WebM/Opus, the sound of a video; docs/formats.md). A recording that cannot
be scored (unreadable, no audio stream, truncated, silent, under 0.5 s of speech) gets a one-line
error naming the file and a row with an ``error``; the others are scored regardless.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config, runs, workers
from ser_utils.data import audio, decoders
from ser_utils.predict import windowing
from ser_utils.training import checkpoint as checkpoints
from ser_utils.errors import UserError

#: File name endings searched for in a folder: what libsndfile or FFmpeg decodes (:mod:`ser_utils.data.decoders`).
AUDIO_SUFFIXES = decoders.AUDIO_SUFFIXES
#: Recordings handed to the preparing pool at a time (bounds memory when the model is slower than the workers).
CHUNK_FILES = 512
#: At most this many recordings per task of the scoring workers (fewer when there are few recordings,
#: so every worker gets several tasks and none waits for the last).
WORKER_CHUNK_FILES = 32
#: Imported once by the fork server when the scoring pool is the first pool of the process.
SCORING_PRELOAD = ("torch", "ser_utils.predict.predictor")
#: Windows per forward pass (the 2D CNN's activations for 256 clips take ~150 MB).
BATCH_WINDOWS = 256
#: Below this many recordings the pool's start-up is not worth it.
MIN_FILES_FOR_POOL = 8


#: A recording prepared: ``(index, recording or None, error or None)``.
Prepared = tuple[int, "windowing.Recording | None", "str | None"]
#: A recording scored: ``(index, recording or None, window probabilities or None, error or None)``.
Scored = tuple[int, "windowing.Recording | None", "np.ndarray | None", "str | None"]


class SyntheticModelWarning(UserWarning):
    """The model was trained on the synthetic demo corpus: its predictions are not CREMA-D's lessons."""


@dataclass
class Predictions:
    """One row per recording (``recordings``), one per window (``windows``), both in one table (``long``,
    ``kind`` = recording / window: what the CSV output holds), and the failures' one-line messages.

    The tables are built from the rows on first use (pandas costs milliseconds per table, as much
    as scoring a clip: a single recording's call should not pay for tables it never reads).
    """

    rows: list[dict[str, Any]] = field(repr=False)
    window_rows: list[list[dict[str, Any]]] = field(repr=False)
    classes: tuple[str, ...]
    failures: list[str] = field(default_factory=list)

    @functools.cached_property
    def recordings(self) -> pd.DataFrame:
        columns = ["path", *prob_columns(self.classes), "predicted", "emotion", "n_windows", "duration_s",
                   "speech_s", "error"]
        return pd.DataFrame(self.rows, columns=columns)

    @functools.cached_property
    def windows(self) -> pd.DataFrame:
        columns = ["path", "window", "start_s", "end_s", *prob_columns(self.classes), "predicted", "emotion"]
        return pd.DataFrame([w for windows in self.window_rows for w in windows], columns=columns)

    @functools.cached_property
    def long(self) -> pd.DataFrame:
        columns = ["path", "kind", "window", "start_s", "end_s", *prob_columns(self.classes), "predicted", "emotion",
                   "n_windows", "duration_s", "speech_s", "error"]
        rows = []
        for row, windows in zip(self.rows, self.window_rows):
            span = {"start_s": windows[0]["start_s"], "end_s": windows[-1]["end_s"]} if windows else {}
            rows += [{**row, "kind": "recording", **span}] + [{**w, "kind": "window"} for w in windows]
        long = pd.DataFrame(rows, columns=columns)
        long["window"], long["n_windows"] = long["window"].astype("Int64"), long["n_windows"].astype("Int64")
        return long


def prob_columns(classes: Sequence[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def find_audio(paths: str | os.PathLike | Iterable[str | os.PathLike],
               emit: Callable[[str], None] | None = None) -> list[str]:
    """Files as given (whatever their name: the decoder decides) and, for each folder, the audio files
    under it (by :data:`AUDIO_SUFFIXES`, hidden files skipped), sorted. A folder with none is a UserError.

    The files left out for their ending are listed once, in one line to ``emit`` (default: stderr),
    ``"skipped 3 files that are not audio: notes.txt, ..."``: never silently.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[str] = []
    skipped: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files, others = decoders.audio_files(path)
            if not files:
                note = f" ({decoders.skipped_message(others)})" if others else ""
                raise UserError(f"{path}: no audio files in this folder{note}; pass recordings or a folder "
                                f"holding them ({', '.join(AUDIO_SUFFIXES[:7])}, ... docs/formats.md)")
            found += [str(p) for p in files]
            skipped += others
        else:
            found.append(str(path))  # a missing file becomes that file's error, not the whole command's
    message = decoders.skipped_message(skipped)
    if message:
        (emit or (lambda line: print(line, file=sys.stderr)))(message)
    return found


def best_run(runs_dir: str | os.PathLike = config.RUNS_DIR) -> Path:
    """The finished run with the lowest validation loss (``metrics.json`` ``best_val_loss``) that has a checkpoint.

    Validation, not test: choosing by test accuracy would let the test set pick the model and
    overstate it. ``runs_dir`` may be a runs folder or a sweep's ``--out`` (holding ``runs/``).
    """

    folder = runs.resolve_runs_dir(runs_dir)
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

    ``checkpoint``: a dict from :func:`ser_utils.training.checkpoint.read_checkpoint`; ``hop_s``: seconds
    between the windows of a long recording (default 1); ``jobs``: worker processes (default: one
    per usable core); ``batch_size``: windows per forward pass; ``score_in_workers``: whether the
    worker processes also run the model (default: on a CPU; see the module docstring).
    """

    def __init__(self, checkpoint: dict[str, Any], run_dir: str | os.PathLike | None = None, device: str = "auto",
                 hop_s: float | None = None, jobs: int | None = None, batch_size: int = BATCH_WINDOWS,
                 score_in_workers: bool | None = None):
        import torch

        from ser_utils.models import INPUT_SHAPES
        from ser_utils.training.runtime import resolve_device, usable_cpus

        if hop_s is not None and not (isinstance(hop_s, (int, float)) and math.isfinite(hop_s) and hop_s > 0):
            raise UserError(f"hop {hop_s!r}: the seconds between windows must be a positive number, e.g. 1")
        self.checkpoint = checkpoint
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.model = checkpoints.model_from_checkpoint(checkpoint, self.run_dir or "checkpoint")
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
        self.score_in_workers = self.device.type == "cpu" if score_in_workers is None else bool(score_in_workers)
        self._pool = None
        self._pool_finalizer = None

    # --------------------------------------------------------------------- loading
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, warn: bool = True, **kwargs: Any) -> "Predictor":
        """The run's ``best.pt`` (CheckpointError, a UserError, when missing or of another version)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: no such run folder; pass a run folder (outputs/runs/<run_id>) or --runs DIR")
        path = run_dir / runs.CHECKPOINT_FILE
        predictor = cls(checkpoints.read_checkpoint(path), run_dir=run_dir, **kwargs)
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
        return checkpoints.is_synthetic_corpus(self.corpus)

    @property
    def warning(self) -> str | None:
        """The one-line warning for a model trained on the synthetic corpus, else None."""
        if not self.synthetic:
            return None
        return (f"{self.name} was trained on the {config.SYNTHETIC_LABEL}: its predictions show the pipeline "
                "working, not what a model learns from real emotional speech")

    def describe(self) -> str:
        """One line: which run, what model, trained on what, how recordings are cut."""
        facts = checkpoints.describe(self.checkpoint)
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

        ``on_error(message)`` is called for each recording that fails, as its result arrives; the
        others are scored regardless. How the work is shared out: the module docstring.
        """
        from tqdm.auto import tqdm

        names = [str(s) for s in sources] if names is None else list(names)
        rows: list[dict] = []
        window_rows: list[list[dict]] = []
        failures: list[str] = []
        show = len(sources) > 1 if progress is None else progress
        pooled = self.jobs > 1 and len(sources) >= MIN_FILES_FOR_POOL and all(
            isinstance(s, (str, os.PathLike)) for s in sources)
        if pooled and self.score_in_workers:
            results = self._scored_by_workers(sources, names)
        else:
            results = self._scored_here(sources, sample_rate, names, pooled)
        with tqdm(total=len(sources), desc="predict", unit="file", disable=not show, file=sys.stderr) as bar:
            for i, recording, probs, error in results:
                bar.update()
                if error is not None:
                    failures.append(error)
                    if on_error is not None:
                        on_error(error)
                    rows.append(self._failed_row(names[i], error))
                    window_rows.append([])
                else:
                    rows.append(self._recording_row(recording, probs))
                    window_rows.append(self._window_rows(recording, probs))
        return Predictions(rows, window_rows, self.classes, failures)

    # ------------------------------------------------------------ sharing out the work
    def _scored_by_workers(self, sources: Sequence[Any], names: Sequence[str]) -> Iterator[Scored]:
        """Every recording scored start to finish by the worker processes, chunks of recordings at a time,
        yielded in input order (a CPU: see the module docstring)."""
        from concurrent.futures.process import BrokenProcessPool

        size = max(1, min(WORKER_CHUNK_FILES, math.ceil(len(sources) / (4 * self.jobs))))
        chunks = [[(i, str(sources[i]), names[i]) for i in range(start, min(start + size, len(sources)))]
                  for start in range(0, len(sources), size)]
        # Executor.map submits every chunk and yields their results in order; closing it early (an
        # error, Ctrl-C) cancels the chunks not started, so the pool is ready for the next call.
        done = 0
        try:
            for chunk_results in self._scoring_pool().map(score_chunk, chunks):
                done += 1
                yield from chunk_results
        except BrokenProcessPool:
            self.close()  # the next call starts a fresh pool
            chunk = chunks[done]
            raise _worker_died(names[chunk[0][0]], len(chunk) - 1) from None

    def _scoring_pool(self):
        """The worker processes that score recordings, started on first use and kept for the next calls
        (each holds the model); :meth:`close` stops them, as does deleting the predictor."""
        if self._pool is None:
            import io
            from concurrent.futures import ProcessPoolExecutor

            import torch

            buffer = io.BytesIO()
            torch.save(self.checkpoint, buffer)  # the weights travel as data, read back with weights_only=True
            options = {"run_dir": self.run_dir, "hop_s": self.spec.plan.hop_s, "batch_size": self.batch_size}
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=workers.pool_context(preload=SCORING_PRELOAD),
                                             initializer=start_scoring_worker, initargs=(buffer.getvalue(), options))
            self._pool_finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the scoring worker processes (a later pooled call starts new ones)."""
        if self._pool is not None:
            self._pool_finalizer.detach()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _scored_here(self, sources: Sequence[Any], sample_rate: int | None, names: Sequence[str],
                     pooled: bool) -> Iterator[Scored]:
        """Recordings prepared here or by the pool, scored by this process ``batch_size`` windows at a
        time, yielded in input order (a GPU, few recordings, or signals in memory)."""
        pending: list[Prepared] = []
        windows = 0
        for item in self._prepared(sources, sample_rate, names, pooled):
            pending.append(item)
            windows += item[1].n_windows if item[2] is None else 0
            if windows >= self.batch_size:
                yield from self.scored(pending, threads=1 if pooled else None)
                pending, windows = [], 0
        yield from self.scored(pending)  # the pool has finished: the last batch gets every core

    def scored(self, prepared: Sequence[Prepared], threads: int | None = None) -> Iterator[Scored]:
        """``(index, recording, window probabilities or None, error or None)`` for prepared recordings,
        all their windows in forward passes of ``batch_size``."""
        probs = iter(self._forward([recording for _, recording, error in prepared if error is None], threads=threads))
        for i, recording, error in prepared:
            yield i, recording, (None if error is not None else next(probs)), error

    def _prepared(self, sources: Sequence[Any], sample_rate: int | None, names: Sequence[str],
                  pooled: bool) -> Iterator[Prepared]:
        """``(index, recording or None, error or None)`` for every source, in order: in this process, or
        from the worker pool, CHUNK_FILES recordings at a time with the next chunk already submitted
        (so the workers never wait for this process, and prepared windows never pile up)."""
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        def tasks(start: int, stop: int):
            return [(i, sources[i], self.spec, sample_rate, names[i]) for i in range(start, stop)]

        if not pooled:
            yield from map(windowing.prepare_task, tasks(0, len(sources)))
            return
        jobs = min(self.jobs, len(sources))
        starts = iter(range(0, len(sources), CHUNK_FILES))
        pool = ProcessPoolExecutor(jobs, mp_context=workers.pool_context(), initializer=workers.init_worker)

        def submit() -> Iterator | None:
            start = next(starts, None)
            if start is None:
                return None
            chunk = tasks(start, min(start + CHUNK_FILES, len(sources)))
            return pool.map(windowing.prepare_task, chunk, chunksize=max(1, min(8, len(chunk) // (jobs * 8))))

        done = 0
        try:
            current, upcoming = submit(), submit()
            while current is not None:
                for item in current:
                    done += 1
                    yield item
                current, upcoming = upcoming, submit()
        except BrokenProcessPool:
            raise _worker_died(names[done], min(CHUNK_FILES, len(sources) - done) - 1) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # an early stop (Ctrl-C) waits only for running tasks

    def _forward(self, recordings: list[windowing.Recording], threads: int | None = None) -> list[np.ndarray]:
        """Each recording's window probabilities [n_windows, n_classes], all windows in large batches.

        ``threads``: torch threads on a CPU (default: every usable core; 1 while the workers run,
        which a busy machine rewards: OpenMP threads stall when they must share cores).
        """
        from ser_utils.training.data import TrainingData

        windows = [w for r in recordings for w in r.inputs]
        if not windows:
            return []
        batch = windowing.stack_windows(windows, self.model.inputs)
        n = len(windows)
        extra = {k: v for k, v in batch.items() if k not in ("x1d", "x2d")}
        data = TrainingData(x1d=batch.get("x1d"), x2d=batch.get("x2d"), y=np.zeros(n, dtype=np.int64),
                            split=np.full(n, "test"), classes=tuple(self.checkpoint["classes"]), **extra)
        with _threads(self.device, threads):
            probs = checkpoints.predict(self.model, data, device=str(self.device), batch_size=self.batch_size,
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


def _worker_died(name: str, after: int) -> UserError:
    """The one-line error for a worker process that died (killed, out of memory): never a hang."""
    return UserError(f"{name}: a worker process died (killed, or out of memory) before this recording and the "
                     f"{after} after it were done; predict again, with --jobs 1 (jobs=1) or fewer files at a "
                     "time if it happens again")


# ------------------------------------------------------------------ the scoring workers
#: The predictor of this worker process (:func:`start_scoring_worker`).
_WORKER_PREDICTOR: Predictor | None = None


def start_scoring_worker(checkpoint: bytes, options: dict[str, Any]) -> None:
    """A scoring worker's set-up: one thread, and the model built once from the checkpoint's bytes
    (read with ``weights_only=True``, as any checkpoint)."""
    import io

    import torch

    global _WORKER_PREDICTOR
    workers.init_worker()
    torch.set_num_threads(1)
    ckpt = torch.load(io.BytesIO(checkpoint), weights_only=True)
    _WORKER_PREDICTOR = Predictor(ckpt, device="cpu", jobs=1, score_in_workers=False, **options)


def score_chunk(tasks: list[tuple[int, str, str]]) -> list[Scored]:
    """A worker's task: ``(index, path, name)`` recordings prepared and scored in one go; the recordings
    come back without their inputs (only the probabilities are needed)."""
    predictor = _WORKER_PREDICTOR
    prepared = [windowing.prepare_task((i, path, predictor.spec, None, name)) for i, path, name in tasks]
    return [(i, None if recording is None else replace(recording, inputs=[]), probs, error)
            for i, recording, probs, error in predictor.scored(prepared, threads=1)]


@contextlib.contextmanager
def _threads(device: Any, threads: int | None = None) -> Iterator[None]:
    """Torch's CPU threads for the forward passes: ``threads``, or every usable core; restored after."""
    import torch

    from ser_utils.training.runtime import usable_cpus

    before = torch.get_num_threads()
    wanted = threads or usable_cpus()
    if device.type == "cpu" and before != wanted:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
