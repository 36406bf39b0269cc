"""Figures of the derivations the notebooks teach: VAD decisions, mel filterbank, the 64-column
resize, activations and their derivatives, the learning-rate schedule.

Why this module exists: notebooks 02-07 derive the package's algorithms step by step and need a
figure at each step; ``plots`` holds the report's figures, this module the teaching ones, so
neither grows past a readable size. Every function returns a matplotlib Figure for ``ctx.save``.
"""

from __future__ import annotations

import numpy as np

from ser_utils import config


def vad_decisions(signal: np.ndarray, flags: dict[int, np.ndarray], frame_ms: int,
                  sample_rate: int = config.SAMPLE_RATE, title: str = ""):
    """The waveform with each aggressiveness level's per-frame speech decisions shaded (one row per level)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(flags), 1, figsize=(10, 1.3 * len(flags)), sharex=True, sharey=True,
                             constrained_layout=True)
    t = np.arange(len(signal)) / sample_rate
    for ax, (level, speech) in zip(np.atleast_1d(axes), flags.items()):
        ax.plot(t, signal, lw=0.5, color="0.3")
        for i in np.flatnonzero(speech):
            ax.axvspan(i * frame_ms / 1000, (i + 1) * frame_ms / 1000, color="tab:green", alpha=0.25, lw=0)
        ax.set_ylabel(f"level {level}\n{speech.mean():.0%} speech", rotation=0, ha="right", va="center", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel(f"time (s); green: a {frame_ms} ms frame the VAD calls speech")
    fig.suptitle(title or "VAD decisions per aggressiveness level")
    return fig


def mel_filterbank(bank: np.ndarray, sample_rate: int = config.SAMPLE_RATE, every: int = 8, title: str = ""):
    """Every ``every``-th triangular mel filter over frequency: narrow at low, wide at high frequencies."""
    import matplotlib.pyplot as plt

    freqs = np.linspace(0, sample_rate / 2, bank.shape[1])
    fig, ax = plt.subplots(figsize=(9, 2.8), constrained_layout=True)
    for row in bank[::every]:
        ax.plot(freqs, row, lw=1)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("weight")
    ax.set_title(title or f"mel filterbank: {bank.shape[0]} filters x {bank.shape[1]} FFT bins (every {every}th drawn)")
    return fig


def resize_short_long(pairs: dict[str, tuple[np.ndarray, np.ndarray]], title: str = ""):
    """Each clip's log-mel before (its own number of frames) and after the resize to 64 columns."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(pairs), 2, figsize=(11, 2.6 * len(pairs)), constrained_layout=True,
                             gridspec_kw={"width_ratios": [3, 1]})
    for row, (label, (before, after)) in zip(np.atleast_2d(axes), pairs.items()):
        row[0].imshow(before, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
        row[0].set_title(f"{label}: {before.shape[1]} frames of 16 ms")
        row[1].imshow(np.squeeze(after), origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
        row[1].set_title(f"resized to {np.squeeze(after).shape[1]} columns "
                         f"({before.shape[1] / np.squeeze(after).shape[1]:.2f} frames per column)")
        for ax in row:
            ax.grid(False)
            ax.set_ylabel("mel band")
    fig.suptitle(title or "the 64-column resize stretches short clips and squeezes long ones")
    return fig


def activations(names=("relu", "silu", "elu"), lo: float = -4.0, hi: float = 4.0):
    """Each activation of ``models.layers.ACTIVATIONS`` and its derivative (by autograd), on one grid."""
    import matplotlib.pyplot as plt
    import torch

    from ser_utils.models import layers

    x = torch.linspace(lo, hi, 401, requires_grad=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    for name in names:
        y = layers.get_activation(name)(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        left.plot(x.detach(), y.detach(), label=name)
        right.plot(x.detach(), grad, label=name)
    left.set_title("f(x)")
    right.set_title("f'(x) (autograd)")
    for ax in (left, right):
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_xlabel("x")
        ax.legend()
    return fig


def lr_schedule(steps: np.ndarray, factors: np.ndarray, history, lr: float, warmup_steps: int,
                steps_per_epoch: int, title: str = ""):
    """The per-step learning rate (from the schedule) and the rate each epoch ended at (``history.csv``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2), constrained_layout=True)
    ax.plot(steps, lr * np.asarray(factors), lw=1, label="lr per optimiser step (schedule)")
    ends = np.asarray(history["epoch"]) * steps_per_epoch  # the scheduler has stepped once per batch
    ax.plot(ends, history["lr"], "o", label="lr after each epoch's last step (history.csv)")
    if warmup_steps:
        ax.axvline(warmup_steps, color="crimson", ls="--", lw=1, label=f"end of warm-up (step {warmup_steps})")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    ax.set_title(title or "learning-rate schedule")
    return fig
