"""Every fault kind of ``simulator.faults`` as the dashboard shows it, driven like a person
drives it (Pilot) against the simulator over real sockets.

For each kind: no crash and no traceback, one clear message that says what to do (header,
notification, the view's own text or the command pane), the dashboard goes on (polling,
keys), a read is retried only where that may help, a write is sent exactly once (counted
in the simulator's request log; TrueNAS: its method log), and no secret is on screen.
The fault matrix and its counters are shared with the MCP and CLI tests
(``tests.support.faults``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr
from textual.pilot import Pilot
from textual.widgets import Static, TabbedContent
from textual.worker import WorkerState

import tui.app
from core.audit import AuditLog
from core.errors import LabdeckError
from core.service import Labdeck
from labdeck.demo import demo_profile
from tests.support.faults import (
    API,
    APPLIED_ANYWAY,
    GUESTS,
    NAS_READ_FAILURES,
    PVE_READ_FAILURES,
    PVE_READ_RECOVERIES,
    PVE_WRITE_FAILURES,
    TIMEOUT_S,
    Case,
    agent_vm,
    assert_clean,
    eventually,
    params,
    rpc_count,
    sent,
    short_truenas_calls,
    start_path,
    stopped_vm,
    writes,
)
from tests.support.tui import WIDE, dashboard_app, settle, until
from tests.test_tui_exec import log_text, open_pane, run
from tests.test_tui_truenas import plain
from tui.app import LabdeckApp
from tui.formatting import guest_label
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.widgets.cluster_header import ClusterHeader
from tui.widgets.guest_table import GuestTable
from tui.widgets.truenas_detail import AppTable
from tui.widgets.truenas_storage import PoolsPanel

#: a refresh's guests: the seeded cluster's 24 and TrueNAS's 4
ALL_GUESTS = 28
CERT_CHANGE = Case(
    "GET /cluster/resources=cert-change",
    ("is not trusted", "Set [pve] ca_bundle to the cluster CA"),
    1,
    "tls",
)


# ------------------------------------------------------------------ helpers


#: faults that hold an answer back, so the test runs with the faces' short timeouts (PVE:
#: TIMEOUT_S; TrueNAS: short_truenas_calls). Other tests keep the default timeouts, which
#: a loaded machine does not run into.
HELD = ("slow:3", "timeout:10", "timeout:10x1")
NAS_HELD = ("timeout:10",)


def start_dashboard(
    handle: Any,
    make_service: Any,
    *,
    allow_writes: bool = False,
    refresh_interval: float = 3600.0,
    held: bool = False,
) -> LabdeckApp:
    """The dashboard (face tui) on ``handle``; ``held``: with the faces' short PVE timeout."""
    service = make_service(handle, allow_writes=allow_writes, face="tui")
    if held:
        service.profile.pve.timeout_s = TIMEOUT_S
    return dashboard_app(service, refresh_interval=refresh_interval)


def screen(app: LabdeckApp) -> DashboardScreen:
    dashboard = app.screen_stack[0]
    assert isinstance(dashboard, DashboardScreen)
    return dashboard


def header_text(app: LabdeckApp) -> str:
    return app.screen_stack[0].query_one(ClusterHeader).text


def notes(app: LabdeckApp, title: str = "") -> list[str]:
    """The notifications shown, ``title: message``, those whose title starts with ``title``."""
    return [f"{n.title}: {n.message}" for n in app._notifications if n.title.startswith(title)]


def shown(app: LabdeckApp) -> str:
    """Everything a person sees: the screen as rendered, and the notifications."""
    return "\n".join([app.export_screenshot(), *notes(app)])


def assert_says(text: str, case: Case) -> None:
    for needle in case.needles:
        assert needle in text, text


def audited(audit_log: AuditLog, operation: str) -> list[tuple[str, str | None]]:
    return [(e["outcome"], e.get("error")) for e in audit_log.read() if e["operation"] == operation]


def starts_of(handle: Any, vmid: int) -> set[str]:
    """The UPIDs of every qmstart task of ``vmid`` (compare before and after an action:
    the simulator's clock runs fast, so "started within the last minute" is not a count)."""
    tasks = handle.call(handle.state.tasks.everything)
    return {t.upid for t in tasks if t.kind == "qmstart" and t.ident == str(vmid)}


async def failing_refreshes(pilot: Pilot[Any], count: int) -> None:
    """Wait until ``count`` more refreshes have failed (each leaves an error of its own)."""
    app = pilot.app
    assert isinstance(app, LabdeckApp)
    seen = [app.error]

    def more() -> bool:
        if app.error is not None and app.error is not seen[-1]:
            seen.append(app.error)
        return len(seen) > count

    await until(pilot, more)


async def write_ended(pilot: Pilot[Any], title: str) -> str:
    """Wait for the notification that ends the write titled ``title``; its text."""
    app = pilot.app
    assert isinstance(app, LabdeckApp)
    await until(pilot, lambda: bool(notes(app, title)) and not app.activities)
    [note] = notes(app, title)
    return note


# ------------------------------------------------------------------ refresh


@params([*PVE_READ_FAILURES, CERT_CHANGE])
async def test_refresh_fault_is_one_clear_message_polling_goes_on_and_recovers(
    make_sim: Any, make_service: Any, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    app = start_dashboard(handle, make_service, held=case.id in HELD)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app.error is not None)
        await pilot.pause()
        assert app.error.kind == case.error
        assert_says(header_text(app), case)
        assert sent(handle, GUESTS) == case.sent  # retried only where a retry may help
        assert_clean(shown(app), handle)
        # a person's refresh and the polls after it fail the same way; the dashboard goes on
        app.refresh_interval = 0.2
        before = app.error
        await pilot.press("ctrl+r")
        if case.id == "429:60":  # the cluster asked for 60 s of quiet: the next poll waits
            await until(pilot, lambda: app.error is not None and app.error is not before)
            assert app.next_refresh_s == 60
        else:
            await failing_refreshes(pilot, 2)
        assert app.is_running and app.error.kind == case.error
        assert_says(header_text(app), case)
        if case is CERT_CHANGE:  # refused before sending: nothing reached the new certificate
            assert sent(handle, GUESTS) == 1
            return  # and it stays: the fix is the person's (ca_bundle)
        handle.faults.clear()
        if case.id == "429:60":
            await pilot.press("ctrl+r")  # sooner than the minute it asked for: a person may
        await until(pilot, lambda: app.error is None and app.snapshot is not None)
        await pilot.pause()
        assert "connected" in header_text(app) and case.needles[0] not in header_text(app)
        assert screen(app).query_one(GuestTable).row_count == ALL_GUESTS
        assert_clean(shown(app), handle)


@params(PVE_READ_RECOVERIES)
async def test_refresh_through_a_passing_fault_shows_the_cluster(
    make_sim: Any, make_service: Any, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    app = start_dashboard(handle, make_service, held=case.id in HELD)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        assert app.error is None and "✖" not in header_text(app)
        assert "connected" in header_text(app)
        assert screen(app).query_one(GuestTable).row_count == ALL_GUESTS
        # the retries the fault needed; +1 when the pools asked after the 2 s read cache of
        # the guests' answer expired (a loaded machine)
        assert case.sent <= sent(handle, GUESTS) <= case.sent + 1


# ------------------------------------------------------------------ guest writes


@params(PVE_WRITE_FAILURES)
async def test_start_key_on_a_write_fault_says_so_once_and_never_resends(
    make_sim: Any, make_service: Any, audit_log: AuditLog, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    guest = stopped_vm(handle)
    before = starts_of(handle, guest.vmid)
    app = start_dashboard(handle, make_service, allow_writes=True, held=case.id in HELD)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen(app).select_guest(guest.vmid)
        await pilot.pause()
        await pilot.press("S")  # start asks nothing: it is not disruptive
        note = await write_ended(pilot, f"Start {guest.name}")
        assert note.startswith(f"Start {guest_label(guest)}: failed"), note
        assert_says(note, case)
        # where the core names the agents' task listing, a person is shown the Tasks view
        assert ("Tasks view (7)" in note) == ("pve_list_tasks" in case.needles)
        assert_clean(shown(app), handle)
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
    assert writes(handle) == [("POST", API + start_path(guest))]  # never resent
    assert audited(audit_log, "pve_start_guest") == [("error", case.error)]
    ran = 1 if case.id in (*APPLIED_ANYWAY, "task-fail") else 0  # though the answer failed
    assert eventually(lambda: len(starts_of(handle, guest.vmid) - before) == ran)


@pytest.mark.parametrize("kind", ["500", "reset:after"])
async def test_confirmed_stop_on_a_write_fault_is_sent_once(
    make_sim: Any, make_service: Any, kind: str
) -> None:
    handle = make_sim(faults=f"POST */status/stop={kind}")
    vm = agent_vm(handle)  # a running VM
    app = start_dashboard(handle, make_service, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen(app).select_guest(vm.vmid)
        await pilot.pause()
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert writes(handle) == []  # nothing before the yes
        await pilot.click("#confirm")
        note = await write_ended(pilot, f"Stop {vm.name}")
        expected = "got unexpected error" if kind == "500" else "may or may not have been applied"
        assert f"Stop {guest_label(vm)}: failed" in note and expected in note, note
        assert_clean(shown(app), handle)
    stop = f"{API}/nodes/{vm.node}/qemu/{vm.vmid}/status/stop"
    assert writes(handle) == [("POST", stop)]


async def test_a_person_may_start_again_after_a_refused_start(
    make_sim: Any, make_service: Any, audit_log: AuditLog
) -> None:
    """No lost write either: after a refusal the next key press is the one write sent."""
    handle = make_sim(faults="POST */status/start=503")
    guest = stopped_vm(handle)
    before = starts_of(handle, guest.vmid)
    app = start_dashboard(handle, make_service, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen(app).select_guest(guest.vmid)
        await pilot.pause()
        await pilot.press("S")
        await write_ended(pilot, f"Start {guest.name}")
        handle.faults.clear()
        app.clear_notifications()
        await pilot.press("S")
        note = await write_ended(pilot, f"Start {guest.name}")
        assert "failed" not in note
        table = screen(app).query_one(GuestTable)
        await until(pilot, lambda: str(table.get_cell(str(guest.vmid), "status")) == "running")
    assert len(writes(handle)) == 2  # one per key press, none added
    assert audited(audit_log, "pve_start_guest") == [("error", "server"), ("ok", None)]
    assert len(starts_of(handle, guest.vmid) - before) == 1


def ticket_dashboard(handle: Any, audit_log: AuditLog) -> LabdeckApp:
    """The dashboard logging in with a user and password (a ticket), writes allowed."""
    profile = demo_profile(handle, allow_writes=True)
    profile.pve = profile.pve.model_copy(
        update={"user": handle.login.user, "token_name": None, "token_value": None,
                "password": SecretStr(handle.login.password)}
    )  # fmt: skip
    return dashboard_app(Labdeck(profile, face="tui", audit=audit_log))


async def test_an_expired_ticket_is_renewed_quietly_and_the_start_runs_once(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    before = starts_of(handle, guest.vmid)
    app = ticket_dashboard(handle, audit_log)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        handle.call(lambda: handle.state.clock.advance(2 * 3600 + 60))  # the ticket expires
        handle.clear_request_log()
        screen(app).select_guest(guest.vmid)
        await pilot.pause()
        await pilot.press("S")
        note = await write_ended(pilot, f"Start {guest.name}")
        assert "failed" not in note, note
        await settle(pilot)
        assert app.error is None and "✖" not in header_text(app)
        assert_clean(shown(app), handle)
    # a new login, then the start; a start refused with the old ticket never reached a
    # handler (pveproxy refuses first), so the one that ran is the one after the login
    start = ("POST", API + start_path(guest))
    sent_writes = writes(handle)
    assert sent_writes[-1] == start and ("POST", API + "/access/ticket") in sent_writes
    assert len(starts_of(handle, guest.vmid) - before) == 1
    assert audited(audit_log, "pve_start_guest") == [("ok", None)]


async def test_a_refused_login_names_the_user_and_the_password(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="*=401")
    app = ticket_dashboard(handle, audit_log)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app.error is not None)
        await pilot.pause()
        assert "refused the login of root@pam" in header_text(app)
        assert "password" in header_text(app)
        assert_clean(shown(app), handle)
        handle.faults.clear()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.error is None and app.snapshot is not None)


# ------------------------------------------------------------------ guest agent


async def test_agent_down_is_said_in_the_command_pane_which_stays_usable(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="*=agent-down")
    vm = agent_vm(handle)
    app = start_dashboard(handle, make_service, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, vm.vmid)
        said = f"the guest agent in {guest_label(vm)} does not answer."
        assert said in log_text(pane)  # the probe on opening already says so
        await run(pilot, pane, "hostname")
        assert log_text(pane).count(said) == 2
        assert "Is qemu-guest-agent running in the guest?" in log_text(pane)
        assert_clean(log_text(pane) + shown(app), handle)
        exec_posts = [w for w in writes(handle) if w[1].endswith("/agent/exec")]
        assert len(exec_posts) == 1
        assert pane.running is None and not pane.input.disabled
        handle.faults.clear()
        await run(pilot, pane, "hostname")
        assert f"\n{vm.name}\n" in log_text(pane) and "✔ exit 0" in log_text(pane)


# ------------------------------------------------------------------ TrueNAS


async def show_truenas(pilot: Pilot[Any], detail: str | None = None) -> None:
    """Tab 6, and its detail tab ``detail`` (tn-apps, ...) when given."""
    await pilot.press("6")
    await settle(pilot)
    if detail is not None:
        tabs = screen(pilot.app).query_one("#tn-detail", TabbedContent)  # type: ignore[arg-type]
        tabs.active = detail
        await settle(pilot)


def system_text(app: LabdeckApp) -> str:
    return plain(screen(app).query_one("#tn-system", Static).content, width=1000).strip()


def pools_text(app: LabdeckApp) -> str:
    return plain(screen(app).query_one(PoolsPanel).content)


def tab_loaded(app: LabdeckApp) -> bool:
    return "tank" in pools_text(app) and "truenas-demo" in system_text(app)


async def test_truenas_read_dropped_once_is_retried_and_the_tab_loads(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim()
    app = start_dashboard(handle, make_service)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        handle.faults.add_spec("RPC pool.query=ws-dropx1")  # the tab's read, not the refresh's
        await show_truenas(pilot)
        await until(pilot, lambda: tab_loaded(app))
        assert "✖" not in system_text(app)
        assert_clean(shown(app), handle)
    assert handle.faults.hits == {"RPC pool.query=ws-dropx1": 1}  # dropped once, asked again


NAS_CERT_CHANGE = Case(
    "RPC pool.query=cert-change", ("is not trusted", "Set [truenas] ca_bundle"), 1, "tls"
)


@params([*NAS_READ_FAILURES, NAS_CERT_CHANGE])
async def test_truenas_read_fault_is_said_in_the_view_and_a_refresh_recovers(
    make_sim: Any, make_service: Any, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    if case.id in NAS_HELD:
        short_truenas_calls(monkeypatch)
    handle = make_sim()
    app = start_dashboard(handle, make_service)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)  # the refresh's TrueNAS guests came; the tab's reads will fail
        handle.faults.add_spec(case.spec)
        before = rpc_count(handle, "pool.query")
        await show_truenas(pilot)
        await until(pilot, lambda: system_text(app).startswith("✖ TrueNAS:"))
        assert_says(system_text(app), case)
        # two readers in the tab (system, pools), each retried only within its budget
        assert rpc_count(handle, "pool.query") - before <= 2 * case.sent
        assert_clean(shown(app), handle)
        assert app.is_running and "Traceback" not in system_text(app)
        if case is NAS_CERT_CHANGE:
            return  # the new certificate stays: the fix is the person's (ca_bundle)
        handle.faults.clear()
        await pilot.press("ctrl+r")  # the refresh reloads the shown tab
        await until(pilot, lambda: tab_loaded(app))
        assert "✖" not in system_text(app)


async def choose_app(pilot: Pilot[Any], name: str) -> AppTable:
    await show_truenas(pilot, "tn-apps")
    apps = screen(pilot.app).query_one(AppTable)  # type: ignore[arg-type]
    await until(pilot, lambda: name in apps.rows)
    apps.focus()
    apps.move_cursor(row=apps.get_row_index(name))
    await pilot.pause()
    return apps


@pytest.mark.parametrize(
    ("action", "name", "spec", "needles"),
    [
        ("start", "jellyfin", "RPC app.start=ws-drop",
         ["dropped while app.start was in flight", "may or may not have been applied"]),
        ("stop", "plex", "RPC app.stop=ws-drop",
         ["dropped while app.stop was in flight", "may or may not have been applied"]),
        ("start", "jellyfin", "RPC app.start=task-fail",
         ["(app.start) failed", "injected fault: the job failed"]),
        ("start", "jellyfin", "RPC app.start=500", ["[EFAULT] injected fault"]),
    ],
)  # fmt: skip
async def test_truenas_app_write_fault_is_said_once_and_never_resent(
    make_sim: Any, make_service: Any, action: str, name: str, spec: str, needles: list[str]
) -> None:
    handle = make_sim(faults=spec)
    method = spec.split()[1].split("=")[0]
    app = start_dashboard(handle, make_service, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await choose_app(pilot, name)
        await pilot.press("S" if action == "start" else "K")
        if action == "stop":  # asks first
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.click("#confirm")
        verb = action.capitalize()
        note = await write_ended(pilot, f"{verb} app {name}")
        assert note.startswith(f"{verb} app {name}: failed"), note
        for needle in needles:
            assert needle in note, note
        assert_clean(shown(app), handle)
        assert app.is_running
    assert rpc_count(handle, method) == 1


async def test_truenas_app_start_whose_connection_drops_after_the_answer_succeeds(
    make_sim: Any, make_service: Any
) -> None:
    """The job is followed on a new connection, not submitted again."""
    handle = make_sim(faults="RPC app.start=ws-drop:after")
    app = start_dashboard(handle, make_service, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        apps = await choose_app(pilot, "jellyfin")
        await pilot.press("S")
        note = await write_ended(pilot, "Start app jellyfin")
        assert "failed" not in note, note
        await until(pilot, lambda: str(apps.get_cell("jellyfin", "state")) == "RUNNING")
    assert rpc_count(handle, "app.start") == 1


async def test_truenas_vm_stop_from_the_guests_view_with_a_drop_is_sent_once(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="RPC vm.stop=ws-drop")
    app = start_dashboard(handle, make_service, allow_writes=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        grid = screen(app).query_one(GuestTable)
        grid.move_cursor(row=grid.get_row_index("tn:1"))  # debian, running on TrueNAS
        await pilot.pause()
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        note = await write_ended(pilot, "Stop debian")
        assert note.startswith("Stop debian (tn:1): failed"), note
        assert "dropped while vm.stop was in flight" in note
        assert "may or may not have been applied" in note
        assert_clean(shown(app), handle)
    assert rpc_count(handle, "vm.stop") == 1


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("RPC vm.query=500", "[EFAULT] injected fault"),
        ("RPC vm.query=401", "not authenticated"),
        ("RPC vm.query=ws-drop", "lost the connection to TrueNAS"),
        ("RPC vm.query=malformed", "is not JSON-RPC"),
    ],
)
async def test_truenas_guests_failing_beside_the_cluster_are_said_once_and_come_back(
    make_sim: Any, make_service: Any, spec: str, needle: str
) -> None:
    handle = make_sim(faults=spec)
    app = start_dashboard(handle, make_service, refresh_interval=0.2)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: bool(notes(app, "TrueNAS: guests not shown")))
        grid = screen(app).query_one(GuestTable)
        assert grid.row_count == ALL_GUESTS - 4  # the cluster's guests stay
        assert app.error is None and "✖" not in header_text(app)
        [note] = notes(app, "TrueNAS: guests not shown")
        assert needle in note, note
        assert_clean(shown(app), handle)
        calls = rpc_count(handle, "vm.query")
        await until(pilot, lambda: rpc_count(handle, "vm.query") > calls)  # polls go on
        await until(pilot, lambda: app.snapshot is not None and app.snapshot.truenas is None)
        assert len(notes(app, "TrueNAS: guests not shown")) == 1  # said once, not per poll
        handle.faults.clear()
        await until(pilot, lambda: grid.row_count == ALL_GUESTS)
        assert "TrueNAS: TrueNAS answers again." in notes(app, "TrueNAS")


# ------------------------------------------------------------------ shutting down


@pytest.mark.parametrize("spec", ["", "GET /cluster/resources=503"], ids=["answer", "fault"])
async def test_a_refresh_ending_while_the_dashboard_closes_ends_quietly(
    make_sim: Any, make_service: Any, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    """Quitting while a refresh is in flight: the refresh ends after the header's widgets
    were removed; it shows nothing, arms no next poll, and the app ends without an error
    (it used to fail on the missing header, and its error handler failed the same way)."""
    handle = make_sim(faults=spec)
    app = start_dashboard(handle, make_service)
    real_fetch = tui.app.fetch_snapshot
    outcome_ready = asyncio.Event()
    delivered: list[bool] = []

    async def fetch_then_hold(*args: Any, **kwargs: Any) -> Any:
        # A real refresh against the simulator; only its outcome is held back until the
        # dashboard's widgets are being taken down: a moment no simulator can aim at.
        try:
            outcome: Any = await real_fetch(*args, **kwargs)
        except LabdeckError as exc:
            outcome = exc
        outcome_ready.set()
        for _ in range(1500):  # bounded: until the test leaves the app (its shutdown begins)
            if not app.is_running:
                break
            await asyncio.sleep(0.01)
        for _ in range(10_000):  # then, turn by turn, until the header's widgets are gone
            if not state.is_attached:
                break
            await asyncio.sleep(0)
        delivered.append(not state.is_attached)
        if isinstance(outcome, LabdeckError):
            raise outcome
        return outcome

    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app.snapshot is not None or app.error is not None)
        state = screen(app).query_one(ClusterHeader).query_one("#header-state", Static)
        monkeypatch.setattr(tui.app, "fetch_snapshot", fetch_then_hold)
        await pilot.press("ctrl+r")
        await until(pilot, outcome_ready.is_set)
        [refresh] = [w for w in app.workers if w.group == "refresh"]
    # leaving the block shut the app down; it raised nothing (run_test re-raises)
    assert delivered == [True]  # the refresh ended while the header was gone
    assert refresh.state == WorkerState.SUCCESS
    assert not app.is_running
