"""One guest in full: summary with sparklines, config, snapshot tree, backups, graphs.

Opened with Enter on a guest of the dashboard, closed with Escape. Each tab loads in a
worker of its own and shows a failure as text in place. The actions (snapshot, roll back,
delete a snapshot, back up, clone, migrate) go through the same core call as every other
face: the forms check their input with the operation's params model, the policy refuses
what it refuses before anything is sent, disruptive ones ask first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane, Tree
from textual.widgets.tree import TreeNode

from core.errors import LabdeckError, PolicyDenied
from core.models import Guest, Table
from core.ops import get_operation
from core.pve_results import GuestConfig, Metrics, SnapshotInfo, SnapshotList
from core.service import Labdeck
from tui.formatting import guest_label, short_bytes, status_text, uptime
from tui.screens.confirm import ConfirmScreen
from tui.screens.forms import FORMS, TaskProgress, failure_text, policy_refusal
from tui.screens.forms import run_with_progress as run_op
from tui.widgets.graphs import Chart, MetricRow, MetricsGraphs, Unit, next_timeframe
from tui.widgets.guest_detail import detail_view

if TYPE_CHECKING:
    from tui.app import LabdeckApp

TABS = ("summary", "config", "snapshots", "backups", "graphs")
#: config keys whose values are secrets (cloud-init password, ...): never shown
SECRET_KEY = re.compile(r"password|passwd|secret|token|passphrase", re.IGNORECASE)
MASK = "•••••• (hidden)"
SUMMARY_ROWS: tuple[tuple[str, str, Unit], ...] = (
    ("cpu", "CPU", "percent"),
    ("mem", "Memory", "bytes"),
    ("diskread", "Disk read", "rate"),
    ("diskwrite", "Disk write", "rate"),
    ("netin", "Net in", "rate"),
    ("netout", "Net out", "rate"),
)
GUEST_CHARTS = (
    Chart("CPU", (("cpu", "cpu"),), "percent"),
    Chart("Memory", (("mem", "used"),), "bytes"),
    Chart("Network", (("netin", "in"), ("netout", "out")), "rate"),
)
BACKUP_COLUMNS = (
    ("volid", "Volume"),
    ("date", "Date"),
    ("size", "Size"),
    ("format", "Format"),
    ("notes", "Notes"),
)


# ---------------------------------------------------------------------- pure views


def header_text(guest: Guest) -> Text:
    """``pihole  CT 100 on pve1 · running · up 7d16h · tags dns, infra · pool infra``."""
    kind = "VM" if guest.kind == "qemu" else "CT"
    text = Text(guest.name, style="bold")
    text.append(f"  {kind} {guest.vmid} on {guest.node} · ")
    text.append_text(status_text("template" if guest.template else guest.status))
    text.append(f" · up {uptime(guest.uptime)}")
    text.append(f" · tags {', '.join(guest.tags) or '-'} · pool {guest.pool or '-'}")
    if guest.lock:
        text.append(f" · locked: {guest.lock}", style="yellow")
    return text


def config_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Key/value pairs a person reads, sorted by key; secret values masked."""
    rows: list[tuple[str, str]] = []
    for key in sorted(config):
        value = config[key]
        shown = MASK if SECRET_KEY.search(key) else " ⏎ ".join(str(value).splitlines())
        rows.append((key, shown))
    return rows


def when(unix_time: int | None, zone: tzinfo | None) -> str:
    if not unix_time:
        return "-"
    return datetime.fromtimestamp(unix_time, tz=zone).strftime("%Y-%m-%d %H:%M")


def snapshot_label(snap: SnapshotInfo, zone: tzinfo | None) -> Text:
    text = Text(snap.name, style="bold")
    text.append(f"  {when(snap.snaptime, zone)}", style="dim")
    if snap.vmstate:
        text.append("  +RAM", style="yellow")
    if snap.description:
        text.append(f"  {snap.description.splitlines()[0]}")
    return text


NOW_LABEL = Text.assemble(("NOW", "bold green"), ("  the guest's current state", "dim"))


def backup_cells(row: Mapping[str, Any], zone: tzinfo | None) -> tuple[str, ...]:
    size = row.get("size")
    return (
        str(row.get("volid") or "-"),
        when(row.get("ctime"), zone),
        short_bytes(int(size)) if isinstance(size, int | float) else "-",
        str(row.get("format") or "-"),
        str(row.get("notes") or ""),
    )


# ---------------------------------------------------------------------- the screen


class GuestScreen(Screen[None]):
    """``GuestScreen(guest)``: the detail of one guest (followed by vmid across moves)."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="detail.close",
                tooltip="Close the guest detail (back to the dashboard)."),
        Binding("1", "tab('summary')", "Summary", id="detail.summary", show=False,
                tooltip="Guest detail: the summary with the last hour's sparklines."),
        Binding("2", "tab('config')", "Config", id="detail.config", show=False,
                tooltip="Guest detail: the configuration (secrets hidden)."),
        Binding("3", "tab('snapshots')", "Snapshots", id="detail.snapshots", show=False,
                tooltip="Guest detail: the snapshot tree."),
        Binding("4", "tab('backups')", "Backups", id="detail.backups", show=False,
                tooltip="Guest detail: this guest's backup archives."),
        Binding("5", "tab('graphs')", "Graphs", id="detail.graphs", show=False,
                tooltip="Guest detail: CPU, memory and network graphs."),
        Binding("t", "timeframe", "Hour/day/week", id="detail.timeframe",
                tooltip="Graphs: switch between the last hour, day and week."),
        Binding("s", "form('snapshot')", "Snapshot", id="detail.snapshot",
                tooltip="Take a snapshot (name, description, RAM for running VMs)."),
        Binding("r", "rollback", "Roll back", id="detail.rollback",
                tooltip="Roll back to the snapshot under the cursor (asks first)."),
        Binding("d", "delete_snapshot", "Delete snap", id="detail.delete_snapshot",
                tooltip="Delete the snapshot under the cursor (asks first)."),
        Binding("b", "form('backup')", "Backup", id="detail.backup",
                tooltip="Back the guest up now (vzdump) to a backup storage."),
        Binding("c", "form('clone')", "Clone", id="detail.clone",
                tooltip="Clone the guest to a new vmid (full or linked), on any node."),
        Binding("m", "form('migrate')", "Migrate", id="detail.migrate",
                tooltip="Move the guest to another online node (live for running VMs)."),
        Binding("ctrl+r,f5", "reload", "Reload", id="detail.reload", show=False,
                tooltip="Fetch the guest's detail again."),
    ]  # fmt: skip

    app: LabdeckApp

    def __init__(self, guest: Guest) -> None:
        super().__init__()
        self.guest = guest
        self.graphs_loaded = False

    @property
    def service(self) -> Labdeck:
        return self.app.service

    @property
    def zone(self) -> tzinfo | None:
        return self.app.clock().tzinfo

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(header_text(self.guest), id="detail-header")
        with TabbedContent(id="detail-tabs", initial="summary"):
            with TabPane("Summary", id="summary"), VerticalScroll(id="summary-view"):
                yield Static(detail_view(self.guest), id="summary-detail")
                yield Static("Last hour", id="summary-status", classes="tab-status")
                for name, label, unit in SUMMARY_ROWS:
                    yield MetricRow(name, label, unit)
            with TabPane("Config", id="config"), Vertical():
                yield Static(
                    "Loading the configuration…",
                    id="config-status",
                    classes="tab-status",
                    markup=False,
                )
                yield DataTable(id="config-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Snapshots", id="snapshots"), Vertical():
                yield Static(
                    "Loading snapshots…", id="snapshots-status", classes="tab-status", markup=False
                )
                yield Tree[str | None](Text(guest_label(self.guest)), id="snapshot-tree")
            with TabPane("Backups", id="backups"), Vertical():
                yield Static(
                    "Loading backups…", id="backups-status", classes="tab-status", markup=False
                )
                yield DataTable(id="backup-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Graphs", id="graphs"):
                yield MetricsGraphs(GUEST_CHARTS, self._fetch_metrics, self.zone, id="guest-graphs")
        yield TaskProgress(id="detail-task")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#config-table", DataTable).add_columns("Key", "Value")
        self.query_one("#backup-table", DataTable).add_columns(
            *(label for _, label in BACKUP_COLUMNS)
        )
        self.query_one("#snapshot-tree", Tree).show_root = False
        self.reload()

    # ------------------------------------------------------------------ loading

    def reload(self) -> None:
        """Fetch every tab again (the graphs only once they have been looked at)."""
        for loader in (
            self.load_guest,
            self.load_summary,
            self.load_config,
            self.load_snapshots,
            self.load_backups,
        ):
            self.run_worker(
                loader(), group=f"detail-{loader.__name__}", exclusive=True, exit_on_error=False
            )
        if self.graphs_loaded:
            self.run_worker(
                self.query_one(MetricsGraphs).load(),
                group="detail-graphs",
                exclusive=True,
                exit_on_error=False,
            )

    async def _guarded(
        self, status_id: str, fetch: Callable[[], Awaitable[BaseModel]]
    ) -> BaseModel | None:
        """The fetched model, or None with the error shown in the tab's status line."""
        try:
            return await fetch()
        except LabdeckError as exc:
            status = self.query_one(f"#{status_id}", Static)
            status.update(f"Unavailable: {exc}")
            status.add_class("-error")
            return None

    async def load_guest(self) -> None:
        try:
            guest = await self.service.find_guest(self.guest.vmid)
        except LabdeckError as exc:
            self.query_one("#detail-header", Static).update(
                Text(f"{guest_label(self.guest)}: {exc}", style="bold red")
            )
            return
        self.guest = guest
        self.query_one("#detail-header", Static).update(header_text(guest))
        self.query_one("#summary-detail", Static).update(detail_view(guest))

    async def load_summary(self) -> None:
        metrics = await self._guarded("summary-status", lambda: self._fetch_metrics("hour"))
        if isinstance(metrics, Metrics):
            for row in self.query(MetricRow):
                row.show(metrics)

    async def _fetch_metrics(self, timeframe: str) -> Metrics:
        result = await self.service.call(
            "pve_guest_metrics", {"vmid": self.guest.vmid, "timeframe": timeframe}
        )
        assert isinstance(result, Metrics)
        return result

    async def load_config(self) -> None:
        result = await self._guarded(
            "config-status",
            lambda: self.service.call("pve_guest_config", {"vmid": self.guest.vmid}),
        )
        if not isinstance(result, GuestConfig):
            return
        table = self.query_one("#config-table", DataTable)
        table.clear()
        for key, value in config_rows(result.config):
            table.add_row(key, value, key=key)
        digest = f" · digest {result.digest[:12]}" if result.digest else ""
        self._status("config-status", f"{len(result.config)} keys{digest}")

    async def load_snapshots(self) -> None:
        result = await self._guarded(
            "snapshots-status",
            lambda: self.service.call("pve_list_snapshots", {"vmid": self.guest.vmid}),
        )
        if not isinstance(result, SnapshotList):
            return
        self.show_snapshots(result)

    def show_snapshots(self, listing: SnapshotList) -> None:
        """The tree by ``parent`` links (depth first), NOW under the current parent."""
        tree = self.query_one("#snapshot-tree", Tree)
        keep = self.selected_snapshot or listing.current_parent
        tree.clear()
        nodes: dict[str, TreeNode[str | None]] = {}
        parents = {s.parent for s in listing.snapshots} | {listing.current_parent}
        for snap in listing.snapshots:
            parent = nodes.get(snap.parent or "", tree.root)
            label = snapshot_label(snap, self.zone)
            nodes[snap.name] = (
                parent.add(label, data=snap.name, expand=True)
                if snap.name in parents
                else parent.add_leaf(label, data=snap.name)
            )
        nodes.get(listing.current_parent or "", tree.root).add_leaf(NOW_LABEL, data=None)
        tree.root.expand()
        count = len(listing.snapshots)
        self._status(
            "snapshots-status",
            f"{count} snapshot{'s' * (count != 1)} · s take · r roll back · d delete"
            if count
            else "No snapshots yet · s takes one",
        )
        if keep in nodes:
            self.call_after_refresh(tree.move_cursor, nodes[keep])

    async def load_backups(self) -> None:
        result = await self._guarded(
            "backups-status",
            lambda: self.service.call("pve_list_backups", {"vmid": self.guest.vmid}),
        )
        if not isinstance(result, Table):
            return
        table = self.query_one("#backup-table", DataTable)
        table.clear()
        for row in result.rows:
            item = dict(zip(result.columns, row, strict=True))
            table.add_row(*backup_cells(item, self.zone), key=str(item.get("volid")))
        count = len(result.rows)
        self._status(
            "backups-status",
            f"{count} backup{'s' * (count != 1)}, newest first · b backs up now"
            if count
            else "No backups of this guest · b backs it up now",
        )

    def _status(self, status_id: str, text: str) -> None:
        status = self.query_one(f"#{status_id}", Static)
        status.update(text)
        status.remove_class("-error")

    # ------------------------------------------------------------------ navigation

    @property
    def active_tab(self) -> str:
        return self.query_one("#detail-tabs", TabbedContent).active or "summary"

    def action_tab(self, tab: str) -> None:
        self.query_one("#detail-tabs", TabbedContent).active = tab

    @on(TabbedContent.TabActivated, "#detail-tabs")
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        focus = {
            "config": "#config-table",
            "snapshots": "#snapshot-tree",
            "backups": "#backup-table",
        }
        if event.pane.id in focus:
            self.query_one(focus[event.pane.id]).focus()
        if event.pane.id == "graphs" and not self.graphs_loaded:
            self.graphs_loaded = True
            self.run_worker(
                self.query_one(MetricsGraphs).load(),
                group="detail-graphs",
                exclusive=True,
                exit_on_error=False,
            )
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "timeframe":
            return self.active_tab == "graphs"
        if action in ("rollback", "delete_snapshot"):
            if self.active_tab != "snapshots":
                return False
            return True if self.selected_snapshot else None
        return True

    @on(Tree.NodeHighlighted, "#snapshot-tree")
    def _snapshot_highlighted(self) -> None:
        self.refresh_bindings()

    def action_timeframe(self) -> None:
        graphs = self.query_one(MetricsGraphs)
        self.run_worker(
            graphs.load(next_timeframe(graphs.timeframe)),
            group="detail-graphs",
            exclusive=True,
            exit_on_error=False,
        )

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.app.action_refresh()
        self.reload()

    # ------------------------------------------------------------------ actions

    @property
    def selected_snapshot(self) -> str | None:
        node = self.query_one("#snapshot-tree", Tree).cursor_node
        return node.data if node is not None and isinstance(node.data, str) else None

    def action_form(self, name: str) -> None:
        """Open the action's form, unless the policy refuses the operation anyway."""
        form = FORMS[name](self.guest)
        refusal = policy_refusal(self.app.service, form.OPERATION, self.guest)
        if refusal is not None:
            self.notify(refusal, title=f"{form.TITLE}: refused", severity="warning", timeout=8)
            return
        self.app.push_screen(form, self._form_done)

    def _form_done(self, result: BaseModel | None) -> None:
        if result is None:
            return
        message = str(getattr(result, "message", "done."))
        self.query_one(TaskProgress).finish(message)
        self.notify(message, title=guest_label(self.guest), timeout=6)
        self.app.action_refresh()
        self.reload()

    def action_rollback(self) -> None:
        self._snapshot_action(
            "pve_rollback_snapshot",
            "Roll back",
            "Everything since the snapshot (disk and config) is lost; a "
            "running guest is stopped first.",
        )

    def action_delete_snapshot(self) -> None:
        self._snapshot_action(
            "pve_delete_snapshot",
            "Delete snapshot",
            "Its data can no longer be rolled back to; the guest and its other snapshots stay.",
        )

    def _snapshot_action(self, op_name: str, verb: str, consequence: str) -> None:
        """Like the dashboard's power actions: disruptive, so a person confirms first
        (unless the policy refuses it anyway: then that refusal is what they see)."""
        snapname = self.selected_snapshot
        if snapname is None:
            self.notify("Put the cursor on a snapshot first.", timeout=4)
            return
        op = get_operation(op_name)
        params = {"vmid": self.guest.vmid, "snapname": snapname}
        doing = f"{verb} {snapname!r}"
        if not (op.confirm and self.app.service.policy.allow_writes):
            self.run_snapshot_action(op_name, params, doing, confirmed=not op.confirm)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_snapshot_action(op_name, params, doing, confirmed=True)
            else:
                self.notify(f"{doing}: cancelled.", timeout=3)

        question = (
            f"Roll back {self.guest.name} to snapshot {snapname!r}?"
            if op_name == "pve_rollback_snapshot"
            else f"Delete snapshot {snapname!r} of {self.guest.name}?"
        )
        detail = f"{guest_label(self.guest)} on {self.guest.node}, now {self.guest.status}.\n"
        self.app.push_screen(ConfirmScreen(question, detail + consequence, verb), answered)

    @work(group="detail-action", exit_on_error=False)
    async def run_snapshot_action(
        self, op_name: str, params: dict[str, Any], doing: str, *, confirmed: bool
    ) -> None:
        panel = self.query_one(TaskProgress)
        try:
            result = await run_op(
                self.app.service, op_name, params, confirmed=confirmed, panel=panel, doing=doing
            )
        except PolicyDenied as exc:
            panel.finish(str(exc), error=True)
            self.notify(str(exc), title=f"{doing}: refused", severity="warning", timeout=8)
            return
        except LabdeckError as exc:
            panel.finish(failure_text(exc), error=True)
            self.notify(str(exc), title=f"{doing}: failed", severity="error", timeout=10)
        else:
            self._form_done(result)
            return
        self.reload()
