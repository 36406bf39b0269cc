"""Checkpoints: what ``best.pt`` holds, loading a model back, and predicting with it on feature arrays.

A checkpoint is a plain dict of tensors, numbers and strings, saved with ``torch.save`` and read
with ``torch.load(..., weights_only=True)``: a checkpoint someone hands you is data, never code.
It is self-contained, so a model can be applied to audio it has never seen without the corpus,
the feature cache or the run's other files:

* ``schema``: :data:`CHECKPOINT_SCHEMA`; another schema is refused, never guessed at;
* ``model``: the registry name and *every* constructor argument, ``classes``: the class order;
* ``preprocess``, ``feature_1d``, ``feature_2d``: the configurations the training features were
  made with (read from the feature cache's ``meta.json`` when the run had one), ``feature_version``
  (another version is refused: the numbers would differ), ``var_dtype`` (the precision the
  variable-length features were stored at) and ``longest_clip_s`` (the longest clip the model was
  trained and tested on, after preprocessing: up to that length a recording is scored whole, as a
  test clip was; see :mod:`ser_utils.predict.windowing`);
* ``x1d_mean``/``x1d_std`` and ``input_stats``: the standardisation statistics of the training split;
* ``corpus`` (``synthetic`` or ``crema-d``), ``config``, ``run_id``, ``epoch``, ``val_loss`` and
  ``versions`` (the libraries that computed it).

Recordings are turned into model inputs by :mod:`ser_utils.predict.windowing` and scored by
:mod:`ser_utils.predict.predictor`; :func:`predict` is the shared last step, on a TrainingData.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import math
import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ser_utils import config, runs
from ser_utils.training.batching import EVAL_BATCH_SIZE, evaluate, to_device_tensors
from ser_utils.errors import UserError
from ser_utils.models import MODEL_REGISTRY, build_model
from ser_utils.training.runtime import resolve_device

#: Version of the checkpoint layout; a checkpoint of another version is refused, not guessed at.
#: 3: every constructor argument, the feature configurations actually used, var_dtype,
#: longest_clip_s and the library versions.
CHECKPOINT_SCHEMA = 3
#: Libraries whose versions are recorded (they compute the features and the model's numbers).
RECORDED_LIBRARIES = ("torch", "numpy", "scipy", "librosa", "soxr", "soundfile", "webrtcvad-wheels", "ser_utils")
#: Constructor arguments never stored: the weights are in the checkpoint, not at that path.
NOT_STORED_ARGUMENTS = ("pretrained_path",)
#: Keys a checkpoint must have to be used for prediction.
REQUIRED_KEYS = ("state_dict", "model", "classes", "preprocess", "feature_1d", "feature_2d", "feature_version",
                 "corpus", "config")


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, of another schema or feature version, or inconsistent."""


# ------------------------------------------------------------------------------ writing
def model_arguments(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Every constructor argument of model ``name``: its defaults, overridden by ``given``.

    Recording the defaults too keeps a checkpoint valid if a default changes later.
    """
    parameters = inspect.signature(MODEL_REGISTRY[name].__init__).parameters
    arguments = {p.name: p.default for p in parameters.values()
                 if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    arguments.update(given)
    for key in NOT_STORED_ARGUMENTS:
        arguments.pop(key, None)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in arguments.items()}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that compute features and predictions (``?`` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "?"
    return versions


def feature_settings(data: Any) -> dict[str, Any]:
    """The preprocessing and feature configurations the data's features were made with.

    Read from the feature cache's ``meta.json`` when the data came from a FeatureSet (what was
    really used), else the defaults of :mod:`ser_utils.config` (arrays built by hand).
    """
    from ser_utils import fileio
    from ser_utils.features.cache import FEATURES_VERSION, VAR_DTYPE

    defaults = {"preprocess": dataclasses.asdict(config.PreprocessConfig()),
                "feature_1d": dataclasses.asdict(config.Feature1DConfig()),
                "feature_2d": dataclasses.asdict(config.Feature2DConfig()),
                "feature_version": FEATURES_VERSION, "features_from": "defaults"}
    cache_dir = getattr(getattr(data, "features", None), "cache_dir", None)
    meta = fileio.read_json(Path(cache_dir) / "meta.json") if cache_dir else None
    if meta and all(key in meta for key in ("pre", "f1", "f2", "version")):
        defaults.update(preprocess=meta["pre"], feature_1d=meta["f1"], feature_2d=meta["f2"],
                        feature_version=int(meta["version"]), features_from=f"feature cache {Path(cache_dir).name}")
    defaults["var_dtype"] = np.dtype(VAR_DTYPE).name
    defaults["longest_clip_s"] = _longest_clip(data)
    return defaults


def _longest_clip(data: Any) -> float | None:
    """The longest clip of the data after preprocessing (seconds), when its FeatureSet says."""
    clips = getattr(getattr(data, "features", None), "clips", None)
    if clips is None or "duration_out_s" not in clips:
        return None
    rows = np.arange(len(data.y)) if data.feature_rows is None else np.asarray(data.feature_rows)
    durations = clips["duration_out_s"].to_numpy(dtype=float)[rows]
    return float(np.nanmax(durations)) if len(durations) else None


def build_checkpoint(cfg: config.TrainConfig, state_dict: dict[str, torch.Tensor], data: Any, epoch: int,
                     val_loss: float) -> dict[str, Any]:
    """The dict ``best.pt`` holds (see the module docstring for why each part is there).

    ``data`` is the run's (standardised) :class:`~ser_utils.training.data.TrainingData`: its
    classes, corpus, standardisation statistics and FeatureSet are recorded.
    """
    def tensor(a: Any) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float32))

    given = {"n_classes": len(data.classes), "activation": cfg.activation, "dropout_conv": cfg.dropout_conv,
             "dropout_head": cfg.dropout_head}
    return {
        "schema": CHECKPOINT_SCHEMA,
        "state_dict": state_dict, "run_id": cfg.run_id, "config": cfg.to_dict(),
        "model": {"name": cfg.model, "kwargs": model_arguments(cfg.model, given)},
        "classes": list(data.classes), "epoch": int(epoch), "val_loss": float(val_loss), "corpus": str(data.corpus),
        "x1d_mean": tensor(data.x1d_mean), "x1d_std": tensor(data.x1d_std),
        "input_stats": {k: [tensor(m), tensor(s)] for k, (m, s) in (data.input_stats or {}).items()},
        **feature_settings(data),
        "versions": library_versions(),
    }


# ------------------------------------------------------------------------------ reading
def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint (weights only; never unpickles code). CheckpointError says what is wrong."""
    from ser_utils.features.cache import FEATURES_VERSION

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint; train the run first (python -m ser_utils sweep)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}); retrain the run") from None
    if not isinstance(ckpt, dict) or ckpt.get("schema") != CHECKPOINT_SCHEMA:
        found = ckpt.get("schema", "none") if isinstance(ckpt, dict) else "none"
        raise CheckpointError(f"{path}: checkpoint schema {found}, this version reads schema {CHECKPOINT_SCHEMA}; "
                              f"retrain the run with this version (python -m ser_utils sweep --force)")
    missing = [key for key in REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}; retrain the run with this version")
    if ckpt["feature_version"] != FEATURES_VERSION:
        raise CheckpointError(f"{path}: made with feature version {ckpt['feature_version']}, this version computes "
                              f"feature version {FEATURES_VERSION} (the model's inputs would differ); retrain the run "
                              f"with this version (python -m ser_utils sweep --force)")
    name = ckpt["model"].get("name")
    if name not in MODEL_REGISTRY:
        raise CheckpointError(f"{path}: model {name!r} is not in this version's registry "
                              f"({', '.join(MODEL_REGISTRY)}); use the version that trained it")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], source: str | Path = "checkpoint") -> nn.Module:
    """The checkpoint's model in eval mode, with its standardisation attached (``x1d_mean``/``x1d_std``,
    ``input_stats``) and ``classes``, ready for :func:`predict`."""
    try:
        model = build_model(ckpt["model"]["name"], **ckpt["model"]["kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as err:
        first = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{source}: the weights do not fit model {ckpt['model']['name']!r} of this version "
                              f"({first}); retrain the run with this version") from None
    model.x1d_mean, model.x1d_std = ckpt.get("x1d_mean"), ckpt.get("x1d_std")
    model.input_stats = {k: (np.asarray(m), np.asarray(s)) for k, (m, s) in (ckpt.get("input_stats") or {}).items()}
    model.classes = tuple(ckpt["classes"])
    return model.eval()


def load_model(run_dir: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The best checkpoint of a run as a model in eval mode, ready for :func:`predict`."""
    path = Path(run_dir) / runs.CHECKPOINT_FILE
    return model_from_checkpoint(read_checkpoint(path, map_location), path)


def is_synthetic_corpus(corpus: str) -> bool:
    """True when a model's training corpus was (or included) the synthetic demo corpus."""
    return "synthetic" in str(corpus).split("+")


# ----------------------------------------------------------------------------- predicting
def predict(model: nn.Module, data: Any, idx: np.ndarray | None = None, device: str = "auto",
            batch_size: int = EVAL_BATCH_SIZE, precision: str | None = None) -> np.ndarray:
    """Class probabilities [len(idx), n_classes] for the clips ``idx`` of a TrainingData (all when None).

    Inputs are standardised as in training: with the statistics attached by :func:`load_model`
    when present, else with the data's own training split (identical for the data the model was
    trained on). ``precision`` is the run's (``cfg.numeric_precision``; None: fp32 on the CPU).

    The mean-1D model's ``x1d_avg`` is the mean of each clip's *valid* frames, as in training;
    data that cannot provide them (no ``x1d_avg``, no ``x1d_var``, no FeatureSet) is refused
    rather than averaged over the zero padding of the fixed 301 frames.
    """
    dev = resolve_device(device)
    if "x1d_avg" in model.inputs and data.x1d_avg is None and data.x1d_var is None \
            and not hasattr(data.features, "frames_var"):
        raise ValueError("the model reads x1d_avg (the mean over each clip's valid frames), but the data holds only "
                         "the padded 301 frames: pass x1d_avg, x1d_var + len1d, or a TrainingData.from_features(...)")
    if "x1d" in model.inputs and not data.standardized:
        mean, std = getattr(model, "x1d_mean", None), getattr(model, "x1d_std", None)
        if mean is not None:
            mean, std = np.asarray(mean), np.asarray(std)
            x1d = ((data.x1d - mean[None, :, None]) / std[None, :, None]).astype(np.float32)
            data = replace(data, x1d=x1d, x1d_mean=mean, x1d_std=std)
        else:
            data = data.standardize()
    data = data.with_inputs(model.inputs)
    if any(name in model.inputs for name in ("x1d_var", "x1d_avg")):
        data = data.standardize_inputs(getattr(model, "input_stats", None) or None)
    idx = np.arange(len(data.y)) if idx is None else np.array(idx, dtype=np.int64)
    if len(idx) == 0:
        return np.zeros((0, len(getattr(model, "classes", data.classes))), dtype=np.float32)
    model = model.to(dev)
    tensors = to_device_tensors(data, model.inputs, dev)
    y = torch.as_tensor(data.y).to(dev)
    _, _, logits = evaluate(model, tensors, y, torch.as_tensor(idx), batch_size=batch_size, precision=precision)
    return logits.softmax(dim=1).numpy()


def describe(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's facts for people: model, classes, corpus, epoch, validation loss, versions."""
    val_loss = ckpt.get("val_loss")
    return {"run_id": ckpt.get("run_id"), "model": ckpt["model"]["name"], "arguments": ckpt["model"]["kwargs"],
            "classes": list(ckpt["classes"]), "corpus": ckpt["corpus"], "epoch": ckpt.get("epoch"),
            "val_loss": None if val_loss is None or not math.isfinite(val_loss) else float(val_loss),
            "feature_version": ckpt["feature_version"], "features_from": ckpt.get("features_from"),
            "longest_clip_s": ckpt.get("longest_clip_s"), "versions": ckpt.get("versions", {})}
