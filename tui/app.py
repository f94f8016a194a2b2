"""labdeck's dashboard: one Proxmox VE cluster for a person, on the same core as the agents.

The app owns the refresh loop and the guest actions; the dashboard screen lays out what
they produce ("attributes down, messages up"). Every error ends on screen as text (header,
notification), never as a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding, Keymap
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from core.config import Profile
from core.errors import LabdeckError, PolicyDenied
from core.models import Guest, PowerResult
from core.ops import catalogue
from core.service import Labdeck
from tui.commands import LabdeckCommands, exec_guest_commands, guest_commands
from tui.data import POWER_ACTIONS, ClusterSnapshot, PowerAction, fetch_snapshot
from tui.formatting import guest_label
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.widgets.command_pane import CommandPane, HistoryInput
from tui.widgets.commands_view import CommandsView

Clock = Callable[[], datetime]


def _local_now() -> datetime:
    return datetime.now().astimezone()


class LabdeckApp(App[None]):
    """``LabdeckApp(service, refresh_interval=5.0, clock=None)``.

    ``clock`` stamps each refresh (tests inject a frozen one). The service's connections
    are opened in the app's event loop and closed when the app exits; the service itself
    stays usable.
    """

    CSS_PATH = "labdeck.tcss"
    TITLE = "labdeck"
    COMMANDS = App.COMMANDS | {LabdeckCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit labdeck."),
        Binding("f1", "help", "Help", id="app.help", tooltip="Show every key and what it does."),
        Binding("ctrl+r,f5", "refresh", "Refresh", id="app.refresh", show=False,
                tooltip="Fetch the cluster state now."),
        Binding("1", "show_view('guests')", "Guests", id="view.guests", show=False,
                tooltip="Show the guests view."),
        Binding("2", "show_view('nodes')", "Nodes", id="view.nodes", show=False,
                tooltip="Show the nodes view."),
        Binding("3", "show_view('pools')", "Pools", id="view.pools", show=False,
                tooltip="Show the pools view."),
        Binding("4", "show_view('commands')", "Commands", id="view.commands", show=False,
                tooltip="Show the command panes (one per guest)."),
        Binding("c", "clusters", "Clusters", id="app.clusters",
                tooltip="Every configured cluster at a glance; switch the dashboard to one."),
    ]  # fmt: skip

    def __init__(
        self,
        service: Labdeck,
        *,
        refresh_interval: float = 5.0,
        clock: Clock | None = None,
        profiles: Sequence[Profile] = (),
        make_service: Callable[[Profile], Labdeck] | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        #: every configured cluster (profile), for ``c``; the shown one is ``service.profile``
        self.profiles = {p.name: p for p in profiles} or {service.profile.name: service.profile}
        self.make_service = make_service
        self._select_after_refresh: int | None = None
        self.refresh_interval = refresh_interval
        self.clock: Clock = clock or _local_now
        self.snapshot: ClusterSnapshot | None = None
        self.error: LabdeckError | None = None
        self._refresh_timer: Timer | None = None
        self._activities: dict[tuple[str, int], str] = {}
        self.keymap_in_use: dict[str, str] = {}

    def set_keymap(self, keymap: Keymap) -> None:
        """Remap keys by binding id (posting's way); the help screen shows the result."""
        self.keymap_in_use = dict(keymap)
        super().set_keymap(keymap)

    def update_keymap(self, keymap: Keymap) -> None:
        self.keymap_in_use = {**self.keymap_in_use, **keymap}
        super().update_keymap(keymap)

    def get_default_screen(self) -> Screen[Any]:
        return DashboardScreen(id="dashboard")

    @property
    def dashboard(self) -> DashboardScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        return None

    def guests(self) -> list[Guest]:
        return [] if self.snapshot is None else list(self.snapshot.inventory.guests)

    def on_mount(self) -> None:
        self._refresh_soon()

    async def on_unmount(self) -> None:
        # The HTTP connections belong to this app's event loop.
        await self.service.aclose()

    # ------------------------------------------------------------------ refresh loop

    def action_refresh(self) -> None:
        """Refresh now, past the read cache: a person asking wants what is true now."""
        if self.service.profile.pve.configured:
            self.service.pve.invalidate()
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        """Start a refresh; the next one is armed when this one ends: polls never overlap."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self._refresh()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh(self) -> None:
        try:
            snapshot = await fetch_snapshot(self.service)
        except LabdeckError as exc:
            self._show_error(exc.kind, str(exc))
            self.error = exc
        else:
            self.snapshot, self.error = snapshot, None
            self._show_snapshot(snapshot)
        self._arm_refresh()

    def _arm_refresh(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
        self._refresh_timer = self.set_timer(self.refresh_interval, self._refresh_soon)

    def _show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        dashboard = self.dashboard
        if dashboard is None:
            return
        overview = snapshot.overview
        dashboard.header.show_connected(
            self.clock(), overview.cluster_name if overview else None, snapshot.summary
        )
        dashboard.show_snapshot(snapshot)
        if self._select_after_refresh is not None:  # a guest picked in the clusters list
            vmid, self._select_after_refresh = self._select_after_refresh, None
            dashboard.select_guest(vmid)

    def _show_error(self, kind: str, message: str) -> None:
        if self.dashboard is not None:
            self.dashboard.header.show_error(self.clock(), kind.replace("_", " "), message)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug below must not end the dashboard: say what broke, keep refreshing."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = f"{type(error).__name__}: {error}"
        self.log.error(f"worker {event.worker.name} failed: {text}")
        if event.worker.group == "refresh":
            self._show_error("error", f"refresh failed: {text}")
            self._arm_refresh()
        else:
            self.notify(text, title="Unexpected error", severity="error", timeout=10)

    # ------------------------------------------------------------------ guest actions

    def request_power(self, name: str, guest: Guest) -> None:
        """Run a power action on ``guest``; disruptive ones ask a person first.

        In read-only mode the core refuses at once; that refusal is the message shown.
        """
        action = POWER_ACTIONS[name]
        operation = catalogue()[action.operation]
        if not (operation.confirm and self.service.policy.allow_writes):
            self._power(action, guest, confirmed=not operation.confirm)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._power(action, guest, confirmed=True)
            else:
                self.notify(f"{action.verb} {guest_label(guest)}: cancelled.", timeout=3)

        question = f"{action.verb} {guest.name}?"
        where = "VM" if guest.kind == "qemu" else "container"
        detail = f"{where} {guest.vmid} on {guest.node}, now {guest.status}.\n{operation.summary}"
        self.push_screen(ConfirmScreen(question, detail, action.verb), callback=answered)

    @work(group="power", exit_on_error=False)
    async def _power(self, action: PowerAction, guest: Guest, *, confirmed: bool) -> None:
        label = guest_label(guest)
        key = (action.name, guest.vmid)
        activity = f"{action.doing} {label}…"
        self._set_activity(key, activity)

        def progress(elapsed_s: float, message: str) -> None:
            self._set_activity(key, f"{activity} {elapsed_s:.0f}s")

        title = f"{action.verb} {label}"
        try:
            result = await self.service.call(
                action.operation, {"vmid": guest.vmid}, confirmed=confirmed, progress=progress
            )
        except PolicyDenied as exc:
            self.notify(str(exc), title=f"{title}: refused", severity="warning", timeout=8)
        except LabdeckError as exc:
            self.notify(str(exc), title=f"{title}: failed", severity="error", timeout=10)
        else:
            message = result.message if isinstance(result, PowerResult) else "done."
            self.notify(message, title=title, timeout=6)
        finally:
            self._set_activity(key, None)
        self._refresh_soon()  # the write cleared the read cache already

    def _set_activity(self, key: tuple[str, int], text: str | None) -> None:
        """What runs right now, by (action, vmid); the header shows the latest."""
        if text is None:
            self._activities.pop(key, None)
        else:
            self._activities[key] = text
        if self.dashboard is not None:
            latest = list(self._activities.values())[-1] if self._activities else None
            self.dashboard.header.show_activity(latest)

    # ------------------------------------------------------------------ clusters

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clusters":
            return len(self.profiles) > 1 and self.make_service is not None
        return True

    def action_clusters(self) -> None:
        from tui.screens.clusters import ClustersScreen

        if self.make_service is None or isinstance(self.screen, ClustersScreen):
            return

        def chosen(choice: tuple[str, int | None] | None) -> None:
            if choice is None:
                return
            name, vmid = choice
            if name != self.service.profile.name:
                self._select_after_refresh = vmid
                self.run_worker(self.switch_cluster(name), group="switch", exclusive=True)
            elif vmid is not None:
                self.select_guest(vmid)

        screen = ClustersScreen(list(self.profiles.values()), self.service, self.make_service)
        self.push_screen(screen, callback=chosen)

    async def switch_cluster(self, name: str) -> None:
        """Show cluster ``name``: a new service under its own profile and policy, the
        dashboard composed anew (command panes belong to the old cluster's guests and close
        with it)."""
        if self.make_service is None or name not in self.profiles:
            return
        old = self.service
        self.workers.cancel_group(self, "refresh")
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self.service = self.make_service(self.profiles[name])
        self.snapshot, self.error = None, None
        self._activities.clear()
        dashboard = self.dashboard
        if dashboard is not None:
            await dashboard.recompose()  # header, tabs and tables of the new cluster
            dashboard.on_mount()
        await old.aclose()
        self.notify(f"Showing cluster {name}.", timeout=3)
        self._refresh_soon()

    # ------------------------------------------------------------------ navigation

    def action_show_view(self, view: str) -> None:
        if self.dashboard is not None:
            self.dashboard.show_view(view)

    def action_filter_guests(self) -> None:
        if self.dashboard is not None:
            self.dashboard.show_view("guests")
            self.dashboard.action_filter()

    def select_guest(self, vmid: int) -> None:
        if self.dashboard is not None:
            self.dashboard.select_guest(vmid)

    def pick_guest(self, action: str | None) -> None:
        """A second palette listing the guests ``action`` applies to (None: any, to jump)."""
        commands = guest_commands(self, action)
        if not commands:
            verb = POWER_ACTIONS[action].verb.lower() if action else "show"
            self.notify(f"No guest to {verb} right now.", timeout=4)
            return
        verb = POWER_ACTIONS[action].verb if action else "Go to"
        self.search_commands(commands, placeholder=f"{verb} which guest?")

    async def open_command_pane(self, guest: Guest) -> None:
        """The Commands view with ``guest``'s pane: what x does on the selected guest."""
        if self.dashboard is not None:
            await self.dashboard.open_commands(guest)

    def pick_exec_guest(self) -> None:
        """A second palette listing the VMs a command can run in."""
        commands = exec_guest_commands(self)
        if not commands:
            self.notify("No VM to run a command in right now.", timeout=4)
            return
        self.search_commands(commands, placeholder="Run a command in which VM?")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        sections = [
            ("Dashboard", self._keys(self)),
            ("Guests view", self._keys(self.dashboard) if self.dashboard else []),
            (
                "Command pane",
                [*self._keys(CommandPane), *self._keys(HistoryInput), *self._keys(CommandsView)],
            ),
            ("Confirmation", self._keys(ConfirmScreen)),
        ]
        self.push_screen(HelpScreen(sections))

    def _keys(self, owner: object) -> list[tuple[str, Binding]]:
        rows: list[tuple[str, Binding]] = []
        for binding in getattr(owner, "BINDINGS", []):
            if not isinstance(binding, Binding):
                continue
            keys = self.keymap_in_use.get(binding.id or "", binding.key)
            shown = ", ".join(self.get_key_display(Binding(k, "")) for k in keys.split(","))
            rows.append((shown, binding))
        if owner is self:
            palette = Binding("ctrl+p", "", tooltip="Command palette: actions, views, guests.")
            rows.append((self.get_key_display(palette), palette))
            quit_binding = Binding("ctrl+q", "", tooltip="Quit labdeck.")
            rows.append((self.get_key_display(quit_binding), quit_binding))
        return rows


def run_dashboard(service: Labdeck, **kwargs: Any) -> None:
    """Run the dashboard until the person quits (``kwargs`` go to ``LabdeckApp``)."""
    LabdeckApp(service, **kwargs).run()
