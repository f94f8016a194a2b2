"""The Storage and Tasks views and pool editing, driven like a person drives them (Pilot),
against the simulator over sockets; then what they look like (SVG snapshots).

Snapshots are deterministic: the session ``sim`` (frozen metrics, seeded task history with
start times fixed relative to the seed's epoch), a frozen UTC clock that formats every
time shown, and no running task in the session simulator (nothing spins).
"""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import Input, RichLog, SelectionList, Static

from core.service import Labdeck
from tests.support.tui import (
    dashboard,
    dashboard_app,
    pressing,
    settle,
    shown,
    until,
)
from tui.app import LabdeckApp
from tui.formatting import short_bytes
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.pool_forms import MemberPicker, PoolForm
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.pool_tree import PoolTree
from tui.widgets.storage_view import ContentTable, StorageTable, StorageView
from tui.widgets.tasks_view import TaskLogScreen, TasksView, TaskTable

WIDE = (120, 40)
NARROW = (80, 24)
STOPPED = 116  # windows-11 in the seed-7 cluster
RUNNING = 107  # home-assistant


def make_app(service: Labdeck) -> LabdeckApp:
    return dashboard_app(service)


def dash(app: LabdeckApp) -> DashboardScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, DashboardScreen)
    return screen


def notifications(app: LabdeckApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def writes_sent(handle: object) -> list[tuple[str, str]]:
    return [(m, p) for (m, p) in handle.request_log if m != "GET"]  # type: ignore[attr-defined]


def column(table: KeyedTable, name: str) -> list[str]:
    return [str(table.get_cell(row.key, name)) for row in table.ordered_rows]


# ---------------------------------------------------------------- storage


async def test_storage_view_lists_every_storage_of_every_node(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        table = dash(app).query_one(StorageTable)
        assert table.has_focus
        expected = {f"{node}/{s.storage}": s for s in sim.state.storages for node in s.nodes}
        keys = [str(row.key.value) for row in table.ordered_rows]
        assert sorted(keys) == sorted(expected)
        assert keys == sorted(keys, key=lambda k: tuple(k.split("/")))  # by node, then name
        for key, storage in expected.items():
            assert table.get_cell(key, "type") == storage.plugin
            assert table.get_cell(key, "shared") == ("shared" if storage.shared else "local")
            assert str(table.get_cell(key, "status")) == "active"
            assert str(table.get_cell(key, "used")).endswith("/" + short_bytes(storage.total))
            usage = str(table.get_cell(key, "usage"))
            assert usage.startswith(("█", "░")) and usage.endswith("%")
        # shared storage shows once per node, local ones per node too
        assert sum(1 for k in keys if k.endswith("/nas-nfs")) == 3


async def test_storage_content_opens_on_enter_and_filters_by_type(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        view = dash(app).query_one(StorageView)
        table = view.table
        table.move_cursor(row=table.get_row_index("pve1/nas-nfs"))
        await pilot.press("enter")
        await settle(pilot)
        content = view.query_one(ContentTable)
        assert content.display and view.opened is not None
        assert view.opened.key == "pve1/nas-nfs"
        backups = sorted(
            v.volid for v in sim.state.backups if v.volid.startswith("nas-nfs:backup/")
        )
        every = [str(row.key.value) for row in content.ordered_rows]
        assert set(backups) <= set(every) and any(":iso/" in v for v in every)

        await pilot.press("b")
        await pilot.pause()
        assert [str(row.key.value) for row in content.ordered_rows] == backups
        assert set(column(content, "content")) == {"backup"}
        assert all(column(content, "date"))  # backups carry their date
        title = str(view.query_one("#storage-content-title", Static).content)
        assert f"backups: {len(backups)} of {len(every)} volumes" in title

        await pilot.press("i")
        await pilot.pause()
        isos = [str(row.key.value) for row in content.ordered_rows]
        assert isos and all(":iso/" in v for v in isos)

        await pilot.press("a")
        await pilot.pause()
        assert len(content.ordered_rows) == len(every)

        # v on a thin pool: VM and container disks
        await pilot.press("escape")
        assert not view.has_class("-content-open") and table.has_focus
        table.move_cursor(row=table.get_row_index("pve2/local-lvm"))
        await pilot.press("v")
        await settle(pilot)
        assert view.opened is not None and view.opened.key == "pve2/local-lvm"
        kinds = set(column(content, "content"))
        assert kinds == {"images", "rootdir"}
        assert len(content.ordered_rows) == sum(
            1 for g in sim.state.guests.values() if g.node == "pve2"
        )


# ---------------------------------------------------------------- tasks


def task_rows(app: LabdeckApp) -> dict[str, dict[str, str]]:
    table = dash(app).query_one(TaskTable)
    return {
        str(row.key.value): {c: str(table.get_cell(row.key, c)) for c in table.column_keys}
        for row in table.ordered_rows
    }


async def test_tasks_view_lists_the_seeded_history_newest_first(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        rows = task_rows(app)
        seeded = sim.state.tasks.everything()
        assert list(rows) == [t.upid for t in seeded]
        first = seeded[0]
        row = rows[first.upid]
        assert row["type"] == first.kind and row["node"] == first.node
        assert row["status"] == "✓ OK"
        started = datetime.fromtimestamp(first.starttime, UTC).strftime("%m-%d %H:%M:%S")
        assert row["started"] == started
        assert dash(app).query_one(TaskTable).has_focus


async def test_power_action_shows_in_tasks_marked_you_with_its_log(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.select_guest(STOPPED)
        await pilot.press("S")  # start asks nobody
        await settle(pilot)
        assert any("Start windows-11" in n for n in notifications(app))
        await pilot.press("7")
        await settle(pilot)
        rows = task_rows(app)
        upid = next(u for u, r in rows.items() if r["type"] == "qmstart" and r["id"] == "116")
        assert upid in app.own_tasks
        assert rows[upid]["user"].endswith("· you")
        assert rows[upid]["status"] == "✓ OK"
        others = [r for u, r in rows.items() if u != upid]
        assert others and not any("you" in r["user"] for r in others)

        table = dash(app).query_one(TaskTable)
        table.move_cursor(row=table.get_row_index(upid))
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskLogScreen)
        log = screen.query_one(RichLog)
        lines = [strip.text for strip in log.lines]
        assert lines[-1] == "TASK OK" and len(lines) > 1
        assert "✓ OK" in str(screen.query_one("#task-log-state", Static).content)
        await pilot.press("escape")
        assert not isinstance(app.screen, TaskLogScreen)


async def test_a_failed_task_shows_its_exit_status_in_red(fresh_sim, make_service) -> None:
    service = make_service(fresh_sim, allow_writes=True, face="tui")
    guest = fresh_sim.state.guests[STOPPED]
    # Stopping a stopped VM: PVE runs the worker, which fails. The op would refuse first,
    # so the client posts it as another tool would.
    upid = await service.pve.post(f"/nodes/{guest.node}/qemu/{STOPPED}/status/stop")
    await service.pve.wait_task(upid, raise_on_failure=False)
    await service.aclose()
    app = make_app(make_service(fresh_sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        table = dash(app).query_one(TaskTable)
        status = table.get_cell(upid, "status")
        assert str(status) == "✗ VM 116 not running" and status.style == "bold red"
        table.move_cursor(row=table.get_row_index(upid))
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskLogScreen)
        assert [s.text for s in screen.query_one(RichLog).lines] == [
            "TASK ERROR: VM 116 not running"
        ]
        assert "✗ VM 116 not running" in str(screen.query_one("#task-log-state", Static).content)


async def test_a_running_task_started_here_is_followed_to_its_end(make_sim, make_service) -> None:
    # a reboot runs 5 simulated seconds: 10 s here, time enough to see it run on a busy machine
    handle = make_sim(speed=0.5)
    app = make_app(make_service(handle, allow_writes=True, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.select_guest(RUNNING)
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y", "7")

        def rebooting() -> str | None:
            rows = task_rows(app)
            return next((u for u, r in rows.items() if r["type"] == "qmreboot"), None)

        await until(pilot, lambda: rebooting() is not None)
        upid = rebooting()
        assert upid is not None
        row = task_rows(app)[upid]
        assert row["status"].split()[1:2] == ["running"] and row["id"] == str(RUNNING)
        assert row["user"].endswith("· you")
        status_line = str(dash(app).query_one("#tasks-status", Static).content)
        assert "this dashboard: rebooting home-assistant (107)" in status_line
        table = dash(app).query_one(TaskTable)
        table.move_cursor(row=table.get_row_index(upid))
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, TaskLogScreen)
        await until(pilot, lambda: screen.finished, within_s=30)
        await until(pilot, lambda: "TASK OK" in [s.text for s in screen.query_one(RichLog).lines])
        assert screen.polls > 1  # it read on while the task ran
        assert screen.status is not None and screen.status.exitstatus == "OK"
        await pilot.press("escape")
        # the list, polled every second while something runs, shows the end too
        await until(pilot, lambda: task_rows(app)[upid]["status"] == "✓ OK")
        # shown on activation, then read again each second while the reboot ran
        assert dash(app).query_one(TasksView).loads >= 3


# ---------------------------------------------------------------- pools


async def test_pool_create_add_remove_delete_end_in_the_simulator(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    state = fresh_sim.state
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await pilot.press("n")
        assert isinstance(app.screen, PoolForm)
        await pilot.press(*"staging", "tab", *"test pool", "enter")
        await settle(pilot)
        assert "staging" in state.pools and state.pools["staging"].comment == "test pool"
        tree = dash(app).query_one(PoolTree)
        await until(pilot, lambda: "staging" in tree.pools)

        app.select_pool("staging")
        await pilot.press("a")
        picker = app.screen
        assert isinstance(picker, MemberPicker)
        offered = [picker.query_one(SelectionList).get_option_at_index(i).value
                   for i in range(picker.query_one(SelectionList).option_count)]  # fmt: skip
        assert STOPPED in offered
        picker.query_one(SelectionList).select(STOPPED)
        await pilot.click("#submit")
        await settle(pilot)
        assert STOPPED in state.pools["staging"].vmids
        assert state.guests[STOPPED].pool == "staging"
        await until(pilot, lambda: len(tree.pools["staging"].members) == 1)

        app.select_pool("staging")
        await pilot.press("e")
        assert isinstance(app.screen, PoolForm)
        comment = app.screen.query_one("#comment", Input)
        comment.value = "renamed"
        await pilot.press("enter")
        await settle(pilot)
        assert state.pools["staging"].comment == "renamed"

        branch = next(b for b in tree.root.children if b.data == "staging")
        tree.move_cursor(branch.children[0])
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert not state.pools["staging"].vmids and state.guests[STOPPED].pool is None
        await until(pilot, lambda: not tree.pools["staging"].members)

        app.select_pool("staging")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert "staging" not in state.pools
        await until(pilot, lambda: "staging" not in tree.pools)


async def test_deleting_a_pool_with_members_says_why_not(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    full = next(p for p, pool in fresh_sim.state.pools.items() if pool.vmids)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.select_pool(full)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert full in fresh_sim.state.pools
        assert any("failed" in n and "not empty" in n for n in notifications(app))
        assert not any(m == "DELETE" for m, _ in writes_sent(fresh_sim))


async def test_invalid_pool_id_is_named_and_nothing_is_sent(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        fresh_sim.clear_request_log()
        await pilot.press("n")
        await pilot.press(*"bad id!", "enter")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, PoolForm)  # still open, to fix the id
        error = form.query_one("#error-poolid", Static)
        assert error.display and "pattern" in str(error.content)
        assert writes_sent(fresh_sim) == []
        await pilot.press("escape")
        assert not isinstance(app.screen, PoolForm)


async def test_read_only_pool_editing_shows_the_policy_refusal(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=False, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, PoolForm)  # no form whose call would be refused
        app.select_pool("media")
        await pilot.press("d")  # no question either: the core refuses at once
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        said = notifications(app)
        assert sum("read-only mode" in n for n in said) == 2, said
        assert writes_sent(fresh_sim) == []
        assert "media" in fresh_sim.state.pools


async def test_help_lists_the_storage_tasks_and_pool_keys(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        sections = {title: rows for title, rows in app.screen.sections}
        ids = {title: {b.id for _, b in rows} for title, rows in sections.items()}
        assert {"storage.backups", "storage.iso", "storage.images", "storage.all"} <= ids[
            "Storage view"
        ]
        assert {"tasks.log", "tasklog.close"} <= ids["Tasks view"]
        assert {"pools.create", "pools.add", "pools.remove", "pools.comment",
                "pools.delete"} <= ids["Pools view"]  # fmt: skip
        keys = {b.id: key for _, rows in sections.items() for key, b in rows}
        assert keys["pools.create"] == "n" and keys["storage.backups"] == "b"


# ---------------------------------------------------------------- snapshots


def storage_rows(app: LabdeckApp) -> bool:
    return dash(app).query_one(StorageTable).row_count > 0


def content_rows(app: LabdeckApp) -> bool:
    return dash(app).query_one(ContentTable).row_count > 0


def task_list(app: LabdeckApp) -> bool:
    return dash(app).query_one(TaskTable).row_count > 0


def task_log(app: LabdeckApp) -> bool:
    screen = app.screen
    return isinstance(screen, TaskLogScreen) and screen.finished and bool(screen.next_line)


def form_open(app: LabdeckApp) -> bool:
    return isinstance(app.screen, PoolForm)


def form_error(app: LabdeckApp) -> bool:
    return form_open(app) and app.screen.query_one("#error-poolid", Static).display


def test_snapshot_storage_view(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = pressing(("5", storage_rows))
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)


def test_snapshot_storage_content(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = pressing(("5", storage_rows), (["down", "down", "enter"], content_rows))  # pve1/nas-nfs
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)


def test_snapshot_storage_view_narrow(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = pressing(("5", storage_rows), ("i", content_rows))  # the ISOs on pve1's local
    assert snap_compare(app, terminal_size=NARROW, run_before=keys)


def test_snapshot_tasks_view(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = pressing(("7", task_list))
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)


def test_snapshot_task_log(snap_compare, sim, make_service) -> None:
    app = dashboard(make_service, sim)
    keys = pressing(("7", task_list), ("enter", task_log))
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)


def test_snapshot_pool_create_form(snap_compare, sim, make_service) -> None:
    # writes allowed, so the form opens; "bad id!" fails the op's own validation
    app = dashboard(make_service, sim, allow_writes=True)
    keys = pressing(("3", shown), ("n", form_open), ([*"bad id!", "enter"], form_error))
    assert snap_compare(app, terminal_size=WIDE, run_before=keys)
