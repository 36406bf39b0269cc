"""The command line: ``python -m ser_utils <command>``; all argument parsing lives here.

Each command is a thin wrapper over a ``ser_utils`` function. Exit statuses mean one thing each:

* 0: done;
* 1: some configurations (or notebooks) failed; the others finished and the failures are named;
* 2: bad input (:class:`~ser_utils.errors.UserError`): one line naming the file or value and the fix;
* 3: a bug: the traceback is saved to a log file and the console shows one line pointing at it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ser_utils import config

EXIT_BAD_INPUT = 2
EXIT_BUG = 3


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
    feats.add_argument("--prune", action="store_true",
                       help="then remove the cache folders of other corpora and parameter sets under --out")
    feats.set_defaults(func=cmd_features)
    _add_sweep_parser(commands)
    _add_report_parser(commands)
    _add_main_job_parser(commands)
    _add_slurm_parser(commands)
    _add_predict_parser(commands)
    return parser


def _add_main_job_parser(commands) -> None:
    main_job = commands.add_parser("all", help="the main job: corpus, features, notebooks, 27-run sweep, analysis, report")
    _add_data_arg(main_job)
    main_job.add_argument("--profile", choices=("auto", "quick", "gpu", "full"), default="auto",
                          help="auto (default): gpu where CUDA is available, else quick; quick: small demo corpus, "
                               "few epochs (minutes on a CPU); gpu: full demo corpus, tens of epochs (about ten "
                               "minutes on one GPU); full: the report's protocol (150 epochs, GPU hours)")
    main_job.add_argument("--out", type=Path, default=None, help="output root (default: outputs/)")
    main_job.add_argument("--epochs", default=None, help="override the profile's epochs: N or 1d=N,2d=N,combined=N")
    main_job.add_argument("--device", default="auto")
    main_job.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                          help="auto: bf16 autocast on CUDA, fp32 on the CPU (default: %(default)s)")
    main_job.add_argument("--force", action="store_true", help="re-run finished configurations")
    main_job.add_argument("--jobs", type=int, default=None,
                          help="sweep processes side by side: per GPU on a GPU machine (default: the profile's, "
                               "2 for gpu), in all on a CPU (default: one per core)")
    for flag in ("models", "activations", "lrs"):
        main_job.add_argument(f"--{flag}", default=None, help=f"narrow the sweep's {flag} (comma-separated)")
    _add_augment_arg(main_job)
    main_job.set_defaults(func=cmd_all)


def _grid(args: argparse.Namespace) -> dict:
    from ser_utils.experiments import grid as sweep_grid

    chosen = {}
    if args.models:
        chosen["models"] = sweep_grid.parse_names(args.models)
    if args.activations:
        chosen["activations"] = sweep_grid.parse_names(args.activations)
    if args.lrs:
        chosen["lrs"] = sweep_grid.parse_lrs(args.lrs)
    return chosen


def cmd_all(args: argparse.Namespace) -> int:
    from ser_utils import pipeline

    summary = pipeline.run_main_job(args.profile, data=args.data, out=args.out, epochs=args.epochs,
                                    device=args.device, force=args.force, jobs=args.jobs, grid=_grid(args),
                                    precision=args.precision, augment=args.augment)
    for problem in summary["problems"]:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if summary["problems"] else 0


def _command(commands: Any, name: str, summary: str, details: str) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (in ``--help`` of the program) and a longer description."""
    return commands.add_parser(name, help=summary, description=details)


def _add_grid_args(parser: argparse.ArgumentParser) -> None:
    """--epochs, --models, --activations, --lrs: the same spellings for every command that plans a sweep."""
    parser.add_argument("--epochs", default=str(config.TrainConfig.epochs),
                        help="epochs per run, or per model, e.g. 1d=8,2d=2,combined=2 (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=list(config.MODELS), metavar="M",
                        help="comma- or space-separated (default: %(default)s)")
    parser.add_argument("--activations", nargs="+", default=list(config.ACTIVATIONS), metavar="A",
                        help="comma- or space-separated (default: %(default)s)")
    parser.add_argument("--lrs", nargs="+", default=[f"{lr:g}" for lr in config.LEARNING_RATES], metavar="LR",
                        help="comma- or space-separated (default: %(default)s)")
    _add_augment_arg(parser)


def _add_augment_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--augment", choices=config.AUGMENTS, default="none",
                        help="data augmentation of every run: spec (feature masks), wave (augmented waveforms), "
                             "both (default: %(default)s; docs/future-work.md)")


def _add_sweep_parser(commands) -> None:
    sweep = _command(commands, "sweep", "run notebooks/07_train.ipynb once per configuration (papermill); resumable",
                     "Train every configuration of models x activations x learning rates by executing "
                     "notebooks/07_train.ipynb with papermill. Complete runs are skipped (re-run the same "
                     "command to resume); failed ones are recorded and the sweep goes on (exit 1 at the end).")
    _add_data_arg(sweep)
    _add_grid_args(sweep)
    sweep.add_argument("--out", type=Path, default=config.OUTPUTS_DIR,
                       help="sweep folder: runs in OUT/runs/<run_id>/, table in OUT/results.csv (default: outputs/)")
    sweep.add_argument("--shard", default=None, metavar="K/N",
                       help="run only configurations K, K+N, K+2N, ... (1 <= K <= N), e.g. one SLURM array task")
    sweep.add_argument("--force", action="store_true", help="re-train runs that are already complete")
    sweep.add_argument("--split", choices=config.SPLITS, default="random")
    sweep.add_argument("--seeds", "--seed", dest="seeds", default=str(config.SEED), metavar="S",
                       help="training seeds, comma-separated: each configuration runs once per seed "
                            "(weights and batch order; default: %(default)s)")
    sweep.add_argument("--split-seed", type=int, default=config.SEED,
                       help="seed of the train/validation/test split, shared by every training seed "
                            "(default: %(default)s, the report's)")
    sweep.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                       help="time limit of one notebook cell; a run over it is recorded as failed "
                            "(timeout) and the sweep goes on (default: 900 s + a budget per epoch)")
    sweep.add_argument("--inactivity-timeout", type=float, default=None, metavar="SECONDS",
                       help="interrupt a run whose kernel prints nothing for this long; recorded as failed "
                            "(timeout) (default: 900 s + two epochs' budget)")
    sweep.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                       help="auto: bf16 autocast on CUDA, fp32 on the CPU (default: %(default)s)")
    sweep.add_argument("--batch-size", type=int, default=config.TrainConfig.batch_size)
    sweep.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    sweep.add_argument("--features-dir", type=Path, default=config.FEATURES_DIR, help="feature cache root")
    sweep.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="run the sweep as N shard processes per GPU (N in all on a CPU), each pinned to its "
                            "own cores and card, watched for dead or silent shards (default: one process)")
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
    from ser_utils.data import demo_corpus

    out = demo_corpus.generate(args.out, n_actors=args.actors, seed=args.seed, jobs=args.jobs)
    print(f"demo corpus ({config.SYNTHETIC_LABEL}): {out}")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from ser_utils import fileio
    from ser_utils.data import dataset

    frame = dataset.manifest(args.data, split_method=args.split, seed=args.seed)
    fileio.write_csv(args.out, frame)
    skipped = frame.attrs["skipped"]
    for row in skipped.itertuples():
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    counts = frame["split"].value_counts()
    print(f"{len(frame)} clips, {frame['actor'].nunique()} actors ({frame['corpus'].iloc[0]}),"
          f" train/val/test {counts.get('train', 0)}/{counts.get('val', 0)}/{counts.get('test', 0)},"
          f" {len(skipped)} skipped -> {args.out}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from ser_utils import features
    from ser_utils.data import dataset

    from ser_utils.data.discovery import record_corpus

    clips, _ = dataset.scan(args.data)
    feature_set = features.extract(clips, cache_root=args.out, jobs=args.jobs, force=args.force)
    if Path(args.out).resolve() == Path(config.FEATURES_DIR).resolve():
        # the notebooks read this cache: tell them which corpus it holds (another --out is someone else's)
        record_corpus(dataset.locate(args.data).root, config.OUTPUTS_DIR, by="features")
    for row in feature_set.skipped.itertuples():
        print(f"skipped {row.path}: {row.reason}", file=sys.stderr)
    print(f"{len(feature_set.manifest)} clips, {len(feature_set.skipped)} skipped -> {feature_set.cache_dir}")
    if args.prune:
        removed = features.prune(args.out, keep=feature_set.key)
        for path, size in removed:
            print(f"removed {path} ({size / 1e6:.1f} MB)")
        print(f"pruned {len(removed)} folder(s) under {args.out}, freed {sum(s for _, s in removed) / 1e6:.1f} MB;"
              f" kept {feature_set.key}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ser_utils.experiments import sweep

    if args.jobs is not None:
        return _cmd_sweep_jobs(args)
    result = sweep.run_sweep(args.data, args.out, shard_spec=args.shard, **_sweep_request(args))
    print(result.summary())
    if not result.ok:
        print(f"error: {result.failure_message()}", file=sys.stderr)
        return 1
    return 0


def _sweep_request(args: argparse.Namespace) -> dict:
    """The sweep options one shard and a set of parallel shards share."""
    names = ("models", "activations", "lrs", "epochs", "batch_size", "seeds", "split", "split_seed", "device",
             "precision", "features_dir", "force", "cell_timeout", "inactivity_timeout", "augment")
    return {name: getattr(args, name) for name in names}


def _cmd_sweep_jobs(args: argparse.Namespace) -> int:
    """``sweep --jobs N``: the same parallel shards as the main job's sweep stage."""
    from ser_utils import pipeline
    from ser_utils.errors import UserError

    if args.shard:
        raise UserError("--jobs starts every shard itself; drop --shard (or drop --jobs to run one shard)")
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give a positive number of processes (per GPU on a GPU machine)")
    result = pipeline.sharded_sweep(args.data, args.out, jobs=args.jobs, **_sweep_request(args))
    print(result.summary())
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
    if result.failed:
        print(f"error: {len(result.failed)} configuration(s) failed: {', '.join(result.failed)}; see "
              f"{Path(args.out) / 'runs'}/<run_id>/, fix, and re-run the same command", file=sys.stderr)
    return 1 if result.failed or result.problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    from ser_utils.analysis import report

    index = report.export_report(args.runs, args.out, executed_dir=args.executed, code=not args.no_code)
    print(f"report: {index}")
    return 0


def _add_slurm_parser(commands) -> None:
    from ser_utils.experiments import slurm

    script = _command(commands, "slurm-script",
                      "print the sbatch script of the sweep as a SLURM job array (or of its feature job)",
                      "Print a complete sbatch script: the sweep as a job array, task K running --shard K/N, or "
                      "with --features the feature job to submit first (the array depends on it). Paths are "
                      "made absolute and OUT/logs/ is created, since SLURM cannot create a log folder.")
    script.add_argument("--features", action="store_true", help="print the feature-extraction job instead")
    script.add_argument("--shards", type=int, default=slurm.DEFAULT_SHARDS,
                        help="array tasks; each runs every N-th configuration (default: %(default)s)")
    script.add_argument("--gpus-per-task", type=int, default=slurm.DEFAULT_GPUS_PER_TASK,
                        help="0 (CPU) or 1 (default: %(default)s)")
    script.add_argument("--cpus-per-task", type=int, default=slurm.DEFAULT_CPUS_PER_TASK,
                        help="(default: %(default)s)")
    script.add_argument("--time", default=None, metavar="HH:MM:SS",
                        help=f"time limit per task (default: {slurm.DEFAULT_SWEEP_TIME}; "
                             f"features {slurm.DEFAULT_FEATURES_TIME})")
    _add_data_arg(script)
    script.add_argument("--out", type=Path, default=config.OUTPUTS_DIR,
                        help="sweep folder on a file system every node sees (default: outputs/)")
    _add_grid_args(script)
    script.add_argument("--python", default=None,
                        help="interpreter the jobs run (default: this one, so the jobs use this environment)")
    script.set_defaults(func=cmd_slurm_script)


def cmd_slurm_script(args: argparse.Namespace) -> int:
    from ser_utils.experiments import slurm

    if args.features:
        text = slurm.features_script(cpus_per_task=args.cpus_per_task, time=args.time or slurm.DEFAULT_FEATURES_TIME,
                                     data=args.data, out=args.out, python=args.python)
    else:
        text = slurm.sweep_script(args.shards, gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task,
                                  time=args.time or slurm.DEFAULT_SWEEP_TIME, epochs=args.epochs, data=args.data,
                                  out=args.out, models=args.models, activations=args.activations, lrs=args.lrs,
                                  python=args.python, augment=args.augment)
    slurm.log_dir(args.out).mkdir(parents=True, exist_ok=True)
    print(text, end="")
    return 0


def _add_predict_parser(commands) -> None:
    pred = _command(commands, "predict", "what a trained model hears in new recordings (files or folders)",
                    "Score recordings with a trained run: one row per recording with the six emotion probabilities, "
                    "the predicted emotion and the number of windows (speech longer than the clips the model was "
                    "trained on is scored in 3 s windows). Any format libsndfile reads (WAV, FLAC, OGG, MP3), any "
                    "sample rate and channel count. A recording that cannot be scored gets a one-line error and the "
                    "others go on (exit 1 at the end, listing them); a bad run folder exits 2.")
    pred.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                      help="an audio file, or a folder searched for audio")
    which = pred.add_mutually_exclusive_group()
    which.add_argument("--run", type=Path, default=None, metavar="RUN_DIR", help="the run folder to use (its best.pt)")
    which.add_argument("--runs", type=Path, default=None, metavar="DIR",
                       help="use the run of DIR with the lowest validation loss (default: outputs/runs)")
    pred.add_argument("--format", choices=("table", "csv", "json"), default=None,
                      help="output format (default: from --out's suffix, else table); csv and json carry the windows")
    pred.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the output here (default: stdout)")
    pred.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                      help="seconds between windows of a long recording (default: 1)")
    pred.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    pred.add_argument("--jobs", type=int, default=None,
                      help="worker processes preparing recordings (default: one per core)")
    pred.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from ser_utils.predict import output as prediction_output

    return prediction_output.run_predict([str(p) for p in args.paths], run=args.run, runs_dir=args.runs,
                                         fmt=args.format, out=args.out, device=args.device, hop_s=args.hop,
                                         jobs=args.jobs)


def save_traceback(command: str | None) -> Path:
    """Write the current exception's traceback to ``<outputs>/logs/crash-<time>-<pid>.log``."""
    import os
    import time
    import traceback

    from ser_utils import fileio

    folder = config.OUTPUTS_DIR / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        import tempfile

        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    header = f"python -m ser_utils {' '.join(sys.argv[1:]) if command else ''}\n"
    return fileio.write_text(path, header + traceback.format_exc())


def main(argv: list[str] | None = None) -> int:
    from ser_utils.errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not the user's input: keep the traceback, say where it is
        log = save_traceback(args.command)
        print(f"error: internal error ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
              f"traceback saved to {log}; please report it with that file", file=sys.stderr)
        return EXIT_BUG
