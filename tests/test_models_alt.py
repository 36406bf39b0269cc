"""Notebook 09's alternatives: parameter counts, the constructor contract, padding invariance of the
variable-length model, the mean-1D adaptation, PANNs checkpoint loading, and short training runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ser_utils import config, models, runs, training
from ser_utils.experiments import grid
from ser_utils.training import batching, checkpoint as inference, data as training_data
from ser_utils.models import alternatives, registry
from ser_utils.models.alternatives import CombinedVarLen
from ser_utils.models.layers import MaskedGroupNorm, time_mask

ALTERNATIVES = ["resnet38", "resnet101", "combined-varlen", "combined-mean1d"]
#: Trainable parameters with 6 classes, measured (see the models' docstrings for the arithmetic).
PARAMETERS = {"resnet38": 72_715_718, "resnet101": 42_506_182, "combined-varlen": 5_739_462,
              "combined-mean1d": 5_305_798}


@pytest.fixture(scope="module")
def built() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: models.build_model(name).eval() for name in ALTERNATIVES}


# ----------------------------------------------------------------- counts and shapes
@pytest.mark.parametrize("name", ALTERNATIVES)
def test_parameter_counts(built, name):
    assert models.count_parameters(built[name]) == PARAMETERS[name]


def test_resnet38_matches_panns_count_with_527_classes():
    """PANNs' ResNet38 (527 AudioSet classes): 73,783,247 parameters (the paper's "73.7 M")."""
    ours = PARAMETERS["resnet38"]
    assert ours - 2048 * 6 - 6 + 2048 * 527 + 527 == 73_783_247


def test_resnet101_is_torchvision_resnet101_with_one_channel(built):
    """torchvision's resnet101() has 44,549,160 parameters (3 channels, 1,000 classes)."""
    assert PARAMETERS["resnet101"] - 7 * 7 * 64 * 1 + 7 * 7 * 64 * 3 - 2048 * 6 - 6 + 2048 * 1000 + 1000 == 44_549_160
    blocks = [len(getattr(built["resnet101"], f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 4, 23, 3]


def test_combined_varlen_has_the_combined_models_parameters():
    assert PARAMETERS["combined-varlen"] == config.PSEUDOCODE_PARAMETERS["combined"]


@pytest.mark.parametrize("name", ["resnet38", "resnet101"])
@pytest.mark.parametrize("frames", [64, 100, 20])
def test_resnets_read_the_image_and_unresized_logmel(built, name, frames):
    x = torch.rand(2, 1, 64, frames)
    with torch.no_grad():
        out = built[name](x)
    assert out.shape == (2, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALTERNATIVES)
def test_registered_and_accepted_by_the_sweep(name):
    assert name in registry.ALTERNATIVES and models.MODEL_REGISTRY[name].__module__ == alternatives.__name__
    grid.validate([name], ["relu"], [0.001], 1, 64, "random")  # what the sweep checks first; raises if unknown
    assert config.TrainConfig(model=name).run_id == f"{name}-relu-lr0.001"


@pytest.mark.parametrize("name", ALTERNATIVES)
def test_constructor_contract(name):
    model = models.MODEL_REGISTRY[name](n_classes=4, activation="elu", dropout_conv=0.1, dropout_head=0.2)
    with torch.no_grad():
        assert model.eval()(*models.example_inputs(model)).shape == (1, 4)
    drops = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert {0.1, 0.2} <= drops <= {0.1, 0.2}
    assert any(isinstance(m, nn.ELU) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert isinstance(model.inputs, tuple) and model.inputs


def test_inputs_name_the_tensors_training_data_provides():
    assert alternatives.ResNet38.inputs == ("x2d",) and alternatives.ResNet101.inputs == ("x2d",)
    assert CombinedVarLen.inputs == ("x1d_var", "len1d", "x2d_var", "len2d")
    assert alternatives.CombinedMean1D.inputs == ("x1d_avg", "x2d")
    fields = set(training_data.TrainingData.__dataclass_fields__)
    for cls in (models.MODEL_REGISTRY[name] for name in registry.ALTERNATIVES):
        assert set(cls.inputs) <= fields


def test_layer_table_and_cost_work_for_every_alternative(built):
    for name in ["combined-varlen", "combined-mean1d"]:
        table = models.layer_table(built[name])
        assert len(table) > 10 and table["parameters"].sum() == PARAMETERS[name]
        assert models.cost_per_sample(built[name])["macs"] > 0


# ------------------------------------------------------------------ variable length
def test_masked_groupnorm_equals_groupnorm_without_padding():
    torch.manual_seed(0)
    ours, ref = MaskedGroupNorm(8, 32), nn.GroupNorm(8, 32)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 32, 40)
    full = torch.ones(3, 1, 40)
    torch.testing.assert_close(ours(x, full), ref(x), atol=1e-5, rtol=1e-5)
    # statistics ignore padding: a clip padded with garbage normalises like the clip alone
    padded = torch.cat([x, 100 * torch.randn(3, 32, 25)], dim=-1)
    mask = time_mask(torch.tensor([40, 40, 40]), 65, 3)
    torch.testing.assert_close(ours(padded, mask)[..., :40], ref(x), atol=1e-5, rtol=1e-5)


def test_varlen_output_does_not_change_with_more_padding():
    torch.manual_seed(0)
    model = CombinedVarLen(activation="silu").eval()  # silu: negative outputs, so zeroing matters
    len1d, len2d = torch.tensor([97, 80, 33, 5]), torch.tensor([61, 50, 21, 3])
    x1d = torch.randn(4, 27, 97) * time_mask(len1d, 97, 3)
    x2d = torch.rand(4, 1, 64, 61) * time_mask(len2d, 61, 4)
    with torch.no_grad():
        base = model(x1d, len1d, x2d, len2d)
        more = model(F.pad(x1d, (0, 77)), len1d, F.pad(x2d, (0, 51)), len2d)
        junk = model(F.pad(x1d, (0, 9), value=7.0), len1d, F.pad(x2d, (0, 13), value=3.0), len2d)
        alone = torch.cat([model(x1d[i:i + 1, :, :len1d[i]], len1d[i:i + 1], x2d[i:i + 1, ..., :len2d[i]],
                                 len2d[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(more, base, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(junk, base, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, base, atol=1e-5, rtol=1e-5)


def test_varlen_output_depends_on_the_valid_frames():
    torch.manual_seed(0)
    model = CombinedVarLen().eval()
    x1d, len1d, x2d, len2d = CombinedVarLen.example_inputs(1)
    changed = x2d.clone()
    changed[..., 100] += 1.0  # inside the clip (188 frames)
    with torch.no_grad():
        assert not torch.allclose(model(x1d, len1d, x2d, len2d), model(x1d, len1d, changed, len2d))


# --------------------------------------------------------------------------- mean 1D
def test_mean1d_replaces_the_1d_cnn_by_an_mlp_keeping_512_plus_1024():
    model = models.build_model("combined-mean1d")
    assert not any(isinstance(m, nn.Conv1d) for m in model.modules())
    assert model.mlp1d[0].in_features == 27 and model.mlp1d[4].out_features == 512
    assert model.head[0].in_features == 512 + 1024
    combined = models.build_model("combined")
    assert models.count_parameters(model.trunk2d) == models.count_parameters(combined.trunk2d)
    assert models.count_parameters(model.head) == models.count_parameters(combined.head)


def test_x1d_avg_is_the_mean_over_valid_frames_standardised_on_train():
    rng = np.random.default_rng(0)
    n = 12
    lengths = rng.integers(40, 120, n)
    x1d_var = np.zeros((n, 27, 120), np.float32)
    for i, t in enumerate(lengths):
        x1d_var[i, :, :t] = rng.normal(5, 2, (27, t))
    data = training_data.TrainingData(None, rng.random((n, 1, 64, 64), dtype=np.float32), np.arange(n) % 6,
                                 ["train"] * 8 + ["val"] * 2 + ["test"] * 2, x1d_var=x1d_var, len1d=lengths)
    with_avg = data.with_inputs(("x1d_avg", "x2d"))
    expected = np.stack([x1d_var[i, :, :t].mean(axis=1) for i, t in enumerate(lengths)])
    np.testing.assert_allclose(with_avg.x1d_avg, expected, rtol=1e-5)
    std = with_avg.standardize()
    train = std.x1d_avg[std.split == "train"]
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-3)


# -------------------------------------------------------------------------- PANNs
def test_missing_pretrained_path_names_the_file(tmp_path):
    missing = tmp_path / "ResNet38_mAP=0.434.pth"
    with pytest.raises(FileNotFoundError, match="ResNet38_mAP=0.434.pth"):
        models.build_model("resnet38", pretrained_path=missing)


def test_panns_checkpoint_loads_by_name_skipping_extractor_bn0_and_output(tmp_path, built):
    torch.manual_seed(1)
    source = built["resnet38"].state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in source.items() if k != "fc_out.weight"}
    state.pop("fc_out.bias")
    state["fc_audioset.weight"], state["fc_audioset.bias"] = torch.randn(527, 2048), torch.randn(527)
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(513, 1, 1024)
    path = tmp_path / "panns.pth"
    torch.save({"model": state}, path)

    model = models.build_model("resnet38", pretrained_path=path)
    own = model.state_dict()
    torch.testing.assert_close(own["resnet.layer3.0.conv1.weight"], state["resnet.layer3.0.conv1.weight"])
    torch.testing.assert_close(own["conv_block_after1.bn2.running_var"], state["conv_block_after1.bn2.running_var"])
    assert not torch.equal(own["bn0.weight"], state["bn0.weight"])
    report = model.pretrained
    assert "fc_audioset.weight" in report["skipped"] and "bn0.weight" in report["skipped"]
    assert set(report["missing"]) >= {"fc_out.weight", "fc_out.bias", "bn0.weight"}

    torch.save({"model": {"unrelated.weight": torch.zeros(3)}}, path)
    with pytest.raises(ValueError, match="PANNs ResNet38"):
        models.build_model("resnet38", pretrained_path=path)


# ---------------------------------------------------------------------- training
def tiny_data(n: int = 18, seed: int = 0) -> training_data.TrainingData:
    """Random fixed and variable-length features with lengths: n - 6 training, 3 validation, 3 test clips."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 6
    len1d = rng.integers(40, 140, n)
    len2d = (len1d * 160) // 256 + 1
    x1d_var = np.zeros((n, 27, len1d.max()), np.float32)
    x2d_var = np.zeros((n, 1, 64, len2d.max()), np.float32)
    for i in range(n):
        x1d_var[i, :, :len1d[i]] = rng.normal(3, 2, (27, len1d[i]))
        x2d_var[i, ..., :len2d[i]] = rng.random((1, 64, len2d[i]))
    split = ["train"] * (n - 6) + ["val"] * 3 + ["test"] * 3
    return training_data.TrainingData(rng.normal(3, 2, (n, 27, 301)).astype(np.float32),
                                 rng.random((n, 1, 64, 64), dtype=np.float32), y, split, corpus="synthetic",
                                 split_method="random", x1d_var=x1d_var, len1d=len1d, x2d_var=x2d_var, len2d=len2d)


def test_length_batches_cover_each_clip_once_and_bucket_by_length():
    lengths = torch.randint(10, 500, (1000,))
    idx = torch.arange(100, 900)
    batches = batching.length_batches(idx, lengths, 16, torch.Generator().manual_seed(0), chunk_batches=10)
    assert sorted(torch.cat(batches).tolist()) == idx.tolist()
    assert sum(len(b) < 16 for b in batches) == 0  # 800 = 50 x 16
    spread = np.mean([int(lengths[b].max() - lengths[b].min()) for b in batches])
    assert spread < 0.25 * 490  # sorted within chunks of 160: far less spread than random batches
    again = batching.length_batches(idx, lengths, 16, torch.Generator().manual_seed(0), chunk_batches=10)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_batches_are_padded_to_their_own_longest_clip():
    data = tiny_data()
    model = models.build_model("combined-varlen")
    tensors = batching.to_device_tensors(data, model.inputs, torch.device("cpu"))
    assert tensors["len1d"].dtype == torch.long
    batch = torch.tensor([0, 3])
    x1d, len1d, x2d, len2d = batching.batch_inputs(model, tensors, batch)
    assert x1d.shape[-1] == int(data.len1d[[0, 3]].max()) and x2d.shape[-1] == int(data.len2d[[0, 3]].max())


def check_run(out, cfg, data, metrics):
    assert metrics["status"] == "complete" and metrics["n_params"] == PARAMETERS[cfg.model]
    assert math.isfinite(metrics["test_loss"]) and 0 <= metrics["accuracy"] <= 1
    summary = runs.run_summary(out / cfg.run_id, source="test")
    assert summary["model"] == cfg.model and summary["time_per_epoch_s"] > 0 and summary["family"] == "alternative"
    assert math.isfinite(summary["gap_acc"]) and summary["label"] == f"{cfg.run_id} (test)"
    model = inference.load_model(out / cfg.run_id)
    test = data.indices("test")
    probs = inference.predict(model, data, idx=test, device="cpu")
    assert probs.shape == (len(test), 6) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    saved = runs.load_run(out / cfg.run_id)["predictions"]
    np.testing.assert_allclose(probs, saved[[f"p_{c}" for c in config.EMOTIONS]].to_numpy(), atol=1e-4)


@pytest.mark.parametrize("name,n_clips,batch_size", [("combined-mean1d", 18, 4), ("resnet101", 10, 2),
                                                     ("resnet38", 10, 2)])
def test_one_short_run_of_each_alternative(tmp_path, name, n_clips, batch_size):
    data = tiny_data(n_clips)
    cfg = config.TrainConfig(model=name, epochs=1, batch_size=batch_size, device="cpu")
    check_run(tmp_path, cfg, data, training.run(cfg, data, out_dir=tmp_path, progress=False))


def test_a_varlen_run_is_deterministic_on_cpu_and_reloads(tmp_path):
    data = tiny_data()
    cfg = config.TrainConfig(model="combined-varlen", epochs=1, batch_size=4, device="cpu")
    a = training.run(cfg, data, out_dir=tmp_path / "a", progress=False)
    b = training.run(cfg, data, out_dir=tmp_path / "b", progress=False)
    assert a["test_loss"] == b["test_loss"] and a["accuracy"] == b["accuracy"]
    check_run(tmp_path / "a", cfg, data, a)


def test_limit_train_keeps_validation_and_test():
    data = tiny_data()
    small = data.limit_train(5, seed=0)
    assert (small.split == "train").sum() == 5
    assert (small.split == "val").sum() == 3 and (small.split == "test").sum() == 3
    assert small.x1d_var.shape[0] == small.len1d.shape[0] == 11


@pytest.mark.slow
def test_the_sweep_trains_the_alternatives_through_notebook_07(tmp_path, tiny_corpus):
    """combined-varlen and combined-mean1d (the ones that need new inputs) through papermill, 1 epoch."""
    from ser_utils.experiments import sweep

    result = sweep.run_sweep(tiny_corpus, tmp_path / "out", models="combined-varlen,combined-mean1d",
                             activations=["relu"], lrs=[0.001], epochs=1, batch_size=32, device="cpu",
                             features_dir=tmp_path / "features", progress=False, emit=lambda line: None)
    assert result.ok, result.errors
    results = runs.collect_results(tmp_path / "out" / "runs")
    assert set(results["model"]) == {"combined-varlen", "combined-mean1d"}
    assert (results["status"] == "complete").all()
