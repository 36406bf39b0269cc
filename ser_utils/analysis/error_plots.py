"""The figures of notebook 08's error analysis: reliability diagram, occlusion maps, embedding map.

Kept beside :mod:`ser_utils.analysis.plots` (every other figure) rather than in it, so that the
error analysis's figures and their inputs (:mod:`error_analysis`, :mod:`attribution`) change
together. Each function returns a matplotlib Figure for ``ctx.save``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ser_utils import config
from ser_utils.analysis.plots import _emotion_palette


def reliability_diagram(table: pd.DataFrame, ece: float, title: str = ""):
    """Accuracy per confidence bin against the diagonal (perfect calibration), clip counts below."""
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = float((table["hi"] - table["lo"]).iloc[0])
    used = table[table["n"] > 0]
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.bar(used["lo"], used["accuracy"], width=width, align="edge", color="tab:blue", edgecolor="white",
            label="accuracy in the bin")
    top.bar(used["lo"], used["confidence"], width=width, align="edge", fill=False, edgecolor="tab:red", lw=1.5,
            label="mean confidence in the bin")
    top.set(ylim=(0, 1), ylabel="accuracy", title=title or f"reliability diagram (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(table["lo"], table["n"], width=width, align="edge", color="grey", edgecolor="white")
    bottom.set(xlim=(0, 1), xlabel="top-1 confidence", ylabel="clips")
    fig.tight_layout()
    return fig


def occlusion_maps(images: np.ndarray, maps: np.ndarray, titles: Sequence[str], label: str = "occlusion"):
    """One column per clip: its log-mel (top) and the attribution over it (bottom, red = the logit
    drops when that patch is hidden, blue = it rises)."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(2, max(n, 1), figsize=(3.0 * max(n, 1), 5.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], origin="lower", aspect="auto", cmap="magma")
        axes[0, i].set_title(titles[i], fontsize=8)
        limit = float(np.abs(maps[i]).max()) or 1.0
        axes[1, i].imshow(images[i], origin="lower", aspect="auto", cmap="gray")
        shown = axes[1, i].imshow(maps[i], origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                                  alpha=0.7)
        fig.colorbar(shown, ax=axes[1, i], fraction=0.046)
    for ax in axes[:, 0]:
        ax.set_ylabel("mel band")
    for ax in axes[1]:
        ax.set_xlabel("frame (resized)")
    fig.suptitle(f"log-mel input and its {label} map")
    fig.tight_layout()
    return fig


def embedding_map(points: np.ndarray, labels: Sequence[str], correct: np.ndarray, title: str = ""):
    """The 2D projection of the penultimate-layer vectors, one colour per emotion; crosses are misclassified."""
    import matplotlib.pyplot as plt

    palette = _emotion_palette()
    labels, correct = np.asarray(labels), np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 5))
    for emotion in [e for e in config.EMOTIONS if e in set(labels)]:
        here = labels == emotion
        ax.scatter(*points[here & correct].T, s=18, color=palette[emotion], label=emotion)
        ax.scatter(*points[here & ~correct].T, s=22, color=palette[emotion], marker="x")
    ax.set(title=title or "penultimate layer, 2D projection", xticks=[], yticks=[])
    ax.legend(title="true emotion (x: misclassified)", fontsize=8, title_fontsize=8, loc="best")
    fig.tight_layout()
    return fig
