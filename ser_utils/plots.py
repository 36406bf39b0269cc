"""Every figure of the suite: one function per figure, each returning a matplotlib Figure.

Notebooks call these and hand the result to :func:`save_figure`, which writes it under
``outputs/figures/<notebook>/`` so every figure has one predictable home.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from ser_utils import config

SYNTHETIC_LABEL = "synthetic demo corpus - not CREMA-D"


def save_figure(fig: "matplotlib.figure.Figure", notebook: str, name: str,
                root: Path | None = None, dpi: int = 120) -> Path:
    """Save ``fig`` as ``outputs/figures/<notebook>/<name>.png`` and return the path."""
    folder = Path(root or config.FIGURES_DIR) / notebook
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def corpus_banner(fig: "matplotlib.figure.Figure", synthetic: bool) -> None:
    """Stamp figures made from the demo corpus so no one mistakes them for CREMA-D results."""
    if synthetic:
        fig.text(0.99, 0.005, SYNTHETIC_LABEL, ha="right", va="bottom", fontsize=8,
                 color="crimson", alpha=0.9)
