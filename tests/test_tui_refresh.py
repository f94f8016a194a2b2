"""What a dashboard refresh asks the cluster for: one request, unless more is to be seen.

Issue #7's goal is one API call per cluster per refresh. The guests, nodes and storages
come from ``/cluster/resources``; the pools (``/pools``) are asked for again only while
their tab is shown, and the cluster's name (``/cluster/status``, ``/version``) once. A
refresh a person asks for (ctrl+r) asks for everything. Counted in the simulator's own
request log, over real sockets.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Any

from core.service import Labdeck
from tests.support.tui import WIDE, dashboard, dashboard_app, settle, until
from tui.app import LabdeckApp
from tui.data import FIGURES_IN_THREAD, fetch_snapshot
from tui.widgets.guest_table import guest_column_widths
from tui.widgets.node_table import NodeTable, guest_counts
from tui.widgets.pool_tree import PoolTree

API = "/api2/json"


def gets(handle: Any) -> list[str]:
    return [path.removeprefix(API) for method, path in handle.request_log if method == "GET"]


async def timed_refresh(app: LabdeckApp) -> None:
    """What the refresh timer does once the read cache's TTL has passed."""
    app.service.pve.invalidate()
    app._refresh_soon()
    await app.workers.wait_for_complete()


async def test_a_timed_refresh_is_one_request(make_sim: Any, make_service: Any) -> None:
    handle = make_sim()
    service: Labdeck = make_service(handle, face="tui")
    app = dashboard_app(service)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        first = gets(handle)
        assert {"/cluster/resources", "/pools", "/cluster/status"} <= set(first)
        assert app.snapshot is not None and app.snapshot.overview is not None
        for _ in range(3):
            handle.clear_request_log()
            await timed_refresh(app)
            await settle(pilot)
            assert gets(handle) == ["/cluster/resources"]
        # what was not asked for again is kept: the header still names the cluster
        assert app.snapshot.overview is not None and app.snapshot.pools
        assert app.snapshot.overview.cluster_name in str(
            app.screen_stack[0].query_one("#header-title").content
        )


async def test_pools_are_asked_for_while_their_tab_is_shown(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim()
    app = dashboard_app(make_service(handle, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        handle.clear_request_log()
        await pilot.press("3")
        await settle(pilot)
        assert "/pools" in gets(handle)  # shown: asked for at once
        tree = app.screen_stack[0].query_one(PoolTree)
        assert sorted(tree.pools) == ["lab", "media", "prod"]
        # a pool made elsewhere appears at the next timed refresh while the tab is shown
        handle.call(lambda: handle.state.create_pool("ops", "made elsewhere"))
        handle.clear_request_log()
        await timed_refresh(app)
        await until(pilot, lambda: "ops" in tree.pools)
        assert gets(handle).count("/pools") == 1
        await pilot.press("1")
        await settle(pilot)
        handle.clear_request_log()
        await timed_refresh(app)
        assert gets(handle) == ["/cluster/resources"]


async def test_a_refresh_a_person_asks_for_asks_for_everything(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim()
    app = dashboard_app(make_service(handle, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        handle.clear_request_log()
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert {"/cluster/resources", "/pools", "/cluster/status", "/version"} <= set(gets(handle))
        handle.clear_request_log()
        await timed_refresh(app)
        assert gets(handle) == ["/cluster/resources"]


async def test_a_cluster_asking_to_wait_is_left_alone_that_long(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="GET /cluster/resources=429:30")  # past the GET retry budget
    app = dashboard_app(make_service(handle, face="tui"), refresh_interval=0.2)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app.error is not None and app._refresh_timer is not None)
        assert getattr(app.error, "retry_after_s", None) == 30
        assert app.next_refresh_s == 30
        assert app._refresh_timer is not None and app._refresh_timer._interval == 30
        assert gets(handle).count("/cluster/resources") == 1  # 30 s is past the GET retry budget
        handle.faults.clear()
        await pilot.press("ctrl+r")  # a person may still ask
        await until(pilot, lambda: app.error is None and app.snapshot is not None)
        await until(pilot, lambda: app._refresh_timer is not None)
        assert app.next_refresh_s == 0.2


async def test_what_the_first_paint_built_is_frozen_until_the_app_exits(
    sim: Any, make_service: Any, monkeypatch: Any
) -> None:
    """``labdeck`` freezes the objects alive after the first paint (``gc.freeze``: full
    collections stop walking them) and gives them back to the collector when it exits."""
    gc.unfreeze()  # what earlier tests in this process froze
    freezes: list[int] = []
    real_freeze = gc.freeze
    # counted, and still done: a second freeze would not change the count in any way a
    # test can tell apart from the listing it replaced
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1) or real_freeze())
    app = dashboard_app(make_service(sim, face="tui"), freeze_when_painted=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await until(pilot, lambda: gc.get_freeze_count() > 0)
        assert gc.get_freeze_count() > 10_000  # the widgets, styles and listing
        for _ in range(2):
            app.service.pve.invalidate()
            app._refresh_soon()
            await settle(pilot)
        assert freezes == [1]  # once, not at each refresh
    assert gc.get_freeze_count() == 0


async def test_a_dashboard_not_asked_to_freeze_leaves_the_collector_alone(
    sim: Any, make_service: Any
) -> None:
    gc.unfreeze()
    app = dashboard_app(make_service(sim, face="tui"))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert gc.get_freeze_count() == 0 and not app._froze


async def test_a_big_listing_has_its_table_figures_worked_out_during_the_fetch(
    make_sim: Any, make_service: Any
) -> None:
    """Above ``FIGURES_IN_THREAD`` guests the column widths and the per-node counts come
    with the snapshot (worked out in a worker thread: 20-30 ms at 5,000 guests the loop no
    longer spends); below, the tables work them out themselves."""
    big = make_sim(guests=FIGURES_IN_THREAD + 50, nodes=4)
    async with make_service(big, face="tui") as service:
        snapshot = await fetch_snapshot(service)
    guests = snapshot.inventory.guests
    assert snapshot.figures is not None
    assert snapshot.figures.widths == guest_column_widths(guests)
    assert snapshot.figures.per_node == {
        node: (sum(g.node == node and g.status == "running" for g in guests),
               sum(g.node == node for g in guests))
        for node in {g.node for g in guests}
    }  # fmt: skip
    assert len(snapshot.figures.per_node) == 4
    # the header's summary counts from the figures what a count of the guests gives
    running = sum(g.status == "running" for g in guests)
    assert 0 < running < len(guests)
    assert snapshot.summary.endswith(f"guests {running}/{len(guests)} running")
    assert snapshot.summary == replace(snapshot, figures=None).summary
    async with make_service(make_sim(), face="tui") as service:
        assert (await fetch_snapshot(service)).figures is None


async def test_widths_handed_to_the_table_are_used_while_nothing_is_filtered(
    make_sim: Any, make_service: Any
) -> None:
    app = dashboard(make_service, make_sim())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.dashboard is not None
        table = app.dashboard.guest_table
        guests = list(table.guests.values())
        name = table.columns[table.column_key_for("name")]
        own = guest_column_widths(guests)["name"]
        table.show(guests, (), {**guest_column_widths(guests), "name": own + 7})
        assert name.content_width == own + 7  # the widths handed over
        table.set_filter(guests[0].name)  # a filter: the shown guests' own widths
        assert table.shown_guests and len(table.shown_guests) < len(guests)
        assert name.content_width == guest_column_widths(table.shown_guests)["name"] < own + 7
        table.set_filter("")
        assert name.content_width == own + 7


async def test_counts_handed_to_the_node_table_are_shown(make_sim: Any, make_service: Any) -> None:
    app = dashboard(make_service, make_sim())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.dashboard is not None and app.snapshot is not None
        table = app.dashboard.query_one(NodeTable)
        inventory = app.snapshot.inventory
        counted = guest_counts(inventory.guests)
        assert {n: table.get_cell(n, "guests") for n in counted} == {
            n: f"{run}/{total}" for n, (run, total) in counted.items()
        }
        first = inventory.nodes[0].node
        table.show(inventory.nodes, inventory.guests, {**counted, first: (99, 100)})
        assert table.get_cell(first, "guests") == "99/100"
