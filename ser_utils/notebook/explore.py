"""Helpers of the data tour: clip durations, corpus tables, audio players and the explorer.

The explorer is an ipywidgets panel (emotion / actor / sentence -> waveform, mel
spectrogram and a player) so a reader can listen to the corpus without writing code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ser_utils import config


def durations(paths) -> pd.Series:
    """Duration in seconds of each file, read from the WAV headers only (fast)."""
    import soundfile as sf

    values = []
    for path in paths:
        try:
            info = sf.info(str(path))
            values.append(info.frames / info.samplerate)
        except (RuntimeError, sf.LibsndfileError):
            values.append(np.nan)
    return pd.Series(values, index=getattr(paths, "index", None), name="duration_s")


def corpus_tables(clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The corpus in numbers: clips per emotion x level, per actor, per sentence, per sex."""
    tables = {
        "emotion x level": pd.crosstab(clips["emotion"], clips["intensity"], margins=True),
        "sentence x emotion": pd.crosstab(clips["sentence"], clips["emotion"], margins=True),
        "clips per actor": clips.groupby("actor").size().describe().to_frame("clips per actor").T,
    }
    if "sex" in clips:
        actors = clips.groupby("actor")[["sex", "age"]].first()
        tables["actors by sex"] = actors.groupby("sex").agg(actors=("age", "size"), mean_age=("age", "mean"),
                                                             min_age=("age", "min"), max_age=("age", "max"))
    return tables


def pick(clips: pd.DataFrame, emotion: str | None = None, actor: int | None = None,
         sentence: str | None = None, intensity: str | None = None) -> pd.Series:
    """The first clip matching the given fields (raises a clear error when none does)."""
    mask = pd.Series(True, index=clips.index)
    for column, value in (("emotion", emotion), ("actor", actor), ("sentence", sentence), ("intensity", intensity)):
        if value is not None:
            mask &= clips[column] == value
    if not mask.any():
        raise ValueError(f"no clip with emotion={emotion} actor={actor} sentence={sentence} intensity={intensity}")
    return clips.loc[mask].iloc[0]


def one_per_emotion(clips: pd.DataFrame, actor: int | None = None, sentence: str = "DFA") -> dict[str, pd.Series]:
    """One clip per emotion from the same actor and sentence, so only the emotion differs."""
    actor = actor if actor is not None else int(clips["actor"].min())
    rows = {}
    for emotion in config.EMOTIONS:
        subset = clips[(clips["actor"] == actor) & (clips["sentence"] == sentence) & (clips["emotion"] == emotion)]
        if subset.empty:
            subset = clips[clips["emotion"] == emotion]
        rows[emotion] = subset.sort_values("intensity").iloc[-1]
    return rows


def player(path: str | Path):
    """An audio player for a notebook (IPython.display.Audio)."""
    from IPython.display import Audio

    return Audio(filename=str(path))


def explorer(clips: pd.DataFrame):
    """An ipywidgets panel: pick emotion, actor and sentence -> waveform, mel spectrogram, player."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from ser_utils.analysis import plots
    from ser_utils.data import audio

    emotion = widgets.Dropdown(options=list(config.EMOTIONS), description="emotion")
    actor = widgets.Dropdown(options=sorted(int(a) for a in clips["actor"].unique()), description="actor")
    sentence = widgets.Dropdown(options=sorted(clips["sentence"].unique()), description="sentence")
    out = widgets.Output()

    def view() -> None:
        try:
            row = pick(clips, emotion.value, actor.value, sentence.value)
        except ValueError as err:
            print(err)
            return
        signal = audio.load(row["path"])
        fig = plots.waveform_and_mel(signal, title=f"{row['file']} ({config.EMOTION_NAMES[row['emotion']]})")
        display(fig)
        plt.close(fig)
        display(player(row["path"]))

    def show(_change) -> None:
        with out:
            out.clear_output(wait=True)
            view()

    for widget in (emotion, actor, sentence):
        widget.observe(show, names="value")
    # The first clip is shown directly, not through the Output widget: a headless run (papermill,
    # the HTML report) then needs no widget traffic, which is where its kernel could stall.
    view()
    return widgets.VBox([widgets.HBox([emotion, actor, sentence]), out])


def loudness_table(clips: pd.DataFrame, per_emotion: int = 20, seed: int = config.SEED) -> pd.DataFrame:
    """Per emotion, over up to ``per_emotion`` clips drawn with ``seed``: the median RMS level
    (dBFS, of the whole file before any normalisation), the median peak and the median duration.

    Notebook 01 reads its loudness statement off this table instead of asserting it.
    """
    from ser_utils.data import audio

    sample = pd.concat([g.sample(min(len(g), per_emotion), random_state=seed) for _, g in clips.groupby("emotion")])
    rows = []
    for row in sample.itertuples():
        signal = audio.load(row.path).astype(np.float64)
        rms = np.sqrt(np.mean(signal**2))
        rows.append({"emotion": row.emotion, "rms_dbfs": 20 * np.log10(max(rms, 1e-10)),
                     "peak": np.abs(signal).max(), "duration_s": len(signal) / config.SAMPLE_RATE})
    table = pd.DataFrame(rows).groupby("emotion").agg(
        clips=("rms_dbfs", "size"), median_rms_dbfs=("rms_dbfs", "median"), median_peak=("peak", "median"),
        median_duration_s=("duration_s", "median"))
    return table.sort_values("median_rms_dbfs", ascending=False)


def vad_flags_by_level(signal: np.ndarray, levels=(0, 1, 2, 3),
                       cfg: config.PreprocessConfig = config.PreprocessConfig()) -> dict[int, np.ndarray]:
    """The WebRTC VAD's smoothed per-frame speech decisions at each aggressiveness level."""
    from dataclasses import replace

    from ser_utils.data import audio

    return {level: audio.speech_frames(signal, config.SAMPLE_RATE, replace(cfg, vad_aggressiveness=level), "webrtc")
            for level in levels}


def vad_slider(signal: np.ndarray, cfg: config.PreprocessConfig = config.PreprocessConfig()):
    """An aggressiveness slider (0-3) redrawing the VAD decisions of one clip.

    The default level is drawn directly (not through the Output widget), so a headless run
    (papermill, the HTML report) shows it without widget traffic; moving the slider redraws.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from ser_utils.analysis import teaching

    slider = widgets.IntSlider(value=cfg.vad_aggressiveness, min=0, max=3, description="aggressiveness")
    out = widgets.Output()

    def draw(level: int) -> None:
        flags = vad_flags_by_level(signal, (level,), cfg)
        fig = teaching.vad_decisions(signal, flags, cfg.vad_frame_ms, title=f"WebRTC VAD, aggressiveness {level}")
        display(fig)
        plt.close(fig)

    def redraw(change) -> None:
        with out:
            out.clear_output(wait=True)
            draw(change["new"])

    slider.observe(redraw, names="value")
    draw(slider.value)
    return widgets.VBox([slider, out])


def augmented_versions(feature_set, row: int, seed: int = config.SEED, snr_db: float = 10.0) -> dict[str, np.ndarray]:
    """Clip ``row`` of a FeatureSet as loaded, and one version per waveform augmentation (notebook 11):
    each speed, a gain, white and brown noise and another clip's non-speech part at ``snr_db``, and
    one random copy as ``--augment wave`` caches it."""
    from ser_utils.data import audio, augment
    from ser_utils.features import wave_cache

    rng = np.random.default_rng(seed)
    signal = audio.load(feature_set.manifest["path"].iloc[row])
    others = np.delete(np.arange(len(feature_set)), row)
    bank = wave_cache.noise_bank(feature_set, others, config.WaveAugmentConfig(bank_clips=16), seed)
    versions = {"original": signal, "speed 0.9": augment.speed(signal, 0.9), "speed 1.1": augment.speed(signal, 1.1),
                "gain -6 dB": augment.gain(signal, -6.0)}
    for name, exponent in (("white", 0.0), ("brown", 2.0)):
        versions[f"{name} noise, {snr_db:g} dB SNR"] = augment.add_at_snr(
            signal, augment.coloured_noise(len(signal), exponent, rng), snr_db)
    other = bank.draw(len(signal), rng)
    if other is not None:
        versions[f"another clip's non-speech, {snr_db:g} dB SNR"] = augment.add_at_snr(signal, other, snr_db)
    name = Path(feature_set.manifest["path"].iloc[row]).name
    versions["a cached copy (random draw)"], _ = augment.augment_wave(signal, augment.clip_rng(seed, 0, name), bank=bank,
                                                                      source=name)
    return versions


def logmel_images(versions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The 64 x 64 log-mel image each version gives after the usual preprocessing (VAD trim, z-score)."""
    from ser_utils import features
    from ser_utils.data import audio

    return {name: features.features_2d(audio.preprocess(signal, sr=config.SAMPLE_RATE).signal)[0]
            for name, signal in versions.items()}
