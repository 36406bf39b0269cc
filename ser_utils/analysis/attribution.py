"""Looking inside a trained model: which parts of the log-mel it reads, and how it groups the clips.

Notebook 08's error analysis loads the best run whose model reads the log-mel image (``x2d``;
the 2D CNN, the combined model, the ResNets) from its checkpoint
(:func:`ser_utils.training.checkpoint.read_checkpoint`), recomputes the inputs of some of its test
clips from their audio with the checkpoint's own preprocessing and feature settings, and then

* **occlusion** (captum's ``Occlusion``): a patch of the log-mel is set to 0 (the quietest value
  of the [0, 1] image) and the drop of the target class's logit is the patch's attribution;
  with ``stride == patch`` every pixel belongs to exactly one patch;
* **saliency** (captum's ``Saliency``): |d logit / d pixel|, one backward pass per clip;
* **embeddings**: the input of the model's last ``nn.Linear`` (the penultimate layer), caught by a
  forward pre-hook, projected to 2D with PCA or t-SNE (scikit-learn), and the share of each clip's
  nearest neighbours there that share its emotion.

A model reading variable-length inputs is left out: its inputs are not one fixed image per clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ser_utils import config, runs
from ser_utils.analysis.error_analysis import locate_clip
from ser_utils.data import audio
from ser_utils.models.registry import MODEL_REGISTRY
from ser_utils.training import checkpoint

#: The inputs this module can recompute from a clip's audio (one fixed array each).
FIXED_INPUTS = ("x1d", "x2d")
PATCH = 8  # occlusion patch: 8 mel bands x 8 frames of the 64 x 64 image


def reads_log_mel(model_name: str) -> bool:
    """True for a registered model that reads the log-mel image and only fixed-size inputs."""
    inputs = getattr(MODEL_REGISTRY.get(model_name), "inputs", ())
    return "x2d" in inputs and set(inputs) <= set(FIXED_INPUTS)


def pick_image_run(results: pd.DataFrame, runs_root: str | Path) -> str | None:
    """The most accurate finished run (test accuracy, as the report's tables) whose model reads the
    log-mel image and whose folder holds its checkpoint; None when there is none."""
    done = runs.finished(results)
    if done.empty:
        return None
    done = done[done["model"].map(reads_log_mel)].sort_values("accuracy", ascending=False, kind="stable")
    return next((r for r in done["run_id"] if (Path(runs_root) / r / runs.CHECKPOINT_FILE).is_file()), None)


@dataclass
class Clips:
    """Test clips ready for a model: inputs as the run's training computed them."""

    names: list[str]
    labels: np.ndarray  # class index of each clip's true emotion
    inputs: dict[str, torch.Tensor] = field(repr=False)
    skipped: list[str] = field(default_factory=list)  # "<file>: <reason>" of each clip left out
    rows: list[int] = field(default_factory=list)  # each clip's row in the predictions table it came from

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, rows: Any) -> "Clips":
        rows = list(rows)
        return Clips([self.names[i] for i in rows], self.labels[rows],
                     {k: v[rows] for k, v in self.inputs.items()}, self.skipped, [self.rows[i] for i in rows])


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A run's model (eval mode, CPU) and its checkpoint dict (the settings its inputs need)."""
    path = Path(run_dir) / runs.CHECKPOINT_FILE
    ckpt = checkpoint.read_checkpoint(path)
    return checkpoint.model_from_checkpoint(ckpt, path), ckpt


def load_clips(model: nn.Module, ckpt: dict[str, Any], predictions: pd.DataFrame, root: str | Path | None = None,
               max_clips: int | None = None, seed: int = config.SEED) -> Clips:
    """The model inputs of test clips listed in predictions.csv, from their audio files.

    ``max_clips`` draws that many rows (seeded) when the table is longer. A clip whose file is
    missing or unreadable is skipped and named in ``skipped``; nothing else stops.
    """
    from ser_utils import features

    if max_clips is not None and len(predictions) > max_clips:
        predictions = predictions.sample(max_clips, random_state=seed).sort_index()
    pre = config.PreprocessConfig(**ckpt["preprocess"])
    f1, f2 = config.Feature1DConfig(**ckpt["feature_1d"]), config.Feature2DConfig(**ckpt["feature_2d"])
    classes = list(ckpt["classes"])
    names, labels, arrays, skipped, kept = [], [], {name: [] for name in model.inputs}, [], []
    for row, path, true in zip(predictions.index, predictions["path"], predictions["true"]):
        file = locate_clip(path, root)
        if file is None:
            skipped.append(f"{Path(str(path)).name}: no such file here")
            continue
        try:
            clip = audio.preprocess(str(file), pre)
        except audio.BadClipError as err:
            skipped.append(str(err))
            continue
        if "x1d" in arrays:
            arrays["x1d"].append(_standardised_1d(model, features.features_1d(clip.signal, clip.sample_rate, f1)))
        if "x2d" in arrays:
            arrays["x2d"].append(features.features_2d(clip.signal, clip.sample_rate, f2))
        names.append(file.name)
        labels.append(classes.index(true))
        kept.append(int(row))
    inputs = {k: torch.as_tensor(np.stack(v)) if v else torch.zeros((0, *config_shape(k))) for k, v in arrays.items()}
    return Clips(names, np.asarray(labels, dtype=np.int64), inputs, skipped, kept)


def difference_from_run(probs: np.ndarray, clips: Clips, predictions: pd.DataFrame) -> float:
    """The largest difference between ``probs`` of the clips and the run's own predictions.csv
    probabilities of the same clips: near 0 when the recomputed inputs are the ones it was tested on."""
    columns = [c for c in predictions.columns if c.startswith("p_")]
    if not columns or not len(clips):
        return float("nan")
    return float(np.abs(predictions.loc[clips.rows, columns].to_numpy(dtype=np.float64) - probs).max())


def config_shape(name: str) -> tuple[int, ...]:
    from ser_utils.models.layers import INPUT_SHAPES

    return tuple(INPUT_SHAPES[name])


def _standardised_1d(model: nn.Module, x1d: np.ndarray) -> np.ndarray:
    """x1d with the run's training-split statistics, as :func:`checkpoint.predict` does."""
    mean, std = getattr(model, "x1d_mean", None), getattr(model, "x1d_std", None)
    if mean is None:
        return x1d.astype(np.float32)
    mean, std = np.asarray(mean), np.asarray(std)
    return ((x1d - mean[:, None]) / std[:, None]).astype(np.float32)


# ------------------------------------------------------------------------------ attribution
def image_forward(model: nn.Module) -> Callable[..., torch.Tensor]:
    """The model as a function of the log-mel image first, its other inputs after (captum's order)."""
    others = [name for name in model.inputs if name != "x2d"]

    def forward(x2d: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        given = dict(zip(others, rest), x2d=x2d)
        return model(*[given[name] for name in model.inputs])

    return forward


def _others(model: nn.Module, clips: Clips) -> tuple[torch.Tensor, ...] | None:
    rest = tuple(clips.inputs[name] for name in model.inputs if name != "x2d")
    return rest or None


def occlusion(model: nn.Module, clips: Clips, target: np.ndarray, patch: int = PATCH,
              stride: int | None = None) -> np.ndarray:
    """[n, 64, 64]: how much the ``target`` logit drops when each patch of the log-mel is set to 0."""
    from captum.attr import Occlusion

    stride = stride or patch
    with torch.no_grad():
        attr = Occlusion(image_forward(model)).attribute(
            clips.inputs["x2d"], sliding_window_shapes=(1, patch, patch), strides=(1, stride, stride),
            baselines=0.0, target=torch.as_tensor(target), additional_forward_args=_others(model, clips),
            perturbations_per_eval=32)
    return attr[:, 0].numpy()


def saliency(model: nn.Module, clips: Clips, target: np.ndarray) -> np.ndarray:
    """[n, 64, 64]: |d logit_target / d pixel| of the log-mel (captum's Saliency)."""
    from captum.attr import Saliency

    x2d = clips.inputs["x2d"].clone().requires_grad_(True)
    attr = Saliency(image_forward(model)).attribute(x2d, target=torch.as_tensor(target), abs=True,
                                                    additional_forward_args=_others(model, clips))
    return attr[:, 0].detach().numpy()


def patch_scores(attribution: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """[n, rows, cols]: the summed |attribution| of each non-overlapping ``patch`` x ``patch`` square."""
    n, h, w = attribution.shape
    rows, cols = h // patch, w // patch
    cut = np.abs(attribution[:, :rows * patch, :cols * patch])
    return cut.reshape(n, rows, patch, cols, patch).sum(axis=(2, 4))


def masking_effects(model: nn.Module, clips: Clips, target: np.ndarray, attribution: np.ndarray,
                    patch: int = PATCH, seed: int = config.SEED) -> pd.DataFrame:
    """Per clip: |change of the target logit| when its most attributed patch is set to 0, and when a
    random other patch is (seeded). A map that finds what the model reads gives ``top`` > ``random``."""
    scores = patch_scores(attribution, patch)
    n, rows, cols = scores.shape
    rng = np.random.default_rng(seed)
    top = scores.reshape(n, -1).argmax(axis=1)
    other = np.array([rng.choice([k for k in range(rows * cols) if k != t]) for t in top])
    forward = image_forward(model)
    x2d, rest = clips.inputs["x2d"], _others(model, clips) or ()
    target_t = torch.as_tensor(target)

    def logit(images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return forward(images, *rest).gather(1, target_t[:, None])[:, 0].numpy()

    def masked(cells: np.ndarray) -> torch.Tensor:
        images = x2d.clone()
        for i, cell in enumerate(cells):
            r, c = divmod(int(cell), cols)
            images[i, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0.0
        return images

    base = logit(x2d)
    return pd.DataFrame({"clip": clips.names, "top_patch": top, "top": np.abs(base - logit(masked(top))),
                         "random": np.abs(base - logit(masked(other)))})


# ------------------------------------------------------------------------------ embeddings
def embeddings(model: nn.Module, clips: Clips, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate-layer vectors [n, d], class probabilities [n, C]) of the clips.

    The vectors are the input of the model's last ``nn.Linear`` (its classifier), caught by a
    forward pre-hook during one ordinary forward pass.
    """
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    caught: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda _module, args: caught.append(args[0].detach()))
    probs = []
    try:
        with torch.no_grad():
            for start in range(0, len(clips), batch_size):
                batch = [clips.inputs[name][start:start + batch_size] for name in model.inputs]
                probs.append(model(*batch).softmax(dim=1))
    finally:
        handle.remove()
    if not caught:
        return np.zeros((0, last.in_features)), np.zeros((0, last.out_features))
    return torch.cat(caught).numpy(), torch.cat(probs).numpy()


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = config.SEED) -> np.ndarray:
    """[n, 2]: PCA (linear, fast) or t-SNE (keeps neighbourhoods; distances between groups mean little)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in ("pca", "tsne"):
        raise ValueError(f"method {method!r}: use 'pca' or 'tsne'")
    if method == "tsne" and len(vectors) > 5:
        perplexity = float(min(30, max(2, (len(vectors) - 1) // 3)))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)
    return PCA(2, random_state=seed).fit_transform(vectors)


def neighbour_agreement(vectors: np.ndarray, labels: np.ndarray, k: int = 5, n_perm: int = 999,
                        seed: int = config.SEED) -> dict[str, float]:
    """Share of each clip's ``k`` nearest neighbours (penultimate space) with its emotion, beside the
    share expected if neighbours were drawn at random (sum of squared class shares), and a
    permutation p-value: the labels shuffled ``n_perm`` times (seeded) over the same neighbours."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    k = min(k, len(labels) - 1)
    if k < 1:
        return {"k": 0, "agreement": float("nan"), "expected": float("nan"), "p": float("nan")}
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(vectors).kneighbors(vectors)
    neighbours = idx[:, 1:]
    agreement = float((labels[neighbours] == labels[:, None]).mean())
    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(labels) for _ in range(n_perm)]
    null = np.array([(s[neighbours] == s[:, None]).mean() for s in shuffled])
    shares = np.bincount(labels) / len(labels)
    return {"k": k, "agreement": agreement, "expected": float((shares ** 2).sum()),
            "p": float((1 + (null >= agreement).sum()) / (1 + n_perm))}


# ------------------------------------------------------------------------------ findings
def masking_findings(effects: pd.DataFrame, method: str = "saliency") -> str:
    """Markdown: whether hiding the patch the map ranks first moves the logit more than a random patch."""
    top, random = float(effects["top"].mean()), float(effects["random"].mean())
    wins = int((effects["top"] > effects["random"]).sum())
    verdict = ("the map points at patches the model reads" if top > random and wins > len(effects) / 2 else
               "the map does no better than chance here: on this run it tells little about what the model reads")
    return (f"Hiding the patch the {method} map ranks first changes the true class's logit by {top:.3g} on average, "
            f"a random patch by {random:.3g} (first larger on {wins} of {len(effects)} clips): {verdict}.")


def neighbour_findings(near: dict[str, float], synthetic: bool) -> str:
    """Markdown: how much the penultimate layer groups clips by emotion, against chance."""
    if not near["k"]:
        return "Too few clips to look at neighbours."
    ratio = near["agreement"] / near["expected"] if near["expected"] else float("nan")
    grouped = ("does not group clips by emotion more than chance would" if not near["p"] < 0.05 else
               "groups clips by emotion well beyond chance" if ratio >= 1.5 else
               "groups clips by emotion somewhat more than chance")
    note = f" ({config.SYNTHETIC_LABEL})" if synthetic else ""
    return (f"Of each clip's {near['k']} nearest neighbours in the penultimate layer, {near['agreement']:.1%} share "
            f"its emotion, against {near['expected']:.1%} for neighbours drawn at random (permutation p = "
            f"{near['p']:.3g}): the layer {grouped}{note}.")
