"""The TrueNAS tab (6): the system, its pools and datasets, and a detail pane.

Left: pools (health, usage bar) above the dataset tree. Right: Snapshots (of the dataset
under the tree's cursor and its children), Shares, Apps and Alerts. A load asks for the
system, pools and datasets together, then for the shown detail tab only: four reads per
refresh while the tab is shown, none while hidden (``LazyView``). Moving the tree's cursor
or switching the detail tab fetches that one listing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static, TabbedContent, TabPane

from core.errors import LabdeckError
from core.models import Table
from core.truenas_results import TrueNasPoolList, TrueNasSystem
from tui.widgets.lazy_view import LazyView
from tui.widgets.truenas_detail import AlertList, AppTable, ShareTable, SnapshotTable
from tui.widgets.truenas_guests import records
from tui.widgets.truenas_setup import NotConfigured, truenas_setup_text
from tui.widgets.truenas_storage import DatasetTree, PoolsPanel

#: most snapshots shown at once (a pool root with years of hourly snapshots has thousands)
SNAPSHOT_PAGE = 500


def system_line(system: TrueNasSystem) -> Text:
    """``truenas-demo  TrueNAS-25.10.6 · 1 of 2 pools unhealthy · 3 alerts, 1 critical``."""
    line = Text(system.hostname, style="bold")
    line.append(f"  {system.version}")
    if system.pools_unhealthy:
        unhealthy = len(system.pools_unhealthy)
        line.append(" · ")
        line.append(f"{unhealthy} of {system.pools_total} pools unhealthy", style="bold yellow")
    else:
        line.append(f" · {system.pools_total} pools healthy")
    if system.alerts_total:
        line.append(" · ")
        style = "bold red" if system.alerts_critical else "yellow"
        critical = f", {system.alerts_critical} critical" if system.alerts_critical else ""
        line.append(f"{system.alerts_total} alerts{critical}", style=style)
    return line


def say(note: Static, text: Text | str) -> None:
    """A tab's one-line note above its table; hidden when there is nothing to say."""
    note.update(text)
    note.display = bool(str(text))


def failure_text(what: str, exc: LabdeckError) -> Text:
    text = Text(f"✖ {what}: ", style="bold red")
    text.append(str(exc), style="")
    return text


class TrueNasView(LazyView):
    """The whole tab; with no TrueNAS configured, how to configure it."""

    def compose(self) -> ComposeResult:
        profile = self.app.service.profile
        if not profile.truenas.configured:
            yield NotConfigured(truenas_setup_text(profile), id="tn-setup")
            return
        yield Static(Text("Connecting to TrueNAS…", style="italic"), id="tn-system")
        with Horizontal(id="tn-body"):
            with Vertical(id="tn-left"):
                yield PoolsPanel(Text("Pools…", style="dim italic"), id="tn-pools")
                yield Static(Text("Datasets  used / avail", style="dim"), id="tn-datasets-title")
                yield DatasetTree(id="tn-datasets")
            with TabbedContent(id="tn-detail"):
                with TabPane("Snapshots", id="tn-snapshots"):
                    yield Static("", id="tn-snapshots-note", classes="tn-note")
                    yield SnapshotTable(id="tn-snapshot-table")
                with TabPane("Shares", id="tn-shares"):
                    yield Static("", id="tn-shares-note", classes="tn-note")
                    yield ShareTable(id="tn-share-table")
                with TabPane("Apps", id="tn-apps"):
                    yield Static("", id="tn-apps-note", classes="tn-note")
                    yield AppTable(id="tn-app-table")
                with TabPane("Alerts", id="tn-alerts"):
                    with VerticalScroll(id="tn-alert-scroll"):
                        yield Static("", id="tn-alerts-note", classes="tn-note")
                        yield AlertList(id="tn-alert-list")

    #: set by the first load: before it, nothing here may fetch (the tab may never be shown)
    _loaded = False

    @property
    def configured(self) -> bool:
        return self.app.service.profile.truenas.configured

    def focus_target(self) -> Widget:
        if not self.configured:
            return self
        return self.query_one(DatasetTree)

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        if not self.configured:
            return
        service = self.app.service
        try:
            system, pools, datasets = await asyncio.gather(
                service.call("truenas_system_info", {}),
                service.call("truenas_list_pools", {}),
                service.call("truenas_list_datasets", {}),
            )
        except LabdeckError as exc:
            self.query_one("#tn-system", Static).update(failure_text("TrueNAS", exc))
            return
        assert isinstance(system, TrueNasSystem)
        assert isinstance(pools, TrueNasPoolList) and isinstance(datasets, Table)
        self.query_one("#tn-system", Static).update(system_line(system))
        self.query_one(AppTable).host = system.hostname
        self.query_one(PoolsPanel).show(pools.pools)
        self.query_one(DatasetTree).show(records(datasets))
        alerts = f"Alerts ({system.alerts_total})" if system.alerts_total else "Alerts"
        self.query_one("#tn-detail", TabbedContent).get_tab("tn-alerts").label = alerts
        self._loaded = True
        await self.load_detail()

    def reload_detail(self) -> None:
        """Fetch the shown detail tab again (a newer request cancels an older one)."""
        self.run_worker(
            self.load_detail(), group="truenas-detail", exclusive=True, exit_on_error=False
        )

    async def load_detail(self) -> None:
        loaders: dict[str, Callable[[], Awaitable[None]]] = {
            "tn-snapshots": self._load_snapshots,
            "tn-shares": self._load_shares,
            "tn-apps": self._load_apps,
            "tn-alerts": self._load_alerts,
        }
        active = self.query_one("#tn-detail", TabbedContent).active
        if active in loaders:
            await loaders[active]()

    #: the dataset whose snapshots were asked for last (the tree's cursor may re-announce it)
    _snapshots_of: str | None = None

    async def _load_snapshots(self) -> None:
        dataset = self.query_one(DatasetTree).dataset
        self._snapshots_of = dataset
        note = self.query_one("#tn-snapshots-note", Static)
        if dataset is None:
            say(note, Text("Pick a dataset on the left.", style="dim italic"))
            return
        params = {"dataset": dataset, "recursive": True, "limit": SNAPSHOT_PAGE}
        listing = await self._fetch("truenas_list_snapshots", params, note)
        if listing is None:
            return
        self.query_one(SnapshotTable).show(listing, dataset)
        if listing.total == 0:
            say(note, Text(f"No snapshots of {dataset}.", style="dim italic"))
            return
        more = f", the first {len(listing.rows)} shown" if listing.total > len(listing.rows) else ""
        say(note, Text(f"{listing.total} snapshots of {dataset} and below{more}", style="dim"))

    async def _load_shares(self) -> None:
        note = self.query_one("#tn-shares-note", Static)
        listing = await self._fetch("truenas_list_shares", {}, note)
        if listing is not None:
            self.query_one(ShareTable).show(listing)
            say(note, Text("No shares." if not listing.rows else "", style="dim italic"))

    async def _load_apps(self) -> None:
        note = self.query_one("#tn-apps-note", Static)
        listing = await self._fetch("truenas_list_apps", {}, note)
        if listing is not None:
            self.query_one(AppTable).show(listing)
            hint = "S start · K stop (asks first)" if listing.rows else "No apps installed."
            say(note, Text(hint, style="dim italic"))

    async def _load_alerts(self) -> None:
        note = self.query_one("#tn-alerts-note", Static)
        listing = await self._fetch("truenas_list_alerts", {}, note)
        if listing is not None:
            self.query_one(AlertList).show(listing)
            say(note, "")

    async def _fetch(self, operation: str, params: dict[str, object], note: Static) -> Table | None:
        """One listing; a failure is said in the tab's note (the rows shown stay)."""
        try:
            listing = await self.app.service.call(operation, params)
        except LabdeckError as exc:
            say(note, failure_text("not loaded", exc))
            return None
        assert isinstance(listing, Table)
        return listing

    # ------------------------------------------------------------------ events

    @on(DatasetTree.Chosen)
    def _dataset_chosen(self, event: DatasetTree.Chosen) -> None:
        event.stop()
        snapshots_shown = self.query_one("#tn-detail", TabbedContent).active == "tn-snapshots"
        if snapshots_shown and event.dataset != self._snapshots_of:
            self.reload_detail()

    @on(TabbedContent.TabActivated, "#tn-detail")
    def _detail_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        if self._loaded:  # the first activation comes at mount, maybe never shown
            self.reload_detail()
