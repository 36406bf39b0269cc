"""The papermill sweep: notebooks/07_train.ipynb once per configuration, resumable and shardable.

Why a notebook per run rather than a Python loop: every configuration then leaves an executed
notebook in its run folder (``<out>/runs/<run_id>/07_train.ipynb``) with its learning curves and
confusion matrix, which the HTML report links to; a crash shows the failing cell in place.

Guarantees
----------
* **Resume.** A run counts as done when its ``metrics.json`` says ``complete`` or ``diverged``
  *and* its executed notebook is in the folder (:func:`is_complete`). Re-running the same command
  after an interruption (Ctrl-C, ``kill -9``, a lost node) runs only what is missing; nothing
  done is re-run or lost. The notebook is written under a temporary name
  (``.07_train.partial.ipynb``) and moved into place when papermill finishes.
* **No silent mix-ups.** A finished run whose ``config.json`` differs from the request (e.g. it
  was trained for another number of epochs, or on another corpus) is a conflict: the sweep stops
  before running anything and says to pass ``--force`` or to use another ``--out``.
* **Failure isolation.** A configuration that fails (an exception in the notebook, a dead
  kernel) is recorded in its folder (``metrics.json`` with ``status: failed`` and ``error``, the
  partial notebook kept) and the sweep goes on; :class:`SweepResult` lists it and the command
  line exits 1 at the end naming it.
* **One feature pass.** The features are extracted (or found in the cache) once before the first
  run; every notebook then loads them from the cache.
* **results.csv** is rebuilt from the run folders on disk (never appended to) under a file lock
  and written atomically, after every run and at the end, so shards sharing one ``--out`` never
  race and a partial sweep always has a current table.

Sharding over machines
----------------------
``--shard K/N`` runs ``configurations[K-1::N]``; N jobs with K = 1..N cover the 27 once.
A SLURM array, after computing the features once so the shards do not all extract them::

    # sweep.sbatch
    #!/bin/bash
    #SBATCH --job-name=ser-sweep
    #SBATCH --array=1-9                # 9 shards x 3 configurations = the 27
    #SBATCH --gres=gpu:1
    #SBATCH --cpus-per-task=8
    #SBATCH --time=08:00:00
    #SBATCH --output=logs/sweep-%A_%a.log
    source .venv/bin/activate          # or: conda activate ser
    python -m ser_utils sweep --data "$CREMA_D_DIR" --out outputs \\
        --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}"

    # submit: features first, then the array once they exist
    jid=$(sbatch --parsable --cpus-per-task=16 --wrap \\
          "python -m ser_utils features --data $CREMA_D_DIR --out outputs/features")
    sbatch --dependency=afterok:$jid sweep.sbatch

``outputs/`` must be on a file system every node sees. A shard that dies is re-submitted with
the same command (``sbatch --array=4 sweep.sbatch``) and resumes; ``python -m ser_utils sweep
--out outputs --epochs ...`` without ``--shard`` afterwards only rebuilds what is missing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ser_utils import config

NOTEBOOK = config.NOTEBOOKS_DIR / "07_train.ipynb"
RUN_NOTEBOOK = "07_train.ipynb"
PARTIAL_NOTEBOOK = ".07_train.partial.ipynb"
RESULTS_FILE = "results.csv"
FINISHED_STATUSES = ("complete", "diverged")
#: results.csv columns, in order (one row per run folder).
RESULT_COLUMNS = ["run_id", "model", "activation", "lr", "epochs", "split", "seed", "status", "accuracy", "f1",
                  "precision", "recall", "f1_macro", "uar", "best_epoch", "epochs_run", "wall_time_s",
                  "n_params", "corpus", "error"]
#: Fields a finished run must share with the request to be skipped as "the same run".
COMPARED_FIELDS = ("model", "activation", "lr", "epochs", "batch_size", "seed", "split")
#: Seconds between two progress lines of one run in the log (its final line always shows).
LOG_INTERVAL_S = 30.0
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class SweepConflictError(ValueError):
    """Finished runs in the output folder were trained with other settings than requested."""


@dataclass
class SweepResult:
    """What a sweep did: run ids done now, skipped as already complete, and failed (with errors)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    runs_dir: Path | None = None
    results_csv: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (f"{len(self.done)} run, {len(self.skipped)} already complete, {len(self.failed)} failed"
                f" -> {self.results_csv}")

    def failure_message(self) -> str:
        """One line naming every failed configuration and where its notebook is."""
        parts = [f"{rid} ({self.errors.get(rid, 'failed')})" for rid in self.failed]
        return (f"{len(self.failed)} configuration(s) failed: " + "; ".join(parts)
                + f"; see {self.runs_dir}/<run_id>/{RUN_NOTEBOOK}, fix, and re-run the same command")


# ------------------------------------------------------------------ configurations
def configurations(models: Sequence[str] = config.MODELS, activations: Sequence[str] = config.ACTIVATIONS,
                   lrs: Sequence[float] = config.LEARNING_RATES) -> list[dict]:
    """The grid, models outermost: ``[{"model": "1d", "activation": "relu", "lr": 0.001}, ...]``."""
    return [{"model": m, "activation": a, "lr": float(lr)} for m in models for a in activations for lr in lrs]


def shard(configs: Sequence[dict], k: int, n: int) -> list[dict]:
    """Shard ``k`` of ``n`` (1-based): every n-th configuration from the k-th; the n shards partition."""
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard {k}/{n}: K must be between 1 and N (e.g. --shard 2/9)")
    return list(configs[k - 1::n])


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/9"`` -> ``(2, 9)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. --shard 2/9")
    k, n = int(match.group(1)), int(match.group(2))
    shard([], k, n)  # validates the range
    return k, n


def parse_names(values: str | Iterable[str]) -> list[str]:
    """Comma- or space-separated names (``["1d,2d", "combined"]`` -> ``["1d", "2d", "combined"]``), deduplicated."""
    items = [values] if isinstance(values, str) else list(values)
    names = [part for item in items for part in re.split(r"[,\s]+", str(item)) if part]
    return list(dict.fromkeys(names))


def parse_lrs(values: str | Iterable[str | float]) -> list[float]:
    """Learning rates from ``"0.001,0.01"`` or a list; each must be a positive number."""
    items = [values] if isinstance(values, (str, float, int)) else list(values)
    lrs = []
    for name in parse_names([str(v) for v in items]):
        try:
            lr = float(name)
        except ValueError:
            raise ValueError(f"--lrs {name!r}: not a number (e.g. --lrs 0.001,0.01,0.1)") from None
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"--lrs {name!r}: a learning rate must be a positive number")
        lrs.append(lr)
    return list(dict.fromkeys(lrs))


def parse_epochs(text: str | int | Mapping[str, int]) -> int | dict[str, int]:
    """``"150"`` -> 150; ``"1d=8,2d=2,combined=2"`` -> a per-model mapping (the 1D model is ~7x cheaper)."""
    if isinstance(text, Mapping):
        pairs = {str(k): v for k, v in text.items()}
    elif isinstance(text, int):
        pairs = {"": text}
    elif "=" not in str(text):
        pairs = {"": str(text).strip()}
    else:
        pairs = {}
        for part in parse_names(str(text)):
            model, _, value = part.partition("=")
            pairs[model.strip()] = value.strip()
    parsed = {model: _positive_int(value, f"--epochs {text}") for model, value in pairs.items()}
    return parsed[""] if list(parsed) == [""] else parsed


def _positive_int(value: Any, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a whole number (e.g. --epochs 150 or --epochs 1d=8,2d=2)") from None
    if number < 1:
        raise ValueError(f"{what}: must be at least 1")
    return number


def epochs_for(model: str, epochs: int | Mapping[str, int]) -> int:
    """The epochs of one model under an int or a per-model mapping."""
    if isinstance(epochs, Mapping):
        if model not in epochs:
            raise ValueError(f"--epochs names no value for model {model!r}; add {model}=N "
                             f"(given: {', '.join(f'{k}={v}' for k, v in epochs.items())})")
        return int(epochs[model])
    return int(epochs)


def validate(models: Sequence[str], activations: Sequence[str], lrs: Sequence[float],
             epochs: int | Mapping[str, int], batch_size: int, split: str) -> list[str]:
    """Reject bad input before any run starts; return warnings (unregistered model names).

    Activations must be registered in :data:`ser_utils.models.ACTIVATIONS`. A model name only has
    to be a safe folder name: notebook 09's alternatives are built by name too, so a name the
    notebook cannot build is tried, recorded as failed and reported, not refused here.
    """
    from ser_utils import models as model_zoo

    if not models or not activations or not lrs:
        raise ValueError("--models, --activations and --lrs each need at least one value")
    unknown = [a for a in activations if a not in model_zoo.ACTIVATIONS]
    if unknown:
        raise ValueError(f"--activations: unknown {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(model_zoo.ACTIVATIONS)}")
    bad = [m for m in models if not SAFE_NAME.match(m)]
    if bad:
        raise ValueError(f"--models: {', '.join(map(repr, bad))} cannot name a run folder; use e.g. 1d,2d,combined")
    if split not in config.SPLITS:
        raise ValueError(f"--split {split!r}: choose one of {', '.join(config.SPLITS)}")
    _positive_int(batch_size, "--batch-size")
    for model in models:
        epochs_for(model, epochs)
    return [f"model {m!r} is not registered in ser_utils.models.MODEL_REGISTRY "
            f"({', '.join(model_zoo.MODEL_REGISTRY)}); its runs will fail unless the notebook can build it"
            for m in models if m not in model_zoo.MODEL_REGISTRY]


# ------------------------------------------------------------------- run folders
def read_json(path: Path) -> dict | None:
    """A JSON file as a dict, or None when absent or unreadable (a half-written file counts as absent)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON through a temporary file and ``os.replace``, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def is_complete(run_dir: str | Path) -> bool:
    """True when ``metrics.json`` says complete or diverged and the executed notebook is present."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json") or {}
    return metrics.get("status") in FINISHED_STATUSES and (run_dir / RUN_NOTEBOOK).is_file()


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
    metrics = read_json(run_dir / "metrics.json")
    cfg = read_json(run_dir / "config.json") or {}
    if metrics is None and not cfg:
        return None
    metrics = metrics or {"status": "incomplete"}
    row = {col: metrics.get(col, cfg.get(col)) for col in RESULT_COLUMNS}
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


@contextlib.contextmanager
def _locked(lock_path: Path):
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
    """Rebuild ``results_csv`` from every run folder, under a lock, atomically; return the table."""
    from ser_utils.dataset import write_csv_atomic

    results_csv = Path(results_csv)
    with _locked(results_csv.with_name(f".{results_csv.name}.lock")):
        frame = collect_results(runs_dir)
        write_csv_atomic(frame, results_csv)
    return frame


# ------------------------------------------------------------------------ planning
@dataclass
class PlannedRun:
    """One configuration: its notebook parameters, its folder, and what the sweep will do with it."""

    run_id: str
    run_dir: Path
    parameters: dict
    action: str  # "run" | "skip" | "conflict"
    force: bool = False  # pass force=True to the notebook
    conflict: str = ""


def run_id_of(parameters: Mapping[str, Any]) -> str:
    """The folder name training will use (``TrainConfig.run_id``), e.g. ``2d-silu-lr0.001``."""
    return config.TrainConfig(model=parameters["model"], activation=parameters["activation"], lr=parameters["lr"],
                              seed=parameters["seed"], split=parameters["split"]).run_id


def plan(configs: Sequence[dict], runs_dir: Path, common: Mapping[str, Any], epochs: int | Mapping[str, int],
         corpus: str | None, force: bool) -> list[PlannedRun]:
    """Decide per configuration: run it, skip it (complete and identical), or flag a conflict."""
    planned = []
    for cfg in configs:
        params = {**cfg, **common, "epochs": epochs_for(cfg["model"], epochs)}
        rid = run_id_of(params)
        run_dir = runs_dir / rid
        item = PlannedRun(run_id=rid, run_dir=run_dir, parameters=params, action="run", force=force)
        if not force and is_complete(run_dir):
            item.conflict = _difference(run_dir, params, corpus)
            item.action = "conflict" if item.conflict else "skip"
        elif (read_json(run_dir / "metrics.json") or {}).get("status") in FINISHED_STATUSES:
            item.force = True  # trained, but killed before its notebook was saved: redo it whole
        planned.append(item)
    return planned


def _difference(run_dir: Path, params: Mapping[str, Any], corpus: str | None) -> str:
    """How a finished run's recorded settings differ from the request ("" when they agree)."""
    recorded = read_json(run_dir / "config.json") or read_json(run_dir / "metrics.json") or {}
    diffs = []
    for key in COMPARED_FIELDS:
        if key in recorded and not _same(recorded[key], params[key]):
            diffs.append(f"{key} {recorded[key]} -> {params[key]}")
    was = (recorded.get("data") or {}).get("corpus") or recorded.get("corpus")
    if corpus and was and was != corpus:
        diffs.append(f"corpus {was} -> {corpus}")
    return ", ".join(diffs)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return str(a) == str(b)


def _raise_conflicts(planned: Sequence[PlannedRun], runs_dir: Path) -> None:
    conflicts = [p for p in planned if p.action == "conflict"]
    if conflicts:
        detail = "; ".join(f"{p.run_id} ({p.conflict})" for p in conflicts)
        raise SweepConflictError(
            f"{runs_dir}: {len(conflicts)} finished run(s) were trained with other settings than requested: "
            f"{detail}; pass --force to re-train them, or choose another --out")


# ----------------------------------------------------------------------- running
class RunLog:
    """Kernel output -> the sweep's log: prefixed with the run id, progress bars throttled.

    tqdm redraws its bar with carriage returns many times a second; written to a log file that
    is thousands of lines per run. Lines ending in a newline pass through; a redraw (ending in a
    carriage return) is shown at most every ``interval`` seconds, and the last one held back is shown
    before the next plain line and at :meth:`close`, so a bar's final state always appears.
    """

    def __init__(self, run_id: str, emit: Callable[[str], None], interval: float = LOG_INTERVAL_S):
        self.prefix, self.emit, self.interval = f"  [{run_id}] ", emit, interval
        self._buffer, self._pending, self._last = "", "", -math.inf

    def write(self, text: str) -> int:
        self._buffer += text
        consumed = 0
        for match in re.finditer(r"([^\r\n]*)([\r\n])", self._buffer):
            consumed = match.end()
            line = match.group(1).rstrip()
            if line and match.group(2) == "\n":
                self._flush_pending()
                self.emit(self.prefix + line)
            elif line:
                self._progress(line)
        self._buffer = self._buffer[consumed:]
        return len(text)

    def _progress(self, line: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self.emit(self.prefix + line)
            self._last, self._pending = now, ""
        else:
            self._pending = line

    def _flush_pending(self) -> None:
        if self._pending:
            self.emit(self.prefix + self._pending)
            self._pending = ""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._flush_pending()
        if self._buffer.strip():
            self.emit(self.prefix + self._buffer.strip())
        self._buffer = ""


#: The right-hand text of a tqdm bar, e.g. ``37/150 [02:10<06:30, 3.5epoch/s, loss=1.23]``.
TQDM_TEXT = re.compile(r"\d+/\d+ \[")
ENGINE_NAME = "ser_utils-sweep"


def _register_engine() -> str:
    """Register (once) a papermill engine that also logs tqdm *widget* progress.

    With ipywidgets installed, tqdm in a kernel draws a widget: its updates travel as comm
    messages, not as output, so nothing would reach the log during a run. This engine's client
    forwards the bar's text (``37/150 [02:10<06:30, loss=...]``) to the run's stdout handler as a
    redraw, which :class:`RunLog` throttles like a text bar.
    """
    import html as html_lib

    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class ProgressClient(PapermillNotebookClient):
        left = ""  # the bar's description and percentage, e.g. "1d-relu-lr0.001: 25%"

        def handle_comm_msg(self, outs, msg, cell_index):
            super().handle_comm_msg(outs, msg, cell_index)
            value = ((msg.get("content") or {}).get("data") or {}).get("state", {}).get("value")
            if not isinstance(value, str) or self.stdout_file is None:
                return
            text = " ".join(html_lib.unescape(value).replace("\u2007", " ").split())  # tqdm pads with U+2007
            if text.endswith("%"):
                self.left = text
            elif TQDM_TEXT.search(text):
                self.stdout_file.write(f"{self.left} {text}".strip() + "\r")

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log=logger, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            return ProgressClient(nb_man, **final).execute()

    papermill_engines.register(ENGINE_NAME, ProgressEngine)
    return ENGINE_NAME


def _log(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def describe_error(err: BaseException) -> str:
    """One line for metrics.json and the summary (papermill errors carry the notebook's own)."""
    name, value = getattr(err, "ename", None), getattr(err, "evalue", None)
    text = f"{name}: {value}" if name else f"{type(err).__name__}: {err}"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


def execute_run(item: PlannedRun, notebook: Path = NOTEBOOK, kernel_name: str | None = None,
                emit: Callable[[str], None] = _log) -> str | None:
    """Run one configuration's notebook; return None on success, else the recorded error."""
    import papermill as pm

    from ser_utils.report import inline_figures

    item.run_dir.mkdir(parents=True, exist_ok=True)
    partial, final = item.run_dir / PARTIAL_NOTEBOOK, item.run_dir / RUN_NOTEBOOK
    log = RunLog(item.run_id, emit)
    error = None
    try:
        with inline_figures():
            pm.execute_notebook(str(notebook), str(partial), parameters={**item.parameters, "force": item.force},
                                cwd=str(Path(notebook).parent), progress_bar=False, kernel_name=kernel_name,
                                stdout_file=log, stderr_file=log, engine_name=_register_engine())
    except Exception as err:  # a failing configuration is recorded; the sweep goes on
        error = describe_error(err)
    finally:
        log.close()
    if partial.is_file():
        os.replace(partial, final)
    if error is None and (read_json(item.run_dir / "metrics.json") or {}).get("status") not in FINISHED_STATUSES:
        error = "the notebook finished but metrics.json records no finished run"
    if error is not None:
        error = record_failure(item, error)
    return error


def record_failure(item: PlannedRun, error: str) -> str:
    """Write metrics.json with status failed (keeping training's own error when it wrote one)."""
    path = item.run_dir / "metrics.json"
    metrics = read_json(path)
    if metrics and metrics.get("status") == "failed" and metrics.get("error"):
        error = str(metrics["error"])
    elif metrics and metrics.get("status") in FINISHED_STATUSES:
        metrics = {**metrics, "training_status": metrics["status"], "status": "failed",
                   "error": f"the notebook failed after training finished: {error}"}
        error = metrics["error"]
    else:
        keep = ("model", "activation", "lr", "epochs", "batch_size", "seed", "split")
        metrics = {"status": "failed", "run_id": item.run_id, **{k: item.parameters[k] for k in keep}, "error": error}
    metrics["notebook"] = RUN_NOTEBOOK
    write_json_atomic(path, metrics)
    return " ".join(error.split())[:400]


def prepare_features(data: str | Path | None, features_dir: str | Path, progress: bool = True) -> Any:
    """Extract (or load from the cache) the features of the whole corpus, once, before the runs."""
    from ser_utils import dataset, features

    clips, _ = dataset.scan(data)
    return features.extract(clips, cache_root=Path(features_dir), progress=progress)


def _run_line(run_dir: Path) -> str:
    m = read_json(run_dir / "metrics.json") or {}
    if m.get("status") not in FINISHED_STATUSES:
        return f"{run_dir.name}: failed ({m.get('error', 'unknown error')})"
    acc = m.get("accuracy")
    acc_text = f"{acc:.1%}" if isinstance(acc, (int, float)) else "n/a"
    return (f"{run_dir.name}: {m['status']}, accuracy {acc_text}, best epoch {m.get('best_epoch')}"
            f"/{m.get('epochs_run')}, {m.get('wall_time_s') or 0:.0f} s ({m.get('corpus', '?')} corpus)")


def run_sweep(data: str | Path | None = None, out: str | Path = config.OUTPUTS_DIR, *,
              models: Sequence[str] = config.MODELS, activations: Sequence[str] = config.ACTIVATIONS,
              lrs: Sequence[float] = config.LEARNING_RATES, epochs: int | Mapping[str, int] | str = config.TrainConfig.epochs,
              batch_size: int = config.TrainConfig.batch_size, seed: int = config.SEED, split: str = "random",
              device: str = "auto", features_dir: str | Path | None = None, shard_spec: tuple[int, int] | str | None = None,
              force: bool = False, notebook: str | Path = NOTEBOOK, kernel_name: str | None = None,
              progress: bool = True, emit: Callable[[str], None] = _log) -> SweepResult:
    """Run (the missing part of) a sweep into ``out/runs/<run_id>/`` and rebuild ``out/results.csv``.

    Raises ValueError (before running anything) for bad input and :class:`SweepConflictError` for
    finished runs trained with other settings. Failed configurations do not raise: they are in
    ``result.failed`` with their errors.
    """
    from ser_utils import dataset

    models, activations, lrs = parse_names(models), parse_names(activations), parse_lrs(lrs)
    epochs = parse_epochs(epochs)
    for warning in validate(models, activations, lrs, epochs, batch_size, split):
        emit(f"warning: {warning}")
    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: training notebook not found; run from a complete checkout")
    location = dataset.locate(data)
    out = Path(out).expanduser().resolve()
    runs_dir = out / "runs"
    features_dir = Path(features_dir or config.FEATURES_DIR).expanduser().resolve()
    data_dir = Path(data).expanduser().resolve() if data is not None else location.root.resolve()
    configs = configurations(models, activations, lrs)
    if shard_spec is not None:
        k, n = parse_shard(shard_spec) if isinstance(shard_spec, str) else shard_spec
        configs = shard(configs, k, n)
    common = {"batch_size": int(batch_size), "seed": int(seed), "split": split, "device": device,
              "data_dir": str(data_dir), "runs_dir": str(runs_dir), "features_dir": str(features_dir)}
    planned = plan(configs, runs_dir, common, epochs, dataset.corpus_label(location.root), force)
    _raise_conflicts(planned, runs_dir)

    result = SweepResult(runs_dir=runs_dir, results_csv=out / RESULTS_FILE,
                         skipped=[p.run_id for p in planned if p.action == "skip"])
    todo = [p for p in planned if p.action == "run"]
    emit(f"sweep: {len(configs)} configuration(s), {len(result.skipped)} already complete, {len(todo)} to run"
         f" -> {runs_dir}")
    if todo:
        emit(f"features: computing or loading the cache under {features_dir}")
        prepare_features(data_dir, features_dir, progress=progress)
    _run_all(todo, result, notebook, kernel_name, progress, emit)
    write_results(runs_dir, result.results_csv)
    return result


def _run_all(todo: Sequence[PlannedRun], result: SweepResult, notebook: Path, kernel_name: str | None,
             progress: bool, emit: Callable[[str], None]) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc="sweep", unit="run", disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True)
    for item in bar:
        bar.set_postfix_str(item.run_id)
        emit(f"start {item.run_id} (epochs {item.parameters['epochs']})")
        error = execute_run(item, notebook, kernel_name, emit)
        if error is None:
            result.done.append(item.run_id)
        else:
            result.failed.append(item.run_id)
            result.errors[item.run_id] = error
        emit(_run_line(item.run_dir))
        write_results(result.runs_dir, result.results_csv)
    bar.close()
