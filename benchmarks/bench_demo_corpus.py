"""Time the synthetic demo corpus generation (default: full size, 91 actors, 7,462 clips).

    python benchmarks/bench_demo_corpus.py                 # full size, all cores, temp folder
    python benchmarks/bench_demo_corpus.py --actors 8 --jobs 1 2
    python benchmarks/bench_demo_corpus.py --out data/demo-corpus   # keep the corpus

Prints one table row per ``--jobs`` value: actors, clips, jobs, seconds, clips/s, and the
load average before the run, since other work on the machine slows the numbers down. The
target is under 3 minutes for the full corpus on 2 free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_utils.data import demo_corpus  # noqa: E402
from ser_utils.config import N_ACTORS  # noqa: E402


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=N_ACTORS)
    parser.add_argument("--jobs", type=int, nargs="+", default=[os.cpu_count() or 1])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the corpus here (default: a temporary folder, deleted)")
    return parser.parse_args(argv)


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Windows
        return "n/a"


def _run(out: Path, actors: int, jobs: int, seed: int) -> dict:
    load = _load()
    start = time.perf_counter()
    demo_corpus.generate(out, n_actors=actors, seed=seed, jobs=jobs, progress=False)
    seconds = time.perf_counter() - start
    marker = json.loads((out / demo_corpus.CORPUS_MARKER).read_text())
    return {"actors": actors, "clips": marker["n_clips"], "jobs": jobs, "seconds": seconds,
            "clips/s": marker["n_clips"] / seconds, "load before": load,
            "durations": marker["duration_s"]}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    rows = []
    for jobs in args.jobs:
        if args.out is not None:
            rows.append(_run(args.out, args.actors, jobs, args.seed))
            continue
        tmp = Path(tempfile.mkdtemp(prefix="bench-demo-corpus-"))
        try:
            rows.append(_run(tmp, args.actors, jobs, args.seed))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"cpu_count={os.cpu_count()}  eSpeak NG {demo_corpus.espeak_version()}")
    print(f"{'actors':>6} {'clips':>6} {'jobs':>4} {'seconds':>8} {'clips/s':>8}  load(1/5/15 min)")
    for r in rows:
        print(f"{r['actors']:>6} {r['clips']:>6} {r['jobs']:>4} {r['seconds']:>8.1f} "
              f"{r['clips/s']:>8.1f}  {r['load before']}")
    d = rows[-1]["durations"]
    print(f"clip durations: min {d['min']} s, median {d['median']} s, max {d['max']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
