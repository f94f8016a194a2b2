"""The right side of the TrueNAS view: snapshots, shares, apps and alerts, one tab each.

Each is filled from one ``truenas_*`` listing (a ``Table``: columns + rows) and kept in step
row by row (``KeyedTable.sync_rows``). The apps table starts and stops the app under the
cursor through the same write path as the guests' power keys: policy, confirmation, audit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table as RichTable
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from core.models import Table
from tui.data import WriteRequest
from tui.formatting import STATUS_STYLES, short_bytes, status_text
from tui.widgets.keyed_table import Cell, KeyedTable
from tui.widgets.truenas_guests import records

if TYPE_CHECKING:
    from tui.app import LabdeckApp


def when(value: Any) -> str:
    """``2025-10-31T16:30:00+00:00`` -> ``2025-10-31 16:30`` (TrueNAS's own time zone)."""
    text = str(value or "")
    return text[:16].replace("T", " ") if len(text) >= 16 else text or "-"


def _size(value: Any) -> str:
    return short_bytes(int(value)) if isinstance(value, int) else "-"


class SnapshotTable(KeyedTable):
    """Snapshots of the chosen dataset and below it, oldest first per dataset."""

    COLUMNS = (
        ("snapshot", "Snapshot"),
        ("created", "Created"),
        ("used", "Used"),
        ("referenced", "Refer"),
    )

    def show(self, listing: Table, dataset: str) -> None:
        rows: dict[str, tuple[Cell, ...]] = {}
        for row in records(listing):
            name = str(row["name"])
            # relative to the chosen dataset: "auto-…" for its own, "alice@auto-…" below it
            own, _, snap = name.partition("@")
            shown = snap if own == dataset else f"{own.removeprefix(dataset + '/')}@{snap}"
            rows[name] = (
                shown,
                when(row.get("created")),
                _size(row.get("used")),
                _size(row.get("referenced")),
            )
        self.sync_rows(rows, keep=self.current_key)


class ShareTable(KeyedTable):
    """SMB and NFS shares: what is shared, where from, to whom."""

    COLUMNS = (
        ("kind", "Kind"),
        ("name", "Name"),
        ("path", "Path"),
        ("clients", "Clients"),
        ("mode", "Mode"),
        ("comment", "Comment"),
    )

    def show(self, listing: Table) -> None:
        rows: dict[str, tuple[Cell, ...]] = {}
        for row in records(listing):
            kind = str(row["kind"])
            mode = Text("ro" if row.get("readonly") else "rw")
            if not row.get("enabled", True):
                mode = Text("off", style="dim")
            name = str(row.get("name") or "") if kind == "smb" else "-"
            rows[f"{kind}:{row['id']}"] = (
                kind.upper(),
                name,
                str(row.get("path") or ""),
                str(row.get("clients") or "any"),
                mode,
                str(row.get("comment") or ""),
            )
        self.sync_rows(rows, keep=self.current_key)


APP_ACTIONS = {
    # action: (operation, verb, doing)
    "start": ("truenas_start_app", "Start", "starting"),
    "stop": ("truenas_stop_app", "Stop", "stopping"),
}


class AppTable(KeyedTable):
    """Installed apps; S starts and K stops the one under the cursor (K asks first)."""

    BINDINGS = [
        Binding("S", "app_power('start')", "Start app", id="truenas.app_start",
                tooltip="Start the selected TrueNAS app."),
        Binding("K", "app_power('stop')", "Stop app", id="truenas.app_stop",
                tooltip="Stop the selected TrueNAS app (asks first)."),
    ]  # fmt: skip

    COLUMNS = (
        ("name", "App"),
        ("state", "State"),
        ("version", "Version"),
        ("update", "Update"),
        ("portal", "Portal"),
    )

    app: LabdeckApp

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.apps: dict[str, dict[str, Any]] = {}
        #: the TrueNAS host name, for the confirmation's wording
        self.host = "TrueNAS"

    @property
    def selected(self) -> dict[str, Any] | None:
        key = self.current_key
        return None if key is None else self.apps.get(key)

    def show(self, listing: Table) -> None:
        self.apps = {str(row["name"]): row for row in records(listing)}
        rows: dict[str, tuple[Cell, ...]] = {}
        for name, row in self.apps.items():
            portals = row.get("portals") or []
            rows[name] = (
                name,
                status_text(str(row.get("state") or "")),
                str(row.get("version") or ""),
                Text("available", style="yellow") if row.get("upgrade_available") else "",
                str(portals[0]) if portals else "",
            )
        self.sync_rows(rows, keep=self.current_key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "app_power" and self.selected is None:
            return None
        return True

    def app_request(self, action: str, app: dict[str, Any]) -> WriteRequest:
        operation, verb, doing = APP_ACTIONS[action]
        name = str(app["name"])
        state = str(app.get("state") or "unknown").lower()
        return WriteRequest(
            operation=operation,
            params={"name": name},
            verb=verb,
            doing=doing,
            label=f"app {name}",
            question=f"{verb} app {name}?",
            detail=f"TrueNAS app {name} on {self.host}, now {state}.",
            key=(action, f"app:{name}"),
        )

    def action_app_power(self, action: str) -> None:
        app = self.selected
        if app is not None:
            self.app.request_write(self.app_request(action, app))


def alerts_view(listing: Table) -> RichTable | Text:
    """Worst first (the operation's order); the text wraps, the level has its colour."""
    rows = records(listing)
    if not rows:
        return Text("No alerts.", style="dim italic")
    grid = RichTable.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True, style="dim")
    for row in rows:
        level = str(row.get("level") or "")
        grid.add_row(
            Text(level, style=STATUS_STYLES.get(level, "")),
            str(row.get("text") or ""),
            when(row.get("datetime")),
        )
    return grid


class AlertList(Static):
    """Active alerts, level-coloured, text wrapped to the pane."""

    def show(self, listing: Table) -> None:
        self.update(alerts_view(listing))
