"""Tuning with Optuna (``python -m ser_utils tune``): the search space, the storage errors, trials
that never read the test set, a study resumed, and many workers on PostgreSQL and a journal file.

The PostgreSQL tests use a real server (the ``postgres`` fixture of ``conftest.py``) and skip, saying why,
without Debian's ``postgresql`` package. Every trial here is the 1D CNN for one epoch on the
3-actor demo corpus.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ser_utils import config, features, runs, training
from ser_utils.data import dataset
from ser_utils.errors import UserError
from ser_utils.experiments import search_space, study_storage, tuning
from ser_utils.training.data import TrainingData

from tests.postgres_server import DB_PASSWORD, free_port

WAIT_S = 300


# ----------------------------------------------------------------------------- search space
def test_space_from_flags_and_toml_overrides_the_defaults(tmp_path):
    toml = tmp_path / "space.toml"
    toml.write_text('batch_size = 32\n[lr]\nlow = 0.0005\nhigh = 0.005\nlog = true\n')
    space = search_space.load_space(toml, ["activation=relu,silu", "dropout_head=0.1:0.2", "warmup_epochs=0:3"])
    assert space["lr"] == {"low": 0.0005, "high": 0.005, "log": True}
    assert space["batch_size"] == 32 and space["activation"] == {"choices": ["relu", "silu"]}
    drawn = search_space.suggest(optuna.trial.FixedTrial({"lr": 0.001, "activation": "silu", "dropout_head": 0.15,
                                                         "warmup_epochs": 2, "weight_decay": 1e-4,
                                                         "dropout_conv": 0.3, "augment": "spec"}), space)
    assert drawn["batch_size"] == 32 and drawn["warmup_epochs"] == 2 and drawn["activation"] == "silu"
    assert drawn["augment"] == "spec"
    config.TrainConfig(**drawn)  # every drawn field is a training setting


def test_space_lists_every_activation_of_the_models():
    from ser_utils.models.layers import ACTIVATIONS

    assert search_space.default_space()["activation"]["choices"] == list(ACTIVATIONS)


@pytest.mark.parametrize("params, message", [
    (["momentum=0.9"], "unknown field(s) momentum"),
    (["lr=0:0.1:log"], "low must be > 0"),
    (["activation=relu,swish"], "activation ['swish'] unknown"),
    (["augment=none,mixup"], "augment ['mixup'] unknown"),
    (["batch_size=0.5"], "whole numbers"),
    (["lr"], "write NAME=LOW:HIGH"),
])
def test_bad_space_is_a_one_line_error(params, message):
    with pytest.raises(UserError, match=None) as err:
        search_space.load_space(None, params)
    assert message in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- storage
def test_unreachable_database_names_the_url_with_the_password_masked():
    url = f"postgresql+psycopg://ser:{DB_PASSWORD}@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(UserError) as err:
        study_storage.open_storage(url)
    text = str(err.value)
    assert DB_PASSWORD not in text and "ser:***@127.0.0.1" in text and "server runs" in text and "\n" not in text


def test_bad_storage_urls_are_one_line_errors(tmp_path, capsys):
    from ser_utils import cli

    for url, message in (("postgres-db", "not a storage URL"), ("nosuchdb://x/y", "cannot open the study database")):
        code = cli.main(["tune", "--data", str(tmp_path), "--model", "1d", "--storage", url, "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def feature_dir(tiny_corpus, tmp_path_factory) -> Path:
    """The tiny corpus's features, extracted once for every study of this module."""
    folder = tmp_path_factory.mktemp("tuning-features")
    clips, _ = dataset.scan(tiny_corpus)
    features.extract(clips, cache_root=folder, progress=False)
    return folder


def request_for(corpus: Path, out: Path, feature_dir: Path, **options) -> tuning.TuneRequest:
    return tuning.make_request(corpus, model="1d", epochs=1, device="cpu", out=str(out),
                               features_dir=str(feature_dir), **{"trials": 2, **options})


def worker_command(corpus: Path, out: Path, feature_dir: Path, storage: str, trials: int, worker: int,
                   *extra: str, study: str = "shared") -> list[str]:
    return [sys.executable, "-m", "ser_utils", "tune", "--data", str(corpus), "--model", "1d", "--epochs", "1",
            "--trials", str(trials), "--storage", storage, "--out", str(out), "--features-dir", str(feature_dir),
            "--device", "cpu", "--study", study, "--no-finish", "--worker", str(worker), *extra]


# ------------------------------------------------------------------- trials and the test set
@pytest.mark.slow
def test_validated_trial_tested_later_equals_a_normal_run(feature_dir, tiny_corpus, tmp_path):
    clips, _ = dataset.scan(tiny_corpus)
    data = TrainingData.from_features(features.extract(clips, cache_root=feature_dir, progress=False),
                                      split_method="random", seed=config.SEED)
    cfg = config.TrainConfig(model="1d", epochs=1, device="cpu", batch_size=32)
    normal = training.run(cfg, data, out_dir=tmp_path / "normal", progress=False)
    trial_cfg = config.TrainConfig(model="1d", epochs=1, device="cpu", batch_size=32, run_name="tune-x-t0000")
    validated = training.run(trial_cfg, data, out_dir=tmp_path / "trials", progress=False, test=False)
    run_dir = tmp_path / "trials" / "tune-x-t0000"
    assert validated["status"] == runs.STATUS_VALIDATED and "accuracy" not in validated
    assert not (run_dir / runs.PREDICTIONS_FILE).exists()  # the test set was not read
    tested = training.evaluate_test(run_dir, data)
    assert tested["status"] == runs.STATUS_COMPLETE and tested["accuracy"] == pytest.approx(normal["accuracy"])
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / runs.PREDICTIONS_FILE),
                                  pd.read_csv(tmp_path / "normal" / cfg.run_id / runs.PREDICTIONS_FILE))

    seen = []
    stopped = training.run(config.TrainConfig(model="1d", epochs=3, device="cpu", run_name="tune-x-t0001"), data,
                           out_dir=tmp_path / "trials", progress=False, test=False,
                           on_epoch=lambda row: seen.append(row) or True)
    assert stopped["status"] == runs.STATUS_STOPPED and stopped["epochs_run"] == 1 and len(seen) == 1
    assert seen[0]["best_val_loss"] == pytest.approx(seen[0]["val_loss"])


@pytest.mark.slow
def test_study_resumes_adds_only_new_trials_and_its_best_is_a_usable_run(feature_dir, tiny_corpus, tmp_path):
    from ser_utils.predict.predictor import Predictor

    first = tuning.tune(request_for(tiny_corpus, tmp_path, feature_dir, trials=2, pruner="none"))
    request = request_for(tiny_corpus, tmp_path, feature_dir, trials=3, pruner="none")
    again = tuning.tune(request)
    assert (first["ran"], again["ran"]) == (2, 1)
    study = optuna.load_study(study_name="1d-random", storage=request.url)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert study.trials[2].params not in (study.trials[0].params, study.trials[1].params)
    folders = {t.user_attrs["run_id"]: request.runs_dir / t.user_attrs["run_id"] for t in study.trials}
    assert sorted(folders) == [f"tune-1d-random-t{n:04d}" for n in range(3)]

    best = again["best"]
    assert best["value"] == min(t.value for t in study.trials) == study.best_value
    for run_id, folder in folders.items():  # only the best trial was ever tested
        tested = run_id == best["run_id"]
        assert runs.read_status(folder) == (runs.STATUS_COMPLETE if tested else runs.STATUS_VALIDATED)
        assert (folder / runs.PREDICTIONS_FILE).exists() == tested
    comparison = again["comparison"]
    n_test = runs.load_run(folders[best["run_id"]])["metrics"]["n_test"]
    assert comparison["n_clips"] == n_test and 0 <= comparison["p"] <= 1
    assert comparison["lo"] <= comparison["difference"] <= comparison["hi"]
    assert comparison["accuracy_a"] == pytest.approx(best["accuracy"])
    assert (tmp_path / "tuning" / "1d-random" / tuning.STUDY_FILE).is_file()

    predictor = Predictor.from_run(best["run_dir"], warn=False)
    clip = sorted(Path(tiny_corpus).rglob("*.wav"))[0]
    table = predictor.predict([clip])
    assert len(table) == 1


# ----------------------------------------------------------------------- many workers
def check_shared_study(storage: str, out: Path, expected: int) -> None:
    """Distinct trials in distinct run folders; one best, the same from the study and the folders."""
    study = optuna.load_study(study_name="shared", storage=storage)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert expected <= len(done) <= expected + 1  # two workers may both ask for the last trial
    run_ids = [t.user_attrs["run_id"] for t in done]
    assert len(set(run_ids)) == len(run_ids) == len({t.number for t in done})
    losses = {r: runs.load_run(out / "tuning" / "shared" / "runs" / r)["metrics"]["best_val_loss"] for r in run_ids}
    assert {t.user_attrs["run_id"]: t.value for t in done} == pytest.approx(losses)
    assert study.best_trial.user_attrs["run_id"] == min(losses, key=losses.get)


@pytest.mark.slow
def test_two_workers_on_postgresql_share_one_study(postgres, feature_dir, tiny_corpus, tmp_path):
    """Two worker processes against one PostgreSQL study (separate commands on separate machines are
    the SLURM test's: tests/test_slurm.py)."""
    url = postgres.url()
    request = request_for(tiny_corpus, tmp_path, feature_dir, trials=2, storage=url, study="shared")
    summary = tuning.tune(request, jobs=2, finish_study=False)
    assert summary["counted"] >= 2 and DB_PASSWORD not in "\n".join(tuning.summary_lines(summary))
    check_shared_study(url, tmp_path, expected=2)


@pytest.mark.slow
def test_journal_file_shared_by_two_local_worker_processes(feature_dir, tiny_corpus, tmp_path):
    """``tune --jobs 2``: two worker processes of this machine write one journal file."""
    storage = f"journal:{tmp_path / 'study.journal'}"
    request = request_for(tiny_corpus, tmp_path, feature_dir, trials=2, storage=storage, study="shared")
    summary = tuning.tune(request, jobs=2, finish_study=False)
    assert summary["counted"] >= 2 and "best" not in summary
    check_shared_study(study_storage.open_storage(storage), tmp_path, expected=2)


@pytest.mark.slow
def test_killed_worker_trial_fails_by_heartbeat_and_is_retried(postgres, feature_dir, tiny_corpus, tmp_path):
    """SIGKILL a worker in its second trial; the next worker fails it by heartbeat and retries it."""
    url = postgres.url()
    runs_dir = tmp_path / "tuning" / "killed" / "runs"
    victim = subprocess.Popen(worker_command(tiny_corpus, tmp_path, feature_dir, url, 2, 1, "--heartbeat", "1",
                                             study="killed"),
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + WAIT_S
    while not (runs_dir / "tune-killed-t0001" / runs.CONFIG_FILE).is_file():
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the worker never started its second trial"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    first = runs.load_run(runs_dir / "tune-killed-t0000")["metrics"]
    time.sleep(3.5)  # past the grace period (3 heartbeats)

    result = subprocess.run(worker_command(tiny_corpus, tmp_path, feature_dir, url, 2, 2, "--heartbeat", "1",
                                           study="killed"),
                            cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="killed", storage=url)
    states = {t.number: t.state for t in study.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAIL, 2: TrialState.COMPLETE}
    retry = study.trials[2]
    assert retry.params == study.trials[1].params
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 1
    assert runs.read_status(runs_dir / "tune-killed-t0001") is None  # killed mid-training: no metrics
    assert runs.read_status(runs_dir / "tune-killed-t0002") == runs.STATUS_VALIDATED
    assert runs.load_run(runs_dir / "tune-killed-t0000")["metrics"] == first  # nothing else touched


def test_workers_racing_to_create_the_tables_open_the_storage_again(monkeypatch):
    """Two workers starting on an empty PostgreSQL database both create Optuna's tables; the loser's
    IntegrityError ("already exists", seen on the SLURM array) is retried, any other error is not."""
    from ser_utils.experiments import study_storage

    class IntegrityError(Exception):
        pass

    calls = []

    def rdb(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise IntegrityError('duplicate key value violates unique constraint: "alembic_version" already exists')
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", rdb)
    monkeypatch.setattr("time.sleep", lambda s: None)
    assert study_storage._rdb_storage(optuna, "postgresql+psycopg://x", {}, 10, None) == "storage" and len(calls) == 2

    def refused(url, **kwargs):
        raise IntegrityError("password authentication failed")

    monkeypatch.setattr(optuna.storages, "RDBStorage", refused)
    with pytest.raises(IntegrityError):
        study_storage._rdb_storage(optuna, "postgresql+psycopg://x", {}, 10, None)
