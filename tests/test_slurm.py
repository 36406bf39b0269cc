"""The sweep on SLURM: the generated job scripts, and the cluster guide's recipe on a real one-node cluster.

The fast tests run the generated scripts with bash and a stand-in interpreter, so the exact
command each array task runs is checked against the real command-line parser. The cluster tests
(marker ``cluster``, :mod:`tests.slurm_cluster`) submit the same scripts a user submits: the
feature job, then the array with a dependency on it, over the 3-actor demo corpus (3
configurations of the 1D model, 1 epoch, 3 array tasks). They skip, saying why, where the
daemons cannot run (not root, packages missing); ``.ci/run`` installs the packages.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from ser_utils import cli, config, runs
from ser_utils.experiments import slurm
from tests.slurm_cluster import Job, SlurmCluster, final_states, unavailable_reason

LRS = (0.001, 0.01, 0.1)
SHARDS = 3  # one configuration per array task
EPOCHS = 1
VICTIM = 3  # the array task cancelled in the middle of its run, then submitted again
WAIT_S = 240.0  # bound on any one wait; the whole scenario takes about a minute on 2 idle cores


def generate(capsys, *options: str) -> str:
    """``python -m ser_utils slurm-script OPTIONS`` through the real command line; its stdout."""
    code = cli.main(["slurm-script", *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def directives(script: str) -> dict[str, str]:
    return dict(line[len("#SBATCH "):].split("=", 1) for line in script.splitlines() if line.startswith("#SBATCH "))


def stub_python(folder: Path) -> Path:
    """An executable standing in for python: records its arguments, one per line, and SER_OUTPUTS_DIR."""
    stub = folder / "python-stub"
    stub.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$STUB_ARGS"\necho "$SER_OUTPUTS_DIR" > "$STUB_ARGS.env"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return stub


# ------------------------------------------------------------------ the generated scripts (fast)
def test_sweep_script_is_valid_bash_with_the_requested_resources(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    text = generate(capsys, "--shards", "4", "--gpus-per-task", "1", "--cpus-per-task", "6", "--time", "02:30:00",
                    "--epochs", "1d=8,2d=2,combined=2", "--data", str(data), "--out", str(out))
    script = tmp_path / "sweep.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True).returncode == 0
    assert text.startswith("#!/bin/bash\n")
    assert directives(text) == {"--job-name": "ser-sweep", "--array": "1-4", "--cpus-per-task": "6",
                                "--gres": "gpu:1", "--time": "02:30:00", "--output": f"{out}/logs/sweep-%A_%a.log"}
    assert (out / "logs").is_dir()  # SLURM opens --output before the script runs and cannot create folders
    cpu_only = directives(generate(capsys, "--gpus-per-task", "0", "--data", str(data), "--out", str(out)))
    assert "--gres" not in cpu_only and cpu_only["--array"] == f"1-{slurm.DEFAULT_SHARDS}"


def test_each_array_task_runs_its_shard_with_the_sweep_command(tmp_path, capsys):
    """Run the script as task 2 would, then as task 2 submitted again alone: shard 2/3 both times."""
    data, out = tmp_path / "my corpus", tmp_path / "out"  # a space: the paths must be quoted
    data.mkdir()
    stub = stub_python(tmp_path)
    text = generate(capsys, "--shards", "3", "--gpus-per-task", "0", "--epochs", "1", "--models", "1d",
                    "--activations", "relu", "--lrs", "0.001,0.01,0.1", "--data", str(data), "--out", str(out),
                    "--python", str(stub))
    script = tmp_path / "sweep.sbatch"
    script.write_text(text)
    record = tmp_path / "args"
    for count in ("3", "1"):  # an array of 3; a re-submitted single task (sbatch --array=2)
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": count, "STUB_ARGS": str(record)}
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
        argv = record.read_text().splitlines()
        assert argv[:3] == ["-m", "ser_utils", "sweep"]
        args = cli.build_parser().parse_args(argv[2:])  # the real parser: a misspelt option fails here
        assert args.shard == "2/3" and args.device == "cpu" and args.epochs == "1"
        assert args.data == data and args.out == out and args.features_dir == out / "features"
        assert (record.with_suffix(".env").read_text().strip()) == str(out)
    outside = subprocess.run(["bash", str(script)], env={**os.environ, "STUB_ARGS": str(record)},
                             capture_output=True, text=True)
    assert outside.returncode != 0 and "submit this script with sbatch" in outside.stderr


def test_feature_job_extracts_into_the_cache_the_sweep_reads(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    text = generate(capsys, "--features", "--cpus-per-task", "4", "--data", str(data), "--out", str(out),
                    "--python", str(stub_python(tmp_path)))
    script = tmp_path / "features.sbatch"
    script.write_text(text)
    assert directives(text) == {"--job-name": "ser-features", "--cpus-per-task": "4",
                                "--time": slurm.DEFAULT_FEATURES_TIME, "--output": f"{out}/logs/features-%j.log"}
    record = tmp_path / "args"
    env = {**os.environ, "SLURM_CPUS_PER_TASK": "4", "STUB_ARGS": str(record)}
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
    argv = record.read_text().splitlines()
    args = cli.build_parser().parse_args(argv[2:])
    assert args.command == "features" and args.data == data and args.out == out / "features" and args.jobs == 4


def test_readme_shows_what_the_generator_prints(tmp_path, capsys):
    """The cluster guide's SLURM section: its printed script is the generator's, its commands the tests'."""
    guide = (config.REPO_ROOT / "docs" / "gpu-and-cluster.md").read_text()
    section = guide[guide.index("## Sharding and SLURM"):]
    shown = section[section.index("#!/bin/bash\n"):]
    shown = shown[:shown.index("```")]
    data, out = tmp_path / "CREMA-D", tmp_path / "outputs"
    data.mkdir()
    python = stub_python(tmp_path)
    printed = generate(capsys, "--shards", "9", "--data", str(data), "--out", str(out), "--python", str(python))
    as_in_readme = (printed.replace(str(python), "/home/you/ser-crema-d/.venv/bin/python")
                    .replace(str(data), "/data/CREMA-D").replace(str(out), "/scratch/you/ser/outputs"))
    assert shown == as_in_readme
    for command in ('python -m ser_utils slurm-script --features --data "$CREMA_D_DIR" --out "$out" > features.sbatch',
                    'python -m ser_utils slurm-script --shards 9 --data "$CREMA_D_DIR" --out "$out" > sweep.sbatch',
                    "jid=$(sbatch --parsable features.sbatch)", "sbatch --dependency=afterok:$jid sweep.sbatch",
                    "sbatch --array=4 sweep.sbatch"):
        assert command in section, command


@pytest.mark.parametrize("options, message", [
    (["--shards", "30"], "--shards 30: the grid has 27 configurations"),
    (["--shards", "4", "--models", "1d", "--activations", "relu"], "--shards 4: the grid has 3 configurations"),
    (["--time", "8h"], "--time '8h'"),
    (["--gpus-per-task", "2"], "--gpus-per-task 2"),
    (["--cpus-per-task", "0"], "--cpus-per-task 0"),
    (["--models", "3d"], "--models: unknown '3d'"),
    (["--out", "/nonexistent dir/out"], "SLURM cannot take a log path with spaces"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, options, message):
    code = cli.main(["slurm-script", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *options])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == cli.EXIT_BAD_INPUT and captured.out == "" and len(err) == 1
    assert err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_is_named(tmp_path, capsys):
    code = cli.main(["slurm-script", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_BAD_INPUT and f"--data {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err


# ------------------------------------------------------------------------ the cluster (slow)
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node SLURM cluster; every daemon and job process is gone after the module."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Scenario:
    """What the cluster guide's recipe did on the cluster, recorded step by step for the tests below."""

    out: Path
    array_id: str
    run_dirs: dict[int, Path]
    features_job: Job | None = None
    logs: dict[str, Path] = field(default_factory=dict)
    victim_cancelled: Job | None = None
    victim_complete_after_cancel: bool = True
    victim_files_after_cancel: list[str] = field(default_factory=list)
    blocked: dict[int, Job] = field(default_factory=dict)  # tasks 1, 2 while the test held the results lock
    results_while_blocked: bool = True
    pair: dict[int, Job] = field(default_factory=dict)  # tasks 1, 2 after the lock was released
    table_after_pair: pd.DataFrame | None = None
    mtimes_after_pair: dict[str, int] = field(default_factory=dict)
    resubmitted: Job | None = None
    table: pd.DataFrame | None = None
    mtimes: dict[str, int] = field(default_factory=dict)


def mtimes(folders) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def wait_for(condition, what: str, cluster: SlurmCluster, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s\n{cluster.logs()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def scenario(cluster, tiny_corpus, tmp_path_factory) -> Scenario:
    """The cluster guide's recipe, plus a cancel and a race.

    1. Generate both scripts with ``python -m ser_utils slurm-script`` (as a user does) and
       submit the feature job, then the array with ``--dependency=afterok``.
    2. Hold the results lock (``.results.csv.lock``) so tasks 1 and 2 finish their runs and then
       wait to write results.csv: they are released together, at the same moment.
    3. ``scancel`` task 3 once its training has started (config.json, no metrics.json).
    4. Release the lock; tasks 1 and 2 finish. Submit task 3 again (``sbatch --array=3``).
    """
    base = tmp_path_factory.mktemp("cluster-sweep")
    out = base / "out"
    common = ["--data", str(tiny_corpus), "--out", str(out), "--cpus-per-task", "1", "--time", "00:15:00"]
    scripts = {}
    for name, extra in (("features", ["--features"]),
                        ("sweep", ["--shards", str(SHARDS), "--gpus-per-task", "0", "--epochs", str(EPOCHS),
                                   "--models", "1d", "--activations", "relu", "--lrs", ",".join(map(str, LRS))])):
        result = subprocess.run([sys.executable, "-m", "ser_utils", "slurm-script", *common, *extra], cwd=base,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        scripts[name] = base / f"{name}.sbatch"
        scripts[name].write_text(result.stdout)
    run_dirs = {k: out / "runs" / config.TrainConfig(model="1d", activation="relu", lr=lr, epochs=EPOCHS).run_id
                for k, lr in enumerate(LRS, start=1)}

    lock = open(out / f".{runs.RESULTS_FILE}.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        features_id = cluster.sbatch(scripts["features"], cwd=base)
        array_id = cluster.sbatch(scripts["sweep"], f"--dependency=afterok:{features_id}", cwd=base)
        s = Scenario(out=out, array_id=array_id, run_dirs=run_dirs)

        victim = run_dirs[VICTIM]
        wait_for(lambda: (victim / "config.json").is_file(), f"task {VICTIM} started training", cluster)
        assert not (victim / "metrics.json").exists(), f"task {VICTIM} finished before it could be cancelled"
        cluster.run("scancel", f"{array_id}_{VICTIM}")
        cluster.wait(array_id, lambda jobs: any(j.array_task_id == str(VICTIM) and j.final for j in jobs))
        s.victim_cancelled = cluster.task(array_id, VICTIM)
        wait_for(lambda: not cluster.stray_pids(s.victim_cancelled.job_id), f"task {VICTIM}'s processes ended",
                 cluster, timeout=60)
        s.victim_complete_after_cancel = runs.is_complete(victim)
        s.victim_files_after_cancel = sorted(p.name for p in victim.iterdir())

        wait_for(lambda: runs.is_complete(run_dirs[1]) and runs.is_complete(run_dirs[2]),
                 "tasks 1 and 2 finished their runs", cluster)
        time.sleep(2.0)  # time enough to write results.csv, were the lock not honoured
        s.blocked = {k: cluster.task(array_id, k) for k in (1, 2)}
        s.results_while_blocked = (out / runs.RESULTS_FILE).exists()
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()

    jobs = cluster.wait(array_id, timeout=WAIT_S)
    s.pair = {int(j.array_task_id): j for j in jobs if j.array_task_id in ("1", "2")}
    s.features_job = cluster.jobs(features_id)[0]
    s.table_after_pair = pd.read_csv(out / runs.RESULTS_FILE)
    s.mtimes_after_pair = mtimes([run_dirs[1], run_dirs[2]])

    again = cluster.sbatch(scripts["sweep"], f"--array={VICTIM}", cwd=base)
    s.resubmitted = cluster.wait(again, timeout=WAIT_S)[0]
    s.table = pd.read_csv(out / runs.RESULTS_FILE)
    s.mtimes = mtimes([run_dirs[1], run_dirs[2]])
    s.logs = {f"{array_id}_{k}": out / "logs" / f"sweep-{array_id}_{k}.log" for k in range(1, SHARDS + 1)}
    s.logs[f"{again}_{VICTIM}"] = out / "logs" / f"sweep-{again}_{VICTIM}.log"
    s.logs[features_id] = out / "logs" / f"features-{features_id}.log"
    return s


@pytest.mark.cluster
@pytest.mark.slow
def test_array_after_the_feature_job_completes_every_run(scenario):
    s = scenario
    assert (s.features_job.state, s.features_job.exit_code) == ("COMPLETED", "0:0"), s.features_job
    for job in [*s.pair.values(), s.resubmitted]:
        assert (job.state, job.exit_code) == ("COMPLETED", "0:0"), final_states([job])
        assert job.start_time >= s.features_job.end_time  # afterok: no task started before the features existed
    assert all(runs.is_complete(d) for d in s.run_dirs.values())
    table = s.table.set_index("run_id")
    assert sorted(table.index) == sorted(d.name for d in s.run_dirs.values())
    assert set(table["status"]) == {"complete"} and set(table["corpus"]) == {"synthetic"}
    assert sorted(table["lr"]) == list(LRS) and set(table["epochs"]) == {EPOCHS}


@pytest.mark.cluster
@pytest.mark.slow
def test_logs_are_where_the_script_says(scenario, cluster):
    for label, log in scenario.logs.items():
        assert log.is_file(), f"{label}: no log at {log}"
        if "_" in label:
            array_id, task = label.split("_")
            assert cluster.task(array_id, int(task)).std_out == str(log)
            assert f"ser-sweep: shard {task}/{SHARDS}" in log.read_text()
        else:
            assert "246 clips" in log.read_text()


@pytest.mark.cluster
@pytest.mark.slow
def test_cancelled_task_is_redone_and_nothing_finished_is_redone_or_lost(scenario):
    s = scenario
    victim = s.run_dirs[VICTIM]
    assert s.victim_cancelled.state == "CANCELLED"
    assert not s.victim_complete_after_cancel and "config.json" in s.victim_files_after_cancel
    assert "metrics.json" not in s.victim_files_after_cancel  # cancelled mid-run: training had not finished
    after_pair = s.table_after_pair.set_index("run_id")
    assert {s.run_dirs[1].name, s.run_dirs[2].name} <= set(after_pair.index)
    assert (s.resubmitted.state, s.resubmitted.exit_code) == ("COMPLETED", "0:0")
    assert runs.is_complete(victim) and not list(victim.glob(".*partial*"))
    assert s.mtimes == s.mtimes_after_pair  # tasks 1 and 2's runs were not redone (nor touched)
    assert s.table.set_index("run_id").loc[victim.name, "status"] == "complete"
    assert len(s.table) == SHARDS


@pytest.mark.cluster
@pytest.mark.slow
def test_tasks_finishing_at_the_same_moment_both_reach_results_csv(scenario):
    s = scenario
    # While the test held the lock, both tasks had finished their runs but waited to write results.csv
    assert {k: j.state for k, j in s.blocked.items()} == {1: "RUNNING", 2: "RUNNING"}
    assert not s.results_while_blocked
    # Released together, both wrote it, one after the other: neither row is lost
    assert {k: j.state for k, j in s.pair.items()} == {1: "COMPLETED", 2: "COMPLETED"}
    table = s.table_after_pair.set_index("run_id")
    assert table.loc[s.run_dirs[1].name, "status"] == "complete"
    assert table.loc[s.run_dirs[2].name, "status"] == "complete"
