"""Worker tasks for the newer endpoints: one helper that starts a UPID task whose log
lines appear over simulated time and whose effect applies when it finishes.

PVE's API handlers check what they can before forking a worker (those errors are
HTTP 500s); what the worker itself finds wrong ends the task with ``TASK ERROR``.
Here the outcome is decided when the task starts, and a guest the worker changes
carries PVE's config ``lock`` until it ends, so a second worker on it fails like
PVE's ``VM 100 is locked (snapshot)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from simulator.model import Guest
from simulator.tasks import Task

if TYPE_CHECKING:
    from simulator.state import ClusterState

FAIL_SECONDS = 0.5
Effect = Callable[[float], None]


def locked_error(guest: Guest) -> str | None:
    """The worker's error when the guest's config is locked by another one."""
    if guest.lock is None:
        return None
    return f"{guest.label} is locked ({guest.lock})"


def start_worker(
    state: ClusterState,
    *,
    node: str,
    kind: str,
    ident: str,
    user: str,
    seconds: float,
    lines: Sequence[str] = (),
    error: str | None = None,
    effect: Effect | None = None,
    lock: tuple[Guest, str] | None = None,
) -> Task:
    """Start a worker task; ``error`` makes it fail (after its first log lines, if any)."""
    took = FAIL_SECONDS if error else seconds
    task = state._new_task(node, kind, ident, user, took)
    begin, end = float(task.starttime), task.end_at
    if error:
        task.exitstatus = error
        task.log = [(begin, line) for line in lines[:1]] + [(end, f"TASK ERROR: {error}")]
        return state.tasks.add(task)
    count = max(len(lines), 1)
    task.log = [(begin + took * i / count, line) for i, line in enumerate(lines)]
    task.log.append((end, "TASK OK"))
    if lock is not None:
        guest, name = lock
        guest.lock = name

    def finish(at: float) -> None:
        if lock is not None:
            lock[0].lock = None
        if effect is not None:
            effect(at)

    task.on_finish = finish
    return state.tasks.add(task)


def restart_guest(state: ClusterState, guest: Guest, at: float) -> None:
    """The guest process (re)starts at ``at``."""
    state.agents.reset(guest.vmid)
    guest.status = "running"
    guest.boot_time = at
    guest.pid = state._rng.randrange(1000, 4_000_000)
    guest.paused = False


def stop_guest(state: ClusterState, guest: Guest) -> None:
    state.agents.reset(guest.vmid)
    guest.status = "stopped"
    guest.boot_time = 0.0
    guest.pid = 0
    guest.paused = False
