"""The prepared GPU check: what a card does with this project, in one table, within a time budget.

Run by ``benchmarks/gpu_check.sh`` (which finds the environment and caps the wall time); it
needs only the repository (no network). Stages, each under its own time limit so that the whole
check ends inside ``--budget-s`` (default 450 s: under 8 minutes with start-up):

1. training throughput per model (``bench_training.py --precision both``): clips/s, peak GPU
   memory, bf16 against fp32, time per clip against the 2D CNN; the models in
   :data:`THROUGHPUT_MODELS` order (the report's, then the transformer and the attention CNNs,
   then the alternatives), so a stage cut by its time limit has measured those first;
2. the full 91-actor demo corpus (reused when already generated) and its features;
3. the 27-configuration sweep, 3 epochs per run, with 1, 2 and 4 runs per GPU
   (``sweep --jobs N``, each in a fresh folder). A sweep that does not finish inside its share
   of the budget is stopped (SIGTERM reaches its shards); what it finished gives a projected
   time, labelled as such;
4. projections from the measured epoch times and per-run overhead: the report's protocol
   (27 x 150 epochs on 7,442 clips) and the ``gpu`` profile's sweep (``make demo`` on a GPU).

Everything lands under ``--work`` (default ``outputs/gpu-check/``): ``gpu_check.json`` (all
numbers), ``gpu_check.txt`` (the table) and each stage's log. ``--plan`` prints the stages and
their limits without running anything. Figures are for the synthetic demo corpus and the
card named in the table's first line.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ser_utils import config, fileio, models, pipeline, runs
from ser_utils.experiments import grid  # noqa: E402

#: The sweep of the check: the report's 27 configurations, 3 epochs each.
SWEEP_EPOCHS = 3
CONCURRENCY = (1, 2, 4)
#: Shares of the time left after throughput, corpus and features, per concurrency.
SWEEP_SHARES = {1: 0.45, 2: 0.30, 4: 0.25}
#: The report's protocol: every configuration for 150 epochs on the 7,442 released clips.
PROTOCOL_EPOCHS = config.TrainConfig.epochs
PROTOCOL_CLIPS = config.N_CLIPS_RELEASED
#: Models of the throughput stage, in the order measured: the report's three, notebook 12's transformer and
#: attention CNNs, then every other registered model.
THROUGHPUT_MODELS = list(dict.fromkeys([*config.MODELS, "transformer", "2d-attn", "1d-attn", *models.MODEL_REGISTRY]))
#: Fixed stage limits (seconds): throughput, corpus, features.
LIMITS = {"throughput": 100, "corpus": 90, "features": 60}


@dataclass
class SweepMeasure:
    """One sweep of the check: what finished in how long, and the per-model epoch times."""

    jobs: int
    elapsed_s: float
    finished: int
    total: int
    stopped: bool  # ran out of its time share
    epoch_s: dict[str, float] = field(default_factory=dict)  # median steady epoch per model
    failed: int = 0

    @property
    def projected_s(self) -> float | None:
        """Seconds for the whole grid: measured when it finished, else extrapolated from the rate."""
        if self.finished >= self.total:
            return self.elapsed_s
        return self.elapsed_s * self.total / self.finished if self.finished else None

    @property
    def run_overhead_s(self) -> float | None:
        """Seconds of one run beyond its epochs (kernel start, loading, evaluation, plots, saving),
        from the shards' busy time: elapsed x jobs / finished runs, less the runs' epochs."""
        if not self.finished or not self.epoch_s:
            return None
        per_run = self.elapsed_s * self.jobs / self.finished
        return max(0.0, per_run - SWEEP_EPOCHS * sum(self.epoch_s.values()) / len(self.epoch_s))


def measure_sweep(out: Path, jobs: int, elapsed_s: float, total: int, stopped: bool) -> SweepMeasure:
    """Read the finished run folders of one sweep: counts and each model's steady epoch time
    (the median over its runs of the median epoch after the first, which pays cuDNN autotuning)."""
    per_model: dict[str, list[float]] = {}
    finished = failed = 0
    for run_dir in sorted((out / "runs").glob("*/")):
        metrics = fileio.read_json(run_dir / runs.METRICS_FILE) or {}
        if metrics.get("status") == runs.STATUS_FAILED:
            failed += 1
        if not runs.is_complete(run_dir):
            continue
        finished += 1
        history = run_dir / runs.HISTORY_FILE
        times = pd.read_csv(history)["epoch_time_s"].tolist() if history.is_file() else []
        steady = times[1:] or times or [metrics.get("time_per_epoch_s")]
        model = str(metrics.get("model") or run_dir.name.split("-")[0])
        if steady[0] is not None:
            per_model.setdefault(model, []).append(float(pd.Series(steady).median()))
    epoch_s = {m: float(pd.Series(v).median()) for m, v in per_model.items()}
    return SweepMeasure(jobs, elapsed_s, finished, total, stopped, epoch_s, failed)


def project(measure: SweepMeasure, epochs: dict[str, int], configs_per_model: int, clip_scale: float) -> float | None:
    """Seconds for ``configs_per_model`` runs of each model at ``epochs[model]``, at this sweep's
    concurrency: (runs x overhead + sum of epochs x epoch time, scaled to the corpus) / jobs."""
    overhead = measure.run_overhead_s
    if overhead is None or any(m not in measure.epoch_s for m in epochs):
        return None
    work = sum(configs_per_model * (overhead + epochs[m] * measure.epoch_s[m] * clip_scale) for m in epochs)
    return work / measure.jobs


def hours(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def table(info: dict, throughput: list[dict], sweeps: list[SweepMeasure], projections: dict) -> str:
    """The check's one table: what was measured, with which setting, and the result."""
    rows = []
    by = {(r["model"], r["precision"]): r for r in throughput}
    for model in dict.fromkeys(r["model"] for r in throughput):
        parts = []
        for prec in ("bf16", "fp32"):
            r = by.get((model, prec))
            if r:
                peak = "" if r.get("peak_mib") is None else f", peak {r['peak_mib']:.0f} MiB"
                parts.append(f"{prec} {r['clips_per_s']:,.0f} clips/s{peak}")
        if (model, "bf16") in by and (model, "fp32") in by:
            parts.append(f"bf16/fp32 {by[(model, 'bf16')]['clips_per_s'] / by[(model, 'fp32')]['clips_per_s']:.2f}x")
        rows.append(("training throughput", model, "; ".join(parts)))
    for m in sweeps:
        done = f"{m.finished}/{m.total} runs in {m.elapsed_s:.0f} s"
        if m.finished >= m.total:
            result = f"{done} (measured)"
        else:
            result = f"{done}, stopped at its time share: {hours(m.projected_s)} projected for all {m.total}"
        result += f"; {m.failed} failed" if m.failed else ""
        epochs = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(m.epoch_s.items()))
        rows.append((f"sweep {m.total} x {SWEEP_EPOCHS} epochs", f"{m.jobs} run(s) per GPU",
                     result + (f"; epoch: {epochs}" if epochs else "")))
    for label, value in projections.items():
        rows.append(("projection", label, value))
    width = [max(len(r[i]) for r in rows + [("what", "setting", "result")]) for i in range(2)]
    head = (f"GPU check: {info.get('device', '?')}, torch {info.get('torch', '?')}, CUDA {info.get('cuda', '?')}, "
            f"{info.get('cpus', '?')} CPUs; corpus: {info.get('corpus', '?')} ({config.SYNTHETIC_LABEL})")
    lines = [head, f"{'what':<{width[0]}}  {'setting':<{width[1]}}  result",
             f"{'-' * width[0]}  {'-' * width[1]}  {'-' * 40}"]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def projections_for(sweeps: list[SweepMeasure], corpus_clips: int) -> dict[str, str]:
    """The report's protocol and the gpu profile's sweep, at each measured concurrency."""
    models = list(config.MODELS)
    per_model = len(config.ACTIVATIONS) * len(config.LEARNING_RATES)
    protocol = {m: PROTOCOL_EPOCHS for m in models}
    profile = {k: int(v) for k, v in (p.split("=") for p in pipeline.PROFILES["gpu"].epochs.split(","))}
    out = {}
    for m in sweeps:
        proto = project(m, protocol, per_model, PROTOCOL_CLIPS / corpus_clips if corpus_clips else 1.0)
        prof = project(m, profile, per_model, 1.0)
        out[f"report's protocol, {m.jobs} per GPU"] = (
            f"{hours(proto)} for 27 x {PROTOCOL_EPOCHS} epochs on {PROTOCOL_CLIPS:,} clips" if proto else
            "n/a (no finished run of every model)")
        out[f"gpu profile sweep, {m.jobs} per GPU"] = (
            f"{hours(prof)} for epochs {pipeline.PROFILES['gpu'].epochs} on the demo corpus" if prof else "n/a")
    return out


# ------------------------------------------------------------------------ running
def run_stage(name: str, argv: list[str], limit_s: float, log: Path) -> tuple[float, bool, int]:
    """Run ``argv`` with its output in ``log``; SIGTERM at ``limit_s`` (SIGKILL 20 s later).
    Returns (seconds, stopped at the limit, exit status)."""
    print(f"== {name} (limit {limit_s:.0f} s): {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    with open(log, "wb") as handle:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stopped = False
        try:
            proc.wait(timeout=max(1.0, limit_s))
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    print(f"   {name}: {elapsed:.0f} s, exit {proc.returncode}{' (stopped at its limit)' if stopped else ''}",
          flush=True)
    return elapsed, stopped, proc.returncode


def environment(device: str) -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda or "none", "cpus": os.cpu_count()}
    info["device"] = torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else "CPU"
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=config.OUTPUTS_DIR / "gpu-check",
                        help="where the sweeps, logs and results go (default: outputs/gpu-check)")
    parser.add_argument("--corpus", type=Path, default=config.DEMO_CORPUS_DIR,
                        help="the 91-actor demo corpus (generated there when missing; default: data/demo-corpus)")
    parser.add_argument("--actors", type=int, default=config.N_ACTORS)
    parser.add_argument("--budget-s", type=float, default=450.0, help="the whole check's time (default 450 s)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a smoke run without a card")
    parser.add_argument("--models", default=",".join(config.MODELS), help="the sweep's models (default: the report's)")
    parser.add_argument("--throughput-models", nargs="+", default=None,
                        help="models of the throughput stage (default: every registered model, "
                             "the report's and the transformer first)")
    parser.add_argument("--jobs", default=",".join(map(str, CONCURRENCY)), help="runs per GPU to compare (default 1,2,4)")
    parser.add_argument("--plan", action="store_true", help="print the stages and their limits; run nothing")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, float]]:
    """(stage, limit in seconds) in order; the sweeps share what the fixed stages leave."""
    jobs = [int(j) for j in str(args.jobs).split(",")]
    left = args.budget_s - sum(LIMITS.values())
    shares = {j: SWEEP_SHARES.get(j, 1 / len(jobs)) for j in jobs}
    scale = sum(shares.values())
    return [(name, float(limit)) for name, limit in LIMITS.items()] + [
        (f"sweep, {j} per GPU", max(30.0, left * shares[j] / scale)) for j in jobs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stages = plan(args)
    if args.plan:
        for name, limit in stages:
            print(f"{name:<24}{limit:>6.0f} s")
        print(f"{'total':<24}{sum(limit for _, limit in stages):>6.0f} s (budget {args.budget_s:.0f} s)")
        return 0
    started = time.monotonic()
    info = environment(args.device)
    if args.device != "cpu" and info["device"] == "CPU":
        print("error: no CUDA GPU visible to torch; this check is for a GPU machine (--device cpu for a smoke run)",
              file=sys.stderr)
        return 2
    work = args.work.resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    limits = dict(stages)
    python = sys.executable
    bench_json = work / "throughput.json"
    bench = [python, str(REPO / "benchmarks" / "bench_training.py"), "--device", args.device, "--precision", "both",
             "--clips", "2048", "--batches", "8", "--repeats", "2", "--json", str(bench_json)]
    if args.device == "cpu":
        bench += ["--quick"]
    if args.device != "cpu" or args.throughput_models:  # on the CPU, --quick's two models unless asked
        bench += ["--models", *(args.throughput_models or THROUGHPUT_MODELS)]
    run_stage("throughput", bench, limits["throughput"], work / "logs" / "throughput.log")
    throughput = (fileio.read_json(bench_json) or {}).get("rows", [])

    corpus = args.corpus.resolve()
    marker = fileio.read_json(corpus / "demo_corpus.json") or {}
    if marker.get("n_actors") != args.actors:  # reused only when it is the complete corpus asked for
        run_stage("corpus", [python, "-m", "ser_utils", "demo-data", "--out", str(corpus), "--actors", str(args.actors)],
                  limits["corpus"], work / "logs" / "corpus.log")
    features = work / "features"
    run_stage("features", [python, "-m", "ser_utils", "features", "--data", str(corpus), "--out", str(features)],
              limits["features"], work / "logs" / "features.log")
    n_clips = len(list((corpus / "AudioWAV").glob("*.wav")))
    info["corpus"] = f"{n_clips:,} clips, {args.actors} actors"

    sweeps = []
    total = len(grid.configurations(models=args.models.split(",")))
    planned = stages[len(LIMITS):]
    for i, (name, _) in enumerate(planned):
        jobs = int(name.split(",")[1].split()[0])
        out = work / f"sweep-{jobs}-per-gpu"
        shutil.rmtree(out, ignore_errors=True)
        # this sweep's share of the time left (what earlier stages did not use flows to the later ones)
        remaining = args.budget_s - (time.monotonic() - started) - 5
        shares = [SWEEP_SHARES.get(int(n.split(",")[1].split()[0]), 0.3) for n, _ in planned[i:]]
        limit = max(10.0, remaining * shares[0] / sum(shares))
        argv = [python, "-m", "ser_utils", "sweep", "--data", str(corpus), "--out", str(out), "--features-dir",
                str(features), "--epochs", str(SWEEP_EPOCHS), "--models", args.models, "--jobs", str(jobs),
                "--device", args.device]
        elapsed, stopped, _ = run_stage(name, argv, limit, work / "logs" / f"sweep-{jobs}.log")
        sweeps.append(measure_sweep(out, jobs, elapsed, total, stopped))
    projections = projections_for(sweeps, n_clips)
    text = table(info, throughput, sweeps, projections)
    fileio.write_text(work / "gpu_check.txt", text + "\n")
    fileio.write_json(work / "gpu_check.json", {
        "info": info, "throughput": throughput, "projections": projections, "elapsed_s": time.monotonic() - started,
        "sweeps": [{**m.__dict__, "projected_s": m.projected_s, "run_overhead_s": m.run_overhead_s} for m in sweeps]})
    print(text)
    print(f"(whole check: {time.monotonic() - started:.0f} s; details in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
