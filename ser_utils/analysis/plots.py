"""Every figure of the suite: one function per figure, each returning a matplotlib Figure.

Notebooks call these and hand the result to :func:`save_figure`, which writes it under
``outputs/figures/<notebook>/`` so every figure has one predictable home.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from ser_utils import config



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
        fig.text(0.99, 0.005, config.SYNTHETIC_LABEL, ha="right", va="bottom", fontsize=8,
                 color="crimson", alpha=0.9)


# ------------------------------------------------------------------ 01 data tour
def _emotion_palette() -> dict[str, tuple]:
    import seaborn as sns

    return dict(zip(config.EMOTIONS, sns.color_palette("deep", len(config.EMOTIONS))))


def corpus_overview(clips, durations=None):
    """Clips per emotion, level, sentence and sex, and (given) the duration distribution."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    panels = [("emotion", list(config.EMOTIONS)), ("intensity", list(config.LEVELS)),
              ("sentence", list(config.SENTENCES))]
    if "sex" in clips:
        panels.append(("sex", sorted(clips["sex"].dropna().unique())))
    n = len(panels) + (durations is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), constrained_layout=True)
    for ax, (column, order) in zip(axes, panels):
        sns.countplot(data=clips, x=column, order=order, ax=ax, color="steelblue")
        ax.set_title(f"clips per {column}")
        ax.tick_params(axis="x", rotation=90 if column == "sentence" else 0)
        ax.set_xlabel("")
    if durations is not None:
        ax = axes[-1]
        sns.histplot(durations, bins=40, ax=ax, color="slategray")
        ax.axvline(float(durations.median()), color="crimson", ls="--", label=f"median {durations.median():.2f} s")
        ax.set_title("duration (s)")
        ax.legend()
    return fig


def waveforms_per_emotion(signals: dict, sample_rate: int = config.SAMPLE_RATE, title: str = ""):
    """Figure 1: one waveform per emotion (``signals`` maps emotion code -> 1-D array), on one shared
    amplitude axis so that loudness can be compared across rows."""
    import matplotlib.pyplot as plt
    import numpy as np

    palette = _emotion_palette()
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 1.5 * len(signals)), sharex=True, sharey=True,
                             constrained_layout=True)
    for ax, (emotion, signal) in zip(np.atleast_1d(axes), signals.items()):
        t = np.arange(len(signal)) / sample_rate
        ax.plot(t, signal, lw=0.6, color=palette.get(emotion, "k"))
        ax.set_ylabel(config.EMOTION_NAMES.get(emotion, emotion), rotation=0, ha="right", va="center")
    fig.supylabel("amplitude (one scale for all rows)")
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.suptitle(title or "Figure 1: one waveform per emotion")
    return fig


def waveform_and_mel(signal, sample_rate: int = config.SAMPLE_RATE, title: str = ""):
    """A clip's waveform above its mel spectrogram (the data explorer's view)."""
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, constrained_layout=True)
    t = np.arange(len(signal)) / sample_rate
    ax1.plot(t, signal, lw=0.6)
    ax1.set_ylabel("amplitude")
    mel = librosa.feature.melspectrogram(y=signal, sr=sample_rate, n_fft=1024, hop_length=256, n_mels=64,
                                         fmax=sample_rate / 2)
    librosa.display.specshow(librosa.power_to_db(mel, ref=np.max), sr=sample_rate, hop_length=256,
                             x_axis="time", y_axis="mel", fmax=sample_rate / 2, ax=ax2)
    ax2.set_xlabel("time (s)")
    fig.suptitle(title)
    return fig


# -------------------------------------------------------------- 02 preprocessing
def preprocessing_steps(raw, raw_sr: int, resampled, speech_start: int, speech_end: int, normalised,
                        sample_rate: int = config.SAMPLE_RATE, title: str = ""):
    """Each preprocessing step before and after: raw, 16 kHz mono with the VAD speech region
    shaded, and the trimmed, z-scored result."""
    import matplotlib.pyplot as plt
    import numpy as np

    raw = np.asarray(raw)
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), constrained_layout=True)
    t_raw = np.arange(raw.shape[0]) / raw_sr
    if raw.ndim == 2:
        for ch in range(raw.shape[1]):
            axes[0].plot(t_raw, raw[:, ch], lw=0.5, alpha=0.7, label=f"channel {ch}")
        axes[0].legend(loc="upper right")
    else:
        axes[0].plot(t_raw, raw, lw=0.5)
    axes[0].set_title(f"1. as read: {raw_sr} Hz, {1 if raw.ndim == 1 else raw.shape[1]} channel(s)")
    t = np.arange(len(resampled)) / sample_rate
    axes[1].plot(t, resampled, lw=0.5)
    axes[1].axvspan(speech_start / sample_rate, speech_end / sample_rate, color="orange", alpha=0.25,
                    label="speech kept by VAD")
    axes[1].legend(loc="upper right")
    axes[1].set_title(f"2. mono, {sample_rate} Hz; shaded: the speech region the VAD keeps")
    axes[2].plot(np.arange(len(normalised)) / sample_rate, normalised, lw=0.5, color="seagreen")
    axes[2].set_title(f"3. trimmed and z-scored (mean {np.mean(normalised):.2f}, std {np.std(normalised):.2f})")
    axes[2].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return fig


def vad_removed(before_s, after_s):
    """How much audio the VAD removed across the corpus (seconds and share per clip)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    before_s, after_s = np.asarray(before_s, float), np.asarray(after_s, float)
    removed = before_s - after_s
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), constrained_layout=True)
    sns.histplot(removed, bins=40, ax=axes[0], color="slategray")
    axes[0].set_title(f"removed per clip (s): total {removed.sum() / 60:.1f} min")
    sns.histplot(100 * removed / np.maximum(before_s, 1e-9), bins=40, ax=axes[1], color="indianred")
    axes[1].set_title(f"removed share of each clip (%): median {np.median(100 * removed / np.maximum(before_s, 1e-9)):.0f}%")
    return fig


# ---------------------------------------------------------- 03 feature extraction
def features_1d_per_emotion(examples: dict, title: str = ""):
    """Figure 2: the 27 x 301 1D features of one clip per emotion, rows labelled as ``features.row_labels``.

    The rows have different units, so each row is scaled to [0, 1] with that row's minimum and
    maximum over *all* the clips shown: one scale per feature shared by the emotions, so a row
    that is brighter for anger than for sadness really is larger (scaling within each clip
    would erase exactly that difference).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from ser_utils import features

    stacked = np.stack([np.asarray(f, float) for f in examples.values()])
    lo, hi = stacked.min(axis=(0, 2))[:, None], stacked.max(axis=(0, 2))[:, None]
    labels = features.row_labels()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for ax, (emotion, feats) in zip(axes.flat, examples.items()):
        scaled = (np.asarray(feats, float) - lo) / np.maximum(hi - lo, 1e-12)
        im = ax.imshow(scaled, aspect="auto", origin="upper", interpolation="nearest", cmap="magma", vmin=0, vmax=1)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.grid(False)
        ax.set_title(config.EMOTION_NAMES.get(emotion, emotion))
        ax.set_xlabel("frame (10 ms hop)")
    fig.colorbar(im, ax=axes, shrink=0.6, label="row value scaled over all six clips")
    fig.suptitle(title or "Figure 2: 1D features [27 x 301] per emotion")
    return fig


def mel_per_emotion(examples: dict, title: str = ""):
    """Figure 3: the 64 x 64 log-mel image of one clip per emotion."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(examples), figsize=(2.6 * len(examples), 3), constrained_layout=True)
    for ax, (emotion, image) in zip(np.atleast_1d(axes), examples.items()):
        im = ax.imshow(np.asarray(image).squeeze(), origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1)
        ax.grid(False)
        ax.set_title(config.EMOTION_NAMES.get(emotion, emotion))
        ax.set_xlabel("time (resized)")
    np.atleast_1d(axes)[0].set_ylabel("mel band")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(title or "Figure 3: 64 x 64 log-mel per emotion")
    return fig


# ------------------------------------------------------------------- 04-07 models
def architecture(layers, title: str = ""):
    """Figures 4-6: a model drawn as a column of blocks from its layer table.

    ``layers`` is the DataFrame of :func:`ser_utils.models.layer_table` (layer, type,
    output_shape, parameters). Leaves of the same parent module (one conv block: Conv ->
    GroupNorm -> activation -> MaxPool -> Dropout) become one box labelled with their types,
    the block's output shape and its parameters. A model with two trunks (``trunk1d``, ``trunk2d``)
    is drawn as two branches side by side joined by a concatenation box above the head.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    blocks = _group_layers(layers)
    trunks = list(dict.fromkeys(b[0].split(".")[0] for b in blocks if b[0].startswith("trunk")))
    if len(trunks) > 1:
        return _architecture_branches(blocks, trunks, title)
    fig, ax = plt.subplots(figsize=(10, 0.62 * len(blocks) + 1.2))
    ax.set_xlim(0, 12)
    ax.set_ylim(-len(blocks) + 0.3, 1.2)
    ax.axis("off")
    for i, (name, types, shape, params) in enumerate(blocks):
        y = -i
        ax.add_patch(FancyBboxPatch((0.2, y - 0.36), 6.6, 0.68, boxstyle="round,pad=0.04",
                                    fc=_block_colour(types), ec="0.3"))
        ax.text(3.5, y + 0.1, types, ha="center", va="center", fontsize=7.5)
        ax.text(3.5, y - 0.2, name, ha="center", va="center", fontsize=6.5, color="0.35")
        ax.text(7.1, y, str(shape), ha="left", va="center", fontsize=8, family="monospace")
        ax.text(11.9, y, f"{int(params):,}" if params else "-", ha="right", va="center", fontsize=8)
    ax.text(7.1, 0.75, "output shape", fontsize=8, weight="bold")
    ax.text(11.9, 0.75, "parameters", fontsize=8, weight="bold", ha="right")
    ax.set_title(title)
    return fig


def _architecture_branches(blocks, trunks: list[str], title: str):
    """Figure 6: one column per trunk, a concatenation box joining them, the head below it."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    columns = {t: [b for b in blocks if b[0].split(".")[0] == t] for t in trunks}
    head = [b for b in blocks if b[0].split(".")[0] not in columns]
    depth = max(len(c) for c in columns.values())
    width = 12.0 / len(trunks)
    fig, ax = plt.subplots(figsize=(12, 0.8 * (depth + len(head) + 1) + 1.2))
    ax.set_xlim(0, 12)
    ax.set_ylim(-(depth + len(head) + 1) + 0.2, 1.0)
    ax.axis("off")

    def box(x0, w, y, name, types, shape, params):
        ax.add_patch(FancyBboxPatch((x0 + 0.1, y - 0.36), w - 0.2, 0.7, boxstyle="round,pad=0.03",
                                    fc=_block_colour(types), ec="0.3"))
        ax.text(x0 + w / 2, y + 0.15, types, ha="center", va="center", fontsize=6.5)
        ax.text(x0 + w / 2, y - 0.17, f"{name}  {shape}  {int(params):,} params" if params else f"{name}  {shape}",
                ha="center", va="center", fontsize=6.5, color="0.25", family="monospace")

    fused = 0
    for k, (trunk, column) in enumerate(columns.items()):
        ax.text(k * width + width / 2, 0.65, trunk, ha="center", fontsize=9, weight="bold")
        for i, block in enumerate(column):
            box(k * width, width, -i, *block)
        fused += int(column[-1][2][-1])
        ax.annotate("", xy=(6.0, -depth + 0.4), xytext=(k * width + width / 2, -len(column) + 0.62),
                    arrowprops={"arrowstyle": "->", "color": "0.4"})
    widths = " + ".join(str(c[-1][2][-1]) for c in columns.values())
    box(3.0, 6.0, -depth, "concatenate", "Concatenate", f"[{widths} = {fused}]", 0)
    for i, block in enumerate(head):
        box(3.0, 6.0, -depth - 1 - i, *block)
    ax.set_title(title)
    return fig


def _group_layers(layers) -> list[tuple[str, str, object, int]]:
    """Consecutive leaves sharing a parent module -> (parent, 'Conv1d -> GroupNorm ...', shape, params)."""
    blocks: list[list] = []
    for row in layers.itertuples(index=False):
        parent = row.layer.rsplit(".", 1)[0] if "." in row.layer else row.layer
        if blocks and blocks[-1][0] == parent:
            blocks[-1][1].append(row.type)
            blocks[-1][2] = row.output_shape
            blocks[-1][3] += int(row.parameters)
        else:
            blocks.append([parent, [row.type], row.output_shape, int(row.parameters)])
    return [(p, " -> ".join(t), s, n) for p, t, s, n in blocks]


def _block_colour(name: str) -> str:
    lowered = name.lower()
    for key, colour in (("conv", "#aec7e8"), ("norm", "#ffbb78"), ("pool", "#98df8a"), ("drop", "#dddddd"),
                        ("linear", "#ff9896"), ("relu", "#c5b0d5"), ("silu", "#c5b0d5"), ("elu", "#c5b0d5"),
                        ("concat", "#f7b6d2")):
        if key in lowered:
            return colour
    return "#f0f0f0"


def learning_curves(history, best_epoch: int | None = None, title: str = ""):
    """Loss and accuracy per epoch, training and validation, with the best checkpoint marked."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    ax1.plot(history["epoch"], history["train_loss"], label="train")
    ax1.plot(history["epoch"], history["val_loss"], label="validation")
    ax1.set_title("cross-entropy loss")
    ax2.plot(history["epoch"], history["train_acc"], label="train")
    ax2.plot(history["epoch"], history["val_acc"], label="validation")
    ax2.set_title("accuracy")
    for ax in (ax1, ax2):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.4", ls=":", label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    return fig


def confusion_matrix(confusion, title: str = "", normalize: bool = True, ax=None):
    """A confusion matrix (rows true, columns predicted); row-normalised when ``normalize``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    matrix = confusion.astype(float)
    if normalize:
        matrix = matrix.div(matrix.sum(axis=1).where(lambda s: s > 0, 1), axis=0)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 4.4), constrained_layout=True)
    sns.heatmap(matrix, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=False, ax=ax,
                vmin=0, vmax=1 if normalize else None, square=True)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + (" (row-normalised)" if normalize else " (counts)"))
    return fig if fig is not None else ax.figure


# ------------------------------------------------------------- sweep analysis (notebook 08)
def accuracy_heatmaps(results, models=None, value: str = "accuracy", tied=None):
    """Figure 7: test accuracy per activation x learning rate, one heatmap per model (finished runs).

    ``tied``: run ids that cannot be told apart from their model's best run
    (``breakdown.tied_with_best``): their cells get a white frame, so the reader sees which
    differences are within the noise. One colour scale for every panel, from chance (one class in
    six) to the best run shown, so the colours spend their range where the runs differ; a run
    below chance gets the darkest colour.
    """
    from matplotlib.patches import Rectangle

    import matplotlib.pyplot as plt
    import seaborn as sns

    done = results[results["status"].isin(("complete", "diverged"))] if len(results) else results
    models = list(models or [m for m in config.MODELS if m in set(done.get("model", []))] or config.MODELS)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), constrained_layout=True, squeeze=False)
    chance = 100 / len(config.EMOTIONS)
    best = float(done[value].max()) * 100 if len(done) and value in done and done[value].notna().any() else None
    vmax = 100.0 if best is None else max(best, chance + 1)  # a sweep at chance still gets a scale
    top = "100" if best is None else f"the best run ({vmax:.1f})"
    for ax, model in zip(axes[0], models):
        rows = done[done["model"] == model] if len(done) else done
        grid = rows.pivot_table(index="activation", columns="lr", values=value, aggfunc="max") if len(rows) else _empty_grid()
        activations = list(config.ACTIVATIONS) + sorted(set(grid.index) - set(config.ACTIVATIONS))
        grid = grid.reindex(index=activations, columns=sorted(set(config.LEARNING_RATES) | set(grid.columns))).astype(float)
        sns.heatmap(grid * 100, annot=True, fmt=".1f", cmap="viridis", vmin=chance, vmax=vmax, cbar=False, ax=ax,
                    linewidths=0.5, linecolor="white", mask=grid.isna(), xticklabels=True, yticklabels=True)
        ax.set_xticklabels([f"{lr:g}" for lr in grid.columns])
        ax.grid(False)
        marked = rows[rows["run_id"].isin(set(tied))] if tied is not None and len(rows) else rows.iloc[0:0]
        for run in marked.itertuples():
            x, y = list(grid.columns).index(float(run.lr)), list(grid.index).index(run.activation)
            ax.add_patch(Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, fill=False, edgecolor="white", linewidth=2.5))
        ax.set_title(f"{model}: test {value} (%)" + ("; framed: tied with the best" if tied is not None else "")
                     + f"\ncolours from chance ({chance:.1f}) to {top}", fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("activation")
    return fig


def _empty_grid():
    import pandas as pd

    return pd.DataFrame(index=list(config.ACTIVATIONS), columns=list(config.LEARNING_RATES), dtype=float)


def confusion_counts_and_rates(confusion, title: str = ""):
    """Figure 8 (left): one confusion matrix as counts and row-normalised, side by side."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.4), constrained_layout=True)
    confusion_matrix(confusion, title=title, normalize=False, ax=ax1)
    confusion_matrix(confusion, title=title, normalize=True, ax=ax2)
    return fig


def per_class_f1(scores, title: str = "", baseline=None, baseline_label: str = "human listeners"):
    """Figure 8 (right): F1 per emotion as bars; ``baseline`` (a Series) drawn beside when given."""
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame({"model": pd.Series(scores, dtype=float)})
    if baseline is not None:
        frame[baseline_label] = pd.Series(baseline, dtype=float)
    frame = frame.reindex(list(config.EMOTIONS))
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    frame.plot.bar(ax=ax, rot=0, width=0.75, color=["#4c72b0", "#dd8452"][:frame.shape[1]], legend=frame.shape[1] > 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (test)")
    ax.set_xlabel("")
    ax.set_title(title or "per-class F1")
    return fig


def loss_curves(histories, best_epochs=None, title: str = "training and validation loss"):
    """Figure 9: train (solid) and validation (dashed) loss per epoch, one panel per run."""
    import matplotlib.pyplot as plt

    ids = list(histories)
    fig, axes = plt.subplots(1, max(len(ids), 1), figsize=(4.4 * max(len(ids), 1), 3.4), constrained_layout=True,
                             squeeze=False, sharey=True)
    for ax, rid in zip(axes[0], ids):
        history = histories[rid]
        ax.plot(history["epoch"], history["train_loss"], label="train")
        ax.plot(history["epoch"], history["val_loss"], ls="--", label="validation")
        best = (best_epochs or {}).get(rid)
        if best is not None and best == best and best > 0:  # NaN for runs without a best epoch
            ax.axvline(best, color="0.4", ls=":", label=f"best (epoch {int(best)})")
        ax.set_title(rid)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("cross-entropy loss")
    fig.suptitle(title)
    return fig


def human_vs_model_confusion(human, model, model_label: str = "model"):
    """Listeners' voice-only votes beside the model, row-normalised, on the same test clips."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.4), constrained_layout=True)
    confusion_matrix(human, title="listeners (voice only)", normalize=True, ax=ax1)
    confusion_matrix(model, title=model_label, normalize=True, ax=ax2)
    return fig


# ------------------------------------------------------ 12 attention and the transformer
def attention_over_time(mel, tracks, hop_s: float, title: str = ""):
    """A clip's log-mel (top) and, below it on the same time axis, each model's attention weights.

    ``mel``: ``[64, T]`` (frames ``hop_s`` apart); ``tracks``: ``{label: (weights, step_s)}``, the
    weights over a model's time steps, each step ``step_s`` seconds long (drawn as steps, so a
    coarse model shows as few wide steps). A flat track (every weight ``1 / steps``) is dashed.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1 + len(tracks), 1, figsize=(9, 2.2 + 1.3 * len(tracks)), sharex=True,
                             constrained_layout=True, gridspec_kw={"height_ratios": [2] + [1] * len(tracks)})
    axes = np.atleast_1d(axes)
    axes[0].imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, mel.shape[1] * hop_s, 0, mel.shape[0]))
    axes[0].set_ylabel("mel bin")
    axes[0].grid(False)
    axes[0].set_title(title)
    for ax, (label, (weights, step_s)) in zip(axes[1:], tracks.items()):
        weights = np.asarray(weights, dtype=float)
        edges = np.arange(len(weights) + 1) * step_s
        ax.stairs(weights, edges, fill=True, alpha=0.6, color="teal")
        ax.axhline(1 / len(weights), color="0.4", lw=0.8, ls="--")  # uniform weights = average pooling
        ax.set_ylabel("weight")
        ax.set_title(label, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (s)")
    return fig


# ------------------------------------------------------------- 09 alternatives
def alternatives_comparison(table, title: str = "the report's models and the alternatives"):
    """Four panels, one bar per run: test accuracy, parameters, seconds per epoch, train-validation gap.

    ``table``: one row per run with ``label`` (or ``run_id``), ``accuracy``, ``n_params``,
    ``time_per_epoch_s`` and ``gap_acc`` (``training.run_summary``). Rows with ``family``
    "alternative" are hatched, so the report's three models stand apart.
    """
    import matplotlib.pyplot as plt

    labels = list(table["label"] if "label" in table else table["run_id"])
    hatch = ["//" if f == "alternative" else "" for f in table.get("family", [""] * len(labels))]
    panels = [("accuracy", "test accuracy", False), ("n_params", "trainable parameters", True),
              ("time_per_epoch_s", "seconds per epoch", True), ("gap_acc", "train - val accuracy (best epoch)", False)]
    fig, axes = plt.subplots(1, 4, figsize=(16, 0.45 * len(labels) + 1.8), constrained_layout=True, sharey=True)
    for ax, (column, name, log) in zip(axes, panels):
        values = table[column].astype(float).to_numpy() if column in table else [float("nan")] * len(labels)
        bars = ax.barh(labels, values, color="steelblue", edgecolor="0.2")
        for bar, h in zip(bars, hatch):
            bar.set_hatch(h)
        if log:
            ax.set_xscale("log")
        ax.set_title(name)
        ax.axvline(0, color="0.3", lw=0.8)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    return fig
