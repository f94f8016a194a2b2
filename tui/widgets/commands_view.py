"""The Commands view: one sub-tab per guest, each holding that guest's ``CommandPane``.

Why tabs and not a split under the guest table: a command's output wants the full height
(``df -h``, ``ip -br a`` on an 80x24 terminal), several guests fit without shrinking each
other, and the guest table keeps its own view. Hidden panes stay mounted (the switcher
only hides them), so their commands go on running, and the periodic refresh, which only
feeds the tables, never reaches in here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent, TabPane

from core.models import Guest
from core.service import Labdeck
from tui.formatting import guest_label
from tui.widgets.command_pane import CommandPane

EMPTY = (
    "No command panes yet. In the guests view, select a VM and press x "
    "(or ctrl+p: “Run command in guest…”)."
)


def pane_id(vmid: int) -> str:
    return f"exec-{vmid}"


class CommandsView(Vertical):
    """``open(guest)`` shows (or creates) that guest's pane; ctrl+w in a pane closes it."""

    BINDINGS = [
        Binding("ctrl+pagedown", "cycle(1)", "Next pane", id="exec.next_pane", show=False,
                tooltip="Show the next guest's command pane."),
        Binding("ctrl+pageup", "cycle(-1)", "Previous pane", id="exec.previous_pane",
                show=False, tooltip="Show the previous guest's command pane."),
    ]  # fmt: skip

    def __init__(self, service: Labdeck, *, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.clock = clock
        #: the pane last asked for (by open() or a tab switch): a focus request that was
        #: queued before it existed must not focus the previously active pane, since the
        #: tabbed content then switches back to the pane holding the focus
        self._wanted: str | None = None

    def compose(self) -> ComposeResult:
        # The tabs are mounted with the first pane: an empty TabbedContent at start-up
        # delayed the guests view's first layout (seen as flaky snapshots).
        yield Static(Text(EMPTY, style="dim italic"), id="commands-empty")

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#command-tabs", TabbedContent)

    @property
    def panes(self) -> list[CommandPane]:
        return list(self.query(CommandPane))

    def pane_for(self, vmid: int) -> CommandPane | None:
        for pane in self.panes:
            if pane.guest.vmid == vmid:
                return pane
        return None

    @property
    def active_pane(self) -> CommandPane | None:
        if not self.panes:
            return None
        active = self.tabs.active_pane
        return None if active is None else active.query_one(CommandPane)

    async def open(self, guest: Guest) -> CommandPane:
        """The pane for ``guest``, made active and focused (created on first use)."""
        self._wanted = pane_id(guest.vmid)
        pane = self.pane_for(guest.vmid)
        if pane is None:
            if not self.query("#command-tabs"):
                await self.mount(TabbedContent(id="command-tabs"))
            pane = CommandPane(guest, self.service, clock=self.clock)
            await self.tabs.add_pane(TabPane(guest_label(guest), pane, id=pane_id(guest.vmid)))
            self._show_empty()
        self.tabs.active = pane_id(guest.vmid)
        pane.focus_input()
        return pane

    def action_cycle(self, step: int) -> None:
        ids = [pane_id(pane.guest.vmid) for pane in self.panes]
        if len(ids) > 1 and self.tabs.active in ids:
            self.tabs.active = ids[(ids.index(self.tabs.active) + step) % len(ids)]

    def focus_active(self) -> None:
        if self._wanted is not None:
            pane = self.pane_for_id(self._wanted)
            if pane is None or not pane.is_mounted:
                return  # still being created: open() focuses it when it is there
        else:
            pane = self.active_pane
        if pane is not None:
            pane.focus_input()
        else:
            self.screen.set_focus(None)

    def pane_for_id(self, tab_id: str) -> CommandPane | None:
        return next((p for p in self.panes if pane_id(p.guest.vmid) == tab_id), None)

    def _show_empty(self) -> None:
        self.set_class(bool(self.panes), "-has-panes")  # the stylesheet shows one or the other

    # ------------------------------------------------------------------ messages up

    @on(TabbedContent.TabActivated, "#command-tabs")
    def _pane_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()  # the dashboard's own tabs listen for this message too
        self._wanted = event.pane.id
        self.focus_active()

    @on(CommandPane.BusyChanged)
    def _busy_changed(self, event: CommandPane.BusyChanged) -> None:
        if event.pane not in self.panes:
            return  # closed while its command was being cancelled
        label = guest_label(event.pane.guest)
        tab_id = pane_id(event.pane.guest.vmid)
        self.tabs.get_tab(tab_id).label = f"{label} ⟳" if event.busy else label

    @on(CommandPane.CloseRequested)
    async def _close(self, event: CommandPane.CloseRequested) -> None:
        await self.tabs.remove_pane(pane_id(event.pane.guest.vmid))
        self._wanted = None
        self._show_empty()
        self.focus_active()
