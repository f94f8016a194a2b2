"""TrueNAS VMs and containers as rows of the Guests view, beside the Proxmox VE guests.

A TrueNAS system runs guests of its own (libvirt VMs; Incus instances, or LXC containers on
26). A person looking for "the machine called debian" should not have to know where it runs,
so the Guests view lists them too: id ``tn:1`` (a VM) or ``tn:ct:web01`` (a container), node
= the TrueNAS host name. They start and stop through the ``truenas_*`` operations, under the
same policy and confirmation as the cluster's guests; actions TrueNAS has no equivalent for
(reboot, guest exec) are disabled on their rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table as RichTable
from rich.text import Text

from core.models import Guest, Table
from core.truenas_results import TrueNasSystem
from tui.formatting import short_bytes, status_text
from tui.widgets.keyed_table import Cell

if TYPE_CHECKING:
    from core.service import Labdeck


@dataclass(frozen=True, slots=True)
class TrueNasVm:
    """One row of ``truenas_list_vms``; ``status`` lower-cased like PVE's (running, stopped)."""

    kind: str  # "vm" or "container"
    id: int | str
    name: str
    status: str
    host: str
    cpus: int | None = None
    memory: int | None = None
    autostart: bool | None = None
    description: str = ""

    @property
    def key(self) -> str:
        """The row key and the id a person sees: ``tn:1`` or ``tn:ct:web01``.

        Containers get their own prefix: on TrueNAS 26 their ids are numbers that VMs use too.
        """
        return f"tn:{self.id}" if self.kind == "vm" else f"tn:ct:{self.id}"

    @property
    def kind_label(self) -> str:
        return "truenas-vm" if self.kind == "vm" else "truenas-ct"

    @property
    def label(self) -> str:
        """``debian (tn:1)``: how a person names it in a sentence (like ``guest_label``)."""
        return f"{self.name} ({self.key})"

    @property
    def what(self) -> str:
        return "TrueNAS VM" if self.kind == "vm" else "TrueNAS container"

    def matches(self, query: str) -> bool:
        """Every word of ``query`` occurs in its name, id, host, status, kind or description."""
        fields = [self.name, self.key, self.host, self.status, self.kind_label, self.description]
        haystack = " ".join(fields).lower()
        return all(word in haystack for word in query.lower().split())


@dataclass(frozen=True, slots=True)
class TrueNasGuests:
    """What one refresh knows about the TrueNAS system: its name and its guests."""

    host: str
    vms: tuple[TrueNasVm, ...]

    @property
    def summary(self) -> str:
        running = sum(1 for vm in self.vms if vm.status == "running")
        return f"{self.host} · vms {running}/{len(self.vms)} running"


def records(table: Table) -> list[dict[str, Any]]:
    """A compact listing's rows as dicts, by column name."""
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def vms_from_table(table: Table, host: str) -> tuple[TrueNasVm, ...]:
    return tuple(
        TrueNasVm(
            kind=str(row["kind"]),
            id=row["id"],
            name=str(row["name"]),
            status=str(row.get("status") or "unknown").lower(),
            host=host,
            cpus=row.get("cpus"),
            memory=row.get("memory"),
            autostart=row.get("autostart"),
            description=str(row.get("description") or ""),
        )
        for row in records(table)
    )


async def fetch_truenas_guests(service: Labdeck, host: str | None) -> TrueNasGuests:
    """``truenas_list_vms`` (one call); the host name too the first time (it does not change)."""
    if host is None:
        system, listing = await asyncio.gather(
            service.call("truenas_system_info", {}), service.call("truenas_list_vms", {})
        )
        assert isinstance(system, TrueNasSystem)
        host = system.hostname or "truenas"
    else:
        listing = await service.call("truenas_list_vms", {})
    assert isinstance(listing, Table)
    return TrueNasGuests(host=host, vms=vms_from_table(listing, host))


# ---------------------------------------------------------------- the Guests view


def truenas_vm_cells(vm: TrueNasVm) -> tuple[Cell, ...]:
    """The guest table's columns (vmid, name, node, status, cpu, mem, uptime, pool, kind,
    tags); TrueNAS reports no usage, so memory is what the guest is given."""
    return (
        vm.key,
        Text(vm.name),
        vm.host,
        status_text(vm.status),
        "-",
        short_bytes(vm.memory) if vm.memory else "-",
        "-",
        "",
        vm.kind_label,
        "",
    )


def _order(vm: TrueNasVm) -> tuple[int, int, str]:
    """VMs before containers, numeric ids in number order."""
    number = vm.id if isinstance(vm.id, int) else 0
    return (0 if vm.kind == "vm" else 1, number, str(vm.id))


#: per guest-table column, what a cluster guest and a TrueNAS row are compared by (values of
#: one type, so the two interleave; TrueNAS reports no usage, so its cpu/mem/uptime are 0)
SHARED_SORT: dict[str, tuple[Callable[[Guest], Any], Callable[[TrueNasVm], Any]]] = {
    "vmid": (lambda g: 0, lambda vm: 1),  # the cluster's guests by vmid, then TrueNAS's
    "name": (lambda g: g.name.lower(), lambda vm: vm.name.lower()),
    "node": (lambda g: g.node, lambda vm: vm.host),
    "kind": (lambda g: g.kind, lambda vm: vm.kind_label),
    "status": (lambda g: g.status, lambda vm: vm.status),
    "cpu": (lambda g: g.cpu, lambda vm: 0.0),
    "mem": (lambda g: g.mem, lambda vm: 0),
    "uptime": (lambda g: g.uptime, lambda vm: 0),
    "pool": (lambda g: g.pool or "", lambda vm: ""),
    "tags": (lambda g: ",".join(g.tags), lambda vm: ""),
}


def mixed_sort_key(column: str, item: Guest | TrueNasVm) -> tuple[Any, int, Any]:
    """Sort key of a row in a table holding both kinds; ties: cluster guests first."""
    guest_key, vm_key = SHARED_SORT[column]
    if isinstance(item, TrueNasVm):
        return (vm_key(item), 1, _order(item))
    return (guest_key(item), 0, item.vmid)


def truenas_rows(vms: Iterable[TrueNasVm], query: str) -> dict[str, tuple[Cell, ...]]:
    return {vm.key: truenas_vm_cells(vm) for vm in vms if vm.matches(query)}


def truenas_vm_detail(vm: TrueNasVm) -> Group:
    """The detail panel under the guest table, for a TrueNAS row."""
    title = Text(vm.name, style="bold")
    title.append(f"  {vm.what} {vm.id} on {vm.host}  ")
    title.append_text(status_text(vm.status))
    grid = RichTable.grid(padding=(0, 1), expand=True)
    for ratio in (0, 2, 0, 2, 0, 1):
        grid.add_column(style="bold" if ratio == 0 else "", ratio=ratio or None, no_wrap=True)
    cpus = f"{vm.cpus} vCPU" if vm.cpus else "-"
    memory = short_bytes(vm.memory) if vm.memory else "-"
    autostart = "-" if vm.autostart is None else ("yes" if vm.autostart else "no")
    grid.add_row("CPU", cpus, "Memory", memory, "Autostart", autostart)
    grid.add_row("About", vm.description or "-", "", "", "", "")
    return Group(title, grid)
