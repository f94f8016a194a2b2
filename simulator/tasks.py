"""PVE worker tasks: UPIDs, status, log lines, all in simulated time."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_UPID_RE = re.compile(
    r"UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-F]{8}):([0-9A-F]{8,9}):"
    r"([0-9A-F]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$"
)


def format_upid(node: str, pid: int, pstart: int, starttime: int, kind: str, ident: str,
                user: str) -> str:  # fmt: skip
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{ident}:{user}:"


def looks_like_upid(text: str) -> bool:
    return _UPID_RE.fullmatch(text) is not None


@dataclass
class Task:
    """One worker task. Log lines carry the simulated time they appear at."""

    node: str
    pid: int
    pstart: int
    starttime: int
    kind: str  # qmstart, vzshutdown, vzdump, ...
    ident: str  # usually the vmid, may be empty
    user: str  # as in the UPID: user@realm or user@realm!tokenid
    end_at: float
    exitstatus: str  # "OK", "WARNINGS: n" or the error text; shown once stopped
    log: list[tuple[float, str]] = field(default_factory=list)
    on_finish: Callable[[float], None] | None = None
    finished: bool = False

    @property
    def upid(self) -> str:
        return format_upid(
            self.node, self.pid, self.pstart, self.starttime, self.kind, self.ident, self.user
        )

    @property
    def endtime(self) -> int:
        return int(self.end_at)

    @property
    def failed(self) -> bool:
        return self.exitstatus != "OK"

    def _identity(self) -> dict[str, Any]:
        user, _, tokenid = self.user.partition("!")
        out: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.kind,
            "id": self.ident,
            "user": user,
        }
        if tokenid:
            out["tokenid"] = tokenid
        return out

    def status_view(self) -> dict[str, Any]:
        out = self._identity()
        out["status"] = "stopped" if self.finished else "running"
        if self.finished:
            out["exitstatus"] = self.exitstatus
        return out

    def list_view(self) -> dict[str, Any]:
        """An entry of the node and cluster task lists (status = exit status)."""
        out = self._identity()
        if self.finished:
            out["endtime"] = self.endtime
            out["status"] = self.exitstatus
        return out

    def log_lines(self, now: float) -> list[str]:
        return [line for at, line in self.log if at <= now]

    def status_class(self) -> str:
        """ok / warning / error / unknown, as PVE's ``statusfilter`` groups them."""
        if not self.finished:
            return "unknown"
        if self.exitstatus == "OK":
            return "ok"
        if self.exitstatus.startswith("WARNINGS"):
            return "warning"
        return "error"


class TaskBook:
    """All tasks, per node, with the running ones kept apart for cheap ticking."""

    def __init__(self) -> None:
        self._by_upid: dict[str, Task] = {}
        self._by_node: dict[str, list[Task]] = {}
        self._active: list[Task] = []

    def add(self, task: Task) -> Task:
        self._by_upid[task.upid] = task
        self._by_node.setdefault(task.node, []).append(task)
        if not task.finished:
            self._active.append(task)
        return task

    def get(self, node: str, upid: str) -> Task | None:
        task = self._by_upid.get(upid)
        return task if task is not None and task.node == node else None

    def for_node(self, node: str) -> list[Task]:
        """Newest first."""
        return sorted(self._by_node.get(node, []), key=lambda t: (t.starttime, t.pid),
                      reverse=True)  # fmt: skip

    def everything(self) -> list[Task]:
        """Newest first, across nodes."""
        tasks = [task for tasks in self._by_node.values() for task in tasks]
        return sorted(tasks, key=lambda t: (t.starttime, t.pid), reverse=True)

    @property
    def active(self) -> list[Task]:
        return list(self._active)

    def advance(self, now: float) -> list[Task]:
        """Finish every task whose end time has come, in end-time order."""
        due = sorted((t for t in self._active if t.end_at <= now), key=lambda t: t.end_at)
        for task in due:
            self._active.remove(task)
            task.finished = True
            if task.on_finish is not None and not task.failed:
                task.on_finish(task.end_at)
        return due
