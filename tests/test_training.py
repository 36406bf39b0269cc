"""The training loop: schedule, run folder, divergence, failure, determinism, no silent overwrite.

Runs use the 1D model on ~100 random clips whose class shifts the feature means (a learnable
signal), for 2 epochs: a few seconds each on a laptop CPU.
"""

from __future__ import annotations

import json
from dataclasses import replace
import math
import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from ser_utils import config, models, runs, training
from ser_utils.data import dataset
from ser_utils.training import batching, checkpoint, runtime, data as training_data
from ser_utils.config import TrainConfig

N_CLIPS = 120
TIMING_KEYS = {"wall_time_s", "time_per_epoch_s"}


def make_data(n: int = N_CLIPS, seed: int = 0, signal: float = 1.0) -> training_data.TrainingData:
    """Random features with class-dependent means, a 70/10/20 split and CREMA-D-like paths."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(config.EMOTIONS)
    rng.shuffle(y)
    x1d = rng.standard_normal((n, 27, 301)).astype(np.float32) * 3 + 5  # offset + scale: standardisation matters
    x1d[:, :6, :] += signal * np.eye(6, dtype=np.float32)[y][:, :, None] * 3
    x2d = rng.random((n, 1, 64, 64)).astype(np.float32)
    split = np.array(["train"] * int(n * 0.7) + ["val"] * int(n * 0.1) + ["test"] * (n - int(n * 0.7) - int(n * 0.1)))
    ids = np.array([f"AudioWAV/{1001 + i % 91}_IEO_{config.EMOTIONS[c]}_HI.wav" for i, c in enumerate(y)])
    return training_data.TrainingData(x1d, x2d, y, split, corpus="synthetic", split_method="random", ids=ids)


def short_cfg(**kwargs) -> TrainConfig:
    return TrainConfig(**{"model": "1d", "epochs": 2, "batch_size": 32, "device": "cpu", **kwargs})


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS and k != "device_name"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Runs use every core by design; here one thread is faster and steadier on a busy shared
    machine (OpenMP threads stall badly when other processes hold the cores)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "usable_cpus", lambda: 1)
        yield


@pytest.fixture(scope="module")
def data() -> training_data.TrainingData:
    return make_data()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("runs")
    cfg = short_cfg()
    metrics = training.run(cfg, data, out_dir=out, progress=False)
    return cfg, out, metrics


# ------------------------------------------------------------------------ schedule
def test_lr_lambda_warmup_and_cosine_endpoints():
    total, warm, final = 1000, 50, 1e-3
    f = lambda s: training.lr_lambda(s, total, warm, final)  # noqa: E731
    assert 0 < f(0) <= 1 / warm  # from ~0, not a wasted zero step
    assert f(warm) == 1.0  # end of warm-up: the full rate
    assert f(total - 1) == pytest.approx(final, abs=1e-12)  # last step: 0.1% of the rate
    warm_values = [f(s) for s in range(warm + 1)]
    cos_values = [f(s) for s in range(warm, total)]
    assert all(b > a for a, b in zip(warm_values, warm_values[1:]))
    assert all(b <= a for a, b in zip(cos_values, cos_values[1:]))
    assert f(total + 10) == pytest.approx(final)
    assert training.lr_lambda(0, 10, 0, final) == 1.0


def test_schedule_caps_warmup_for_short_runs():
    steps = training.schedule_steps(short_cfg(epochs=2, batch_size=32), n_train=84)
    assert steps == {"steps_per_epoch": 3, "total_steps": 6, "warmup_steps": 3}
    report = training.schedule_steps(TrainConfig(), n_train=4_999)
    assert report["warmup_steps"] == 5 * report["steps_per_epoch"]


# ---------------------------------------------------------------------- data
def test_standardize_uses_training_statistics_only(data):
    poisoned = make_data()
    poisoned.x1d[poisoned.split != "train"] += 1000.0
    a, b = data.standardize(), poisoned.standardize()
    np.testing.assert_allclose(a.x1d_mean, b.x1d_mean)
    train = a.x1d[a.split == "train"]
    np.testing.assert_allclose(train.mean(axis=(0, 2)), 0, atol=1e-3)
    np.testing.assert_allclose(train.std(axis=(0, 2)), 1, atol=1e-3)
    assert a.standardize() is a


def test_from_features_splits_and_labels_the_manifest():
    rng = np.random.default_rng(1)
    n = 240
    manifest = pd.DataFrame({"path": [f"{i}.wav" for i in range(n)], "actor": 1001 + np.arange(n) % 10,
                             "emotion": np.array(config.EMOTIONS)[np.arange(n) % 6], "corpus": "synthetic"})
    fs = types.SimpleNamespace(manifest=manifest, x1d=rng.random((n, 27, 301), dtype=np.float32),
                               x2d=rng.random((n, 1, 64, 64), dtype=np.float32))
    td = training_data.TrainingData.from_features(fs, split_method="random")
    assert td.corpus == "synthetic" and td.split_method == "random"
    assert set(td.split) == {"train", "val", "test"}
    assert list(np.array(config.EMOTIONS)[td.y]) == manifest["emotion"].tolist()
    assert td.info()["n_test"] == 72
    counts = td.summary()
    assert counts.loc["test", "total"] == 72 and counts["total"].sum() == n
    assert list(counts.columns) == [*config.EMOTIONS, "total"]
    via_run = training.as_training_data(fs, short_cfg(split="random"))  # what run() does with a FeatureSet
    assert (via_run.split == td.split).all()


def test_training_data_rejects_bad_rows():
    with pytest.raises(ValueError, match="train/val/test"):
        training_data.TrainingData(None, None, [0, 1], ["train", "holdout"])
    with pytest.raises(ValueError, match="rows"):
        training_data.TrainingData(np.zeros((3, 27, 301), np.float32), None, [0, 1], ["train", "test"])


# ------------------------------------------------------------------- the hot loop
def test_combined_trains_one_batch_through_the_loop():
    torch.manual_seed(0)
    small = make_data(n=6)
    model = models.build_model("combined")
    tensors = batching.to_device_tensors(small.standardize(), model.inputs, torch.device("cpu"))
    y = torch.as_tensor(small.y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = training.make_scheduler(opt, short_cfg(model="combined", epochs=1), n_train=4)
    gen = torch.Generator().manual_seed(0)
    loss, acc = training.train_epoch(model, opt, sched, tensors, y, torch.arange(4), 4, gen)
    assert math.isfinite(loss) and 0 <= acc <= 1
    val_loss, _, logits = batching.evaluate(model, tensors, y, torch.arange(4, 6))
    assert logits.shape == (2, 6) and math.isfinite(val_loss)


# ------------------------------------------------------------------------ a run
def test_run_writes_a_complete_folder(first_run, data):
    cfg, out, metrics = first_run
    run_dir = out / cfg.run_id
    assert {p.name for p in run_dir.iterdir()} >= set(runs.TRAINING_FILES)
    assert not [p for p in run_dir.iterdir() if ".tmp" in p.name]

    saved = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["reused"] is False
    assert saved == {k: v for k, v in metrics.items() if k != "reused"} and saved["status"] == "complete"
    for key in ("accuracy", "f1", "precision", "recall", "f1_macro", "uar"):
        assert 0.0 <= saved[key] <= 1.0, key
    assert list(saved["per_class_f1"]) == list(config.EMOTIONS)
    assert saved["n_params"] == 507_654 and saved["corpus"] == "synthetic"
    assert (saved["n_train"], saved["n_val"], saved["n_test"]) == (84, 12, 24)
    assert 1 <= saved["best_epoch"] <= 2 and saved["epochs_run"] == 2
    assert saved["accuracy"] > 1 / 6  # the class-dependent means are learnable

    conf = json.loads((run_dir / "config.json").read_text())
    assert conf["run_id"] == cfg.run_id and conf["lr"] == cfg.lr and conf["data"]["corpus"] == "synthetic"

    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.columns[:6]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    assert history["epoch"].tolist() == [1, 2] and history.notna().all().all()
    assert history["lr"].iloc[-1] == pytest.approx(cfg.lr * cfg.final_lr_fraction)  # stepped per batch to the end

    confusion = pd.read_csv(run_dir / "confusion.csv", index_col=0)
    assert list(confusion.index) == list(config.EMOTIONS) == list(confusion.columns)
    assert confusion.index.name == "true" and confusion.to_numpy().sum() == 24
    assert np.trace(confusion.to_numpy()) / 24 == pytest.approx(saved["accuracy"])

    preds = pd.read_csv(run_dir / "predictions.csv")
    assert len(preds) == 24 and {"index", "path", "true", "predicted"} <= set(preds.columns)
    probs = preds[[f"p_{c}" for c in config.EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (preds["true"].to_numpy() == np.array(config.EMOTIONS)[data.y[preds["index"]]]).all()


def test_checkpoint_reloads_and_predicts_the_same(first_run, data):
    cfg, out, _ = first_run
    run_dir = out / cfg.run_id
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert ckpt["config"]["model"] == "1d" and "state_dict" in ckpt and ckpt["x1d_mean"].shape == (27,)
    model = checkpoint.load_model(run_dir)
    preds = pd.read_csv(run_dir / "predictions.csv")
    probs = checkpoint.predict(model, data, preds["index"].to_numpy(), device="cpu")
    np.testing.assert_allclose(probs, preds[[f"p_{c}" for c in config.EMOTIONS]].to_numpy(), atol=1e-5)

    loaded = runs.load_run(run_dir)
    assert loaded["metrics"]["status"] == "complete" and len(loaded["history"]) == 2
    assert loaded["confusion"].shape == (6, 6) and len(loaded["predictions"]) == 24


def test_finished_run_is_not_overwritten_without_force(first_run, data):
    cfg, out, metrics = first_run
    before = (out / cfg.run_id / "metrics.json").read_text()
    reused = training.run(cfg, data, out_dir=out, progress=False)
    assert reused["reused"] is True
    assert (out / cfg.run_id / "metrics.json").read_text() == before
    again = training.run(cfg, data, out_dir=out, force=True, progress=False)
    assert again["reused"] is False  # re-ran, and deterministically:
    assert without_timing(again) == without_timing({**metrics, "reused": False})


def test_identical_cpu_runs_are_identical(first_run, data, tmp_path):
    cfg, out, metrics = first_run
    other = training.run(cfg, data, out_dir=tmp_path, progress=False)
    assert without_timing(other) == without_timing(metrics)
    drop = ["epoch_time_s"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / cfg.run_id / "history.csv").drop(columns=drop),
                                  pd.read_csv(out / cfg.run_id / "history.csv").drop(columns=drop))


@pytest.mark.parametrize("lr", [1e4, math.inf])
def test_divergence_is_recorded_not_raised(data, tmp_path, lr):
    metrics = training.run(short_cfg(lr=lr), data, out_dir=tmp_path, progress=False)
    assert metrics["status"] == "diverged" and metrics["epochs_run"] == 1
    assert metrics["best_epoch"] == 0 and metrics["best_val_loss"] is None
    assert 0 <= metrics["accuracy"] <= 1  # chance-level predictions: the training prior's majority class
    run_dir = tmp_path / short_cfg(lr=lr).run_id
    assert runs.is_finished(run_dir)
    assert len(pd.read_csv(run_dir / "predictions.csv")) == 24
    again = training.run(short_cfg(lr=lr), data, out_dir=tmp_path, progress=False)
    assert again["reused"] is True and again["status"] == "diverged"  # the same settings: loaded, not retrained


def test_finished_run_is_reused_only_with_identical_settings(first_run, data, tmp_path):
    cfg, out, metrics = first_run
    mtime = (out / cfg.run_id / "metrics.json").stat().st_mtime_ns
    again = training.run(cfg, data, out_dir=out, progress=False)
    assert again["reused"] is True and again["accuracy"] == metrics["accuracy"]
    assert (out / cfg.run_id / "metrics.json").stat().st_mtime_ns == mtime  # nothing rewritten
    # a setting outside the run id's readable part gets its own folder (the hash), never the old run
    other = replace(cfg, dropout_head=0.4)
    assert other.run_id != cfg.run_id and other.run_id.startswith(cfg.run_id + "-h")
    # a folder whose recorded settings differ (here: edited by hand) is a conflict naming the field
    recorded = json.loads((out / cfg.run_id / "config.json").read_text())
    (tmp_path / cfg.run_id).mkdir()
    for name in ("metrics.json", "config.json"):
        (tmp_path / cfg.run_id / name).write_text((out / cfg.run_id / name).read_text())
    (tmp_path / cfg.run_id / "config.json").write_text(json.dumps({**recorded, "weight_decay": 0.5}))
    with pytest.raises(training.RunExistsError, match="weight_decay 0.5 -> 0.0001"):
        training.run(cfg, data, out_dir=tmp_path, progress=False)


def test_run_id_names_every_setting_that_differs_from_the_protocol():
    assert config.TrainConfig(model="2d", activation="silu", lr=0.001).run_id == "2d-silu-lr0.001"
    cfg = config.TrainConfig(model="1d", activation="relu", lr=0.01, epochs=12, split="speaker", seed=43,
                             split_seed=7, batch_size=32)
    assert cfg.run_id == "1d-relu-lr0.01-e12-speaker-seed43-split7-bs32"
    ids = {config.TrainConfig(model="1d", epochs=4, **{k: v}).run_id
           for k, v in [("weight_decay", 0.0), ("warmup_epochs", 1), ("final_lr_fraction", 0.01),
                        ("dropout_conv", 0.1), ("dropout_head", 0.1)]}
    assert len(ids) == 5  # each changed setting gives its own folder


def test_failure_is_recorded_then_raised(data, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("metrics exploded")

    monkeypatch.setattr(training.loop, "classification_metrics", boom)
    cfg = short_cfg(epochs=1)
    with pytest.raises(RuntimeError, match="metrics exploded"):
        training.run(cfg, data, out_dir=tmp_path, progress=False)
    saved = json.loads((tmp_path / cfg.run_id / "metrics.json").read_text())
    assert saved["status"] == "failed" and "metrics exploded" in saved["error"]
    assert not runs.is_finished(tmp_path / cfg.run_id)  # a failed run is retried without force


def test_configuration_errors_create_no_folder(data, tmp_path):
    with pytest.raises(ValueError, match="speaker"):
        training.run(short_cfg(split="speaker"), data, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="registered models"):
        training.run(short_cfg(model="nope"), data, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="elu, relu, silu"):
        training.run(short_cfg(activation="gelu"), data, out_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------- wandb
def test_wandb_missing_gives_an_install_hint(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'ser_utils\[wandb\]'"):
        training.run(short_cfg(epochs=1, wandb=True), data, out_dir=tmp_path, progress=False)


def test_wandb_offline_logging(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = short_cfg(epochs=1, wandb=True)
    metrics = training.run(cfg, data, out_dir=tmp_path, progress=False)
    assert metrics["status"] == "complete"
    assert list((tmp_path / cfg.run_id / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("model", config.MODELS)
def test_bf16_autocast_trains_every_report_model_on_cpu(model, tmp_path):
    """--precision bf16 works on the CPU too; metrics and probabilities stay fp32 (they sum to 1).

    One training batch proves it: 32 training clips, batch 32, one epoch (bf16 on a CPU without
    native bf16 is emulated and slow, so a longer run would prove nothing more at a high price)."""
    small = make_data(n=46)  # 32 train, 4 validation, 10 test clips
    assert int((small.split == "train").sum()) == 32
    cfg = short_cfg(model=model, epochs=1, batch_size=32, numeric_precision="bf16")
    assert cfg.run_id.endswith("-bf16")
    metrics = training.run(cfg, small, out_dir=tmp_path, progress=False)
    assert metrics["status"] in ("complete", "diverged") and metrics["precision_used"] == "bf16"
    preds = pd.read_csv(tmp_path / cfg.run_id / "predictions.csv")
    probs = preds[[f"p_{c}" for c in config.EMOTIONS]].to_numpy()
    assert probs.dtype == np.float64 and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(pd.read_csv(tmp_path / cfg.run_id / "history.csv")) >= 1


def test_a_run_on_another_corpus_with_the_same_label_is_not_reused(first_run, tmp_path):
    """The 8-actor and the 91-actor demo corpora are both "synthetic": the clips they hold tell them apart."""
    cfg, out, _ = first_run
    here = replace(make_data(), corpus_clips=dataset.corpus_fingerprint(["1001_DFA_ANG_XX.wav", "1002_DFA_ANG_XX.wav"]))
    shutil.copytree(out / cfg.run_id, tmp_path / cfg.run_id)
    config_file = tmp_path / cfg.run_id / "config.json"
    recorded = json.loads(config_file.read_text())
    elsewhere = dataset.corpus_fingerprint(["1001_DFA_ANG_XX.wav"])
    config_file.write_text(json.dumps({**recorded, "data": {**recorded["data"], "corpus_clips": elsewhere}}))
    with pytest.raises(training.RunExistsError, match=r"corpus clips 1 clips #\w+ -> 2 clips #\w+"):
        training.run(cfg, here, out_dir=tmp_path, progress=False)
    same = replace(here, corpus_clips=elsewhere)
    assert training.run(cfg, same, out_dir=tmp_path, progress=False)["reused"] is True


def test_corpus_fingerprint_depends_on_the_names_only():
    names = ["/a/1001_DFA_ANG_XX.wav", "/a/1002_IEO_SAD_HI.wav"]
    assert dataset.corpus_fingerprint(names) == dataset.corpus_fingerprint(["/b/" + n[3:] for n in reversed(names)])
    assert dataset.corpus_fingerprint(names) != dataset.corpus_fingerprint(names[:1])
    assert dataset.corpus_fingerprint(names).startswith("2 clips #")
