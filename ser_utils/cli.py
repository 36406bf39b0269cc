"""The command line: ``python -m ser_utils <command>`` (DESIGN.md's contract).

Each command is a thin wrapper over a ``ser_utils`` function. Bad input ends with a
one-line ``error: ...`` on stderr and exit status 2; a sweep with failed configurations
exits 1 after finishing the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ser_utils import config

EXIT_BAD_INPUT = 2


def _add_data_arg(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--data", type=Path, default=None, required=required,
        help=f"CREMA-D root, its AudioWAV/, or a folder of CREMA-D-named wavs"
             f" (default: ${config.DATA_ENV_VAR}, else {config.DEMO_CORPUS_DIR.relative_to(config.REPO_ROOT)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ser_utils", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo-data", help="generate the CREMA-D-shaped synthetic demo corpus")
    demo.add_argument("--out", type=Path, default=config.DEMO_CORPUS_DIR)
    demo.add_argument("--actors", type=int, default=config.N_ACTORS, help="1-91 (91 = full 7,462-clip grid)")
    demo.add_argument("--seed", type=int, default=config.SEED)
    demo.add_argument("--jobs", type=int, default=None)
    demo.set_defaults(func=cmd_demo_data)

    manifest = commands.add_parser("manifest", help="write the manifest CSV (one row per clip, with its split)")
    _add_data_arg(manifest)
    manifest.add_argument("--out", type=Path, default=config.OUTPUTS_DIR / "manifest.csv")
    manifest.add_argument("--split", choices=config.SPLITS, default="random")
    manifest.add_argument("--seed", type=int, default=config.SEED)
    manifest.set_defaults(func=cmd_manifest)

    feats = commands.add_parser("features", help="extract and cache the 1D and 2D features")
    _add_data_arg(feats)
    feats.add_argument("--out", type=Path, default=config.FEATURES_DIR, help="cache root")
    feats.add_argument("--jobs", type=int, default=None)
    feats.add_argument("--force", action="store_true", help="recompute even when cached")
    feats.set_defaults(func=cmd_features)
    _add_sweep_parser(commands)
    _add_report_parser(commands)
    _add_main_job_parser(commands)
    return parser


def _add_main_job_parser(commands) -> None:
    main_job = commands.add_parser("all", help="the main job: corpus, features, notebooks, 27-run sweep, analysis, report")
    _add_data_arg(main_job)
    main_job.add_argument("--profile", choices=("quick", "full"), default="quick",
                          help="quick: small demo corpus, few epochs (minutes on a CPU); full: the report's protocol (GPU)")
    main_job.add_argument("--out", type=Path, default=None, help="output root (default: outputs/)")
    main_job.add_argument("--epochs", default=None, help="override the profile's epochs: N or 1d=N,2d=N,combined=N")
    main_job.add_argument("--device", default="auto")
    main_job.add_argument("--force", action="store_true", help="re-run finished configurations")
    main_job.add_argument("--jobs", type=int, default=None,
                          help="sweep processes side by side (default: one per core on a CPU, one on a GPU)")
    for flag in ("models", "activations", "lrs"):
        main_job.add_argument(f"--{flag}", default=None, help=f"narrow the sweep's {flag} (comma-separated)")
    main_job.set_defaults(func=cmd_all)


def _grid(args: argparse.Namespace) -> dict:
    from ser_utils import sweep

    grid = {}
    if args.models:
        grid["models"] = sweep.parse_names(args.models)
    if args.activations:
        grid["activations"] = sweep.parse_names(args.activations)
    if args.lrs:
        grid["lrs"] = sweep.parse_lrs(args.lrs)
    return grid


def cmd_all(args: argparse.Namespace) -> int:
    from ser_utils import pipeline

    summary = pipeline.run_main_job(args.profile, data=args.data, out=args.out, epochs=args.epochs,
                                    device=args.device, force=args.force, jobs=args.jobs, grid=_grid(args))
    for problem in summary["problems"]:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if summary["problems"] else 0


def _add_sweep_parser(commands) -> None:
    sweep = commands.add_parser(
        "sweep", help="run notebooks/07_train.ipynb once per configuration (papermill); resumable",
        description="Train every configuration of models x activations x learning rates by executing "
                    "notebooks/07_train.ipynb with papermill. Complete runs are skipped (re-run the same "
                    "command to resume); failed ones are recorded and the sweep goes on (exit 1 at the end).")
    _add_data_arg(sweep)
    sweep.add_argument("--out", type=Path, default=config.OUTPUTS_DIR,
                       help="sweep folder: runs in OUT/runs/<run_id>/, table in OUT/results.csv (default: outputs/)")
    sweep.add_argument("--epochs", default=str(config.TrainConfig.epochs),
                       help="epochs per run, or per model, e.g. 1d=8,2d=2,combined=2 (default: %(default)s)")
    sweep.add_argument("--models", nargs="+", default=list(config.MODELS), metavar="M",
                       help="comma- or space-separated (default: %(default)s)")
    sweep.add_argument("--activations", nargs="+", default=list(config.ACTIVATIONS), metavar="A",
                       help="comma- or space-separated (default: %(default)s)")
    sweep.add_argument("--lrs", nargs="+", default=[str(lr) for lr in config.LEARNING_RATES], metavar="LR",
                       help="comma- or space-separated (default: %(default)s)")
    sweep.add_argument("--shard", default=None, metavar="K/N",
                       help="run only configurations K, K+N, K+2N, ... (1 <= K <= N), e.g. one SLURM array task")
    sweep.add_argument("--force", action="store_true", help="re-train runs that are already complete")
    sweep.add_argument("--split", choices=config.SPLITS, default="random")
    sweep.add_argument("--seed", type=int, default=config.SEED)
    sweep.add_argument("--batch-size", type=int, default=config.TrainConfig.batch_size)
    sweep.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    sweep.add_argument("--features-dir", type=Path, default=config.FEATURES_DIR, help="feature cache root")
    sweep.set_defaults(func=cmd_sweep)


def _add_report_parser(commands) -> None:
    rep = commands.add_parser("report", help="export the executed notebooks and runs as an HTML report")
    rep.add_argument("--runs", type=Path, default=config.RUNS_DIR, help="run folders (default: outputs/runs)")
    rep.add_argument("--out", type=Path, default=config.REPORT_DIR, help="report folder (default: outputs/report)")
    rep.add_argument("--executed", type=Path, default=config.OUTPUTS_DIR / "executed",
                     help="executed notebooks NN_name.ipynb to export (default: outputs/executed)")
    rep.add_argument("--no-code", action="store_true", help="hide the code cells (outputs and text only)")
    rep.set_defaults(func=cmd_report)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from ser_utils import demo_corpus

    out = demo_corpus.generate(args.out, n_actors=args.actors, seed=args.seed, jobs=args.jobs)
    print(f"demo corpus (synthetic, not CREMA-D): {out}")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from ser_utils import dataset

    frame = dataset.manifest(args.data, split_method=args.split, seed=args.seed)
    dataset.write_csv_atomic(frame, args.out)
    skipped = frame.attrs["skipped"]
    for row in skipped.itertuples():
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    counts = frame["split"].value_counts()
    print(f"{len(frame)} clips, {frame['actor'].nunique()} actors ({frame['corpus'].iloc[0]}),"
          f" train/val/test {counts.get('train', 0)}/{counts.get('val', 0)}/{counts.get('test', 0)},"
          f" {len(skipped)} skipped -> {args.out}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from ser_utils import dataset, features

    clips, _ = dataset.scan(args.data)
    feature_set = features.extract(clips, cache_root=args.out, jobs=args.jobs, force=args.force)
    for row in feature_set.skipped.itertuples():
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    print(f"{len(feature_set.manifest)} clips, {len(feature_set.skipped)} skipped -> {feature_set.cache_dir}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ser_utils import sweep

    result = sweep.run_sweep(
        args.data, args.out, models=args.models, activations=args.activations, lrs=args.lrs, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, split=args.split, device=args.device,
        features_dir=args.features_dir, shard_spec=args.shard, force=args.force)
    print(result.summary())
    if not result.ok:
        print(f"error: {result.failure_message()}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ser_utils import report

    index = report.export_report(args.runs, args.out, executed_dir=args.executed, code=not args.no_code)
    print(f"report: {index}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
