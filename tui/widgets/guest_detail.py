"""The detail panel of the guest under the cursor."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from core.models import Guest
from tui.formatting import percent, short_bytes, status_text, uptime, used_of
from tui.widgets.repaint import update_static
from tui.widgets.truenas_guests import TrueNasVm, truenas_vm_detail


def _share(used: int, total: int) -> str:
    if total <= 0:
        return "-"
    return f"{used_of(used, total)} ({used * 100 // total}%)"


def detail_view(guest: Guest, *, hint: str = "") -> Group:
    """The guest's state in three rows; ``hint`` (dim) closes the last row."""
    running = guest.status == "running"
    grid = Table.grid(padding=(0, 1), expand=True)
    for ratio in (0, 2, 0, 2, 0, 1):
        grid.add_column(style="bold" if ratio == 0 else "", ratio=ratio or None, no_wrap=True)
    title = Text(guest.name, style="bold")
    kind = "VM" if guest.kind == "qemu" else "container"
    title.append(f"  {kind} {guest.vmid} on {guest.node}  ")
    title.append_text(status_text("template" if guest.template else guest.status))
    cpu = f"{percent(guest.cpu)} of {guest.maxcpu:g} vCPU" if running else f"{guest.maxcpu:g} vCPU"
    mem = _share(guest.mem, guest.maxmem) if running else short_bytes(guest.maxmem)
    disk = _share(guest.disk, guest.maxdisk) if guest.disk else short_bytes(guest.maxdisk)
    grid.add_row("CPU", cpu, "Memory", mem, "Uptime", uptime(guest.uptime))
    grid.add_row(
        "Disk", disk, "Pool", guest.pool or "-", "Lock", Text(guest.lock or "-", style="yellow")
    )
    grid.add_row("Tags", ", ".join(guest.tags) or "-", "", "", "", Text(hint, style="dim"))
    return Group(title, grid)


class GuestDetail(Static):
    """Shows one guest (or a TrueNAS VM); ``show(None, why)`` says why there is none."""

    #: what the panel shows, compared with what it is asked to show: the panel is a Rich
    #: group, which cannot be compared once made, and each refresh asks again for the
    #: guest under the cursor (a repaint of the panel, a frame of its own, when unchanged)
    _showing: tuple[str, object] | None = None

    def show(self, guest: Guest | None, why: str = "No guest selected.") -> None:
        if guest is None:
            self._show(("why", why), lambda: Text(why, style="dim italic"))
        else:
            self._show(("guest", guest), lambda: detail_view(guest, hint="enter: details"))

    def show_truenas(self, vm: TrueNasVm) -> None:
        self._show(("truenas", vm), lambda: truenas_vm_detail(vm))

    def _show(self, showing: tuple[str, object], make: Callable[[], object]) -> None:
        if showing == self._showing:
            return
        self._showing = showing
        update_static(self, make())
