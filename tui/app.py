"""labdeck's dashboard: one Proxmox VE cluster for a person, on the same core as the agents.

The app owns the refresh loop and the guest actions; the dashboard screen lays out what
they produce ("attributes down, messages up"). Every error ends on screen as text (header,
notification), never as a traceback.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding, Keymap
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets.tree import TreeNode
from textual.worker import Worker, WorkerState

from core.config import Profile
from core.errors import LabdeckError, PolicyDenied
from core.models import Guest, PowerResult
from core.ops import catalogue
from core.pve_results import PoolResult
from core.service import Labdeck
from core.tls import transport_warnings
from core.truenas_results import TrueNasChange
from tui.commands import LabdeckCommands, exec_guest_commands, guest_commands
from tui.data import POWER_ACTIONS, ClusterSnapshot, WriteRequest, fetch_snapshot
from tui.formatting import guest_label
from tui.prefs import ThemeStore, known_binding_ids
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.forms import ActionForm
from tui.screens.guest_screen import GuestScreen
from tui.screens.help import HelpScreen
from tui.screens.node_screen import NodeScreen
from tui.widgets.command_pane import CommandPane, HistoryInput
from tui.widgets.commands_view import CommandsView
from tui.widgets.node_table import NodeTable
from tui.widgets.pool_tree import PoolTree
from tui.widgets.storage_view import StorageView
from tui.widgets.tasks_view import TaskLogScreen, TasksView
from tui.widgets.truenas_detail import AppTable
from tui.widgets.truenas_storage import DatasetTree

Clock = Callable[[], datetime]


def _local_now() -> datetime:
    return datetime.now().astimezone()


class LabdeckApp(App[None]):
    """``LabdeckApp(service, refresh_interval=5.0, clock=None, keymap=None, themes=None)``.

    ``clock`` stamps each refresh (tests inject a frozen one). The service's connections
    are opened in the app's event loop and closed when the app exits; the service itself
    stays usable. ``keymap`` remaps keys by binding id (``[tui] keymap``); ``themes``
    restores the theme picked last time and keeps the next pick (None: the default theme,
    nothing written — tests and snapshots stay independent of the person's state).
    ``freeze_when_painted``: see ``_freeze_long_lived`` (``run_dashboard`` sets it).
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
        Binding("5", "show_view('storage')", "Storage", id="view.storage", show=False,
                tooltip="Show the storages of every node, and what one holds (Enter)."),
        Binding("6", "show_view('truenas')", "TrueNAS", id="view.truenas", show=False,
                tooltip="Show the TrueNAS view: pools, datasets, snapshots, shares, apps, "
                "alerts."),
        Binding("7", "show_view('tasks')", "Tasks", id="view.tasks", show=False,
                tooltip="Show the cluster's running and recent tasks, and their logs."),
        Binding("8", "show_view('activity')", "Activity", id="view.activity", show=False,
                tooltip="Show the activity log: every call of every face, agents' too, live."),
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
        keymap: dict[str, str] | None = None,
        themes: ThemeStore | None = None,
        freeze_when_painted: bool = False,
    ) -> None:
        super().__init__()
        self._freeze_when_painted = freeze_when_painted
        self._froze = False
        self.user_keymap = dict(keymap or {})
        self.themes = themes
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
        self._activities: dict[tuple[str, int | str], str] = {}
        #: UPIDs of the tasks this dashboard started (the Tasks view marks them "you")
        self.own_tasks: set[str] = set()
        self.keymap_in_use: dict[str, str] = {}
        self._saved_theme: str | None = None

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
        """The dashboard screen, or None once the app is closing (a refresh that ends
        after the screens were torn down has nothing to show its result on). Shutting
        down clears ``is_running`` before it removes the screens' widgets, and
        ``_closing`` is set only after: both end the dashboard's life."""
        if self._closing or not self.is_running:
            return None
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen) and screen.is_attached:
                return screen
        return None

    def guests(self) -> list[Guest]:
        return [] if self.snapshot is None else list(self.snapshot.inventory.guests)

    def on_mount(self) -> None:
        for warning in transport_warnings(self.service.profile):  # on every start, not once
            self.notify(warning, title="Insecure connection", severity="warning", timeout=30)
        self._apply_preferences()
        self._refresh_soon()

    # ------------------------------------------------------------------ preferences

    def _apply_preferences(self) -> None:
        """The person's keymap and theme; what cannot apply is said, and the rest applies."""
        if self.user_keymap:
            known = known_binding_ids()
            unknown = sorted(set(self.user_keymap) - set(known))
            self.set_keymap({k: v for k, v in self.user_keymap.items() if k in known})
            if unknown:
                self.notify(
                    f"Unknown binding ids in [tui] keymap: {', '.join(unknown)}.\n"
                    f"Known ids: {', '.join(known)}.",
                    title="Keymap",
                    severity="warning",
                    timeout=20,
                )
        if self.themes is None:
            return
        wanted = self.themes.initial_theme()
        if wanted and wanted in self.available_themes:
            self.theme = wanted
        elif wanted:
            self.notify(
                f"No theme named {wanted!r}; using {self.theme!r}. "
                "ctrl+p, 'Theme' lists the themes.",
                title="Theme",
                severity="warning",
                timeout=10,
            )
        self._saved_theme = self.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        if self.themes is not None and theme.name != self._saved_theme:
            try:
                self.themes.save(theme.name)
            except OSError as exc:
                self.notify(f"Cannot keep the theme: {exc}", severity="warning", timeout=6)
            else:
                self._saved_theme = theme.name

    async def on_unmount(self) -> None:
        # The HTTP connections belong to this app's event loop.
        await self.service.aclose()
        if self._froze:  # the process goes on (a test, an embedding): back to the collector
            gc.unfreeze()

    def _freeze_long_lived(self) -> None:
        """Exempt what the first paint built from the cyclic GC, once.

        The widgets, styles, caches and the first listing (150,000-190,000 objects at 100
        to 5,000 guests) live as long as the dashboard, and every full collection walked
        them all, holding the loop: 65-120 ms pauses in refreshes at any cluster size. Once
        frozen, a full collection walks what was made since (~10 ms at 5,000 guests).
        Reference counting still frees frozen objects; only reference cycles among them
        that become garbage stay, and those are made once, at start-up.
        """
        if self._freeze_when_painted:
            self._freeze_when_painted = False
            self._froze = True
            gc.freeze()

    # ------------------------------------------------------------------ refresh loop

    def action_refresh(self) -> None:
        """Refresh now, past the read cache: a person asking wants what is true now
        (the cluster's name and the pools too, which timed refreshes keep)."""
        if self.service.profile.pve.configured:
            self.service.pve.invalidate()
        self._full_refresh = True
        self._refresh_soon()

    #: the next refresh asks for everything again (see ``action_refresh``)
    _full_refresh = False

    def _refresh_soon(self) -> None:
        """Start a refresh; the next one is armed when this one ends: polls never overlap."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        if self.is_running:  # a write ending while the app shuts down starts nothing
            self._refresh()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh(self) -> None:
        try:
            snapshot = await fetch_snapshot(self.service, self.snapshot, **self.refresh_plan())
            self._full_refresh = False
        except LabdeckError as exc:
            self._show_error(exc.kind, str(exc))
            self.error = exc
        else:
            self.snapshot, self.error = snapshot, None
            self._show_snapshot(snapshot)
        self._arm_refresh()

    def refresh_plan(self) -> dict[str, bool]:
        """What the next refresh asks for besides the guests (``fetch_snapshot``'s flags).

        The pools only while they are shown, the cluster's name once; both until first
        known (the tab label and the palette's "Go to pool" use the pools) and on a
        refresh a person asked for. A timed refresh is then one request per cluster.
        """
        dashboard = self.dashboard
        first = self.snapshot is None or self._full_refresh
        pools_known = self.snapshot is not None and self.snapshot.pools is not None
        pools_shown = dashboard is not None and dashboard.active_view == "pools"
        return {"pools": first or not pools_known or pools_shown, "overview": first}

    @property
    def next_refresh_s(self) -> float:
        """Seconds to the next timed refresh: the interval, or longer when the cluster
        asked to be left alone for longer (a 429's Retry-After)."""
        asked = getattr(self.error, "retry_after_s", None) or 0.0
        return max(self.refresh_interval, asked)

    def _arm_refresh(self) -> None:
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        if self.is_running:  # a refresh that outlived the app arms no timer on it
            self._refresh_timer = self.set_timer(self.next_refresh_s, self._refresh_soon)

    def _show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        dashboard = self.dashboard
        if dashboard is None:
            return
        overview = snapshot.overview
        name = overview.cluster_name if overview else None
        if not snapshot.pve and snapshot.truenas is not None:
            name = snapshot.truenas.host  # TrueNAS only: the system is what the header names
        dashboard.header.show_connected(self.clock(), name, snapshot.summary)
        dashboard.show_snapshot(snapshot)
        self._say_truenas_error(snapshot)
        if self._freeze_when_painted:
            self.call_after_refresh(self._freeze_long_lived)
        if self._select_after_refresh is not None:  # a guest picked in the clusters list
            vmid, self._select_after_refresh = self._select_after_refresh, None
            dashboard.select_guest(vmid)

    _truenas_said: str | None = None

    def _say_truenas_error(self, snapshot: ClusterSnapshot) -> None:
        """TrueNAS failing beside a cluster: said once (not each refresh), and when it is back."""
        error = snapshot.truenas_error
        text = None if error is None else str(error)
        if text == self._truenas_said:
            return
        if text is not None:
            self.notify(text, title="TrueNAS: guests not shown", severity="warning", timeout=10)
        else:
            self.notify("TrueNAS answers again.", title="TrueNAS", timeout=4)
        self._truenas_said = text

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
        """Run a power action on ``guest``; disruptive ones ask a person first."""
        action = POWER_ACTIONS[name]
        where = "VM" if guest.kind == "qemu" else "container"
        self.request_write(
            WriteRequest(
                operation=action.operation,
                params={"vmid": guest.vmid},
                verb=action.verb,
                doing=action.doing,
                label=guest_label(guest),
                question=f"{action.verb} {guest.name}?",
                detail=f"{where} {guest.vmid} on {guest.node}, now {guest.status}.",
                key=(action.name, guest.vmid),
            )
        )

    def request_write(self, write: WriteRequest) -> None:
        """Run ``write``; operations that need a confirmation ask a person first.

        In read-only mode the core refuses at once; that refusal is the message shown.
        """
        operation = catalogue()[write.operation]
        if not (operation.confirm and self.service.policy.allow_writes):
            self._write(write, confirmed=not operation.confirm)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._write(write, confirmed=True)
            else:
                self.notify(f"{write.verb} {write.label}: cancelled.", timeout=3)

        detail = f"{write.detail}\n{operation.summary}"
        self.push_screen(ConfirmScreen(write.question, detail, write.verb), callback=answered)

    @work(group="power", exit_on_error=False)
    async def _write(self, write: WriteRequest, *, confirmed: bool) -> None:
        activity = f"{write.doing} {write.label}…"
        self._set_activity(write.key, activity)

        def progress(elapsed_s: float, message: str) -> None:
            self._set_activity(write.key, f"{activity} {elapsed_s:.0f}s")

        title = f"{write.verb} {write.label}"
        try:
            result = await self.service.call(
                write.operation, write.params, confirmed=confirmed, progress=progress
            )
        except PolicyDenied as exc:
            self.notify(str(exc), title=f"{title}: refused", severity="warning", timeout=8)
        except LabdeckError as exc:
            self.notify(_write_failure(exc), title=f"{title}: failed", severity="error", timeout=10)
        else:
            message = "done."
            if isinstance(result, PowerResult | TrueNasChange | PoolResult):
                message = result.message
            self.notify(message, title=title, timeout=6)
            if isinstance(upid := getattr(result, "upid", None), str):
                self.own_tasks.add(upid)
        finally:
            self._set_activity(write.key, None)
        self._refresh_soon()  # the write cleared the read cache already

    @property
    def activities(self) -> dict[tuple[str, int | str], str]:
        """What this dashboard runs right now, by (action, target) (the Tasks view shows it)."""
        return dict(self._activities)

    def _set_activity(self, key: tuple[str, int | str], text: str | None) -> None:
        """What runs right now, by (action, target); the header shows the latest."""
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

    def select_node(self, node: str) -> None:
        """The nodes view with the cursor on ``node`` (the palette's "Go to node")."""
        if self.dashboard is None:
            return
        self.dashboard.show_view("nodes")
        table = self.dashboard.query_one(NodeTable)
        if node in table.rows:
            table.move_cursor(row=table.get_row_index(node))

    @work(group="jump", exclusive=True, exit_on_error=False)
    async def select_dataset(self, dataset: str) -> None:
        """The TrueNAS view with the cursor on ``dataset`` (the palette's "Go to dataset").

        The view loads when its tab is shown, so the dataset may appear a moment later.
        """
        if self.dashboard is None:
            return
        self.dashboard.show_view("truenas")
        tree = self.dashboard.query_one(DatasetTree)
        for _ in range(200):  # up to ~10 s for the view's first load
            node = next((n for n in tree_nodes(tree.root) if n.data == dataset), None)
            if node is not None:
                tree.move_cursor(node)
                tree.scroll_to_node(node, animate=False)
                return
            await asyncio.sleep(0.05)
        self.notify(f"No dataset {dataset} on TrueNAS right now.", severity="warning", timeout=5)

    def select_pool(self, poolid: str) -> None:
        """The pools view with the cursor on ``poolid``'s branch (the palette's "Go to pool")."""
        if self.dashboard is None:
            return
        self.dashboard.show_view("pools")
        tree = self.dashboard.query_one(PoolTree)
        branch = next((b for b in tree.root.children if b.data == poolid), None)
        if branch is not None:
            # a tree just brought in step places its branches on lines at its next refresh
            tree.call_after_refresh(tree.move_cursor, branch)
            tree.call_after_refresh(tree.scroll_to_node, branch, animate=False)

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
            ("Pools view", self._keys(PoolTree)),
            ("Storage view", self._keys(StorageView)),
            ("TrueNAS view, Apps tab", self._keys(AppTable)),
            ("Tasks view", [*self._keys(TasksView), *self._keys(TaskLogScreen)]),
            ("Guest detail (Enter on a guest)", self._keys(GuestScreen)),
            ("Action forms", self._keys(ActionForm)),
            ("Node graphs (Enter on a node)", self._keys(NodeScreen)),
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


def _write_failure(error: LabdeckError) -> str:
    """The core's message for a failed write. Where it sends the person to the cluster's
    task list (the write may have run and is never resent), it names the operation an
    agent calls; a person here has the Tasks view for that."""
    text = str(error)
    if "pve_list_tasks" in text:
        text += " The Tasks view (7) shows that list."
    return text


def tree_nodes(node: TreeNode[Any]) -> Iterator[TreeNode[Any]]:
    """Every node below ``node``, depth first."""
    for child in node.children:
        yield child
        yield from tree_nodes(child)


def run_dashboard(service: Labdeck, **kwargs: Any) -> None:
    """Run the dashboard until the person quits (``kwargs`` go to ``LabdeckApp``)."""
    kwargs.setdefault("freeze_when_painted", True)
    LabdeckApp(service, **kwargs).run()
