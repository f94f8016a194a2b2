"""Several clusters in the dashboard: ``c`` lists every configured profile with its state,
and Enter switches the dashboard to one, under that profile's own credentials and policy."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from core.audit import AuditLog
from core.config import Profile
from core.service import Labdeck
from labdeck.demo import demo_profile
from tests.support.tui import FROZEN, settle
from tui.app import LabdeckApp
from tui.screens.clusters import ClustersScreen
from tui.screens.dashboard import DashboardScreen
from tui.widgets.guest_table import GuestTable


def _profile(handle: Any, name: str) -> Profile:
    return demo_profile(handle, allow_writes=False).model_copy(update={"name": name})


def _app(audit: AuditLog, *profiles: Profile) -> LabdeckApp:
    def make(profile: Profile) -> Labdeck:
        return Labdeck(profile, face="tui", audit=audit)

    return LabdeckApp(
        make(profiles[0]),
        refresh_interval=3600.0,
        clock=lambda: FROZEN,
        profiles=profiles,
        make_service=make,
    )


def _cell_text(table: DataTable[Any], row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def test_clusters_list_reads_every_profile(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha", guests=6)
    beta = make_sim(cluster_name="beta", seed=11, guests=9)
    down = _profile(make_sim(cluster_name="gone"), "down")
    down.pve.port = 1  # nothing listens there: its row says so, the others still load
    app = _app(audit_log, _profile(alpha, "alpha"), _profile(beta, "beta"), down)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ClustersScreen)
        table = app.screen.query_one(DataTable)
        assert [key.value for key in table.rows] == ["alpha", "beta", "down"]
        assert _cell_text(table, "alpha", "guests").endswith("/6")
        assert _cell_text(table, "beta", "guests").endswith("/9")
        assert _cell_text(table, "beta", "state") == "ok"
        assert _cell_text(table, "down", "state") not in ("ok", "reading…")
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        assert app.service.profile.name == "alpha"


async def test_enter_switches_the_dashboard_to_that_cluster(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha", guests=6)
    beta = make_sim(cluster_name="beta", seed=11, guests=9)
    app = _app(audit_log, _profile(alpha, "alpha"), _profile(beta, "beta"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        first = app.service
        assert len(app.screen.query_one(GuestTable).guests) == 6
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.service.profile.name == "beta"
        assert app.service is not first
        dashboard = app.dashboard
        assert dashboard is not None and app.screen is dashboard
        assert len(dashboard.query_one(GuestTable).guests) == 9
        assert app.snapshot is not None and app.snapshot.overview is not None
        assert app.snapshot.overview.cluster_name == "beta"


async def test_one_profile_offers_no_cluster_switch(sim, audit_log):
    app = _app(audit_log, _profile(sim, "solo"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert not isinstance(app.screen, ClustersScreen)


async def test_every_guest_of_every_cluster_and_jumping_to_one(make_sim, audit_log):
    alpha = make_sim(cluster_name="alpha", guests=6)
    beta = make_sim(cluster_name="beta", seed=11, guests=9)
    app = _app(audit_log, _profile(alpha, "alpha"), _profile(beta, "beta"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        guests = app.screen.query_one("#clusters-guests", DataTable)
        keys = [key.value for key in guests.rows]
        clusters = [str(key).rpartition("/")[0] for key in keys]
        assert clusters == ["alpha"] * 6 + ["beta"] * 9  # profile order, whoever answered first
        beta_vmids = sorted(beta.call(lambda: list(beta.state.guests)))
        assert keys[6:] == [f"beta/{vmid}" for vmid in beta_vmids]
        target = beta_vmids[4]
        guests.focus()
        guests.move_cursor(row=6 + 4)
        await pilot.press("enter")
        await settle(pilot)
        assert app.service.profile.name == "beta"
        table = app.screen.query_one(GuestTable)
        assert table.selected is not None and table.selected.vmid == target
