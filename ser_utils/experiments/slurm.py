"""SLURM job scripts for the sweep: a job array with one shard per task, and the feature job before it.

Why generated rather than copied from the docs: the script a user submits is then the one the
test suite submits to a real (single-node) SLURM cluster (``tests/test_slurm.py``), so a typo, a
wrong shard number or a log path SLURM cannot open fails a test instead of a user's job.

Choices baked into the scripts, and why:

* **The shard count is written into the script** (``--shard "$SLURM_ARRAY_TASK_ID/N"``), not read
  from ``$SLURM_ARRAY_TASK_COUNT``: re-submitting one dead task (``sbatch --array=4 sweep.sbatch``)
  makes that count 1, and shard ``4/1`` would be refused.
* **Absolute paths** for the interpreter, the data and the outputs, resolved when the script is
  generated: a job starts in whatever folder ``sbatch`` was called from, and the interpreter that
  generated the script is the environment the job must run in (no ``activate`` needed).
* **Logs in** ``<out>/logs/``: SLURM opens ``--output`` before the script runs and cannot create
  a folder, so the command line creates it when it prints the script (:func:`log_dir`).
* ``SER_OUTPUTS_DIR`` is set to ``<out>``, so everything the jobs write (figures included) lands
  in the one folder every node sees.

The functions return the text and write nothing; ``python -m ser_utils slurm-script`` prints it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ser_utils import config
from ser_utils.experiments import grid
from ser_utils.errors import UserError

DEFAULT_SHARDS = 9
DEFAULT_GPUS_PER_TASK = 1
DEFAULT_CPUS_PER_TASK = 8
DEFAULT_SWEEP_TIME = "08:00:00"
DEFAULT_FEATURES_TIME = "01:00:00"
SWEEP_JOB_NAME = "ser-sweep"
FEATURES_JOB_NAME = "ser-features"
LOGS = "logs"
#: ``--output`` patterns inside ``<out>/logs/``: %A array job id, %a task id, %j job id.
SWEEP_LOG = "sweep-%A_%a.log"
FEATURES_LOG = "features-%j.log"
#: SLURM's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
TIME_FORMAT = re.compile(r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$")


def log_dir(out: str | Path) -> Path:
    """Where both jobs write their logs: ``<out>/logs`` (absolute)."""
    return _absolute(out) / LOGS


def sweep_script(shards: int = DEFAULT_SHARDS, *, gpus_per_task: int = DEFAULT_GPUS_PER_TASK,
                 cpus_per_task: int = DEFAULT_CPUS_PER_TASK, time: str = DEFAULT_SWEEP_TIME,
                 epochs: str | int = config.TrainConfig.epochs, data: str | Path | None = None,
                 out: str | Path = config.OUTPUTS_DIR, models: Sequence[str] | str = config.MODELS,
                 activations: Sequence[str] | str = config.ACTIVATIONS,
                 lrs: Sequence[float | str] | str = config.LEARNING_RATES, python: str | Path | None = None,
                 job_name: str = SWEEP_JOB_NAME, augment: str = "none") -> str:
    """The sbatch script of the sweep as a job array: task K of 1..``shards`` runs ``--shard K/shards``.

    Raises UserError (one line naming the option and the fix) for input that would make every
    task fail: more shards than configurations, a time SLURM cannot read, an unknown model.
    """
    models, activations = grid.parse_names(models), grid.parse_names(activations)
    lrs, epochs_spec = grid.parse_lrs(lrs), grid.parse_epochs(epochs)
    grid.validate(models, activations, lrs, epochs_spec, config.TrainConfig.batch_size, "random", augment)
    n_configs = len(grid.configurations(models, activations, lrs))
    shards = _whole(shards, "--shards", 1)
    if shards > n_configs:
        raise UserError(f"--shards {shards}: the grid has {_count(n_configs, 'configuration')}, so at most "
                        f"--shards {n_configs} (one configuration per array task)")
    gpus = _whole(gpus_per_task, "--gpus-per-task", 0)
    if gpus > 1:
        raise UserError(f"--gpus-per-task {gpus}: a sweep task trains on one device; use --gpus-per-task 1 "
                        "and more --shards")
    paths = _paths(data, out, python)
    per_task = -(-n_configs // shards)
    command = [paths["python"], "-m", "ser_utils", "sweep", "--data", paths["data"], "--out", paths["out"],
               "--features-dir", paths["features"], "--epochs", _epochs_text(epochs_spec),
               "--models", ",".join(models), "--activations", ",".join(activations),
               "--lrs", ",".join(f"{lr:g}" for lr in lrs), "--device", "auto" if gpus else "cpu"]
    command += ["--augment", augment] if augment != "none" else []
    lines = [
        "#!/bin/bash",
        f"# The sweep as a SLURM job array: {_count(n_configs, 'configuration')} in {_count(shards, 'shard')}, "
        f"one shard ({_count(per_task, 'run')}",
        "# at most) per array task. Written by `python -m ser_utils slurm-script`: regenerate, do not edit.",
        "#",
        "# Submit it once the features exist, i.e. after the feature job (`slurm-script --features`):",
        "#   jid=$(sbatch --parsable features.sbatch)",
        "#   sbatch --dependency=afterok:$jid sweep.sbatch",
        "# A task that died or was cancelled resumes when submitted again; finished runs are kept:",
        "#   sbatch --array=K sweep.sbatch",
        "#",
        *_directives(job_name, cpus_per_task, time, paths["logs"] / SWEEP_LOG, array=f"1-{shards}",
                     gres=f"gpu:{gpus}" if gpus else None),
        "set -euo pipefail",
        f"export SER_OUTPUTS_DIR={_quote(paths['out'])}",
        "# The shard count is fixed here: a re-submitted task has SLURM_ARRAY_TASK_COUNT=1.",
        f'shard="${{SLURM_ARRAY_TASK_ID:?submit this script with sbatch, it is a job array}}/{shards}"',
        'echo "ser-sweep: shard $shard, job ${SLURM_JOB_ID:-?} on $(hostname)"',
        "exec " + _command(command) + ' \\\n    --shard "$shard"',
    ]
    return "\n".join(lines) + "\n"


def features_script(*, cpus_per_task: int = DEFAULT_CPUS_PER_TASK, time: str = DEFAULT_FEATURES_TIME,
                    data: str | Path | None = None, out: str | Path = config.OUTPUTS_DIR,
                    python: str | Path | None = None, job_name: str = FEATURES_JOB_NAME) -> str:
    """The sbatch script that extracts the features once, into the cache the sweep's tasks read."""
    paths = _paths(data, out, python)
    command = [paths["python"], "-m", "ser_utils", "features", "--data", paths["data"], "--out", paths["features"]]
    lines = [
        "#!/bin/bash",
        "# Feature extraction for the sweep, once, before its job array (which depends on this job).",
        "# Written by `python -m ser_utils slurm-script --features`: regenerate, do not edit. Submit it first:",
        "#   jid=$(sbatch --parsable features.sbatch)",
        "#",
        *_directives(job_name, cpus_per_task, time, paths["logs"] / FEATURES_LOG),
        "set -euo pipefail",
        f"export SER_OUTPUTS_DIR={_quote(paths['out'])}",
        "exec " + _command(command) + f' \\\n    --jobs "${{SLURM_CPUS_PER_TASK:-{int(cpus_per_task)}}}"',
    ]
    return "\n".join(lines) + "\n"


def _directives(job_name: str, cpus_per_task: int, time: str, log: Path, array: str | None = None,
                gres: str | None = None) -> list[str]:
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", str(job_name)):
        raise UserError(f"--job-name {job_name!r}: use letters, digits and _.+- only")
    cpus = _whole(cpus_per_task, "--cpus-per-task", 1)
    if not TIME_FORMAT.fullmatch(str(time)):
        raise UserError(f"--time {time!r}: SLURM reads HH:MM:SS, MM, MM:SS or D-HH:MM:SS (e.g. --time 08:00:00)")
    if any(c.isspace() or c == "%" for c in str(log.parent)):  # SLURM splits at spaces and expands %
        raise UserError(f"--out {log.parent.parent}: SLURM cannot take a log path with spaces or %; "
                        "choose another --out")
    lines = [f"#SBATCH --job-name={job_name}"]
    if array:
        lines.append(f"#SBATCH --array={array}")
    lines.append(f"#SBATCH --cpus-per-task={cpus}")
    if gres:
        lines.append(f"#SBATCH --gres={gres}")
    lines += [f"#SBATCH --time={time}", f"#SBATCH --output={log}"]
    return lines


def _paths(data: str | Path | None, out: str | Path, python: str | Path | None) -> dict:
    data_dir = _absolute(data if data is not None else config.default_data_dir())
    if not data_dir.is_dir():
        raise UserError(f"--data {data_dir}: no such folder; pass the CREMA-D folder (or the demo corpus) with --data")
    interpreter = python if python is not None else sys.executable
    interpreter = os.path.abspath(os.path.expanduser(str(interpreter)))  # keep a venv's symlink: no resolve()
    if not os.access(interpreter, os.X_OK):
        raise UserError(f"--python {interpreter}: not an executable; pass the environment's python with --python")
    out_dir = _absolute(out)
    return {"data": str(data_dir), "out": str(out_dir), "features": str(out_dir / "features"),
            "logs": out_dir / LOGS, "python": interpreter}


def _absolute(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _whole(value: int, option: str, minimum: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise UserError(f"{option} {value!r}: not a whole number") from None
    if number < minimum:
        raise UserError(f"{option} {number}: must be at least {minimum}")
    return number


def _epochs_text(epochs: int | dict) -> str:
    return ",".join(f"{m}={e}" for m, e in epochs.items()) if isinstance(epochs, dict) else str(epochs)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _quote(text: str) -> str:
    return shlex.quote(str(text))


def _command(words: Sequence[str]) -> str:
    """Words as shell text, one option and its value a line (the script reads like the cluster guide's)."""
    groups: list[list[str]] = [[]]
    for word in words:
        if word.startswith("--"):
            groups.append([])
        groups[-1].append(_quote(word))
    return " \\\n    ".join(" ".join(group) for group in groups if group)
