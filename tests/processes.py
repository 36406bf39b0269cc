"""Finding a test's pool workers in /proc (Linux): the tests that kill one mid-run need its pid."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (every thread's children file)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def pool_workers(pid: int) -> list[int]:
    """Processes two levels below ``pid``: the workers of its pools, children of its fork server."""
    return [worker for server in children(pid) for worker in children(server)]
