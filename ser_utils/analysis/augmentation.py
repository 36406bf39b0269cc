"""Does augmentation help? A run with ``--augment`` against the same run without it (notebook 11).

Why not :class:`ser_utils.analysis.paired_runs.PairedRuns`: it keys runs by model, activation and
rate, so a run and its augmented twin would count as one configuration trained twice. Here the
two runs are paired explicitly, checked to differ in ``augment`` alone (every other
result-affecting setting, the corpus and its clips equal; otherwise the comparison is refused
as *not comparable*), aligned clip by clip on their test predictions, and compared with the
exact McNemar test and a paired bootstrap interval of the accuracy difference (:mod:`ser_utils.stats`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config, runs, stats

#: Significance level of the verdicts.
ALPHA = 0.05


def twin_settings(settings: dict[str, Any], augment: str = "none") -> config.TrainConfig:
    """The TrainConfig of a run's twin: the same result-affecting settings, another ``augment``."""
    return config.TrainConfig(**{**{k: settings[k] for k in config.RESULT_FIELDS if k in settings}, "augment": augment})


def find_pair(runs_dir: str | Path, model: str, activation: str, lr: float, augment: str) -> tuple[Path, Path] | None:
    """(augmented run, its twin without augmentation), both finished, among ``runs_dir``'s run folders; else None."""
    runs_dir = Path(runs_dir)
    for run_dir in sorted(runs_dir.glob("*/")) if runs_dir.is_dir() else []:
        settings = runs.recorded_settings(run_dir)
        wanted = {"model": model, "activation": activation, "augment": augment}
        if not runs.is_finished(run_dir) or any(settings.get(k) != v for k, v in wanted.items()):
            continue
        if not np.isclose(float(settings.get("lr", np.nan)), lr):
            continue
        twin = runs_dir / twin_settings(settings).run_id
        if runs.is_finished(twin):
            return run_dir, twin
    return None


def paired_test(augmented: str | Path, plain: str | Path) -> dict[str, Any]:
    """Accuracy of ``augmented`` minus ``plain`` on their common test clips: the difference, its 95%
    paired bootstrap interval, the exact McNemar p-value and the discordant counts; ``comparable``
    False (with ``reason``) when the runs differ in more than ``augment``."""
    augmented, plain = Path(augmented), Path(plain)
    settings = runs.recorded_settings(augmented)
    requested = {k: v for k, v in twin_settings(settings).result_settings().items() if k != "augment"}
    diffs = runs.differences(plain, requested, settings.get("corpus"), settings.get("corpus_clips"))
    result: dict[str, Any] = {"augmented": augmented.name, "plain": plain.name, "comparable": not diffs,
                              "reason": "; ".join(diffs)}
    if diffs:
        return result
    a = pd.read_csv(augmented / runs.PREDICTIONS_FILE).set_index("path")
    b = pd.read_csv(plain / runs.PREDICTIONS_FILE).set_index("path")
    common = a.index.intersection(b.index).sort_values()
    if len(common) == 0 or (a.loc[common, "true"] != b.loc[common, "true"]).any():
        return {**result, "comparable": False, "reason": "the runs were not tested on the same clips"}
    truth = a.loc[common, "true"].to_numpy()
    pred_a, pred_b = a.loc[common, "predicted"].to_numpy(), b.loc[common, "predicted"].to_numpy()
    test = stats.mcnemar_exact(pred_a == truth, pred_b == truth)
    boot = stats.paired_bootstrap(truth, pred_a, pred_b, labels=config.EMOTIONS)
    return {**result, "n_clips": len(common), "accuracy_augmented": float(np.mean(pred_a == truth)),
            "accuracy_plain": float(np.mean(pred_b == truth)), "difference": boot.diff, "lo": boot.lo,
            "hi": boot.hi, "p": test.pvalue, "only_augmented_right": test.b, "only_plain_right": test.c}


def findings(result: dict[str, Any], epochs: int | None = None, synthetic: bool = True) -> list[str]:
    """The verdict in words, computed from :func:`paired_test` (Markdown lines)."""
    label = f" ({config.SYNTHETIC_LABEL})" if synthetic else ""
    if not result["comparable"]:
        return [f"**Not comparable**: {result['augmented']} and {result['plain']} differ in more than the "
                f"augmentation ({result['reason']}); no conclusion is drawn."]
    diff, lo, hi, p = (result[k] for k in ("difference", "lo", "hi", "p"))
    lines = [f"On the same {result['n_clips']} test clips{label}, {result['augmented']} scores "
             f"{result['accuracy_augmented']:.1%} and {result['plain']} {result['accuracy_plain']:.1%}: a difference of "
             f"{diff * 100:+.1f} points (95% interval {lo * 100:+.1f} to {hi * 100:+.1f}); McNemar p = {p:.3g} "
             f"({result['only_augmented_right']} clips only the augmented run got right, "
             f"{result['only_plain_right']} only the plain one)."]
    if p >= ALPHA:
        lines.append(f"**Not significant** at {ALPHA:g}: these runs do not show that the augmentation helps or hurts.")
    else:
        lines.append(f"**Significant** at {ALPHA:g}: the augmented run is {'better' if diff > 0 else 'worse'}.")
    if epochs is not None and epochs < config.TrainConfig.epochs:
        lines.append(f"Both runs have a quick budget ({epochs} epochs, the report trains {config.TrainConfig.epochs}): "
                     "augmentation usually pays off only over long training, so this says nothing about the "
                     "full protocol.")
    return lines


def masked_views(x1d: np.ndarray, x2d: np.ndarray, seed: int = config.SEED) -> dict[str, np.ndarray]:
    """One clip's log-mel image and 1D frames, plain and with ``--augment spec``'s masks (for a figure)."""
    import torch

    from ser_utils.training import augment

    generator = torch.Generator().manual_seed(seed)
    masked_1d, masked_2d = augment.spec_augment(("x1d", "x2d"), (torch.as_tensor(x1d)[None], torch.as_tensor(x2d)[None]),
                                                generator)
    return {"log-mel": x2d[0], "log-mel, masked": masked_2d[0, 0].numpy(), "frames": x1d,
            "frames, masked": masked_1d[0].numpy()}


def images_figure(images: dict[str, np.ndarray], title: str = ""):
    """A row of images (log-mels or feature frames), one panel each, low frequencies at the bottom."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.0), constrained_layout=True, squeeze=False)
    for ax, (name, image) in zip(axes[0], images.items()):
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
    if title:
        fig.suptitle(title)
    return fig
