"""The sweep: grid, shards, resume, conflicts and failure isolation; real papermill runs on a tiny corpus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from ser_utils import cli, config, runs
from ser_utils.experiments import grid, nbexec, sweep
from tests.test_analysis import fake_notebook, write_fake_run

TINY_EPOCHS = 1


# ------------------------------------------------------------------------ the grid
def test_default_grid_is_the_reports_27_configurations():
    configs = grid.configurations()
    assert len(configs) == 27
    ids = [sweep.run_id_of({**c, "seed": config.SEED, "split": "random"}) for c in configs]
    assert len(set(ids)) == 27 and ids[0] == "1d-relu-lr0.001" and ids[-1] == "combined-elu-lr0.1"


@pytest.mark.parametrize("n", [1, 2, 4, 9, 27, 30])
def test_shards_partition_the_grid(n):
    configs = grid.configurations()
    parts = [grid.shard(configs, k, n) for k in range(1, n + 1)]
    keys = [tuple(c.values()) for part in parts for c in part]
    assert sorted(keys) == sorted(tuple(c.values()) for c in configs)  # union = all, nothing twice
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("spec", ["0/3", "4/3", "1/0", "a/b", "3"])
def test_bad_shards_are_refused(spec):
    with pytest.raises(ValueError, match="--shard"):
        grid.parse_shard(spec)


def test_epochs_per_model():
    assert grid.parse_epochs("150") == 150
    per_model = grid.parse_epochs("1d=8,2d=2,combined=2")
    assert per_model == {"1d": 8, "2d": 2, "combined": 2} and grid.epochs_for("2d", per_model) == 2
    with pytest.raises(ValueError, match="combined=N"):
        grid.epochs_for("combined", grid.parse_epochs("1d=8"))
    for bad in ("0", "ten", "1d=-1"):
        with pytest.raises(ValueError, match="--epochs"):
            grid.parse_epochs(bad)


def test_lists_accept_commas_and_spaces():
    assert grid.parse_names(["1d,2d", "combined", "2d"]) == ["1d", "2d", "combined"]
    assert grid.parse_lrs(["0.001,0.01", "0.1"]) == [0.001, 0.01, 0.1]
    with pytest.raises(ValueError, match="positive"):
        grid.parse_lrs(["-0.1"])


def test_run_log_throttles_progress_bars():
    lines = []
    log = nbexec.OutputLog("1d-relu-lr0.001", lines.append, interval=3600)
    log.write("epoch 1/3\r")
    log.write("epoch 2/3\repoch 3/3")
    log.write("\nrun: done\n")  # the held redraw, then a text bar's final state (ends with a newline)
    log.write("widget 1/3 [\r")
    log.write("widget 3/3 [\r")  # a widget bar has no final newline: held back, shown before the next line
    log.write("metrics\n")
    log.write("widget 1/2 [\rwidget 2/2 [\r")
    log.write("tail without newline")
    log.close()
    prefix = "  [1d-relu-lr0.001] "
    assert lines == [prefix + t for t in ("epoch 1/3", "epoch 2/3", "epoch 3/3", "run: done", "widget 3/3 [",
                                          "metrics", "widget 2/2 [", "tail without newline")]


def test_an_executed_notebook_leaves_a_quiet_log(tmp_path, capfd):
    """The kernel's own set-up notices (the TCP transport warning) do not reach the caller's stderr,
    while the notebook's output still reaches the run log and the executed copy."""
    import nbformat

    source = tmp_path / "tiny.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    lines = []
    nbexec.execute(source, tmp_path / "out.ipynb", log_label="tiny", emit=lines.append)
    captured = capfd.readouterr()
    assert "WARNING" not in captured.err and "without encryption" not in captured.err, captured.err
    assert "  [tiny] 42" in lines
    assert nbformat.read(tmp_path / "out.ipynb", 4).cells[0].outputs[0]["text"] == "42\n"


# --------------------------------------------------------------- run folders (fake)
def test_plan_skips_complete_and_reruns_the_rest(tmp_path):
    runs_dir = tmp_path / "runs"
    complete = write_fake_run(runs_dir, "1d", "relu", 0.001, epochs=3)
    no_notebook = write_fake_run(runs_dir, "1d", "relu", 0.01, epochs=3)
    (no_notebook / runs.RUN_NOTEBOOK).unlink()  # killed after training, before the notebook was saved
    failed = write_fake_run(runs_dir, "1d", "relu", 0.1, epochs=3, status="failed")
    killed = write_fake_run(runs_dir, "1d", "silu", 0.001, epochs=3, status="incomplete")
    fake_notebook(nbexec.partial_path(killed / runs.RUN_NOTEBOOK), "partial")
    assert runs.is_complete(complete) and not any(map(runs.is_complete, (no_notebook, failed, killed)))
    common = {"batch_size": 64, "seed": 42, "split": "random"}
    planned = sweep.plan(grid.configurations(["1d"], ["relu", "silu"], [0.001, 0.01, 0.1]), runs_dir, common,
                         3, "synthetic", force=False)
    actions = {p.run_id: (p.action, p.force) for p in planned}
    assert actions["1d-relu-lr0.001-e3"] == ("skip", False)
    assert actions["1d-relu-lr0.01-e3"] == ("run", True)  # finished, notebook lost: retrained whole
    assert actions["1d-relu-lr0.1-e3"] == ("run", False) and actions["1d-silu-lr0.001-e3"] == ("run", False)
    forced = sweep.plan(grid.configurations(["1d"], ["relu"], [0.001]), runs_dir, common, 3, "synthetic", force=True)
    assert (forced[0].action, forced[0].force) == ("run", True)


def test_finished_runs_with_other_settings_are_a_conflict(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "1d", "relu", 0.001, epochs=3)
    common = {"batch_size": 64, "seed": 42, "split": "random"}
    configs = grid.configurations(["1d"], ["relu"], [0.001])
    assert sweep.plan(configs, runs_dir, common, 3, "synthetic", False)[0].action == "skip"
    other_epochs = sweep.plan(configs, runs_dir, common, 5, "synthetic", False)[0]
    assert (other_epochs.run_id, other_epochs.action) == ("1d-relu-lr0.001-e5", "run")  # its own folder
    planned = sweep.plan(configs, runs_dir, common, 3, "crema-d", False)
    assert planned[0].action == "conflict" and "corpus synthetic -> crema-d" in planned[0].conflict
    config_json = runs_dir / "1d-relu-lr0.001-e3" / "config.json"
    config_json.write_text(config_json.read_text().replace('"weight_decay": 0.0001', '"weight_decay": 0.5'))
    planned = sweep.plan(configs, runs_dir, common, 3, "synthetic", False)
    assert planned[0].action == "conflict" and "weight_decay 0.5 -> 0.0001" in planned[0].conflict
    with pytest.raises(sweep.SweepConflictError, match="--force.*another --out"):
        sweep._raise_conflicts(planned, runs_dir)


def test_conflict_exits_2_before_running_anything(tmp_path, capsys):
    data = tmp_path / "demo"
    data.mkdir()
    (data / "demo_corpus.json").write_text("{}")
    for name in ("1001_DFA_ANG_XX.wav", "1002_DFA_SAD_XX.wav"):  # names are all the plan reads
        (data / name).write_bytes(b"RIFF" + bytes(40))
    write_fake_run(tmp_path / "out" / "runs", "1d", "relu", 0.001, epochs=4, corpus="crema-d")
    code = cli.main(["sweep", "--data", str(data), "--out", str(tmp_path / "out"), "--models", "1d",
                     "--activations", "relu", "--lrs", "0.001", "--epochs", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:")
    assert "1d-relu-lr0.001-e4 (corpus crema-d -> synthetic, corpus clips not recorded -> 2 clips #" in err[-1]
    assert "--force" in err[-1]


def test_unknown_activation_is_refused_up_front(tmp_path, capsys):
    code = cli.main(["sweep", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--activations", "relu,gelu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'gelu'" in err[0] and "relu, silu, elu" in err[0]
    assert not (tmp_path / "out").exists()


def test_results_are_rebuilt_from_disk_atomically(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "2d", "silu", 0.01)
    write_fake_run(runs_dir, "1d", "relu", 0.1, status="failed")
    write_fake_run(runs_dir, "combined", "elu", 0.001, status="incomplete")
    frame = runs.write_results(runs_dir, tmp_path / "results.csv")
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table.columns) == runs.RESULT_COLUMNS and len(table) == len(frame) == 3
    assert list(table["run_id"]) == ["1d-relu-lr0.1-e5", "2d-silu-lr0.01-e5", "combined-elu-lr0.001-e5"]
    assert list(table["status"]) == ["failed", "complete", "incomplete"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results.csv.lock", "results.csv", "runs"]


# ------------------------------------------------------------- real sweeps (slow)
@pytest.fixture(scope="module")
def corpus(tiny_corpus) -> Path:
    """The session's 3-actor demo corpus (real synthetic speech, CREMA-D names)."""
    return tiny_corpus


@pytest.fixture(scope="module")
def features_dir(notebook_outputs) -> Path:
    """The session's feature cache: shared with the notebook tests, so it is extracted once."""
    return notebook_outputs / "features"


def sweep_args(corpus: Path, out: Path, features_dir: Path, *extra: str) -> list[str]:
    return ["sweep", "--data", str(corpus), "--out", str(out), "--features-dir", str(features_dir),
            "--epochs", str(TINY_EPOCHS), "--device", "cpu", *extra]


def mtimes(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def failing_notebook(folder: Path) -> Path:
    """notebooks/07_train.ipynb with one cell added that fails for the 2D model: a configuration
    that breaks at run time, inside its kernel, as a real bug would."""
    nb = nbformat.read(sweep.NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell('if model == "2d":\n    raise RuntimeError("boom in 2d")'))
    path = folder / "07_train.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory, corpus, features_dir):
    """A real sweep: a configuration that fails at run time, then one that trains."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    notebook = failing_notebook(tmp_path_factory.mktemp("notebook"))
    result = sweep.run_sweep(corpus, out, models=["2d", "1d"], activations=["relu"], lrs=[0.001],
                             epochs=TINY_EPOCHS, device="cpu", features_dir=features_dir, progress=False,
                             notebook=notebook)
    return out, result


FAILS, TRAINS = "2d-relu-lr0.001-e1", "1d-relu-lr0.001-e1"


def test_unknown_model_is_refused_before_anything_runs(tmp_path, capsys):
    code = cli.main(["sweep", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--models", "1d,3d"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'3d'" in err[0] and "registered" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sweep_records_a_failure_and_goes_on(first_sweep):
    out, result = first_sweep
    assert result.failed == [FAILS] and result.done == [TRAINS]
    assert "boom in 2d" in result.errors[FAILS]
    failed = out / "runs" / FAILS
    metrics = json.loads((failed / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "boom" in metrics["error"]
    assert (failed / runs.RUN_NOTEBOOK).is_file()  # the partial notebook, with the error in place
    done = out / "runs" / TRAINS
    assert runs.is_complete(done) and not list(done.glob(".*partial*"))
    for name in ("config.json", "history.csv", "confusion.csv", "predictions.csv", "best.pt"):
        assert (done / name).is_file(), name
    executed = nbformat.read(done / runs.RUN_NOTEBOOK, as_version=4)
    assert any(o.get("output_type") == "display_data" for c in executed.cells for o in c.get("outputs", []))
    table = pd.read_csv(out / "results.csv").set_index("run_id")
    assert table.loc[TRAINS, "status"] == "complete" and table.loc[FAILS, "status"] == "failed"
    assert table.loc[TRAINS, "corpus"] == "synthetic"


@pytest.mark.slow
def test_rerun_skips_complete_runs_and_a_timeout_is_a_recorded_failure(first_sweep, corpus, features_dir, tmp_path,
                                                                       capsys):
    """The re-run trains only the failed configuration; with a one-second cell limit its kernel is
    interrupted (importing the package alone takes longer), recorded as a timeout, and the
    command exits 1 naming it."""
    out = tmp_path / "out"
    shutil.copytree(first_sweep[0], out)
    before = mtimes(out / "runs" / TRAINS)
    code = cli.main(sweep_args(corpus, out, features_dir, "--models", "2d,1d", "--activations", "relu",
                               "--lrs", "0.001", "--cell-timeout", "1"))
    captured = capsys.readouterr()
    assert code == 1
    assert "1 already complete" in captured.out
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith(f"error: 1 configuration(s) failed: {FAILS} (timeout")
    assert json.loads((out / "runs" / FAILS / "metrics.json").read_text())["error"].startswith("timeout")
    assert mtimes(out / "runs" / TRAINS) == before  # nothing complete was re-run


@pytest.mark.slow
def test_changed_settings_are_a_conflict_not_a_silent_skip(first_sweep, corpus, features_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_sweep[0], out)
    config_json = out / "runs" / TRAINS / "config.json"
    config_json.write_text(config_json.read_text().replace('"dropout_head": 0.5', '"dropout_head": 0.2'))
    with pytest.raises(sweep.SweepConflictError, match=rf"{TRAINS} \(dropout_head 0.2 -> 0.5\)"):
        sweep.run_sweep(corpus, out, models=["1d"], activations=["relu"], lrs=[0.001], epochs=TINY_EPOCHS,
                        features_dir=features_dir, progress=False)


def test_a_finished_run_of_another_corpus_with_the_same_label_is_a_conflict(first_sweep, corpus, features_dir,
                                                                             tmp_path):
    """The sweep's fingerprint of the corpus (from the names it scans) is the one training recorded:
    the same corpus skips its complete run; a copy with one clip fewer is another corpus."""
    out = tmp_path / "out"
    shutil.copytree(first_sweep[0], out)
    again = sweep.run_sweep(corpus, out, models=["1d"], activations=["relu"], lrs=[0.001], epochs=TINY_EPOCHS,
                            features_dir=features_dir, progress=False)
    assert again.skipped == [TRAINS]
    smaller = tmp_path / "smaller"
    shutil.copytree(corpus, smaller)
    sorted((smaller / "AudioWAV").glob("*.wav"))[-1].unlink()
    with pytest.raises(sweep.SweepConflictError, match=rf"{TRAINS} \(corpus clips \d+ clips #\w+ -> \d+ clips #"):
        sweep.run_sweep(smaller, out, models=["1d"], activations=["relu"], lrs=[0.001], epochs=TINY_EPOCHS,
                        features_dir=features_dir, progress=False)


@pytest.mark.slow
def test_resume_after_kill_9_loses_nothing(first_sweep, corpus, features_dir, tmp_path):
    """SIGKILL a sweep once its second run has started training; the same command finishes it."""
    out = tmp_path / "out"
    shutil.copytree(first_sweep[0], out)
    shutil.rmtree(out / "runs" / FAILS)
    kept = mtimes(out / "runs" / TRAINS)
    args = sweep_args(corpus, out, features_dir, "--models", "1d", "--activations", "relu", "--lrs", "0.001", "0.01")
    victim = out / "runs" / "1d-relu-lr0.01-e1"
    proc = subprocess.Popen([sys.executable, "-m", "ser_utils", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (victim / "config.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before its second run started"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not runs.is_complete(victim)
    result = sweep.run_sweep(corpus, out, models=["1d"], activations=["relu"], lrs=[0.001, 0.01],
                             epochs=TINY_EPOCHS, device="cpu", features_dir=features_dir, progress=False)
    assert result.skipped == [TRAINS] and result.done == ["1d-relu-lr0.01-e1"] and result.ok
    assert runs.is_complete(victim) and not list(victim.glob(".*partial*"))
    assert mtimes(out / "runs" / TRAINS) == kept
    table = pd.read_csv(out / "results.csv")
    assert list(table["run_id"]) == [TRAINS, "1d-relu-lr0.01-e1"] and set(table["status"]) == {"complete"}


def test_a_corpus_too_small_for_its_split_is_refused_once_with_the_numbers(tmp_path, capsys):
    """One actor cannot fill train, validation and test with every emotion: one line, exit 2, no run."""
    from tests.conftest import make_name_folder

    names = [n for n in three_actor_names() if n.startswith("1001_")]
    data = make_name_folder(tmp_path / "one-actor", names)
    code = cli.main(["sweep", "--data", str(data), "--out", str(tmp_path / "out"), "--models", "1d",
                     "--activations", "relu", "--lrs", "0.001", "--split", "speaker"])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and errors == err[-1:] and "actor" in err[-1] and "at least 3" in err[-1]
    assert not (tmp_path / "out" / "runs").exists()
    data = make_name_folder(tmp_path / "few", names[:14])
    code = cli.main(["sweep", "--data", str(data), "--out", str(tmp_path / "out"), "--models", "1d",
                     "--activations", "relu", "--lrs", "0.001"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:") and "14 clips" in err[-1] and "more actors" in err[-1]


def three_actor_names() -> list[str]:
    from tests.test_analysis import fake_clip_names

    return fake_clip_names(3)
