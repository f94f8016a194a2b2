"""The dashboard driven like a person drives it (Pilot), against the simulator over sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from textual.widgets import DataTable, Static

from core.audit import AuditLog
from core.service import Labdeck
from labdeck.demo import demo_profile
from tests.support.tui import FROZEN, settle, until
from tui.app import LabdeckApp
from tui.formatting import guest_matches, short_bytes, uptime
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.widgets.cluster_header import ClusterHeader
from tui.widgets.guest_table import GuestTable

ROOT = Path(__file__).resolve().parents[1]
PVE_VMIDS = [str(vmid) for vmid in range(100, 124)]
#: the demo profile has the TrueNAS simulator too: its VMs and containers are listed after
TRUENAS_IDS = ["tn:1", "tn:2", "tn:ct:dev01", "tn:ct:web01"]
ALL_VMIDS = PVE_VMIDS + TRUENAS_IDS
STOPPED = "116"  # windows-11 in the seed-7 cluster
RUNNING = "107"  # home-assistant


def make_app(service: Labdeck, refresh_interval: float = 3600.0) -> LabdeckApp:
    return LabdeckApp(service, refresh_interval=refresh_interval, clock=lambda: FROZEN)


def table(app: LabdeckApp) -> GuestTable:
    return app.screen_stack[0].query_one(GuestTable)


def row_keys(grid: DataTable[object]) -> list[str]:
    return [str(row.key.value) for row in grid.ordered_rows]


def cell(grid: DataTable[object], row: str, column: str) -> str:
    return str(grid.get_cell(row, column))


def header_text(app: LabdeckApp) -> str:
    return app.screen_stack[0].query_one(ClusterHeader).text


def notifications(app: LabdeckApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def audit_lines(log: AuditLog) -> list[str]:
    path = Path(log.path)
    return path.read_text().splitlines() if path.exists() else []


# ---------------------------------------------------------------- pure formatting


def test_sizes_and_durations_read_short() -> None:
    assert short_bytes(257237295) == "245M"
    assert short_bytes(8589934592) == "8.0G"
    assert short_bytes(17179869184) == "16G"
    assert short_bytes(512) == "512B"
    assert uptime(664195) == "7d16h"
    assert uptime(3725) == "1h02m"
    assert uptime(0) == "-"


# ---------------------------------------------------------------- reading the cluster


async def test_guests_table_lists_every_guest_of_the_cluster(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        grid = table(app)
        assert row_keys(grid) == ALL_VMIDS
        assert cell(grid, "100", "name") == "pihole"
        assert cell(grid, STOPPED, "status") == "stopped"
        assert cell(grid, "100", "mem") == "245M/512M"
        assert cell(grid, "100", "uptime") == "7d16h"
        text = header_text(app)
        assert "labdeck-demo" in text and "demo@127.0.0.1" in text
        assert "connected · 09:26:53" in text
        assert "read-only" in text
        # the detail panel follows the cursor
        await pilot.press("down")
        detail = str(app.screen_stack[0].query_one("#guest-detail").visual)
        assert table(app).selected is not None and table(app).selected.vmid == 101
        assert detail


async def test_nodes_and_pools_views_show_the_cluster(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        nodes = app.screen_stack[0].query_one("#node-table", DataTable)
        assert row_keys(nodes) == ["pve1", "pve2", "pve3"]
        assert cell(nodes, "pve1", "status") == "online"
        assert nodes.has_focus
        await pilot.press("3")
        tree = app.screen_stack[0].query_one("#pool-tree")
        pools = [str(node.label).split()[0] for node in tree.root.children]
        assert pools == ["lab", "media", "prod"]
        prod = tree.root.children[2]
        assert "pihole" in str(prod.children[0].label)


async def test_node_rows_draw_cpu_and_memory_history_from_the_refreshes(
    fresh_sim, make_service
) -> None:
    # sparklines from the refreshes already made: no request of their own
    app = make_app(make_service(fresh_sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        nodes = app.screen_stack[0].query_one("#node-table", DataTable)

        def spark(column: str) -> str:
            return cell(nodes, "pve1", column)[:8].strip()

        assert len(spark("cpu")) == 1 and len(spark("mem")) == 1
        fresh_sim.clear_request_log()
        for _ in range(3):
            await pilot.press("ctrl+r")
            await settle(pilot)
        assert len(spark("cpu")) == 4 and len(spark("mem")) == 4
        assert set(spark("cpu")) <= set("▁▂▃▄▅▆▇█")
        assert all("rrd" not in path for _, path in fresh_sim.request_log)


async def test_filter_narrows_the_table_and_escape_restores_it(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_cursor(row=grid.get_row_index("105"))
        await pilot.pause()
        await pilot.press("slash", *"k3s")
        await pilot.pause()
        assert row_keys(grid) == ["104", "105", "106"]
        assert grid.current_key == "105"
        await pilot.press("enter")
        assert grid.has_focus
        # tags, pool and status are searched too; words must all match
        await pilot.press("escape", "slash", *"media lxc")
        await pilot.pause()
        assert row_keys(grid) == ["102", "110", "111"]
        await pilot.press("escape")
        await pilot.pause()
        assert row_keys(grid) == ALL_VMIDS
        # the guest a person picked last is selected again once it is shown
        assert grid.current_key == "105"


def test_filter_matches_name_vmid_node_tags_pool_status(sim) -> None:
    from core.models import Guest

    guest = Guest(vmid=100, name="pihole", node="pve1", kind="lxc", status="running",
                  tags=["dns", "infra"], pool="prod")  # fmt: skip
    for query in ("pihole", "100", "PVE1", "infra", "prod", "running", "dns pve1"):
        assert guest_matches(guest, query), query
    assert not guest_matches(guest, "dns pve2")


async def test_sort_key_cycles_columns_and_keeps_the_selected_guest(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_cursor(row=grid.get_row_index(RUNNING))
        await pilot.pause()
        await pilot.press("s")  # by name
        names = [cell(grid, key, "name") for key in row_keys(grid)]
        assert names == sorted(names, key=str.lower)
        assert grid.current_key == RUNNING
        assert str(grid.columns[grid.column_key_for("name")].label) == "Name▲"
        # clicking the same header reverses the order
        name = grid.column_key_for("name")
        grid.post_message(DataTable.HeaderSelected(grid, name, 1, grid.columns[name].label))
        await pilot.pause()
        names = [cell(grid, key, "name") for key in row_keys(grid)]
        assert names == sorted(names, key=str.lower, reverse=True)
        assert grid.current_key == RUNNING


# ---------------------------------------------------------------- actions


async def test_start_on_a_stopped_guest_shows_it_running_after_refresh(
    fresh_sim, make_service, audit_log
) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        grid = table(app)
        keys_before = list(grid.rows)
        app.select_guest(int(STOPPED))
        await pilot.pause()
        assert cell(grid, STOPPED, "status") == "stopped"
        await pilot.press("S")  # start asks nothing: it is not disruptive
        assert not isinstance(app.screen, ConfirmScreen)
        await settle(pilot)
        await settle(pilot)
        assert cell(grid, STOPPED, "status") == "running"
        assert grid.current_key == STOPPED
        assert any("windows-11" in n and "running" in n for n in notifications(app))
        # the same row objects, updated in place
        assert all(a is b for a, b in zip(keys_before, grid.rows, strict=True))
        assert grid.sync_stats["removed"] == 0
    assert any('"pve_start_guest"' in line and '"face": "tui"' in line
               for line in audit_lines(audit_log))  # fmt: skip


async def test_cancelled_confirmation_does_nothing(fresh_sim, make_service, audit_log) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.select_guest(int(RUNNING))
        await pilot.pause()
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#confirm-question", Static).content)
        assert question == "Stop home-assistant?"
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        app.action_refresh()
        await settle(pilot)
        assert cell(table(app), RUNNING, "status") == "running"
        assert any("cancelled" in n for n in notifications(app))
    assert audit_lines(audit_log) == []


async def test_confirmed_shutdown_stops_the_guest(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.select_guest(int(RUNNING))
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#confirm")
        await settle(pilot)
        await settle(pilot)
        assert cell(table(app), RUNNING, "status") == "stopped"


async def test_read_only_mode_refuses_with_a_notification(sim, make_service, audit_log) -> None:
    app = make_app(make_service(sim, allow_writes=False, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.select_guest(int(RUNNING))
        await pilot.press("K")  # no question: the core refuses at once
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        [message] = notifications(app)
        assert "refused" in message and "read-only mode" in message
        assert "Traceback" not in message
        assert cell(table(app), RUNNING, "status") == "running"
        assert app.is_running
    assert any('"refused"' in line for line in audit_lines(audit_log))


# ---------------------------------------------------------------- refresh and outages


async def test_refresh_updates_rows_in_place(fresh_sim, make_service) -> None:
    async with make_service(fresh_sim, allow_writes=True, face="cli") as other_face:
        app = make_app(make_service(fresh_sim, face="tui"))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            grid = table(app)
            grid.move_cursor(row=grid.get_row_index(RUNNING))
            await pilot.pause()
            rows_before = list(grid.rows)
            order_before = row_keys(grid)
            updated_before = grid.sync_stats["updated"]
            # someone else starts a guest; the next refresh shows it
            await other_face.call("pve_start_guest", {"vmid": int(STOPPED)})
            app.action_refresh()
            await settle(pilot)
            assert cell(grid, STOPPED, "status") == "running"
            assert row_keys(grid) == order_before
            assert all(a is b for a, b in zip(rows_before, grid.rows, strict=True))
            assert grid.current_key == RUNNING
            assert grid.sync_stats["added"] == len(ALL_VMIDS)
            assert grid.sync_stats["removed"] == 0
            # only the cells that changed: status, cpu, memory, uptime of one guest
            assert 1 <= grid.sync_stats["updated"] - updated_before <= 4


class TcpRelay:
    """A TCP relay to the simulator that can be taken down and brought back on one port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


async def test_unreachable_cluster_shows_the_error_then_recovers(sim, audit_log) -> None:
    relay = TcpRelay(sim.port)
    await relay.start()
    await relay.stop()  # the port is known and nothing listens on it
    profile = demo_profile(sim, allow_writes=False)
    via_relay = profile.pve.model_copy(update={"port": relay.port})
    profile = profile.model_copy(update={"pve": via_relay})
    app = make_app(Labdeck(profile, face="tui", audit=audit_log), refresh_interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        text = header_text(app)
        assert "unreachable" in text and "cannot connect" in text
        assert "Traceback" not in text
        assert table(app).row_count == 0
        assert app.is_running
        await relay.start()  # the cluster comes back
        try:
            await until(pilot, lambda: table(app).row_count == len(ALL_VMIDS))
            assert "connected" in header_text(app)
            assert "cannot connect" not in header_text(app)
        finally:
            app.exit()
            await pilot.pause()
            await relay.stop()


# ---------------------------------------------------------------- keys, help, palette


async def test_help_screen_lists_the_bindings(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        listed = {b.id: keys for _, rows in app.screen.sections for keys, b in rows}
        assert listed["guest.start"] == "S"
        assert listed["guest.stop"] == "K"
        assert listed["guests.filter"] == "/"
        assert listed["app.quit"] == "q"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        # keys remap by binding id, and the help shows the remapped key
        app.set_keymap({"guest.start": "ctrl+s"})
        await pilot.press("f1")
        listed = {b.id: keys for _, rows in app.screen.sections for keys, b in rows}
        assert listed["guest.start"] == "^s"
        await pilot.press("escape")
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_every_binding_has_an_id_and_a_tooltip(sim, make_service) -> None:
    from tui.screens.dashboard import DashboardScreen

    for owner in (LabdeckApp, DashboardScreen, ConfirmScreen, HelpScreen):
        for binding in owner.BINDINGS:
            assert binding.id and binding.tooltip, (owner.__name__, binding)  # type: ignore[union-attr]


async def test_palette_jumps_to_a_guest_by_name(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("3")  # from the pools view
        await pilot.press("ctrl+p")
        await pilot.press(*"go to guest minecraft")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen_stack[0].active_view == "guests"  # type: ignore[attr-defined]
        assert table(app).current_key == "117"


async def test_palette_offers_actions_that_fit_the_guest(sim, make_service) -> None:
    from textual.command import Hit

    from tui.commands import LabdeckCommands

    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        provider = LabdeckCommands(app.screen)
        found = [hit.text async for hit in provider.search("windows") if isinstance(hit, Hit)]
        assert "Start guest windows-11 (116)" in found
        assert not any(text.startswith("Stop guest windows-11") for text in found)
        discovered = [hit.text async for hit in provider.discover()]
        for text in ("Refresh", "Go to guests", "Go to nodes", "Go to pools", "Start guest…"):
            assert text in discovered


def test_the_dashboard_does_not_import_the_mcp_face() -> None:
    code = (
        "import sys, tui.app\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_server')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
