"""Prediction speed: clips per second of ``Predictor.predict`` on 1,000 clips, batched against one at a time.

    python benchmarks/bench_predict.py [--data DIR] [--n 1000] [--n-single 150] [--jobs N] [--models 1d,2d]
                                       [--decode-clips 200]   (--models "" : the decoding table only)

For each model, in one process and on the same clips:
  (a) load: ``Predictor.from_run`` (read ``best.pt``, build the model), and the one-time set-up
      of the feature code (librosa's filterbanks, paid by the first recording of a process);
  (b) batched: ``predictor.predict(paths)``: a pool of worker processes, one per core, each
      holding the model, scores chunks of up to 32 recordings start to finish (decode,
      preprocess, features, forward passes). Timed twice: the first call of the process ("first
      batched": it also pays the pool's start, torch's import in its fork server and the
      workers' first recording) and the next calls ("batched": the median of three more calls,
      the rate a process that has predicted before sustains, with its pool kept; the target
      applies to it);
  (c) one at a time: ``predictor.predict(path)`` per clip (the first --n-single clips): no pool,
      one forward pass per clip.
Every row includes decoding, preprocessing and features: what a user waits for. Speed does not
depend on the weights, so each model gets a checkpoint of untrained weights (written with the
suite's own ``inference.build_checkpoint``) in a temporary run folder.

Then (d) decoding alone: --decode-clips distinct clips, each also written as a browser's WebM/Opus and
a phone's M4A/AAC (``decoders.encode``), read by ``audio.load`` (decode, mono, 16 kHz) one after
another in this process: clips/s per format and how many times slower than WAV (libsndfile) the
FFmpeg formats are (WAV is read first: libsndfile refusing a WebM or M4A before FFmpeg opens it is
part of their cost).

Clips: --data (a folder searched for audio), else the demo corpus ``make demo`` used, else a
3-actor demo corpus generated into a temporary folder; cycled to --n clips. The targets are for
2 CPU cores: at least 300 clips/s for the 1D model and 80 clips/s for the 2D model. On a shared
machine the wall-clock rates depend on the load, which is printed; cpu ms/clip is the work done.
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

from ser_utils import config, fileio, runs
from ser_utils.predict import windowing
from ser_utils.training import checkpoint as inference, runtime  # noqa: E402
from ser_utils.models import build_model  # noqa: E402
from ser_utils.predict.predictor import Predictor, find_audio  # noqa: E402
from ser_utils.training.data import TrainingData  # noqa: E402

TARGETS = {"1d": 300.0, "2d": 80.0}  # clips/s on 2 CPU cores
REPEATS = 3  # warm batched calls; the median is reported (a shared machine's speed varies from call to call)


def cpu_seconds() -> float:
    """CPU time of this process, its finished children and every live descendant with theirs.

    The worker pools' processes are children of the fork server (a live child of this process);
    the scoring workers stay alive between calls, so the whole tree is read from Linux ``/proc``:
    each live process's own time and that of the children it has reaped (``cutime``/``cstime``)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _live_descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / tick  # utime, stime, cutime, cstime
    return total


def _live_descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_live_descendants(child)]
    return found


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn()
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def untrained_run(model: str, folder: Path) -> Path:
    """A run folder whose best.pt holds untrained weights and standardisation of random features."""
    import torch

    rng = np.random.default_rng(0)
    n = 12
    data = TrainingData(x1d=rng.standard_normal((n, 27, 301)).astype(np.float32),
                        x2d=rng.random((n, 1, 64, 64), dtype=np.float32), y=np.arange(n) % 6,
                        split=np.full(n, "train"), corpus="synthetic").standardize()
    cfg = config.TrainConfig(model=model, device="cpu")
    torch.manual_seed(0)
    state = build_model(model).state_dict()
    run_dir = folder / cfg.run_id
    ckpt = inference.build_checkpoint(cfg, state, data, epoch=0, val_loss=float("nan"))
    fileio.write_atomic(run_dir / runs.CHECKPOINT_FILE, lambda tmp: torch.save(ckpt, tmp))
    return run_dir


def clip_paths(data: str | None, n: int, tmp: Path) -> tuple[list[str], str]:
    """--n paths cycling over the clips of --data, the recorded demo corpus, or a fresh tiny one."""
    from ser_utils.data import discovery, demo_corpus

    if data:
        folder, source = Path(data), data
    else:
        found = discovery.find_corpus()
        if found is not None:
            folder, source = Path(found.path), f"{found.path} ({found.source})"
        else:
            folder = tmp / "demo-corpus"
            demo_corpus.generate(folder, n_actors=3, seed=config.SEED, progress=False)
            source = f"a 3-actor demo corpus generated in {folder}"
    files = find_audio(folder)
    return [files[i % len(files)] for i in range(n)], f"{len(files)} clips from {source}, cycled to {n}"


def bench_model(model: str, paths: list[str], n_single: int, jobs: int | None, tmp: Path) -> dict:
    run_dir = untrained_run(model, tmp / "runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor, load_s, _ = timed(lambda: Predictor.from_run(run_dir, device="cpu", jobs=jobs))
    _, setup_s, _ = timed(lambda: windowing.warm_up(predictor.spec))
    _, first_s, _ = timed(lambda: predictor.predict(paths, progress=False))
    repeats = [timed(lambda: predictor.predict(paths, progress=False)) for _ in range(REPEATS)]
    batched, batched_s, batched_cpu = sorted(repeats, key=lambda r: r[1])[REPEATS // 2]  # the median call
    predictor.close()
    single = paths[:n_single]
    _, single_s, single_cpu = timed(lambda: [predictor.predict(p, progress=False) for p in single])
    assert (batched["error"] == "").all(), batched.loc[batched["error"] != "", "error"].iloc[0]
    rate, single_rate = len(paths) / batched_s, len(single) / single_s
    target = TARGETS.get(model)
    return {"model": model, "load s": load_s, "set-up s": setup_s, "first batched clips/s": len(paths) / first_s,
            "batched clips/s": rate,
            "one at a time clips/s": single_rate, "ratio": rate / single_rate,
            "batched cpu ms/clip": 1000 * batched_cpu / len(paths),
            "single cpu ms/clip": 1000 * single_cpu / len(single),
            "target clips/s": target if target else np.nan,
            "meets target": ("yes" if rate >= target else "no") if target else "-",
            "windows/clip": float(batched["n_windows"].mean())}


def bench_decoding(paths: list[str], n: int, tmp: Path) -> pd.DataFrame:
    """Clips/s of ``audio.load`` on the same clips as WAV, WebM/Opus and M4A/AAC, one process, one at a time."""
    import soundfile as sf

    from ser_utils.data import audio, decoders

    clips = list(dict.fromkeys(paths))[:n]
    files = {"wav": clips, "webm": [], "m4a": []}
    for i, path in enumerate(clips):
        signal, rate = sf.read(path, dtype="float32")
        for fmt in ("webm", "m4a"):
            files[fmt].append(str(decoders.encode(tmp / f"{i}.{fmt}", signal, rate)))
    rows = []
    for fmt, group in files.items():
        _, wall, cpu = timed(lambda: [audio.load(p) for p in group])
        rows.append({"format": fmt, "decoder": "libsndfile" if fmt == "wav" else "FFmpeg (PyAV)", "clips": len(group),
                     "clips/s": len(group) / wall, "cpu ms/clip": 1000 * cpu / len(group),
                     "MB": sum(os.path.getsize(p) for p in group) / 1e6})
    table = pd.DataFrame(rows).set_index("format")
    table["x slower than wav"] = table.loc["wav", "clips/s"] / table["clips/s"]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a folder of recordings (default: the demo corpus)")
    parser.add_argument("--n", type=int, default=1000, help="clips predicted batched (default: %(default)s)")
    parser.add_argument("--n-single", type=int, default=150,
                        help="clips predicted one at a time (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per usable core)")
    parser.add_argument("--models", default="1d,2d",
                        help="comma-separated registry names, '' for none (default: %(default)s)")
    parser.add_argument("--decode-clips", type=int, default=200,
                        help="distinct clips of the decoding table, 0 for none (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        paths, source = clip_paths(args.data, args.n, tmp)
        print(f"clips: {source}")
        print(f"{runtime.usable_cpus()} usable CPU cores, load average {os.getloadavg()[0]:.1f} at start "
              "(a shared machine: wall-clock rates fall with the load; cpu ms/clip is the work)")
        rows = [bench_model(m.strip(), paths, args.n_single, args.jobs, tmp) for m in args.models.split(",")
                if m.strip()]
        decoding = bench_decoding(paths, args.decode_clips, tmp) if args.decode_clips > 0 else None
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if rows:
            table = pd.DataFrame(rows).set_index("model")
            print(table.to_string(float_format=lambda v: f"{v:.2f}"))
            for model, row in table.iterrows():
                print(f"{model}: batched is {row['ratio']:.1f}x one at a time ({row['batched clips/s']:.0f} vs "
                      f"{row['one at a time clips/s']:.0f} clips/s)")
        if decoding is not None:
            print("decoding alone (audio.load, one process, one run):")
            print(decoding.to_string(float_format=lambda v: f"{v:.2f}"))
            for fmt in ("webm", "m4a"):
                print(f"{fmt}: {decoding.loc[fmt, 'x slower than wav']:.1f}x slower to decode than wav "
                      f"({decoding.loc[fmt, 'clips/s']:.0f} vs {decoding.loc['wav', 'clips/s']:.0f} clips/s)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
