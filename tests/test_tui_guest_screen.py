"""The guest detail screen, its action forms and the node graphs, driven like a person.

Pilot tests run the dashboard against the simulator over real sockets; the ones that
change the cluster have a simulator of their own (``fresh_sim``) and check its state
afterwards. The snapshot tests at the end are deterministic: the session ``sim`` (or a
seeded one with snapshots of fixed dates) with frozen metrics and a frozen clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static, Tree

from simulator.model import Snapshot
from simulator.snapshot_routes import SETTINGS
from tests.support.tui import dashboard, loaded
from tui.app import LabdeckApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.forms import BackupForm, CloneForm, MigrateForm, SnapshotForm, clone_name
from tui.screens.guest_screen import MASK, GuestScreen, config_rows
from tui.screens.help import HelpScreen
from tui.screens.node_screen import NodeScreen
from tui.widgets.graphs import MetricChart, MetricRow, MetricsGraphs, bar, next_timeframe

WIDE = (120, 40)
NARROW = (80, 24)
VM = 101  # nextcloud, a running VM on pve3 with a backup (seed 7)
CT = 100  # pihole, a running container on pve1
TEMPLATE = 118  # ubuntu-template on pve1
STOPPED_CT = 122  # wireguard, stopped on pve2


async def until(pilot: Pilot[None], condition: Callable[[], bool], within_s: float = 15.0) -> None:
    async with asyncio.timeout(within_s):
        while not condition():
            await pilot.pause(0.05)


async def open_guest(pilot: Pilot[None], vmid: int) -> GuestScreen:
    """Put the cursor on ``vmid`` in the guests table and press Enter, like a person."""
    app = pilot.app
    assert isinstance(app, LabdeckApp)
    await loaded(pilot)
    app.select_guest(vmid)
    await pilot.press("enter")
    await loaded(pilot)
    assert isinstance(app.screen, GuestScreen)
    return app.screen


def posts(sim: Any) -> list[str]:
    return [path for method, path in sim.request_log if method in ("POST", "PUT", "DELETE")]


def tree_names(screen: GuestScreen) -> list[str | None]:
    tree = screen.query_one("#snapshot-tree", Tree)
    found: list[str | None] = []
    stack = list(tree.root.children)
    while stack:
        node = stack.pop(0)
        found.append(node.data)
        stack = list(node.children) + stack
    return found


def notifications(app: LabdeckApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def guest_state(sim: Any, vmid: int) -> Any:
    return sim.call(lambda: sim.state.guests.get(vmid))


# ---------------------------------------------------------------- pure views


def test_config_values_of_secret_keys_are_masked() -> None:
    config = {
        "cipassword": "hunter2-canary",
        "ciuser": "admin",
        "cores": 2,
        "description": "line one\nline two",
    }
    rows = dict(config_rows(config))
    assert rows["cipassword"] == MASK
    assert "hunter2-canary" not in " ".join(rows.values())
    assert rows["ciuser"] == "admin"
    assert rows["description"] == "line one ⏎ line two"
    assert list(rows) == sorted(config)


def test_timeframes_cycle_and_bars_fill_by_eighths() -> None:
    assert [next_timeframe(t) for t in ("hour", "day", "week")] == ["day", "week", "hour"]
    assert bar(0.5, width=4).plain == "██  "
    assert bar(1 / 8, width=4).plain == "▌   "  # half a cell
    assert bar(2.0, width=3).plain == "███"
    assert clone_name("x" * 63) == "x" * 57 + "-clone"


# ---------------------------------------------------------------- the detail screen


async def test_enter_opens_the_detail_and_every_tab_shows_the_guest(sim, make_service) -> None:
    app = dashboard(make_service, sim)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_guest(pilot, VM)
        header = str(screen.query_one("#detail-header", Static).content)
        assert "nextcloud" in header and "VM 101 on pve3" in header and "running" in header
        assert "tags prod, web" in header

        rows = {row.column_name: row for row in screen.query(MetricRow)}
        assert set(rows) == {"cpu", "mem", "diskread", "diskwrite", "netin", "netout"}
        cpu_now = str(rows["cpu"].query_one(".metric-now", Static).content)
        assert cpu_now.endswith("%") and cpu_now != "-"
        assert len(rows["mem"].query_one("Sparkline").data or []) == 70

        await pilot.press("2")
        config = screen.query_one("#config-table", DataTable)
        assert str(config.get_cell("cores", config.ordered_columns[1].key)) == "4"
        assert "digest" in str(screen.query_one("#config-status", Static).content)

        await pilot.press("3")
        assert tree_names(screen) == [None]  # only NOW: the seeded guest has no snapshots
        assert "No snapshots" in str(screen.query_one("#snapshots-status", Static).content)

        await pilot.press("4")
        backups = screen.query_one("#backup-table", DataTable)
        keys = [str(row.key.value) for row in backups.ordered_rows]
        assert keys == ["nas-nfs:backup/vzdump-qemu-101-2025_11_29-22_25_21.vma.zst"]

        await pilot.press("5")
        await loaded(pilot)
        graphs = screen.query_one(MetricsGraphs)
        assert graphs.metrics is not None and graphs.metrics.timeframe == "hour"
        assert len(graphs.metrics.rows) == 70 and len(screen.query(MetricChart)) == 3
        await pilot.press("t")
        await loaded(pilot)
        assert graphs.metrics.timeframe == "day" and graphs.metrics.step_s == 1800

        await pilot.press("escape")
        assert not isinstance(app.screen, GuestScreen)


async def test_snapshot_form_takes_a_snapshot_with_ram(fresh_sim, make_service) -> None:
    app = dashboard(make_service, fresh_sim, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_guest(pilot, VM)
        await pilot.press("3", "s")
        assert isinstance(app.screen, SnapshotForm)
        await pilot.press(*"before-upgrade", "tab", *"pre upgrade", "tab", "space")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        await loaded(pilot)
        assert "before-upgrade" in tree_names(screen)
        assert tree_names(screen).index(None) > tree_names(screen).index("before-upgrade")
        taken = guest_state(fresh_sim, VM).snapshots["before-upgrade"]
        assert taken.description == "pre upgrade" and taken.vmstate
        assert "taken" in str(screen.query_one("#detail-task .task-status", Static).content)

        # the operation's own check (a name in use) lands next to the field too
        fresh_sim.clear_request_log()
        await pilot.press("s", *"before-upgrade", "enter")
        await loaded(pilot)
        assert isinstance(app.screen, SnapshotForm)
        error = str(app.screen.query_one("#error-snapname", Static).content)
        assert "already in use" in error and posts(fresh_sim) == []


async def test_invalid_snapshot_name_is_shown_and_nothing_is_sent(fresh_sim, make_service) -> None:
    app = dashboard(make_service, fresh_sim, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await open_guest(pilot, CT)
        fresh_sim.clear_request_log()
        await pilot.press("s", *"9 lives", "ctrl+s")
        await loaded(pilot)
        form = app.screen
        assert isinstance(form, SnapshotForm)
        error = str(form.query_one("#error-snapname", Static).content)
        assert "should match pattern" in error
        assert posts(fresh_sim) == []
        await pilot.press("escape")
        assert isinstance(app.screen, GuestScreen)


async def test_rollback_asks_first_and_a_no_changes_nothing(fresh_sim, make_service) -> None:
    app = dashboard(make_service, fresh_sim, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await loaded(pilot)
        await app.service.call("pve_create_snapshot", {"vmid": CT, "snapname": "clean"})
        screen = await open_guest(pilot, CT)
        await pilot.press("3")
        await loaded(pilot)
        assert screen.selected_snapshot == "clean"
        fresh_sim.clear_request_log()

        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await loaded(pilot)
        assert posts(fresh_sim) == []

        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: any(p.endswith("/rollback") for p in posts(fresh_sim)))
        await loaded(pilot)
        assert guest_state(fresh_sim, CT).status == "stopped"  # no RAM: it stays stopped
        assert "rolled back to 'clean'" in str(
            screen.query_one("#detail-task .task-status", Static).content
        )

        await pilot.press("d", "y")
        await until(pilot, lambda: "clean" not in guest_state(fresh_sim, CT).snapshots)
        await loaded(pilot)
        assert tree_names(screen) == [None]


async def test_backup_form_writes_an_archive_that_the_backups_tab_lists(
    fresh_sim, make_service
) -> None:
    app = dashboard(make_service, fresh_sim, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_guest(pilot, CT)
        backups = screen.query_one("#backup-table", DataTable)
        assert backups.row_count == 1
        await pilot.press("b")
        await loaded(pilot)
        form = app.screen
        assert isinstance(form, BackupForm)
        storage = form.query_one("#storage", Select)
        storages = [value for _, value in storage._options if isinstance(value, str)]
        assert storages == ["nas-nfs", "local"] and storage.value == "nas-nfs"  # shared first
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        await until(pilot, lambda: backups.row_count == 2)
        newest = str(backups.ordered_rows[0].key.value)
        assert newest.startswith("nas-nfs:backup/vzdump-lxc-100-")
        assert "1 archive(s) written" in str(
            screen.query_one("#detail-task .task-status", Static).content
        )


async def test_clone_form_ends_with_the_copy_in_the_cluster(fresh_sim, make_service) -> None:
    app = dashboard(make_service, fresh_sim, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_guest(pilot, TEMPLATE)
        await pilot.press("c")
        await loaded(pilot)
        form = app.screen
        assert isinstance(form, CloneForm)
        assert form.query_one("#full", Select).value == "linked"  # a template: linked
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        copies = fresh_sim.call(
            lambda: [
                g for g in fresh_sim.state.guests.values() if g.name == "ubuntu-template-clone"
            ]
        )
        assert len(copies) == 1 and copies[0].node == "pve1" and copies[0].vmid == 124
        assert any("linked clone 124" in n for n in notifications(app))


async def test_migrate_form_moves_the_guest_and_the_header_follows(fresh_sim, make_service) -> None:
    app = dashboard(make_service, fresh_sim, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_guest(pilot, STOPPED_CT)
        await pilot.press("m")
        await loaded(pilot)
        form = app.screen
        assert isinstance(form, MigrateForm)
        target = form.query_one("#target", Select)
        assert [value for _, value in target._options if isinstance(value, str)] == ["pve1", "pve3"]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        await loaded(pilot)
        assert guest_state(fresh_sim, STOPPED_CT).node == "pve1"
        assert "on pve1" in str(screen.query_one("#detail-header", Static).content)


async def test_read_only_mode_refuses_every_action_before_a_request(sim, make_service) -> None:
    app = dashboard(make_service, sim)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_guest(pilot, VM)
        before = len(posts(sim))
        for key in ("s", "b", "c", "m"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, f"{key} opened a form in read-only mode"
        refusals = [n for n in notifications(app) if "refused" in n]
        assert len(refusals) == 4
        assert all("read-only mode" in n for n in refusals)
        assert len(posts(sim)) == before


async def test_node_screen_shows_the_node_history(sim, make_service) -> None:
    app = dashboard(make_service, sim)
    async with app.run_test(size=NARROW) as pilot:
        await loaded(pilot)
        await pilot.press("2", "enter")
        await loaded(pilot)
        screen = app.screen
        assert isinstance(screen, NodeScreen) and screen.node.node == "pve1"
        graphs = screen.query_one(MetricsGraphs)
        assert graphs.metrics is not None and graphs.metrics.target == "node/pve1"
        assert graphs.metrics.columns == ["time", "cpu", "loadavg", "memused", "netin", "netout"]
        assert len(screen.query(MetricChart)) == 4
        await pilot.press("t", "t")
        await loaded(pilot)
        assert graphs.metrics.timeframe == "week" and graphs.metrics.step_s == 10800
        await pilot.press("f1")  # the help lists the keys of the detail screens and forms
        assert isinstance(app.screen, HelpScreen)
        listed = {b.id: keys for _, rows in app.screen.sections for keys, b in rows}
        assert listed["node_detail.timeframe"] == "t" and listed["detail.rollback"] == "r"
        assert listed["form.submit"] == "^s" and listed["guest.details"] == "i"
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, NodeScreen)


# ---------------------------------------------------------------- snapshots (SVG)


def _opened(vmid: int, *keys: str) -> Callable[[Pilot[None]], Any]:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_guest(pilot, vmid)
        for key in keys:
            await pilot.press(key)
            await loaded(pilot)

    return run_before


def test_detail_summary(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=WIDE, run_before=_opened(VM))


def test_detail_summary_narrow(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    assert snap_compare(app, terminal_size=NARROW, run_before=_opened(CT))


def _with_snapshots(sim: Any, vmid: int) -> None:
    """A tree of fixed dates: base <- upgrade(+RAM) <- {tuned, NOW}, base <- experiment."""

    def plant() -> None:
        guest = sim.state.guests[vmid]
        settings = {key: getattr(guest, key) for key in SETTINGS}
        for name, parent, when, ram, note in (
            ("base", None, 1764300000, False, "fresh install"),
            ("experiment", "base", 1764320000, False, "tried btrfs"),
            ("upgrade", "base", 1764400000, True, "before the 30.0 upgrade"),
            ("tuned", "upgrade", 1764450000, False, ""),
        ):
            guest.snapshots[name] = Snapshot(
                name=name,
                snaptime=when,
                description=note,
                parent=parent,
                vmstate=ram,
                settings=settings,
            )
        guest.parent = "upgrade"

    sim.call(plant)


def test_detail_snapshot_tree(snap_compare, make_sim, make_service) -> None:
    handle = make_sim()
    _with_snapshots(handle, VM)
    app = dashboard(make_service, handle)
    assert snap_compare(app, terminal_size=WIDE, run_before=_opened(VM, "3"))


def test_snapshot_form_with_an_invalid_name(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim, allow_writes=True)
    typed = _opened(CT, "s", *"9 lives", "ctrl+s")

    async def run_before(pilot: Pilot[None]) -> None:
        await typed(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor would differ from shot to shot
        await loaded(pilot)

    assert snap_compare(app, terminal_size=NARROW, run_before=run_before)


def test_node_graphs(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)

    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("2", "down", "enter")
        await loaded(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
