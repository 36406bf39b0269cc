"""The course report's three CNNs: 1D (frames), 2D (log-mel image) and Combined (both).

Blocks, the input contract and why the layout is what it is: :mod:`ser_utils.models.layers`.
Trainable parameters with 6 classes, as the report quotes them: 507,654 / 5,043,270 / 5,739,462
(pinned by tests/test_models.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ser_utils.models.layers import INPUT_SHAPES, combined_head, conv_trunk

TRUNK_1D_WIDTHS: tuple[int, ...] = (128, 256, 512)
TRUNK_2D_WIDTHS: tuple[int, ...] = (32, 64, 512, 1024)


class SingleTrunkCNN(nn.Module):
    """One conv trunk, global average pooling, then ``Linear(widths[-1], n_classes)``.

    The 1D and the 2D CNN differ only in the class attributes below: the convolution's
    dimension, the input it reads and the trunk's widths.
    """

    dim: int = 1
    inputs: tuple[str, ...] = ("x1d",)
    widths: tuple[int, ...] = TRUNK_1D_WIDTHS

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5) -> None:
        super().__init__()
        # dropout_head is accepted for the common contract; the single models have no hidden head.
        self.trunk = conv_trunk(self.dim, INPUT_SHAPES[self.inputs[0]][0], self.widths, activation, dropout_conv)
        self.classifier = nn.Linear(self.widths[-1], n_classes)

    def trunks(self) -> dict[str, nn.Module]:
        """Input name -> the conv trunk that reads it (for ``receptive_field``)."""
        return {self.inputs[0]: self.trunk}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(x))


class CNN1D(SingleTrunkCNN):
    """Three 1D conv blocks (128/256/512) over the 27 x 301 feature matrix, then Linear(512, n)."""

    dim, inputs, widths = 1, ("x1d",), TRUNK_1D_WIDTHS


class CNN2D(SingleTrunkCNN):
    """Four 2D conv blocks (32/64/512/1024) over the 1 x 64 x 64 log-mel image, then Linear(1024, n)."""

    dim, inputs, widths = 2, ("x2d",), TRUNK_2D_WIDTHS


class TwoTrunkModel(nn.Module):
    """A 1D and a 2D trunk, their pooled features concatenated (512 + 1024), then the shared head
    ``Linear(1536, hidden) -> LayerNorm -> act -> Dropout -> Linear(hidden, n)``
    (:func:`~ser_utils.models.layers.combined_head`). Subclasses choose the trunks and name the
    inputs they read in ``trunk_inputs``."""

    trunk_inputs: tuple[str, str] = ("x1d", "x2d")

    def __init__(self, trunk1d: nn.Module, trunk2d: nn.Module, n_classes: int, activation: str,
                 dropout_head: float, hidden: int) -> None:
        super().__init__()
        self.trunk1d, self.trunk2d = trunk1d, trunk2d
        self.head = combined_head(TRUNK_1D_WIDTHS[-1] + TRUNK_2D_WIDTHS[-1], hidden, n_classes, activation,
                                  dropout_head)

    def trunks(self) -> dict[str, nn.Module]:
        return dict(zip(self.trunk_inputs, (self.trunk1d, self.trunk2d)))


class Combined(TwoTrunkModel):
    """Both trunks of the report's CNNs on the fixed-size features (27 x 301 frames, 64 x 64 image)."""

    inputs: tuple[str, ...] = ("x1d", "x2d")

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, hidden: int = 128) -> None:
        super().__init__(conv_trunk(1, INPUT_SHAPES["x1d"][0], TRUNK_1D_WIDTHS, activation, dropout_conv),
                         conv_trunk(2, INPUT_SHAPES["x2d"][0], TRUNK_2D_WIDTHS, activation, dropout_conv),
                         n_classes, activation, dropout_head, hidden)

    def forward(self, x1d: torch.Tensor, x2d: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.trunk1d(x1d), self.trunk2d(x2d)], dim=1))
