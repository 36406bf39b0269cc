"""Worker pools that are safe to start anywhere, a Jupyter kernel with torch imported included.

Why not plain ``fork``: forking copies the caller's memory but only the calling thread. A
Jupyter kernel runs several threads (ZeroMQ, the heartbeat, the output capture) and, once torch
is imported, torch's and OpenMP's thread pools; a lock one of them held at the moment of the
fork stays locked forever in the child, which then hangs. It also hands the child whatever
global state the caller built (eSpeak's synthesis state, a CUDA context). So the feature
extraction's pool (:mod:`ser_utils.feature_cache`) and the demo corpus's pool
(:mod:`ser_utils.demo_corpus.writer`) start their workers with ``forkserver`` on Linux: a
small single-threaded server process, started once per caller, forks each worker from its own
clean state. Elsewhere ``spawn`` (macOS, Windows: no forkserver, or fork unsafe there).

The server imports :data:`PRELOAD` once when it starts, so a worker forked from it starts with
librosa, scipy and the eSpeak binding already imported (milliseconds, not the ~2 s an import
costs). There is one server per process, started by whichever pool comes first, so the list covers
the pools that need no torch; the predictor's scoring pool (:mod:`ser_utils.predictor`, whose
workers run the model) adds torch when it is the first, and otherwise its workers import it once
each, since they are kept between calls. As with any non-fork start method, a *script* that starts a pool needs the usual
``if __name__ == "__main__":`` guard (notebooks and ``python -m ser_utils`` have it).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import signal

#: Imported once by the fork server (a missing one is skipped by multiprocessing itself). librosa
#: loads its submodules lazily, so the ones a worker touches are named: ``librosa.util.utils``
#: alone compiles numba functions for about 2 s, which every worker would otherwise pay.
PRELOAD = (
    "numpy", "scipy.signal", "scipy.ndimage", "scipy.fft", "scipy.sparse", "soxr", "soundfile", "tqdm.auto",
    "webrtcvad", "threadpoolctl", "librosa.core.convert", "librosa.core.notation", "librosa.filters",
    "librosa.util.utils", "ser_utils.features", "ser_utils.windowing", "ser_utils.demo_corpus.writer",
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
    method = method or start_method()
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
