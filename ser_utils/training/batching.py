"""Feeding a model: its inputs as device tensors, gathered per batch, and batched evaluation.

The single seam between preloaded feature tensors and a model, shared by training and inference,
so an architecture with other inputs (variable lengths, ...) extends it here. Each model names the
tensors its ``forward`` takes in its ``inputs`` attribute (:mod:`ser_utils.models`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ser_utils.models import LENGTH_OF, needs_lengths
from ser_utils.training.runtime import autocast

#: Batch size for evaluation (no gradients, so larger than the training batch).
EVAL_BATCH_SIZE = 512
#: Evaluation batch of variable-length models: their un-resized spectrograms are up to 5x wider.
VARLEN_EVAL_BATCH_SIZE = 128
#: Length-bucketed training batches (variable-length models) are sorted within shuffled chunks
#: of this many batches: little padding, yet every epoch mixes lengths differently.
BUCKET_CHUNK_BATCHES = 20


def to_device_tensors(data: Any, names: tuple[str, ...], device: torch.device) -> dict[str, torch.Tensor]:
    """The model's input arrays as device tensors, once.

    No channels_last: the inputs have one channel, where that layout cannot help, and the
    training benchmark showed no gain for the report's models' trunks on a CPU.
    """
    tensors = {}
    for name in names:
        array = getattr(data, name, None)
        if array is None:
            raise ValueError(f"the model reads {name!r} but the TrainingData has no {name}")
        dtype = torch.long if name in LENGTH_OF.values() else torch.float32  # lengths stay integers
        tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=dtype).to(device)
        tensors[name] = tensor
    return tensors


def batch_inputs(model: nn.Module, tensors: dict[str, torch.Tensor], batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The arguments of ``model.forward`` for the clips ``batch``: one gather per input tensor.

    The single seam between the preloaded tensors and a model, shared by training and
    evaluation, so an architecture with other inputs (variable lengths, ...) extends it here.

    Variable-length models (``needs_lengths``): each padded tensor is cropped to the longest
    clip of the batch, so a batch is padded only as far as it needs (one small host sync).
    """
    if not needs_lengths(model):
        return tuple(tensors[name][batch] for name in model.inputs)
    inputs = {name: tensors[name][batch] for name in model.inputs}
    for var, length in LENGTH_OF.items():
        if var in inputs and length in inputs:
            inputs[var] = inputs[var][..., :max(int(inputs[length].max()), 1)]
    return tuple(inputs[name] for name in model.inputs)


def sort_lengths(model: nn.Module, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """CPU lengths (one per clip) that bucket a variable-length model's batches: the 2D ones when
    it reads them (the costlier trunk), else the 1D ones."""
    names = [length for length in ("len2d", "len1d") if length in model.inputs]
    return tensors[names[0]].cpu()


def length_batches(idx: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                   chunk_batches: int = BUCKET_CHUNK_BATCHES) -> list[torch.Tensor]:
    """Training batches of similar length: shuffle ``idx``, sort each chunk of ``chunk_batches``
    batches by ``lengths[idx]``, cut it into batches, and shuffle the batches.

    Every clip appears once; only the last batch of a chunk can be short. ``lengths`` is indexed
    by clip (CPU). Deterministic for a given generator state (stable sorts).
    """
    order = idx[torch.randperm(len(idx), generator=generator)]
    chunk = batch_size * max(1, chunk_batches)
    batches: list[torch.Tensor] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[torch.argsort(lengths[part], stable=True)]
        batches.extend(part.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_batches(model: nn.Module, tensors: dict[str, torch.Tensor], train_idx: torch.Tensor, batch_size: int,
                   generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """The batches of one epoch: slices of one permutation, or length buckets for variable-length models."""
    if needs_lengths(model):
        for batch in length_batches(train_idx, sort_lengths(model, tensors), batch_size, generator):
            yield batch.to(device, non_blocking=True)
        return
    order = train_idx[torch.randperm(len(train_idx), generator=generator)].to(device, non_blocking=True)
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


@torch.inference_mode()
def evaluate(model: nn.Module, tensors: dict[str, torch.Tensor], y: torch.Tensor, idx: torch.Tensor,
             batch_size: int = EVAL_BATCH_SIZE, precision: str | None = None) -> tuple[float, float, torch.Tensor]:
    """(mean cross-entropy, accuracy, float32 logits on the CPU) over the clips ``idx``, in eval mode.

    The forward pass runs at ``precision`` (:func:`ser_utils.training.runtime.autocast`); the logits are
    cast to fp32 before the loss, the accuracy and any probability is computed.

    Variable-length models see the clips sorted by length (less padding; the logits are put
    back in ``idx`` order) in batches of at most VARLEN_EVAL_BATCH_SIZE.
    """
    model.eval()
    device = y.device
    order = None
    if needs_lengths(model):
        order = torch.argsort(sort_lengths(model, tensors)[idx.cpu()], stable=True)
        batch_size = min(batch_size, VARLEN_EVAL_BATCH_SIZE)
    idx = idx.to(device)
    run_idx = idx if order is None else idx[order.to(device)]
    chunks = []
    for start in range(0, len(run_idx), batch_size):
        batch = run_idx[start:start + batch_size]
        with autocast(device, precision):
            chunks.append(model(*batch_inputs(model, tensors, batch)).float())
    logits = torch.cat(chunks)
    if order is not None:
        logits = logits[torch.argsort(order).to(device)]
    target = y[idx]
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(1) == target).float().mean()
    loss_value, acc_value = torch.stack([loss, acc]).tolist()
    return loss_value, acc_value, logits.cpu()


