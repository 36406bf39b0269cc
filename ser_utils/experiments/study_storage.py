"""Where a tuning study lives: SQLite on one machine, PostgreSQL or a journal file for many.

Exists so that every kind of storage is opened one way, with the fault handling a cluster needs
and the one-line errors a user can act on:

* no URL: ``sqlite:///<out>/tuning/<study>/study.db`` (embedded, nothing to install; one machine);
* ``postgresql+psycopg://user:password@host:port/db`` (or any SQLAlchemy URL Optuna accepts): many
  processes on many machines;
* ``journal:/shared/path/study.journal``: Optuna's journal file on a shared file system, no server.

Relational storages get heartbeats: every running trial's worker writes one every
``heartbeat_s`` seconds; a trial whose heartbeat is older than ``grace_s`` (a worker killed with
SIGKILL, a SLURM time limit, a lost node) is marked failed by the next worker that asks for a
trial, and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues a retry with the
same parameters. The journal storage has no heartbeat in Optuna: a killed worker's trial stays
"running" there (docs/tuning.md says how to clear it).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

from ser_utils.errors import UserError

#: Seconds between heartbeats of a running trial, and how stale one may get before the trial fails.
HEARTBEAT_S = 10
GRACE_FACTOR = 3
#: Retries of a trial whose worker died (each retry is a new trial with the same parameters).
MAX_RETRY = 2
JOURNAL_PREFIX = "journal:"


def default_url(folder: str | Path) -> str:
    """The study's own SQLite database inside its folder."""
    return f"sqlite:///{Path(folder).resolve() / 'study.db'}"


def masked(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and records)."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing that could be a password
        scheme = url.split("://", 1)[0]
        return f"{scheme}://***" if "://" in url else "***"


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int | None = None) -> Any:
    """An Optuna storage for ``url``, connected; a bad URL or an unreachable server is a UserError."""
    import optuna

    if url.startswith(JOURNAL_PREFIX):
        return _journal(url[len(JOURNAL_PREFIX):])
    if "://" not in url:
        raise UserError(f"--storage {masked(url)}: not a storage URL; give sqlite:///PATH, "
                        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB or journal:PATH")
    if url.startswith("sqlite:///"):
        _prepare_sqlite(Path(url[len("sqlite:///"):]))
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": 10}
    try:
        storage = _rdb_storage(optuna, url, engine, heartbeat_s, grace_s)
    except ImportError as err:
        raise UserError(f"--storage {masked(url)}: the database driver is missing ({err}); "
                        "pip install 'psycopg[binary]' for PostgreSQL") from err
    except Exception as err:  # sqlalchemy's ArgumentError, OperationalError, NoSuchModuleError...
        reason = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
        raise UserError(f"--storage {masked(url)}: cannot open the study database ({type(err).__name__}: {reason}); "
                        "check the URL's driver, host, port, user, password and database name, and that the "
                        "server runs and accepts connections from this machine") from err
    if url.startswith("sqlite"):
        _fast_commits(storage.engine)
    return storage


def _rdb_storage(optuna: Any, url: str, engine: dict[str, Any], heartbeat_s: int, grace_s: int | None,
                 attempts: int = 6) -> Any:
    """Optuna's RDBStorage. Workers that start at the same moment on an empty database all create
    Optuna's tables; the losers of that race get an IntegrityError ("already exists"): they wait
    for the winner and open the storage again."""
    import time

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # Optuna calls heartbeats experimental on every storage opened
                warnings.simplefilter("ignore")
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                                  grace_period=grace_s or GRACE_FACTOR * heartbeat_s,
                                                  heartbeat_stale_trial_callback=retry)
        except Exception as err:  # noqa: PERF203 - a retry loop
            racing = type(err).__name__ in ("IntegrityError", "ProgrammingError") and "already exists" in str(err)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _prepare_sqlite(path: Path) -> None:
    """Create the folder, and switch a new database file to write-ahead logging: readers no longer
    block the writer (``--jobs`` workers on one machine) and a commit appends instead of rewriting."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")


def _fast_commits(engine: Any) -> None:
    """``synchronous=NORMAL`` on every connection: in WAL mode a commit then waits for no disk flush
    (a killed process loses nothing; a power cut may lose the last commits, never the file)."""
    from sqlalchemy import event

    event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA synchronous=NORMAL"))
    engine.dispose()  # the connections opened so far reconnect with it


def _journal(path: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if not path:
        raise UserError("--storage journal:PATH needs a file path, e.g. journal:/shared/ser/study.journal")
    file = Path(path).expanduser().resolve()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(file)))
    except OSError as err:
        raise UserError(f"--storage journal:{file}: cannot write the journal ({err.strerror}); "
                        "give a folder you can write, on a file system every worker sees") from err

