"""Every model by the name ``TrainConfig.model``, the sweep and the notebooks use, in one place.

A new architecture joins by following the constructor contract of :mod:`ser_utils.models.layers`
and getting a line here; no module registers itself anywhere at import time. Kept apart from the
package's ``__init__`` so that :mod:`ser_utils.models.summary` can build models by name without
importing the package it is part of.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ser_utils.models.alternatives import CombinedMean1D, CombinedVarLen, ResNet38, ResNet101
from ser_utils.models.attention import CNN1DAttn, CNN2DAttn
from ser_utils.models.cnn import CNN1D, CNN2D, Combined
from ser_utils.models.transformer import AudioTransformer

#: Model name -> class: the report's three CNNs (``config.MODELS``), notebook 09's alternatives, then
#: notebook 12's attention-pooled CNNs and transformer.
MODEL_REGISTRY: dict[str, type[nn.Module]] = {
    "1d": CNN1D,
    "2d": CNN2D,
    "combined": Combined,
    "resnet38": ResNet38,
    "resnet101": ResNet101,
    "combined-varlen": CombinedVarLen,
    "combined-mean1d": CombinedMean1D,
    "1d-attn": CNN1DAttn,
    "2d-attn": CNN2DAttn,
    "transformer": AudioTransformer,
}

#: The alternatives' names (notebook 09), in registry order.
ALTERNATIVES: tuple[str, ...] = ("resnet38", "resnet101", "combined-varlen", "combined-mean1d")

#: Attention pooling and the transformer (notebook 12), in registry order.
ATTENTION_MODELS: tuple[str, ...] = ("1d-attn", "2d-attn", "transformer")


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model; unknown names raise ValueError listing the registered ones."""
    if name not in MODEL_REGISTRY:
        valid = ", ".join(MODEL_REGISTRY)
        raise ValueError(f"unknown model {name!r}; registered models: {valid}")
    return MODEL_REGISTRY[name](**kwargs)
