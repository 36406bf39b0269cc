"""Data augmentation (``--augment``): masks only on training batches, reproducible draws, run ids,
and the wave cache (K copies of training clips only, reused on a second call)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ser_utils import runs, training
from ser_utils.config import SpecAugmentConfig, TrainConfig
from ser_utils.training import augment, batching, checkpoint, runtime
from test_training import make_data, short_cfg


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "usable_cpus", lambda: 1)
        yield


def test_run_id_names_augmentation_and_default_keeps_old_ids():
    assert TrainConfig(model="2d", activation="silu").run_id == "2d-silu-lr0.001"
    assert TrainConfig(model="2d", activation="silu", augment="spec").run_id == "2d-silu-lr0.001-aug-spec"
    assert TrainConfig(model="1d", epochs=4, augment="both").run_id == "1d-relu-lr0.001-e4-aug-both"


def test_a_run_recorded_before_augmentation_existed_is_still_reused(tmp_path):
    run_dir = tmp_path / "1d-relu-lr0.001"
    run_dir.mkdir()
    settings = TrainConfig(model="1d").result_settings()
    old = {k: v for k, v in settings.items() if k != "augment"}
    (run_dir / runs.CONFIG_FILE).write_text(pd.Series(old).to_json())
    assert runs.differences(run_dir, settings) == []
    assert runs.differences(run_dir, {**settings, "augment": "spec"}) == ["augment none -> spec"]


def test_same_seed_gives_the_same_masked_batch_and_masks_change_it():
    inputs = torch.Generator().manual_seed(0)  # fixed inputs: the test's outcome never depends on the draw
    x2d = torch.rand(16, 1, 64, 64, generator=inputs)
    x1d = torch.randn(16, 27, 301, generator=inputs)
    first = augment.spec_augment(("x1d", "x2d"), (x1d, x2d), torch.Generator().manual_seed(7))
    second = augment.spec_augment(("x1d", "x2d"), (x1d, x2d), torch.Generator().manual_seed(7))
    other = augment.spec_augment(("x1d", "x2d"), (x1d, x2d), torch.Generator().manual_seed(8))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    masked_2d, masked_1d = first[1], first[0]
    assert torch.equal(x2d, x2d.clone())  # inputs untouched
    assert (masked_2d == 0).sum() > (x2d == 0).sum() and (masked_1d == 0).sum() > 0
    # 1D: whole frames are masked (all 27 rows together), never a single feature row
    zero_frames = (masked_1d == 0).all(dim=1)
    assert torch.equal((masked_1d == 0).any(dim=1), zero_frames)
    cfg = SpecAugmentConfig()
    assert int(zero_frames.sum(dim=1).max()) <= cfg.time_masks * cfg.time_width_1d


def test_variable_length_inputs_are_masked_within_their_valid_frames():
    lengths = torch.tensor([40, 100, 7])
    x = torch.ones(3, 1, 64, 100)
    (masked, _) = augment.spec_augment(("x2d_var", "len2d"), (x, lengths), torch.Generator().manual_seed(0),
                                       SpecAugmentConfig(freq_masks=0, time_masks=3, time_width_2d=20))
    for row, length in enumerate(lengths.tolist()):
        assert (masked[row, ..., length:] == 1).all()


def test_masks_never_touch_validation_or_test_data(tmp_path, monkeypatch):
    """Training batches go through the masks; the recorded validation loss and the test
    predictions are exactly those of the best checkpoint on the unmasked features."""
    data = make_data()
    seen = []
    original = augment.spec_augment

    def spy(names, inputs, generator, cfg=SpecAugmentConfig()):
        seen.append(len(inputs[0]))
        return original(names, inputs, generator, cfg)

    monkeypatch.setattr(augment, "spec_augment", spy)
    cfg = short_cfg(augment="spec", epochs=2, batch_size=32)
    metrics = training.run(cfg, data, out_dir=tmp_path, progress=False)
    n_train = int((data.split == "train").sum())
    assert sum(seen) == cfg.epochs * n_train  # every training clip once per epoch, nothing else

    model = checkpoint.load_model(tmp_path / cfg.run_id)
    plain = data.standardize()
    tensors = batching.to_device_tensors(plain, model.inputs, torch.device("cpu"))
    y = torch.as_tensor(plain.y)
    val_loss, _, _ = batching.evaluate(model, tensors, y, torch.as_tensor(plain.indices("val")))
    assert val_loss == pytest.approx(metrics["best_val_loss"], rel=1e-5)
    _, _, logits = batching.evaluate(model, tensors, y, torch.as_tensor(plain.indices("test")))
    predictions = pd.read_csv(tmp_path / cfg.run_id / runs.PREDICTIONS_FILE)
    probs = predictions[[f"p_{c}" for c in data.classes]].to_numpy()
    np.testing.assert_allclose(probs, logits.softmax(1).numpy(), atol=1e-5)


def test_spec_runs_are_reproducible_and_differ_from_none(tmp_path):
    data = make_data()
    cfg = short_cfg(augment="spec", epochs=1)
    a = training.run(cfg, data, out_dir=tmp_path / "a", progress=False)
    b = training.run(cfg, data, out_dir=tmp_path / "b", progress=False)
    plain = training.run(short_cfg(epochs=1), data, out_dir=tmp_path / "a", progress=False)
    assert a["run_id"] == "1d-relu-lr0.001-e1-bs32-aug-spec" and a["augment"] == "spec"
    assert a["best_val_loss"] == b["best_val_loss"]
    assert a["best_val_loss"] != plain["best_val_loss"]


def test_unknown_augment_is_refused(tmp_path):
    with pytest.raises(ValueError, match="augment='noise'.*none, spec, wave, both"):
        training.run(short_cfg(augment="noise"), make_data(), out_dir=tmp_path, progress=False)


# ------------------------------------------------------------------ the flag, end to end
def test_sweep_slurm_and_main_job_pass_augment_through(tmp_path, monkeypatch, capsys):
    from ser_utils import cli, pipeline
    from ser_utils.experiments import grid, slurm, sweep

    planned = sweep.plan([{"model": "2d", "activation": "silu", "lr": 0.001, "seed": 42}], tmp_path,
                         {"augment": "spec"}, 150, None, False)
    assert planned[0].run_id == "2d-silu-lr0.001-aug-spec" and planned[0].parameters["augment"] == "spec"
    data = tmp_path / "data"
    data.mkdir()
    text = slurm.sweep_script(1, models="1d", activations="relu", lrs="0.001", data=data, out=tmp_path / "out",
                              augment="wave")
    command = text.split("exec ", 1)[1].replace("\\\n", " ").split()
    args = cli.build_parser().parse_args([a.strip("'\"") for a in command[3:-2]])
    assert args.augment == "wave"
    assert cli.build_parser().parse_args(["sweep"]).augment == "none"
    with pytest.raises(grid.UserError, match="--augment 'mix'"):
        grid.validate(["1d"], ["relu"], [0.001], 1, 64, "random", "mix")

    seen = {}
    monkeypatch.setattr(pipeline, "parallel_sweep", lambda *a, **k: seen.update(k) or (_ for _ in ()).throw(KeyError))
    monkeypatch.setattr(pipeline, "_corpus", lambda prof, data: tmp_path / "corpus")
    monkeypatch.setattr(pipeline, "_write_manifest", lambda data_dir, path: path)
    monkeypatch.setattr(pipeline.discovery, "record_corpus", lambda *args, **kwargs: None)
    monkeypatch.setattr(sweep, "prepare_features", lambda *args, **kwargs: None)
    from ser_utils.experiments import nbexec
    monkeypatch.setattr(nbexec, "execute_notebooks", lambda *a, **k: None)
    with pytest.raises(KeyError):
        pipeline.run_main_job("quick", out=tmp_path / "o", emit=lambda line: None, augment="spec")
    assert seen["sweep_args"] == ["--augment", "spec"]


# ------------------------------------------------------------------ waveform augmentation
def test_waveform_augmentations_do_what_they_say():
    from ser_utils.data import augment as wave

    rng = np.random.default_rng(0)
    signal = np.sin(np.arange(16000) * 2 * np.pi * 200 / 16000).astype(np.float32)
    assert len(wave.speed(signal, 1.1)) == pytest.approx(16000 / 1.1, abs=2)
    assert len(wave.speed(signal, 0.9)) == pytest.approx(16000 / 0.9, abs=2)
    noise = wave.coloured_noise(16000, 0.0, rng)
    noisy = wave.add_at_snr(signal, noise, 10.0)
    snr = 10 * np.log10(np.mean(signal ** 2) / np.mean((noisy - signal) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)
    spectrum = np.abs(np.fft.rfft(wave.coloured_noise(1 << 15, 2.0, rng))) ** 2
    assert spectrum[10:100].mean() > 100 * spectrum[5000:6000].mean()  # brown: power falls with frequency
    bank = wave.NoiseBank.from_pieces([("a.wav", np.ones(2000, np.float32)), ("b.wav", noise[:3000])])
    drawn = bank.draw(5000, rng, exclude="a.wav")
    assert len(drawn) == 5000 and np.std(drawn) > 0.5  # never a's (constant) piece
    assert bank.draw(10, rng, exclude="") is not None and wave.NoiseBank.from_pieces([]).draw(10, rng) is None
    first, facts = wave.augment_wave(signal, wave.clip_rng(42, 1, "x.wav"), bank=bank, source="a.wav")
    again, _ = wave.augment_wave(signal, wave.clip_rng(42, 1, "x.wav"), bank=bank, source="a.wav")
    assert np.array_equal(first, again) and facts["speed"] in (0.9, 1.0, 1.1)


@pytest.fixture(scope="module")
def small_features(tiny_corpus, tmp_path_factory):
    from ser_utils import features
    from ser_utils.data import dataset

    clips, _ = dataset.scan(tiny_corpus)
    clips = clips.sort_values("path").iloc[::12].reset_index(drop=True)  # ~20 clips of every actor
    return features.extract(clips, cache_root=tmp_path_factory.mktemp("features"), jobs=1, progress=False)


def test_wave_cache_holds_k_copies_of_training_clips_only_and_is_reused(small_features, tmp_path):
    from ser_utils.config import WaveAugmentConfig
    from ser_utils.features import wave_cache

    rows = np.arange(0, len(small_features), 2)  # "training" clips; the others must never be touched
    cfg = WaveAugmentConfig(copies=2, bank_clips=6)
    first = wave_cache.augmented_copies(small_features, rows, cfg, cache_root=tmp_path, jobs=1, progress=False)
    listed = pd.read_csv(first.cache_dir / "clips.csv")["path"]
    expected = {wave_cache.copy_name(p, k) for p in first.paths for k in range(2)}
    assert set(listed) | set(first.skipped["path"]) == expected  # K copies of exactly the training clips
    assert first.x1d.shape == (2, len(rows), 27, 301) and first.x2d.shape == (2, len(rows), 1, 64, 64)
    assert first.augmented.all() and not first.from_cache
    plain = np.asarray(small_features.x2d[rows])
    assert not np.allclose(first.x2d[0], plain) and not np.allclose(first.x2d[0], first.x2d[1])
    again = wave_cache.augmented_copies(small_features, rows, cfg, cache_root=tmp_path, jobs=1, progress=False)
    assert again.from_cache and again.key == first.key and np.array_equal(again.x1d, first.x1d)
    other = wave_cache.wave_key(first.paths, WaveAugmentConfig(copies=3), 42, *_configs())
    assert other != first.key  # another number of copies is another cache


def _configs():
    from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig

    return PreprocessConfig(), Feature1DConfig(), Feature2DConfig()


def test_a_wave_run_trains_on_copies_and_evaluates_the_plain_features(small_features, tmp_path, monkeypatch):
    from ser_utils.config import WaveAugmentConfig
    from ser_utils.training import data as training_data

    monkeypatch.setattr(augment, "WAVE_CONFIG", WaveAugmentConfig(copies=2, bank_clips=4))
    data = training_data.TrainingData.from_manifest(
        small_features.manifest.assign(split=np.resize(["train", "train", "val", "test"], len(small_features))),
        small_features.x1d, small_features.x2d)
    data.features = small_features
    cfg = short_cfg(augment="wave", epochs=2, batch_size=8)
    applied = []
    original = augment.WaveDraw.apply
    monkeypatch.setattr(augment.WaveDraw, "apply", lambda self, t: applied.append(self.rows.clone()) or original(self, t))
    metrics = training.run(cfg, data, out_dir=tmp_path, progress=False)
    assert metrics["run_id"].endswith("-aug-wave") and metrics["wave_cache"]
    assert len(applied) == 2 and set(applied[0].tolist()) == set(data.indices("train").tolist())
    model = checkpoint.load_model(tmp_path / cfg.run_id)
    plain = data.standardize()
    tensors = batching.to_device_tensors(plain, model.inputs, torch.device("cpu"))
    _, _, logits = batching.evaluate(model, tensors, torch.tensor(plain.y), torch.as_tensor(plain.indices("test")))
    probs = pd.read_csv(tmp_path / cfg.run_id / runs.PREDICTIONS_FILE)[[f"p_{c}" for c in data.classes]].to_numpy()
    np.testing.assert_allclose(probs, logits.softmax(1).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="use augment='spec'"):
        training.run(short_cfg(model="combined-varlen", augment="wave"), data, out_dir=tmp_path, progress=False)


def test_the_report_tables_leave_augmented_runs_out():
    from ser_utils import analysis

    rows = [{"run_id": "2d-silu-lr0.001", "model": "2d", "activation": "silu", "lr": 0.001, "augment": "none",
             "status": "complete", "accuracy": 0.5},
            {"run_id": "2d-silu-lr0.001-aug-spec", "model": "2d", "activation": "silu", "lr": 0.001,
             "augment": "spec", "status": "complete", "accuracy": 0.7}]
    results = pd.DataFrame(rows).reindex(columns=runs.RESULT_COLUMNS)
    assert list(analysis.best_per_model(results)["run_id"]) == ["2d-silu-lr0.001"]
