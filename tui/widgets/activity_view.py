"""The Activity view: every call any face records in the audit log, as it happens.

An agent driving ``labdeck mcp`` from another process writes one JSON line per tool call
(reads too, marked as such); so do ``labdeck call`` and this dashboard's writes. This view
follows that file like ``tail -F``: it polls the file's size (a stat, no request to any
cluster, which is why it is not a ``LazyView``), reads only what was appended, starts over
when the file is truncated or replaced (rotation), waits quietly while it does not exist,
and keeps the last ``max_rows`` rows, newest at the bottom. Enter on a row that touched a
guest shows that guest in the Guests view.

Everything shown is passed through ``core.textsafe.printable``: error messages quote what
servers and guests said, and a line of the file must never drive the terminal.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from core.textsafe import printable

if TYPE_CHECKING:
    from tui.app import LabdeckApp

MAX_ROWS = 1000
POLL_S = 0.25
#: at start, only the end of a long log is read (whole lines from there on)
TAIL_BYTES = 1 << 20
#: at most this much is read per poll, so a burst never stalls the screen
READ_CHUNK = 1 << 20
OUTCOME_STYLES = {"ok": "green", "refused": "bold yellow", "error": "bold red"}
COLUMNS = (
    ("time", "Time"),
    ("face", "Face"),
    ("profile", "Profile"),
    ("access", "Access"),
    ("operation", "Operation"),
    ("target", "Target"),
    ("outcome", "Outcome"),
)
#: parameters that name what a call is about, in the order they are looked for
_TARGET_PARAMS = ("snapshot", "dataset", "path", "username", "poolid", "pool", "upid", "name")
_GUEST_TARGET = re.compile(r"^(?:qemu|lxc)/(\d+)\b")


def _cell(value: Any, limit: int = 60) -> str:
    text = printable("" if value is None else str(value), multiline=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One audit line, as the table shows it."""

    time: str
    face: str
    profile: str
    access: str
    operation: str
    target: str
    outcome: str
    detail: str
    vmid: int | None

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> ActivityRow:
        params = entry.get("params") if isinstance(entry.get("params"), dict) else {}
        assert isinstance(params, dict)
        target = str(entry.get("target") or "")
        vmid = params.get("vmid") if isinstance(params.get("vmid"), int) else None
        found = _GUEST_TARGET.match(target)
        if vmid is None and found:
            vmid = int(found.group(1))
        if not target and vmid is not None:
            target = f"guest {vmid}"
        if not target:
            target = next((str(params[k]) for k in _TARGET_PARAMS if params.get(k)), "")
        outcome = str(entry.get("outcome") or "?")
        detail = str(entry.get("message") or entry.get("error") or entry.get("upid") or "")
        return cls(
            time=str(entry.get("time") or "")[11:19],
            face=str(entry.get("face") or "?"),
            profile=str(entry.get("profile") or ""),
            access=str(entry.get("access") or "write"),
            operation=str(entry.get("operation") or "?"),
            target=target,
            outcome=outcome,
            detail=detail,
            vmid=vmid,
        )

    def cells(self) -> list[str | Text]:
        dim = "dim" if self.access == "read" else ""
        return [
            Text(self.time, style="dim"),
            _cell(self.face),
            _cell(self.profile, 16),
            Text(_cell(self.access), style=dim),
            _cell(self.operation, 28),
            _cell(self.target, 32),
            Text(_cell(self.outcome, 12), style=OUTCOME_STYLES.get(self.outcome, "")),
        ]


class LogFollower:
    """Reads what was appended to a file since the last call; survives rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode: int | None = None
        self._offset = 0
        self._pending = b""
        self.bad_lines = 0

    def read_new(self) -> list[dict[str, Any]] | None:
        """New entries (possibly none), or None when the file does not exist."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._inode = None
            return None
        if self._inode is None:  # first sight of this file: only its end
            start = max(0, info.st_size - TAIL_BYTES)
            self._inode, self._offset, self._pending = info.st_ino, start, b""
            if start:
                self._skip_partial_line()
        elif info.st_ino != self._inode or info.st_size < self._offset:
            # replaced (rotated) or truncated: read the new file from its start
            self._inode, self._offset, self._pending = info.st_ino, 0, b""
        if info.st_size <= self._offset:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(min(READ_CHUNK, info.st_size - self._offset))
        self._offset += len(chunk)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [entry for entry in map(self._parse, lines) if entry is not None]

    def _skip_partial_line(self) -> None:
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            rest = fh.readline()
        self._offset += len(rest)

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            entry = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return None
        return entry if isinstance(entry, dict) else None


class ActivityTable(DataTable[str | Text]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)


class ActivityView(Vertical):
    """The audit log, live. ``path`` None: the dashboard runs without an audit log."""

    app: LabdeckApp

    def __init__(
        self,
        path: Path | None,
        *,
        max_rows: int = MAX_ROWS,
        poll_s: float = POLL_S,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.path = path
        self.max_rows = max_rows
        self.poll_s = poll_s
        self.follower = LogFollower(path) if path is not None else None
        self.rows: deque[tuple[str, ActivityRow]] = deque()
        self._serial = 0

    def compose(self) -> ComposeResult:
        yield Static(id="activity-status", classes="activity-status")
        yield ActivityTable(id="activity-table")
        yield Static(id="activity-detail", classes="activity-detail")

    @property
    def table(self) -> ActivityTable:
        return self.query_one(ActivityTable)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.table.add_column(label, key=key)
        status = self.query_one("#activity-status", Static)
        if self.path is not None:
            status.tooltip = str(self.path)
        self.poll()
        if self.follower is not None:
            self.set_interval(self.poll_s, self.poll)

    def focus_target(self) -> ActivityTable:
        return self.table

    # ------------------------------------------------------------------ following

    def poll(self) -> None:
        """Show what was appended since the last poll (called by the timer)."""
        if self.follower is None:
            self._status("No audit log: this dashboard was started without one.")
            return
        entries = self.follower.read_new()
        if entries is None:
            self._status(
                f"{self.path.name if self.path else ''} does not exist yet: calls of every "
                "face (agents through labdeck mcp too) appear here once one is made."
            )
            return
        if entries:
            self.add_entries(entries)
        elif not self.rows:
            self._status("No calls recorded yet.")

    def add_entries(self, entries: list[dict[str, Any]]) -> None:
        table = self.table
        following = not table.row_count or table.cursor_row >= table.row_count - 1
        for entry in entries[-self.max_rows :]:
            self._serial += 1
            key = str(self._serial)
            row = ActivityRow.from_entry(entry)
            self.rows.append((key, row))
            table.add_row(*row.cells(), key=key)
        while len(self.rows) > self.max_rows:
            old_key, _ = self.rows.popleft()
            table.remove_row(old_key)
        if following:
            table.move_cursor(row=table.row_count - 1, animate=False)
            self._show_detail(self.rows[-1][1])
        bad = self.follower.bad_lines if self.follower else 0
        skipped = f" · {bad} unreadable line(s) skipped" if bad else ""
        self._status(
            f"{len(self.rows)} call(s), newest at the bottom · enter on a guest's row shows "
            f"it{skipped}"
        )

    def _status(self, text: str) -> None:
        self.query_one("#activity-status", Static).update(text)

    # ------------------------------------------------------------------ rows

    def row_for(self, key: str | None) -> ActivityRow | None:
        return next((row for k, row in self.rows if k == key), None) if key else None

    def _show_detail(self, row: ActivityRow | None) -> None:
        detail = self.query_one("#activity-detail", Static)
        detail.update(Text(_cell(row.detail, 400)) if row is not None and row.detail else "")

    @on(DataTable.RowHighlighted, "#activity-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(self.row_for(event.row_key.value))

    @on(DataTable.RowSelected, "#activity-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        row = self.row_for(event.row_key.value)
        if row is None:
            return
        if row.vmid is None:
            self.notify(f"{row.operation} did not touch a guest.", timeout=3)
            return
        self.app.select_guest(row.vmid)
