"""Running the sweep as shard processes side by side: where each runs, and watching them.

The main job (and ``sweep --jobs N``) splits the grid into shards, each the same resumable
``python -m ser_utils sweep --shard K/N`` a SLURM array task runs. This module decides where
each shard runs (:func:`placement`: its GPU and its cores) and supervises the processes
(:func:`run_shards`) so that a long job never hangs or lies:

* a shard that exits with a status other than 0 (done) or 1 (some configurations failed, the
  others finished) died: it is reported with the last line of its log (status 2, a refused
  input, is turned into the same one-line error the shard printed);
* a shard whose log has not grown for longer than the silence limit is stopped (its whole
  process group) and reported. The limit is above the shard's own kernel watchdog
  (``sweep --inactivity-timeout``), so this catches what that cannot: a shard stuck outside a
  notebook. The unfinished run resumes on the next call, like any interrupted run;
* a supervisor stopped by Ctrl-C or SIGTERM (``timeout``, ``scancel``) stops its shards
  rather than leaving them running unseen.

The shard command is a parameter (``command(slot) -> argv``), so all of this is tested with
fake shards on a CPU.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ser_utils.errors import UserError

#: Exit statuses of ``python -m ser_utils sweep`` that are not a dead shard (see ser_utils.cli).
SHARD_OK_STATUSES = (0, 1)
EXIT_BAD_INPUT = 2
#: Seconds a stopped shard gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class ShardSlot:
    """Where shard ``shard`` of ``of`` runs: the GPU it alone sees (None: the CPU or every GPU),
    the cores it is pinned to (None: not pinned) and the environment that says so."""

    shard: int
    of: int
    gpu: str | None = None
    cpus: tuple[int, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The ``--shard`` value, e.g. ``2/8``."""
        return f"{self.shard}/{self.of}"


def placement(gpus: int | Sequence[str], jobs: int, cores: Sequence[int], limit: int | None = None) -> list[ShardSlot]:
    """The shards to start: ``jobs`` per GPU, or ``jobs`` in all where there is no GPU.

    ``gpus`` is a count (ids ``"0"`` .. ``"n-1"``) or the ids to use (e.g. from
    ``CUDA_VISIBLE_DEVICES``). Shards go round robin over the GPUs, so a grid smaller than the
    slots (``limit`` = the number of configurations caps the shards) still spreads over every
    card; each shard sees only its own card (``CUDA_VISIBLE_DEVICES``), where it is ``cuda``.
    Cores are dealt out round robin too, so no two shards share one (training uses one thread
    per core it has); with fewer cores than shards nobody is pinned.
    """
    ids = [str(i) for i in range(gpus)] if isinstance(gpus, int) else [str(g) for g in gpus]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"--jobs {jobs!r}: a positive whole number of processes (per GPU on a GPU machine)")
    count = jobs * max(1, len(ids))
    if limit is not None:
        count = max(1, min(count, int(limit)))
    cores = sorted(cores)
    slots = []
    for k in range(1, count + 1):
        gpu = ids[(k - 1) % len(ids)] if ids else None
        cpus = tuple(cores[k - 1::count]) if len(cores) >= count else None
        slots.append(ShardSlot(k, count, gpu, cpus, {"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}))
    return slots


def visible_gpus(device: str, count: Callable[[], int] | None = None) -> list[str]:
    """The ids of the GPUs shards may use under ``--device``: none for ``cpu`` or without CUDA,
    the one named by ``cuda:K``, else every visible one (as ``CUDA_VISIBLE_DEVICES`` lists them:
    a child's ``CUDA_VISIBLE_DEVICES`` counts from the physical cards, not from ours)."""
    if device == "cpu":
        return []
    n = (count or _cuda_device_count)()
    if n == 0:
        return []
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    ids = (listed or [str(i) for i in range(n)])[:n]
    if device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
        if not 0 <= index < len(ids):
            raise UserError(f"--device {device}: this machine shows {len(ids)} GPU(s) (cuda:0 .. cuda:{len(ids) - 1})")
        return [ids[index]]
    return ids


def shard_device(device: str, slot: ShardSlot) -> str:
    """The ``--device`` a shard gets: ``cuda`` when it sees one card only (it is its cuda:0)."""
    return "cuda" if slot.gpu is not None and device != "cpu" else device


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# ------------------------------------------------------------------ supervising
@dataclass
class ShardProcess:
    """One running shard and what was seen of it."""

    slot: ShardSlot
    log: Path
    process: subprocess.Popen
    log_size: int = 0
    quiet_since: float = 0.0
    silenced: float | None = None  # seconds of silence when it was stopped
    reported: bool = False

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def last_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return " ".join(lines[-1].split())[:300] if lines else "(empty log)"

    def problem(self) -> str | None:
        """One line when this shard died or was stopped as silent; None when it finished its work."""
        if self.silenced is not None:
            return (f"sweep shard {self.slot.spec} wrote nothing to its log for {self.silenced:.0f} s and was stopped"
                    f" (its unfinished run resumes on the next call); last line: {self.last_line()}; log: {self.log}")
        code = self.returncode
        if code is None or code in SHARD_OK_STATUSES:
            return None
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
        return f"sweep shard {self.slot.spec} {how}; last line: {self.last_line()}; log: {self.log}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def start_shard(slot: ShardSlot, argv: Sequence[str], log: Path) -> ShardProcess:
    """Start one shard: output to ``log``, pinned to its cores, in its own process group."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **slot.env}
    preexec = (lambda: os.sched_setaffinity(0, slot.cpus)) if slot.cpus and hasattr(os, "sched_setaffinity") else None
    with open(log, "wb") as handle:
        process = subprocess.Popen(list(argv), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, preexec_fn=preexec, start_new_session=True)
    return ShardProcess(slot, log, process, quiet_since=time.monotonic())


def stop_shards(shards: Sequence[ShardProcess], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to each running shard's process group, SIGKILL to those still there after
    ``grace_s``. (Their notebook kernels run in sessions of their own and exit when they see
    their parent gone.)"""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [shard for shard in shards if shard.process.poll() is None]
        for shard in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(shard.process.pid, sig)
        deadline = time.monotonic() + grace_s
        for shard in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                shard.process.wait(max(0.0, deadline - time.monotonic()))


def run_shards(slots: Sequence[ShardSlot], command: Callable[[ShardSlot], Sequence[str]], logs: Path,
               silence_limit_s: float, poll_s: float = 2.0, on_poll: Callable[[], None] | None = None,
               emit: Callable[[str], None] = print) -> list[ShardProcess]:
    """Start every shard (log ``logs/sweep-K-of-N.log``), watch them until all have ended, and
    return them; a silent one is stopped. ``on_poll`` runs every ``poll_s`` seconds (a progress
    bar). Raises UserError when a shard refused its input (status 2), after all have ended."""
    logs = Path(logs)
    logs.mkdir(parents=True, exist_ok=True)
    shards: list[ShardProcess] = []
    try:
        with _sigterm_as_interrupt() as check:
            for slot in slots:
                shards.append(start_shard(slot, command(slot), logs / f"sweep-{slot.shard}-of-{slot.of}.log"))
                check()
            _watch(shards, silence_limit_s, poll_s, on_poll, emit, check)
    finally:
        stop_shards(shards)  # an interrupted supervisor leaves nothing running
    for shard in shards:
        if shard.returncode == EXIT_BAD_INPUT and shard.silenced is None:
            raise UserError(f"sweep shard {shard.slot.spec} refused its input: {shard.last_line()} (log: {shard.log})")
    return shards


def _watch(shards: list[ShardProcess], silence_limit_s: float, poll_s: float,
           on_poll: Callable[[], None] | None, emit: Callable[[str], None], check: Callable[[], None]) -> None:
    while True:
        check()
        now = time.monotonic()
        for shard in shards:
            if shard.returncode is None:
                size = _size(shard.log)
                if size != shard.log_size:
                    shard.log_size, shard.quiet_since = size, now
                elif now - shard.quiet_since > silence_limit_s:
                    shard.silenced = now - shard.quiet_since
                    stop_shards([shard])
            problem = shard.problem() if shard.returncode is not None else None
            if problem and not shard.reported:
                shard.reported = True
                emit(f"   {problem}")
        if on_poll is not None:
            on_poll()
        if all(shard.returncode is not None for shard in shards):
            return
        time.sleep(poll_s)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[Callable[[], None]]:
    """While shards run, SIGTERM (``timeout``, ``scancel``) on the supervisor becomes a
    KeyboardInterrupt raised by the yielded ``check()`` at the next poll, so it reaches the
    cleanup that stops the shards. Recorded rather than raised in the handler: raised inside
    ``Popen`` it could lose a shard that had just started. (Main thread only.)"""
    received: list[int] = []

    def check() -> None:
        if received:
            raise KeyboardInterrupt(f"signal {received[0]}")

    if threading.current_thread() is not threading.main_thread():
        yield check
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield check
    finally:
        signal.signal(signal.SIGTERM, previous)
