"""The course report's three CNNs (1D, 2D, Combined), their registries and inspection helpers.

Every model follows one constructor contract (as PANNs does), so the training loop, the sweep
and the notebooks never special-case an architecture::

    Model(n_classes=6, activation="relu", dropout_conv=0.3, dropout_head=0.5)

and names the tensors its ``forward`` takes, in order, in the class attribute ``inputs``
(``("x1d",)``, ``("x2d",)`` or ``("x1d", "x2d")``). A later architecture (ResNet38, ...) joins
by subclassing :class:`nn.Module` with that contract and adding itself to
:data:`MODEL_REGISTRY`.

Block layout (report, pseudocode): ``Conv(k=3, p=1) -> GroupNorm -> activation -> MaxPool(2)
-> Dropout(0.3)``, then global average pooling. The report's parameter counts (507,654 /
5,043,270 / 5,739,462 with 6 classes) pin two choices the pseudocode leaves open:

* the convolutions keep their bias (``bias=True``), although a bias right before a
  normalisation is redundant; without it every count would be lower by the sum of the
  channel widths;
* GroupNorm is affine (a scale and a shift per channel, ``2 * C`` parameters).

GroupNorm's parameter count does not depend on the number of groups, so the count cannot pin
it. We use :data:`GROUP_NORM_GROUPS` = 8 for every block: it divides every width (32 ... 1024),
keeps at least 4 channels per group in the narrowest block (32 channels), where 32 groups would
degenerate into InstanceNorm, and it is independent of the batch size, unlike BatchNorm, which
matters for the small last batch and for the per-clip inference in the notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

#: Groups in every GroupNorm (see the module docstring for why 8).
GROUP_NORM_GROUPS = 8

#: Per-clip input shapes, without the batch dimension (27 x 301 features, 1 x 64 x 64 image).
INPUT_SHAPES: dict[str, tuple[int, ...]] = {"x1d": (27, 301), "x2d": (1, 64, 64)}

#: Activation name -> nn.Module factory. Names match ``config.ACTIVATIONS``.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


def get_activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names raise ValueError listing the valid ones."""
    key = str(name).lower()
    if key not in ACTIVATIONS:
        valid = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; valid names: {valid}")
    return ACTIVATIONS[key]()


# --------------------------------------------------------------------------- building blocks
def conv_block(dim: int, c_in: int, c_out: int, activation: str, dropout: float) -> nn.Sequential:
    """Conv(k=3, p=1) -> GroupNorm -> activation -> MaxPool(2) -> Dropout, in 1D or 2D."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[dim]
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d}[dim]
    return nn.Sequential(
        conv(c_in, c_out, kernel_size=3, padding=1, bias=True),
        nn.GroupNorm(GROUP_NORM_GROUPS, c_out),
        get_activation(activation),
        pool(2),
        nn.Dropout(dropout),
    )


def conv_trunk(dim: int, c_in: int, widths: Sequence[int], activation: str, dropout: float) -> nn.Sequential:
    """Stacked conv blocks followed by global average pooling to a [B, widths[-1]] vector."""
    blocks: list[nn.Module] = []
    for c_out in widths:
        blocks.append(conv_block(dim, c_in, c_out, activation, dropout))
        c_in = c_out
    gap = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
    return nn.Sequential(*blocks, gap, nn.Flatten(1))


TRUNK_1D_WIDTHS: tuple[int, ...] = (128, 256, 512)
TRUNK_2D_WIDTHS: tuple[int, ...] = (32, 64, 512, 1024)


# ----------------------------------------------------------------------------- the models
class CNN1D(nn.Module):
    """Three 1D conv blocks (128/256/512) over the 27 x 301 feature matrix, then Linear(512, n)."""

    inputs: tuple[str, ...] = ("x1d",)

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5) -> None:
        super().__init__()
        # dropout_head is accepted for the common contract; the single models have no hidden head.
        self.trunk = conv_trunk(1, INPUT_SHAPES["x1d"][0], TRUNK_1D_WIDTHS, activation, dropout_conv)
        self.classifier = nn.Linear(TRUNK_1D_WIDTHS[-1], n_classes)

    def trunks(self) -> dict[str, nn.Module]:
        """Input name -> the conv trunk that reads it (for :func:`receptive_field`)."""
        return {"x1d": self.trunk}

    def forward(self, x1d: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(x1d))


class CNN2D(nn.Module):
    """Four 2D conv blocks (32/64/512/1024) over the 1 x 64 x 64 log-mel image, then Linear(1024, n)."""

    inputs: tuple[str, ...] = ("x2d",)

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5) -> None:
        super().__init__()
        self.trunk = conv_trunk(2, INPUT_SHAPES["x2d"][0], TRUNK_2D_WIDTHS, activation, dropout_conv)
        self.classifier = nn.Linear(TRUNK_2D_WIDTHS[-1], n_classes)

    def trunks(self) -> dict[str, nn.Module]:
        return {"x2d": self.trunk}

    def forward(self, x2d: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(x2d))


class Combined(nn.Module):
    """Both trunks, concatenated (512 + 1024) -> Linear(1536, 128) -> LayerNorm -> act -> Dropout -> Linear(128, n)."""

    inputs: tuple[str, ...] = ("x1d", "x2d")

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, hidden: int = 128) -> None:
        super().__init__()
        self.trunk1d = conv_trunk(1, INPUT_SHAPES["x1d"][0], TRUNK_1D_WIDTHS, activation, dropout_conv)
        self.trunk2d = conv_trunk(2, INPUT_SHAPES["x2d"][0], TRUNK_2D_WIDTHS, activation, dropout_conv)
        fused = TRUNK_1D_WIDTHS[-1] + TRUNK_2D_WIDTHS[-1]
        self.head = nn.Sequential(
            nn.Linear(fused, hidden),
            nn.LayerNorm(hidden),
            get_activation(activation),
            nn.Dropout(dropout_head),
            nn.Linear(hidden, n_classes),
        )

    def trunks(self) -> dict[str, nn.Module]:
        return {"x1d": self.trunk1d, "x2d": self.trunk2d}

    def forward(self, x1d: torch.Tensor, x2d: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.trunk1d(x1d), self.trunk2d(x2d)], dim=1))


#: Model name (``TrainConfig.model``) -> class. Register later architectures here.
MODEL_REGISTRY: dict[str, type[nn.Module]] = {"1d": CNN1D, "2d": CNN2D, "combined": Combined}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model; unknown names raise ValueError listing the registered ones."""
    if name not in MODEL_REGISTRY:
        valid = ", ".join(MODEL_REGISTRY)
        raise ValueError(f"unknown model {name!r}; registered models: {valid}")
    return MODEL_REGISTRY[name](**kwargs)


# ------------------------------------------------------------------------------ inspection
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


# The alternative architectures of notebook 09 (ResNet38, ResNet-101, combined-varlen,
# combined-mean1d) add themselves to MODEL_REGISTRY; imported last because they build on the
# blocks above.
from ser_utils import models_alt as _models_alt  # noqa: E402,F401
