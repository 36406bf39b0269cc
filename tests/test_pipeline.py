"""The main job (`python -m ser_utils all`) end to end on the tiny corpus, with a narrowed grid."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from ser_utils import pipeline


def test_profiles_shorten_only_corpus_and_epochs():
    quick, full = pipeline.PROFILES["quick"], pipeline.PROFILES["full"]
    assert quick.actors < full.actors == 91
    assert full.epochs == "150"
    with pytest.raises(ValueError, match="unknown profile"):
        pipeline.run_main_job("medium")


def test_sweep_jobs_one_per_core_on_cpu_one_on_gpu():
    assert pipeline.sweep_jobs("cpu") == len(pipeline._cores())
    assert pipeline.sweep_jobs("cuda:0") == 1
    assert pipeline.sweep_jobs("cpu", jobs=3) == 3


@pytest.mark.slow
def test_main_job_end_to_end(tiny_corpus, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ser_utils", "all", "--data", str(tiny_corpus), "--out", str(out),
           "--epochs", "1", "--models", "1d,2d", "--activations", "relu", "--lrs", "0.01"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # a stall fails, never hangs CI
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "main_job.json").read_text())
    assert summary["corpus"] == "synthetic" and summary["runs"] == 2 and not summary["failed"]
    assert "not a CREMA-D result" in done.stdout
    executed = sorted(p.stem for p in (out / "executed").glob("*.ipynb"))
    assert executed == ["01_data_tour", "02_preprocessing", "03_feature_extraction", "04_model_cnn1d",
                        "05_model_cnn2d", "06_model_combined", "08_analysis"]
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["run_id"]) == ["1d-relu-lr0.01", "2d-relu-lr0.01"]
    assert (results["status"] == "complete").all()
    assert (out / "report" / "index.html").is_file()
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 246 and set(manifest["split"]) == {"train", "val", "test"}
    assert len(list((out / "report" / "runs").glob("*.html"))) == 2
    assert list((out / "figures" / "07_train").glob("*.png"))  # the kernels wrote under --out
