"""Inspecting a model: parameters, per-layer shapes, receptive field, cost, and the overview table.

These are what the notebooks show next to each architecture (report tables 2-4, notebook 09's
overview); they work on any model that follows the input contract of
:mod:`ser_utils.models.layers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from ser_utils.models.layers import INPUT_SHAPES
from ser_utils.models.registry import ALTERNATIVES, build_model

#: What each registered model reads, in words (the "input" column of :func:`describe`).
INPUT_DESCRIPTIONS: dict[str, str] = {
    "1d": "frames [27, 301]",
    "2d": "log-mel image [1, 64, 64]",
    "combined": "frames [27, 301], log-mel image [1, 64, 64]",
    "resnet38": "log-mel image [1, 64, 64]",
    "resnet101": "log-mel image [1, 64, 64]",
    "combined-varlen": "frames [27, T'] + log-mel [1, 64, T], un-cropped, un-resized (masked)",
    "combined-mean1d": "27 time-averaged features + log-mel image [1, 64, 64]",
    "1d-attn": "frames [27, 301] (attentive pooling)",
    "2d-attn": "log-mel image [1, 64, 64] (attentive pooling)",
    "transformer": "log-mel [1, 64, T], un-resized (masked)",
}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, the figure the report quotes."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def example_inputs(model: nn.Module, batch_size: int = 1,
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Random tensors of the right shapes for ``model(*example_inputs(model))``."""
    gen = torch.Generator().manual_seed(0)
    if hasattr(model, "example_inputs"):  # models with non-image inputs (lengths) make their own
        return tuple(t.to(device) for t in model.example_inputs(batch_size, gen))
    return tuple(torch.rand((batch_size, *INPUT_SHAPES[name]), generator=gen).to(device)
                 for name in model.inputs)


def _as_tuple(inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)


def layer_table(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor] | None = None) -> pd.DataFrame:
    """One row per leaf layer in execution order: layer name, type, output shape, parameters.

    Recorded with forward hooks during one forward pass in eval mode, so shapes are the real
    ones (including the pooling arithmetic, e.g. 301 -> 150 -> 75 -> 37 frames).
    """
    inputs = example_inputs(model) if inputs is None else _as_tuple(inputs)
    rows: list[dict[str, Any]] = []

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, _inp: Any, out: Any) -> None:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            n_params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append({"layer": name, "type": type(module).__name__,
                         "output_shape": shape, "parameters": n_params})
        return hook

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    handles = [m.register_forward_hook(hook_for(n)) for n, m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(*inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return pd.DataFrame(rows, columns=["layer", "type", "output_shape", "parameters"])


def _rf_of_sequence(module: nn.Module) -> tuple[int, int]:
    """Receptive field and jump (stride product) of the convs/pools in ``module``, in order."""
    rf, jump = 1, 1
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            d = m.dilation if isinstance(m.dilation, int) else m.dilation[0]
            rf += (d * (k - 1)) * jump
            jump *= s
    return rf, jump


def receptive_field(model: nn.Module) -> dict[str, dict[str, int]]:
    """Theoretical receptive field of the last conv block, per input, in input frames/pixels.

    Walks the conv and pooling layers of each trunk (modules in registration order, which is
    execution order for these sequential trunks). Global average pooling then mixes all
    positions, so this is the span one pre-pooling feature sees, e.g. 22 of the 301 frames
    (0.22 s at a 10 ms hop) for the 1D trunk and 46 x 46 of the 64 x 64 pixels for the 2D one.
    Returns ``{input: {"receptive_field": rf, "stride": jump}}``.
    """
    trunks = model.trunks() if hasattr(model, "trunks") else {model.inputs[0]: model}
    out = {}
    for name, trunk in trunks.items():
        rf, jump = _rf_of_sequence(trunk)
        out[name] = {"receptive_field": rf, "stride": jump}
    return out


def cost_per_sample(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor] | None = None) -> dict[str, float]:
    """Forward FLOPs and MACs for one clip, counted by ``torch.utils.flop_counter.FlopCounterMode``.

    The counter covers convolutions and matrix products (which dominate); normalisation,
    activations and pooling are not counted. MACs = FLOPs / 2.
    """
    from torch.utils.flop_counter import FlopCounterMode

    inputs = example_inputs(model) if inputs is None else _as_tuple(inputs)
    batch = inputs[0].shape[0]
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        model.train(was_training)
    flops = counter.get_total_flops() / batch
    return {"flops": float(flops), "macs": float(flops / 2)}


def describe(names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per model: name, what it reads, trainable parameters and forward cost per clip (MACs).

    ``names`` defaults to the report's three models followed by the alternatives.
    """
    from ser_utils import config  # the report's model names; config imports nothing of ours

    rows = []
    for name in names or [*config.MODELS, *ALTERNATIVES]:
        model = build_model(name)
        rows.append({"model": name, "input": INPUT_DESCRIPTIONS.get(name, ", ".join(model.inputs)),
                     "parameters": count_parameters(model),
                     "MMAC per clip": round(cost_per_sample(model)["macs"] / 1e6, 1)})
    return pd.DataFrame(rows)
