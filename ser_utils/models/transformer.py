"""A small audio transformer on the un-resized log-mel frames (the report's Future Work 2).

The report's CNNs see a clip as a fixed 64 x 64 image (its time axis squeezed to 64 columns
whatever the clip's length) or 3 s of frames; a transformer reads the clip's frames as a
sequence, as long as the clip is, and lets every frame attend to every other one. Layout (in
the spirit of the conformer/AST front ends, kept small for about 5,000 training clips):

* **stem**: two 1D convolutions over time (kernel 3, stride 2, the 64 mel bins as channels,
  64 -> 256 -> 256, each followed by the activation), so 16 ms frames become 64 ms tokens and
  a 5 s clip is about 80 tokens;
* sinusoidal positions (no learned table, so any length works), LayerNorm, dropout;
* **encoder**: 4 pre-norm ``nn.TransformerEncoderLayer`` (4 heads, 256 wide, feed-forward 1024,
  the configurable activation), then a LayerNorm;
* **attentive statistics pooling** over the tokens, dropout, ``Linear(512, n_classes)``.

3,442,439 trainable parameters with 6 classes (pinned by tests/test_models_future.py).

Input ``x2d_var`` ``[B, 1, 64, T]`` (the scaled log-mel before resizing, the input
``combined-varlen`` reads) with ``len2d`` ``[B]``: a batch is zero-padded to its longest clip.
Padding never changes a clip's output: the input is zeroed beyond each length, each strided
convolution's valid outputs see past the clip's end only zeros (what its own zero padding gives
a clip alone) and the outputs past the new length, ``ceil(length / 2)``, are zeroed again; the
encoder's attention ignores padded tokens (``src_key_padding_mask``) and the pooling gives them
no weight. :func:`~ser_utils.models.alternatives.padding_invariance` checks it (tested to float
tolerance).

Contract: ``dropout_conv`` is the dropout after the stem, ``dropout_head`` the one before the
output layer; the encoder's own dropout (attention and feed-forward) is ``dropout_attn``
(0.1, the usual value for transformers; the report's 0.3 is for conv blocks).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ser_utils.models.layers import INPUT_SHAPES, AttentiveStatsPool, get_activation, time_mask


def sinusoidal_positions(n_positions: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """The transformer's fixed positional encoding (Vaswani et al. 2017): ``[n_positions, width]``."""
    position = torch.arange(n_positions, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(n_positions, width, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


class AudioTransformer(nn.Module):
    """Conv stem (time / 4) -> sinusoidal positions -> pre-norm transformer encoder -> attentive pooling."""

    inputs: tuple[str, ...] = ("x2d_var", "len2d")
    #: Input frames per token (the stem's two stride-2 convolutions).
    SUBSAMPLING = 4

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, d_model: int = 256, n_heads: int = 4, n_layers: int = 4,
                 feedforward: int = 1024, dropout_attn: float = 0.1) -> None:
        super().__init__()
        n_mels = INPUT_SHAPES["x2d_var"][1]
        self.stem = nn.ModuleList([nn.Conv1d(n_mels, d_model, kernel_size=3, stride=2, padding=1),
                                   nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)])
        self.stem_act = nn.ModuleList([get_activation(activation), get_activation(activation)])
        self.norm_in = nn.LayerNorm(d_model)
        self.drop_in = nn.Dropout(dropout_conv)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, feedforward, dropout_attn,
                                           activation=get_activation(activation), batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.pool = AttentiveStatsPool(d_model)
        self.drop_head = nn.Dropout(dropout_head)
        self.classifier = nn.Linear(2 * d_model, n_classes)

    def tokens(self, x2d_var: torch.Tensor, len2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stem's tokens ``[B, T / 4, d_model]`` (zero past each clip) and the tokens per clip."""
        x = x2d_var[:, 0]  # [B, 64, T]: the mel bins are the channels
        lengths = len2d.to(device=x.device, dtype=torch.long).clamp(min=1)
        x = x * time_mask(lengths, x.shape[-1], 3, x.dtype)
        for conv, act in zip(self.stem, self.stem_act):
            x = act(conv(x))
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")  # ceil(length / 2)
            x = x * time_mask(lengths, x.shape[-1], 3, x.dtype)
        return x.transpose(1, 2), lengths

    def forward(self, x2d_var: torch.Tensor, len2d: torch.Tensor) -> torch.Tensor:
        tokens, lengths = self.tokens(x2d_var, len2d)
        tokens = tokens + sinusoidal_positions(tokens.shape[1], tokens.shape[2], tokens.device).to(tokens.dtype)
        tokens = self.drop_in(self.norm_in(tokens))
        padded = torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lengths[:, None]
        h = self.encoder(tokens, src_key_padding_mask=padded)
        return self.classifier(self.drop_head(self.pool(h.transpose(1, 2), lengths)))

    @staticmethod
    def example_inputs(batch_size: int = 1, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Random padded log-mel of 3 s clips (188 frames at a 16 ms hop), later clips shorter."""
        mels = torch.tensor([188 - 25 * (b % 5) for b in range(batch_size)])
        return torch.rand((batch_size, 1, 64, 188), generator=generator) * time_mask(mels, 188, 4), mels
