"""The guest detail under the table: shown in the same pass as the table, made again only
when what it shows changed.

The detail used to follow the table one message round later (the table's ``Selected``),
so each refresh or filter keystroke painted a second frame ~20-30 ms after the first; and
it was made and repainted at every refresh, even with nothing changed (a Rich group is not
compared). Measured by ``bench/tui_bench.py``; these tests hold the behaviour, against the
simulator over real sockets (its metrics frozen: a refresh brings the same values).
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from tests.support.tui import WIDE, dashboard, settle
from tui.app import LabdeckApp
from tui.data import fetch_snapshot
from tui.widgets.guest_detail import GuestDetail


def detail_text(app: LabdeckApp) -> str:
    console = Console(width=WIDE[0], record=True, file=io.StringIO())
    console.print(app.screen_stack[0].query_one(GuestDetail).content)
    return console.export_text()


async def refreshed(app: LabdeckApp) -> None:
    """One refresh, up to the snapshot shown; no message is handled after it."""
    app.service.pve.invalidate()
    assert app.snapshot is not None
    snapshot = await fetch_snapshot(app.service, app.snapshot, **app.refresh_plan())
    app.snapshot = snapshot
    app._show_snapshot(snapshot)


def rename(handle: Any, vmid: int, name: str) -> None:
    handle.call(lambda: setattr(handle.state.guests[vmid], "name", name))


async def test_a_refresh_shows_the_detail_with_the_table(make_sim: Any, make_service: Any) -> None:
    handle = make_sim()
    app = dashboard(make_service, handle)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.dashboard is not None
        table = app.dashboard.guest_table
        guest = table.selected
        assert guest is not None and guest.name in detail_text(app)
        rename(handle, guest.vmid, "renamed-by-test")
        await refreshed(app)
        # before any message is handled: the table and the detail show the new name
        assert table.selected is not None and table.selected.name == "renamed-by-test"
        assert "renamed-by-test" in detail_text(app)


async def test_a_typed_filter_shows_the_detail_with_the_table(
    make_sim: Any, make_service: Any
) -> None:
    app = dashboard(make_service, make_sim())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.dashboard is not None
        app.dashboard._filter_guests("no-such-guest-anywhere")  # what a keystroke calls
        assert app.dashboard.guest_table.row_count == 0
        assert "No guest matches “no-such-guest-anywhere”" in detail_text(app)
        app.dashboard._filter_guests("")
        guest = app.dashboard.guest_table.selected
        assert guest is not None and guest.name in detail_text(app)


async def test_the_detail_is_made_again_only_when_what_it_shows_changed(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim()
    app = dashboard(make_service, handle)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.dashboard is not None
        detail = app.screen_stack[0].query_one(GuestDetail)
        guest = app.dashboard.guest_table.selected
        assert guest is not None
        shown = detail.content
        for _ in range(2):  # the same values again (new Guest objects, equal)
            await refreshed(app)
            await settle(pilot)
            assert app.dashboard.guest_table.selected is not guest
            assert detail.content is shown
        rename(handle, guest.vmid, "renamed-by-test")
        await refreshed(app)
        assert detail.content is not shown and "renamed-by-test" in detail_text(app)
        # another guest under the cursor, and back: made again each time
        await pilot.press("down")
        await settle(pilot)
        assert "renamed-by-test" not in detail_text(app)
        await pilot.press("up")
        await settle(pilot)
        assert "renamed-by-test" in detail_text(app)
