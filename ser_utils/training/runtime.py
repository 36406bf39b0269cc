"""Where and how a run computes: the device, the seeds, and process-wide torch settings.

Shared by training and inference, so a checkpoint is evaluated with the same numerics it was
trained with (by default bf16 autocast on CUDA, fp32 on the CPU; ``--precision`` overrides).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when available, else the CPU; otherwise as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    return device


def device_name(device: torch.device) -> str:
    """Human-readable device, e.g. ``NVIDIA H100 80GB HBM3`` or ``cpu (16 threads)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def usable_cpus() -> int:
    """Cores this process may run on (the affinity mask, which os.cpu_count ignores)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: Numeric precisions a run may use (``--precision``); "auto" is bf16 on CUDA and fp32 elsewhere.
PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``auto``/None -> ``bf16`` on CUDA (tensor cores, no loss scaling needed) and ``fp32`` on the CPU."""
    if precision in (None, "auto"):
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def torch_runtime(device: torch.device, fixed_shapes: bool = True) -> Iterator[None]:
    """Process-wide torch settings for one run, restored afterwards.

    CPU: all usable cores, deterministic algorithms (warn-only, so an op without a
    deterministic CPU kernel warns rather than fails). CUDA: cuDNN autotuning only when every
    batch has the same shape (``fixed_shapes``): autotuning picks the fastest kernel per input
    shape, so with batches cropped to their longest clip it would re-tune at almost every step.
    """
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    try:
        if device.type == "cpu":
            torch.set_num_threads(usable_cpus())
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.backends.cudnn.benchmark = bool(fixed_shapes)
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def autocast(device: torch.device, precision: str | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast when the precision (:func:`resolve_precision`) is bf16, on CUDA or the CPU;
    a no-op for fp32. Losses, metrics and probabilities are always computed in fp32 after it."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
