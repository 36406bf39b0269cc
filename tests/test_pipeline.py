"""The main job (`python -m ser_utils all`) end to end on the tiny corpus, with a narrowed grid."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ser_utils import config, pipeline
from ser_utils.experiments import shards
from ser_utils.errors import UserError


def test_profiles_shorten_only_corpus_and_epochs():
    quick, full = pipeline.PROFILES["quick"], pipeline.PROFILES["full"]
    assert quick.actors < full.actors == 91
    assert full.epochs == "150"
    with pytest.raises(ValueError, match="unknown profile"):
        pipeline.run_main_job("medium")


def test_sweep_jobs_one_per_core_on_cpu_one_on_gpu():
    assert pipeline.sweep_jobs("cpu") == len(pipeline._cores())
    assert pipeline.sweep_jobs("cuda:0") == 1
    assert pipeline.sweep_jobs("cuda:0", per_gpu=2) == 2
    assert pipeline.sweep_jobs("cpu", jobs=3) == 3


# ------------------------------------------------------------------- the profile
def test_gpu_profile_trains_the_full_demo_corpus_for_tens_of_epochs():
    gpu = pipeline.PROFILES["gpu"]
    assert gpu.actors == config.N_ACTORS and gpu.demo_dir == pipeline.PROFILES["full"].demo_dir
    epochs = {part.split("=")[0]: int(part.split("=")[1]) for part in gpu.epochs.split(",")}
    assert set(epochs) == set(config.MODELS) and all(10 <= e < 100 for e in epochs.values())
    assert gpu.jobs_per_gpu >= 1 and not gpu.alternatives


@pytest.mark.parametrize("gpus, device, expected", [
    ([], "auto", "quick"),
    (["NVIDIA H100 80GB HBM3"], "auto", "gpu"),
    (["NVIDIA H100 80GB HBM3"], "cpu", "quick"),  # --device cpu trains on the CPU: the quick profile
    ([], "cuda:0", "gpu"),
])
def test_auto_profile_follows_the_device(monkeypatch, gpus, device, expected):
    monkeypatch.setattr(pipeline, "gpu_names", lambda: gpus)
    name, why = pipeline.choose_profile("auto", device)
    assert name == expected and why.startswith("auto:") and "overrides" in why
    if gpus and device == "auto":
        assert gpus[0] in why


def test_profile_flag_overrides_auto_and_auto_is_the_default(monkeypatch):
    monkeypatch.setattr(pipeline, "gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])
    assert pipeline.choose_profile("quick") == ("quick", "chosen with --profile")
    assert pipeline.choose_profile("full", "cpu")[0] == "full"
    with pytest.raises(UserError, match="unknown profile 'medium'; choose one of auto, quick, gpu, full"):
        pipeline.choose_profile("medium")
    from ser_utils import cli

    assert cli.build_parser().parse_args(["all"]).profile == "auto"
    makefile = (config.REPO_ROOT / "Makefile").read_text()
    assert "PROFILE ?= auto\n" in makefile and "all --profile $(PROFILE)" in makefile


class _Stop(Exception):
    pass


def test_main_job_prints_its_profile_and_warns_of_a_large_cache(monkeypatch, tmp_path):
    """Up to the first notebook: the choice is printed first; a cache root over the limit is named."""
    from ser_utils.experiments import nbexec, sweep
    from ser_utils.features import cache as feature_cache

    def fake_features(data_dir, features_dir):
        folder = features_dir / "v1-7-0123456789abcdef"
        folder.mkdir(parents=True)
        (folder / "x1d.npy").write_bytes(b"\0" * 2000)

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(pipeline, "gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(pipeline, "_corpus", lambda prof, data: tmp_path / "corpus")
    monkeypatch.setattr(pipeline, "_write_manifest", lambda data_dir, path: path)
    monkeypatch.setattr(pipeline.discovery, "record_corpus", lambda *args, **kwargs: None)
    monkeypatch.setattr(sweep, "prepare_features", fake_features)
    monkeypatch.setattr(feature_cache, "LARGE_CACHE_BYTES", 1000)
    monkeypatch.setattr(nbexec, "execute_notebooks", stop)
    lines = []
    with pytest.raises(_Stop):
        pipeline.run_main_job(out=tmp_path / "out", emit=lines.append)
    assert lines[0] == "profile: gpu (auto: CUDA GPU NVIDIA H100 80GB HBM3; --profile quick|full overrides)"
    warning = [line for line in lines if line.startswith("warning: the feature cache")]
    assert len(warning) == 1 and str(tmp_path / "out" / "features") in warning[0] and "--prune" in warning[0]


# ------------------------------------------------------------------ placement
def test_placement_on_a_cpu_gives_each_process_its_own_cores():
    slots = shards.placement(0, 2, [0, 1, 2, 3])
    assert [(s.spec, s.gpu, s.cpus, dict(s.env)) for s in slots] == [("1/2", None, (0, 2), {}),
                                                                     ("2/2", None, (1, 3), {})]
    assert [s.cpus for s in shards.placement(0, 3, [0, 1])] == [None, None, None]  # too few cores: none pinned


def test_placement_puts_n_processes_on_every_gpu():
    slots = shards.placement(2, 3, range(16))
    assert [s.spec for s in slots] == [f"{k}/6" for k in range(1, 7)]
    assert [s.gpu for s in slots] == ["0", "1", "0", "1", "0", "1"]
    assert all(dict(s.env) == {"CUDA_VISIBLE_DEVICES": s.gpu} for s in slots)
    cores = [c for s in slots for c in s.cpus]
    assert sorted(cores) == list(range(16)) and min(len(s.cpus) for s in slots) == 2  # disjoint, all used
    assert [s.gpu for s in shards.placement(["2", "5"], 1, range(4))] == ["2", "5"]  # physical ids kept


def test_placement_is_capped_by_the_grid_and_spreads_over_gpus():
    slots = shards.placement(4, 2, range(16), limit=3)
    assert [(s.spec, s.gpu) for s in slots] == [("1/3", "0"), ("2/3", "1"), ("3/3", "2")]
    with pytest.raises(UserError, match="--jobs 0"):
        shards.placement(1, 0, range(4))


def test_visible_gpus_and_the_device_a_shard_gets(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert shards.visible_gpus("cpu", count=lambda: 2) == []
    assert shards.visible_gpus("auto", count=lambda: 0) == []
    assert shards.visible_gpus("auto", count=lambda: 2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")
    assert shards.visible_gpus("cuda", count=lambda: 2) == ["3", "7"]
    assert shards.visible_gpus("cuda:1", count=lambda: 2) == ["7"]
    with pytest.raises(UserError, match="cuda:5"):
        shards.visible_gpus("cuda:5", count=lambda: 2)
    gpu_slot, cpu_slot = shards.placement(["7"], 1, [0])[0], shards.placement(0, 1, [0])[0]
    assert shards.shard_device("cuda:1", gpu_slot) == "cuda" and shards.shard_device("auto", gpu_slot) == "cuda"
    assert shards.shard_device("cpu", cpu_slot) == "cpu" and shards.shard_device("auto", cpu_slot) == "auto"


# ------------------------------------------------------ watching the shards
FAKE_SHARDS = {
    1: "print('shard 1 trained its runs'); raise SystemExit(0)",
    2: "print('shard 2: a configuration failed'); raise SystemExit(1)",
    3: "print('Traceback ...'); print('ImportError: broken install'); raise SystemExit(3)",
    4: "import time; print('loading', flush=True); time.sleep(600)",
}


def _fake_command(code_of):
    return lambda slot: [sys.executable, "-c", code_of[slot.shard]]


def test_parallel_sweep_reports_dead_and_stops_silent_shards(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline, "SHARD_SILENCE_MARGIN_S", 0.0)
    grid = {"models": ["1d"], "activations": ["relu", "silu"], "lrs": [0.001, 0.01]}  # 4 configurations
    lines = []
    started = time.monotonic()
    result = pipeline.parallel_sweep(tmp_path / "corpus", tmp_path / "out", epochs="1", device="cpu",
                                     features_dir=tmp_path / "features", force=False, jobs=4, grid=grid,
                                     inactivity_timeout=1.5, command=_fake_command(FAKE_SHARDS), poll_s=0.1,
                                     gpus=[], emit=lines.append)
    assert time.monotonic() - started < 60  # the silent shard was stopped, not waited for
    assert result.shards == 4 and result.failed == [] and len(result.problems) == 2
    dead, silent = result.problems
    assert dead.startswith("sweep shard 3/4 exited with status 3; last line: ImportError: broken install")
    assert silent.startswith("sweep shard 4/4 wrote nothing to its log for") and "last line: loading" in silent
    assert str(tmp_path / "out" / "logs" / "sweep-4-of-4.log") in silent
    assert sorted(line.strip() for line in lines if "sweep shard" in line) == sorted(result.problems)
    assert (tmp_path / "out" / "results.csv").is_file()


def test_a_shard_that_refuses_its_input_stops_the_job(tmp_path):
    refusing = {1: "import sys; print('error: --models: unknown 3d', file=sys.stderr); raise SystemExit(2)"}
    with pytest.raises(UserError, match="sweep shard 1/1 refused its input: error: --models: unknown 3d"):
        pipeline.parallel_sweep(tmp_path, tmp_path / "out", epochs="1", device="cpu", features_dir=tmp_path,
                                force=False, jobs=1, grid={"models": ["1d"], "activations": ["relu"], "lrs": [0.01]},
                                command=_fake_command(refusing), poll_s=0.1, gpus=[], emit=lambda line: None)


def test_a_terminated_supervisor_stops_its_shards(tmp_path):
    """SIGTERM (timeout, scancel) on the supervisor reaches the shards instead of orphaning them."""
    pid_file = tmp_path / "shard.pid"
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from ser_utils.experiments import shards
        code = "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
        try:
            shards.run_shards(shards.placement(0, 1, [0]), lambda slot: [sys.executable, "-c", code],
                              Path({str(tmp_path)!r}), 600, poll_s=0.1)
        except KeyboardInterrupt:
            print("interrupted")
    """)
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    shard_pid = int(pid_file.read_text())
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.communicate(timeout=60)[0].strip() == "interrupted"
    assert not _running(shard_pid)


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_sweep_jobs_delegates_to_the_parallel_runner(monkeypatch, capsys):
    from ser_utils import cli

    seen = {}

    def fake(data, out, **kwargs):
        seen.update(kwargs, data=data, out=out)
        return pipeline.ShardedSweep(failed=["2d-relu-lr0.1"], problems=[], shards=4, finished=26,
                                     results_csv=out / "results.csv")

    monkeypatch.setattr(pipeline, "sharded_sweep", fake)
    code = cli.main(["sweep", "--jobs", "2", "--models", "1d,2d", "--epochs", "3", "--seeds", "42,43",
                     "--device", "cuda", "--out", "/tmp/x"])
    assert code == 1  # a configuration failed
    assert seen["jobs"] == 2 and seen["models"] == ["1d,2d"] and seen["epochs"] == "3" and seen["seeds"] == "42,43"
    assert seen["device"] == "cuda"
    captured = capsys.readouterr()
    assert "4 sweep process(es): 26 run(s) finished, 1 failed" in captured.out and "2d-relu-lr0.1" in captured.err
    assert cli.main(["sweep", "--jobs", "2", "--shard", "1/2"]) == 2
    assert "drop --shard" in capsys.readouterr().err
