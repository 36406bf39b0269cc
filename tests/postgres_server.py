"""A real PostgreSQL server for the tests: initdb in a temporary folder, a free port, stopped by pid.

Why a real server: what can break a study shared by many workers is what the database does
(concurrent ``ask`` from two processes, heartbeats, a connection dropped by a killed worker),
which SQLite on one machine never shows. Debian's ``postgresql`` package provides ``initdb`` and
``postgres``; a cluster starts in about two seconds.

PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
``postgres`` system user the Debian package creates (or one created here with ``useradd``),
owning the data folder. The server is this process's child (``subprocess.Popen`` with ``user=``),
receives SIGTERM if this process dies first (``PR_SET_PDEATHSIG``), and is stopped with SIGINT
(PostgreSQL's fast shutdown) by its process id.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGE = "postgresql"
SYSTEM_USER = "postgres"
DB_USER = "ser"
#: The password is in the URL so that the tests see it masked in messages; the server trusts
#: local connections, so any password is accepted.
DB_PASSWORD = "s3cret-pw"
START_TIMEOUT_S = 30.0


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def unavailable_reason() -> str | None:
    """Why this machine cannot run the server (None when it can)."""
    missing = [n for n in ("initdb", "postgres") if _binary(n) is None]
    if missing:
        return f"PostgreSQL test server needs {', '.join(missing)} (apt-get install {PACKAGE}; .ci/run installs it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "PostgreSQL tests need psycopg (pip install 'psycopg[binary]')"
    if os.geteuid() == 0 and _system_user() is None:
        return f"PostgreSQL refuses root and no {SYSTEM_USER} user exists or could be created (useradd)"
    return None


def _system_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        return None
    subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], capture_output=True)
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent():
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class PostgresServer:
    """One throw-away PostgreSQL cluster in a fresh folder of the system's temporary directory
    (pytest's own folders are private to root, which the server's user could not enter)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="ser-postgres-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.user = _system_user() if os.geteuid() == 0 else None

    def url(self, password: str = DB_PASSWORD) -> str:
        return f"postgresql+psycopg://{DB_USER}:{password}@127.0.0.1:{self.port}/postgres"

    def _as_server_user(self) -> dict:
        return {"user": self.user.pw_uid, "group": self.user.pw_gid} if self.user else {}

    def start(self) -> None:
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        init = subprocess.run([_binary("initdb"), "-D", str(self.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                               "--no-sync"], capture_output=True, text=True, cwd=self.root, **self._as_server_user())
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        log = open(self.root / "server.log", "w")
        self.process = subprocess.Popen(
            [_binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=100"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root, preexec_fn=_die_with_parent(),
            **self._as_server_user())
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname="postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
