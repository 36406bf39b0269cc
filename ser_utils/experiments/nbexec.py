"""Executing notebooks with papermill: the one place a notebook is run from Python.

The sweep runs ``07_train.ipynb`` once per configuration, the main job runs the story notebooks
and the analysis; both go through :func:`execute`, which

* writes the executed copy under a hidden partial name and moves it into place when papermill
  returns, so an interrupted run never leaves a half-written notebook that looks finished (the
  partial copy, with the error in place, is moved too: a failure stays readable);
* makes kernels draw figures inline (:func:`inline_figures`), so executed copies carry them;
* forwards kernel output, including tqdm *widget* progress, to a line-oriented log
  (:class:`OutputLog`), so a long run shows progress in a terminal or a SLURM log;
* limits each cell's time (``cell_timeout``) and the kernel's silence (``inactivity_timeout``):
  a stalled kernel becomes an error, not a hang.
"""

from __future__ import annotations

import contextlib
import html as html_lib
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ser_utils import config
from ser_utils.errors import UserError

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Seconds between two progress lines of one notebook in the log (its final line always shows).
LOG_INTERVAL_S = 30.0
#: The right-hand text of a tqdm bar, e.g. ``37/150 [02:10<06:30, 3.5epoch/s, loss=1.23]``.
TQDM_TEXT = re.compile(r"\d+/\d+ \[")
ENGINE_NAME = "ser_utils-progress"
#: Added to the kernel's command line. The kernel logs its own set-up at WARNING to the caller's
#: stderr: with the usual local TCP transport, a three-line "running over TCP without encryption"
#: notice per notebook, 30+ of them in a main job's log, hiding its progress. Kernel errors still show.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)


class NotebookFailedError(RuntimeError):
    """A notebook raised while papermill executed it (its executed copy is kept, error in place)."""


@contextlib.contextmanager
def inline_figures() -> Iterator[None]:
    """Make kernels started inside this block draw figures inline (into the executed notebook).

    A kernel inherits ``MPLBACKEND`` from the process that starts it; set to ``Agg`` (common in
    CI and test set-ups) the executed notebooks would carry no figures at all, and the report
    would be empty. The variable is restored on exit.
    """
    before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = before


def notebook_path(name: str | Path) -> Path:
    """``"08_analysis"``, ``"08_analysis.ipynb"`` or a path -> the notebook file (FileNotFoundError if absent)."""
    path = Path(name)
    if not path.suffix:
        path = path.with_suffix(".ipynb")
    if not path.is_file():
        path = config.NOTEBOOKS_DIR / path.name
    if not path.is_file():
        raise UserError(f"{path}: no such notebook; names look like 08_analysis (see {config.NOTEBOOKS_DIR})")
    return path


def declared_parameters(path: str | Path) -> set[str]:
    """The names a notebook's ``parameters`` cell declares (papermill would inject any name)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def describe_error(err: BaseException) -> str:
    """One line for metrics.json and summaries (papermill errors carry the notebook's own)."""
    name, value = getattr(err, "ename", None), getattr(err, "evalue", None)
    text = f"{name}: {value}" if name else f"{type(err).__name__}: {err}"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


class StalledError(TimeoutError):
    """The kernel stayed silent longer than the inactivity limit and was interrupted."""


def is_timeout(err: BaseException) -> bool:
    """True for a cell over its time limit or a silent kernel (interrupted, not the notebook wrong)."""
    from nbclient.exceptions import CellTimeoutError

    return isinstance(err, (CellTimeoutError, TimeoutError))


class OutputLog:
    """Kernel output -> a log: prefixed lines, progress bars throttled.

    tqdm redraws its bar with carriage returns many times a second; written to a log file that
    is thousands of lines per run. Lines ending in a newline pass through; a redraw (ending in a
    carriage return) is shown at most every ``interval`` seconds, and the last one held back is
    shown before the next plain line and at :meth:`close`, so a bar's final state always appears.
    """

    def __init__(self, label: str, emit: Callable[[str], None], interval: float = LOG_INTERVAL_S):
        self.prefix, self.emit, self.interval = f"  [{label}] ", emit, interval
        self._buffer, self._pending, self._last = "", "", -math.inf
        self.last_activity = time.monotonic()  # read by the Watchdog
        self.client: Any = None  # the notebook client executing, set by the progress engine

    def write(self, text: str) -> int:
        self.last_activity = time.monotonic()
        self._buffer += text
        consumed = 0
        for match in re.finditer(r"([^\r\n]*)([\r\n])", self._buffer):
            consumed = match.end()
            line = match.group(1).rstrip()
            if line and match.group(2) == "\n":
                self._flush_pending()
                self.emit(self.prefix + line)
            elif line:
                self._progress(line)
        self._buffer = self._buffer[consumed:]
        return len(text)

    def _progress(self, line: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self.emit(self.prefix + line)
            self._last, self._pending = now, ""
        else:
            self._pending = line

    def _flush_pending(self) -> None:
        if self._pending:
            self.emit(self.prefix + self._pending)
            self._pending = ""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._flush_pending()
        if self._buffer.strip():
            self.emit(self.prefix + self._buffer.strip())
        self._buffer = ""


def _register_engine() -> str:
    """Register (once) a papermill engine that also logs tqdm *widget* progress.

    With ipywidgets installed, tqdm in a kernel draws a widget: its updates travel as comm
    messages, not as output, so nothing would reach the log during a run. This engine's client
    forwards the bar's text (``37/150 [02:10<06:30, loss=...]``) to the stdout handler as a
    redraw, which :class:`OutputLog` throttles like a text bar.
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class ProgressClient(PapermillNotebookClient):
        left = ""  # the bar's description and percentage, e.g. "1d-relu-lr0.001: 25%"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if isinstance(self.stdout_file, OutputLog):
                self.stdout_file.client = self  # lets the Watchdog find the kernel

        def handle_comm_msg(self, outs, msg, cell_index):
            super().handle_comm_msg(outs, msg, cell_index)
            value = ((msg.get("content") or {}).get("data") or {}).get("state", {}).get("value")
            if self.stdout_file is None:
                return
            if isinstance(self.stdout_file, OutputLog):
                self.stdout_file.last_activity = time.monotonic()  # a widget redraw is activity too
            if not isinstance(value, str):
                return
            text = " ".join(html_lib.unescape(value).replace("\u2007", " ").split())  # tqdm pads with U+2007
            if text.endswith("%"):
                self.left = text
            elif TQDM_TEXT.search(text):
                self.stdout_file.write(f"{self.left} {text}".strip() + "\r")

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log=logger, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            return ProgressClient(nb_man, **final).execute()

    papermill_engines.register(ENGINE_NAME, ProgressEngine)
    return ENGINE_NAME


class Watchdog(threading.Thread):
    """Interrupt a kernel that has been silent for ``limit`` seconds.

    A cell time limit alone cannot tell a long, healthy training cell from a stalled kernel;
    every epoch of a training run prints progress, so silence is the better signal. On expiry
    the kernel gets SIGINT (a KeyboardInterrupt in the cell, which papermill reports as the
    cell's error) and :attr:`fired` is set so the caller can record the reason as a timeout.
    """

    def __init__(self, log: OutputLog, limit: float, poll: float = 1.0):
        super().__init__(daemon=True)
        self.log, self.limit, self.poll = log, float(limit), poll
        self.fired = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.poll):
            if time.monotonic() - self.log.last_activity < self.limit:
                continue
            pid = getattr(getattr(getattr(self.log.client, "km", None), "provisioner", None), "pid", None)
            if pid:
                self.fired = True
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
                self.log.last_activity = time.monotonic()  # give the interrupt time to land

    def stop(self) -> None:
        self._stop_event.set()


def log_to_stderr(message: str) -> None:
    """Print a log line without breaking a tqdm bar on the same terminal."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def partial_path(target: Path) -> Path:
    """Where :func:`execute` writes ``target`` while the notebook runs (a hidden sibling)."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


def execute(source: str | Path, target: str | Path, parameters: Mapping[str, Any] | None = None, *,
            kernel_name: str | None = None, cell_timeout: float | None = None, log_label: str | None = None,
            emit: Callable[[str], None] = log_to_stderr, inactivity_timeout: float | None = None) -> Path:
    """Execute ``source`` into ``target`` with papermill; return ``target``.

    The copy is written as ``.<name>.partial.ipynb`` beside ``target`` and renamed when papermill
    returns, also after an error (the error is then in the copy, where a reader looks for it).
    ``log_label``: forward the kernel's output, progress included, to ``emit`` with that prefix.
    ``cell_timeout``: seconds one cell may run (None: no limit). ``inactivity_timeout`` (needs
    ``log_label``): seconds the kernel may stay silent before it is interrupted (:class:`Watchdog`);
    the error then raised is a :class:`StalledError`. Errors propagate.
    """
    import papermill as pm

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    log = OutputLog(log_label, emit) if log_label else None
    watchdog = Watchdog(log, inactivity_timeout) if log is not None and inactivity_timeout else None
    if watchdog is not None:
        watchdog.start()
    try:
        with inline_figures():
            pm.execute_notebook(str(source), str(partial), parameters=dict(parameters or {}), cwd=str(source.parent),
                                kernel_name=kernel_name, progress_bar=False, execution_timeout=cell_timeout,
                                stdout_file=log, stderr_file=log, engine_name=_register_engine() if log else None,
                                extra_arguments=list(KERNEL_ARGUMENTS))
    except Exception as err:
        if watchdog is not None and watchdog.fired:
            raise StalledError(f"the kernel printed nothing for {inactivity_timeout:.0f} s and was interrupted "
                               f"({describe_error(err)})") from err
        raise
    finally:
        if watchdog is not None:
            watchdog.stop()
        if log is not None:
            log.close()
        if partial.is_file():
            os.replace(partial, target)
    return target


def execute_notebooks(names: Iterable[str | Path], out_dir: str | Path, parameters: Mapping[str, Any] | None = None,
                      kernel_name: str | None = None, keep_going: bool = False, progress: bool = True,
                      cell_timeout: float | None = None) -> list[Path]:
    """Execute notebooks into ``out_dir/NN_name.ipynb`` (what the HTML report exports).

    ``parameters`` is one dict for all notebooks; each notebook receives only the names its
    parameters cell declares (e.g. ``data_dir`` everywhere, ``runs_dir`` where it is used). A
    failing notebook is kept (its error shows in the report) and raises
    :class:`NotebookFailedError`, after the others when ``keep_going``.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    paths = [notebook_path(n) for n in names]
    written, failures = [], []
    for path in tqdm(paths, desc="notebooks", unit="nb", disable=not progress):
        params = {k: v for k, v in (parameters or {}).items() if k in declared_parameters(path)}
        target = out_dir / path.name
        try:
            execute(path, target, params, kernel_name=kernel_name, cell_timeout=cell_timeout)
        except Exception as err:
            failures.append(f"{path.name} ({describe_error(err)[:200]})")
            if not keep_going:
                break
        finally:
            if target.is_file():
                written.append(target)
    if failures:
        raise NotebookFailedError(f"{'; '.join(failures)}: see the executed copies in {out_dir}")
    return written
