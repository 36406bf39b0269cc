"""Predicting on new recordings: the checkpoint, the round trip, formats, long recordings, errors, the command.

Runs are trained once per module on the tiny 3-actor demo corpus (a few epochs of the 1D model,
one epoch on 48 training clips for the others: their weights only need to be *a* model), one
per kind of input the registry has: fixed 1D, fixed 1D + 2D, mean-1D + 2D, variable-length.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ser_utils import config, features, runs, training
from ser_utils.data import audio, dataset, decoders
from ser_utils.analysis import error_analysis
from tests.processes import pool_workers
from ser_utils.predict import view, windowing
from ser_utils.training import checkpoint as inference, runtime
from ser_utils.predict import predictor as predictor_module
from ser_utils.predict.predictor import Predictor, SyntheticModelWarning, best_run, find_audio
from ser_utils.errors import UserError
from ser_utils.training.data import TrainingData

pytestmark = pytest.mark.slow

MODELS = ("1d", "combined", "combined-mean1d", "combined-varlen", "transformer")
PROBS = [f"p_{c}" for c in config.EMOTIONS]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: faster and steadier than two on a busy shared machine (as test_training)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "usable_cpus", lambda: 1)
        yield


@pytest.fixture(scope="module")
def feature_set(tiny_corpus, tmp_path_factory):
    clips, _ = dataset.scan(tiny_corpus)
    return features.extract(clips, cache_root=tmp_path_factory.mktemp("features"), jobs=2, progress=False)


@pytest.fixture(scope="module")
def trained(feature_set, tmp_path_factory) -> dict[str, Path]:
    """model name -> run folder, all in one runs folder."""
    out = tmp_path_factory.mktemp("runs")
    folders = {}
    for name in MODELS:
        data = TrainingData.from_features(feature_set, split_method="random")
        data = data if name == "1d" else data.limit_train(48)
        cfg = config.TrainConfig(model=name, epochs=3 if name == "1d" else 1, batch_size=16, device="cpu")
        training.run(cfg, data, out_dir=out, progress=False)
        folders[name] = out / cfg.run_id
    return folders


def predictor(run_dir: Path, **kwargs) -> Predictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticModelWarning)
        return Predictor.from_run(run_dir, device="cpu", **kwargs)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_utils", "predict", *args], capture_output=True, text=True,
                          timeout=600)


def speech_of(path: str) -> np.ndarray:
    """A clip's speech region as recorded (16 kHz, not normalised): preprocessing's own trim."""
    pre = audio.preprocess(path)
    return pre.untrimmed[pre.speech_start:pre.speech_end]


# ------------------------------------------------------------------------- the checkpoint
def test_checkpoint_is_self_contained(trained, feature_set, tmp_path):
    run_dir = trained["combined-varlen"]
    ckpt = inference.read_checkpoint(run_dir / runs.CHECKPOINT_FILE)
    assert ckpt["schema"] == inference.CHECKPOINT_SCHEMA
    assert ckpt["model"] == {"name": "combined-varlen", "kwargs": {"n_classes": 6, "activation": "relu",
                                                                   "dropout_conv": 0.3, "dropout_head": 0.5,
                                                                   "hidden": 128}}
    assert ckpt["classes"] == list(config.EMOTIONS) and ckpt["corpus"] == "synthetic"
    meta = json.loads((feature_set.cache_dir / "meta.json").read_text())
    assert (ckpt["preprocess"], ckpt["feature_1d"], ckpt["feature_2d"]) == (meta["pre"], meta["f1"], meta["f2"])
    assert ckpt["feature_version"] == features.FEATURES_VERSION and ckpt["features_from"].endswith(feature_set.key)
    assert set(ckpt["input_stats"]) == {"x1d_var"} and ckpt["input_stats"]["x1d_var"][0].shape == (27,)
    assert {"torch", "numpy", "librosa", "soxr", "soundfile"} <= set(ckpt["versions"])
    full = inference.read_checkpoint(trained["1d"] / runs.CHECKPOINT_FILE)  # trained on every clip of the corpus
    assert full["longest_clip_s"] == pytest.approx(feature_set.clips["duration_out_s"].max())
    assert full["x1d_mean"].shape == (27,) and full["input_stats"] == {}

    alone = tmp_path / "copied"  # the checkpoint alone, away from its run and the feature cache
    alone.mkdir()
    shutil.copy(run_dir / runs.CHECKPOINT_FILE, alone / runs.CHECKPOINT_FILE)
    path = str(feature_set.manifest["path"].iloc[0])
    np.testing.assert_allclose(predictor(alone).predict(path)[PROBS].to_numpy(),
                               predictor(run_dir).predict(path)[PROBS].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("change,expected", [({"schema": 2}, "checkpoint schema 2"),
                                             ({"feature_version": 0}, "feature version 0"),
                                             ({"model": {"name": "3d", "kwargs": {}}}, "'3d' is not in")])
def test_a_checkpoint_of_another_version_is_refused(trained, tmp_path, change, expected):
    ckpt = torch.load(trained["1d"] / runs.CHECKPOINT_FILE, weights_only=True)
    (tmp_path / "old").mkdir()
    torch.save({**ckpt, **change}, tmp_path / "old" / runs.CHECKPOINT_FILE)
    with pytest.raises(inference.CheckpointError, match=expected) as err:
        Predictor.from_run(tmp_path / "old")
    assert "retrain" in str(err.value) or "version that trained it" in str(err.value)
    result = run_cli(str(tmp_path), "--run", str(tmp_path / "old"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {err.value}"]


def test_probabilities_come_in_the_reports_class_order(trained, feature_set, tmp_path):
    """A model trained with the classes in another order still reports ANG DIS FEA HAP NEU SAD."""
    ckpt = torch.load(trained["1d"] / runs.CHECKPOINT_FILE, weights_only=True)
    perm = [5, 2, 0, 4, 1, 3]
    state = dict(ckpt["state_dict"])
    for key in ("classifier.weight", "classifier.bias"):  # the output rows in the new class order
        state[key] = state[key][perm]
    (tmp_path / "shuffled").mkdir()
    torch.save({**ckpt, "state_dict": state, "classes": [ckpt["classes"][i] for i in perm]},
               tmp_path / "shuffled" / runs.CHECKPOINT_FILE)
    clip = str(feature_set.manifest["path"].iloc[0])
    shuffled, original = predictor(tmp_path / "shuffled").predict(clip), predictor(trained["1d"]).predict(clip)
    assert [c for c in shuffled.columns if c.startswith("p_")] == PROBS
    np.testing.assert_allclose(shuffled[PROBS].to_numpy(), original[PROBS].to_numpy(), atol=1e-6)
    assert shuffled["predicted"].iloc[0] == original["predicted"].iloc[0]


# --------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_gives_the_runs_predictions(trained, name, monkeypatch):
    """The run's own test clips, from their files, give predictions.csv: same labels, probabilities to 1e-5.

    1d also goes through both worker pools: the scoring workers with chunks of 3 files, and the
    preparing pool (the GPU's way) with chunks of 7 files in flight and batches of 16 windows scored
    here: the order and the numbers must survive every way of sharing out the work."""
    run_dir = trained[name]
    saved = pd.read_csv(run_dir / runs.PREDICTIONS_FILE)
    ways = {"here": {"jobs": 1}}
    if name == "1d":
        monkeypatch.setattr(predictor_module, "CHUNK_FILES", 7)
        monkeypatch.setattr(predictor_module, "WORKER_CHUNK_FILES", 3)
        ways |= {"scoring workers": {"jobs": 2}, "preparing pool": {"jobs": 2, "batch_size": 16,
                                                                       "score_in_workers": False}}
    for way, options in ways.items():
        with predictor(run_dir, **options) as scorer:
            got = scorer.predict(list(saved["path"]))
        assert list(got["path"]) == list(saved["path"]) and (got["error"] == "").all(), way
        assert (got["n_windows"] == 1).all(), way  # no test clip is longer than the longest clip trained on
        assert list(got["predicted"]) == list(saved["predicted"]), way
        np.testing.assert_allclose(got[PROBS].to_numpy(), saved[PROBS].to_numpy(), atol=1e-5, rtol=0, err_msg=way)


def test_scoring_workers_are_kept_between_calls_and_a_dead_one_is_a_clear_error(trained, feature_set):
    """The pool of scoring workers outlives a call (each holds the model); a worker that dies (killed,
    out of memory) ends that call with a one-line error naming a file and the fix, never a hang, and
    the next call starts a fresh pool."""
    paths = list(feature_set.manifest["path"].astype(str)[:12])
    scorer = predictor(trained["1d"], jobs=2)
    first = scorer.predict(paths)
    pool = scorer._pool
    assert pool is not None and (first["error"] == "").all()
    again = scorer.predict(paths)
    assert scorer._pool is pool
    np.testing.assert_allclose(again[PROBS].to_numpy(), first[PROBS].to_numpy(), atol=1e-6, rtol=0)

    os.kill(next(iter(pool._processes)), signal.SIGKILL)
    with pytest.raises(UserError, match=r"worker process died.*--jobs 1") as err:
        scorer.predict(paths)
    assert "\n" not in str(err.value) and any(path in str(err.value) for path in paths)
    recovered = scorer.predict(paths)
    assert scorer._pool is not pool
    np.testing.assert_allclose(recovered[PROBS].to_numpy(), first[PROBS].to_numpy(), atol=1e-6, rtol=0)
    scorer.close()
    assert scorer._pool is None


def _grandchildren() -> list[int]:
    """Live processes two levels below this one (pool workers: children of the fork server)."""
    return pool_workers(os.getpid())


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the pool's workers")
def test_a_dead_preparing_worker_is_a_clear_error_not_a_hang(trained, feature_set):
    """The GPU's way (workers prepare, this process scores): a worker killed mid-run ends the call with
    the one-line error, where a multiprocessing.Pool would wait forever for the lost task."""
    import threading

    paths = list(feature_set.manifest["path"].astype(str)) * 20
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            workers = _grandchildren()
            if workers:
                time.sleep(0.3)
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.02)

    scorer = predictor(trained["1d"], jobs=2, score_in_workers=False)
    thread = threading.Thread(target=kill_a_worker, daemon=True)
    thread.start()
    with pytest.raises(UserError, match=r"worker process died.*--jobs 1") as err:
        scorer.predict(paths)
    thread.join()
    assert killed and "\n" not in str(err.value) and str(err.value).split(": ")[0] in paths


def test_mean1d_uses_the_valid_frames_only(trained, feature_set):
    """x1d_avg is the mean over a clip's own frames, as in training, never over the padding of the 301."""
    path = str(feature_set.manifest["path"].iloc[0])
    pre = audio.preprocess(path)
    spec = predictor(trained["combined-mean1d"]).spec
    avg = windowing.window_inputs(pre, spec)["x1d_avg"]
    valid = features.frames_1d(pre.signal).mean(axis=1)
    padded = features.features_1d(pre.signal).mean(axis=1)
    assert len(pre.signal) < features.fixed_samples()  # a clip shorter than 3 s: the 301 frames hold padding
    assert np.abs(avg - valid).max() < 0.05  # the frames are stored at float16, as the feature cache stores them
    assert np.abs(avg - padded).max() > 1.0  # what averaging over the padding would have given

    model = inference.load_model(trained["combined-mean1d"])
    only_padded = TrainingData(features.features_1d(pre.signal)[None], features.features_2d(pre.signal)[None],
                               y=[0], split=["test"])
    with pytest.raises(ValueError, match="valid frames"):
        inference.predict(model, only_padded, device="cpu")


# ------------------------------------------------------------------------------- formats
def test_every_libsndfile_format_gives_a_prediction(trained, feature_set, tmp_path):
    source = str(feature_set.manifest["path"].iloc[0])
    samples, rate = sf.read(source, dtype="int16")
    assert rate == 16_000 and samples.ndim == 1
    x = samples.astype(np.float32) / 32768
    stereo = np.stack([audio.resample(x, rate, 44_100), 0.8 * audio.resample(x, rate, 44_100)], axis=1)
    files = {"flac": ("clip.flac", x, rate, "FLAC", "PCM_16"), "ogg": ("clip.ogg", x, rate, "OGG", "VORBIS"),
             "stereo 44.1 kHz": ("stereo44k.wav", stereo, 44_100, "WAV", "PCM_16"),
             "8-bit": ("u8.wav", x, rate, "WAV", "PCM_U8"), "24-bit": ("s24.wav", x, rate, "WAV", "PCM_24"),
             "float": ("float.wav", x, rate, "WAV", "FLOAT"), "mp3": ("clip.mp3", x, rate, "MP3", "MPEG_LAYER_III")}
    written = {}
    for label, (name, data, sr, fmt, subtype) in files.items():
        try:
            sf.write(tmp_path / name, data, sr, format=fmt, subtype=subtype)
            written[label] = str(tmp_path / name)
        except (sf.LibsndfileError, ValueError, TypeError) as err:
            assert label == "mp3", f"soundfile could not write {label}: {err}"
    got = predictor(trained["1d"]).predict([source, *written.values()]).set_index("path")
    assert (got["error"] == "").all(), got["error"].to_dict()
    np.testing.assert_allclose(got[PROBS].sum(axis=1), 1, atol=1e-5)
    original = got.loc[source, PROBS].to_numpy(dtype=float)
    for lossless in ("flac", "24-bit", "float"):  # the same samples decoded: the same prediction
        np.testing.assert_allclose(got.loc[written[lossless], PROBS].to_numpy(dtype=float), original, atol=1e-5)
    if "mp3" not in written:
        pytest.skip(f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}) cannot write MP3 here; "
                    "every other format was checked")


#: What people record in, written by FFmpeg (PyAV) from a corpus clip: browser, phone, video, Ogg, MP3.
LOSSY = ("browser.webm", "voice_memo.m4a", "video.mp4", "clip.opus.ogg", "clip.mp3")


def test_phone_browser_and_video_recordings_are_scored_like_the_wav(trained, feature_set, tmp_path):
    """Each lossy encoding of a clip: probabilities within 0.05 of the WAV's and the same emotion;
    a video without sound and a truncated WebM are one-line errors while the others are scored."""
    source = str(feature_set.manifest["path"].iloc[3])
    x, rate = sf.read(source, dtype="float32")
    folder = tmp_path / "recordings"
    folder.mkdir()
    wav = str(shutil.copy(source, folder / "original.wav"))
    for name in LOSSY:
        decoders.encode(folder / name, x, rate, video=name == "video.mp4")
    decoders.encode(folder / "silent_video.mp4", x, rate, video=True, sound=False)
    whole = (folder / "browser.webm").read_bytes()
    (folder / "cut.webm").write_bytes(whole[: len(whole) // 2])
    (folder / "notes.txt").write_text("not audio")
    (folder / "cover.jpg").write_bytes(b"\xff\xd8")

    result = run_cli(str(folder), "--run", str(trained["1d"]), "--format", "csv")
    assert result.returncode == 1, result.stderr
    rows = pd.read_csv(io.StringIO(result.stdout)).query("kind == 'recording'").set_index("path")
    assert len(rows) == len(LOSSY) + 3  # the two not-audio files are not searched
    assert result.stderr.count("skipped 2 files that are not audio: cover.jpg, notes.txt") == 1
    reference = rows.loc[wav, PROBS].to_numpy(dtype=float)
    for name in LOSSY:
        row = rows.loc[str(folder / name)]
        assert pd.isna(row["error"]), row["error"]
        assert np.abs(row[PROBS].to_numpy(dtype=float) - reference).max() < 0.05, name
        assert row["emotion"] == rows.loc[wav, "emotion"], name
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    silent, cut = str(folder / "silent_video.mp4"), str(folder / "cut.webm")
    assert f"error: {silent}: no audio stream in this file (video streams only); export or record it with sound" \
        in errors
    assert any(line.startswith(f"error: {cut}: truncated (the file declares") for line in errors)
    assert errors[-1] == f"error: 2 of {len(rows)} recordings failed: {cut}, {silent}"


# ---------------------------------------------------------------------------- long audio
def test_window_bounds():
    plan = windowing.WindowPlan(window_s=3.0, hop_s=1.0, whole_max_s=4.0)
    sr = 100
    assert windowing.window_bounds(400, sr, plan) == [(0, 400)]  # up to the longest training clip: whole
    assert windowing.window_bounds(450, sr, plan) == [(0, 300), (100, 400), (150, 450)]  # the last ends at the end
    twenty = windowing.window_bounds(2000, sr, plan)
    assert len(twenty) == 18 and twenty[0] == (0, 300) and twenty[-1] == (1700, 2000)
    with pytest.raises(ValueError):
        windowing.WindowPlan(hop_s=0)


@pytest.fixture(scope="module")
def twenty_seconds(feature_set) -> np.ndarray:
    """20.0 s of continuous speech: the speech regions of consecutive clips, cut to exactly 20 s."""
    parts, total = [], 0
    for path in feature_set.manifest["path"]:
        parts.append(speech_of(path))
        total += len(parts[-1])
        if total >= 20 * config.SAMPLE_RATE:
            break
    return np.concatenate(parts)[: 20 * config.SAMPLE_RATE]


def test_a_20_second_recording_is_scored_in_18_windows(trained, twenty_seconds, tmp_path):
    p = predictor(trained["combined"])
    assert p.spec.plan.whole_max_s < 5  # the tiny corpus' longest clip; 20 s is far beyond
    frame = p.predict_array(twenty_seconds, config.SAMPLE_RATE, windows=True)
    recording, windows = frame.iloc[0], frame[frame["kind"] == "window"]
    assert recording["speech_s"] == pytest.approx(20.0, abs=0.1)
    assert recording["n_windows"] == len(windows) == 18
    assert np.diff(windows["start_s"]) == pytest.approx([1.0] * 17)
    assert (windows["end_s"] - windows["start_s"]).to_numpy() == pytest.approx([3.0] * 18)
    np.testing.assert_allclose(recording[PROBS].to_numpy(dtype=float), windows[PROBS].to_numpy().mean(axis=0),
                               atol=1e-6)

    path = tmp_path / "long.wav"  # the same through the command, whose json and csv carry the windows
    sf.write(path, twenty_seconds, config.SAMPLE_RATE, subtype="PCM_16")
    out = run_cli(str(path), "--run", str(trained["combined"]), "--format", "json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)["recordings"][0]
    assert record["n_windows"] == len(record["windows"]) == 18 and record["error"] is None
    assert list(record["probabilities"]) == list(config.EMOTIONS)
    csv = run_cli(str(path), "--run", str(trained["combined"]), "--out", str(tmp_path / "p.csv"))
    table = pd.read_csv(tmp_path / "p.csv")
    assert csv.returncode == 0 and list(table["kind"]) == ["recording"] + ["window"] * 18


def test_predict_array_matches_the_file_and_takes_channels(trained, feature_set):
    path = str(feature_set.manifest["path"].iloc[1])
    p = predictor(trained["1d"])
    samples, rate = sf.read(path, dtype="float32")
    from_file = p.predict(path)[PROBS].to_numpy()
    np.testing.assert_allclose(p.predict_array(samples, rate)[PROBS].to_numpy(), from_file, atol=1e-6)
    np.testing.assert_allclose(p.predict_array(np.stack([samples, samples], 1), rate)[PROBS].to_numpy(), from_file,
                               atol=1e-6)


# -------------------------------------------------------------------------------- errors
def test_a_folder_with_a_corrupt_and_a_silent_file(trained, feature_set, tmp_path):
    """Ten recordings, enough for the command's scoring workers (--jobs 2): the bad ones are named as
    they fail, the good ones scored, the summary last, exit 1."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    good = [shutil.copy(p, folder) for p in feature_set.manifest["path"].iloc[:6]]
    (folder / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    sf.write(folder / "silent.flac", np.zeros(32_000, dtype=np.int16), 16_000)
    sf.write(folder / "short.wav", (0.3 * np.sin(np.arange(4_000) / 5)).astype(np.float32), 16_000)
    (folder / "notes.txt").write_text("not audio, not searched")
    assert len(find_audio(folder, emit=lambda line: None)) == 9 and len(find_audio(folder)) + 1 >= predictor_module.MIN_FILES_FOR_POOL

    missing = str(tmp_path / "typo.wav")
    result = run_cli(str(folder), missing, "--run", str(trained["1d"]), "--format", "csv", "--jobs", "2")
    assert result.returncode == 1
    table = pd.read_csv(io.StringIO(result.stdout))
    rows = table[table["kind"] == "recording"].set_index("path")
    assert rows.loc[good, PROBS].notna().all().all() and (rows.loc[good, "error"].isna()).all()
    bad = [str(folder / n) for n in ("corrupt.wav", "short.wav", "silent.flac")] + [missing]
    assert rows.loc[bad, PROBS].isna().all().all()
    assert "speech" in rows.loc[str(folder / "short.wav"), "error"]
    assert "silen" in rows.loc[str(folder / "silent.flac"), "error"]
    assert rows.loc[missing, "error"] == f"{missing}: no such file; check the path"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 5  # one line per bad file as it fails, then the summary
    for path in bad:
        assert sum(line.startswith(f"error: {path}: ") for line in errors) == 1
    assert errors[-1] == f"error: 4 of 10 recordings failed: {', '.join(bad)}"
    assert result.stderr.splitlines().count("skipped 1 file that is not audio: notes.txt") == 1
    direct = predictor(trained["1d"]).predict(good)  # in this process, one recording after another
    np.testing.assert_allclose(rows.loc[good, PROBS].to_numpy(dtype=float), direct[PROBS].to_numpy(), atol=1e-5)


def test_a_bad_run_folder_exits_2(trained, feature_set, tmp_path):
    clip = str(feature_set.manifest["path"].iloc[0])
    for args, expected in [(["--run", str(tmp_path / "absent")], "no such run folder"),
                           (["--run", str(tmp_path)], "no checkpoint"),
                           (["--runs", str(tmp_path)], "no finished run with a checkpoint"),
                           (["--run", str(trained["1d"]), "--hop", "-1"], "positive number")]:
        result = run_cli(clip, *args)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr


# -------------------------------------------------------------------------- choosing a run
def test_the_best_run_is_chosen_by_validation_loss_not_test_accuracy(trained, feature_set, tmp_path):
    folder = tmp_path / "runs"
    for name, val_loss, accuracy in (("low-val-loss", 1.0, 0.20), ("high-test-accuracy", 2.0, 0.95)):
        shutil.copytree(trained["1d"], folder / name)
        metrics = json.loads((folder / name / runs.METRICS_FILE).read_text())
        metrics.update(best_val_loss=val_loss, accuracy=accuracy)
        (folder / name / runs.METRICS_FILE).write_text(json.dumps(metrics))
    assert best_run(folder) == folder / "low-val-loss"
    assert best_run(tmp_path) == folder / "low-val-loss"  # a sweep's --out holding runs/
    result = run_cli(str(feature_set.manifest["path"].iloc[0]), "--runs", str(folder))
    assert result.returncode == 0 and f"using {folder / 'low-val-loss'}" in result.stderr


def test_a_synthetic_model_says_so(trained, feature_set):
    with pytest.warns(SyntheticModelWarning, match="synthetic demo corpus"):
        Predictor.from_run(trained["1d"], device="cpu")
    result = run_cli(str(feature_set.manifest["path"].iloc[0]), "--run", str(trained["1d"]))
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert result.returncode == 0 and len(warned) == 1 and config.SYNTHETIC_LABEL in warned[0]
    assert config.SYNTHETIC_LABEL in result.stdout.splitlines()[0]  # the table's header names the corpus


# ---------------------------------------------------------------------------- calibration
def test_ece_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(42)
    confidence = rng.uniform(0.2, 1.0, 20_000)
    calibrated = (rng.uniform(size=confidence.size) < confidence).astype(float)  # right as often as it claims
    assert error_analysis.ece_of(confidence, calibrated) < 0.02
    always_sure = np.full(1000, 0.95)
    half_right = np.arange(1000) % 2 == 0
    assert error_analysis.ece_of(always_sure, half_right.astype(float)) == pytest.approx(0.45)
    resampled = error_analysis.ece_of(always_sure, half_right.astype(float), weights=np.ones((3, 1000)))
    np.testing.assert_allclose(resampled, 0.45)


def test_reliability_bins_a_runs_test_predictions(trained):
    frame = pd.read_csv(trained["1d"] / runs.PREDICTIONS_FILE)
    table, summary = view.reliability(frame)
    assert table["clips"].sum() == summary["clips"] == len(frame)
    assert summary["accuracy"] == pytest.approx((frame["predicted"] == frame["true"]).mean())
    assert summary["ece_low"] <= summary["ece"] <= summary["ece_high"]
    assert ((table["acc_low"] <= table["accuracy"]) & (table["accuracy"] <= table["acc_high"])).all()
    assert (table["from"] <= table["confidence"]).all() and (table["confidence"] <= table["to"]).all()


def test_the_selection_note_names_both_rules_runs(trained):
    p = predictor(trained["1d"])
    results = runs.finished(runs.collect_results(trained["1d"].parent))
    by_test = results.sort_values("accuracy", ascending=False, kind="stable")["run_id"].iloc[0]
    note = view.selection_note(p, trained["1d"].parent)
    assert note.startswith(f"This notebook and `predict` use run {p.name}, the lowest validation loss")
    assert f"notebook 08 shows {by_test}" in note
    assert ("same run" in note) == (by_test == p.name)


# ------------------------------------------------------------------------------ notebook 10
def test_notebook_10_predicts_headless(trained, tiny_corpus, notebook_outputs, tmp_path):
    """Papermill (as the main job): held-out clips, a sentence synthesised on the spot, a long recording."""
    import nbformat

    from tests.test_notebooks import execute

    source = config.NOTEBOOKS_DIR / "10_predict.ipynb"
    committed = nbformat.read(source, as_version=4)
    assert sum("parameters" in c.metadata.get("tags", []) for c in committed.cells) == 1
    assert 'notebook.setup("10_predict"' in "".join(c.source for c in committed.cells)
    out = tmp_path / "10_predict.ipynb"
    execute(source, out, {"data_dir": str(tiny_corpus), "runs_dir": str(trained["1d"].parent)})
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = {p.stem for p in (notebook_outputs / "figures" / "10_predict").glob("*.png")}
    assert {"held_out_clips", "synthesised_sentence", "long_recording_timeline", "reliability"} <= figures
    markdown = [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
                if "text/markdown" in o.get("data", {})]
    chosen = best_run(trained["1d"].parent).name
    assert any(text.startswith(f"This notebook and `predict` use run {chosen}") for text in markdown)
    assert any("ECE" in text and "test clips" in text for text in markdown)
    closing = executed.cells[-1].outputs[0]["data"]["text/markdown"]
    assert config.SYNTHETIC_LABEL in closing and best_run(trained["1d"].parent).name in closing
