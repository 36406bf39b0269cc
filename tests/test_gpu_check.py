"""The GPU check's parts that run without a card: the shell script parses, the training benchmark
runs on the CPU at tiny sizes (both precisions, a variable-length model), and the check's
measurements and projections are right on fake sweep folders."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from ser_utils import config

BENCHMARKS = config.REPO_ROOT / "benchmarks"


def _load(name: str):
    """A script of benchmarks/ as a module (registered, as dataclasses need)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_check():
    return _load("gpu_check")


def test_gpu_check_script_parses_and_caps_its_time():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    script = BENCHMARKS / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert 'LIMIT_S="${GPU_CHECK_LIMIT_S:-480}"' in text and "timeout --signal=TERM" in text


def test_gpu_check_plan_fits_eight_minutes(gpu_check, capsys):
    assert gpu_check.main(["--plan"]) == 0
    out = capsys.readouterr().out
    stages = gpu_check.plan(gpu_check.parse_args([]))
    assert [name for name, _ in stages] == ["throughput", "corpus", "features", "sweep, 1 per GPU",
                                            "sweep, 2 per GPU", "sweep, 4 per GPU"]
    assert sum(limit for _, limit in stages) <= 450 < 480 and "sweep, 4 per GPU" in out


def test_bench_training_runs_on_the_cpu_in_both_precisions(tmp_path, capsys):
    bench = _load("bench_training")
    assert bench.main(["--device", "cpu", "--quick", "--precision", "both", "--json", str(tmp_path / "t.json")]) == 0
    result = json.loads((tmp_path / "t.json").read_text())
    rows = {(r["model"], r["precision"]): r for r in result["rows"]}
    assert set(rows) == {(m, p) for m in ("1d", "combined-varlen") for p in ("fp32", "bf16")}
    assert all(r["clips_per_s"] > 0 and r["peak_mib"] is None and r["clips"] == 2 for r in rows.values())
    assert set(result["bf16_vs_fp32"]) == {"1d", "combined-varlen"}
    out = capsys.readouterr().out
    assert "bf16 against fp32 (clips/s): 1d" in out and "peak MiB" in out


def _fake_run(runs_dir, run_id, model, epoch_times, status="complete"):
    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"status": status, "model": model, "run_id": run_id}))
    pd.DataFrame({"epoch": range(1, len(epoch_times) + 1), "epoch_time_s": epoch_times}).to_csv(
        folder / "history.csv", index=False)
    (folder / "07_train.ipynb").write_text("{}")
    return folder


def test_measure_and_project_a_sweep(gpu_check, tmp_path):
    runs_dir = tmp_path / "sweep" / "runs"
    _fake_run(runs_dir, "1d-relu-lr0.001", "1d", [5.0, 1.0, 1.0])  # the first epoch pays autotuning
    _fake_run(runs_dir, "1d-silu-lr0.001", "1d", [4.0, 1.0, 3.0])
    _fake_run(runs_dir, "2d-relu-lr0.001", "2d", [9.0, 2.0, 2.0])
    failed = runs_dir / "2d-elu-lr0.1"
    failed.mkdir()
    (failed / "metrics.json").write_text(json.dumps({"status": "failed", "model": "2d"}))
    measure = gpu_check.measure_sweep(tmp_path / "sweep", jobs=2, elapsed_s=30.0, total=6, stopped=True)
    assert (measure.finished, measure.failed) == (3, 1)
    assert measure.epoch_s == {"1d": 1.5, "2d": 2.0}  # median over runs of each run's steady median
    assert measure.projected_s == pytest.approx(60.0)  # 3 of 6 in 30 s
    # busy time per run 30 x 2 / 3 = 20 s, of which 3 epochs x mean(1.5, 2.0) s are epochs
    assert measure.run_overhead_s == pytest.approx(20.0 - 3 * 1.75)
    seconds = gpu_check.project(measure, {"1d": 10, "2d": 20}, configs_per_model=9, clip_scale=1.0)
    overhead = 20.0 - 3 * 1.75
    assert seconds == pytest.approx((9 * (overhead + 10 * 1.5) + 9 * (overhead + 20 * 2.0)) / 2)
    assert gpu_check.project(measure, {"1d": 10, "combined": 5}, 9, 1.0) is None  # no combined run finished


def test_table_names_the_card_the_corpus_and_what_was_projected(gpu_check):
    full = gpu_check.SweepMeasure(1, 400.0, 27, 27, False, {"1d": 1.0, "2d": 2.0, "combined": 2.5})
    cut = gpu_check.SweepMeasure(4, 60.0, 9, 27, True, {"1d": 1.5, "2d": 3.0, "combined": 3.5})
    throughput = [{"model": "1d", "precision": p, "clips_per_s": c, "peak_mib": m}
                  for p, c, m in (("fp32", 1000.0, 300.0), ("bf16", 1500.0, 250.0))]
    projections = gpu_check.projections_for([full, cut], corpus_clips=7462)
    text = gpu_check.table({"device": "NVIDIA H100 80GB HBM3", "torch": "2.x", "cuda": "12", "cpus": 16,
                            "corpus": "7,462 clips, 91 actors"}, throughput, [full, cut], projections)
    assert text.splitlines()[0].startswith("GPU check: NVIDIA H100 80GB HBM3") and config.SYNTHETIC_LABEL in text
    assert "bf16 1,500 clips/s, peak 250 MiB; fp32 1,000 clips/s, peak 300 MiB; bf16/fp32 1.50x" in text
    assert "27/27 runs in 400 s (measured)" in text
    assert "9/27 runs in 60 s, stopped at its time share: 3.0 min projected for all 27" in text
    assert "report's protocol, 1 per GPU" in text and "for 27 x 150 epochs on 7,442 clips" in text
    assert "gpu profile sweep, 4 per GPU" in text
