"""The main job in one call: corpus -> manifest -> features -> notebooks -> 27-run sweep -> analysis -> report.

``python -m ser_utils all`` (and ``make demo``) runs it. Three profiles:

* ``quick``: a small corpus and few epochs so that the whole suite, all 27 configurations
  included, finishes in minutes on a 2-core CPU. It shortens only the corpus size and the
  epochs (per model: the 2D trunk costs ~8x the 1D one per clip); every other setting is the
  report's.
* ``gpu``: the full 91-actor demo corpus and tens of epochs, two runs per GPU: every model
  trains meaningfully in about ten minutes on one data-centre GPU (an estimate until
  ``benchmarks/gpu_check.sh`` has measured it on a card).
* ``full``: the report's protocol (all clips, 150 epochs): for a GPU, hours.

``--profile auto`` (the default) takes ``gpu`` where CUDA is available and ``quick`` elsewhere,
and says which it took (:func:`choose_profile`).

Every stage is resumable: the corpus, the feature cache and finished runs are reused, so a
second call after an interruption finishes only what is missing. Stage timings are written to
``<out>/main_job.json`` so the figures in docs/measured.md are measured, not guessed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ser_utils import config, fileio, runs
from ser_utils.data import discovery
from ser_utils.experiments import nbexec, shards
from ser_utils.experiments import grid as grid_module
from ser_utils.errors import UserError

#: Time limit of one cell of the story and analysis notebooks (seconds): the slowest, the
#: whole-corpus feature extraction of notebook 03, takes under a minute from a warm cache.
NOTEBOOK_CELL_TIMEOUT_S = 1800

STORY_NOTEBOOKS = ("01_data_tour", "02_preprocessing", "03_feature_extraction",
                   "04_model_cnn1d", "05_model_cnn2d", "06_model_combined")


@dataclass(frozen=True)
class Profile:
    """What a main-job profile shortens relative to the report's protocol."""

    name: str
    actors: int  # demo-corpus actors (ignored for real data)
    epochs: str  # an int or per-model "1d=8,2d=1,combined=1", as `sweep --epochs`
    alternatives: bool  # also run notebook 09
    demo_dir: Path
    jobs_per_gpu: int = 1  # sweep processes per GPU (small models leave a card mostly idle)


PROFILES = {
    "quick": Profile("quick", actors=config.QUICK_DEMO_ACTORS, epochs="1d=12,2d=1,combined=1", alternatives=False,
                     demo_dir=config.QUICK_DEMO_CORPUS_DIR),
    "gpu": Profile("gpu", actors=config.N_ACTORS, epochs="1d=60,2d=30,combined=30", alternatives=False,
                   demo_dir=config.DEMO_CORPUS_DIR, jobs_per_gpu=2),
    "full": Profile("full", actors=config.N_ACTORS, epochs=str(config.TrainConfig.epochs), alternatives=True,
                    demo_dir=config.DEMO_CORPUS_DIR),
}
AUTO_PROFILE = "auto"
#: The silence a shard may keep beyond its own kernel watchdog's limit before it is stopped.
SHARD_SILENCE_MARGIN_S = 300.0


def choose_profile(requested: str = AUTO_PROFILE, device: str = "auto") -> tuple[str, str]:
    """``(profile, why)``: ``requested`` itself, or for ``auto`` ``gpu`` when training will run
    on CUDA (``--device cuda...``, or ``auto`` with a CUDA GPU present) and ``quick`` otherwise."""
    if requested != AUTO_PROFILE:
        if requested not in PROFILES:
            raise UserError(f"unknown profile {requested!r}; choose one of {AUTO_PROFILE}, {', '.join(PROFILES)}")
        return requested, "chosen with --profile"
    if device == "cpu":
        return "quick", "auto: --device cpu; --profile gpu|full overrides"
    names = gpu_names()
    if names:
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        return "gpu", f"auto: CUDA GPU {names[0]}{more}; --profile quick|full overrides"
    if device.startswith("cuda"):
        return "gpu", f"auto: --device {device}; --profile quick|full overrides"
    return "quick", "auto: no CUDA GPU found; --profile gpu|full overrides"


def run_main_job(profile: str = AUTO_PROFILE, data: str | Path | None = None, out: str | Path | None = None,
                 epochs: str | None = None, device: str = "auto", force: bool = False,
                 jobs: int | None = None, grid: dict | None = None, precision: str = "auto", emit=print,
                 augment: str = "none") -> dict:
    """Run every stage; return (and write to ``<out>/main_job.json``) what happened and how long it took.

    ``grid`` narrows the sweep (``{"models": [...], "activations": [...], "lrs": [...]}``); by
    default it is the report's 27 configurations. ``augment`` applies to every run of the sweep.
    """
    from ser_utils.analysis import report
    from ser_utils.experiments import sweep
    from ser_utils.features import cache as feature_cache

    profile, why = choose_profile(profile, device)
    emit(f"profile: {profile} ({why})")
    prof = PROFILES[profile]
    out = Path(out) if out else config.OUTPUTS_DIR
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str, func):
        emit(f"== {name}")
        t0 = time.perf_counter()
        value = func()
        timings[name] = round(time.perf_counter() - t0, 1)
        emit(f"   {name}: {timings[name]:.1f} s")
        return value

    data_dir = stage("corpus", lambda: _corpus(prof, data))
    discovery.record_corpus(data_dir, out, by="main job")  # notebooks opened later find it
    stage("manifest", lambda: _write_manifest(data_dir, out / "manifest.csv"))
    features_dir = out / "features"
    stage("features", lambda: sweep.prepare_features(data_dir, features_dir))
    large = feature_cache.large_cache_warning(features_dir)
    if large:
        emit(f"warning: {large}")
    executed = out / "executed"
    params = {"data_dir": str(data_dir), "runs_dir": str(out / "runs"), "features_dir": str(features_dir),
              "figures_dir": str(out / "figures")}
    problems: list[str] = []

    def notebooks(names):
        try:
            nbexec.execute_notebooks(names, executed, params, keep_going=True, cell_timeout=NOTEBOOK_CELL_TIMEOUT_S)
        except nbexec.NotebookFailedError as err:  # recorded; the job goes on and exits non-zero
            problems.append(str(err))
            emit(f"   failed: {err}")

    with _outputs_env(out):
        stage("notebooks 01-06", lambda: notebooks(STORY_NOTEBOOKS))
        swept = stage("sweep", lambda: parallel_sweep(
            data_dir, out, epochs=epochs or prof.epochs, device=device, features_dir=features_dir, force=force,
            jobs=sweep_jobs(device, jobs, per_gpu=prof.jobs_per_gpu), grid=grid, precision=precision, emit=emit,
            sweep_args=["--augment", augment] if augment != "none" else []))
        failed = swept.failed
        problems.extend(f"run {name} failed" for name in failed)
        problems.extend(swept.problems)
        later = ["08_analysis"] + (["09_alternatives"] if prof.alternatives else []) + ["10_predict", "11_augmentation",
                                                                                   "12_attention_transformer"]
        stage("notebooks " + ", ".join(n[:2] for n in later), lambda: notebooks(later))
        index = stage("report", lambda: report.export_report(out / "runs", out / "report", executed))
    summary = _summary(prof, data_dir, out, failed, index, timings, time.perf_counter() - started)
    summary["problems"] = problems
    summary["profile_choice"] = why
    fileio.write_json(out / "main_job.json", summary)
    emit(_headline(summary))
    return summary


def sweep_jobs(device: str, jobs: int | None = None, per_gpu: int = 1) -> int:
    """Sweep processes: ``jobs`` when given (per GPU on a GPU machine, in all on a CPU); by
    default one per core on a CPU and ``per_gpu`` per GPU.

    On a small CPU machine two one-thread runs use the cores better than one two-thread run
    (no thread synchronisation), and each run's kernel start and imports overlap the other's
    training. On a GPU the report's models are small: a second process per card fills the gaps
    the first leaves (kernel start, evaluation, plots, Python overhead per batch).
    """
    if jobs:
        return max(1, int(jobs))
    if device != "cpu" and (device.startswith("cuda") or _cuda_available()):
        return max(1, int(per_gpu))
    return max(1, len(_cores()))


@dataclass
class ShardedSweep:
    """What a parallel sweep did: failed run ids (from results.csv) and dead or silent shards."""

    failed: list[str]
    problems: list[str]
    shards: int
    finished: int = 0
    results_csv: Path | None = None

    def summary(self) -> str:
        return (f"{self.shards} sweep process(es): {self.finished} run(s) finished, {len(self.failed)} failed"
                f"{f', {len(self.problems)} shard problem(s)' if self.problems else ''} -> {self.results_csv}")


def sharded_sweep(data: str | Path | None, out: str | Path, *, models, activations, lrs, epochs: str,
                  batch_size: int, seeds, split: str, split_seed: int, device: str, precision: str,
                  features_dir: str | Path, force: bool, jobs: int | None, cell_timeout: float | None = None,
                  inactivity_timeout: float | None = None, emit=print, augment: str = "none") -> ShardedSweep:
    """``sweep --jobs N``: check the request and extract the features once, then run the sweep
    as parallel shards (:func:`parallel_sweep`: ``N`` per GPU, or ``N`` in all on a CPU)."""
    from ser_utils.data import dataset
    from ser_utils.experiments import sweep

    models, activations = grid_module.parse_names(models), grid_module.parse_names(activations)
    lrs, seeds = grid_module.parse_lrs(lrs), grid_module.parse_seeds(seeds)
    grid_module.validate(models, activations, lrs, grid_module.parse_epochs(epochs), batch_size, split, augment)
    location = dataset.locate(data)
    data_dir = Path(data).expanduser().resolve() if data is not None else location.root.resolve()
    dataset.check_split(dataset.manifest(data_dir, split_method=split, seed=split_seed), str(data_dir))
    out, features_dir = Path(out).expanduser().resolve(), Path(features_dir).expanduser().resolve()
    emit(f"features: computing or loading the cache under {features_dir}")
    sweep.prepare_features(data_dir, features_dir)
    args = ["--seeds", ",".join(map(str, seeds)), "--split", split, "--split-seed", str(split_seed),
            "--batch-size", str(batch_size)]
    args += ["--cell-timeout", f"{cell_timeout:g}"] if cell_timeout else []
    args += ["--augment", augment] if augment != "none" else []
    return parallel_sweep(data_dir, out, epochs=str(epochs), device=device, features_dir=features_dir, force=force,
                          jobs=sweep_jobs(device, jobs), grid={"models": models, "activations": activations, "lrs": lrs},
                          precision=precision, emit=emit, sweep_args=args, runs_per_config=len(seeds),
                          inactivity_timeout=inactivity_timeout)


def parallel_sweep(data_dir: Path, out: Path, epochs: str, device: str, features_dir: Path, force: bool,
                   jobs: int, grid: dict | None = None, precision: str = "auto", emit=print,
                   sweep_args: Sequence[str] = (), runs_per_config: int = 1, inactivity_timeout: float | None = None,
                   command: Callable[[shards.ShardSlot], Sequence[str]] | None = None,
                   poll_s: float = 2.0, gpus: Sequence[str] | None = None) -> ShardedSweep:
    """Run the sweep as shards in parallel processes: ``jobs`` per GPU, or ``jobs`` in all on a
    CPU, each pinned to its own cores and (on a GPU) seeing only its card (:func:`shards.placement`).

    Each shard is ``python -m ser_utils sweep --shard K/N`` (the same resumable command a SLURM
    array runs; ``command(slot)`` replaces it, for tests) writing ``<out>/logs/sweep-K-of-N.log``;
    one progress bar here counts finished run folders. ``sweep_args`` are passed to every shard
    (``--seeds``, ``--split``, ...; ``runs_per_config`` = seeds per configuration, for the bar).
    A shard that dies, or is silent longer than its own kernel watchdog allows plus
    :data:`SHARD_SILENCE_MARGIN_S` (then it is stopped), is in ``problems``; one that rejects
    its input (exit 2) stops the job with the reason from its log.
    """
    import sys

    from tqdm.auto import tqdm

    from ser_utils.experiments import sweep

    grid = grid or {}
    configs = grid_module.configurations(**grid)
    total = len(configs) * max(1, runs_per_config)
    gpus = shards.visible_gpus(device) if gpus is None else list(gpus)
    slots = shards.placement(gpus, jobs, _cores(), limit=total)
    base = [sys.executable, "-m", "ser_utils", "sweep", "--data", str(data_dir), "--out", str(out),
            "--epochs", str(epochs), "--features-dir", str(features_dir), "--precision", precision]
    base += ["--force"] if force else []
    for flag, values in grid.items():
        base += [f"--{flag}", ",".join(str(v) for v in values)]
    base += list(sweep_args)
    if inactivity_timeout:
        base += ["--inactivity-timeout", f"{inactivity_timeout:g}"]
    command = command or (lambda slot: base + ["--device", shards.shard_device(device, slot), "--shard", slot.spec])
    silence = inactivity_timeout or max(sweep.inactivity_timeout_for(c["model"]) for c in configs)
    where = f"{len(gpus)} GPU(s), {jobs} per GPU" if gpus else "CPU"
    emit(f"   {len(slots)} sweep process(es) ({where}); logs in {Path(out) / 'logs'}")
    runs_dir = Path(out) / "runs"
    with tqdm(total=total, desc="sweep", unit="run") as bar:
        def progress():
            done = sum(runs.is_complete(d) for d in runs_dir.glob("*/"))
            if done > bar.n:  # redraw only on progress, so a log file gets one line per run
                bar.update(done - bar.n)

        ended = shards.run_shards(slots, command, Path(out) / "logs", silence + SHARD_SILENCE_MARGIN_S,
                                  poll_s=poll_s, on_poll=progress, emit=emit)
    results_csv = Path(out) / runs.RESULTS_FILE
    results = runs.write_results(runs_dir, results_csv)
    failed = sorted(results.loc[results["status"] == "failed", "run_id"].astype(str))
    return ShardedSweep(failed=failed, problems=[p for p in (s.problem() for s in ended) if p], shards=len(slots),
                        finished=int(results["status"].isin(runs.FINISHED_STATUSES).sum()), results_csv=results_csv)


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def _cuda_available() -> bool:
    return bool(gpu_names())


def gpu_names() -> list[str]:
    """The names of the CUDA GPUs this process sees (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _write_manifest(data_dir: Path, path: Path) -> Path:
    """``<out>/manifest.csv``: one row per clip with its split (the report's random split, seed 42)."""
    from ser_utils.data import dataset

    return fileio.write_csv(path, dataset.manifest(data_dir))


def _corpus(prof: Profile, data: str | Path | None) -> Path:
    """The data folder: the user's (``--data`` / $CREMA_D_DIR) or the profile's demo corpus."""
    from ser_utils.data import dataset, demo_corpus

    if data is not None or os.environ.get(config.DATA_ENV_VAR):
        return dataset.locate(data).root
    if not demo_corpus.is_demo_corpus(prof.demo_dir):
        demo_corpus.generate(prof.demo_dir, n_actors=prof.actors, seed=config.SEED)
    return prof.demo_dir


class _outputs_env:
    """Point the notebooks' kernels at ``out`` (they read $SER_OUTPUTS_DIR) for the job's duration."""

    def __init__(self, out: Path):
        self.out, self.previous = str(Path(out).resolve()), None

    def __enter__(self):
        self.previous = os.environ.get("SER_OUTPUTS_DIR")
        os.environ["SER_OUTPUTS_DIR"] = self.out

    def __exit__(self, *exc):
        if self.previous is None:
            os.environ.pop("SER_OUTPUTS_DIR", None)
        else:
            os.environ["SER_OUTPUTS_DIR"] = self.previous


def _summary(prof: Profile, data_dir: Path, out: Path, failed: list[str], index: Path, timings: dict,
             total: float) -> dict:
    from ser_utils.data import dataset

    results = runs.collect_results(out / "runs")
    finished = runs.finished(results)
    best = finished.sort_values("accuracy", ascending=False).iloc[0] if len(finished) else None
    return {
        "profile": asdict(prof) | {"demo_dir": str(prof.demo_dir)},
        "data_dir": str(data_dir),
        "corpus": dataset.corpus_label(data_dir),
        "runs": int(len(results)),
        "failed": list(failed),
        "best_run": None if best is None else str(best["run_id"]),
        "best_accuracy": None if best is None else float(best["accuracy"]),
        "report": str(index),
        "timings_s": timings,
        "total_s": round(total, 1),
    }


def _headline(summary: dict) -> str:
    label = config.SYNTHETIC_LABEL if summary["corpus"] == "synthetic" else "CREMA-D"
    best = (f"best {summary['best_run']}: test accuracy {summary['best_accuracy']:.1%} ({label})"
            if summary["best_run"] else "no finished run")
    return (f"main job ({summary['profile']['name']} profile) finished in {summary['total_s'] / 60:.1f} min;"
            f" {summary['runs']} runs, {len(summary['failed'])} failed; {best}; report: {summary['report']}")
