"""The guests table: one row per VM/container, filtered and sorted, updated in place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from core.models import Guest
from tui.formatting import guest_matches, percent, status_text, uptime, used_of
from tui.widgets.keyed_table import Cell, KeyedTable
from tui.widgets.truenas_guests import TrueNasVm, mixed_sort_key, truenas_rows

SORT_KEYS: dict[str, Any] = {
    "vmid": lambda g: g.vmid,
    "name": lambda g: g.name.lower(),
    "node": lambda g: (g.node, g.vmid),
    "kind": lambda g: (g.kind, g.vmid),
    "status": lambda g: (g.status, g.vmid),
    "cpu": lambda g: (g.cpu, g.vmid),
    "mem": lambda g: (g.mem, g.vmid),
    "uptime": lambda g: (g.uptime, g.vmid),
    "pool": lambda g: (g.pool or "", g.vmid),
    "tags": lambda g: (",".join(g.tags), g.vmid),
}
#: columns where the biggest value is the interesting one: sorted descending first
DESCENDING_FIRST = frozenset({"cpu", "mem", "uptime"})


def guest_cells(guest: Guest) -> tuple[Cell, ...]:
    name = Text(guest.name, style="italic" if guest.template else "")
    return (
        str(guest.vmid),
        name,
        guest.node,
        status_text("template" if guest.template else guest.status),
        percent(guest.cpu) if guest.status == "running" else "-",
        used_of(guest.mem, guest.maxmem) if guest.status == "running" else "-",
        uptime(guest.uptime),
        guest.pool or "",
        guest.kind,
        ",".join(guest.tags),
    )


class GuestTable(KeyedTable):
    """Guests of the cluster. Set ``filter_text`` / call ``cycle_sort``; ``show`` new data."""

    COLUMNS = (
        ("vmid", "VMID"),
        ("name", "Name"),
        ("node", "Node"),
        ("status", "Status"),
        ("cpu", "CPU"),
        ("mem", "Memory"),
        ("uptime", "Uptime"),
        ("pool", "Pool"),
        ("kind", "Kind"),
        ("tags", "Tags"),
    )

    initial_sort = ("vmid", False)

    class Selected(Message):
        """The guest under the cursor changed (None: no guest shown)."""

        def __init__(self, guest: Guest | None) -> None:
            super().__init__()
            self.guest = guest

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guests: dict[int, Guest] = {}
        #: TrueNAS VMs and containers, beside the cluster's guests (row keys ``tn:…``)
        self.truenas_vms: dict[str, TrueNasVm] = {}
        self.filter_text = ""
        self.sort_column, self.sort_reverse = self.initial_sort
        #: the guest a person chose; the cursor returns to it when it is shown again
        self.wanted_vmid: int | None = None

    # ------------------------------------------------------------------ data

    @property
    def selected(self) -> Guest | None:
        key = self.current_key
        return None if key is None or not key.isdigit() else self.guests.get(int(key))

    @property
    def selected_truenas(self) -> TrueNasVm | None:
        """The TrueNAS VM or container under the cursor (None on a cluster guest)."""
        key = self.current_key
        return None if key is None else self.truenas_vms.get(key)

    @property
    def shown_guests(self) -> list[Guest]:
        return [g for g in self.guests.values() if guest_matches(g, self.filter_text)]

    def show(self, guests: Iterable[Guest], truenas_vms: Iterable[TrueNasVm] = ()) -> None:
        """Bring the table in step with ``guests`` (a fresh inventory) and TrueNAS's."""
        self.guests = {g.vmid: g for g in guests}
        self.truenas_vms = {vm.key: vm for vm in truenas_vms}
        self._resync()

    def set_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self._resync()

    def cycle_sort(self) -> str:
        """Sort by the next column; returns the column label."""
        keys = self.column_keys
        column = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self.sort_by(column, reverse=column in DESCENDING_FIRST)
        return dict(self.COLUMNS)[self.sort_column]

    def sort_by(self, column: str, *, reverse: bool) -> None:
        self.sort_column = column
        self.sort_reverse = reverse
        self.set_sort_arrow(column, reverse)
        self._resync()

    def select_vmid(self, vmid: int) -> bool:
        """Put the cursor on ``vmid`` if shown; False when filtered out or unknown."""
        self.wanted_vmid = vmid
        if str(vmid) not in self._cells:
            return False
        self.put_cursor_on(str(vmid))
        self.post_message(self.Selected(self.selected))
        return True

    def _resync(self) -> None:
        keep = None if self.wanted_vmid is None else str(self.wanted_vmid)
        if keep is None or int(keep) not in self.guests:
            keep = self.current_key
        rows = {str(g.vmid): guest_cells(g) for g in self.shown_guests}
        rows.update(truenas_rows(self.truenas_vms.values(), self.filter_text))
        self.sync_rows(rows, keep=keep)
        self.post_message(self.Selected(self.selected))

    def after_sync(self) -> None:
        sort_key = SORT_KEYS[self.sort_column]
        if self.truenas_vms:  # keys of one shape for both kinds of row
            vms, column = self.truenas_vms, self.sort_column
            self.sort_rows(
                lambda key: mixed_sort_key(column, vms.get(key) or self.guests[int(key)]),
                reverse=self.sort_reverse,
            )
            return
        self.sort_rows(lambda key: sort_key(self.guests[int(key)]), reverse=self.sort_reverse)

    # ------------------------------------------------------------------ events

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only cursor moves made by a person arrive here (sync_rows prevents its own).
        if event.row_key.value is not None:
            key = event.row_key.value
            self.wanted_vmid = int(key) if key.isdigit() else None
        self.post_message(self.Selected(self.selected))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == self.sort_column:
            reverse = not self.sort_reverse
        else:
            reverse = column in DESCENDING_FIRST
        self.sort_by(column, reverse=reverse)
        event.stop()
