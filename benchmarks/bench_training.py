"""How much does our training loop cost beyond the model's own forward + backward + step?

For each model, on synthetic preloaded tensors of a realistic size, time:

* ``loop``: :func:`ser_utils.training.train_epoch`, the loop :func:`ser_utils.training.run`
  uses (permutation, index-slice gathers, autocast, loss/accuracy accumulation, LR scheduler,
  one host sync per epoch);
* ``bare``: the same number of batches, already gathered into separate tensors, through
  nothing but forward + cross-entropy + backward + optimizer step (+ one sync at the end).

``overhead = loop / bare - 1`` should stay under 10%. Each is measured ``--repeats`` times,
alternating, after a warm-up; the minimum is reported (the least disturbed by other processes).
On the CPU the default clock is the process's CPU time (``time.process_time``, all threads),
which a busy shared machine disturbs far less than wall time; ``--clock wall`` switches back.
On CUDA the clock is wall time between ``torch.cuda.synchronize`` calls.

    python benchmarks/bench_training.py                      # CPU, 2 batches per model
    python benchmarks/bench_training.py --device cuda --batches 0   # GPU, whole epochs
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ser_utils import batching, config, models, runtime, training, training_data


def synthetic_data(n_clips: int, seed: int = 0) -> training_data.TrainingData:
    """Random clips with the real shapes; every clip is in the training split."""
    rng = np.random.default_rng(seed)
    return training_data.TrainingData(
        x1d=rng.standard_normal((n_clips, 27, 301), dtype=np.float32),
        x2d=rng.random((n_clips, 1, 64, 64), dtype=np.float32),
        y=rng.integers(0, len(config.EMOTIONS), n_clips),
        split=np.full(n_clips, "train"),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: The clock both measurements use (set by main: CPU time on the CPU, wall time on CUDA).
CLOCK = time.perf_counter


def time_loop(model, optimizer, scheduler, tensors, y, train_idx, batch_size, device) -> float:
    generator = torch.Generator().manual_seed(0)
    sync(device)
    start = CLOCK()
    training.train_epoch(model, optimizer, scheduler, tensors, y, train_idx, batch_size, generator)
    sync(device)
    return CLOCK() - start


def pregathered_batches(tensors, y, train_idx, batch_size, device):
    """The batches the loop would see, gathered in advance into contiguous tensors."""
    order = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(0))].to(device)
    batches = []
    for start in range(0, len(order), batch_size):
        b = order[start:start + batch_size]
        xs = []
        for name, t in tensors.items():
            x = t[b]
            fmt = torch.channels_last if x.ndim == 4 and device.type == "cuda" else torch.contiguous_format
            xs.append(x.contiguous(memory_format=fmt))
        batches.append((xs, y[b].contiguous()))
    return batches


def time_bare(model, optimizer, batches, device) -> float:
    model.train()
    sync(device)
    start = CLOCK()
    for xs, target in batches:
        with runtime.autocast(device):
            logits = model(*xs)
        loss = F.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return CLOCK() - start


def bench_model(name: str, data: training_data.TrainingData, device: torch.device, batch_size: int,
                n_batches: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = models.build_model(name).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    prepared = data.standardize() if "x1d" in model.inputs else data
    tensors = batching.to_device_tensors(prepared, model.inputs, device)
    y = torch.as_tensor(prepared.y).to(device)
    n_train = len(prepared.y) if n_batches <= 0 else min(len(prepared.y), n_batches * batch_size)
    train_idx = torch.arange(n_train)
    cfg = config.TrainConfig(model=name, epochs=1000, batch_size=batch_size)  # long schedule: LR never hits 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    scheduler = training.make_scheduler(optimizer, cfg, n_train)
    batches = pregathered_batches(tensors, y, train_idx, batch_size, device)

    # warm-up: allocator, cuDNN autotuning, Adam state
    time_bare(model, optimizer, batches[:2], device)
    loop_times, bare_times = [], []
    for i in range(repeats):  # alternate which goes first, so a drifting load hits both alike
        pair = [lambda: loop_times.append(
                    time_loop(model, optimizer, scheduler, tensors, y, train_idx, batch_size, device)),
                lambda: bare_times.append(time_bare(model, optimizer, batches, device))]
        for measure in (pair if i % 2 == 0 else pair[::-1]):
            measure()
    loop_s, bare_s = min(loop_times), min(bare_times)
    per_batch = loop_s / len(batches)
    return {"model": name, "batches": len(batches), "clips": n_train, "loop_s": loop_s, "bare_s": bare_s,
            "overhead_pct": 100 * (loop_s / bare_s - 1), "ms_per_batch": 1000 * per_batch,
            "epoch_est_s": per_batch * math.ceil(len(data.y) / batch_size)}


def format_table(rows: list[dict], device_label: str, n_clips: int) -> str:
    head = (f"device: {device_label}   clips: {n_clips}   "
            f"(loop = our train_epoch, bare = forward+backward+step on pre-gathered batches)\n")
    cols = f"{'model':<9}{'batches':>8}{'loop s':>10}{'bare s':>10}{'overhead':>10}{'ms/batch':>10}{'epoch s':>10}\n"
    lines = [f"{r['model']:<9}{r['batches']:>8}{r['loop_s']:>10.3f}{r['bare_s']:>10.3f}"
             f"{r['overhead_pct']:>9.1f}%{r['ms_per_batch']:>10.1f}{r['epoch_est_s']:>10.2f}" for r in rows]
    note = f"epoch s = ms/batch x {math.ceil(n_clips / 64)} batches: one epoch over {n_clips} clips at batch 64"
    return head + cols + "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--clips", type=int, default=1000, help="synthetic clips preloaded (default 1000)")
    parser.add_argument("--batches", type=int, default=2, help="batches timed per epoch; 0 = the whole epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(models.MODEL_REGISTRY))
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (default 0: all usable cores, as run() uses); "
                             "1 is the most stable on a busy machine")
    parser.add_argument("--clock", choices=["auto", "cpu", "wall"], default="auto",
                        help="auto: CPU time on the CPU, wall time on CUDA")
    args = parser.parse_args(argv)

    global CLOCK
    device = runtime.resolve_device(args.device)
    use_cpu_clock = args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu")
    CLOCK = time.process_time if use_cpu_clock else time.perf_counter
    data = synthetic_data(args.clips)
    rows = []
    with runtime.torch_runtime(device):
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        label = f"{runtime.device_name(device)}, {'CPU' if use_cpu_clock else 'wall'} time"
        for name in args.models:
            rows.append(bench_model(name, data, device, args.batch_size, args.batches, args.repeats))
            print(f"  {name}: loop {rows[-1]['loop_s']:.3f} s, bare {rows[-1]['bare_s']:.3f} s", flush=True)
    print(format_table(rows, label, args.clips))
    worst = max(r["overhead_pct"] for r in rows)
    print(f"worst overhead {worst:.1f}% ({'OK' if worst < 10 else 'ABOVE the 10% budget'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
