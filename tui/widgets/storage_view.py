"""The Storage view: every storage of every node, and what one of them holds.

One row per (node, storage): a shared storage (NFS, Ceph, ...) shows once per node that
mounts it, because "is it full / is it active" is a per-node question. The rows come from
``pve_list_storage`` (one call per node, all served from the cached ``/cluster/resources``
read); Enter reads ``pve_storage_content`` of the highlighted storage into a second table
below, which ``b`` / ``i`` / ``v`` / ``a`` filter without asking the server again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Static

from core.errors import LabdeckError
from core.models import Table
from tui.formatting import percent, short_bytes, used_of
from tui.widgets.graphs import load_colour
from tui.widgets.keyed_table import Cell, KeyedTable
from tui.widgets.lazy_view import LazyView

BAR_WIDTH = 10
#: filter key -> (content types shown, how the title names them)
CONTENT_FILTERS: dict[str, tuple[frozenset[str], str]] = {
    "all": (frozenset(), "all content"),
    "backup": (frozenset({"backup"}), "backups"),
    "iso": (frozenset({"iso"}), "ISO images"),
    "images": (frozenset({"images", "rootdir"}), "disk images"),
}
FILTER_KEYS = "b backups · i ISOs · v disk images · a all · esc close"


def rows_of(table: Table) -> list[dict[str, Any]]:
    """A catalogue ``Table`` as one dict per row, by column name."""
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def local_time(epoch: int, tz: tzinfo | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A Unix time in the dashboard clock's time zone (UTC in tests, local otherwise).

    The local clock's zone is a fixed offset (today's); the system's own zone rules are
    used for it instead, so a backup from before a DST change shows the hour it had then.
    """
    if tz is None or tz == datetime.now().astimezone().tzinfo:
        return datetime.fromtimestamp(epoch).strftime(fmt)
    return datetime.fromtimestamp(epoch, tz).strftime(fmt)


def usage_bar(used: int, total: int) -> Text:
    """``███░░░░░░░ 31.2%``: green, yellow from 70 %, red from 90 %."""
    if total <= 0:
        return Text("-")
    fraction = min(max(used / total, 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    style = load_colour(fraction)
    bar = Text("█" * filled, style=style)
    bar.append("░" * (BAR_WIDTH - filled), style="dim")
    bar.append(f" {percent(fraction):>6}")
    return bar


@dataclass(frozen=True, slots=True)
class StorageRow:
    """One storage as one node sees it."""

    storage: str
    node: str
    type: str
    content: str
    shared: bool
    status: str
    used: int
    total: int

    @property
    def key(self) -> str:
        return f"{self.node}/{self.storage}"

    def cells(self) -> tuple[Cell, ...]:
        active = self.status == "available"
        state = (
            Text("active", style="green")
            if active
            else Text(self.status or "unknown", style="bold red")
        )
        return (
            self.storage,
            self.node,
            self.type,
            state,
            "shared" if self.shared else "local",
            usage_bar(self.used, self.total),
            used_of(self.used, self.total),
            ",".join(sorted(self.content.split(","))) if self.content else "-",
        )


class StorageTable(KeyedTable):
    COLUMNS = (
        ("storage", "Storage"),
        ("node", "Node"),
        ("type", "Type"),
        ("status", "Status"),
        ("shared", "Shared"),
        ("usage", "Usage"),
        ("used", "Used/Total"),
        ("content", "Content"),
    )
    initial_sort = ("node", False)

    def after_sync(self) -> None:
        self.sort("node", "storage")


class ContentTable(KeyedTable):
    COLUMNS = (
        ("volid", "Volume"),
        ("content", "Content"),
        ("format", "Format"),
        ("size", "Size"),
        ("vmid", "VMID"),
        ("date", "Created"),
    )
    initial_sort = ("volid", False)

    def after_sync(self) -> None:
        self.sort_rows(lambda key: key)


def content_cells(volume: Mapping[str, Any], tz: tzinfo | None) -> tuple[Cell, ...]:
    ctime = volume.get("ctime")
    return (
        str(volume.get("volid")),
        str(volume.get("content") or "-"),
        str(volume.get("format") or "-"),
        short_bytes(int(volume.get("size") or 0)),
        str(volume.get("vmid") or ""),
        local_time(int(ctime), tz) if ctime else "",
    )


class StorageView(LazyView):
    """Storages per node; Enter opens the highlighted one's content below."""

    BINDINGS = [
        Binding("b", "content('backup')", "Backups", id="storage.backups",
                tooltip="Show the backups on the selected storage."),
        Binding("i", "content('iso')", "ISOs", id="storage.iso",
                tooltip="Show the ISO images on the selected storage."),
        Binding("v", "content('images')", "Disk images", id="storage.images",
                tooltip="Show the VM and container disks on the selected storage."),
        Binding("a", "content('all')", "All content", id="storage.all",
                tooltip="Show everything on the selected storage."),
        Binding("escape", "close_content", "Close content", id="storage.close", show=False,
                tooltip="Close the storage content table."),
    ]  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.storages: dict[str, StorageRow] = {}
        #: the storage whose content is shown (None: the content table is closed)
        self.opened: StorageRow | None = None
        self.content_filter = "all"
        self.volumes: list[dict[str, Any]] = []
        self._content_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Reading storages…", id="storage-status", markup=False)
        yield StorageTable(id="storage-table")
        yield Static("", id="storage-content-title", markup=False)
        yield ContentTable(id="storage-content")

    @property
    def table(self) -> StorageTable:
        return self.query_one(StorageTable)

    @property
    def content_table(self) -> ContentTable:
        return self.query_one(ContentTable)

    def focus_target(self) -> Widget:
        return self.table

    @property
    def _tz(self) -> tzinfo | None:
        return self.app.clock().tzinfo

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        try:
            storages = await self._fetch_storages()
        except LabdeckError as exc:
            self._say(f"Cannot list storages: {exc}", error=True)
            return
        self.storages = {s.key: s for s in storages}
        self.table.sync_rows({s.key: s.cells() for s in storages}, keep=self.table.current_key)
        self.refresh_bindings()
        nodes = len({s.node for s in storages})
        self._say(f"{len({s.storage for s in storages})} storages on {nodes} nodes · "
                  "Enter: content · b backups · i ISOs · v disk images")  # fmt: skip
        if self.opened is not None:
            self.opened = self.storages.get(self.opened.key)
            await self._load_content()

    async def _fetch_storages(self) -> list[StorageRow]:
        """One ``pve_list_storage`` per node: shared storages then appear on each node."""
        inventory = await self.app.service.inventory()
        storages: list[StorageRow] = []
        for node in sorted(n.node for n in inventory.nodes):
            listing = await self.app.service.call("pve_list_storage", {"node": node})
            assert isinstance(listing, Table)
            for row in rows_of(listing):
                storages.append(StorageRow(
                    storage=str(row["storage"]), node=node, type=str(row.get("type") or ""),
                    content=str(row.get("content") or ""), shared=row.get("node") is None,
                    status=str(row.get("status") or ""), used=int(row.get("used") or 0),
                    total=int(row.get("total") or 0),
                ))  # fmt: skip
        return storages

    async def _load_content(self) -> None:
        opened = self.opened
        if opened is None:
            return
        params = {"storage": opened.storage, "node": opened.node}
        try:
            listing = await self.app.service.call("pve_storage_content", params)
        except LabdeckError as exc:
            self.volumes, self._content_error = [], str(exc)
        else:
            assert isinstance(listing, Table)
            self.volumes, self._content_error = rows_of(listing), None
        self._show_content()

    def _say(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#storage-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    # ------------------------------------------------------------------ content

    def shown_volumes(self) -> list[dict[str, Any]]:
        wanted, _ = CONTENT_FILTERS[self.content_filter]
        return [v for v in self.volumes if not wanted or v.get("content") in wanted]

    def _show_content(self) -> None:
        opened = self.opened
        self.set_class(opened is not None, "-content-open")
        self.refresh_bindings()  # which keys apply depends on what is open
        if opened is None:
            return
        title = self.query_one("#storage-content-title", Static)
        where = f"{opened.storage} on {opened.node}"
        if self._content_error is not None:
            title.update(f"{where}: {self._content_error}")
            title.add_class("-error")
            self.content_table.sync_rows({})
            return
        title.remove_class("-error")
        shown = self.shown_volumes()
        _, label = CONTENT_FILTERS[self.content_filter]
        title.update(f"{where} · {label}: {len(shown)} of {len(self.volumes)} volumes · "
                     f"{FILTER_KEYS}")  # fmt: skip
        tz = self._tz
        self.content_table.sync_rows(
            {str(v.get("volid")): content_cells(v, tz) for v in shown},
            keep=self.content_table.current_key,
        )

    @on(DataTable.RowSelected, "#storage-table")
    def _storage_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_content(str(event.row_key.value))

    def open_content(self, key: str, content_filter: str | None = None) -> None:
        """Show what storage ``key`` (``node/storage``) holds, read afresh."""
        storage = self.storages.get(key)
        if storage is None:
            return
        if content_filter is not None:
            self.content_filter = content_filter
        if self.opened is None or self.opened.key != key:
            self.volumes, self._content_error = [], None
            self.content_table.sync_rows({})
        self.opened = storage
        self._show_content()
        self.query_one("#storage-content-title", Static).update(
            f"{storage.storage} on {storage.node}: reading…"
        )
        self.run_worker(self._load_content(), group="storage-content", exclusive=True,
                        exit_on_error=False)  # fmt: skip

    def action_content(self, content_filter: str) -> None:
        """Filter the open content table; with none open, open the highlighted storage."""
        key = self.table.current_key
        if self.opened is None or (self.table.has_focus and key != self.opened.key):
            if key is not None:
                self.open_content(key, content_filter)
            return
        self.content_filter = content_filter
        self._show_content()

    def action_close_content(self) -> None:
        if self.opened is None:
            return
        self.opened, self.volumes = None, []
        self._show_content()
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_content" and self.opened is None:
            return False
        if action == "content" and self.opened is None and self.table.current_key is None:
            return None
        return True
