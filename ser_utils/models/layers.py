"""Building blocks shared by every model, and the input contract between the models and training.

Input contract. Every model follows one constructor contract (as PANNs does), so the training
loop, the sweep and the notebooks never special-case an architecture::

    Model(n_classes=6, activation="relu", dropout_conv=0.3, dropout_head=0.5, **optional)

and names the tensors its ``forward`` takes, in order, in the class attribute ``inputs``. Every
such name is declared once, here, in :data:`INPUT_SHAPES`; the padded variable-length inputs
name their length tensor in :data:`LENGTH_OF`. ``training.TrainingData`` provides the tensors.

Block layout (report, pseudocode): ``Conv(k=3, p=1) -> GroupNorm -> activation -> MaxPool(2)
-> Dropout(0.3)``, then global average pooling. The report gives no parameter counts; the
pseudocode leaves two choices open that change them, and we made both:

* the convolutions keep their bias (``bias=True``, PyTorch's default), although a bias right
  before a normalisation is redundant; without it every count would be lower by the sum of the
  channel widths;
* GroupNorm is affine (a scale and a shift per channel, ``2 * C`` parameters, PyTorch's default).

Under these choices our counts of the pseudocode are 507,654 / 5,043,270 / 5,739,462 with 6
classes (:data:`ser_utils.config.PSEUDOCODE_PARAMETERS`, derived by hand in notebooks 04-06).
GroupNorm's parameter count does not depend on the number of groups. We use :data:`GROUP_NORM_GROUPS` = 8 for every block: it divides every width (32 ... 1024),
keeps at least 4 channels per group in the narrowest block (32 channels), where 32 groups would
degenerate into InstanceNorm, and it is independent of the batch size, unlike BatchNorm, which
matters for the small last batch and for the per-clip inference in the notebooks.

The masked blocks (:class:`MaskedConvBlock`, :class:`MaskedTrunk`) are the same blocks on a
zero-padded batch of variable-length clips, with the same parameters.

Learnable activations (the report's Future Work 5): ``prelu`` (He et al. 2015, one learned
negative slope per activation layer, PyTorch's ``nn.PReLU()``, starting at 0.25) and
``swish-beta`` (Ramachandran et al. 2017, ``x * sigmoid(beta * x)`` with one learned ``beta``
per activation layer, starting at 1, where it equals SiLU). Their parameters live in the
model's ``state_dict``, so a checkpoint restores them with the weights.

Attentive statistics pooling (:class:`AttentiveStatsPool`, Okabe et al. 2018) replaces global
average pooling where a model should learn which frames matter (``1d-attn``, ``2d-attn``, the
transformer): learned weights over time, then the weighted mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------ input contract
#: Per-clip shape of every model input, without the batch dimension; ``None`` marks a variable
#: time axis (a padded batch, with its lengths in the tensor :data:`LENGTH_OF` names), ``()`` a
#: per-clip scalar.
INPUT_SHAPES: dict[str, tuple[int | None, ...]] = {
    "x1d": (27, 301),  # the report's 27 feature rows x 301 frames (3.0 s)
    "x2d": (1, 64, 64),  # the report's log-mel image
    "x1d_avg": (27,),  # the 27 rows averaged over each clip's valid frames (combined-mean1d)
    "x1d_var": (27, None),  # the 27 rows of every frame, un-cropped (combined-varlen)
    "len1d": (),  # valid frames of each clip of x1d_var
    "x2d_var": (1, 64, None),  # the scaled log-mel before resizing (combined-varlen)
    "len2d": (),  # valid frames of each clip of x2d_var
}

#: Names of the padded variable-length inputs and the length tensor each one comes with.
LENGTH_OF: dict[str, str] = {"x1d_var": "len1d", "x2d_var": "len2d"}


def needs_lengths(model: nn.Module | type) -> bool:
    """True when the model reads variable-length (padded + lengths) inputs."""
    return any(name in LENGTH_OF.values() for name in getattr(model, "inputs", ()))


# --------------------------------------------------------------------------- activations
#: Groups in every GroupNorm (see the module docstring for why 8).
GROUP_NORM_GROUPS = 8

class SwishBeta(nn.Module):
    """Swish with a learnable beta: ``x * sigmoid(beta * x)`` (Ramachandran et al. 2017).

    ``beta`` starts at ``beta_init`` (1: SiLU); as beta grows the unit tends to ReLU, at 0 it is
    the linear ``x / 2``. One beta per activation layer, trained with the weights.
    """

    def __init__(self, beta_init: float = 1.0) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(float(beta_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta.to(x.dtype) * x)


#: Activation name -> nn.Module factory. The report's grid (``config.ACTIVATIONS``: relu, silu,
#: elu), then the learnable ones, which the sweep accepts with ``--activations prelu,swish-beta``.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "prelu": nn.PReLU,
    "swish-beta": SwishBeta,
}

#: The activations with parameters of their own.
LEARNABLE_ACTIVATIONS: tuple[str, ...] = ("prelu", "swish-beta")


def get_activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names raise ValueError listing the valid ones."""
    key = str(name).lower()
    if key not in ACTIVATIONS:
        valid = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; valid names: {valid}")
    return ACTIVATIONS[key]()


# ------------------------------------------------------------------------ building blocks
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


def combined_head(fused: int, hidden: int, n_classes: int, activation: str, dropout: float) -> nn.Sequential:
    """The combined models' classification head: Linear -> LayerNorm -> act -> Dropout -> Linear.

    One definition for ``Combined`` and the alternatives built on it, so their heads (and the
    state_dict keys ``head.0``, ``head.1``, ``head.4``) cannot drift apart.
    """
    return nn.Sequential(nn.Linear(fused, hidden), nn.LayerNorm(hidden), get_activation(activation),
                         nn.Dropout(dropout), nn.Linear(hidden, n_classes))


# ------------------------------------------------------------ masked, variable-length blocks
def time_mask(lengths: torch.Tensor, n_frames: int, ndim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B, 1, (1,) T]`` float mask, 1 on the first ``lengths[b]`` frames of clip b (time is the last axis)."""
    mask = torch.arange(n_frames, device=lengths.device)[None, :] < lengths[:, None]
    return mask.reshape(len(lengths), *([1] * (ndim - 2)), n_frames).to(dtype)


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics cover only the valid (mask = 1) positions.

    Same parameters as ``nn.GroupNorm`` (an affine scale and shift per channel), and identical
    output when the mask is all ones. Plain GroupNorm would average over the padding too, so a
    clip's output would depend on how much padding its batch needed.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if mask is None:
            return super().forward(x)
        b, c = x.shape[:2]
        xg = x.float().reshape(b, self.num_groups, -1)  # statistics in float32, also under bf16 autocast
        mg = mask.float().expand_as(x).reshape(b, self.num_groups, -1)
        count = mg.sum(-1, keepdim=True).clamp_min(1.0)
        mean = (xg * mg).sum(-1, keepdim=True) / count
        var = ((xg - mean) * mg).pow(2).sum(-1, keepdim=True) / count
        out = ((xg - mean) / torch.sqrt(var + self.eps)).reshape_as(x)
        if self.affine:
            shape = (1, c) + (1,) * (x.ndim - 2)
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out


class MaskedConvBlock(nn.Module):
    """The report's block (Conv k3 p1 -> GroupNorm -> activation -> MaxPool(2) -> Dropout) on a padded batch.

    Takes and returns ``(x, lengths)``. The input must be zero beyond each clip's length; the
    block keeps that true for the next one: GroupNorm statistics over valid frames only, the
    padded frames zeroed again after the activation and after pooling, and the new length is
    ``floor(length / 2)`` (what MaxPool gives an unpadded clip). Then every valid output equals
    the output for the clip alone: a valid position's receptive field reaches past the clip's
    end only into zeros, which is exactly what the convolution's own zero padding supplies for
    the clip alone.
    """

    def __init__(self, dim: int, c_in: int, c_out: int, activation: str, dropout: float) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[dim]
        pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d}[dim]
        self.conv = conv(c_in, c_out, kernel_size=3, padding=1, bias=True)
        self.norm = MaskedGroupNorm(GROUP_NORM_GROUPS, c_out)
        self.act = get_activation(activation)
        self.pool = pool(2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = time_mask(lengths, x.shape[-1], x.ndim, x.dtype)
        x = self.act(self.norm(self.conv(x), mask)) * mask
        x = self.pool(x)
        lengths = torch.div(lengths, 2, rounding_mode="floor")
        return self.drop(x) * time_mask(lengths, x.shape[-1], x.ndim, x.dtype), lengths


class MaskedTrunk(nn.Module):
    """Masked conv blocks, then global average pooling over the valid frames only: ``[B, widths[-1]]``.

    Clips shorter than ``2 ** len(widths)`` frames (8 for the 1D trunk, 16 for the 2D one) are
    treated as zero-padded to that length, so every clip keeps at least one frame after the last
    pooling. Same parameters as :func:`conv_trunk`.
    """

    def __init__(self, dim: int, c_in: int, widths: Sequence[int], activation: str, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for c_out in widths:
            self.blocks.append(MaskedConvBlock(dim, c_in, c_out, activation, dropout))
            c_in = c_out
        self.min_frames = 2 ** len(widths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(device=x.device, dtype=torch.long).clamp(min=self.min_frames)
        if x.shape[-1] < self.min_frames:
            x = F.pad(x, (0, self.min_frames - x.shape[-1]))
        x = x * time_mask(lengths, x.shape[-1], x.ndim, x.dtype)  # whatever the padding held
        for block in self.blocks:
            x, lengths = block(x, lengths)
        total = x.flatten(2).sum(-1)  # padded frames are zero
        per_frame = x[0, 0].numel() // x.shape[-1]  # frequency rows per frame (1 in 1D)
        return total / (lengths * per_frame).to(x.dtype)[:, None]


# ------------------------------------------------------------------ attentive statistics pooling
class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al. 2018): ``[B, C, T]`` -> ``[B, 2C]``.

    A score per frame, ``v . tanh(W h_t + b)`` (``W``: ``C -> hidden``), softmax over the valid
    frames gives the weights ``alpha_t``; the output is the weighted mean ``sum alpha_t h_t``
    and standard deviation ``sqrt(sum alpha_t h_t^2 - mean^2)``, concatenated. With ``lengths``
    the frames beyond each clip's length get no weight (their score is -inf before the softmax)
    and their values never reach the sums, so the output does not depend on the padding.
    The weights of the last forward pass stay in ``last_weights`` (``[B, T]``, detached) for
    plotting what the pooling attends to.
    """

    def __init__(self, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Conv1d(channels, hidden, kernel_size=1), nn.Tanh(),
                                   nn.Conv1d(hidden, 1, kernel_size=1))
        self.last_weights: torch.Tensor | None = None

    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.score(h).squeeze(1).float()  # [B, T], softmax in float32 also under autocast
        valid = None
        if lengths is not None:
            valid = torch.arange(h.shape[-1], device=h.device)[None, :] < lengths.to(h.device)[:, None]
            scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        x = h.float() if valid is None else h.float().masked_fill(~valid[:, None, :], 0.0)
        mean = (x * weights[:, None, :]).sum(-1)
        var = (x.pow(2) * weights[:, None, :]).sum(-1) - mean.pow(2)
        std = torch.sqrt(var.clamp_min(1e-6))
        self.last_weights = weights.detach()
        return torch.cat([mean, std], dim=1).to(h.dtype)


@torch.no_grad()
def attention_weights(model: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """The weights over time of a model's attentive pooling for a batch, ``[B, T']`` (rows sum to 1).

    Runs ``model(*inputs)`` once in eval mode and returns what its :class:`AttentiveStatsPool`
    recorded; padded frames of a variable-length batch have weight 0. ValueError for a model
    without one.
    """
    pool = attentive_pool(model)
    was_training = model.training
    try:
        model.eval()
        model(*inputs)
    finally:
        model.train(was_training)
    return pool.last_weights.cpu()


def attentive_pool(model: nn.Module) -> AttentiveStatsPool:
    """The model's (last) attentive pooling; ValueError for a model without one."""
    pools = [m for m in model.modules() if isinstance(m, AttentiveStatsPool)]
    if not pools:
        raise ValueError(f"{type(model).__name__} has no attentive pooling (models with one: 1d-attn, 2d-attn, "
                         f"transformer)")
    return pools[-1]
