"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd as child processes.

Why real daemons instead of a fake ``sbatch``: what can break a user's cluster run is what SLURM
itself does with the script (``#SBATCH`` parsing, the array's environment, log paths it opens
before the script runs, the signals ``scancel`` sends to every process of a task) and what
concurrent tasks do to one shared folder. Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and
``munge`` packages start one in a few seconds.

Everything lives in one folder (``slurm.conf``, the munge key and socket, state, spool, daemon
logs); the daemons are this process's children, started with :class:`subprocess.Popen` and
stopped by their process ids (:meth:`SlurmCluster.stop`), and they receive SIGTERM if this
process dies first (``PR_SET_PDEATHSIG``). Job processes are not the daemons' children once
``slurmstepd`` detaches, so :meth:`SlurmCluster.stop` cancels every job first and then kills,
by pid, any process still carrying this cluster's ``SLURM_CONF`` in its environment.

There is no accounting database (``sacct`` would need ``slurmdbd``): jobs are followed with
``scontrol show job``, and ``MinJobAge`` keeps finished jobs visible to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"
#: CPUs the node declares (``config_overrides``): enough for three one-CPU array tasks at once
#: on a two-core machine, so tasks really run side by side.
NODE_CPUS = 4
PARTITION = "test"
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE"}
START_TIMEOUT_S = 30.0


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster (None when it can): root and the Debian packages."""
    missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if missing:
        return f"SLURM test cluster needs {', '.join(missing)} (apt-get install {PACKAGES}; .ci/run installs them)"
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (slurmd starts jobs as their user); .ci/run runs as root"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn giving the daemon SIGTERM when the test process dies, whatever kills it.

    ``prctl`` is looked up here, before the fork: the child only calls it.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Job:
    """One record of ``scontrol show job``: an array task, an unsplit pending array, or a plain job."""

    job_id: str
    array_job_id: str | None
    array_task_id: str | None
    state: str
    exit_code: str
    start_time: str
    end_time: str
    std_out: str

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class SlurmCluster:
    """A one-node cluster rooted at ``root``; :meth:`start`, use, :meth:`stop`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.node = socket.gethostname().split(".")[0]
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf),
                    "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}

    # ------------------------------------------------------------------ daemons
    def write_conf(self) -> None:
        for name in ("state", "spool", "munge"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        ctld_port, slurmd_port = _free_ports(2)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=sertest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "MinJobAge=3600",  # finished jobs stay visible to scontrol (no accounting database here)
            "KillWait=5",
            "SchedulerType=sched/builtin",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory=1000 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")

    def start(self) -> None:
        """Write the configuration and start the three daemons; raise RuntimeError with their logs."""
        if len(str(self.munge_socket)) >= 100:  # a Unix socket path has at most 107 bytes
            raise RuntimeError(f"{self.munge_socket}: too long for a Unix socket; give pytest a shorter --basetemp")
        self.write_conf()
        r = self.root
        key = r / "munge" / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        # --force: munged refuses a socket folder whose parents are not world-searchable (pytest's are 0700)
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--log-file={r / 'munged.log'}",
                               f"--pid-file={r / 'munge' / 'munged.pid'}", f"--seed-file={r / 'munge' / 'munged.seed'}",
                               "--num-threads=10"])
        self._wait(self.munge_socket.exists, "munged did not create its socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_idle, "the node did not become idle")

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.root / f"{name}.out", "ab")
        try:
            self.processes[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, env=self.env, cwd=self.root,
                                                    preexec_fn=_die_with_parent())
        finally:
            out.close()

    def _node_idle(self) -> bool:
        result = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during start-up\n{self.logs()}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} within {timeout:.0f} s\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        """The last lines of every daemon log, for failure messages."""
        parts = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, stop the daemons by pid, then kill any job process of this cluster left."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            subprocess.run(["scancel", f"--partition={PARTITION}"], env=self.env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.queue():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in self.stray_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stray_pids(self, job_id: str | None = None) -> list[int]:
        """Processes whose environment names this cluster's slurm.conf (and ``job_id``, when given).

        Job processes inherit the environment ``sbatch`` was called with, so this finds a job's
        script, the sweep and its notebook kernels, however they were started.
        """
        markers = [f"SLURM_CONF={self.conf}".encode() + b"\0"]
        if job_id is not None:
            markers.append(f"SLURM_JOB_ID={job_id}".encode() + b"\0")
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                environ = b"\0" + (entry / "environ").read_bytes()
                if all(b"\0" + marker in environ for marker in markers):
                    pids.append(int(entry.name))
        return pids

    # ------------------------------------------------------------------ clients
    def run(self, *argv: str, check: bool = True) -> str:
        result = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def sbatch(self, script: Path, *options: str, env: dict | None = None, cwd: Path | None = None) -> str:
        """Submit ``script``; return the job id (of an array: the array's id)."""
        result = subprocess.run(["sbatch", "--parsable", *options, str(script)], env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=60, cwd=cwd)
        if result.returncode != 0:
            raise RuntimeError(f"sbatch {script} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout.strip().split(";")[0]

    def queue(self) -> list[str]:
        """Job ids still pending or running."""
        out = self.run("squeue", "-h", "-o", "%i", check=False)
        return [line for line in out.split() if line]

    def jobs(self, job_id: str) -> list[Job]:
        """Every record of ``job_id`` (all tasks of an array) from ``scontrol show job``."""
        out = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        return [_parse_job(line) for line in out.splitlines() if line.startswith("JobId=")]

    def task(self, array_id: str, task_id: int) -> Job | None:
        found = [j for j in self.jobs(array_id) if j.array_task_id == str(task_id)]
        return found[0] if found else None

    def wait(self, job_id: str, until: Callable[[list[Job]], bool] | None = None, timeout: float = 120.0) -> list[Job]:
        """Poll ``scontrol`` until every record of ``job_id`` is final (or ``until`` holds); bounded."""
        until = until or (lambda jobs: bool(jobs) and all(j.final for j in jobs))
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs(job_id)
            if until(jobs):
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} after {timeout:.0f} s: "
                                   + ", ".join(f"{_label(j)} {j.state}" for j in jobs) + f"\n{self.logs()}")
            time.sleep(0.25)


def _label(job: Job) -> str:
    return f"{job.array_job_id}_{job.array_task_id}" if job.array_job_id else job.job_id


def _parse_job(line: str) -> Job:
    fields = dict(re.findall(r"(\S+?)=(\S*)", line))
    return Job(job_id=fields.get("JobId", ""), array_job_id=fields.get("ArrayJobId"),
               array_task_id=fields.get("ArrayTaskId"), state=fields.get("JobState", ""),
               exit_code=fields.get("ExitCode", ""), start_time=fields.get("StartTime", ""),
               end_time=fields.get("EndTime", ""), std_out=fields.get("StdOut", ""))


def final_states(jobs: Iterable[Job]) -> dict[str, str]:
    """``{"<array>_<task>" or job id: state}`` for messages and assertions."""
    return {_label(j): j.state for j in jobs}
