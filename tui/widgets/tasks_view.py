"""The Tasks view: the cluster's running and recent tasks, and one task's log as it runs.

The list is ``pve_list_tasks`` (one ``/cluster/tasks`` read). While the view is shown and a
task runs, or this dashboard has an action under way, it reads again every second, for at
most ``FAST_POLLS`` seconds in a row; otherwise it follows the app's refresh. A one-second
timer only decides whether to read: hidden, or under a modal, the view asks nothing.

Tasks this dashboard started are marked "you": by UPID once an action returned it
(``app.own_tasks``), and while the action still waits, by matching the header's activity
(action, vmid) to the running task of that guest and type.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, RichLog, Static
from textual.worker import Worker

from core.errors import LabdeckError
from core.models import Table, TaskStatus
from core.pve_results import TaskLog
from tui.formatting import uptime
from tui.widgets.keyed_table import Cell, KeyedTable
from tui.widgets.lazy_view import LazyView
from tui.widgets.storage_view import local_time, rows_of

if TYPE_CHECKING:
    from tui.app import LabdeckApp

Clock = Callable[[], datetime]

TASK_FIELDS = ["upid", "node", "type", "id", "user", "status", "starttime", "endtime"]
TASK_LIMIT = 100
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
POLL_S = 1.0
#: fast polls in a row (about ten minutes), then the app's refresh interval again
FAST_POLLS = 600
#: how long the log window follows a running task (polls of POLL_S), then it stops asking
FOLLOW_POLLS = 1800
LOG_PAGE = 500
#: a local clock this far from a task's start disagrees with the server's (the simulator)
PLAUSIBLE_S = 7 * 86400
#: activity names whose task type does not contain the name itself
TASK_TYPES_OF = {"backup": ("vzdump",), "migrate": ("qmigrate", "vzmigrate")}


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task as ``pve_list_tasks`` lists it."""

    upid: str
    node: str
    type: str
    id: str
    user: str
    status: str  # running, OK, WARNINGS: n, or the error
    starttime: int
    endtime: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> TaskRow:
        end = row.get("endtime")
        return cls(
            upid=str(row["upid"]), node=str(row.get("node") or ""),
            type=str(row.get("type") or ""), id=str(row.get("id") or ""),
            user=str(row.get("user") or ""), status=str(row.get("status") or "running"),
            starttime=int(row.get("starttime") or 0), endtime=int(end) if end else None,
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.status == "running"


def duration(seconds: float) -> str:
    return uptime(int(seconds)) if seconds >= 1 else "0s"


def status_cell(status: str, exitstatus: str | None, elapsed: float, frame: int) -> Text:
    """running (spinner, time so far), OK in green, warnings yellow, errors red."""
    if status == "running":
        return Text(f"{SPINNER[frame % len(SPINNER)]} running {duration(elapsed)}",
                    style="bold yellow")  # fmt: skip
    outcome = exitstatus or status
    if outcome == "OK":
        return Text("✓ OK", style="green")
    if outcome.startswith("WARNINGS"):
        return Text(f"! {outcome}", style="yellow")
    return Text(f"✗ {outcome}", style="bold red")


def started_here(task: TaskRow, activities: Iterable[tuple[str, int | str]]) -> bool:
    """Is ``task`` what one of this dashboard's running actions (action, vmid) started?"""
    for action, vmid in activities:
        types = TASK_TYPES_OF.get(action, ())
        if task.id == str(vmid) and (action in task.type or task.type in types):
            return True
    return False


class RunningTime:
    """How long running tasks have run.

    The task list carries no server time. The dashboard's clock is used when it agrees
    with the server's (the start lies in the last week); otherwise (a simulator with its
    own epoch, a badly set clock) the time since this dashboard first saw the task.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._first_seen: dict[str, float] = {}

    def elapsed(self, upid: str, starttime: int) -> float:
        seen = self._first_seen.setdefault(upid, time.monotonic())
        by_clock = self.clock().timestamp() - starttime
        if 0 <= by_clock <= PLAUSIBLE_S:
            return by_clock
        return time.monotonic() - seen


class _Started(Text):
    """A start-time cell that sorts by its Unix time, not by its text."""

    def __init__(self, text: str, epoch: int) -> None:
        super().__init__(text)
        self.epoch = epoch


class TaskTable(KeyedTable):
    COLUMNS = (
        ("status", "Status"),
        ("type", "Type"),
        ("id", "VMID"),
        ("node", "Node"),
        ("user", "User"),
        ("started", "Started"),
        ("duration", "Duration"),
    )
    initial_sort = ("started", True)

    def after_sync(self) -> None:
        self.sort("started", key=lambda cell: getattr(cell, "epoch", 0), reverse=True)


class TasksView(LazyView):
    """Running and recent tasks; Enter opens the highlighted task's log."""

    BINDINGS = [
        Binding("l", "open_log", "Log", id="tasks.log",
                tooltip="Open the selected task's log (Enter does too); it follows a running "
                "task until it ends."),
    ]  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks: dict[str, TaskRow] = {}
        self.running_time: RunningTime | None = None
        self.fast_polls = 0
        #: task list reads so far (tests check the fast polling with it)
        self.loads = 0
        self._frame = 0
        self._worker: Worker[None] | None = None
        self._activities_seen: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("Reading tasks…", id="tasks-status", markup=False)
        yield TaskTable(id="task-table")

    def on_mount(self) -> None:
        self.running_time = RunningTime(self.app.clock)
        self.set_interval(POLL_S, self._tick)

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    def focus_target(self) -> Widget:
        return self.table

    def reload(self) -> Worker[None]:
        self._worker = super().reload()
        return self._worker

    # ------------------------------------------------------------------ polling

    def _shown(self) -> bool:
        return self.screen.is_current and self.is_on_screen

    def _activity_texts(self) -> tuple[str, ...]:
        return tuple(self.app.activities.values())

    def _tick(self) -> None:
        """Read again now if something runs and the view is seen (bounded)."""
        busy = any(t.running for t in self.tasks.values()) or bool(self.app.activities)
        if not busy:
            self.fast_polls = 0
        changed = self._activity_texts() != self._activities_seen
        if not self._shown() or (self._worker is not None and not self._worker.is_finished):
            return
        if (changed or busy) and self.fast_polls < FAST_POLLS:
            self.fast_polls += 1
            self.reload()

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        self.loads += 1
        params = {"fields": TASK_FIELDS, "limit": TASK_LIMIT}
        try:
            listing = await self.app.service.call("pve_list_tasks", params)
        except LabdeckError as exc:
            self._say(f"Cannot list tasks: {exc}", error=True)
            return
        assert isinstance(listing, Table)
        self.show([TaskRow.of(row) for row in rows_of(listing)], listing.total)

    def show(self, tasks: list[TaskRow], total: int) -> None:
        self._frame += 1
        activities = self.app.activities
        own = self.app.own_tasks
        for task in tasks:
            if task.running and started_here(task, activities):
                own.add(task.upid)
        self.tasks = {t.upid: t for t in tasks}
        self.table.sync_rows({t.upid: self._cells(t, t.upid in own) for t in tasks},
                             keep=self.table.current_key)  # fmt: skip
        self._activities_seen = self._activity_texts()
        running = sum(1 for t in tasks if t.running)
        parts = [f"{running} running", f"{len(tasks)} of {total} tasks, newest first",
                 "Enter or l: log"]  # fmt: skip
        if self._activities_seen:
            parts.append("this dashboard: " + "; ".join(self._activities_seen))
        self._say(" · ".join(parts))

    def _cells(self, task: TaskRow, mine: bool) -> tuple[Cell, ...]:
        assert self.running_time is not None
        tz = self.app.clock().tzinfo
        if task.running:
            took = self.running_time.elapsed(task.upid, task.starttime)
            spent = f"{duration(took)}…"
        else:
            took = max((task.endtime or task.starttime) - task.starttime, 0)
            spent = duration(took)
        user = Text(task.user)
        if mine:
            user.append(" · you", style="bold")
        return (
            status_cell(task.status, None if task.running else task.status, took, self._frame),
            task.type,
            task.id,
            task.node,
            user,
            _Started(local_time(task.starttime, tz, "%m-%d %H:%M:%S"), task.starttime),
            spent,
        )

    def _say(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#tasks-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    # ------------------------------------------------------------------ the log

    @on(DataTable.RowSelected, "#task-table")
    def _task_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_log(str(event.row_key.value))

    def action_open_log(self) -> None:
        key = self.table.current_key
        if key is not None:
            self.open_log(key)

    def open_log(self, upid: str) -> None:
        task = self.tasks.get(upid)
        if task is not None and self.running_time is not None:
            self.app.push_screen(TaskLogScreen(task, self.running_time))


class TaskLogScreen(ModalScreen[None]):
    """A task's log; while the task runs it reads on every second (bounded), then stops."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="tasklog.close", tooltip="Close the task log."),
    ]

    app: LabdeckApp

    def __init__(self, task: TaskRow, running_time: RunningTime) -> None:
        super().__init__()
        self.task_row = task
        self.running_time = running_time
        self.status: TaskStatus | None = None
        self.next_line = 0
        self.polls = 0
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        task = self.task_row
        where = f" {task.id}" if task.id else ""
        with Vertical(id="task-log-dialog"):
            yield Static(f"{task.type}{where} on {task.node} · {task.user}",
                         id="task-log-title", markup=False)  # fmt: skip
            yield Static("", id="task-log-state", markup=False)
            yield Static(task.upid, id="task-log-upid", markup=False)
            yield RichLog(id="task-log-lines", wrap=True, max_lines=20_000)
            yield Static("esc: close", id="task-log-keys", markup=False)

    def on_mount(self) -> None:
        self._show_state()
        self.run_worker(self._poll(), group="task-log", exclusive=True, exit_on_error=False)

    @property
    def finished(self) -> bool:
        return self.status is not None and self.status.status == "stopped"

    async def _poll(self) -> None:
        """Status first, then the new log lines: a stopped task's log is then complete."""
        self.polls += 1
        service = self.app.service
        try:
            status = await service.call(
                "pve_task_status", {"upid": self.task_row.upid, "log_lines": 0}
            )
            assert isinstance(status, TaskStatus)
            self.status = status
            for _ in range(20):  # at most 10,000 new lines per poll
                params = {"upid": self.task_row.upid, "start": self.next_line, "limit": LOG_PAGE}
                page = await service.call("pve_task_log", params)
                assert isinstance(page, TaskLog)
                self._append(page.lines)
                if page.next_start is None:
                    break
        except LabdeckError as exc:
            self.error = str(exc)
        else:
            self.error = None
        self._show_state()
        if not self.finished and self.error is None and self.polls < FOLLOW_POLLS:
            self.set_timer(POLL_S, self._poll_again)

    def _poll_again(self) -> None:
        self.run_worker(self._poll(), group="task-log", exclusive=True, exit_on_error=False)

    def _append(self, lines: list[str]) -> None:
        log = self.query_one(RichLog)
        for line in lines:
            style = "bold red" if line.startswith("TASK ERROR") else (
                "green" if line == "TASK OK" else "")  # fmt: skip
            log.write(Text(line, style=style))
        self.next_line += len(lines)

    def _show_state(self) -> None:
        task, status = self.task_row, self.status
        tz = self.app.clock().tzinfo
        started = local_time(task.starttime, tz, "%Y-%m-%d %H:%M:%S")
        state = self.query_one("#task-log-state", Static)
        if self.error is not None:
            state.update(Text(f"Cannot read the task: {self.error}", style="bold red"))
        elif status is None or status.status != "stopped":
            took = self.running_time.elapsed(task.upid, task.starttime)
            line = status_cell("running", None, took, self.polls)
            line.append(f" · started {started}")
            if self.polls >= FOLLOW_POLLS:
                line.append(" · stopped following; reopen to read on", style="dim")
            state.update(line)
        else:
            line = status_cell("stopped", status.exitstatus, 0, 0)
            line.append(f" · started {started}")
            if task.endtime:  # known when the list showed it ended
                line.append(f" · took {duration(task.endtime - task.starttime)}")
            state.update(line)
