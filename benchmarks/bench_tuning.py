"""What a tuning study's storage costs per trial, against the trial's training; and --jobs 2 vs 1.

Two measurements, both in this process's run (baselines measured alongside, never remembered):

1. **Storage overhead per trial** for SQLite, the journal file and PostgreSQL: ``ask`` + the
   search space's ``suggest`` calls + one ``report``/``should_prune`` per epoch + ``tell``, for
   ``--trials`` trials with no training in between (the minimum of ``--repeats`` passes), against
   the wall time of one real 1-epoch trial of the same study settings (the 1D CNN on the 3-actor
   demo corpus unless ``--data`` says otherwise). Budget: under 1% of the trial.
2. **Trials per hour** of ``tune --jobs 2`` against ``--jobs 1`` (the same number of 1-epoch
   trials, SQLite storage, fresh studies), and their ratio.

PostgreSQL is measured against ``--postgres URL``, else against a server started here with the
tests' helper (``tests/postgres_server.py``; needs Debian's postgresql), else skipped, saying why.

    python benchmarks/bench_tuning.py                     # generates the 3-actor demo corpus in a temp folder
    python benchmarks/bench_tuning.py --data DIR --trials 50 --jobs-trials 6
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ser_utils import config, training  # noqa: E402
from ser_utils.experiments import search_space, study_storage, tuning  # noqa: E402


def storage_overhead(url: str, trials: int, epochs: int, repeats: int) -> float:
    """Seconds of storage work per trial (ask, suggest, per-epoch report + should_prune, tell)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = search_space.default_space()
    best = float("inf")
    for repeat in range(repeats):
        storage = study_storage.open_storage(url)
        study = optuna.create_study(study_name=f"bench-{time.time_ns()}-{repeat}", storage=storage,
                                    sampler=optuna.samplers.RandomSampler(seed=repeat),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=4))
        start = time.perf_counter()
        for _ in range(trials):
            trial = study.ask()
            search_space.suggest(trial, space)
            for epoch in range(1, epochs + 1):
                trial.report(1.0 / epoch, step=epoch)
                trial.should_prune()
            study.tell(trial, 1.0)
        best = min(best, (time.perf_counter() - start) / trials)
    return best


def trial_seconds(request: tuning.TuneRequest, data) -> float:
    """Wall time of one real trial's training (the study's settings, default search-space midpoints)."""
    cfg = config.TrainConfig(model=request.model, epochs=request.epochs, device=request.device,
                             run_name="bench-trial")
    start = time.perf_counter()
    training.run(cfg, data, out_dir=Path(request.out) / "bench-runs", progress=False, test=False, force=True)
    return time.perf_counter() - start


def trials_per_hour(request: tuning.TuneRequest, jobs: int) -> float:
    start = time.perf_counter()
    ran = tuning.run_workers(request, jobs)
    return ran / (time.perf_counter() - start) * 3600.0


def postgres_url(given: str | None):
    """(url, server or None, reason when unavailable)."""
    if given:
        return given, None, None
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import PostgresServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        return None, None, reason
    server = PostgresServer()
    server.start()
    return server.url(), server, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="corpus (default: a fresh 3-actor demo corpus)")
    parser.add_argument("--model", default="1d")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--trials", type=int, default=30, help="trials per storage pass (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs-trials", type=int, default=4, help="trials per --jobs run (default: %(default)s)")
    parser.add_argument("--postgres", default=None, metavar="URL", help="an existing PostgreSQL database")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    data_dir = args.data
    if data_dir is None:
        from ser_utils.data import demo_corpus

        data_dir = demo_corpus.generate(work / "corpus", n_actors=3, seed=config.SEED, progress=False)
    request = tuning.make_request(data_dir, model=args.model, epochs=args.epochs, device="cpu", out=str(work),
                                  features_dir=str(work / "features"), study="bench", trials=args.jobs_trials,
                                  pruner="none")
    data = tuning.load_data(request)
    trial_s = min(trial_seconds(request, data) for _ in range(2))

    url, server, reason = postgres_url(args.postgres)
    storages = {"sqlite": study_storage.default_url(work / "sqlite"),
                "journal": f"{study_storage.JOURNAL_PREFIX}{work / 'study.journal'}"}
    if url:
        storages["postgresql"] = url
    try:
        print(f"one {args.epochs}-epoch {args.model} trial: {trial_s:.2f} s wall ({data.corpus} corpus, "
              f"{int((data.split == 'train').sum())} training clips)")
        print(f"{'storage':<12}{'ms/trial':>10}{'% of trial':>12}")
        for name, storage in storages.items():
            seconds = storage_overhead(storage, args.trials, args.epochs, args.repeats)
            print(f"{name:<12}{1000 * seconds:>10.2f}{100 * seconds / trial_s:>11.3f}%")
        if reason:
            print(f"postgresql  skipped: {reason}")
    finally:
        if server is not None:
            server.stop()

    rates = {}
    for jobs in (1, 2):
        rates[jobs] = trials_per_hour(tuning.make_request(data_dir, model=args.model, epochs=args.epochs, device="cpu",
                                                          out=str(work), features_dir=str(work / "features"),
                                                          study=f"jobs{jobs}", trials=args.jobs_trials, pruner="none"),
                                      jobs)
    print(f"trials/hour: --jobs 1 {rates[1]:.0f}, --jobs 2 {rates[2]:.0f}, ratio {rates[2] / rates[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
