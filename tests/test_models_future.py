"""Notebook 12's models and the learnable activations: parameter counts, the constructor contract,
attentive pooling and the transformer unchanged by padding, learnable activations that train and
come back from a checkpoint, and a short training run of each new model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ser_utils import config, models, training
from ser_utils.experiments import grid
from ser_utils.models.layers import AttentiveStatsPool, SwishBeta
from ser_utils.training import checkpoint, runtime

from test_training import make_data, short_cfg

NEW_MODELS = ["1d-attn", "2d-attn", "transformer"]
#: Trainable parameters with 6 classes, measured (the arithmetic is in the models' docstrings).
PARAMETERS = {"1d-attn": 576_519, "2d-attn": 5_180_743, "transformer": 3_442_439}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runtime, "usable_cpus", lambda: 1)
        torch.set_num_threads(1)
        yield


def random_mels(lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand((64, n), generator=gen).numpy() for n in lengths]


# ----------------------------------------------------------------- counts and the contract
@pytest.mark.parametrize("name", NEW_MODELS)
def test_parameter_counts_and_registry(name):
    model = models.build_model(name)
    assert models.count_parameters(model) == PARAMETERS[name]
    assert name in models.ATTENTION_MODELS and name in models.describe([name])["model"].tolist()


@pytest.mark.parametrize("name", NEW_MODELS)
@pytest.mark.parametrize("activation", ["elu", "prelu", "swish-beta"])
def test_constructor_contract_and_every_activation(name, activation):
    model = models.build_model(name, n_classes=4, activation=activation, dropout_conv=0.1, dropout_head=0.2).eval()
    kind = {"elu": nn.ELU, "prelu": nn.PReLU, "swish-beta": SwishBeta}[activation]
    assert any(isinstance(m, kind) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())  # the activation reaches every layer
    out = model(*models.example_inputs(model, batch_size=3))
    assert out.shape == (3, 4) and torch.isfinite(out).all()


def test_swish_beta_starts_as_silu_and_its_beta_shapes_it():
    x = torch.linspace(-4, 4, 41)
    act = models.get_activation("swish-beta")
    torch.testing.assert_close(act(x), F.silu(x))
    with torch.no_grad():
        act.beta.fill_(20.0)
    torch.testing.assert_close(act(x), F.relu(x), atol=0.015, rtol=0)  # |x sigmoid(bx) - relu(x)| <= 0.28 / b


# ------------------------------------------------------------------ attention and padding
def test_attentive_pooling_ignores_padding_and_its_weights_sum_to_one():
    torch.manual_seed(0)
    pool = AttentiveStatsPool(8, hidden=4)
    clips = [torch.randn(8, n) for n in (7, 12, 3)]
    padded = torch.zeros(3, 8, 20)
    padded[:, :, :] = 99.0  # whatever the padding holds
    for i, c in enumerate(clips):
        padded[i, :, :c.shape[1]] = c
    lengths = torch.tensor([c.shape[1] for c in clips])
    batched = pool(padded, lengths)
    weights = pool.last_weights
    alone = torch.cat([pool(c[None]) for c in clips])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert (weights[0, 7:] == 0).all() and (weights[2, 3:] == 0).all()
    # weighted mean and std: equal scores give the plain mean and the population std
    flat = AttentiveStatsPool(8, hidden=4)
    nn.init.zeros_(flat.score[2].weight)
    out = flat(clips[1][None])
    torch.testing.assert_close(out[0, :8], clips[1].mean(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0, 8:], clips[1].std(1, unbiased=False), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "swish-beta"])
def test_transformer_is_padding_invariant(activation):
    torch.manual_seed(0)
    model = models.build_model("transformer", activation=activation)
    mels = random_mels([188, 97, 31, 150, 3])
    moved = models.padding_invariance(model, None, mels, extra=45)
    assert max(moved.values()) < 1e-4, moved


def test_transformer_differs_from_a_model_that_reads_the_padding():
    """The check can fail: without the masks the same clips move with padding."""
    torch.manual_seed(0)
    model = models.build_model("transformer").eval()
    mel = torch.as_tensor(random_mels([60])[0])
    short = model(mel[None, None], torch.tensor([60]))
    padded = F.pad(mel, (0, 40), value=1.0)[None, None]
    assert torch.allclose(model(padded, torch.tensor([60])), short, atol=1e-4)  # masked: padding ignored
    assert not torch.allclose(model(padded, torch.tensor([100])), short, atol=1e-4)  # read as frames: differs


@pytest.mark.parametrize("name,steps", [("1d-attn", 37), ("2d-attn", 4), ("transformer", 47)])
def test_attention_weights_over_time(name, steps):
    torch.manual_seed(0)
    model = models.build_model(name)
    inputs = models.example_inputs(model, batch_size=2)
    weights = models.attention_weights(model, *inputs)
    assert weights.shape == (2, steps) and model.training  # mode restored
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    if name == "transformer":  # the second clip is 163 frames: 41 tokens, the rest padding
        assert (weights[1, 41:] == 0).all() and (weights[1, :41] > 0).all()
    with pytest.raises(ValueError, match="no attentive pooling"):
        models.attention_weights(models.build_model("1d"), *models.example_inputs(models.build_model("1d")))


@pytest.mark.parametrize("name", ["1d-attn", "2d-attn"])
def test_attention_cnns_give_a_clip_the_same_output_alone_or_batched(name):
    torch.manual_seed(0)
    model = models.build_model(name).eval()
    inputs = models.example_inputs(model, batch_size=4)
    with torch.no_grad():
        together = model(*inputs)
        alone = torch.cat([model(*(t[i:i + 1] for t in inputs)) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------- learnable activations train
def learnable_values(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in model.modules() if isinstance(m, (nn.PReLU, SwishBeta))
                      for p in m.parameters()])


@pytest.mark.parametrize("activation,start", [("prelu", 0.25), ("swish-beta", 1.0)])
def test_learnable_activation_trains_and_comes_back_from_the_checkpoint(activation, start, tmp_path):
    data = make_data(96)
    cfg = short_cfg(activation=activation, epochs=2)
    metrics = training.run(cfg, data, out_dir=tmp_path, progress=False)
    assert metrics["status"] == "complete" and cfg.run_id.startswith(f"1d-{activation}-")
    run_dir = tmp_path / cfg.run_id
    model = checkpoint.load_model(run_dir)
    values = learnable_values(model)
    assert len(values) == 3  # one per conv block
    assert (values - start).abs().max() > 1e-4, "the activation's parameter did not move"
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    saved = [v for k, v in ckpt["state_dict"].items() if k.endswith((".weight", ".beta")) and v.numel() == 1]
    torch.testing.assert_close(torch.stack(saved).flatten(), values)
    preds = pd.read_csv(run_dir / "predictions.csv")
    probs = checkpoint.predict(model, data, preds["index"].to_numpy(), device="cpu")
    np.testing.assert_allclose(probs, preds[[f"p_{c}" for c in config.EMOTIONS]].to_numpy(), atol=1e-5)


def test_sweep_grid_accepts_the_learnable_activations_and_names_them_when_wrong():
    grid.validate(["2d-attn", "transformer"], ["silu", "prelu", "swish-beta"], [0.001], 1, 32, "random")
    configs = grid.configurations(models=["2d-attn", "transformer"], activations=["silu", "prelu"])
    assert {(c["model"], c["activation"]) for c in configs} == {(m, a) for m in ("2d-attn", "transformer")
                                                        for a in ("silu", "prelu")}
    with pytest.raises(Exception, match="prelu, swish-beta"):
        grid.validate(["2d"], ["swish"], [0.001], 1, 32, "random")
