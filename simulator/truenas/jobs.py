"""Middleware jobs: WAITING -> RUNNING -> SUCCESS | FAILED | ABORTED, in simulated time."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulator.clock import SimClock
from simulator.truenas.state import TrueNasState

FINAL_STATES = frozenset({"SUCCESS", "FAILED", "ABORTED"})


class JobError(Exception):
    """Raised by a job's ``finish`` to fail it; mirrors the ``exc_info`` of a failed job."""

    def __init__(self, reason: str, *, number: int = errno.EFAULT, kind: str = "CallError",
                 extra: Any = None) -> None:  # fmt: skip
        super().__init__(reason)
        self.reason = reason
        self.number = number
        self.kind = kind
        self.extra = extra


@dataclass
class JobPlan:
    """What a job method does: how long it runs, its progress steps and its effect."""

    description: str
    duration_s: float
    finish: Callable[[], Any]
    steps: tuple[str, ...] = ()
    abortable: bool = False
    transient: bool = False
    wait_for: Job | None = None  # core.job_wait


@dataclass
class Job:
    id: int
    method: str
    arguments: list[Any]
    username: str
    plan: JobPlan
    started: float
    message_ids: list[Any] = field(default_factory=list)
    state: str = "RUNNING"
    percent: int = 0
    progress_text: str | None = None
    result: Any = None
    error: str | None = None
    exc_info: dict[str, Any] | None = None
    time_started: datetime | None = None
    time_finished: datetime | None = None
    done: asyncio.Future[None] | None = None

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id, "message_ids": list(self.message_ids), "method": self.method,
            "arguments": self.arguments, "transient": self.plan.transient,
            "description": self.plan.description, "abortable": self.plan.abortable,
            "logs_path": None, "logs_excerpt": None,
            "progress": {"percent": self.percent, "description": self.progress_text,
                         "extra": None},
            "result": self.result, "result_encoding_error": None, "error": self.error,
            "exception": None if self.error is None else f"Traceback (simulated)\n{self.error}",
            "exc_info": self.exc_info, "state": self.state, "time_started": self.time_started,
            "time_finished": self.time_finished,
            "credentials": {"type": "API_KEY", "data": {"username": self.username}},
        }  # fmt: skip


class JobManager:
    """Runs jobs against ``state``; ``tick()`` moves them on (the server calls it often)."""

    def __init__(self, state: TrueNasState, clock: SimClock) -> None:
        self.state = state
        self.clock = clock
        self.jobs: dict[int, Job] = {}
        self._next = 100 + state.seed % 50

    def _stamp(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def submit(self, method: str, arguments: list[Any], username: str, plan: JobPlan,
               message_id: Any = None) -> Job:  # fmt: skip
        self._next += 1
        job = Job(self._next, method, arguments, username, plan, self.clock.now())
        if message_id is not None:
            job.message_ids.append(message_id)
        job.time_started = self._stamp()
        job.progress_text = plan.steps[0] if plan.steps else None
        self.jobs[job.id] = job
        self.state.emit("job", "added", job.id, job.item())
        return job

    def visible(self, username: str, full_admin: bool) -> list[Job]:
        return [j for j in self.jobs.values() if full_admin or j.username == username]

    def abort(self, job: Job) -> None:
        if job.state in FINAL_STATES:
            return
        if not job.plan.abortable:
            raise JobError(f"Job {job.id} is not abortable", number=errno.EINVAL)
        self._end(job, "ABORTED", error="Job aborted", exc=("JobAborted", errno.EINTR, None))

    def tick(self) -> None:
        now = self.clock.now()
        for job in list(self.jobs.values()):
            if job.state in FINAL_STATES:
                continue
            target = job.plan.wait_for
            if target is not None:
                if target.state in FINAL_STATES:
                    if target.state == "SUCCESS":
                        self._succeed(job, target.result)
                    else:
                        self._end(job, "FAILED", error=target.error,
                                  exc=("CallError", errno.EFAULT, None))  # fmt: skip
                continue
            elapsed = now - job.started
            duration = max(job.plan.duration_s, 0.001)
            if elapsed >= duration:
                try:
                    result = job.plan.finish()
                except JobError as exc:
                    self._end(job, "FAILED", error=f"[{errno.errorcode.get(exc.number, 'EFAULT')}]"
                              f" {exc.reason}", exc=(exc.kind, exc.number, exc.extra))  # fmt: skip
                else:
                    self._succeed(job, result)
                continue
            percent = min(99, int(elapsed / duration * 100))
            if percent // 10 > job.percent // 10:
                job.percent = percent
                if job.plan.steps:
                    step = min(len(job.plan.steps) - 1, percent * len(job.plan.steps) // 100)
                    job.progress_text = job.plan.steps[step]
                self.state.emit("job", "changed", job.id, job.item())

    def _succeed(self, job: Job, result: Any) -> None:
        job.percent = 100
        job.progress_text = "Completed" if job.plan.steps else job.progress_text
        job.result = result
        self._end(job, "SUCCESS")

    def _end(self, job: Job, state: str, *, error: str | None = None,
             exc: tuple[str, int, Any] | None = None) -> None:  # fmt: skip
        job.state = state
        job.error = error
        if exc is not None:
            kind, number, extra = exc
            job.exc_info = {"repr": f"{kind}({error!r})", "type": kind, "errno": number,
                            "extra": extra}  # fmt: skip
        job.time_finished = self._stamp()
        self.state.emit("job", "changed", job.id, job.item())
        if job.done is not None and not job.done.done():
            job.done.set_result(None)

    async def wait(self, job: Job) -> None:
        if job.state in FINAL_STATES:
            return
        if job.done is None:
            job.done = asyncio.get_running_loop().create_future()
        await job.done
