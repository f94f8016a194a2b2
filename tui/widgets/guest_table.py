"""The guests table: one row per VM/container, filtered and sorted, updated in place."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress, groupby
from operator import attrgetter, methodcaller
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from core.models import Guest
from tui.formatting import (
    guest_haystack,
    percent,
    short_bytes_width,
    status_text,
    uptime,
    uptime_width,
    used_of,
    widest_short_bytes,
)
from tui.widgets.keyed_table import Cell, cell_width
from tui.widgets.lazy_table import LazyTable, Made
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


def guest_cells(guest: Guest, before: Made | None = None) -> Made:
    """The row of ``guest`` and what it was made from.

    ``before``: the row as drawn last. A cell whose inputs did not change is that same
    object again (and an unchanged row the same tuple), so a refresh formats and
    compares only what moved.
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


_has_markup = methodcaller("__contains__", "[")


def _widest_text(values: Iterable[str], *, markup: bool = True) -> int:
    """Cells the widest of ``values`` takes (each distinct value measured once), as str
    cells (Rich markup) or, ``markup=False``, as plain ``Text`` cells. Plain ASCII (the
    usual case) is measured by ``len`` alone."""
    distinct = set(values)
    if not distinct:
        return 0
    if all(map(str.isascii, distinct)) and not (markup and any(map(_has_markup, distinct))):
        return max(map(len, distinct))
    return max(map(cell_width if markup else cell_len, distinct))


def guest_column_widths(guests: Sequence[Guest]) -> dict[str, int]:
    """Per column, the width of its widest cell: what ``_DRAW`` would make, measured
    without drawing every row (5,000 guests are sized at every refresh). The vmid and the
    CPU figure grow with the number, so the largest is the widest; figures are measured
    by ``*_width`` functions; text columns on their distinct values."""
    if not guests:
        return {}
    running = list(compress(guests, map("running".__eq__, map(attrgetter("status"), guests))))
    idle = 1 if len(running) < len(guests) else 0  # "-" in the CPU and memory columns
    memory = idle
    by_total = sorted(running, key=attrgetter("maxmem"))
    for total, same in groupby(by_total, key=attrgetter("maxmem")):  # a few sizes of guest
        used = widest_short_bytes(map(attrgetter("mem"), same))
        memory = max(memory, used + 1 + short_bytes_width(total) if total > 0 else 1)
    statuses = Counter(map(attrgetter("status"), guests))
    templates = list(compress(guests, map(attrgetter("template"), guests)))
    if templates:
        statuses -= Counter(map(attrgetter("status"), templates))
        statuses["template"] = len(templates)
    return {
        "vmid": len(str(max(map(attrgetter("vmid"), guests)))),
        "name": _widest_text(map(attrgetter("name"), guests), markup=False),
        "node": _widest_text(map(attrgetter("node"), guests)),
        "status": _widest_text(statuses, markup=False),  # those still counted; Text cells
        "cpu": max(idle, len(percent(max(map(attrgetter("cpu"), running)))) if running else 0),
        "mem": memory,
        "uptime": max(map(uptime_width, set(map(attrgetter("uptime"), guests)))),
        "pool": _widest_text(pool for pool in set(map(attrgetter("pool"), guests)) if pool),
        "kind": _widest_text(map(attrgetter("kind"), guests)),
        "tags": _widest_text(map(",".join, set(map(tuple, map(attrgetter("tags"), guests))))),
    }


class GuestTable(LazyTable):
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
        #: the cells of the TrueNAS rows shown (a few: drawn at each refresh)
        self._truenas_cells: dict[str, tuple[Cell, ...]] = {}

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

    #: per guest of the listing shown, what the filter searches in it (``guest_haystack``):
    #: made at the first filtered look at a listing, then kept for each keystroke after
    _haystacks: list[tuple[str, Guest]] | None = None

    @property
    def shown_guests(self) -> list[Guest]:
        """The guests that match every word of the filter (``guest_matches``)."""
        words = self.filter_text.lower().split()
        if not words:
            return list(self.guests.values())
        if self._haystacks is None:
            self._haystacks = [(guest_haystack(g), g) for g in self.guests.values()]
        found = self._haystacks
        for word in words:
            found = [(haystack, g) for haystack, g in found if word in haystack]
        return [g for _, g in found]

    #: ``guest_column_widths`` of all of ``guests``, when the caller had it worked out
    _all_widths: Mapping[str, int] | None = None

    def show(
        self,
        guests: Iterable[Guest],
        truenas_vms: Iterable[TrueNasVm] = (),
        widths: Mapping[str, int] | None = None,
    ) -> None:
        """Bring the table in step with ``guests`` (a fresh inventory) and TrueNAS's.
        ``widths``: ``guest_column_widths(guests)``, if worked out already (``fetch_snapshot``
        does it in a worker thread for thousands of guests); used while nothing is filtered."""
        self.guests = {g.vmid: g for g in guests}
        self._all_widths = widths
        self._haystacks = None
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
        if str(vmid) not in self.rows:
            return False
        self.put_cursor_on(str(vmid))
        self.post_message(self.Selected(self.selected))
        return True

    def _resync(self) -> None:
        keep = None if self.wanted_vmid is None else str(self.wanted_vmid)
        if keep is None or int(keep) not in self.guests:
            keep = self.current_key
        shown = self.shown_guests
        self._truenas_cells = truenas_rows(self.truenas_vms.values(), self.filter_text)
        if self._all_widths is not None and not self.filter_text.split():  # all are shown
            widths = dict(self._all_widths)
        else:
            widths = guest_column_widths(shown)
        for cells in self._truenas_cells.values():
            for key, cell in zip(self.column_keys, cells, strict=True):
                widths[key] = max(widths.get(key, 0), cell_width(cell))
        self.show_rows(self._ordered(shown), widths, keep=keep)
        self.post_message(self.Selected(self.selected))

    def _ordered(self, shown: list[Guest]) -> list[str]:
        """Row keys of ``shown`` and the TrueNAS rows, sorted on the models."""
        column, reverse = self.sort_column, self.sort_reverse
        if not self._truenas_cells:
            shown = sorted(shown, key=SORT_KEYS[column], reverse=reverse)
            return [str(g.vmid) for g in shown]
        vms = self.truenas_vms
        items: list[Guest | TrueNasVm] = [*shown, *(vms[key] for key in self._truenas_cells)]
        items.sort(key=lambda item: mixed_sort_key(column, item), reverse=reverse)
        return [item.key if isinstance(item, TrueNasVm) else str(item.vmid) for item in items]

    def make_row(self, key: str, before: Made | None) -> Made:
        cells = self._truenas_cells.get(key)
        if cells is not None:
            return before if before is not None and before[1] == cells else (cells, cells)
        return guest_cells(self.guests[int(key)], before)

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
