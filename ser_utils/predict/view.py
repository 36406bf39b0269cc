"""Notebook 10's view of a prediction: the probability bars, the per-window timeline, the upload panel,
and the demo material it predicts headless (held-out clips, sentences synthesised on the spot).

Kept out of the notebook so that it stays a few calls per cell, and out of :mod:`ser_utils.predict.predictor`
so that predicting never imports matplotlib or ipywidgets.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser_utils import config
from ser_utils.predict.predictor import AUDIO_SUFFIXES, Predictor

#: CSS class of the upload panel's result area (the browser test waits for its chart there).
RESULT_CLASS = "ser-predict-result"
#: Seed of the sentences synthesised on the spot: not the corpus' 42, so voices and renditions are new.
DEMO_SEED = 2024


def _palette(classes) -> list:
    import seaborn as sns

    colours = dict(zip(config.EMOTIONS, sns.color_palette("deep", len(config.EMOTIONS))))
    return [colours.get(c, "grey") for c in classes]


def _label(code: str) -> str:
    return config.EMOTION_NAMES.get(code, code)


def corpus_note(synthetic: bool) -> str:
    """`` (synthetic demo corpus — not CREMA-D)`` when the model or the audio is synthetic, else ``""``."""
    return f" ({config.SYNTHETIC_LABEL})" if synthetic else ""


# --------------------------------------------------------------------------- figures
def probability_bars(recordings: pd.DataFrame, titles: list[str] | None = None, synthetic: bool = False,
                     columns: int = 3):
    """One bar chart of the six probabilities per recording (the predicted emotion outlined)."""
    import matplotlib.pyplot as plt

    classes = [c[2:] for c in recordings.columns if c.startswith("p_")]
    rows = recordings[recordings["error"].fillna("") == ""].reset_index(drop=True)
    n = max(1, len(rows))
    ncols = min(columns, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows), squeeze=False,
                             constrained_layout=True, sharey=True)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for i, row in rows.iterrows():
        ax = axes.flat[i]
        probs = row[[f"p_{c}" for c in classes]].to_numpy(dtype=float)
        bars = ax.bar([_label(c) for c in classes], probs, color=_palette(classes))
        bars[int(np.argmax(probs))].set_edgecolor("black")
        bars[int(np.argmax(probs))].set_linewidth(2)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=45)
        title = titles[i] if titles else Path(str(row["path"])).name
        windows = int(row["n_windows"])
        ax.set_title(f"{title}\n→ {row['emotion']}" + (f" (mean of {windows} windows)" if windows > 1 else ""),
                     fontsize=9)
    axes.flat[0].set_ylabel("probability")
    fig.suptitle("what the model hears" + corpus_note(synthetic), fontsize=11)
    return fig


def window_timeline(windows: pd.DataFrame, title: str = "", synthetic: bool = False,
                    intended: list[tuple[float, float, str]] | None = None):
    """The probabilities of each window of a long recording against time (window centres), and the
    emotion each window predicts as a coloured strip over the span it covers; ``intended``
    (``(start_s, end_s, emotion)`` spans) adds a strip of what was meant above it."""
    import matplotlib.pyplot as plt

    classes = [c[2:] for c in windows.columns if c.startswith("p_")]
    centres = (windows["start_s"] + windows["end_s"]).to_numpy(dtype=float) / 2
    fig, (strip, ax) = plt.subplots(2, 1, figsize=(10, 4), sharex=True, constrained_layout=True,
                                    gridspec_kw={"height_ratios": [1, 5]})
    colours = dict(zip(classes, _palette(classes)))
    for c in classes:
        ax.plot(centres, windows[f"p_{c}"], marker="o", ms=3, label=_label(c), color=colours[c])
    low = 0.0 if intended is None else 0.5
    # each window owns the stretch of time nearest its centre; the first and last reach the speech's ends
    edges = np.concatenate([[windows["start_s"].iloc[0]], (centres[:-1] + centres[1:]) / 2,
                            [windows["end_s"].iloc[-1]]])
    for left, right, code in zip(edges[:-1], edges[1:], windows["predicted"]):
        strip.axvspan(left, right, ymin=0, ymax=low or 1, color=colours.get(code, "grey"))
    for start, end, code in intended or []:
        strip.axvspan(start, end, ymin=low, ymax=1, color=colours.get(code, "grey"))
        strip.text((start + end) / 2, 0.75, _label(code), ha="center", va="center", fontsize=8)
    strip.set_yticks([0.25, 0.75] if intended else [0.5], ["predicted", "intended"] if intended else ["predicted"])
    strip.set_ylim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s): centre of each window")
    ax.set_ylabel("probability")
    ax.legend(ncol=6, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.suptitle((title or "per-window probabilities") + corpus_note(synthetic), fontsize=11)
    return fig


# ------------------------------------------------------------------------- demo audio
def held_out_clips(predictor: Predictor, manifest: pd.DataFrame | None = None, n: int = 6) -> pd.DataFrame:
    """Up to ``n`` clips the run never trained on (one per emotion first): its ``predictions.csv``
    test clips when they exist on disk, else the test split of ``manifest``. Columns ``path``, ``true``."""
    frame = None
    saved = predictor.run_dir / "predictions.csv" if predictor.run_dir else None
    if saved is not None and saved.is_file():
        frame = pd.read_csv(saved)[["path", "true"]]
        frame = frame[frame["path"].map(lambda p: Path(p).is_file())]
    if (frame is None or frame.empty) and manifest is not None:
        frame = manifest.loc[manifest["split"] == "test", ["path", "emotion"]].rename(columns={"emotion": "true"})
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["path", "true"])
    frame = frame.sort_values("path").reset_index(drop=True)
    order = frame.groupby("true").cumcount()  # first clip of every emotion, then the second of every emotion, ...
    return frame.loc[order.sort_values(kind="stable").index[:n]].reset_index(drop=True)


def synthesise(emotion: str = "HAP", sentence: str = "DFA", actor: int = config.LAST_ACTOR,
               seed: int = DEMO_SEED) -> np.ndarray:
    """One CREMA-D sentence spoken in ``emotion`` by a synthetic voice made now (float32, 16 kHz).

    The voice is drawn with ``seed`` (not the corpus' 42) for actor ``actor``: a speaker and a
    rendition no run has heard. IEO takes the level HI, the other sentences XX (as CREMA-D).
    """
    from ser_utils.data import demo_corpus

    actors = {a.actor_id: a for a in demo_corpus.make_actors(config.N_ACTORS, seed=seed)}
    level = "HI" if sentence == config.LEVELLED_SENTENCE and emotion != "NEU" else "XX"
    samples = demo_corpus.render_clip(actors[actor], f"{actor}_{sentence}_{emotion}_{level}.wav", seed)
    return samples.astype(np.float32) / 32768.0


def synthesised_story(emotions: tuple[str, ...] = ("ANG", "SAD", "HAP", "FEA"), sentences: tuple[str, ...] = (
        "WSI", "ITH", "TAI", "DFA"), seed: int = DEMO_SEED) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Several synthesised sentences, one emotion each, one after another: a long recording whose
    intended emotion changes. Returns the signal and ``(start_s, end_s, emotion)`` per sentence."""
    parts, spans, t = [], [], 0.0
    for emotion, sentence in zip(emotions, sentences):
        part = synthesise(emotion, sentence, seed=seed)
        parts.append(part)
        spans.append((t, t + len(part) / config.SAMPLE_RATE, emotion))
        t += len(part) / config.SAMPLE_RATE
    return np.concatenate(parts), spans


# ------------------------------------------------------------------------ upload panel
def upload_panel(predictor: Predictor, synthetic: bool = False) -> Any:
    """An ipywidgets FileUpload (any format libsndfile reads) whose recording is played and predicted:
    an audio player, the probability bars and, for a long recording, the per-window timeline."""
    import ipywidgets as widgets

    upload = widgets.FileUpload(accept="audio/*," + ",".join(AUDIO_SUFFIXES), multiple=False,
                                description="recording")
    out = widgets.Output()
    out.add_class(RESULT_CLASS)

    def on_upload(change: dict) -> None:
        files = change["new"]
        if files:
            with out:
                out.clear_output(wait=True)
                show_recording(predictor, files[-1]["name"], bytes(files[-1]["content"]), synthetic)

    upload.observe(on_upload, names="value")
    return widgets.VBox([upload, out])


def show_recording(predictor: Predictor, name: str, content: bytes, synthetic: bool = False) -> pd.DataFrame:
    """Predict an uploaded file's bytes and display the player, the table and the charts; return the table."""
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    from ser_utils.data import audio

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(name).name or "upload")
        path.write_bytes(content)
        result = predictor.score([str(path)], names=[name], progress=False)
        signal = None if result.failures else audio.load(path, predictor.spec.pre.sample_rate)
    if result.failures:
        print(f"error: {result.failures[0]}")
        return result.recordings
    display(Audio(signal, rate=predictor.spec.pre.sample_rate))
    display(result.recordings.drop(columns=["error"]).round(3))
    figures = [probability_bars(result.recordings, [name], synthetic)]
    if int(result.recordings["n_windows"].iloc[0]) > 1:
        figures.append(window_timeline(result.windows, name, synthetic))
    for fig in figures:
        display(fig)
        plt.close(fig)
    return result.recordings


# ------------------------------------------------------------------------- calibration
def run_test_predictions(predictor: Predictor) -> pd.DataFrame | None:
    """The run's own test predictions (``predictions.csv`` beside its checkpoint), or None without one."""
    from ser_utils import runs

    path = predictor.run_dir / runs.PREDICTIONS_FILE if predictor.run_dir else None
    return pd.read_csv(path) if path is not None and path.is_file() else None


def reliability(predictions: pd.DataFrame, n_bins: int = 10) -> tuple[pd.DataFrame, dict[str, float]]:
    """A run's test predictions (``predictions.csv``: ``true`` and the ``p_`` columns) binned by the
    top probability: per bin the clips, mean confidence, accuracy and its Wilson 95 % interval; and the
    ECE with a 95 % bootstrap interval over clips (``stats``, seed 42)."""
    from ser_utils import stats

    columns = [c for c in predictions.columns if c.startswith("p_")]
    probs = predictions[columns].to_numpy(dtype=float)
    confidence = probs.max(axis=1)
    correct = (np.array([c[2:] for c in columns])[probs.argmax(axis=1)] == predictions["true"].to_numpy()).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    table = (pd.DataFrame({"bin": bins, "confidence": confidence, "correct": correct}).groupby("bin")
             .agg(clips=("correct", "size"), confidence=("confidence", "mean"), accuracy=("correct", "mean"))
             .reset_index())
    table.insert(1, "from", table["bin"] / n_bins)
    table.insert(2, "to", (table["bin"] + 1) / n_bins)
    table["acc_low"], table["acc_high"] = stats.wilson_interval(np.round(table["accuracy"] * table["clips"]),
                                                                table["clips"])
    from ser_utils.analysis.error_analysis import ece_of

    replicates = ece_of(confidence, correct, n_bins, stats.resample_counts(len(correct)))
    low, high = stats.percentile_interval(replicates)
    summary = {"ece": ece_of(confidence, correct, n_bins), "ece_low": float(low), "ece_high": float(high),
               "clips": int(len(correct)), "accuracy": float(correct.mean()), "confidence": float(confidence.mean())}
    return table.drop(columns="bin"), summary


def reliability_diagram(table: pd.DataFrame, summary: dict[str, float], run: str = "", synthetic: bool = False):
    """Accuracy against confidence per bin (bars: accuracy with its interval; the diagonal: perfect
    calibration; the numbers: clips per bin), the ECE and its interval in the title."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.4), constrained_layout=True)
    width = float((table["to"] - table["from"]).iloc[0]) if len(table) else 0.1
    centres = (table["from"] + table["to"]) / 2
    ax.bar(centres, table["accuracy"], width=width * 0.9, color="#4c72b0", alpha=0.8, label="accuracy")
    ax.errorbar(centres, table["accuracy"], yerr=[table["accuracy"] - table["acc_low"],
                                                  table["acc_high"] - table["accuracy"]], fmt="none", color="black")
    ax.plot(table["confidence"], table["confidence"], "o", color="#dd8452", label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for x, n in zip(centres, table["clips"]):
        ax.text(x, 0.02, str(int(n)), ha="center", fontsize=7, color="white")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy of the bin")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"reliability of {run or 'the run'} on its {summary['clips']} test clips\nECE "
                 f"{summary['ece']:.3f} (95% CI {summary['ece_low']:.3f}-{summary['ece_high']:.3f})"
                 + corpus_note(synthetic), fontsize=9)
    return fig


def calibration_note(summary: dict[str, float], synthetic: bool = False) -> str:
    """One computed sentence on what the diagram says."""
    gap = summary["confidence"] - summary["accuracy"]
    side = "over-confident" if gap > 0 else "under-confident"
    return (f"On its {summary['clips']} test clips{corpus_note(synthetic)} the run's mean confidence is {summary['confidence']:.1%} against an "
            f"accuracy of {summary['accuracy']:.1%}: {side} by {abs(gap) * 100:.1f} points on average; ECE "
            f"{summary['ece']:.3f} (95% bootstrap CI {summary['ece_low']:.3f}-{summary['ece_high']:.3f}; on few clips "
            "the ECE reads high even for a calibrated model, as empty and thin bins are noisy). A bar's "
            "probabilities are only as trustworthy as this.")


def selection_note(predictor: Predictor, runs_dir: str | Path, synthetic: bool = False) -> str:
    """Which run notebook 08 shows (highest test accuracy) beside the one ``predict`` uses (lowest
    validation loss), computed from the runs folder, and why they are chosen differently."""
    from ser_utils import analysis, runs

    results = runs.finished(runs.collect_results(runs.resolve_runs_dir(runs_dir)))
    by_test = analysis.best_run(results) if not results.empty else None
    accuracy = results.set_index("run_id")["accuracy"].to_dict() if by_test else {}
    ours = f"This notebook and `predict` use run {predictor.name}, the lowest validation loss"
    why = ("the report's tables give each architecture's best test result, so notebook 08 picks runs by test "
           "accuracy to set them beside the published numbers; a model meant for new recordings is chosen "
           "on the validation set, because a pick by test accuracy lets the test clips choose the model and "
           "its test score then flatters it")
    if by_test is None:
        return f"{ours}. Notebook 08 picks by test accuracy instead: {why}."
    if by_test == predictor.name:
        here = f"here both rules pick the same run (test accuracy {accuracy[by_test]:.1%}{corpus_note(synthetic)})"
    else:
        ours_acc = pd.to_numeric(pd.Series([accuracy.get(predictor.name)]), errors="coerce").iloc[0]
        here = (f"here they differ: {by_test} scores {accuracy[by_test]:.1%} on the test clips{corpus_note(synthetic)}"
                + (f", {predictor.name} {ours_acc:.1%}" if pd.notna(ours_acc) else ""))
    return f"{ours}; notebook 08 shows {by_test}, the highest test accuracy. Why two rules: {why}; {here}."


# -------------------------------------------------------------------------- conclusions
def conclusions(held_out: pd.DataFrame, sentence: pd.DataFrame, intended: str, predictor: Predictor,
                synthetic: bool) -> list[str]:
    """The notebook's closing lines, computed from its predictions (labelled synthetic when they are)."""
    corpus = config.SYNTHETIC_LABEL if predictor.synthetic else predictor.corpus
    lines = [f"The model is run {predictor.name}, picked by validation loss, trained on the {corpus}."]
    scored = held_out[held_out["error"].fillna("") == ""]
    if len(scored):
        right = int((scored["predicted"] == scored["true"]).sum())
        lines.append(f"On {len(scored)} held-out clips{corpus_note(synthetic)} it names the intended emotion for "
                     f"{right}; a handful of clips says little: the run's test metrics (notebook 08) are the measure.")
    if len(sentence) and not sentence["error"].iloc[0]:
        got = sentence["predicted"].iloc[0]
        lines.append(f"The sentence synthesised just now in {_label(intended)} (an unseen synthetic voice) is heard "
                     f"as {_label(got)}{'' if got == intended else ' (not what was intended)'}.")
    if predictor.synthetic:
        lines.append(f"Everything here comes from a model trained on the {config.SYNTHETIC_LABEL}: it shows the "
                     "pipeline working end to end, not what a model learns from real emotional speech.")
    return lines
