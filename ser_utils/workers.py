"""Worker pools that are safe to start anywhere, a Jupyter kernel with torch imported included.

Why not plain ``fork``: forking copies the caller's memory but only the calling thread. A
Jupyter kernel runs several threads (ZeroMQ, the heartbeat, the output capture) and, once torch
is imported, torch's and OpenMP's thread pools; a lock one of them held at the moment of the
fork stays locked forever in the child, which then hangs. It also hands the child whatever
global state the caller built (eSpeak's synthesis state, a CUDA context). So the feature
extraction's pool (:mod:`ser_utils.features.cache`) and the demo corpus's pool
(:mod:`ser_utils.data.demo_corpus.writer`) start their workers with ``forkserver`` on Linux: a
small single-threaded server process, started once per caller, forks each worker from its own
clean state. Elsewhere ``spawn`` (macOS, Windows: no forkserver, or fork unsafe there).

The server imports :data:`PRELOAD` once when it starts, so a worker forked from it starts with
librosa, scipy and the eSpeak binding already imported (milliseconds, not the ~2 s an import
costs). There is one server per process, started by whichever pool comes first, so the list covers
the pools that need no torch; the predictor's scoring pool (:mod:`ser_utils.predict.predictor`, whose
workers run the model) adds torch when it is the first, and otherwise its workers import it once
each, since they are kept between calls. As with any non-fork start method, a *script* that starts a pool needs the usual
``if __name__ == "__main__":`` guard (notebooks and ``python -m ser_utils`` have it).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.context
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ser_utils.errors import UserError

#: The start method every pool uses when set ("fork", "spawn", "forkserver"); None: :func:`start_method`.
#: Benchmarks set it to compare methods; nothing else should.
START_METHOD_OVERRIDE: str | None = None

#: Imported once by the fork server (a missing one is skipped by multiprocessing itself). librosa
#: loads its submodules lazily, so the ones a worker touches are named: ``librosa.util.utils``
#: alone compiles numba functions for about 2 s, which every worker would otherwise pay.
PRELOAD = (
    "numpy", "scipy.signal", "scipy.ndimage", "scipy.fft", "scipy.sparse", "soxr", "soundfile", "tqdm.auto",
    "webrtcvad", "threadpoolctl", "librosa.core.convert", "librosa.core.notation", "librosa.filters",
    "librosa.util.utils", "ser_utils.features.definitions", "ser_utils.predict.windowing", "ser_utils.data.demo_corpus.writer",
)


def start_method() -> str:
    """``forkserver`` where the platform has it and it is Linux, else ``spawn`` (never ``fork``)."""
    import sys

    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


def pool_context(method: str | None = None, preload: tuple[str, ...] = ()) -> multiprocessing.context.BaseContext:
    """The multiprocessing context every pool of the package uses (see the module docstring).

    ``method`` overrides the choice (benchmarks compare ``fork``). The preload (:data:`PRELOAD`
    and the caller's ``preload``, e.g. torch for the predictor's scoring workers) is set for a
    fork server that has not started yet; once one runs, its workers import what else they need.
    """
    method = method or START_METHOD_OVERRIDE or start_method()
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(dict.fromkeys(PRELOAD + tuple(preload))))
    return context


def init_worker() -> None:
    """A pool worker's set-up: one BLAS/OpenMP thread (the pool is the parallelism), and Ctrl-C
    goes to the parent only (which stops the pool), not to every worker at once."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads()


def limit_threads():
    """threadpoolctl's limit to 1 thread (it is installed with scikit-learn), or None without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return None
    return threadpool_limits(limits=1)


class WorkerDied(UserError):
    """A worker process died (killed, out of memory) while a pool was working: the one-line error."""


def process_pool(jobs: int, initializer: Callable[..., None] | None = init_worker, initargs: tuple = (),
                 preload: tuple[str, ...] = (), max_tasks_per_child: int | None = None
                 ) -> concurrent.futures.ProcessPoolExecutor:
    """A ``concurrent.futures`` process pool on :func:`pool_context`.

    Why not ``multiprocessing.Pool``: when one of its workers is killed, the task it held is lost
    and ``imap`` waits for it forever. ``concurrent.futures`` marks the pool broken instead, so
    every caller ends with :class:`WorkerDied` naming the item, never a hang.
    """
    options: dict[str, Any] = {"mp_context": pool_context(preload=preload), "initializer": initializer,
                               "initargs": initargs}
    if max_tasks_per_child is not None:
        options["max_tasks_per_child"] = max_tasks_per_child
    return concurrent.futures.ProcessPoolExecutor(jobs, **options)


def _call_each(func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [func(item) for item in items]


def imap_unordered(func: Callable[[Any], Any], tasks: Sequence[Any], jobs: int, chunksize: int = 1,
                   describe: Callable[[Any], str] = str, what: str = "item", after: str = "",
                   max_tasks_per_child: int | None = None) -> Iterator[Any]:
    """``func(task)`` for every task in ``jobs`` worker processes, results in completion order.

    At most two chunks per worker are queued, so a long list is never pickled up front. When a
    worker dies the pool is shut down, the queued chunks are cancelled, and :class:`WorkerDied`
    names the first unfinished task (``describe(task)``), how many others were unfinished, and
    ``after``: what happened to them and how to resume (the caller knows its own storage).
    """
    chunks = [list(tasks[i:i + chunksize]) for i in range(0, len(tasks), max(1, chunksize))]
    pool = process_pool(jobs, max_tasks_per_child=max_tasks_per_child)
    pending: dict[concurrent.futures.Future, list[Any]] = {}
    queue = iter(chunks)
    try:
        for chunk in _take(queue, 2 * jobs):
            pending[pool.submit(_call_each, func, chunk)] = chunk
        while pending:
            finished, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                results = future.result()  # raises BrokenProcessPool while the chunk is still pending
                del pending[future]
                yield from results
                for chunk in _take(queue, 1):
                    pending[pool.submit(_call_each, func, chunk)] = chunk
    except BrokenProcessPool:
        unfinished = [task for chunk in pending.values() for task in chunk] + [t for c in queue for t in c]
        first = describe(unfinished[0]) if unfinished else "(unknown)"
        raise WorkerDied(f"{first}: a worker process died (killed, or out of memory) while working on this {what} "
                         f"or one of the {len(unfinished) - 1} others not yet done; {after}".rstrip("; ")) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _take(iterator: Iterator[Any], n: int) -> Iterable[Any]:
    for _ in range(n):
        item = next(iterator, None)
        if item is None:
            return
        yield item
