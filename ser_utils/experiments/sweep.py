"""The papermill sweep: notebooks/07_train.ipynb once per configuration, resumable and shardable.

Why a notebook per run rather than a Python loop: every configuration then leaves an executed
notebook in its run folder (``<out>/runs/<run_id>/07_train.ipynb``) with its learning curves and
confusion matrix, which the HTML report links to; a crash shows the failing cell in place.

Guarantees
----------
* **Resume.** A run counts as done when it is complete (:func:`ser_utils.runs.is_complete`:
  finished and its executed notebook saved). Re-running the same command after an interruption
  (Ctrl-C, ``kill -9``, ``scancel``, a lost node) runs only what is missing; nothing done is
  re-run or lost.
* **No silent mix-ups.** The run id names every result-affecting setting that differs from the
  report's protocol (``config.TrainConfig.run_id``); a finished run in the same folder whose
  recorded settings or corpus still differ from the request is a conflict: the sweep stops before
  running anything, names the differing fields, and says to pass ``--force`` or use another ``--out``.
* **Failure isolation.** A configuration that fails (an exception in the notebook, a dead
  kernel, a cell over its time limit) is recorded in its folder (``metrics.json`` with
  ``status: failed`` and ``error``, the partial notebook kept) and the sweep goes on;
  :class:`SweepResult` lists it and the command line exits 1 at the end naming it.
* **One feature pass.** The features are extracted (or found in the cache) once before the first
  run; every notebook then loads them from the cache.
* **results.csv** is rebuilt from the run folders on disk under a file lock
  (:func:`ser_utils.runs.write_results`) after every run, so shards sharing one ``--out`` never
  race and a partial sweep always has a current table.

``--shard K/N`` runs ``configurations[K-1::N]`` (:func:`ser_utils.experiments.grid.shard`); the
cluster guide (docs/gpu-and-cluster.md) shows the SLURM job array that uses it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ser_utils import config, fileio, runs
from ser_utils.experiments import grid, nbexec
from ser_utils.errors import UserError

NOTEBOOK = config.NOTEBOOKS_DIR / runs.RUN_NOTEBOOK
#: Notebook parameters recorded in metrics.json when a run fails before training wrote its own.
RECORDED_PARAMETERS = ("model", "activation", "lr", "epochs", "batch_size", "seed", "split", "split_seed", "augment")


class SweepConflictError(UserError):
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
                + f"; see {self.runs_dir}/<run_id>/{runs.RUN_NOTEBOOK}, fix, and re-run the same command")


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


def train_config(parameters: Mapping[str, Any]) -> config.TrainConfig:
    """The TrainConfig notebook 07 builds from these parameters (the other fields at their defaults)."""
    keys = ("model", "activation", "lr", "epochs", "batch_size", "seed", "split", "split_seed", "augment")
    return config.TrainConfig(**{k: parameters[k] for k in keys if k in parameters},
                              numeric_precision=parameters.get("precision", "auto"))


def run_id_of(parameters: Mapping[str, Any]) -> str:
    """The folder name training will use (``TrainConfig.run_id``), e.g. ``2d-silu-lr0.001``."""
    return train_config(parameters).run_id


def plan(configs: Sequence[dict], runs_dir: Path, common: Mapping[str, Any], epochs: int | Mapping[str, int],
         corpus: str | None, force: bool, corpus_clips: Callable[[], str] | None = None) -> list[PlannedRun]:
    """Decide per configuration: run it, skip it (complete and identical), or flag a conflict.

    ``corpus_clips()`` gives the corpus fingerprint (:func:`ser_utils.data.dataset.corpus_fingerprint`);
    it is called only when a complete run is there to compare with.
    """
    planned = []
    for cfg in configs:
        params = {**cfg, **common, "epochs": grid.epochs_for(cfg["model"], epochs)}
        rid = run_id_of(params)
        run_dir = runs_dir / rid
        item = PlannedRun(run_id=rid, run_dir=run_dir, parameters=params, action="run", force=force)
        if not force and runs.is_complete(run_dir):
            item.conflict = ", ".join(runs.differences(run_dir, train_config(params).result_settings(), corpus,
                                                       corpus_clips() if corpus_clips else None))
            item.action = "conflict" if item.conflict else "skip"
        elif runs.is_finished(run_dir):
            item.force = True  # trained, but killed before its notebook was saved: redo it whole
        planned.append(item)
    return planned


def _raise_conflicts(planned: Sequence[PlannedRun], runs_dir: Path) -> None:
    conflicts = [p for p in planned if p.action == "conflict"]
    if conflicts:
        detail = "; ".join(f"{p.run_id} ({p.conflict})" for p in conflicts)
        raise SweepConflictError(
            f"{runs_dir}: {len(conflicts)} finished run(s) were trained with other settings than requested: "
            f"{detail}; pass --force to re-train them, or choose another --out")


def execute_run(item: PlannedRun, notebook: Path = NOTEBOOK, kernel_name: str | None = None,
                emit: Callable[[str], None] = nbexec.log_to_stderr, cell_timeout: float | None = None,
                inactivity_timeout: float | None = None) -> str | None:
    """Run one configuration's notebook; return None on success, else the recorded error."""
    if runs.read_status(item.run_dir) == runs.STATUS_FAILED:  # an earlier attempt's error is not this one's
        (item.run_dir / runs.METRICS_FILE).unlink()
    error = None
    try:
        nbexec.execute(notebook, item.run_dir / runs.RUN_NOTEBOOK, {**item.parameters, "force": item.force},
                       kernel_name=kernel_name, cell_timeout=cell_timeout, log_label=item.run_id, emit=emit,
                       inactivity_timeout=inactivity_timeout)
    except Exception as err:  # a failing configuration is recorded; the sweep goes on
        error = nbexec.describe_error(err)
        if isinstance(err, nbexec.StalledError):
            error = f"timeout: {err}"
        elif nbexec.is_timeout(err):
            error = f"timeout: a cell ran longer than {cell_timeout:.0f} s ({error})"
    if error is None and not runs.is_finished(item.run_dir):
        error = "the notebook finished but metrics.json records no finished run"
    if error is not None:
        error = record_failure(item, error)
    return error


def record_failure(item: PlannedRun, error: str) -> str:
    """Write metrics.json with status failed (keeping training's own error when it wrote one)."""
    path = item.run_dir / runs.METRICS_FILE
    metrics = fileio.read_json(path)
    if metrics and metrics.get("status") == runs.STATUS_FAILED and metrics.get("error"):
        error = str(metrics["error"])
    elif metrics and metrics.get("status") in runs.FINISHED_STATUSES:
        metrics = {**metrics, "training_status": metrics["status"], "status": runs.STATUS_FAILED,
                   "error": f"the notebook failed after training finished: {error}"}
        error = metrics["error"]
    else:
        metrics = {"status": runs.STATUS_FAILED, "run_id": item.run_id,
                   **{k: item.parameters[k] for k in RECORDED_PARAMETERS if k in item.parameters}, "error": error}
    metrics["notebook"] = runs.RUN_NOTEBOOK
    fileio.write_json(path, metrics)
    return " ".join(error.split())[:400]


def prepare_features(data: str | Path | None, features_dir: str | Path, progress: bool = True) -> Any:
    """Extract (or load from the cache) the features of the whole corpus, once, before the runs."""
    from ser_utils import features
    from ser_utils.data import dataset

    clips, _ = dataset.scan(data)
    return features.extract(clips, cache_root=Path(features_dir), progress=progress)


def _run_line(run_dir: Path) -> str:
    m = fileio.read_json(run_dir / runs.METRICS_FILE) or {}
    if m.get("status") not in runs.FINISHED_STATUSES:
        return f"{run_dir.name}: failed ({m.get('error', 'unknown error')})"
    acc = m.get("accuracy")
    acc_text = f"{acc:.1%}" if isinstance(acc, (int, float)) else "n/a"
    return (f"{run_dir.name}: {m['status']}, accuracy {acc_text}, best epoch {m.get('best_epoch')}"
            f"/{m.get('epochs_run')}, {m.get('wall_time_s') or 0:.0f} s ({m.get('corpus', '?')} corpus)")


#: Seconds of one training epoch the default cell time limit allows: generous (a full CREMA-D
#: epoch of the 2D CNN takes about a minute on two CPU cores), because the limit is there to
#: turn a stalled kernel into a recorded failure, not to police slow machines.
EPOCH_BUDGET_S = {"1d": 60.0}
DEFAULT_EPOCH_BUDGET_S = 600.0
CELL_TIMEOUT_BASE_S = 900.0


def cell_timeout_for(model: str, epochs: int) -> float:
    """The default time limit of one notebook cell of a run: a base plus a budget per epoch."""
    return CELL_TIMEOUT_BASE_S + epochs * EPOCH_BUDGET_S.get(model, DEFAULT_EPOCH_BUDGET_S)


def inactivity_timeout_for(model: str) -> float:
    """The default silence a run's kernel may keep: two epochs' budget plus the base (training
    prints a progress line every epoch; loading the features is the longest quiet step)."""
    return CELL_TIMEOUT_BASE_S + 2 * EPOCH_BUDGET_S.get(model, DEFAULT_EPOCH_BUDGET_S)


def run_sweep(data: str | Path | None = None, out: str | Path = config.OUTPUTS_DIR, *,
              models: Sequence[str] = config.MODELS, activations: Sequence[str] = config.ACTIVATIONS,
              lrs: Sequence[float] = config.LEARNING_RATES, epochs: int | Mapping[str, int] | str = config.TrainConfig.epochs,
              batch_size: int = config.TrainConfig.batch_size, seeds: Sequence[int] | str | int = (config.SEED,),
              split: str = "random", split_seed: int = config.SEED, device: str = "auto", precision: str = "auto",
              augment: str = "none", features_dir: str | Path | None = None, shard_spec: tuple[int, int] | str | None = None,
              force: bool = False, notebook: str | Path = NOTEBOOK, kernel_name: str | None = None,
              cell_timeout: float | None = None, inactivity_timeout: float | None = None, progress: bool = True,
              emit: Callable[[str], None] = nbexec.log_to_stderr) -> SweepResult:
    """Run (the missing part of) a sweep into ``out/runs/<run_id>/`` and rebuild ``out/results.csv``.

    Each configuration runs once per seed in ``seeds`` (the weights and the batch order); every
    seed shares the split drawn by ``split_seed``, so repetitions are compared on the same test
    clips. ``augment`` (:data:`ser_utils.config.AUGMENTS`) applies to every run. ``cell_timeout`` limits each notebook cell (default :func:`cell_timeout_for`) and
    ``inactivity_timeout`` the kernel's silence (default :func:`inactivity_timeout_for`); a run
    over either is recorded as failed with the reason ``timeout`` and the sweep goes on.

    Raises ValueError (before running anything) for bad input and :class:`SweepConflictError` for
    finished runs trained with other settings. Failed configurations do not raise: they are in
    ``result.failed`` with their errors.
    """
    from ser_utils.data import dataset

    models, activations = grid.parse_names(models), grid.parse_names(activations)
    lrs, epochs, seeds = grid.parse_lrs(lrs), grid.parse_epochs(epochs), grid.parse_seeds(seeds)
    grid.validate(models, activations, lrs, epochs, batch_size, split, augment)
    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook}: training notebook not found; run from a complete checkout")
    location = dataset.locate(data)
    out = Path(out).expanduser().resolve()
    runs_dir = out / "runs"
    features_dir = Path(features_dir or config.FEATURES_DIR).expanduser().resolve()
    data_dir = Path(data).expanduser().resolve() if data is not None else location.root.resolve()
    configs = [{**c, "seed": s} for c in grid.configurations(models, activations, lrs) for s in seeds]
    if shard_spec is not None:
        k, n = grid.parse_shard(shard_spec) if isinstance(shard_spec, str) else shard_spec
        configs = grid.shard(configs, k, n)
    common = {"batch_size": int(batch_size), "split": split, "split_seed": int(split_seed), "device": device,
              "precision": precision, "augment": augment,
              "data_dir": str(data_dir), "runs_dir": str(runs_dir), "features_dir": str(features_dir)}
    fingerprint = functools.cache(lambda: dataset.corpus_fingerprint(dataset.scan(data_dir)[0]["path"]))
    planned = plan(configs, runs_dir, common, epochs, dataset.corpus_label(location.root), force, fingerprint)
    _raise_conflicts(planned, runs_dir)

    result = SweepResult(runs_dir=runs_dir, results_csv=out / runs.RESULTS_FILE,
                         skipped=[p.run_id for p in planned if p.action == "skip"])
    todo = [p for p in planned if p.action == "run"]
    emit(f"sweep: {len(configs)} configuration(s), {len(result.skipped)} already complete, {len(todo)} to run"
         f" -> {runs_dir}")
    if todo:
        dataset.check_split(dataset.manifest(data_dir, split_method=split, seed=split_seed), str(data_dir))
        emit(f"features: computing or loading the cache under {features_dir}")
        prepare_features(data_dir, features_dir, progress=progress)
    _run_all(todo, result, notebook, kernel_name, (cell_timeout, inactivity_timeout), progress, emit)
    runs.write_results(runs_dir, result.results_csv)
    return result


def _run_all(todo: Sequence[PlannedRun], result: SweepResult, notebook: Path, kernel_name: str | None,
             limits: tuple[float | None, float | None], progress: bool, emit: Callable[[str], None]) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc="sweep", unit="run", disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True)
    for item in bar:
        bar.set_postfix_str(item.run_id)
        epochs = item.parameters["epochs"]
        limit = limits[0] or cell_timeout_for(item.parameters["model"], epochs)
        silence = limits[1] or inactivity_timeout_for(item.parameters["model"])
        emit(f"start {item.run_id} (epochs {epochs}; limits: {limit:.0f} s per cell, {silence:.0f} s of silence)")
        error = execute_run(item, notebook, kernel_name, emit, cell_timeout=limit, inactivity_timeout=silence)
        if error is None:
            result.done.append(item.run_id)
        else:
            result.failed.append(item.run_id)
            result.errors[item.run_id] = error
        emit(_run_line(item.run_dir))
        runs.write_results(result.runs_dir, result.results_csv)
    bar.close()
