"""The dashboard's TrueNAS side: the TrueNAS tab (6), TrueNAS guests in the Guests view, and
profiles with only one of the two backends. Driven like a person drives it (Pilot), against
the simulator over real sockets; plus SVG snapshots (session ``sim``, frozen metrics/clock).
"""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest
from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from core.audit import AuditLog
from core.config import PolicySettings, Profile, PveSettings, TrueNasSettings
from core.errors import InvalidInput
from core.models import Table
from core.service import Labdeck
from labdeck.demo import demo_profile
from tests.support.tui import FROZEN, dashboard_app, loaded, pressing, settle, shown, until, viewing
from tui.app import LabdeckApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.widgets.cluster_header import ClusterHeader
from tui.widgets.guest_table import GuestTable
from tui.widgets.truenas_detail import AppTable, ShareTable, SnapshotTable
from tui.widgets.truenas_guests import TrueNasVm, mixed_sort_key
from tui.widgets.truenas_setup import NotConfigured, truenas_host
from tui.widgets.truenas_storage import DatasetTree, PoolsPanel
from tui.widgets.truenas_view import TrueNasView

WIDE = (120, 40)
NARROW = (80, 24)
PVE_VMIDS = [str(vmid) for vmid in range(100, 124)]
TRUENAS_KEYS = ["tn:1", "tn:2", "tn:ct:dev01", "tn:ct:web01"]  # the seeded TrueNAS guests


# ---------------------------------------------------------------- helpers


def make_app(service: Labdeck, refresh_interval: float = 3600.0) -> LabdeckApp:
    return LabdeckApp(service, refresh_interval=refresh_interval, clock=lambda: FROZEN)


def profile_of(
    handle: Any, *, pve: bool = True, truenas: bool = True, allow_writes: bool = False
) -> Profile:
    """The demo profile of ``handle`` without one of its two backends."""
    profile = demo_profile(handle, allow_writes=allow_writes)
    update: dict[str, object] = {}
    if not pve:
        update["pve"] = PveSettings()
    if not truenas:
        update["truenas"] = TrueNasSettings()
    return profile.model_copy(update=update)


def service_of(handle: Any, audit: AuditLog | None = None, **kwargs: bool) -> Labdeck:
    return Labdeck(profile_of(handle, **kwargs), face="tui", audit=audit)


def screen(app: LabdeckApp) -> DashboardScreen:
    dashboard = app.screen_stack[0]
    assert isinstance(dashboard, DashboardScreen)
    return dashboard


def row_keys(grid: DataTable[Any]) -> list[str]:
    return [str(row.key.value) for row in grid.ordered_rows]


def cell(grid: DataTable[Any], row: str, column: str) -> str:
    return str(grid.get_cell(row, column))


def plain(renderable: RenderableType, width: int = 100) -> str:
    """What ``renderable`` shows, as plain text."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def text_of(app: LabdeckApp, selector: str) -> str:
    return plain(screen(app).query_one(selector, Static).content).strip()


def header_text(app: LabdeckApp) -> str:
    return app.screen_stack[0].query_one(ClusterHeader).text


def notifications(app: LabdeckApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def method_log(handle: Any) -> list[str]:
    """The JSON-RPC methods the TrueNAS simulator was asked for, in order."""
    return list(handle.simulator.truenas.method_log)


async def show_detail(pilot: Pilot[None], tab: str) -> None:
    """Switch the TrueNAS view's detail pane to ``tab`` (tn-snapshots, tn-apps, ...)."""
    screen(pilot.app).query_one("#tn-detail", TabbedContent).active = tab  # type: ignore[arg-type]
    await settle(pilot)


async def choose_dataset(pilot: Pilot[None], dataset: str) -> None:
    tree = screen(pilot.app).query_one(DatasetTree)  # type: ignore[arg-type]
    tree.focus()
    for _ in range(len(tree._by_name) + 1):  # bounded: one step per dataset at most
        if tree.dataset == dataset:
            break
        await pilot.press("down")
    assert tree.dataset == dataset
    await settle(pilot)


async def app_state(handle: Any, name: str) -> str:
    async with Labdeck(profile_of(handle), face="cli") as lab:
        listing = await lab.call("truenas_list_apps", {})
    assert isinstance(listing, Table)
    return next(str(row[1]) for row in listing.rows if row[0] == name)


async def vm_status(handle: Any, key: str) -> str:
    async with Labdeck(profile_of(handle), face="cli") as lab:
        listing = await lab.call("truenas_list_vms", {})
    assert isinstance(listing, Table)
    for kind, ident, _name, status, *_ in listing.rows:
        if (f"tn:{ident}" if kind == "vm" else f"tn:ct:{ident}") == key:
            return str(status)
    raise AssertionError(f"no TrueNAS guest {key}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------- the TrueNAS tab


async def test_truenas_tab_shows_system_pools_datasets_and_snapshots(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        assert screen(app).active_view == "truenas"
        system = text_of(app, "#tn-system")
        assert "truenas-demo" in system and "TrueNAS-25.10.6" in system
        assert "1 of 2 pools unhealthy" in system and "3 alerts, 1 critical" in system
        pools = plain(screen(app).query_one(PoolsPanel).content)
        assert "backup" in pools and "DEGRADED" in pools and "tank" in pools and "ONLINE" in pools
        assert "4.5T/7.3T 62%" in pools and "17T/44T 39%" in pools
        assert "One or more devices are faulted. (sdg)" in pools
        tree = screen(app).query_one(DatasetTree)
        assert sorted(tree._by_name) == [
            "backup", "backup/tank-replica", "tank", "tank/apps", "tank/home",
            "tank/home/alice", "tank/home/bob", "tank/media", "tank/media/movies",
            "tank/media/photos", "tank/vms", "tank/vms/debian-disk",
        ]  # fmt: skip
        alice = tree._by_name["tank/home/alice"]
        assert alice.parent is tree._by_name["tank/home"]
        assert str(alice.label) == "alice  559G / 16T  quota 931G  lz4"
        assert "zvol" in str(tree._by_name["tank/vms/debian-disk"].label)
        # the first dataset is chosen; it has no snapshots
        assert tree.dataset == "backup"
        assert text_of(app, "#tn-snapshots-note") == "No snapshots of backup."
        assert "Alerts (3)" in str(
            screen(app).query_one("#tn-detail", TabbedContent).get_tab("tn-alerts").label
        )
        # a dataset's snapshots include its children's, named relative to it
        await choose_dataset(pilot, "tank/home")
        snapshots = screen(app).query_one(SnapshotTable)
        assert row_keys(snapshots) == [
            f"tank/home/alice@auto-2025-{day}_16-30" for day in ("10-31", "11-01", "11-02")
        ]
        first = row_keys(snapshots)[0]
        assert cell(snapshots, first, "snapshot") == "alice@auto-2025-10-31_16-30"
        assert cell(snapshots, first, "created") == "2025-10-31 16:30"
        assert cell(snapshots, first, "used") == "771M"
        assert text_of(app, "#tn-snapshots-note") == "3 snapshots of tank/home and below"
        assert "Traceback" not in header_text(app)


@pytest.mark.parametrize(
    ("release", "containers"),
    [("25.04", ["tn:ct:dev01", "tn:ct:web01"]), ("26", ["tn:ct:1", "tn:ct:2"])],
)
async def test_each_release_fills_the_tab_and_the_guests(release, containers, make_sim) -> None:
    handle = make_sim(truenas_version=release)
    app = make_app(service_of(handle, pve=False))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        # on 26 container ids are numbers, as VM ids are: the prefix keeps the rows apart
        assert sorted(row_keys(screen(app).query_one(GuestTable))) == ["tn:1", "tn:2", *containers]
        await pilot.press("6")
        await settle(pilot)
        assert f"TrueNAS-{release}" in text_of(app, "#tn-system")
        await choose_dataset(pilot, "tank/media")
        assert len(screen(app).query_one(SnapshotTable).rows) == 3  # photos' three


async def test_detail_tabs_show_shares_apps_and_alerts(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await show_detail(pilot, "tn-shares")
        shares = screen(app).query_one(ShareTable)
        assert row_keys(shares) == ["smb:1", "smb:2", "nfs:1", "nfs:2"]
        assert cell(shares, "smb:1", "name") == "media"
        assert cell(shares, "nfs:1", "path") == "/mnt/tank/media/movies"
        assert cell(shares, "nfs:1", "clients") == "192.168.1.0/24"
        await show_detail(pilot, "tn-apps")
        apps = screen(app).query_one(AppTable)
        assert row_keys(apps) == ["broken-app", "jellyfin", "nextcloud", "plex"]
        assert cell(apps, "plex", "state") == "RUNNING"
        assert cell(apps, "broken-app", "state") == "CRASHED"
        assert cell(apps, "nextcloud", "update") == "available"
        await show_detail(pilot, "tn-alerts")
        alerts = text_of(app, "#tn-alert-list")
        assert alerts.index("CRITICAL") < alerts.index("WARNING") < alerts.index("INFO")
        assert "Pool backup state is DEGRADED" in alerts and "2025-11-03 13:30" in alerts


async def test_hidden_truenas_tab_costs_no_requests(make_sim, make_service) -> None:
    handle = make_sim()
    app = make_app(make_service(handle, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        # the refresh asks for the guests only; storage listings wait for the tab
        before = method_log(handle)
        assert "vm.query" in before
        assert "pool.dataset.query" not in before and "app.query" not in before
        await pilot.press("6")
        await settle(pilot)
        shown = method_log(handle)[len(before) :]
        assert "pool.dataset.query" in shown and "pool.query" in shown
        assert "app.query" not in shown  # the Apps tab is not shown: not fetched
        await show_detail(pilot, "tn-apps")
        assert "app.query" in method_log(handle)[len(before) + len(shown) :]


async def test_stop_app_asks_then_stops_it(fresh_sim, make_service, audit_log) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await show_detail(pilot, "tn-apps")
        apps = screen(app).query_one(AppTable)
        apps.focus()
        apps.move_cursor(row=apps.get_row_index("plex"))
        await pilot.pause()
        await pilot.press("K")
        assert isinstance(app.screen, ConfirmScreen)
        assert str(app.screen.query_one("#confirm-question", Static).content) == "Stop app plex?"
        detail = str(app.screen.query_one("#confirm-detail", Static).content)
        assert "TrueNAS app plex on truenas-demo, now running." in detail
        assert await app_state(fresh_sim, "plex") == "RUNNING"  # nothing sent before yes
        await pilot.click("#confirm")
        await settle(pilot)
        await until(pilot, lambda: cell(apps, "plex", "state") == "STOPPED")
        assert await app_state(fresh_sim, "plex") == "STOPPED"
        assert any(n.startswith("Stop app plex:") for n in notifications(app))
        lines = [line for line in audit_log.path.read_text().splitlines() if "stop_app" in line]
        assert len(lines) == 1 and '"outcome": "ok"' in lines[0]


async def test_start_app_needs_no_question(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await show_detail(pilot, "tn-apps")
        apps = screen(app).query_one(AppTable)
        apps.focus()
        apps.move_cursor(row=apps.get_row_index("jellyfin"))
        await pilot.pause()
        await pilot.press("S")
        assert not isinstance(app.screen, ConfirmScreen)
        await settle(pilot)
        await until(pilot, lambda: cell(apps, "jellyfin", "state") == "RUNNING")
        assert await app_state(fresh_sim, "jellyfin") == "RUNNING"


async def test_read_only_refuses_app_stop_without_asking(sim, make_service, audit_log) -> None:
    app = make_app(make_service(sim, allow_writes=False, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await show_detail(pilot, "tn-apps")
        apps = screen(app).query_one(AppTable)
        apps.focus()
        apps.move_cursor(row=apps.get_row_index("plex"))
        await pilot.pause()
        await pilot.press("K")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        [message] = [n for n in notifications(app) if "plex" in n]
        assert message.startswith("Stop app plex: refused") and "read-only" in message
        assert await app_state(sim, "plex") == "RUNNING"
        assert '"outcome": "refused"' in audit_log.path.read_text()


# ---------------------------------------------------------------- TrueNAS guests


async def test_guests_view_lists_truenas_guests_beside_the_cluster(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        grid = screen(app).query_one(GuestTable)
        assert row_keys(grid) == PVE_VMIDS + TRUENAS_KEYS
        assert cell(grid, "tn:1", "name") == "debian"
        assert cell(grid, "tn:1", "node") == "truenas-demo"
        assert cell(grid, "tn:2", "status") == "stopped"
        assert cell(grid, "tn:ct:web01", "kind") == "truenas-ct"
        assert cell(grid, "tn:1", "mem") == "4.0G"
        label = screen(app).query_one("#views", TabbedContent).get_tab("guests").label
        assert str(label) == "Guests (28)"
        # the filter and the sort treat them like the cluster's guests
        await pilot.press("slash", *"truenas-ct", "enter")
        assert row_keys(grid) == ["tn:ct:dev01", "tn:ct:web01"]
        await pilot.press("escape")
        grid.sort_by("name", reverse=False)
        names = [cell(grid, key, "name") for key in row_keys(grid)]
        assert names == sorted(names, key=str.lower)
        # on a TrueNAS row: start / shut down / stop apply, reboot and exec do not
        grid.move_cursor(row=grid.get_row_index("tn:1"))
        await pilot.pause()
        assert grid.selected is None and grid.selected_truenas is not None
        dashboard = screen(app)
        assert dashboard.check_action("power", ("start",)) is True
        assert dashboard.check_action("power", ("stop",)) is True
        assert dashboard.check_action("power", ("reboot",)) is None
        assert dashboard.check_action("exec", ()) is None
        detail = text_of(app, "#guest-detail")
        assert "TrueNAS VM 1 on truenas-demo" in detail


async def test_stop_truenas_vm_asks_then_powers_it_off(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        grid = screen(app).query_one(GuestTable)
        grid.move_cursor(row=grid.get_row_index("tn:1"))
        await pilot.pause()
        await pilot.press("R")  # reboot: no TrueNAS equivalent, nothing happens
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("K")
        assert isinstance(app.screen, ConfirmScreen)
        assert str(app.screen.query_one("#confirm-question", Static).content) == "Stop debian?"
        await pilot.press("escape")  # cancelled: nothing sent
        await settle(pilot)
        assert await vm_status(fresh_sim, "tn:1") == "RUNNING"
        assert "Stop debian (tn:1): cancelled." in "\n".join(notifications(app))
        await pilot.press("K")
        await pilot.click("#confirm")
        await settle(pilot)
        await until(pilot, lambda: cell(grid, "tn:1", "status") == "stopped")
        assert await vm_status(fresh_sim, "tn:1") == "STOPPED"
        # and start it again, no question asked
        await pilot.press("S")
        assert not isinstance(app.screen, ConfirmScreen)
        await settle(pilot)
        await until(pilot, lambda: cell(grid, "tn:1", "status") == "running")
        assert await vm_status(fresh_sim, "tn:1") == "RUNNING"


async def test_palette_offers_truenas_guests(sim, make_service) -> None:
    from textual.command import Hit

    from tui.commands import LabdeckCommands

    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        provider = LabdeckCommands(app.screen)
        hits = [hit async for hit in provider.search("debian") if isinstance(hit, Hit)]
        found = [hit.text for hit in hits]
        assert "Stop guest debian (tn:1)" in found and "Shut down guest debian (tn:1)" in found
        assert "Start guest debian (tn:1)" not in found  # it runs already
        assert "Reboot guest debian (tn:1)" not in found  # no TrueNAS equivalent
        [go] = [hit for hit in hits if hit.text == "Go to guest debian (tn:1)"]
        go.command()
        await settle(pilot)
        assert screen(app).active_view == "guests"
        assert screen(app).guest_table.current_key == "tn:1"


def test_mixed_rows_sort_by_one_key_shape() -> None:
    from core.models import Guest

    guest = Guest(vmid=100, name="pihole", node="pve1", kind="lxc", status="running", mem=5)
    vm = TrueNasVm(kind="vm", id=1, name="debian", status="running", host="nas", memory=9)
    container = TrueNasVm(kind="container", id="web01", name="web01", status="running", host="nas")
    for column in ("vmid", "name", "node", "kind", "status", "cpu", "mem", "uptime", "pool"):
        ordered = sorted([container, guest, vm], key=lambda item: mixed_sort_key(column, item))
        assert len(ordered) == 3  # comparable in every column
    by_id = sorted([container, vm, guest], key=lambda item: mixed_sort_key("vmid", item))
    assert by_id == [guest, vm, container]
    by_name = sorted([container, vm, guest], key=lambda item: mixed_sort_key("name", item))
    assert [item.name for item in by_name] == ["debian", "pihole", "web01"]


# ---------------------------------------------------------------- one backend only


async def test_only_truenas_shows_its_guests_and_no_cluster_errors(make_sim, audit_log) -> None:
    handle = make_sim()
    app = make_app(service_of(handle, audit_log, pve=False))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        header = header_text(app)
        assert "truenas-demo" in header and "demo@127.0.0.1" in header
        assert "connected · 09:26:53" in header and "✖" not in header
        assert "truenas-demo · vms 2/4 running" in header
        grid = screen(app).query_one(GuestTable)
        assert row_keys(grid) == TRUENAS_KEYS
        for view in ("nodes", "pools"):
            await pilot.press("2" if view == "nodes" else "3")
            await settle(pilot)
            pane = screen(app).query_one("#views", TabbedContent).get_pane(view)
            [message] = pane.query(NotConfigured)
            assert "No Proxmox VE cluster configured" in plain(message.content)
        await pilot.press("6")
        await settle(pilot)
        assert "truenas-demo" in text_of(app, "#tn-system")
        assert handle.request_log == []  # not one request to the (unconfigured) cluster
        assert not [n for n in notifications(app) if "Proxmox" in n or "pve" in n.lower()]


async def test_only_pve_says_how_to_configure_truenas(make_sim, audit_log) -> None:
    handle = make_sim()
    app = make_app(service_of(handle, audit_log, truenas=False))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert row_keys(screen(app).query_one(GuestTable)) == PVE_VMIDS
        await pilot.press("6")
        await settle(pilot)
        [message] = screen(app).query_one(TrueNasView).query(NotConfigured)
        text = plain(message.content, width=200)
        assert "No TrueNAS system configured" in text
        assert "[profiles.demo.truenas]" in text and "url = " in text
        assert "labdeck config set-token --kind truenas-api-key" in text
        assert method_log(handle) == []  # nothing asked of TrueNAS
        assert "✖" not in header_text(app)


async def test_truenas_down_beside_a_cluster_keeps_the_cluster(sim, audit_log) -> None:
    profile = profile_of(sim)
    unreachable = f"wss://127.0.0.1:{closed_port()}/api/current"
    profile = profile.model_copy(
        update={"truenas": profile.truenas.model_copy(update={"url": unreachable})}
    )
    app = make_app(Labdeck(profile, face="tui", audit=audit_log))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert row_keys(screen(app).query_one(GuestTable)) == PVE_VMIDS
        assert "connected" in header_text(app) and "✖" not in header_text(app)
        [warning] = [n for n in notifications(app) if n.startswith("TrueNAS")]
        assert "TrueNAS: guests not shown" in warning and "Traceback" not in warning
        await pilot.press("6")
        await settle(pilot)
        system = text_of(app, "#tn-system")
        assert system.startswith("✖ TrueNAS:") and "Traceback" not in system


def test_truenas_host_reads_the_url() -> None:
    def host_of(url: str | None) -> str | None:
        settings = TrueNasSettings(url=url)
        return truenas_host(
            Profile(name="p", pve=PveSettings(), truenas=settings, policy=PolicySettings())
        )

    assert host_of("wss://nas.lan/api/current") == "nas.lan"
    assert host_of("nas.lan") == "nas.lan"
    assert host_of(None) is None


# ---------------------------------------------------------------- snapshots


def dashboard(service: Labdeck) -> LabdeckApp:
    return dashboard_app(service)


def test_snapshot_truenas_tab_wide(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service(sim, face="tui"))
    # tank (the third line) is chosen: its snapshots and its children's
    keys = pressing(("6", viewing("truenas")), (["down", "down"], shown))
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)


def test_snapshot_truenas_tab_narrow(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service(sim, face="tui"))

    async def apps_shown(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await show_detail(pilot, "tn-apps")
        await loaded(pilot)

    keys = pressing(("6", viewing("truenas")), first=apps_shown)
    assert snap_compare(app, terminal_size=NARROW, run_before=keys)


def test_snapshot_guests_with_truenas_vms(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service(sim, face="tui"))

    async def on_truenas_row(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        grid = screen(pilot.app).query_one(GuestTable)  # type: ignore[arg-type]
        grid.move_cursor(row=grid.get_row_index("tn:1"))
        await loaded(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=on_truenas_row)


def test_snapshot_only_truenas_dashboard(snap_compare, sim, audit_log) -> None:
    app = dashboard(service_of(sim, audit_log, pve=False))
    assert snap_compare(app, terminal_size=WIDE, run_before=loaded)


def test_snapshot_only_pve_truenas_tab(snap_compare, sim, audit_log) -> None:
    app = dashboard(service_of(sim, audit_log, truenas=False))
    assert snap_compare(app, terminal_size=NARROW, run_before=pressing(("6", viewing("truenas"))))


# ---------------------------------------------------------------- simulator gaps
# Two simulator gaps fixed alongside this view (the operations' params promised them).


async def test_simulator_create_ancestors_makes_the_missing_parents(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(InvalidInput):
            await lab.call("truenas_create_dataset", {"name": "tank/a/b/c"})
        await lab.call("truenas_create_dataset", {"name": "tank/a/b/c", "create_ancestors": True})
        listed = await lab.call("truenas_list_datasets", {"prefix": "tank/a", "fields": ["name"]})
        with pytest.raises(InvalidInput):  # never a pool: ancestors stop below the root
            await lab.call("truenas_create_dataset", {"name": "nopool/x", "create_ancestors": True})
    assert isinstance(listed, Table)
    assert listed.rows == [["tank/a"], ["tank/a/b"], ["tank/a/b/c"]]


async def test_simulator_user_delete_removes_a_private_group_unless_kept(fresh_sim, make_service):
    async def group_names(lab: Labdeck) -> list[str]:
        listing = await lab.call("truenas_list_groups", {})
        assert isinstance(listing, Table)
        return [str(row[listing.columns.index("name")]) for row in listing.rows]

    async with make_service(fresh_sim, allow_writes=True) as lab:
        await lab.call("truenas_delete_user", {"username": "alice"}, confirmed=True)
        after_alice = await group_names(lab)
        await lab.call(
            "truenas_delete_user", {"username": "bob", "delete_group": False}, confirmed=True
        )
        after_bob = await group_names(lab)
    assert "alice" not in after_alice and "media" in after_alice  # media has other members
    assert "bob" in after_bob
