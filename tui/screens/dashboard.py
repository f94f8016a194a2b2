"""The main screen: header, Guests / Nodes / Pools / Commands tabs, the guest detail, the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, TabbedContent, TabPane

from core.models import Guest, PoolInfo
from tui.data import POWER_ACTIONS, ClusterSnapshot
from tui.screens.guest_screen import GuestScreen
from tui.screens.node_screen import NodeScreen
from tui.widgets.activity_view import ActivityView
from tui.widgets.cluster_header import ClusterHeader
from tui.widgets.command_pane import CommandPane
from tui.widgets.commands_view import CommandsView
from tui.widgets.guest_detail import GuestDetail
from tui.widgets.guest_table import GuestTable
from tui.widgets.lazy_view import LazyView
from tui.widgets.node_table import NodeTable
from tui.widgets.pool_tree import PoolTree
from tui.widgets.repaint import set_tab_label
from tui.widgets.storage_view import StorageView
from tui.widgets.tasks_view import TasksView
from tui.widgets.truenas_power import request_truenas_power, truenas_power_applies
from tui.widgets.truenas_setup import NotConfigured, pve_missing_text, truenas_host
from tui.widgets.truenas_view import TrueNasView

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
        Binding("i", "details", "Details", id="guest.details", show=False,
                tooltip="Open the selected guest's detail (config, snapshots, backups, "
                "graphs, actions), or the selected node's graphs; Enter does too."),
    ]  # fmt: skip

    app: LabdeckApp

    def compose(self) -> ComposeResult:
        profile = self.app.service.profile
        yield ClusterHeader(
            profile=profile.name,
            host=profile.pve.host or truenas_host(profile) or "no host",
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
                yield self._pve_only(NodeTable(id="node-table"))
            with TabPane("Pools", id="pools"):
                yield self._pve_only(PoolTree(id="pool-tree"))
            with TabPane("Commands", id="commands"):
                yield CommandsView(self.app.service, clock=self.app.clock, id="commands-view")
            with TabPane("Storage", id="storage"):
                yield self._pve_only(StorageView(id="storage-view"))
            with TabPane("TrueNAS", id="truenas"):
                yield TrueNasView(id="truenas-view")
            with TabPane("Tasks", id="tasks"):
                yield self._pve_only(TasksView(id="tasks-view"))
            with TabPane("Activity", id="activity"):
                audit = self.app.service.audit
                yield ActivityView(audit.path if audit else None, id="activity-view")
        yield Footer(compact=True)

    def _pve_only(self, widget: Widget) -> Widget:
        """``widget``; without a Proxmox VE cluster, what to configure instead, the widget
        kept hidden and empty (code that queries it keeps working)."""
        profile = self.app.service.profile
        if profile.pve.configured:
            return widget
        widget.display = False
        widget.can_focus = False
        return Vertical(NotConfigured(pve_missing_text(profile)), widget, classes="pve-missing")

    def on_mount(self) -> None:
        self.query_one("#guest-filter", Input).display = False
        # the view shown by then: a key pressed before the first paint ("8") may have
        # switched it, and focusing the hidden guest table would send it the next Enter
        self.call_after_refresh(lambda: self.focus_view(self.active_view))

    #: the footer's keys as last published by ``update_bindings`` (None: unknown)
    _bindings_shown: list[tuple[object, ...]] | None = None

    def refresh_bindings(self) -> None:
        self._bindings_shown = None  # asked for by Textual or a widget: state unknown
        super().refresh_bindings()

    def update_bindings(self) -> None:
        """``refresh_bindings``, only when the keys the footer shows changed.

        The footer rebuilds all its keys on each refresh_bindings (tens of milliseconds), and
        every dashboard refresh re-selects the guest under the cursor.
        """
        shown: list[tuple[object, ...]] = [(key, *b) for key, b in self.active_bindings.items()]
        if shown != self._bindings_shown:
            self.refresh_bindings()
            self._bindings_shown = shown

    # ------------------------------------------------------------------ data down

    @property
    def header(self) -> ClusterHeader:
        return self.query_one(ClusterHeader)

    @property
    def guest_table(self) -> GuestTable:
        return self.query_one(GuestTable)

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        inventory = snapshot.inventory
        truenas_vms = snapshot.truenas.vms if snapshot.truenas is not None else ()
        table = self.guest_table
        figures = snapshot.figures
        table.show(inventory.guests, truenas_vms, figures.widths if figures else None)
        # The detail now, in the frame that paints the table: its Selected message comes
        # a frame later (~20 ms at any size), and then finds the detail as it is.
        self._show_detail(table.selected)
        views = self.query_one(TabbedContent)
        set_tab_label(views, "guests", f"Guests ({len(inventory.guests) + len(truenas_vms)})")
        self.query_one(NodeTable).show(
            inventory.nodes, inventory.guests, figures.per_node if figures else None
        )
        if snapshot.pve:
            set_tab_label(views, "nodes", f"Nodes ({len(inventory.nodes)})")
        if snapshot.pools is not None:
            self._pools_to_show = (snapshot.pools, inventory.guests)
            set_tab_label(views, "pools", f"Pools ({len(snapshot.pools)})")
            if self.active_view == "pools":
                self._show_pools()
        self.reload_active_view()

    #: the latest pools and guests, until the Pools tab shows them
    _pools_to_show: tuple[list[PoolInfo], list[Guest]] | None = None

    def _show_pools(self) -> None:
        """Bring the pool tree in step, once it is to be seen: kept in step while hidden,
        200 pools of 5,000 guests cost a dashboard refresh more than its guest table."""
        if self._pools_to_show is not None:
            self.query_one(PoolTree).show(*self._pools_to_show)
            self._pools_to_show = None

    @on(GuestTable.Selected)
    def show_selected(self, event: GuestTable.Selected) -> None:
        self._show_detail(event.guest)
        self.update_bindings()

    def _show_detail(self, guest: Guest | None) -> None:
        """The detail pane for ``guest`` (the table's selection), or why there is none."""
        table = self.guest_table
        truenas_vm = table.selected_truenas
        if guest is not None:
            self.query_one(GuestDetail).show(guest)
        elif truenas_vm is not None:
            self.query_one(GuestDetail).show_truenas(truenas_vm)
        elif table.guests and table.filter_text:
            self.query_one(GuestDetail).show(None, f"No guest matches “{table.filter_text}”.")
        elif table.guests:
            self.query_one(GuestDetail).show(None)

    # ------------------------------------------------------------------ views

    @property
    def active_view(self) -> str:
        return self.query_one(TabbedContent).active or "guests"

    def show_view(self, view: str) -> None:
        self.query_one(TabbedContent).active = view
        if view == "pools":
            self._show_pools()
        self.focus_view(view)

    def focus_view(self, view: str) -> None:
        if view == "commands":
            self.commands_view.focus_active()
            return
        if view == "activity":
            self.query_one(ActivityView).focus_target().focus()
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
        if event.pane.id == "pools":
            self._show_pools()
            self.app.action_refresh()  # pools are not asked for while their tab is hidden
        if event.pane.id is not None:
            self.focus_view(event.pane.id)
            self.reload_active_view()
        self.refresh_bindings()

    # ------------------------------------------------------------------ guests

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "details":
            return self.active_view in ("guests", "nodes")
        if action in ("filter", "sort", "clear_filter", "power", "exec"):
            if self.active_view != "guests":
                return False
            if action in ("power", "exec") and self.guest_table.selected is None:
                truenas_vm = self.guest_table.selected_truenas
                return True if truenas_power_applies(truenas_vm, parameters) else None
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
        self._filter_guests("")
        self.guest_table.focus()

    @on(Input.Changed, "#guest-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._filter_guests(event.value.strip())

    def _filter_guests(self, text: str) -> None:
        """Filter the table, and show the detail of what is under the cursor then, in the
        same frame (as ``show_snapshot`` does)."""
        table = self.guest_table
        table.set_filter(text)
        self._show_detail(table.selected)

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
        truenas_vm = self.guest_table.selected_truenas
        if guest is not None:
            self.app.request_power(name, guest)
        elif truenas_vm is not None and truenas_power_applies(truenas_vm, (name,)):
            request_truenas_power(self.app, name, truenas_vm)

    def action_details(self) -> None:
        """The detail screen of what is under the cursor: a guest, or a node's graphs."""
        if self.active_view == "guests":
            guest = self.guest_table.selected
            if guest is not None:
                self.app.push_screen(GuestScreen(guest))
        elif self.active_view == "nodes" and self.app.snapshot is not None:
            nodes = {n.node: n for n in self.app.snapshot.inventory.nodes}
            key = self.query_one(NodeTable).current_key
            if key in nodes:
                self.app.push_screen(NodeScreen(nodes[key]))

    @on(DataTable.RowSelected, "#guest-table, #node-table")
    def _row_selected(self) -> None:
        # Enter (or a click) on a row: the table consumes Enter before a screen binding
        self.action_details()

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
