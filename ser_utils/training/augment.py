"""Augmentation inside the training loop: SpecAugment-style masks per batch, and the per-epoch
draw of the cached augmented waveforms' features (``TrainConfig.augment``).

Why here and not in the feature cache: masks are cheap tensor operations on the device, drawn
anew for every batch, so the cached features stay as they are. They are applied by
:func:`ser_utils.training.loop.train_epoch` to training batches only; validation and test go
through :func:`ser_utils.training.batching.evaluate`, which never calls this module.

Why a small tensor implementation rather than ``torchaudio.transforms.FrequencyMasking`` /
``TimeMasking``: torchaudio's wheels pin one torch version each, and none is published for the
torch this project runs (installing it would pull another torch). The masks below are the same
operation (a band of random width ``0..W`` at a random start set to a constant), drawn per clip
and vectorised over the batch, from a dedicated generator: the same seed gives the same masks,
and the batch order (drawn from the loop's own generator) is the same with and without them.
The generator lives on the run's device (the masks are drawn there, no host round trip per batch),
so two runs give the same masks on the same kind of device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ser_utils import config
from ser_utils.config import SpecAugmentConfig
from ser_utils.models import LENGTH_OF

#: Inputs masked along time (last axis) and, for log-mel inputs, along frequency (axis -2).
#: Lengths and the per-clip means (``x1d_avg``) are never masked.
TIME_MASKED = {"x1d": "1d", "x1d_var": "1d", "x2d": "2d", "x2d_var": "2d"}
FREQ_MASKED = ("x2d", "x2d_var")


def uses_spec(augment: str) -> bool:
    return augment in ("spec", "both")


def uses_wave(augment: str) -> bool:
    return augment in ("wave", "both")


def check_augment(augment: str) -> None:
    """ValueError naming the valid values for an unknown ``augment``."""
    if augment not in config.AUGMENTS:
        raise ValueError(f"augment={augment!r}: choose one of {', '.join(config.AUGMENTS)}")


def band_mask(batch: int, length: int, n_masks: int, max_width: int, generator: torch.Generator,
              limit: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean ``[batch, length]``: per row, ``n_masks`` bands of width ``0..max_width`` (uniform)
    at uniform starts within the first ``limit[row]`` positions (default: all ``length``).

    Drawn and built on the generator's device: no host round trip per batch on a GPU.
    """
    device = generator.device
    shape = (batch, max(n_masks, 0))
    width = torch.randint(0, max_width + 1, shape, generator=generator, device=device)
    span = torch.full((batch,), length, device=device) if limit is None else limit.to(device).clamp(min=1, max=length)
    width = torch.minimum(width, span[:, None])
    start = (torch.rand(shape, generator=generator, device=device) * (span[:, None] - width + 1)).long()
    positions = torch.arange(length, device=device)
    inside = (positions[None, None] >= start[..., None]) & (positions[None, None] < (start + width)[..., None])
    return inside.any(dim=1)


def mask_input(name: str, x: torch.Tensor, generator: torch.Generator, cfg: SpecAugmentConfig = SpecAugmentConfig(),
               lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` (one batch of input ``name``) with its masks set to 0; a new tensor, ``x`` untouched."""
    if name not in TIME_MASKED:
        return x
    time_width = cfg.time_width_2d if TIME_MASKED[name] == "2d" else cfg.time_width_1d
    masked = band_mask(x.shape[0], x.shape[-1], cfg.time_masks, time_width, generator, lengths)
    shape = [x.shape[0]] + [1] * (x.dim() - 2) + [x.shape[-1]]
    keep = ~masked.view(shape)
    if name in FREQ_MASKED:
        freq = band_mask(x.shape[0], x.shape[-2], cfg.freq_masks, cfg.freq_width, generator)
        freq_shape = [x.shape[0]] + [1] * (x.dim() - 3) + [x.shape[-2], 1]
        keep = keep & ~freq.view(freq_shape)
    return x * keep.to(x.device, x.dtype)


def spec_augment(names: Sequence[str], inputs: Sequence[torch.Tensor], generator: torch.Generator,
                 cfg: SpecAugmentConfig = SpecAugmentConfig()) -> tuple[torch.Tensor, ...]:
    """A training batch's model inputs (``names`` in ``model.inputs`` order) with fresh masks.

    Variable-length inputs are masked within each clip's valid frames (their ``len1d``/``len2d``).
    """
    by_name = dict(zip(names, inputs))
    return tuple(mask_input(name, x, generator, cfg, by_name.get(LENGTH_OF.get(name, ""))) for name, x in by_name.items())


# ------------------------------------------------------------------ wave copies
#: The inputs the wave cache holds (the report's fixed-size features).
WAVE_INPUTS = ("x1d", "x2d")
#: The waveform augmentation every ``wave`` run uses (its settings key the cache).
WAVE_CONFIG = config.WaveAugmentConfig()


def wave_draw(data, inputs: Sequence[str], seed: int, device: torch.device, progress: bool = False,
              wave: config.WaveAugmentConfig | None = None) -> "WaveDraw":
    """The cached augmented copies of ``data``'s training clips (built on first use, see
    :func:`ser_utils.features.wave_cache.augmented_copies`) for the model's ``inputs``, x1d scaled
    with the run's training statistics. The copies are data, shared by every training seed (they
    are drawn with :data:`ser_utils.config.SEED`); ``seed`` draws which copy each epoch uses."""
    from ser_utils.features import wave_cache

    if not hasattr(data.features, "cache_dir"):
        raise ValueError("augment='wave' augments the recordings, but this TrainingData has no FeatureSet to find "
                         "them: build it with TrainingData.from_features(feature_set)")
    train = data.indices("train")
    rows = np.arange(len(data.y)) if data.feature_rows is None else np.asarray(data.feature_rows)
    copies = wave_cache.augmented_copies(data.features, rows[train], wave or WAVE_CONFIG, seed=config.SEED, progress=progress)
    arrays = {}
    if "x1d" in inputs:
        arrays["x1d"] = copies.x1d
        if data.standardized:
            arrays["x1d"] = (copies.x1d - data.x1d_mean[None, None, :, None]) / data.x1d_std[None, None, :, None]
    if "x2d" in inputs:
        arrays["x2d"] = copies.x2d
    draw = WaveDraw(arrays, train, device, seed + 2)
    draw.key = copies.key
    return draw


class WaveDraw:
    """Per epoch, one cached augmented copy of every training clip written into the training rows
    of the device tensors (``x1d``/``x2d``); validation and test rows are never written.

    ``copies`` maps an input name to a float32 array ``[K, n_train, ...]`` already standardised
    like the run's inputs; ``rows`` are the training rows of the tensors, in the same order.
    The draw comes from a generator seeded with the run's seed (reproducible on the CPU).
    """

    def __init__(self, copies: dict[str, np.ndarray], rows: np.ndarray, device: torch.device, seed: int):
        self.copies = {name: torch.as_tensor(np.ascontiguousarray(array)).to(device) for name, array in copies.items()}
        self.rows = torch.as_tensor(np.asarray(rows, dtype=np.int64)).to(device)
        self.n_copies = next(iter(self.copies.values())).shape[0]
        self.generator = torch.Generator().manual_seed(seed)
        self.key = ""  # the wave cache folder the copies came from

    def apply(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Write this epoch's draw into ``tensors``; returns the copy index of every training clip."""
        choice = torch.randint(0, self.n_copies, (len(self.rows),), generator=self.generator)
        picked = choice.to(self.rows.device)
        clips = torch.arange(len(self.rows), device=self.rows.device)
        for name, copies in self.copies.items():
            tensors[name][self.rows] = copies[picked, clips]
        return choice
