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
from ser_utils.models.cnn import CNN1D, CNN2D, Combined

#: Model name -> class: the report's three CNNs (``config.MODELS``), then notebook 09's alternatives.
MODEL_REGISTRY: dict[str, type[nn.Module]] = {
    "1d": CNN1D,
    "2d": CNN2D,
    "combined": Combined,
    "resnet38": ResNet38,
    "resnet101": ResNet101,
    "combined-varlen": CombinedVarLen,
    "combined-mean1d": CombinedMean1D,
}

#: The alternatives' names (notebook 09), in registry order.
ALTERNATIVES: tuple[str, ...] = ("resnet38", "resnet101", "combined-varlen", "combined-mean1d")


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model; unknown names raise ValueError listing the registered ones."""
    if name not in MODEL_REGISTRY:
        valid = ", ".join(MODEL_REGISTRY)
        raise ValueError(f"unknown model {name!r}; registered models: {valid}")
    return MODEL_REGISTRY[name](**kwargs)
