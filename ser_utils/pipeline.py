"""The main job in one call: corpus -> manifest -> features -> notebooks -> 27-run sweep -> analysis -> report.

``python -m ser_utils all`` (and ``make demo``) runs it. Two profiles:

* ``quick`` (the default on the embedded demo corpus): a small corpus and few epochs so that the
  whole suite, all 27 configurations included, finishes in minutes on a 2-core CPU. It shortens
  only the corpus size and the epochs (per model: the 2D trunk costs ~8x the 1D one per clip);
  every other setting is the report's.
* ``full``: the report's protocol (all clips, 150 epochs): for a GPU.

Every stage is resumable: the corpus, the feature cache and finished runs are reused, so a
second call after an interruption finishes only what is missing. Stage timings are written to
``<out>/main_job.json`` so the README's figures are measured, not guessed.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ser_utils import config

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


PROFILES = {
    "quick": Profile("quick", actors=8, epochs="1d=12,2d=1,combined=1", alternatives=False,
                     demo_dir=config.REPO_ROOT / "data" / "demo-corpus-quick"),
    "full": Profile("full", actors=config.N_ACTORS, epochs=str(config.TrainConfig.epochs), alternatives=True,
                    demo_dir=config.DEMO_CORPUS_DIR),
}


def run_main_job(profile: str = "quick", data: str | Path | None = None, out: str | Path | None = None,
                 epochs: str | None = None, device: str = "auto", force: bool = False,
                 jobs: int | None = None, grid: dict | None = None, emit=print) -> dict:
    """Run every stage; return (and write to ``<out>/main_job.json``) what happened and how long it took.

    ``grid`` narrows the sweep (``{"models": [...], "activations": [...], "lrs": [...]}``); by
    default it is the report's 27 configurations.
    """
    from ser_utils import report, sweep

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
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
    stage("manifest", lambda: _write_manifest(data_dir, out / "manifest.csv"))
    features_dir = out / "features"
    stage("features", lambda: sweep.prepare_features(data_dir, features_dir))
    executed = out / "executed"
    params = {"data_dir": str(data_dir), "runs_dir": str(out / "runs"), "features_dir": str(features_dir),
              "figures_dir": str(out / "figures")}
    problems: list[str] = []

    def notebooks(names):
        try:
            report.execute_notebooks(names, executed, params, keep_going=True)
        except report.NotebookFailedError as err:  # recorded; the job goes on and exits non-zero
            problems.append(str(err))
            emit(f"   failed: {err}")

    with _outputs_env(out):
        stage("notebooks 01-06", lambda: notebooks(STORY_NOTEBOOKS))
        failed = stage("sweep", lambda: parallel_sweep(
            data_dir, out, epochs=epochs or prof.epochs, device=device, features_dir=features_dir, force=force,
            jobs=sweep_jobs(device, jobs), grid=grid, emit=emit))
        problems.extend(f"run {name} failed" for name in failed)
        later = ["08_analysis"] + (["09_alternatives"] if prof.alternatives else [])
        stage("notebooks " + ", ".join(n[:2] for n in later), lambda: notebooks(later))
        index = stage("report", lambda: report.export_report(out / "runs", out / "report", executed))
    summary = _summary(prof, data_dir, out, failed, index, timings, time.perf_counter() - started)
    summary["problems"] = problems
    sweep.write_json_atomic(out / "main_job.json", summary)
    emit(_headline(summary))
    return summary


def sweep_jobs(device: str, jobs: int | None = None) -> int:
    """Sweep processes to run side by side: one per core on a CPU (default), one on a GPU.

    On a small CPU machine two one-thread runs use the cores better than one two-thread run
    (no thread synchronisation), and each run's kernel start and imports overlap the other's
    training.
    """
    if jobs:
        return max(1, int(jobs))
    if device != "cpu" and (device.startswith("cuda") or _cuda_available()):
        return 1
    return max(1, len(_cores()))


def parallel_sweep(data_dir: Path, out: Path, epochs: str, device: str, features_dir: Path, force: bool,
                   jobs: int, grid: dict | None = None, emit=print) -> list[str]:
    """Run the sweep as ``jobs`` shards in parallel processes, each pinned to its own cores.

    Each shard is ``python -m ser_utils sweep --shard K/N`` (the same resumable command a
    SLURM array runs) writing its log to ``<out>/logs/sweep-K-of-N.log``; one progress bar here
    counts finished run folders. Returns the run ids that failed. A shard that rejects its
    input (exit 2) stops the job with the reason from its log.
    """
    import subprocess
    import sys

    from tqdm.auto import tqdm

    from ser_utils import sweep

    grid = grid or {}
    total = len(sweep.configurations(**grid))
    jobs = max(1, min(jobs, total))
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "ser_utils", "sweep", "--data", str(data_dir), "--out", str(out),
            "--epochs", str(epochs), "--device", device, "--features-dir", str(features_dir)]
    base += ["--force"] if force else []
    for flag, values in grid.items():
        base += [f"--{flag}", ",".join(str(v) for v in values)]
    cores = _cores()
    procs = []
    for k in range(1, jobs + 1):
        mine = cores[k - 1::jobs] if len(cores) >= jobs else None
        log_path = logs / f"sweep-{k}-of-{jobs}.log"
        with open(log_path, "w") as log:
            procs.append((k, log_path, subprocess.Popen(
                base + ["--shard", f"{k}/{jobs}"], stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=(lambda c=mine: os.sched_setaffinity(0, c)) if mine else None)))
    emit(f"   {jobs} sweep process(es); logs in {logs}")
    with tqdm(total=total, desc="sweep", unit="run") as bar:
        running = True
        while running:
            running = any(p.poll() is None for _, _, p in procs)
            done = sum(sweep.is_complete(d) for d in (Path(out) / "runs").glob("*/"))
            if done > bar.n:  # redraw only on progress, so a log file gets one line per run
                bar.update(done - bar.n)
            time.sleep(2 if running else 0)
    for k, log_path, proc in procs:
        if proc.returncode == 2:
            tail = log_path.read_text().strip().splitlines()[-1:] or ["(empty log)"]
            raise ValueError(f"sweep shard {k}/{jobs} refused its input: {tail[0]} (log: {log_path})")
    results = sweep.write_results(Path(out) / "runs", Path(out) / sweep.RESULTS_FILE)
    return sorted(results.loc[results["status"] == "failed", "run_id"].astype(str))


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _write_manifest(data_dir: Path, path: Path) -> Path:
    """``<out>/manifest.csv``: one row per clip with its split (the report's random split, seed 42)."""
    from ser_utils import dataset

    return dataset.write_csv_atomic(dataset.manifest(data_dir), path)


def _corpus(prof: Profile, data: str | Path | None) -> Path:
    """The data folder: the user's (``--data`` / $CREMA_D_DIR) or the profile's demo corpus."""
    from ser_utils import dataset, demo_corpus

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
    from ser_utils import dataset, sweep

    results = sweep.collect_results(out / "runs")
    finished = results[results["status"].isin(["complete", "diverged"])]
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
    label = "synthetic demo corpus - not a CREMA-D result" if summary["corpus"] == "synthetic" else "CREMA-D"
    best = (f"best {summary['best_run']}: test accuracy {summary['best_accuracy']:.1%} ({label})"
            if summary["best_run"] else "no finished run")
    return (f"main job ({summary['profile']['name']} profile) finished in {summary['total_s'] / 60:.1f} min;"
            f" {summary['runs']} runs, {len(summary['failed'])} failed; {best}; report: {summary['report']}")
