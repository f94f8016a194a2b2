"""Every configured cluster at a glance (``c``): one row per profile, and below, every
guest of every cluster in one table. Enter on a cluster switches the dashboard to it; Enter
on a guest switches to its cluster with the cursor on that guest.

Each profile is read through its own ``Labdeck`` (its own credentials and policy), all at
once; the one the dashboard already shows reuses the dashboard's service. A cluster that
cannot be reached says why in its row and does not hold up the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from core.config import Profile
from core.errors import LabdeckError
from core.models import Guest
from core.service import Labdeck
from tui.formatting import status_text

if TYPE_CHECKING:
    from tui.app import LabdeckApp

ServiceFactory = Callable[[Profile], Labdeck]

COLUMNS = (
    ("cluster", "Cluster"),
    ("host", "Host"),
    ("nodes", "Nodes"),
    ("guests", "Guests running"),
    ("state", "State"),
)


def _host(profile: Profile) -> str:
    parts = []
    if profile.pve.configured:
        parts.append(str(profile.pve.host))
    if profile.truenas.configured:
        parts.append("TrueNAS")
    return " + ".join(parts) or "not configured"


GUEST_COLUMNS = (
    ("cluster", "Cluster"),
    ("vmid", "VMID"),
    ("name", "Name"),
    ("type", "Type"),
    ("node", "Node"),
    ("status", "Status"),
)

#: what a guest row's key is made of: ``profile/vmid``
Choice = tuple[str, int | None]


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    nodes: str
    guests: str
    state: Text
    members: tuple[Guest, ...] = ()


async def summarise(service: Labdeck) -> ClusterSummary:
    """Nodes, guests and state of one cluster; a failure becomes the state text."""
    profile = service.profile
    try:
        if profile.pve.configured:
            inventory = await service.inventory()
            online = sum(1 for n in inventory.nodes if n.status == "online")
            running = sum(1 for g in inventory.guests if g.status == "running")
            return ClusterSummary(
                f"{online}/{len(inventory.nodes)}",
                f"{running}/{len(inventory.guests)}",
                Text("ok", style="green"),
                tuple(inventory.guests),
            )
        if profile.truenas.configured:
            await service.call("truenas_system_info", {})
            return ClusterSummary("-", "-", Text("ok (TrueNAS)", style="green"))
    except LabdeckError as exc:
        return ClusterSummary("?", "?", Text(exc.message, style="red"))
    return ClusterSummary("-", "-", Text("nothing configured", style="dim"))


class ClustersScreen(ModalScreen[Choice | None]):
    """Dismissed with (profile, vmid or None) to switch to, or None."""

    BINDINGS = [
        Binding("escape,c", "dismiss_none", "Back", id="clusters.close",
                tooltip="Close the clusters list."),
    ]  # fmt: skip

    app: LabdeckApp

    def __init__(
        self, profiles: Sequence[Profile], current: Labdeck, make_service: ServiceFactory
    ) -> None:
        super().__init__()
        self.profiles = list(profiles)
        self.current = current
        self.make_service = make_service

    def compose(self) -> ComposeResult:
        with Vertical(id="clusters-dialog"):
            yield Static(
                "Every configured cluster, then every guest of all of them. Enter switches "
                "the dashboard to the cluster (and the guest) under the cursor.",
                id="clusters-intro",
            )
            yield DataTable(id="clusters-table", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="clusters-guests", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        dialog = self.query_one("#clusters-dialog")
        dialog.border_title = "labdeck · clusters"
        dialog.border_subtitle = "enter to switch · escape to close"
        guests = self.query_one("#clusters-guests", DataTable)
        for key, label in GUEST_COLUMNS:
            guests.add_column(label, key=key)
        table = self.query_one("#clusters-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        for profile in self.profiles:
            name = Text(profile.name, style="bold")
            if profile.name == self.current.profile.name:
                name.append(" (shown)", style="dim")
            table.add_row(
                name, _host(profile), "…", "…", Text("reading…", style="dim"), key=profile.name
            )
            if profile.name == self.current.profile.name:
                table.move_cursor(row=table.row_count - 1)
        table.focus()
        self.run_worker(self._read_all(), group="clusters", exit_on_error=False)

    async def _read_all(self) -> None:
        await asyncio.gather(*(self._read(profile) for profile in self.profiles))

    async def _read(self, profile: Profile) -> None:
        own = profile.name == self.current.profile.name
        service = self.current if own else self.make_service(profile)
        try:
            summary = await summarise(service)
        finally:
            if not own:
                await service.aclose()
        table = self.query_one("#clusters-table", DataTable)
        for key, value in (
            ("nodes", summary.nodes),
            ("guests", summary.guests),
            ("state", summary.state),
        ):
            table.update_cell(profile.name, key, value, update_width=True)
        self._add_guests(profile.name, summary.members)

    def _add_guests(self, cluster: str, members: Sequence[Guest]) -> None:
        """Rows of every cluster, kept in profile order then by vmid, whatever answers first."""
        table = self.query_one("#clusters-guests", DataTable)
        for guest in sorted(members, key=lambda g: g.vmid):
            table.add_row(
                cluster,
                str(guest.vmid),
                guest.name,
                guest.kind,
                guest.node,
                status_text(guest.status),
                key=f"{cluster}/{guest.vmid}",
            )
        order = {p.name: i for i, p in enumerate(self.profiles)}
        table.sort(
            "cluster", "vmid", key=lambda cells: (order.get(cells[0], len(order)), int(cells[1]))
        )
        table.border_title = f"{table.row_count} guests in {len(self.profiles)} clusters"

    @on(DataTable.RowSelected, "#clusters-table")
    def _cluster_chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.dismiss((event.row_key.value, None))

    @on(DataTable.RowSelected, "#clusters-guests")
    def _guest_chosen(self, event: DataTable.RowSelected) -> None:
        cluster, _, vmid = str(event.row_key.value).rpartition("/")
        self.dismiss((cluster, int(vmid)))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
