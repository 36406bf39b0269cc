"""The command line's contract: exit codes, one-line errors naming the file and the fix."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from ser_utils import cli
from ser_utils.data import dataset
from tests.conftest import make_name_folder
from tests.test_dataset import LFS_POINTER


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_utils", *args], capture_output=True, text=True, env=env)


def test_manifest_writes_the_csv(tmp_path):
    make_name_folder(tmp_path / "CREMA-D" / "AudioWAV", dataset.grid_names([1001, 1002, 1003]) + ["junk.wav"])
    out = tmp_path / "m.csv"
    result = run_cli("manifest", "--data", str(tmp_path / "CREMA-D"), "--out", str(out), "--split", "speaker")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 246 and set(frame["split"]) == {"train", "val", "test"}
    assert {"path", "actor", "sentence", "emotion", "intensity", "split"} <= set(frame.columns)
    assert "skipped" in result.stderr and "junk.wav" in result.stderr
    assert "246 clips" in result.stdout


def test_missing_folder_exits_2_with_one_line(tmp_path):
    result = run_cli("manifest", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "m.csv"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(tmp_path / "absent") in lines[0]
    assert "demo-data" in lines[0]
    assert not (tmp_path / "m.csv").exists()


def test_lfs_pointers_exit_2_naming_the_fix(tmp_path, capsys):
    make_name_folder(tmp_path / "AudioWAV", dataset.grid_names([1001]), content=LFS_POINTER)
    code = cli.main(["manifest", "--data", str(tmp_path), "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "git lfs pull" in err and len(err.splitlines()) == 1


def test_default_data_comes_from_the_environment(tmp_path):
    make_name_folder(tmp_path / "wavs", dataset.grid_names([1001, 1002, 1003]))
    import os

    env = dict(os.environ, CREMA_D_DIR=str(tmp_path / "wavs"))
    result = run_cli("manifest", "--out", str(tmp_path / "m.csv"), env=env)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "m.csv")) == 246


@pytest.mark.parametrize("argv", [["manifest", "--split", "sentence"], ["nonsense"], []])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_demo_data_rejects_bad_actor_count(tmp_path, capsys):
    code = cli.main(["demo-data", "--out", str(tmp_path), "--actors", "0"])
    assert code == 2 and "error:" in capsys.readouterr().err
