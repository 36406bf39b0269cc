"""The report's 1D and 2D CNNs with attentive statistics pooling in place of global average pooling.

The report's Future Work 1 asks whether the CNNs would gain from learning *which* frames of a
clip matter. ``1d-attn`` and ``2d-attn`` keep the report's conv trunks (same blocks, widths and
inputs, so a comparison with ``1d``/``2d`` isolates the pooling) and replace global average
pooling by :class:`~ser_utils.models.layers.AttentiveStatsPool`: learned weights over time,
weighted mean and standard deviation, so the classifier reads ``2 x widths[-1]`` values.

=========== ==================================== =========== ========================================
name        input per clip                       parameters* frames the weights are over
=========== ==================================== =========== ========================================
``1d-attn`` ``x1d`` frames [27, 301]             576,519     37 (every 80 ms of the 3.01 s input)
``2d-attn`` ``x2d`` log-mel image [1, 64, 64]    5,180,743   4 (quarters of the clip; the image's
                                                             time axis after four 2x poolings)
=========== ==================================== =========== ========================================

\\* trainable parameters with 6 classes (pinned by tests/test_models_future.py).

The 2D trunk's map is ``[B, 1024, 4, 4]`` (frequency x time); it is averaged over frequency
first (as PANNs does before its temporal pooling), so the weights are over time. Both read the
report's fixed-size inputs (no padding of their own beyond the features' 3 s crop), and follow
the suite's constructor contract; ``dropout_head`` is accepted and unused, as in the report's
single CNNs, which have no hidden head. :func:`~ser_utils.models.layers.attention_weights`
reads the weights of a few clips.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_utils.models.cnn import TRUNK_1D_WIDTHS, TRUNK_2D_WIDTHS
from ser_utils.models.layers import INPUT_SHAPES, AttentiveStatsPool, conv_trunk

#: Hidden units of the attention's scoring layer.
ATTENTION_HIDDEN = 128


class AttentionCNN(nn.Module):
    """A report CNN's conv blocks, attentive statistics pooling over time, ``Linear(2 * widths[-1], n)``."""

    dim: int = 1
    inputs: tuple[str, ...] = ("x1d",)
    widths: tuple[int, ...] = TRUNK_1D_WIDTHS

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, attention_hidden: int = ATTENTION_HIDDEN) -> None:
        super().__init__()
        # the report's trunk without its global average pooling and flatten (same state_dict keys)
        self.trunk = conv_trunk(self.dim, INPUT_SHAPES[self.inputs[0]][0], self.widths, activation, dropout_conv)[:-2]
        self.pool = AttentiveStatsPool(self.widths[-1], attention_hidden)
        self.classifier = nn.Linear(2 * self.widths[-1], n_classes)

    def trunks(self) -> dict[str, nn.Module]:
        """Input name -> the conv trunk that reads it (for ``receptive_field``)."""
        return {self.inputs[0]: self.trunk}

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output as a sequence over time, ``[B, C, T']`` (2D: averaged over frequency)."""
        h = self.trunk(x)
        return h.mean(dim=2) if self.dim == 2 else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.frames(x)))


class CNN1DAttn(AttentionCNN):
    """The 1D CNN (128/256/512 over the 27 x 301 frames) with attentive statistics pooling."""

    dim, inputs, widths = 1, ("x1d",), TRUNK_1D_WIDTHS


class CNN2DAttn(AttentionCNN):
    """The 2D CNN (32/64/512/1024 over the 64 x 64 log-mel image) with attentive statistics pooling."""

    dim, inputs, widths = 2, ("x2d",), TRUNK_2D_WIDTHS
