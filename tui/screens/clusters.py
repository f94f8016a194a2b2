"""Every configured cluster at a glance (``c``): one row per profile, Enter switches to it.

Each profile is read through its own ``Labdeck`` (its own credentials and policy), all at
once; the one the dashboard already shows reuses the dashboard's service. A cluster that
cannot be reached says why in its row and does not hold up the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
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
from core.service import Labdeck

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


async def summarise(service: Labdeck) -> tuple[str, str, Text]:
    """(nodes, guests, state) of one cluster; failures become the state text."""
    profile = service.profile
    try:
        if profile.pve.configured:
            inventory = await service.inventory()
            online = sum(1 for n in inventory.nodes if n.status == "online")
            running = sum(1 for g in inventory.guests if g.status == "running")
            return (
                f"{online}/{len(inventory.nodes)}",
                f"{running}/{len(inventory.guests)}",
                Text("ok", style="green"),
            )
        if profile.truenas.configured:
            await service.call("truenas_system_info", {})
            return ("-", "-", Text("ok (TrueNAS)", style="green"))
    except LabdeckError as exc:
        return ("?", "?", Text(exc.message, style="red"))
    return ("-", "-", Text("nothing configured", style="dim"))


class ClustersScreen(ModalScreen[str | None]):
    """Dismissed with the profile name to switch to, or None."""

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
                "Every configured cluster. Enter switches the dashboard to it.",
                id="clusters-intro",
            )
            yield DataTable(id="clusters-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        dialog = self.query_one("#clusters-dialog")
        dialog.border_title = "labdeck · clusters"
        dialog.border_subtitle = "enter to switch · escape to close"
        table = self.query_one(DataTable)
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
            nodes, guests, state = await summarise(service)
        finally:
            if not own:
                await service.aclose()
        table = self.query_one(DataTable)
        for key, value in (("nodes", nodes), ("guests", guests), ("state", state)):
            table.update_cell(profile.name, key, value, update_width=True)

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

