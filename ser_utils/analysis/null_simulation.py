"""How often the claims table's accuracy test calls two identical configurations different.

Why: a verdict is only as good as its false-positive rate. Two configurations that are the same
model still differ run by run (the training seed moves test accuracy by a point or two) and
clip by clip; the test of a claim (:func:`ser_utils.stats.mean_difference_test`) must keep the
rate of "significant" differences between them near alpha when it has several seeds, and the
table must say when it cannot (one seed). :func:`false_positive_rate` simulates exactly that and
:func:`false_positive_table` gives the table docs/statistics.md shows (run
``python -m ser_utils.analysis.null_simulation`` to measure it again).

The simulated world: ``n_clips`` test clips shared by every run, each with a difficulty; a run's
accuracy is the configuration's accuracy plus a seed effect (normal, ``seed_sd``); a clip is
right when a normal score built from the clip's difficulty (correlation ``clip_corr`` between
runs) and the run's own noise falls below that run's accuracy quantile. Both configurations draw
from the same distribution, so every "significant" difference is a false positive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from ser_utils import config, stats


def simulate_correctness(rng: np.random.Generator, n_seeds: int, seed_sd: float, n_clips: int,
                         accuracy: float = 0.6, clip_corr: float = 0.5) -> np.ndarray:
    """Per-clip correctness of two identical configurations: ``(2, n_seeds, n_clips)`` booleans."""
    difficulty = rng.standard_normal(n_clips)
    run_acc = np.clip(accuracy + seed_sd * rng.standard_normal((2, n_seeds, 1)), 0.01, 0.99)
    score = np.sqrt(clip_corr) * difficulty + np.sqrt(1 - clip_corr) * rng.standard_normal((2, n_seeds, n_clips))
    return score < sps.norm.ppf(run_acc)


def false_positive_rate(n_seeds: int, seed_sd: float, n_clips: int = 400, reps: int = 400,
                        alpha: float = 0.05, seed: int = config.SEED) -> float:
    """Share of ``reps`` simulated pairs of identical configurations the test calls different at ``alpha``."""
    rng = np.random.default_rng([seed, n_seeds, round(seed_sd * 1e4)])
    hits = 0
    for _ in range(reps):
        correct = simulate_correctness(rng, n_seeds, seed_sd, n_clips).astype(np.int8)
        hits += stats.mean_difference_test([correct[0] - correct[1]]).pvalue < alpha
    return hits / reps


def false_positive_table(seeds: tuple[int, ...] = (1, 3, 5), sds: tuple[float, ...] = (0.0, 0.01, 0.02),
                         n_clips: int = 400, reps: int = 400, alpha: float = 0.05) -> pd.DataFrame:
    """False-positive rate per seed count (rows) and seed-to-seed SD in points (columns)."""
    table = pd.DataFrame({f"seed SD {100 * sd:g} points": [false_positive_rate(n, sd, n_clips, reps, alpha)
                                                           for n in seeds] for sd in sds},
                         index=pd.Index(seeds, name="seeds"))
    return table


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (rates as percentages), as docs/statistics.md shows it."""
    lines = ["| seeds | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(f"{100 * x:.1f}%" for x in row) + " |" for n, row in table.iterrows()]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the measurement behind docs/statistics.md
    print(markdown(false_positive_table(n_clips=2222, reps=2000)))
