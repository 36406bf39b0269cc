"""Branch ablation of a trained two-trunk model: each trunk alone through the trained head.

Why this module exists: the combined model concatenates a 1D and a 2D trunk, and whether the
two views complement each other is an empirical question (the report's combined model scored
below its 2D model alone). Notebook 06 answers it for a trained run by scoring the test set three
ways: with both trunks, with only the 1D trunk, with only the 2D trunk.

"Only one trunk" means the other trunk's pooled features are replaced by their mean over the
training clips (a mean ablation): the head then sees a typical value in that half of its input
instead of zeros, which it never saw in training. Inputs are standardised exactly as for
prediction (:func:`ser_utils.training.checkpoint.predict`, with the run's statistics).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ser_utils import config, stats
from ser_utils.training import checkpoint

#: The trunks of a two-trunk model, and the row labels of :func:`branch_ablation`.
TRUNKS = ("trunk1d", "trunk2d")
BOTH, ONLY = "both trunks", "{} alone (the other at its training mean)"


def trunk_outputs(model: nn.Module, data: Any, idx: np.ndarray) -> dict[str, torch.Tensor]:
    """Each trunk's pooled output for the clips ``idx`` (forward hooks while ``checkpoint.predict`` runs,
    so the inputs are standardised with the run's statistics, as for any prediction)."""
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in TRUNKS}
    hooks = [getattr(model, name).register_forward_hook(
        lambda _m, _i, out, name=name: outputs[name].append(out.detach().float().cpu())) for name in TRUNKS]
    try:
        with warnings.catch_warnings():  # read-only (memory-mapped) labels: torch warns, nothing is written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            checkpoint.predict(model, data, idx, device="cpu")
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(chunks) for name, chunks in outputs.items()}


def branch_ablation(model: nn.Module, data: Any, split: str = "test", max_mean_clips: int = 512,
                    seed: int = config.SEED) -> pd.DataFrame:
    """Accuracy on ``split`` with both trunks and with each trunk alone, with 95% Wilson intervals.

    The trunks run once over ``split`` and once over up to ``max_mean_clips`` training clips (drawn
    with ``seed``) for the means; the head, which is cheap, then scores the three combinations.
    """
    model = model.eval().cpu()
    train = data.indices("train")
    train = np.random.default_rng(seed).permutation(train)[:max_mean_clips]
    means = {name: out.mean(dim=0, keepdim=True) for name, out in trunk_outputs(model, data, np.sort(train)).items()}
    idx = data.indices(split)
    test = trunk_outputs(model, data, idx)
    one, two = test["trunk1d"], test["trunk2d"]
    variants = {BOTH: (one, two), ONLY.format("1D trunk"): (one, means["trunk2d"].expand_as(two)),
                ONLY.format("2D trunk"): (means["trunk1d"].expand_as(one), two)}
    rows = []
    for label, (a, b) in variants.items():
        with torch.inference_mode():
            predicted = model.head(torch.cat([a, b], dim=1)).argmax(dim=1).numpy()
        correct = int((predicted == np.asarray(data.y)[idx]).sum())
        lo, hi = stats.wilson_interval(correct, len(idx))
        rows.append({"inputs": label, "accuracy": correct / len(idx), "lo": float(lo), "hi": float(hi),
                     "correct": correct, "clips": len(idx)})
    return pd.DataFrame(rows)
