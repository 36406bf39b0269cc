"""What data augmentation costs: ``--augment spec`` per training epoch, and the ``wave`` cache build.

    python benchmarks/bench_augment.py                      # both parts
    python benchmarks/bench_augment.py --part spec --clips 512 --models 1d,2d,combined
    python benchmarks/bench_augment.py --part wave --data data/demo-corpus-quick --clips 120 --jobs 2

* ``spec``: :func:`ser_utils.training.loop.train_epoch` on preloaded synthetic tensors of the real
  shapes, without and with the masks (:func:`ser_utils.training.augment.spec_augment`), alternating,
  ``--repeats`` times each after a warm-up; the minimum is kept. The clock is the process's CPU time
  (all threads; a busy shared machine disturbs it far less than wall time), one torch thread by
  default (``--threads``). Budget: the masks add at
  most 5% to an epoch on the CPU.
* ``wave``: on the same clips, the plain feature extraction (:func:`ser_utils.features.extract`, a
  fresh cache) against the build of K = 2 augmented copies (:func:`ser_utils.features.wave_cache.
  augmented_copies`, a fresh cache, its noise bank included), both with ``--jobs`` workers, wall
  time. Budget: about 2.5 x the plain extraction. Without ``--data`` a one-actor demo corpus is
  generated in a temporary folder first (not timed).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_utils import config, features, models, training  # noqa: E402
from ser_utils.data import dataset  # noqa: E402
from ser_utils.features import wave_cache  # noqa: E402
from ser_utils.training import augment, batching, data as training_data  # noqa: E402


def epoch_time(model, tensors, y, idx, batch_size: int, masks) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    generator = torch.Generator().manual_seed(0)
    start = time.process_time()
    training.train_epoch(model, optimizer, scheduler, tensors, y, idx, batch_size, generator, "fp32", masks)
    return time.process_time() - start


def bench_spec(model_names: list[str], n_clips: int, batch_size: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    data = training_data.TrainingData(x1d=rng.standard_normal((n_clips, 27, 301), dtype=np.float32),
                                      x2d=rng.random((n_clips, 1, 64, 64), dtype=np.float32),
                                      y=rng.integers(0, 6, n_clips), split=np.full(n_clips, "train"))
    device = torch.device("cpu")
    print(f"\n--augment spec: one training epoch of {n_clips} clips, batch {batch_size}, CPU time "
          f"(min of {repeats}), {torch.get_num_threads()} threads")
    print(f"{'model':<10} {'none s':>9} {'spec s':>9} {'ratio':>7}")
    for name in model_names:
        torch.manual_seed(0)
        model = models.build_model(name).to(device)
        prepared = data.with_inputs(model.inputs).standardize()
        tensors = batching.to_device_tensors(prepared, model.inputs, device)
        y, idx = torch.as_tensor(prepared.y), torch.as_tensor(prepared.indices("train"))
        masks = functools.partial(augment.spec_augment, generator=torch.Generator().manual_seed(1))
        epoch_time(model, tensors, y, idx[:batch_size], batch_size, masks)  # warm-up
        plain, masked = [], []
        for _ in range(repeats):
            plain.append(epoch_time(model, tensors, y, idx, batch_size, None))
            masked.append(epoch_time(model, tensors, y, idx, batch_size, masks))
        print(f"{name:<10} {min(plain):>9.3f} {min(masked):>9.3f} {min(masked) / min(plain):>7.3f}")


def bench_wave(data_dir: Path | None, n_clips: int, jobs: int, copies: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if data_dir is None:
            from ser_utils.data import demo_corpus

            data_dir = demo_corpus.generate(tmp / "corpus", n_actors=1, seed=config.SEED, progress=False)
        clips, _ = dataset.scan(data_dir)
        clips = clips.sort_values("path").iloc[:n_clips].reset_index(drop=True)
        start = time.perf_counter()
        fs = features.extract(clips, cache_root=tmp / "features", jobs=jobs, progress=False)
        plain = time.perf_counter() - start
        cfg = config.WaveAugmentConfig(copies=copies)
        start = time.perf_counter()
        built = wave_cache.augmented_copies(fs, np.arange(len(fs)), cfg, cache_root=tmp / "wave", jobs=jobs,
                                            progress=False)
        wave = time.perf_counter() - start
        start = time.perf_counter()
        wave_cache.augmented_copies(fs, np.arange(len(fs)), cfg, cache_root=tmp / "wave", jobs=jobs, progress=False)
        hit = time.perf_counter() - start
    print(f"\n--augment wave: {len(fs)} clips of {data_dir}, {jobs} worker(s), wall time")
    print(f"{'step':<38} {'s':>8} {'x plain':>8}")
    print(f"{'plain feature extraction':<38} {plain:>8.2f} {1.0:>8.2f}")
    print(f"{f'wave cache build, K = {copies} copies':<38} {wave:>8.2f} {wave / plain:>8.2f}")
    print(f"{'wave cache, second call (loaded)':<38} {hit:>8.2f} {hit / plain:>8.2f}")
    print(f"augmented copies kept: {int(built.augmented.sum())} of {built.augmented.size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("spec", "wave", "both"), default="both")
    parser.add_argument("--models", default="1d,2d,combined")
    parser.add_argument("--clips", type=int, default=256, help="training clips per epoch (spec)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="corpus for the wave part (default: generated)")
    parser.add_argument("--wave-clips", type=int, default=82)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a loaded machine every small multi-threaded op waits "
                             "for a descheduled OpenMP thread, which measures the machine, not the masks)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("spec", "both"):
        bench_spec(args.models.split(","), args.clips, args.batch_size, args.repeats)
    if args.part in ("wave", "both"):
        bench_wave(args.data, args.wave_clips, args.jobs, args.copies)


if __name__ == "__main__":
    main()
