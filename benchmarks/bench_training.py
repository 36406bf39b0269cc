"""Training throughput per model, and what our loop costs beyond the model's own forward + backward + step.

For each model (and each precision asked for), on synthetic preloaded tensors of the real
shapes (the variable-length models get clips of 1.3-5 s), time:

* ``loop``: :func:`ser_utils.training.loop.train_epoch`, the loop :func:`ser_utils.training.loop.run`
  uses (permutation or length buckets, index gathers, autocast, loss/accuracy accumulation,
  LR scheduler, one host sync per epoch);
* ``bare``: the same number of batches, already gathered into separate tensors, through
  nothing but forward + cross-entropy + backward + optimizer step (+ one sync at the end).

It prints clips/s of the loop (training throughput), the peak GPU memory of the loop
(CUDA only), ``overhead = loop / bare - 1`` (budget: under 10%), each model's training time per
clip against ``--baseline``'s (default ``2d``, the report's best model; e.g. the transformer's
against the 2D CNN's) and, with ``--precision both``, bf16 against fp32 per model. Each is measured ``--repeats`` times, alternating, after a
warm-up; the minimum is kept (the least disturbed by other processes). On the CPU the default
clock is the process's CPU time (``time.process_time``, all threads), which a busy shared
machine disturbs far less than wall time (so CPU clips/s are per CPU-second); ``--clock wall``
switches back. On CUDA the clock is wall time between ``torch.cuda.synchronize`` calls.

    python benchmarks/bench_training.py                                   # CPU, 2 batches per model
    python benchmarks/bench_training.py --device cpu --quick              # seconds: a smoke test
    python benchmarks/bench_training.py --models 2d transformer --threads 1   # the transformer beside the 2D CNN
    python benchmarks/bench_training.py --device cuda --batches 0 --precision both   # GPU, whole epochs
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_utils import config, fileio, models, training
from ser_utils.training import batching, runtime, data as training_data  # noqa: E402
from ser_utils.models.layers import needs_lengths  # noqa: E402

#: Frames of a 1.3-5 s clip: the un-cropped 1D rows (hop 160) and the un-resized log-mel (hop 256).
FRAMES_1D = (131, 501)
FRAMES_MEL = (82, 313)
#: ``--quick``: seconds on a CPU, every code path (both precisions, a variable-length model).
QUICK = {"clips": 4, "batch_size": 2, "batches": 1, "repeats": 1, "models": ["1d", "combined-varlen"], "threads": 1}


def synthetic_data(n_clips: int, seed: int = 0, variable: bool = False) -> training_data.TrainingData:
    """Random clips with the real shapes; every clip is in the training split. ``variable`` adds
    the variable-length inputs (zero-padded, with their lengths) that those models read."""
    rng = np.random.default_rng(seed)
    extra = {}
    if variable:
        for var, length, (low, high), rows in (("x1d_var", "len1d", FRAMES_1D, (27,)),
                                                ("x2d_var", "len2d", FRAMES_MEL, (1, 64))):
            lengths = rng.integers(low, high + 1, n_clips)
            valid = np.arange(high)[None, :] < lengths[:, None]  # zero beyond each clip's length
            array = rng.standard_normal((n_clips, *rows, high), dtype=np.float32)
            extra[var], extra[length] = array * valid.reshape(n_clips, *(1,) * len(rows), high), lengths
    return training_data.TrainingData(
        x1d=rng.standard_normal((n_clips, 27, 301), dtype=np.float32),
        x2d=rng.random((n_clips, 1, 64, 64), dtype=np.float32),
        y=rng.integers(0, len(config.EMOTIONS), n_clips),
        split=np.full(n_clips, "train"),
        **extra,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: The clock both measurements use (set by main: CPU time on the CPU, wall time on CUDA).
CLOCK = time.perf_counter


def time_loop(model, optimizer, scheduler, tensors, y, train_idx, batch_size, device, precision) -> float:
    generator = torch.Generator().manual_seed(0)
    sync(device)
    start = CLOCK()
    training.train_epoch(model, optimizer, scheduler, tensors, y, train_idx, batch_size, generator, precision)
    sync(device)
    return CLOCK() - start


def pregathered_batches(model, tensors, y, train_idx, batch_size, device):
    """The batches the loop would see, gathered in advance into contiguous tensors."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for batch in batching.train_batches(model, tensors, train_idx, batch_size, generator, device):
        xs = [x.contiguous() for x in batching.batch_inputs(model, tensors, batch)]
        batches.append((xs, y[batch].contiguous()))
    return batches


def time_bare(model, optimizer, batches, device, precision) -> float:
    model.train()
    sync(device)
    start = CLOCK()
    for xs, target in batches:
        with runtime.autocast(device, precision):
            logits = model(*xs)
        loss = F.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return CLOCK() - start


def bench_model(name: str, data: training_data.TrainingData, device: torch.device, batch_size: int,
                n_batches: int, repeats: int, precision: str = "auto") -> dict:
    """One model at one precision: loop and bare times, clips/s, peak memory (CUDA), overhead."""
    precision = runtime.resolve_precision(precision, device)
    torch.manual_seed(0)
    model = models.build_model(name).to(device)
    prepared = data.with_inputs(model.inputs).standardize()  # as training.run prepares a run's data
    tensors = batching.to_device_tensors(prepared, model.inputs, device)
    y = torch.as_tensor(prepared.y).to(device)
    n_train = len(prepared.y) if n_batches <= 0 else min(len(prepared.y), n_batches * batch_size)
    train_idx = torch.arange(n_train)
    cfg = config.TrainConfig(model=name, epochs=1000, batch_size=batch_size)  # long schedule: LR never hits 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    scheduler = training.make_scheduler(optimizer, cfg, n_train)
    batches = pregathered_batches(model, tensors, y, train_idx, batch_size, device)

    # warm-up: allocator, cuDNN autotuning, Adam state
    time_bare(model, optimizer, batches[:2], device, precision)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loop_times, bare_times = [], []
    for i in range(repeats):  # alternate which goes first, so a drifting load hits both alike
        pair = [lambda: loop_times.append(
                    time_loop(model, optimizer, scheduler, tensors, y, train_idx, batch_size, device, precision)),
                lambda: bare_times.append(time_bare(model, optimizer, batches, device, precision))]
        for measure in (pair if i % 2 == 0 else pair[::-1]):
            measure()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    loop_s, bare_s = min(loop_times), min(bare_times)
    per_batch = loop_s / len(batches)
    return {"model": name, "precision": precision, "batches": len(batches), "clips": n_train, "loop_s": loop_s,
            "bare_s": bare_s, "overhead_pct": 100 * (loop_s / bare_s - 1), "clips_per_s": n_train / loop_s,
            "peak_mib": peak, "ms_per_batch": 1000 * per_batch,
            "epoch_est_s": per_batch * math.ceil(len(data.y) / batch_size)}


def format_table(rows: list[dict], device_label: str, n_clips: int, batch_size: int) -> str:
    head = (f"device: {device_label}   clips: {n_clips}   batch: {batch_size}   "
            f"(loop = our train_epoch, bare = forward+backward+step on pre-gathered batches)\n")
    cols = (f"{'model':<16}{'prec':>5}{'batches':>8}{'loop s':>9}{'bare s':>9}{'overhead':>9}{'clips/s':>10}"
            f"{'peak MiB':>10}{'epoch s':>9}\n")
    lines = [f"{r['model']:<16}{r['precision']:>5}{r['batches']:>8}{r['loop_s']:>9.3f}{r['bare_s']:>9.3f}"
             f"{r['overhead_pct']:>8.1f}%{r['clips_per_s']:>10.1f}"
             f"{'-' if r['peak_mib'] is None else format(r['peak_mib'], '.0f'):>10}{r['epoch_est_s']:>9.2f}"
             for r in rows]
    note = (f"epoch s = ms/batch x {math.ceil(n_clips / batch_size)} batches: one epoch over {n_clips} clips; "
            "peak MiB: the loop's peak GPU memory (CUDA only)")
    return head + cols + "\n".join(lines) + "\n" + note


def precision_ratios(rows: list[dict]) -> dict[str, float]:
    """Per model measured in both precisions: bf16 clips/s over fp32 clips/s."""
    by = {(r["model"], r["precision"]): r["clips_per_s"] for r in rows}
    return {m: by[(m, "bf16")] / by[(m, "fp32")] for m, p in by if p == "fp32" and (m, "bf16") in by}


def baseline_ratios(rows: list[dict], baseline: str) -> dict[str, float]:
    """Per model and precision: training time per clip over the baseline model's at that precision."""
    base = {r["precision"]: r["clips_per_s"] for r in rows if r["model"] == baseline}
    return {f"{r['model']} {r['precision']}": base[r["precision"]] / r["clips_per_s"]
            for r in rows if r["model"] != baseline and r["precision"] in base}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--clips", type=int, default=None, help="synthetic clips preloaded (default 1000)")
    parser.add_argument("--batches", type=int, default=None, help="batches timed per epoch; 0 = the whole epoch (default 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="(default 64, the report's)")
    parser.add_argument("--repeats", type=int, default=None, help="(default 3)")
    parser.add_argument("--models", nargs="+", default=None, help="(default: every registered model)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "both"], default="auto",
                        help="auto: bf16 on CUDA, fp32 on the CPU; both: each model in fp32 and bf16, and the ratio")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny sizes for a smoke test ({QUICK['clips']} clips, batch {QUICK['batch_size']}, "
                             f"models {', '.join(QUICK['models'])}, one thread); explicit options still win")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default 0: all usable cores, as run() uses; 1 with --quick); "
                             "1 is the most stable on a busy machine")
    parser.add_argument("--clock", choices=["auto", "cpu", "wall"], default="auto",
                        help="auto: CPU time on the CPU, wall time on CUDA")
    parser.add_argument("--baseline", default="2d", help="time per clip is also given against this model's "
                                                          "(default: %(default)s, when it is among --models)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for benchmarks/gpu_check.py)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"clips": 1000, "batch_size": 64, "batches": 2, "repeats": 3,
                                         "models": list(models.MODEL_REGISTRY), "threads": 0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [m for m in args.models if m not in models.MODEL_REGISTRY]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {', '.join(models.MODEL_REGISTRY)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global CLOCK
    device = runtime.resolve_device(args.device)
    use_cpu_clock = args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu")
    CLOCK = time.process_time if use_cpu_clock else time.perf_counter
    variable = any(needs_lengths(models.build_model(m)) for m in args.models)
    data = synthetic_data(args.clips, variable=variable)
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    rows = []
    with runtime.torch_runtime(device):
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        label = f"{runtime.device_name(device)}, {'CPU' if use_cpu_clock else 'wall'} time"
        for name in args.models:
            for precision in precisions:
                rows.append(bench_model(name, data, device, args.batch_size, args.batches, args.repeats, precision))
                r = rows[-1]
                print(f"  {name} {r['precision']}: loop {r['loop_s']:.3f} s, bare {r['bare_s']:.3f} s, "
                      f"{r['clips_per_s']:.1f} clips/s", flush=True)
                if args.json:  # after every row: a run stopped at a time limit keeps what it measured
                    write_json(args.json, label, args, rows)
    print(format_table(rows, label, args.clips, args.batch_size))
    ratios = precision_ratios(rows)
    if ratios:
        print("bf16 against fp32 (clips/s): " + ", ".join(f"{m} {x:.2f}x" for m, x in ratios.items()))
    against = baseline_ratios(rows, args.baseline)
    if against:
        print(f"training time per clip against {args.baseline}: " + ", ".join(f"{m} {x:.2f}x" for m, x in against.items()))
    worst = max(r["overhead_pct"] for r in rows)
    print(f"worst overhead {worst:.1f}% ({'OK' if worst < 10 else 'ABOVE the 10% budget'})")
    return 0


def write_json(path: Path, label: str, args: argparse.Namespace, rows: list[dict]) -> None:
    fileio.write_json(path, {"device": label, "clips": args.clips, "batch_size": args.batch_size, "rows": rows,
                             "bf16_vs_fp32": precision_ratios(rows)})


if __name__ == "__main__":
    raise SystemExit(main())
