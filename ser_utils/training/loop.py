"""Train one configuration and write its run folder: the report's protocol, made fast and safe.

:func:`run` trains a ``TrainConfig`` on a :class:`~ser_utils.training.data.TrainingData` and
writes ``<out_dir>/<cfg.run_id>/`` in the format :mod:`ser_utils.runs` owns. ``metrics.json`` is
written last; every file goes through :mod:`ser_utils.fileio`, so a crash never leaves a
half-written file. A finished run with exactly the requested settings is loaded and returned,
not retrained (``force=True`` retrains it); one with other settings is a conflict that names them.

Speed: the features are moved to the device once as tensors; each epoch draws one permutation
and batches by index slicing (no DataLoader, no per-clip Python); losses and accuracies are
accumulated on the device and read back once per epoch. On CUDA the forward pass runs under
bf16 autocast unless ``numeric_precision="fp32"`` (``"bf16"`` also works on the CPU); losses,
metrics and the probabilities in predictions.csv are computed in fp32. On CPU all usable cores are used.

Determinism: on CPU two runs with the same seed give identical histories and metrics (python,
numpy and torch are seeded, the batch order comes from a dedicated generator, and
``torch.use_deterministic_algorithms`` is switched on for the duration of the run). On CUDA
results are *not* bit-reproducible: cuDNN convolution backward passes accumulate with atomics,
and bf16 autocast amplifies the resulting rounding differences. Expect run-to-run differences
of a few tenths of a point there.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ser_utils import config, fileio, runs, stats
from ser_utils.training import augment as augmentation, checkpoint
from ser_utils.training.batching import batch_inputs, evaluate, to_device_tensors, train_batches
from ser_utils.config import TrainConfig
from ser_utils.training.metrics import classification_metrics
from ser_utils.models import MODEL_REGISTRY, build_model, count_parameters, get_activation, needs_lengths
from ser_utils.training.runtime import (autocast, device_name, resolve_device, resolve_precision, seed_everything,
                               torch_runtime)
from ser_utils.training.data import SPLIT_NAMES, STANDARDIZED_INPUTS, TrainingData

#: An epoch's mean training loss above this many times ln(n_classes) (the loss of a uniform
#: guess, ~1.79 nats for 6 classes) counts as divergence: the logits are then thousands of
#: nats apart. Adam with a huge rate (lr 1e4) blows the loss up to ~1e9 without ever producing
#: inf/NaN because GroupNorm renormalises the exploding activations, so a finite-loss test
#: alone would let such a run burn its whole budget. Transient spikes of healthy runs at
#: lr 0.1 stay in the tens.
DIVERGENCE_LOSS_FACTOR = 1000.0


class RunExistsError(FileExistsError):
    """The run folder holds a finished run trained with other settings; pass force=True."""


# ======================================================================= schedule
def lr_lambda(step: int, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Learning-rate factor at optimiser step ``step`` (0-based): linear warm-up, then cosine.

    Warm-up rises linearly from 1/(warmup_steps+1) (close to 0, but not a wasted zero step)
    to exactly 1.0 at ``step == warmup_steps``; the cosine then decays from 1.0 to exactly
    ``final_fraction`` at the last step (``total_steps - 1``). Steps past the end stay there.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = total_steps - 1 - warmup_steps
    if span <= 0:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / span)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_steps(cfg: TrainConfig, n_train: int) -> dict[str, int]:
    """Steps per epoch, total steps and warm-up steps for a configuration.

    The warm-up is capped at half the run, so a short smoke-test run (say 2 epochs with the
    default 5 warm-up epochs) still reaches the full rate and decays, instead of never leaving
    the warm-up. With the report's 150 epochs the cap never applies.
    """
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total // 2)
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total, "warmup_steps": warmup}


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                   n_train: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over :func:`lr_lambda`, to be stepped once per batch."""
    steps = schedule_steps(cfg, n_train)
    fn = functools.partial(lr_lambda, total_steps=steps["total_steps"], warmup_steps=steps["warmup_steps"],
                           final_fraction=cfg.final_lr_fraction)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


# =================================================================== the hot loop
def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, tensors: dict[str, torch.Tensor],
                y: torch.Tensor, train_idx: torch.Tensor, batch_size: int,
                generator: torch.Generator, precision: str | None = None,
                augment: Callable[[tuple, tuple], tuple] | None = None) -> tuple[float, float]:
    """One pass over the training clips in a fresh random order; returns (mean loss, accuracy).

    ``augment(model.inputs, inputs)`` (``--augment spec``: :func:`ser_utils.training.augment.spec_augment`)
    transforms each training batch's inputs; evaluation never sees it.

    ``train_idx`` lives on the CPU (the permutation is drawn there from ``generator`` for
    reproducibility) and is moved to the device once per epoch; batches are slices of it.
    Loss and correct counts accumulate on the device: one host sync per epoch. Variable-length
    models get length-bucketed batches instead (:func:`length_batches`).
    """
    model.train()
    device = y.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    for batch in train_batches(model, tensors, train_idx, batch_size, generator, device):
        target = y[batch]
        inputs = batch_inputs(model, tensors, batch)
        if augment is not None:
            inputs = augment(model.inputs, inputs)
        with autocast(device, precision):
            logits = model(*inputs)
        loss = F.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(batch)
        correct += (logits.detach().argmax(1) == target).sum()
    mean_loss, accuracy = (torch.stack([loss_sum, correct]) / len(train_idx)).tolist()
    return mean_loss, accuracy




def is_diverged(loss: float, n_classes: int) -> bool:
    """Non-finite, or more than DIVERGENCE_LOSS_FACTOR times the loss of a uniform guess."""
    return not math.isfinite(loss) or loss > DIVERGENCE_LOSS_FACTOR * math.log(max(n_classes, 2))



def test_intervals(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """95% intervals of the test accuracy, weighted F1 and UAR (a seeded bootstrap over the test
    clips, :func:`ser_utils.stats.run_intervals`), as ``accuracy_lo``, ``accuracy_hi``, ``f1_lo``, ...

    With about 2,230 test clips an accuracy near 60% is only known to about +-2 points: the
    interval is what tells two configurations apart, or not.
    """
    found = stats.run_intervals(y_true, y_pred, labels=range(n_classes))
    renamed = {"accuracy": "accuracy", "f1": "f1", "ua": "uar"}
    return {f"{renamed[m]}{side}": found[f"{m}{side}"] for m in renamed for side in ("_lo", "_hi")}


def chance_probs(data: TrainingData, n: int) -> torch.Tensor:
    """Class priors of the training split for ``n`` clips: the predictions of a run that learnt nothing."""
    counts = np.bincount(data.y[data.split == "train"], minlength=len(data.classes)).astype(np.float64)
    priors = counts / counts.sum() if counts.sum() else np.full(len(data.classes), 1.0 / len(data.classes))
    return torch.as_tensor(priors, dtype=torch.float32).expand(n, -1).clone()



# ============================================================================ run
@dataclass
class FitResult:
    """What the epoch loop hands to the evaluation: history, best weights, outcome."""

    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor] | None
    best_epoch: int
    best_val_loss: float
    status: str
    epoch_times: list[float]
    note: str = ""


def as_training_data(data: Any, cfg: TrainConfig) -> TrainingData:
    """A TrainingData as is; a ``features.FeatureSet`` split by ``cfg.split`` and ``cfg.split_seed``.

    The split seed is not the training seed: repetitions with several ``cfg.seed`` values keep the
    report's test set (split seed 42) and differ only in their weights and batch order.
    """
    if isinstance(data, TrainingData):
        return data
    if all(hasattr(data, name) for name in ("manifest", "x1d", "x2d")):
        return TrainingData.from_features(data, split_method=cfg.split, seed=cfg.split_seed)
    raise TypeError(f"run() needs a TrainingData or a features.FeatureSet, got {type(data).__name__}")


def _validate(cfg: TrainConfig, data: TrainingData) -> None:
    if cfg.model not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {cfg.model!r}; registered models: {', '.join(MODEL_REGISTRY)}")
    get_activation(cfg.activation)  # raises ValueError listing the valid names
    augmentation.check_augment(cfg.augment)
    readable = set(augmentation.WAVE_INPUTS)
    inputs = tuple(getattr(MODEL_REGISTRY[cfg.model], "inputs", ()))
    if augmentation.uses_wave(cfg.augment) and not set(inputs) <= readable:
        raise ValueError(f"augment={cfg.augment!r} caches augmented x1d/x2d features, but model {cfg.model!r} reads "
                         f"{', '.join(inputs)}; use augment='spec' for it")
    if data.split_method is not None and data.split_method != cfg.split:
        raise ValueError(f"the data were split with {data.split_method!r} but cfg.split is {cfg.split!r}")
    for name in SPLIT_NAMES:
        if not (data.split == name).any():
            raise ValueError(f"the data have no {name} clips")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")


def _fit(cfg: TrainConfig, model: nn.Module, tensors: dict[str, torch.Tensor], y: torch.Tensor,
         idx: dict[str, torch.Tensor], n_classes: int, progress: bool, wandb_run: Any,
         wave: augmentation.WaveDraw | None = None) -> FitResult:
    """The epoch loop: train, validate, keep the best-validation-loss weights, stop on divergence.

    ``wave`` (``--augment wave``) writes one augmented copy per training clip before each epoch;
    ``--augment spec`` masks each training batch from its own generator (seeded by ``cfg.seed``).
    """
    from tqdm.auto import tqdm

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, len(idx["train"]))
    generator = torch.Generator().manual_seed(cfg.seed)
    masks = None
    if augmentation.uses_spec(cfg.augment):
        mask_generator = torch.Generator(device=y.device).manual_seed(cfg.seed + 1)
        masks = functools.partial(augmentation.spec_augment, generator=mask_generator)
    result = FitResult(history=[], best_state=None, best_epoch=0, best_val_loss=math.inf,
                       status=runs.STATUS_COMPLETE, epoch_times=[])
    bar = tqdm(range(1, cfg.epochs + 1), desc=cfg.run_id, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        start = time.perf_counter()
        if wave is not None:
            wave.apply(tensors)
        train_loss, train_acc = train_epoch(model, optimizer, scheduler, tensors, y, idx["train"],
                                            cfg.batch_size, generator, cfg.numeric_precision, masks)
        lr = optimizer.param_groups[0]["lr"]
        val_loss, val_acc = math.nan, math.nan
        if not is_diverged(train_loss, n_classes):
            val_loss, val_acc, _ = evaluate(model, tensors, y, idx["val"], precision=cfg.numeric_precision)
        result.epoch_times.append(time.perf_counter() - start)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
               "val_acc": val_acc, "lr": lr, "epoch_time_s": result.epoch_times[-1]}
        result.history.append(row)
        if wandb_run is not None:
            wandb_run.log({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if is_diverged(train_loss, n_classes) or not math.isfinite(val_loss):
            result.status = runs.STATUS_DIVERGED
            result.note = f"loss diverged at epoch {epoch} (train {train_loss:.4g}, val {val_loss:.4g})"
            break
        if val_loss < result.best_val_loss:
            result.best_val_loss, result.best_epoch = val_loss, epoch
            result.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", val_loss=f"{val_loss:.3f}",
                        val_acc=f"{val_acc:.3f}", lr=f"{lr:.2e}")
    bar.close()
    return result


def _test_predictions(model: nn.Module, fit: FitResult, data: TrainingData, tensors: dict[str, torch.Tensor],
                      y: torch.Tensor, test_idx: torch.Tensor,
                      precision: str) -> tuple[float, torch.Tensor]:
    """(test loss, probabilities) of the best checkpoint, or chance-level when there is none."""
    if fit.best_state is None:
        return math.nan, chance_probs(data, len(test_idx))
    model.load_state_dict(fit.best_state)
    loss, _, logits = evaluate(model, tensors, y, test_idx, precision=precision)
    return loss, logits.softmax(dim=1)


def _predictions_frame(data: TrainingData, test_idx: np.ndarray, probs: torch.Tensor) -> pd.DataFrame:
    classes = np.array(data.classes)
    frame = pd.DataFrame({"index": test_idx})
    if data.ids is not None:
        frame["path"] = data.ids[test_idx]
    frame["true"] = classes[data.y[test_idx]]
    frame["predicted"] = classes[probs.argmax(1).numpy()]
    for i, c in enumerate(data.classes):
        frame[f"p_{c}"] = probs[:, i].numpy()
    return frame


def _start_wandb(cfg: TrainConfig, run_dir: Path, run_config: dict) -> Any:
    """Start a W&B run (lazily imported; WANDB_MODE=offline works without an account)."""
    try:
        import wandb
    except ImportError as err:
        raise ImportError("cfg.wandb=True needs Weights & Biases, which is not installed: "
                          "pip install 'ser_utils[wandb]' (or pip install wandb)") from err
    project = os.environ.get("WANDB_PROJECT", "ser-crema-d")
    return wandb.init(project=project, name=cfg.run_id, config=fileio.jsonable(run_config), dir=str(run_dir))


def _finish_wandb(wandb_run: Any, metrics: dict | None, failed: bool = False) -> None:
    if wandb_run is None:
        return
    if metrics is not None:
        flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        flat.update({f"f1_{c}": v for c, v in metrics.get("per_class_f1", {}).items()})
        wandb_run.summary.update(fileio.jsonable(flat))
    wandb_run.finish(exit_code=1 if failed else 0)


def _run_config(cfg: TrainConfig, data: TrainingData, device: torch.device) -> dict[str, Any]:
    return {**cfg.to_dict(), "run_id": cfg.run_id, "data": data.info(),
            "schedule": schedule_steps(cfg, int((data.split == "train").sum())),
            "device": str(device), "device_name": device_name(device), "torch": str(torch.__version__),
            "precision_used": resolve_precision(cfg.numeric_precision, device), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _train_and_write(cfg: TrainConfig, data: TrainingData, run_dir: Path, device: torch.device,
                     progress: bool, wandb_run: Any) -> dict[str, Any]:
    """Everything between the folder check and metrics.json: train, evaluate, write the files."""
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    model = build_model(cfg.model, n_classes=len(data.classes), activation=cfg.activation,
                        dropout_conv=cfg.dropout_conv, dropout_head=cfg.dropout_head).to(device)
    data = data.with_inputs(model.inputs)  # the alternatives' inputs; the same object for the report's models
    if any(name in model.inputs for name in STANDARDIZED_INPUTS):
        data = data.standardize()
    tensors = to_device_tensors(data, model.inputs, device)
    y = torch.tensor(np.asarray(data.y), device=device)  # a copy: labels may come from a read-only memory map
    idx = {s: torch.as_tensor(data.indices(s)) for s in SPLIT_NAMES}

    wave = None
    if augmentation.uses_wave(cfg.augment):  # K augmented copies of the training clips, one per epoch
        wave = augmentation.wave_draw(data, model.inputs, cfg.seed, device, progress)
    fit = _fit(cfg, model, tensors, y, idx, len(data.classes), progress, wandb_run, wave)
    test_loss, probs = _test_predictions(model, fit, data, tensors, y, idx["test"], cfg.numeric_precision)
    scores = classification_metrics(torch.as_tensor(data.y[idx["test"].numpy()]), probs, data.classes)
    scores.update(test_intervals(data.y[idx["test"].numpy()], probs.argmax(1).numpy(), len(data.classes)))

    fileio.write_csv(run_dir / runs.HISTORY_FILE, pd.DataFrame(fit.history))
    if fit.best_state is not None:
        ckpt = checkpoint.build_checkpoint(cfg, fit.best_state, data, fit.best_epoch, fit.best_val_loss)
        fileio.write_atomic(run_dir / runs.CHECKPOINT_FILE, lambda tmp: torch.save(ckpt, tmp))
    confusion = pd.DataFrame(scores.pop("confusion"), index=pd.Index(data.classes, name="true"),
                             columns=list(data.classes))
    fileio.write_csv(run_dir / runs.CONFUSION_FILE, confusion, index=True)
    fileio.write_csv(run_dir / runs.PREDICTIONS_FILE, _predictions_frame(data, idx["test"].numpy(), probs))

    info = data.info()
    metrics = {
        "status": fit.status, "run_id": cfg.run_id, "model": cfg.model, "activation": cfg.activation,
        **cfg.result_settings(), **scores,
        "test_loss": test_loss, "best_epoch": fit.best_epoch, "epochs_run": len(fit.history),
        "best_val_loss": fit.best_val_loss, "wall_time_s": time.perf_counter() - t0,
        "time_per_epoch_s": float(np.mean(fit.epoch_times)) if fit.epoch_times else math.nan,
        "n_params": count_parameters(model), "device": str(device), "device_name": device_name(device),
        "precision_used": resolve_precision(cfg.numeric_precision, device),
        "corpus": info["corpus"], "n_train": info["n_train"], "n_val": info["n_val"], "n_test": info["n_test"],
        "note": fit.note or None,
    }
    if wave is not None:
        metrics["wave_cache"] = wave.key
    return metrics


def run(cfg: TrainConfig, data: TrainingData | Any, out_dir: str | Path = config.RUNS_DIR, force: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Train one configuration, write ``out_dir/<cfg.run_id>/`` and return its metrics dict.

    ``data`` is a :class:`TrainingData` or a ``features.FeatureSet`` (split here by
    ``cfg.split`` and ``cfg.split_seed``, see :func:`as_training_data`). x1d is standardised inside
    the run with training-split statistics (:meth:`TrainingData.standardize`), never in the cache.

    A finished run in that folder with exactly these settings (every field of
    ``cfg.result_settings()`` and the corpus) is not retrained: its metrics are returned with
    ``reused: True``. One with other settings raises :class:`RunExistsError` naming the differing
    fields; ``force=True`` retrains in both cases. A diverging run (non-finite or exploding loss)
    is *not* an error: it stops early and is recorded with status ``diverged`` and the test
    metrics of its best checkpoint (chance-level predictions when no epoch finished cleanly). Any
    other exception writes metrics.json with status ``failed`` and the error, then propagates, so
    the sweep can record it and move on; a failed folder is not finished, so the next call retries it.
    """
    data = as_training_data(data, cfg)
    run_dir = Path(out_dir) / cfg.run_id
    _validate(cfg, data)
    if runs.is_finished(run_dir) and not force:
        diffs = runs.differences(run_dir, cfg.result_settings(), data.corpus, data.corpus_clips)
        if diffs:
            raise RunExistsError(f"{run_dir} holds a finished run trained with other settings ({', '.join(diffs)}); "
                                 f"pass force=True to train it again, or use another out_dir")
        return {**(runs.load_run(run_dir)["metrics"] or {}), "reused": True}
    device = resolve_device(cfg.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.clear_training_files(run_dir)
    wandb_run = None
    with torch_runtime(device, fixed_shapes=not needs_lengths(MODEL_REGISTRY[cfg.model])):
        run_config = _run_config(cfg, data, device)
        try:
            fileio.write_json(run_dir / runs.CONFIG_FILE, run_config)
            if cfg.wandb:
                wandb_run = _start_wandb(cfg, run_dir, run_config)
            metrics = _train_and_write(cfg, data, run_dir, device, progress, wandb_run)
            fileio.write_json(run_dir / runs.METRICS_FILE, metrics)  # last: marks the folder finished
        except Exception as err:
            _write_failed(run_dir, cfg, err)
            with contextlib.suppress(Exception):
                _finish_wandb(wandb_run, None, failed=True)
            raise
    try:
        _finish_wandb(wandb_run, metrics)
    except Exception as err:  # the run folder is the record; a logging hiccup must not fail the run
        warnings.warn(f"Weights & Biases could not finish the run: {err}", stacklevel=2)
    return {**fileio.jsonable(metrics), "reused": False}


def _write_failed(run_dir: Path, cfg: TrainConfig, err: BaseException) -> None:
    payload = {"status": runs.STATUS_FAILED, "run_id": cfg.run_id, **cfg.result_settings(),
               "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    with contextlib.suppress(OSError):
        fileio.write_json(run_dir / runs.METRICS_FILE, payload)
