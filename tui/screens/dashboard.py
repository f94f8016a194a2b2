"""The main screen: header, Guests / Nodes / Pools / Commands tabs, the guest detail, the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input, TabbedContent, TabPane

from core.models import Guest
from tui.data import POWER_ACTIONS, ClusterSnapshot
from tui.widgets.cluster_header import ClusterHeader
from tui.widgets.command_pane import CommandPane
from tui.widgets.commands_view import CommandsView
from tui.widgets.guest_detail import GuestDetail
from tui.widgets.guest_table import GuestTable
from tui.widgets.lazy_view import LazyView
from tui.widgets.node_table import NodeTable
from tui.widgets.pool_tree import PoolTree

if TYPE_CHECKING:
    from tui.app import LabdeckApp

VIEWS = ("guests", "nodes", "pools", "commands")


def _power_binding(name: str, show: bool = True) -> Binding:
    action = POWER_ACTIONS[name]
    return Binding(
        action.key,
        f"power('{name}')",
        action.verb,
        id=f"guest.{name}",
        tooltip=f"{action.verb} the selected guest"
        + (" (asks first)." if name != "start" else "."),
        show=show,
    )


class DashboardScreen(Screen[None]):
    AUTO_FOCUS = ""  # the table, once its tab is laid out (see on_mount)
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="guests.filter",
                tooltip="Filter guests by name, vmid, node, tag, pool or status."),
        Binding("escape", "clear_filter", "Clear filter", id="guests.clear_filter",
                tooltip="Clear the guest filter.", show=False),
        Binding("s", "sort", "Sort", id="guests.sort",
                tooltip="Sort guests by the next column (click a header to reverse)."),
        _power_binding("start"),
        _power_binding("shutdown"),
        _power_binding("stop"),
        _power_binding("reboot"),
        Binding("x", "exec", "Exec", id="guest.exec",
                tooltip="Open a command pane on the selected VM (its QEMU guest agent runs "
                "what you type)."),
    ]  # fmt: skip

    app: LabdeckApp

    def compose(self) -> ComposeResult:
        profile = self.app.service.profile
        yield ClusterHeader(
            profile=profile.name,
            host=profile.pve.host or "no host",
            writes=self.app.service.policy.allow_writes,
            id="header",
        )
        with TabbedContent(id="views", initial="guests"):
            with TabPane("Guests", id="guests"):
                with Vertical(id="guests-view"):
                    yield Input(placeholder="filter: name, vmid, node, tag, pool, status",
                                id="guest-filter")  # fmt: skip
                    yield GuestTable(id="guest-table")
                    yield GuestDetail("Waiting for the cluster…", id="guest-detail")
            with TabPane("Nodes", id="nodes"):
                yield NodeTable(id="node-table")
            with TabPane("Pools", id="pools"):
                yield PoolTree(id="pool-tree")
            with TabPane("Commands", id="commands"):
                yield CommandsView(self.app.service, clock=self.app.clock, id="commands-view")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#guest-filter", Input).display = False
        self.call_after_refresh(self.focus_view, "guests")

    # ------------------------------------------------------------------ data down

    @property
    def header(self) -> ClusterHeader:
        return self.query_one(ClusterHeader)

    @property
    def guest_table(self) -> GuestTable:
        return self.query_one(GuestTable)

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        inventory = snapshot.inventory
        self.guest_table.show(inventory.guests)
        self.query_one(NodeTable).show(inventory.nodes, inventory.guests)
        if snapshot.pools is not None:
            self.query_one(PoolTree).show(snapshot.pools, inventory.guests)
        views = self.query_one(TabbedContent)
        views.get_tab("guests").label = f"Guests ({len(inventory.guests)})"
        views.get_tab("nodes").label = f"Nodes ({len(inventory.nodes)})"
        if snapshot.pools is not None:
            views.get_tab("pools").label = f"Pools ({len(snapshot.pools)})"
        self.reload_active_view()

    @on(GuestTable.Selected)
    def show_selected(self, event: GuestTable.Selected) -> None:
        table = self.guest_table
        if event.guest is not None:
            self.query_one(GuestDetail).show(event.guest)
        elif table.guests and table.filter_text:
            self.query_one(GuestDetail).show(None, f"No guest matches “{table.filter_text}”.")
        elif table.guests:
            self.query_one(GuestDetail).show(None)
        self.refresh_bindings()

    # ------------------------------------------------------------------ views

    @property
    def active_view(self) -> str:
        return self.query_one(TabbedContent).active or "guests"

    def show_view(self, view: str) -> None:
        self.query_one(TabbedContent).active = view
        self.focus_view(view)

    def focus_view(self, view: str) -> None:
        if view == "commands":
            self.commands_view.focus_active()
            return
        fixed = {"guests": GuestTable, "nodes": NodeTable, "pools": PoolTree}
        if view in fixed:
            self.query_one(fixed[view]).focus()
            return
        lazy = self.lazy_view(view)
        if lazy is not None:
            lazy.focus_target().focus()

    def lazy_view(self, view: str) -> LazyView | None:
        """The self-loading view inside tab ``view`` (None for the refresh-fed ones)."""
        views = self.query_one("#views", TabbedContent)
        try:
            pane = views.get_pane(view)
        except NoMatches:
            return None
        found = pane.query(LazyView)
        return found.first() if found else None

    def reload_active_view(self) -> None:
        """Refresh the shown tab's own data, if it has any (hidden views cost nothing)."""
        lazy = self.lazy_view(self.active_view)
        if lazy is not None:
            lazy.reload()

    @on(TabbedContent.TabActivated, "#views")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id is not None:
            self.focus_view(event.pane.id)
            self.reload_active_view()
        self.refresh_bindings()

    # ------------------------------------------------------------------ guests

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("filter", "sort", "clear_filter", "power", "exec"):
            if self.active_view != "guests":
                return False
            if action in ("power", "exec") and self.guest_table.selected is None:
                return None
        return True

    def action_filter(self) -> None:
        field = self.query_one("#guest-filter", Input)
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#guest-filter", Input)
        if not field.display and not field.value:
            return
        field.value = ""
        field.display = False
        self.guest_table.set_filter("")
        self.guest_table.focus()

    @on(Input.Changed, "#guest-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.guest_table.set_filter(event.value.strip())

    @on(Input.Submitted, "#guest-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.guest_table.focus()

    def action_sort(self) -> None:
        label = self.guest_table.cycle_sort()
        self.notify(f"Guests sorted by {label}.", timeout=2)

    def action_power(self, name: str) -> None:
        guest = self.guest_table.selected
        if guest is not None:
            self.app.request_power(name, guest)

    async def action_exec(self) -> None:
        guest = self.guest_table.selected
        if guest is not None:
            await self.open_commands(guest)

    # ------------------------------------------------------------------ commands

    @property
    def commands_view(self) -> CommandsView:
        return self.query_one(CommandsView)

    @property
    def command_panes(self) -> list[CommandPane]:
        return self.commands_view.panes

    async def open_commands(self, guest: Guest) -> CommandPane:
        """Show the Commands view with ``guest``'s pane (created on first use)."""
        self.query_one("#views", TabbedContent).active = "commands"
        pane = await self.commands_view.open(guest)
        self._count_panes()
        return pane

    @on(CommandPane.CloseRequested)
    def _pane_closed(self) -> None:
        # after CommandsView removed it (the message reaches the view first)
        self.call_after_refresh(self._count_panes)

    def _count_panes(self) -> None:
        count = len(self.command_panes)
        label = f"Commands ({count})" if count else "Commands"
        self.query_one("#views", TabbedContent).get_tab("commands").label = label

    def select_guest(self, vmid: int) -> None:
        """Show the guests view with the cursor on ``vmid`` (clearing a filter that hides it)."""
        self.show_view("guests")
        table = self.guest_table
        if not table.select_vmid(vmid):
            self.action_clear_filter()
            table.select_vmid(vmid)
