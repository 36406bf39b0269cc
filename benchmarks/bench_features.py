"""Feature extraction: the straightforward per-clip librosa version against ours.

    python benchmarks/bench_features.py [--data data/demo-corpus] [--n 400] [--jobs 2]

Times, on the same clips and in one run:
  (a) straightforward: every feature from the signal by its own librosa call (each call
      its own STFT and filterbank; chroma estimates the tuning), single process;
  (b) ours, features only (features_1d + features_2d), single process;
  (c) ours, the full extract() (variable-length features and the cache written), jobs=1;
  (d) the same with --jobs workers (the package's start method: forkserver on Linux, its
      server started here once), and (d') with the old 'fork' start, for its cost;
  (e) a cache hit (extract() again).
Each row includes loading and preprocessing, so the rows are what a user waits for; the
preprocessing time alone is printed too. Then it checks that (a) and ours agree on every
feature group after identical preprocessing.

With no wavs under --data (the demo corpus not made yet) it writes --n synthetic
speech-like clips (harmonic tones with syllable envelopes in room noise) to a temp folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_utils import config, features, workers
from ser_utils.data import audio
from ser_utils.features import cache as feature_cache  # noqa: E402
from ser_utils.config import Feature1DConfig, Feature2DConfig, PreprocessConfig  # noqa: E402

CORPUS_CLIPS = config.N_CLIPS_RELEASED
#: Agreement required of ours against direct librosa calls (tuning=0 for chroma): absolute
#: for ZCR, chroma, RMS (of a z-scored clip, O(1)) and the 2D image in [0, 1]; for MFCC
#: relative to the group's largest magnitude (values in the hundreds; float32 FFT round-off
#: is relative to a frame's loudest bin, so bins 60-80 dB below it differ by a fraction of
#: a dB between FFT libraries, which the DCT spreads over the coefficients).
TOLERANCE_ABS = 1e-4
TOLERANCE_MFCC_REL = 1e-5


# ------------------------------------------------------------------ test clips
def synth_clip(rng: np.random.Generator, sr: int = config.SAMPLE_RATE) -> np.ndarray:
    """A speech-like clip: a gliding harmonic voice with 4 Hz syllables between room noise."""
    lead, body, tail = rng.uniform(0.2, 0.6), rng.uniform(1.2, 3.6), rng.uniform(0.2, 0.6)
    t = np.arange(int(body * sr)) / sr
    f0 = rng.uniform(100, 240) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 0.5
    speech = 0.2 * voice * syllables
    clip = np.concatenate([np.zeros(int(lead * sr)), speech, np.zeros(int(tail * sr))])
    noise = np.cumsum(rng.standard_normal(len(clip))) * 2e-5  # brownish room noise
    return (clip + noise - noise.mean()).astype(np.float32)


def write_synthetic(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` synthetic 16-bit 16 kHz clips with CREMA-D-shaped names."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sentences, emotions = list(config.SENTENCES), list(config.EMOTIONS)
    paths = []
    for i in range(n):
        actor = config.FIRST_ACTOR + i // (len(sentences) * len(emotions))
        name = f"{actor}_{sentences[i % len(sentences)]}_{emotions[(i // len(sentences)) % len(emotions)]}_XX.wav"
        path = folder / name
        sf.write(path, synth_clip(rng), config.SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def pick_clips(data: Path, n: int, tmp: Path) -> tuple[list[Path], str]:
    audio_dir = data / "AudioWAV" if (data / "AudioWAV").is_dir() else data
    wavs = sorted(audio_dir.glob("*.wav")) if audio_dir.is_dir() else []
    if not wavs:
        return write_synthetic(tmp, n), f"{n} synthetic clips written to {tmp} ({data} has no wavs)"
    chosen = sorted(np.random.default_rng(0).choice(len(wavs), size=min(n, len(wavs)), replace=False))
    return [wavs[i] for i in chosen], f"{len(chosen)} of {len(wavs)} clips from {audio_dir}"


# ------------------------------------------------------- the straightforward way
def naive_1d(y: np.ndarray, sr: int, f1: Feature1DConfig, tuning: float | None = None) -> np.ndarray:
    """Each 1D feature by its own librosa call on the signal, as a first version would."""
    import librosa

    y, _ = features.fix_length(y, features.fixed_samples(sr, f1))
    n, hop = f1.frame_length, f1.hop_length
    return np.concatenate([
        librosa.feature.zero_crossing_rate(y, frame_length=n, hop_length=hop),
        librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n, hop_length=hop, n_chroma=f1.n_chroma, tuning=tuning),
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=f1.n_mfcc, n_fft=n, hop_length=hop),
        librosa.feature.rms(y=y, frame_length=n, hop_length=hop),
    ]).astype(np.float32)


def naive_2d(y: np.ndarray, sr: int, f2: Feature2DConfig) -> np.ndarray:
    """melspectrogram(y=...) -> dB -> [0, 1] -> resize (the same resize as ours, to compare features)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=f2.n_fft, hop_length=f2.hop_length, n_mels=f2.n_mels,
                                         fmax=f2.effective_fmax(sr))
    db = librosa.power_to_db(mel, ref=np.max)
    scaled = (db - db.min()) / (db.max() - db.min())
    return features.resize_image(scaled.astype(np.float32), f2.size, f2.size)[None]


# ------------------------------------------------------------------------ timing
def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn()``: CPU time shows the work when other jobs share the cores."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    fn()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def time_per_clip(paths, pre, fn) -> tuple[float, float]:
    """Preprocess and featurise clip by clip, with one BLAS thread (a fair single-process run)."""
    from threadpoolctl import threadpool_limits

    def run():
        for path in paths:
            fn(audio.preprocess(path, pre).signal)

    with threadpool_limits(limits=1):
        return timed(run)


def time_extract(paths, cache_root: Path, pre, f1, f2, jobs: int, force: bool,
                 start_method: str | None = None) -> tuple[float, float]:
    """extract() timed; ``start_method`` overrides the pool's (None: the package's, forkserver on Linux)."""
    manifest = pd.DataFrame({"path": [str(p) for p in paths]})

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            features.extract(manifest, cache_root, pre, f1, f2, jobs=jobs, progress=False, force=force)

    saved = workers.START_METHOD_OVERRIDE
    workers.START_METHOD_OVERRIDE = start_method
    try:
        return timed(run)
    finally:
        workers.START_METHOD_OVERRIDE = saved


def timing_table(paths, pre, f1, f2, jobs: int, cache_root: Path) -> pd.DataFrame:
    sr = pre.sample_rate
    n = len(paths)
    method = workers.start_method()
    for path in paths[:3]:  # warm up: imports, filterbanks, numba, page cache
        y = audio.preprocess(path, pre).signal
        naive_1d(y, sr, f1), naive_2d(y, sr, f2), features.features_1d(y, sr, f1), features.features_2d(y, sr, f2)
    rows = {
        "preprocessing only (load, VAD, z-score)": time_per_clip(paths, pre, lambda y: None),
        "(a) straightforward librosa, 1 process": time_per_clip(
            paths, pre, lambda y: (naive_1d(y, sr, f1), naive_2d(y, sr, f2))),
        "(b) ours, features_1d + features_2d, 1 process": time_per_clip(
            paths, pre, lambda y: (features.features_1d(y, sr, f1), features.features_2d(y, sr, f2))),
        "(c) ours, extract() incl. var-length + cache write, jobs=1":
            time_extract(paths, cache_root / "j1", pre, f1, f2, 1, True),
        # the first pool of this process starts the fork server (once per process: its imports)
        f"(d) ours, extract() incl. var-length + cache write, jobs={jobs} ({method}, first pool)":
            time_extract(paths, cache_root / "jn", pre, f1, f2, jobs, True),
        f"(d2) the same again ({method} already running)":
            time_extract(paths, cache_root / "jn", pre, f1, f2, jobs, True),
        f"(d') the same with the old 'fork' start (unsafe in a kernel), jobs={jobs}":
            time_extract(paths, cache_root / "jf", pre, f1, f2, jobs, True, start_method="fork"),
        "(e) cache hit: extract() again": time_extract(paths, cache_root / "jn", pre, f1, f2, jobs, False),
    }
    table = pd.DataFrame(rows, index=["seconds", "cpu s"]).T.rename_axis("method")
    if method != "fork":  # a fork server's workers are its children, not ours: their CPU time is not seen here
        table.loc[[i for i in table.index if i.startswith(("(d)", "(d2)"))], "cpu s"] = np.nan
    base = table.loc["(a) straightforward librosa, 1 process", "seconds"]
    table["clips/s"] = n / table["seconds"]
    table["speed-up vs (a)"] = base / table["seconds"]
    table["cpu ms/clip"] = 1000 * table["cpu s"] / n
    table[f"s for {CORPUS_CLIPS} clips"] = table["seconds"] * CORPUS_CLIPS / n
    table.loc["(e) cache hit: extract() again", f"s for {CORPUS_CLIPS} clips"] = np.nan  # load time is not per clip
    return table


# --------------------------------------------------------------------- agreement
def agreement(paths, pre, f1, f2) -> pd.DataFrame:
    """Max |ours - straightforward| per feature group over the clips, after identical preprocessing."""
    sr = pre.sample_rate
    slices = features.row_slices(f1)
    worst: dict[str, float] = {}
    scale: dict[str, float] = {}
    total: dict[str, float] = {}
    for path in paths:
        y = audio.preprocess(path, pre).signal
        ours = features.features_1d(y, sr, f1)
        tuned0, tuned = naive_1d(y, sr, f1, tuning=0.0), naive_1d(y, sr, f1, tuning=None)
        pairs = {name: (ours[s], tuned0[s]) for name, s in slices.items()}
        pairs["chroma vs default tuning"] = (ours[slices["chroma"]], tuned[slices["chroma"]])
        pairs["2D image"] = (features.features_2d(y, sr, f2), naive_2d(y, sr, f2))
        for name, (a, b) in pairs.items():
            worst[name] = max(worst.get(name, 0.0), float(np.abs(a - b).max()))
            total[name] = total.get(name, 0.0) + float(np.abs(a - b).mean()) / len(paths)
            scale[name] = max(scale.get(name, 0.0), float(np.abs(b).max()))
    table = pd.DataFrame({"max abs diff": worst, "mean abs diff": total, "max |value|": scale}).rename_axis("group")
    table["relative"] = table["max abs diff"] / table["max |value|"]
    limits = {name: TOLERANCE_ABS for name in worst}
    limits["mfcc"] = TOLERANCE_MFCC_REL * scale["mfcc"]
    limits["chroma vs default tuning"] = np.nan  # expected to differ: not a tolerance check
    table["tolerance"] = pd.Series(limits)
    table["ok"] = [("n/a" if np.isnan(t) else "yes" if d <= t else "NO") for d, t in
                   zip(table["max abs diff"], table["tolerance"])]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=config.DEMO_CORPUS_DIR)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    pre, f1, f2 = PreprocessConfig(), Feature1DConfig(), Feature2DConfig()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        paths, source = pick_clips(args.data, args.n, tmp / "clips")
        print(f"clips: {source}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
        table = timing_table(paths, pre, f1, f2, args.jobs, tmp / "cache")
        with pd.option_context("display.width", 200, "display.float_format", "{:.2f}".format):
            print(table.to_string())
        print(f"load average {os.getloadavg()[0]:.1f} at the end (cpu ms/clip is the work; seconds depend on load)")
        first, again, old = (table.loc[[i for i in table.index if i.startswith(p)][0], "seconds"]
                             for p in ("(d)", "(d2)", "(d')"))
        print(f"start method {workers.start_method()} against fork: {len(paths) / again:.0f} against "
              f"{len(paths) / old:.0f} clips/s once its server runs (ratio {old / again:.2f}); starting the server "
              f"cost {first - again:.1f} s once per process")
        agree = agreement(paths, pre, f1, f2)
        with pd.option_context("display.width", 200):
            print(agree.to_string(float_format="{:.3g}".format))
        print(f"tolerance: |diff| <= {TOLERANCE_ABS:g} for rows in [0, 1]; MFCC |diff| <= {TOLERANCE_MFCC_REL:g}"
              " x its largest magnitude; chroma with default tuning is expected to differ (tuning estimate)")
    return 0 if (agree["ok"] != "NO").all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
