"""The run folder: its files, its statuses, reading it back, and the results table built from many.

One training run writes ``<runs_dir>/<run_id>/`` (see :mod:`ser_utils.training.loop` for who writes
what)::

    config.json      the settings, the data it saw (corpus, split sizes) and the schedule used
    history.csv      per epoch: train/val loss and accuracy, learning rate, epoch time
    best.pt          the checkpoint with the lowest validation loss (:mod:`ser_utils.training.checkpoint`)
    predictions.csv  one row per test clip: index, path, true, predicted, one probability per class
    confusion.csv    rows = true emotion, columns = predicted emotion
    metrics.json     written last: status (complete | diverged | failed) and the test metrics
    07_train.ipynb   the executed training notebook, when the run came from the sweep

This module owns that format, so the trainer, the sweep, the analysis and the report agree on it;
it reads JSON and CSV only and never imports torch (the analysis and the report start in a
fraction of a second).

Two words with distinct meanings:

* **finished**: ``metrics.json`` says ``complete`` or ``diverged`` (training is over, the test
  metrics are there);
* **complete**: finished *and* the executed notebook is in the folder, which is what the sweep
  needs before it skips a configuration (a run killed after training but before papermill saved
  its notebook is finished, not complete, and is redone).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ser_utils import config, fileio
from ser_utils.errors import UserError

STATUS_COMPLETE = "complete"
STATUS_DIVERGED = "diverged"
STATUS_FAILED = "failed"
STATUS_INCOMPLETE = "incomplete"  # config.json without metrics.json: running elsewhere, or killed
FINISHED_STATUSES = (STATUS_COMPLETE, STATUS_DIVERGED)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_FILE = "best.pt"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion.csv"
#: Everything training writes (metrics.json last): cleared before a run is trained again.
TRAINING_FILES = (CONFIG_FILE, HISTORY_FILE, CHECKPOINT_FILE, PREDICTIONS_FILE, CONFUSION_FILE, METRICS_FILE)
RUN_NOTEBOOK = "07_train.ipynb"
RESULTS_FILE = "results.csv"

#: results.csv columns, in order (one row per run folder).
RESULT_COLUMNS = ["run_id", "model", "activation", "lr", "epochs", "split", "seed", "split_seed", "augment", "status",
                  "accuracy", "accuracy_lo", "accuracy_hi", "f1", "f1_lo", "f1_hi", "precision", "recall",
                  "f1_macro", "uar", "uar_lo", "uar_hi", "best_epoch", "best_val_loss", "epochs_run", "wall_time_s",
                  "n_params", "n_train", "n_val", "n_test", "corpus", "error"]


# -------------------------------------------------------------------- one run
def read_status(run_dir: str | Path) -> str | None:
    """The status recorded in ``metrics.json``, or None when absent or unreadable."""
    return (fileio.read_json(Path(run_dir) / METRICS_FILE) or {}).get("status")


def is_finished(run_dir: str | Path) -> bool:
    """Training is over: ``metrics.json`` says complete or diverged."""
    return read_status(run_dir) in FINISHED_STATUSES


def is_complete(run_dir: str | Path) -> bool:
    """Finished and the executed notebook saved: the sweep may skip this configuration."""
    return is_finished(run_dir) and (Path(run_dir) / RUN_NOTEBOOK).is_file()


def clear_training_files(run_dir: str | Path) -> None:
    """Remove what training writes, ``metrics.json`` first (the folder stops counting as finished).

    The sweep's executed notebook in the same folder stays: papermill is writing it right now.
    """
    run_dir = Path(run_dir)
    for name in (METRICS_FILE, *TRAINING_FILES):
        (run_dir / name).unlink(missing_ok=True)


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A run folder read back: ``config`` and ``metrics`` (dicts), ``history``, ``confusion`` and
    ``predictions`` (DataFrames). A missing file gives None, so failed runs load too."""
    run_dir = Path(run_dir)

    def csv_or_none(name: str, **kwargs: Any) -> pd.DataFrame | None:
        path = run_dir / name
        return pd.read_csv(path, **kwargs) if path.is_file() else None

    return {"run_dir": run_dir, "run_id": run_dir.name, "config": fileio.read_json(run_dir / CONFIG_FILE),
            "metrics": fileio.read_json(run_dir / METRICS_FILE), "history": csv_or_none(HISTORY_FILE),
            "confusion": csv_or_none(CONFUSION_FILE, index_col=0), "predictions": csv_or_none(PREDICTIONS_FILE)}


def run_summary(run_dir: str | Path, source: str = "") -> dict[str, Any]:
    """One row comparing runs (notebook 09): test metrics, size, cost and the train-validation gap.

    ``train_acc``/``val_acc`` and ``train_loss``/``val_loss`` are taken at the best epoch (the
    checkpoint that was tested); ``gap_acc`` = train_acc - val_acc, ``gap_loss`` = val_loss -
    train_loss (positive: overfitting). The training figures are averaged over the epoch with
    dropout active, so they understate the gap a little. ``source`` labels where the run came
    from (e.g. "sweep", "quick"); ``family`` is "report" for the report's models.
    """
    run = load_run(run_dir)
    metrics, history = run["metrics"] or {}, run["history"]
    at_best: dict[str, Any] = {}
    if history is not None and len(history):
        rows = history[history["epoch"] == (metrics.get("best_epoch") or -1)]
        at_best = (rows if len(rows) else history.tail(1)).iloc[0].to_dict()
    nan = float("nan")
    train_acc, val_acc = at_best.get("train_acc", nan), at_best.get("val_acc", nan)
    train_loss, val_loss = at_best.get("train_loss", nan), at_best.get("val_loss", nan)
    model = metrics.get("model") or (run["config"] or {}).get("model")
    return {"label": run["run_id"] + (f" ({source})" if source else ""), "run_id": run["run_id"],
            "run_dir": run["run_dir"], "source": source,
            "family": "report" if model in config.MODELS else "alternative",
            "model": model, "activation": metrics.get("activation"), "lr": metrics.get("lr"),
            "status": metrics.get("status"), "accuracy": metrics.get("accuracy", nan), "f1": metrics.get("f1", nan),
            "uar": metrics.get("uar", nan), "n_params": metrics.get("n_params"),
            "time_per_epoch_s": metrics.get("time_per_epoch_s", nan), "epochs": metrics.get("epochs"),
            "epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
            "n_train": metrics.get("n_train"), "train_acc": train_acc, "val_acc": val_acc,
            "gap_acc": train_acc - val_acc, "train_loss": train_loss, "val_loss": val_loss,
            "gap_loss": val_loss - train_loss, "corpus": metrics.get("corpus"),
            "device": metrics.get("device_name") or metrics.get("device")}


# ------------------------------------------------------- reuse: same settings?
def recorded_settings(run_dir: str | Path) -> dict[str, Any]:
    """The settings a run was trained with, as its ``config.json`` (else ``metrics.json``) records them.

    A field added to the settings after the run was written (:data:`config.LATER_RESULT_FIELDS`,
    e.g. ``augment``) reads as the value such runs were trained with, so they are still reused.
    """
    run_dir = Path(run_dir)
    recorded = fileio.read_json(run_dir / CONFIG_FILE) or fileio.read_json(run_dir / METRICS_FILE) or {}
    if recorded:
        recorded = {**config.LATER_RESULT_FIELDS, **recorded}
    data = recorded.get("data") or {}
    corpus = data.get("corpus") or recorded.get("corpus")
    return {**recorded, "corpus": corpus, "corpus_clips": data.get("corpus_clips")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return str(a) == str(b)


def differences(run_dir: str | Path, requested: Mapping[str, Any], corpus: str | None = None,
                corpus_clips: str | None = None) -> list[str]:
    """How a finished run's settings differ from ``requested`` (every result-affecting field of
    :meth:`config.TrainConfig.result_settings`), e.g. ``["epochs 12 -> 4", "corpus crema-d -> synthetic"]``.
    ``corpus_clips`` (:func:`ser_utils.data.dataset.corpus_fingerprint`) tells corpora with the same label apart.

    A field the run did not record counts as a difference: a run from an older version of the
    suite is never silently taken for the new one.
    """
    recorded = recorded_settings(run_dir)
    diffs = []
    for key, value in fileio.jsonable(dict(requested)).items():  # compared as recorded: inf/NaN -> null
        if key not in recorded:
            diffs.append(f"{key} not recorded -> {value}")
        elif not _same(recorded[key], value):
            diffs.append(f"{key} {recorded[key]} -> {value}")
    if corpus and recorded.get("corpus") and recorded["corpus"] != corpus:
        diffs.append(f"corpus {recorded['corpus']} -> {corpus}")
    if corpus_clips and recorded.get("corpus_clips") != corpus_clips:
        diffs.append(f"corpus clips {recorded.get('corpus_clips') or 'not recorded'} -> {corpus_clips}")
    return diffs


def load_tables(runs_dir: str | Path, run_ids: Sequence[str], name: str = PREDICTIONS_FILE) -> dict[str, pd.DataFrame]:
    """``run_id -> <run>/<name>`` (e.g. ``predictions.csv`` or ``history.csv``) for the runs that have it."""
    paths = {rid: Path(runs_dir) / rid / name for rid in run_ids}
    return {rid: pd.read_csv(path) for rid, path in paths.items() if path.is_file()}


# ------------------------------------------------------------ many runs
def collect_results(runs_dir: str | Path) -> pd.DataFrame:
    """One row per run folder under ``runs_dir`` (columns :data:`RESULT_COLUMNS`), read from disk.

    Folders with a ``config.json`` but no ``metrics.json`` (a run in progress on another shard,
    or one killed mid-way) appear with status ``incomplete``.
    """
    runs_dir = Path(runs_dir)
    rows = [_result_row(d) for d in sorted(runs_dir.iterdir())] if runs_dir.is_dir() else []
    frame = pd.DataFrame([r for r in rows if r is not None], columns=RESULT_COLUMNS)
    return sort_runs(frame)


def _result_row(run_dir: Path) -> dict | None:
    if not run_dir.is_dir():
        return None
    metrics = fileio.read_json(run_dir / METRICS_FILE)
    cfg = fileio.read_json(run_dir / CONFIG_FILE) or {}
    if metrics is None and not cfg:
        return None
    metrics = metrics or {"status": STATUS_INCOMPLETE}
    row = {col: metrics.get(col, cfg.get(col)) for col in RESULT_COLUMNS}
    row.update({k: v for k, v in config.LATER_RESULT_FIELDS.items() if row.get(k) is None})
    row["run_id"] = run_dir.name
    row["corpus"] = metrics.get("corpus") or (cfg.get("data") or {}).get("corpus")
    return row


def sort_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Grid order: models as in config.MODELS (others after), then activation, then learning rate."""
    if frame.empty:
        return frame.reset_index(drop=True)
    order = {m: i for i, m in enumerate(config.MODELS)}
    act = {a: i for i, a in enumerate(config.ACTIVATIONS)}
    keys = pd.DataFrame({"m": frame["model"].map(lambda m: order.get(m, len(order))), "mn": frame["model"].astype(str),
                         "a": frame["activation"].map(lambda a: act.get(a, len(act))),
                         "lr": pd.to_numeric(frame["lr"], errors="coerce"), "id": frame["run_id"]})
    return frame.loc[keys.sort_values(["m", "mn", "a", "lr", "id"]).index].reset_index(drop=True)


def finished(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that finished (complete or diverged): the ones with test metrics."""
    if results.empty:
        return results
    return results[results["status"].isin(FINISHED_STATUSES)].reset_index(drop=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) so shards on one file system write results.csv one at a time."""
    try:
        import fcntl
    except ImportError:  # Windows: one machine, no shards sharing a folder; no lock needed
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_results(runs_dir: str | Path, results_csv: str | Path) -> pd.DataFrame:
    """Rebuild ``results_csv`` from every run folder, under a lock, atomically; return the table.

    Rebuilt, never appended to: shards sharing one folder cannot lose each other's rows.
    """
    results_csv = Path(results_csv)
    with _locked(results_csv.with_name(f".{results_csv.name}.lock")):
        frame = collect_results(runs_dir)
        fileio.write_csv(results_csv, frame)
    return frame


def load_results(runs_dir: str | Path = config.RUNS_DIR, results_csv: str | Path | None = None) -> pd.DataFrame:
    """The results table: read ``results_csv`` when given, else collected from the run folders."""
    if results_csv:
        path = Path(results_csv)
        if not path.is_file():
            raise UserError(f"{path}: no results table; run `python -m ser_utils sweep` or leave "
                                    f"results_csv empty to collect from {runs_dir}")
        return sort_runs(pd.read_csv(path))
    return collect_results(runs_dir)


def resolve_runs_dir(runs_dir: str | Path) -> Path:
    """The folder of run folders: ``runs_dir`` itself, or its ``runs/`` when given a sweep's ``--out``."""
    runs_dir = Path(runs_dir)
    nested = runs_dir / "runs"
    if nested.is_dir() and not any((d / CONFIG_FILE).is_file() or (d / METRICS_FILE).is_file()
                                   for d in runs_dir.iterdir() if d.is_dir()):
        return nested
    return runs_dir
