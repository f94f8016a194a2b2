"""Faults as each face shows them: MCP tool errors here, the dashboard header below
(``tests/test_faults_cli.py``: the CLI). Every fault kind of ``simulator.faults`` is covered.

For every face: no crash, one clear message that says what to do, the face stays up for the
next call, a read is retried only where that may help (within a budget) and a write is sent
at most once, counted in the simulator's request log. The matrix is ``tests.support.faults``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr
from textual.pilot import Pilot

from core.audit import AuditLog
from core.service import Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server
from tests.support.faults import (
    GUESTS,
    NAS_READ_FAILURES,
    NAS_WRITE_FAILURES,
    PVE_READ_FAILURES,
    PVE_READ_RECOVERIES,
    PVE_WRITE_FAILURES,
    ROOMY_TIMEOUT_S,
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
    start_tasks,
    stopped_vm,
    writes,
)
from tui.app import LabdeckApp
from tui.widgets.cluster_header import ClusterHeader
from tui.widgets.guest_table import GuestTable

FROZEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


# ------------------------------------------------------------------ MCP


@pytest.fixture(autouse=True)
def _no_tool_crash(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Any:
    """An MCP tool that raised anything but a clear ToolError is logged as a crash (with a
    traceback) by the SDK, while the agent only reads "Error executing tool": fail on it."""
    yield
    if request.node.name.startswith("test_mcp_"):
        crashes = [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
        assert crashes == []


def mcp_server(handle: Any, audit_log: AuditLog, *, allow_writes: bool = False,
               auth: str = "token", timeout_s: float = TIMEOUT_S) -> Any:  # fmt: skip
    """The MCP server on ``handle``; ``auth``: token, ticket (user + password) or pinned."""
    profile = demo_profile(handle, allow_writes=allow_writes)
    update: dict[str, Any] = {"timeout_s": timeout_s}
    if auth == "ticket":
        update.update(user=handle.login.user, token_name=None, token_value=None,
                      password=SecretStr(handle.login.password))  # fmt: skip
    if auth == "pinned":
        update.update(ca_bundle=None, fingerprint=handle.cert_fingerprint)
    profile.pve = profile.pve.model_copy(update=update)

    def factory() -> Labdeck:
        return Labdeck(profile, face="mcp", allow_writes=allow_writes, audit=audit_log,
                       audit_reads=True)  # fmt: skip

    return build_server(factory, allow_writes=allow_writes)


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def failed(result: Any, handle: Any, case: Case | None = None) -> str:
    """The text of a tool error: clean, and with every phrase the case expects."""
    text = text_of(result)
    assert result.is_error, text
    assert_clean(text, handle)
    for needle in case.needles if case is not None else ():
        assert needle in text, text
    return text


def audited(audit_log: AuditLog, operation: str) -> list[tuple[str, str | None]]:
    """(outcome, error kind) of each audit line of ``operation``, oldest first."""
    return [(e["outcome"], e.get("error")) for e in audit_log.read() if e["operation"] == operation]


@params(PVE_READ_FAILURES)
async def test_mcp_read_fault_is_one_clear_error_and_the_session_goes_on(
    make_sim: Any, audit_log: AuditLog, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    async with Client(mcp_server(handle, audit_log)) as client:
        failed(await client.call_tool("pve_list_guests", {}), handle, case)
        assert sent(handle, GUESTS) == case.sent  # retried only where a retry may help
        handle.faults.clear()
        again = await client.call_tool("pve_list_guests", {})  # same session, next call
        assert not again.is_error and again.structured_content["rows"]
    assert audited(audit_log, "pve_list_guests") == [("error", case.error), ("ok", None)]


@params(PVE_READ_RECOVERIES)
async def test_mcp_read_retried_through_a_passing_fault_succeeds(
    make_sim: Any, audit_log: AuditLog, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    async with Client(mcp_server(handle, audit_log)) as client:
        result = await client.call_tool("pve_list_guests", {})
    assert not result.is_error and result.structured_content["rows"], text_of(result)
    assert sent(handle, GUESTS) == case.sent
    assert audited(audit_log, "pve_list_guests") == [("ok", None)]


@params(PVE_WRITE_FAILURES)
async def test_mcp_write_fault_sends_once_and_says_how_to_check(
    make_sim: Any, audit_log: AuditLog, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    guest = stopped_vm(handle)
    async with Client(mcp_server(handle, audit_log, allow_writes=True)) as client:
        failed(await client.call_tool("pve_start_guest", {"vmid": guest.vmid}), handle, case)
        handle.faults.clear()
        check = await client.call_tool("pve_list_tasks", {"vmid": guest.vmid})  # the next call
    assert not check.is_error, text_of(check)
    assert writes(handle) == [("POST", f"/api2/json{start_path(guest)}")]  # never resent
    assert audited(audit_log, "pve_start_guest") == [("error", case.error)]
    if case.id in ("reset:after", "malformed", "slow:3"):  # it ran, though the answer failed
        assert eventually(lambda: start_tasks(handle, guest.vmid) == 1)
    else:
        assert start_tasks(handle, guest.vmid) == (1 if case.id == "task-fail" else 0)


async def test_mcp_exec_with_the_agent_down_says_so_and_sends_once(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="*=agent-down")
    vm = agent_vm(handle)
    exec_path = f"/api2/json/nodes/{vm.node}/qemu/{vm.vmid}/agent/exec"
    args = {"vmid": vm.vmid, "command": ["uname", "-a"]}
    server = mcp_server(handle, audit_log, allow_writes=True, timeout_s=ROOMY_TIMEOUT_S)
    async with Client(server) as client:
        text = failed(await client.call_tool("pve_guest_exec", args), handle)
        info = failed(await client.call_tool("pve_guest_agent_info", {"vmid": vm.vmid}), handle)
        assert writes(handle) == [("POST", exec_path)]
        handle.faults.clear()
        ran = await client.call_tool("pve_guest_exec", args)
    for message in (text, info):
        assert "QEMU guest agent is not running" in message
        assert "start the qemu-guest-agent service inside the guest" in message
    assert not ran.is_error and ran.structured_content["exit_code"] == 0, text_of(ran)
    assert audited(audit_log, "pve_guest_exec") == [("error", "server"), ("ok", None)]


@pytest.mark.parametrize(
    ("auth", "needles"),
    [
        ("token", ["is not trusted", "Set [pve] ca_bundle to the cluster CA"]),
        ("pinned", ["no longer matches the configured pin", "Refusing to send credentials",
                    "update 'fingerprint'"]),
    ],
)  # fmt: skip
async def test_mcp_changed_certificate_is_refused_with_the_fix_and_no_credentials_sent(
    make_sim: Any, audit_log: AuditLog, auth: str, needles: list[str]
) -> None:
    handle = make_sim()
    async with Client(mcp_server(handle, audit_log, auth=auth)) as client:
        assert not (await client.call_tool("pve_list_guests", {})).is_error
        handle.faults.add("cert-change", path="/cluster/tasks")
        handle.clear_request_log()
        first = failed(await client.call_tool("pve_list_tasks", {}), handle)
        assert handle.request_log == [("GET", "/api2/json/cluster/tasks")]  # what triggered it
        handle.clear_request_log()
        again = failed(await client.call_tool("pve_list_tasks", {}), handle)  # still refused
    for text in (first, again):
        for needle in needles:
            assert needle in text, text
    assert handle.request_log == []  # nothing, so no credential, went to the new certificate


async def test_mcp_write_that_changes_the_certificate_is_outcome_unknown(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="POST */status/start=cert-change")
    guest = stopped_vm(handle)
    async with Client(mcp_server(handle, audit_log, allow_writes=True)) as client:
        text = failed(await client.call_tool("pve_start_guest", {"vmid": guest.vmid}), handle)
        check = failed(await client.call_tool("pve_list_tasks", {"vmid": guest.vmid}), handle)
    assert "may or may not have been applied" in text and "pve_list_tasks" in text
    assert "is not trusted" in check and "ca_bundle" in check
    assert len(writes(handle)) == 1 and start_tasks(handle, guest.vmid) == 0


async def test_mcp_expired_ticket_is_renewed_and_the_write_runs_once(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    server = mcp_server(handle, audit_log, allow_writes=True, auth="ticket",
                        timeout_s=ROOMY_TIMEOUT_S)  # fmt: skip
    async with Client(server) as client:
        assert not (await client.call_tool("pve_list_guests", {})).is_error
        handle.call(lambda: handle.state.clock.advance(2 * 3600 + 60))  # the ticket expires
        handle.clear_request_log()
        started = await client.call_tool("pve_start_guest", {"vmid": guest.vmid})
    assert not started.is_error, text_of(started)
    # pveproxy refused the old ticket before any handler ran: the resend after a new login
    # is the one write that happened
    assert writes(handle)[:3] == [
        ("POST", f"/api2/json{start_path(guest)}"),
        ("POST", "/api2/json/access/ticket"),
        ("POST", f"/api2/json{start_path(guest)}"),
    ]
    assert start_tasks(handle, guest.vmid) == 1
    assert audited(audit_log, "pve_start_guest") == [("ok", None)]


async def test_mcp_refused_password_says_which_login_and_what_to_check(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="*=401")
    async with Client(mcp_server(handle, audit_log, auth="ticket")) as client:
        text = failed(await client.call_tool("pve_list_nodes", {}), handle)
        handle.faults.clear()
        assert not (await client.call_tool("pve_list_nodes", {})).is_error
    assert "refused the login of root@pam" in text and "password" in text


@params(NAS_READ_FAILURES)
async def test_mcp_truenas_read_fault_is_one_clear_error(
    make_sim: Any, audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    short_truenas_calls(monkeypatch)
    handle = make_sim(faults=case.spec)
    async with Client(mcp_server(handle, audit_log)) as client:
        failed(await client.call_tool("truenas_list_pools", {}), handle, case)
        assert rpc_count(handle, "pool.query") == case.sent
        handle.faults.clear()
        again = await client.call_tool("truenas_list_pools", {})
    assert not again.is_error, text_of(again)
    assert audited(audit_log, "truenas_list_pools") == [("error", case.error), ("ok", None)]


async def test_mcp_truenas_read_is_retried_after_a_drop(make_sim: Any, audit_log: AuditLog) -> None:
    handle = make_sim(faults="RPC pool.query=ws-dropx1")
    async with Client(mcp_server(handle, audit_log)) as client:
        pools = await client.call_tool("truenas_list_pools", {})
    assert not pools.is_error, text_of(pools)
    assert rpc_count(handle, "pool.query") == 2


async def test_mcp_truenas_ended_login_is_renewed_and_the_write_runs_once(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="RPC pool.dataset.create=401x1")
    async with Client(mcp_server(handle, audit_log, allow_writes=True)) as client:
        created = await client.call_tool("truenas_create_dataset", {"name": "tank/agent"})
        datasets = await client.call_tool("truenas_list_datasets", {})
    assert not created.is_error, text_of(created)
    # middlewared refuses before the method runs: the resend after a new login is the write
    assert rpc_count(handle, "pool.dataset.create") == 2
    assert text_of(datasets).count('"tank/agent"') == 1


async def test_mcp_truenas_changed_certificate_names_the_fix(
    make_sim: Any, audit_log: AuditLog
) -> None:
    handle = make_sim(faults="RPC pool.query=cert-change")
    async with Client(mcp_server(handle, audit_log)) as client:
        text = failed(await client.call_tool("truenas_list_pools", {}), handle)
    assert "is not trusted" in text and "Set [truenas] ca_bundle" in text


@params(NAS_WRITE_FAILURES)
async def test_mcp_truenas_write_fault_sends_once(
    make_sim: Any, audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    short_truenas_calls(monkeypatch)
    handle = make_sim(faults=case.spec)
    async with Client(mcp_server(handle, audit_log, allow_writes=True)) as client:
        created = await client.call_tool("truenas_create_dataset", {"name": "tank/agent"})
        failed(created, handle, case)
        handle.faults.clear()
        datasets = await client.call_tool("truenas_list_datasets", {})  # how to check
    assert not datasets.is_error, text_of(datasets)
    assert rpc_count(handle, "pool.dataset.create") == case.sent
    assert audited(audit_log, "truenas_create_dataset") == [("error", case.error)]


@pytest.mark.parametrize(
    ("spec", "tool", "args", "needles"),
    [
        ("RPC app.start=task-fail", "truenas_start_app", {"name": "jellyfin"},
         ["TrueNAS job", "(app.start) failed", "injected fault: the job failed"]),
        # the answer (the job id) arrived before the drop: the job is followed, not resubmitted
        ("RPC app.start=ws-drop:after", "truenas_start_app", {"name": "jellyfin"}, []),
        ("RPC pool.dataset.create=ws-drop:after", "truenas_create_dataset",
         {"name": "tank/agent"}, []),
    ],
    ids=["task-fail", "ws-drop:after-job", "ws-drop:after"],
)  # fmt: skip
async def test_mcp_truenas_write_shows_its_job_s_error_or_survives_a_later_drop(
    make_sim: Any, audit_log: AuditLog, spec: str, tool: str, args: dict[str, Any],
    needles: list[str],
) -> None:  # fmt: skip
    handle = make_sim(faults=spec)
    async with Client(mcp_server(handle, audit_log, allow_writes=True)) as client:
        result = await client.call_tool(tool, args)
    if needles:
        text = failed(result, handle)
        assert all(needle in text for needle in needles), text
    else:
        assert not result.is_error, text_of(result)
    assert rpc_count(handle, spec.split()[1].split("=")[0]) == 1
    assert [o for o, _ in audited(audit_log, tool)] == (["error"] if needles else ["ok"])


# ------------------------------------------------------------------ dashboard


def header_text(app: LabdeckApp) -> str:
    return app.screen_stack[0].query_one(ClusterHeader).text


async def until(pilot: Pilot[None], condition: Callable[[], bool], within_s: float = 15.0) -> None:
    async with asyncio.timeout(within_s):
        while not condition():
            await pilot.pause(0.05)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("GET /cluster/resources=503", "Service Unavailable"),
        ("GET /cluster/resources=reset", "lost the connection"),
        ("GET /cluster/resources=malformed", "is not valid JSON"),
    ],
)
async def test_dashboard_shows_the_fault_keeps_refreshing_and_recovers(
    make_sim: Any, make_service: Any, spec: str, needle: str
) -> None:
    handle = make_sim(faults=spec)
    service = make_service(handle, face="tui")
    service.profile.pve.timeout_s = 0.5
    app = LabdeckApp(service, refresh_interval=0.2, clock=lambda: FROZEN)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.error is not None)
        assert needle in header_text(app)
        before = sent(handle, "/cluster/resources")
        await until(pilot, lambda: sent(handle, "/cluster/resources") > before)  # still polling
        assert app.is_running and needle in header_text(app)
        handle.faults.clear()
        await until(pilot, lambda: app.error is None and app.snapshot is not None)
        await pilot.pause()
        assert needle not in header_text(app)
        assert app.screen_stack[0].query_one(GuestTable).row_count >= 24
