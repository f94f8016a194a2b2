"""The guests table: one row per VM/container, filtered and sorted, updated in place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def _inputs(g: Guest) -> tuple[Any, ...]:
    """Per column, what its cell shows depends on (in ``GuestTable.COLUMNS`` order)."""
    running = g.status == "running"
    return (g.vmid, (g.name, g.template), g.node, (g.status, g.template), (g.cpu, running),
            (g.mem, g.maxmem, running), g.uptime, g.pool, g.kind, tuple(g.tags))  # fmt: skip


#: per column, how its cell is drawn
_DRAW: tuple[Callable[[Guest], Cell], ...] = (
    lambda g: str(g.vmid),
    lambda g: Text(g.name, style="italic" if g.template else ""),
    lambda g: g.node,
    lambda g: status_text("template" if g.template else g.status),
    lambda g: percent(g.cpu) if g.status == "running" else "-",
    lambda g: used_of(g.mem, g.maxmem) if g.status == "running" else "-",
    lambda g: uptime(g.uptime),
    lambda g: g.pool or "",
    lambda g: g.kind,
    lambda g: ",".join(g.tags),
)

#: what a row's cells were made from, and the cells
Made = tuple[tuple[Any, ...], tuple[Cell, ...]]


def guest_cells(guest: Guest, before: Made | None = None) -> Made:
    """The row of ``guest`` and what it was made from.

    ``before``: the row made at the last refresh. A cell whose inputs did not change is
    that same object again (and an unchanged row the same tuple), so a refresh formats
    and compares only what moved: on 5,000 guests, the CPU, memory and uptime of the
    running ones.
    """
    inputs = _inputs(guest)
    if before is None:
        return inputs, tuple(draw(guest) for draw in _DRAW)
    old_inputs, old_cells = before
    if inputs == old_inputs:
        return before
    cells = list(old_cells)
    for column, draw in enumerate(_DRAW):
        if inputs[column] != old_inputs[column]:
            cells[column] = draw(guest)
    return inputs, tuple(cells)


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
        #: each shown guest's row as last made (see ``guest_cells``)
        self._made: dict[int, Made] = {}

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
        if not self.filter_text.strip():
            return list(self.guests.values())
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
        made = {g.vmid: guest_cells(g, self._made.get(g.vmid)) for g in self.shown_guests}
        self._made = made
        rows: dict[str, tuple[Cell, ...]] = {str(vmid): cells for vmid, (_, cells) in made.items()}
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
