"""The ``predict`` command's work and its three output formats: a table for people, CSV and JSON for programs.

* ``table``: one line per recording, the six probabilities in the report's class order, the
  predicted emotion and the number of windows; a failed recording says so in its line.
* ``csv``: :attr:`ser_utils.predict.predictor.Predictions.long`: a ``recording`` row per file followed by
  a ``window`` row per window (start and end in seconds, the window's probabilities).
* ``json``: the run it came from (model, corpus, whether synthetic), the class order, and per
  recording its probabilities, prediction, windows and error.

Exit statuses (:func:`run_predict`): 0 every recording scored; 1 some failed (each named in a
one-line error as it fails, and all listed at the end; the others are still in the output);
a bad run folder raises :class:`~ser_utils.errors.UserError` (the command line's status 2).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ser_utils import config, fileio
from ser_utils.predict.predictor import Predictions, Predictor, find_audio, prob_columns

FORMATS = ("table", "csv", "json")
EXIT_SOME_FAILED = 1


def output_format(fmt: str | None, out: str | os.PathLike | None) -> str:
    """The format asked for, else the one ``--out``'s suffix names (``.csv``, ``.json``), else ``table``."""
    if fmt:
        return fmt
    suffix = Path(out).suffix.lower().lstrip(".") if out else ""
    return suffix if suffix in FORMATS else "table"


def as_table(predictions: Predictions, predictor: Predictor) -> str:
    """Fixed-width text: a header naming the run, then one line per recording."""
    classes = list(predictor.classes)
    frame = predictions.recordings
    width = max([len("recording")] + [len(str(p)) for p in frame["path"]])
    header = f"{'recording':<{width}}  " + " ".join(f"{c:>5}" for c in classes) + "  predicted  windows"
    lines = [f"# {predictor.describe()}", header]
    for row in frame.itertuples(index=False):
        row = row._asdict()
        if row["error"]:
            prefix = f"{row['path']}: "
            reason = row["error"][len(prefix):] if row["error"].startswith(prefix) else row["error"]
            lines.append(f"{row['path']:<{width}}  FAILED: {reason}")
            continue
        probs = " ".join(f"{row[f'p_{c}']:5.3f}" for c in classes)
        lines.append(f"{row['path']:<{width}}  {probs}  {row['emotion']:<9}  {row['n_windows']:>7}")
    return "\n".join(lines) + "\n"


def as_csv(predictions: Predictions) -> str:
    """Recording rows, each followed by its window rows (see the module docstring)."""
    return predictions.long.to_csv(index=False, float_format="%.6g")


def as_json(predictions: Predictions, predictor: Predictor) -> str:
    """The run, the class order, and every recording with its windows and error (strict JSON)."""
    classes = list(predictor.classes)
    columns = prob_columns(classes)

    def probs(row: dict) -> dict[str, float] | None:
        values = [row[c] for c in columns]
        return None if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values) \
            else dict(zip(classes, map(float, values)))

    windows = {}
    for row in predictions.windows.to_dict("records"):
        windows.setdefault(row["path"], []).append(
            {"window": int(row["window"]), "start_s": row["start_s"], "end_s": row["end_s"],
             "probabilities": probs(row), "predicted": row["predicted"], "emotion": row["emotion"]})
    recordings = []
    for row in predictions.recordings.to_dict("records"):
        ok = not row["error"]
        recordings.append({"path": row["path"], "probabilities": probs(row) if ok else None,
                           "predicted": row["predicted"] or None, "emotion": row["emotion"] or None,
                           "n_windows": int(row["n_windows"]), "duration_s": row["duration_s"],
                           "speech_s": row["speech_s"], "windows": windows.get(row["path"], []) if ok else [],
                           "error": row["error"] or None})
    payload = {"run": str(predictor.run_dir) if predictor.run_dir else None, "run_id": predictor.name,
               "model": predictor.checkpoint["model"]["name"], "corpus": predictor.corpus,
               "synthetic": predictor.synthetic, "note": config.SYNTHETIC_LABEL if predictor.synthetic else None,
               "classes": classes, "window_s": predictor.spec.plan.window_s, "hop_s": predictor.spec.plan.hop_s,
               "whole_max_s": predictor.spec.plan.whole_max_s, "recordings": recordings,
               "failures": list(predictions.failures)}
    return fileio.json_text(payload)


def render(predictions: Predictions, predictor: Predictor, fmt: str) -> str:
    if fmt == "csv":
        return as_csv(predictions)
    if fmt == "json":
        return as_json(predictions, predictor)
    return as_table(predictions, predictor)


def run_predict(paths: Sequence[str], run: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None,
                fmt: str | None = None, out: str | os.PathLike | None = None, device: str = "auto",
                hop_s: float | None = None, jobs: int | None = None,
                emit: Callable[[str], None] | None = None) -> int:
    """``python -m ser_utils predict``: score ``paths`` with ``run`` (else the best run of ``runs_dir``).

    Writes the output to ``out`` (atomically) or stdout; messages go to ``emit`` (stderr, one line
    each, kept clear of the progress bar). Returns 0, or 1 when some recordings failed.
    """
    from tqdm.auto import tqdm

    emit = emit or (lambda line: tqdm.write(line, file=sys.stderr))
    fmt = output_format(fmt, out)
    if run is not None:
        predictor = Predictor.from_run(run, warn=False, device=device, hop_s=hop_s, jobs=jobs)
    else:
        predictor = Predictor.from_runs(runs_dir or config.RUNS_DIR, warn=False, device=device, hop_s=hop_s, jobs=jobs)
        emit(f"using {predictor.run_dir} (lowest validation loss under {runs_dir or config.RUNS_DIR})")
    if predictor.warning:
        emit(f"warning: {predictor.warning}")
    sources = find_audio(paths, emit=emit)
    with predictor:  # its scoring workers stop with the command
        predictions = predictor.score(sources, on_error=lambda message: emit(f"error: {message}"))
    text = render(predictions, predictor, fmt)
    if out:
        fileio.write_text(out, text)
        emit(f"{len(sources) - len(predictions.failures)} of {len(sources)} recordings predicted -> {out}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if predictions.failures:
        names = [message.split(": ", 1)[0] for message in predictions.failures]
        emit(f"error: {len(names)} of {len(sources)} recordings failed: {', '.join(names)}")
        return EXIT_SOME_FAILED
    return 0

