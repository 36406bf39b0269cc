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
    return parser


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
