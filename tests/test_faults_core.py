"""What the core clients make of each fault, over real sockets.

Retries are counted in the simulator's request log (TrueNAS: its method log), so "retried
twice" and "sent exactly once" are facts the server saw, not what the client believes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.config import PveSettings, TrueNasSettings
from core.errors import (
    AuthError,
    BadResponse,
    OutcomeUnknown,
    PermissionDenied,
    ServerError,
    TaskFailed,
    TLSError,
    Unreachable,
)
from core.pve import PveClient
from core.truenas import TrueNasClient
from core.truenas_models import JobFailed

API = "/api2/json"


# ------------------------------------------------------------------ helpers


def pve_settings(handle: Any, **overrides: Any) -> PveSettings:
    values: dict[str, Any] = dict(
        host=handle.host, port=handle.port, user=handle.token.user,
        token_name=handle.token.token_name, token_value=SecretStr(handle.token.secret),
        ca_bundle=Path(handle.ca_path), timeout_s=2.0,
    )  # fmt: skip
    values.update(overrides)
    return PveSettings(**values)


def sent(handle: Any, path: str, method: str = "GET") -> int:
    """How many ``method path`` requests reached the simulator."""
    return sum(1 for m, p in handle.request_log if (m, p) == (method, API + path))


def writes(handle: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in handle.request_log if m != "GET"]


def stopped_vm(handle: Any) -> Any:
    guests = handle.call(lambda: sorted(handle.state.guests.values(), key=lambda g: g.vmid))
    return next(g for g in guests if g.kind == "qemu" and g.status == "stopped" and not g.template)


def status_of(handle: Any, vmid: int) -> str:
    return str(handle.call(lambda: handle.state.guests[vmid].status))


def start_tasks(handle: Any, vmid: int) -> int:
    """qmstart tasks the simulator ran for ``vmid`` (seeded history is older than a minute)."""
    now = handle.call(handle.state.now)
    tasks = handle.call(handle.state.tasks.everything)
    return sum(1 for t in tasks if t.kind == "qmstart" and t.ident == str(vmid)
               and t.starttime > now - 60)  # fmt: skip


def eventually(condition: Any, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:  # bounded
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# ------------------------------------------------------------------ PVE: retries of reads


async def test_a_read_is_retried_through_503s_and_succeeds(make_sim: Any) -> None:
    handle = make_sim(faults="GET /cluster/resources=503x2")
    async with PveClient(pve_settings(handle)) as pve:
        resources = await pve.get("/cluster/resources")
    assert resources and sent(handle, "/cluster/resources") == 3


async def test_a_read_that_keeps_failing_gives_up_after_the_budget(make_sim: Any) -> None:
    handle = make_sim(faults="GET /cluster/resources=503")
    async with PveClient(pve_settings(handle)) as pve:
        with pytest.raises(ServerError) as info:
            await pve.get("/cluster/resources")
    assert info.value.status == 503
    assert "Service Unavailable" in info.value.message
    assert "retried" in str(info.value.hint)
    assert sent(handle, "/cluster/resources") == 3  # 1 + 2 retries, then it stops


async def test_429_retry_after_is_honoured_within_the_budget(make_sim: Any) -> None:
    handle = make_sim(faults="GET /nodes=429:0.5x1")
    async with PveClient(pve_settings(handle)) as pve:
        assert await pve.get("/nodes")
    assert sent(handle, "/nodes") == 2


async def test_429_asking_for_longer_than_the_budget_fails_at_once(make_sim: Any) -> None:
    handle = make_sim(faults="GET /nodes=429:60")
    async with PveClient(pve_settings(handle)) as pve:
        with pytest.raises(ServerError, match="rate-limiting") as info:
            await pve.get("/nodes")
    assert info.value.status == 429 and "wait 60 s" in str(info.value)
    assert sent(handle, "/nodes") == 1


async def test_a_reset_read_is_retried_transparently(make_sim: Any) -> None:
    handle = make_sim(faults="GET /version=resetx1")
    async with PveClient(pve_settings(handle)) as pve:
        assert (await pve.get("/version"))["version"]
    assert sent(handle, "/version") == 2


async def test_a_read_that_times_out_is_retried_then_unreachable(make_sim: Any) -> None:
    handle = make_sim(faults="GET /version=timeout:10")
    async with PveClient(pve_settings(handle, timeout_s=0.3)) as pve:
        with pytest.raises(Unreachable, match="timed out after 0.3 s") as info:
            await pve.get("/version")
    assert "timeout_s" in str(info.value.hint)
    assert sent(handle, "/version") == 3


async def test_malformed_json_is_a_typed_error_and_not_retried(make_sim: Any) -> None:
    handle = make_sim(faults="GET /cluster/resources=malformed")
    async with PveClient(pve_settings(handle)) as pve:
        with pytest.raises(BadResponse, match="is not valid JSON") as info:
            await pve.get("/cluster/resources")
    assert info.value.kind == "bad_response" and info.value.status == 200
    assert "proxy" in str(info.value.hint)
    assert sent(handle, "/cluster/resources") == 1


# ------------------------------------------------------------------ PVE: writes, exactly once


@pytest.mark.parametrize("kind", ["503", "429", "500"])
async def test_a_failed_write_is_never_retried(make_sim: Any, make_service: Any, kind: str) -> None:
    handle = make_sim(faults=f"POST */status/start={kind}")
    guest = stopped_vm(handle)
    async with make_service(handle, allow_writes=True) as lab:
        with pytest.raises(ServerError):
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
    assert writes(handle) == [("POST", f"{API}/nodes/{guest.node}/qemu/{guest.vmid}/status/start")]
    assert status_of(handle, guest.vmid) == "stopped"


async def test_put_and_delete_are_never_retried_either(make_sim: Any) -> None:
    handle = make_sim(faults="PUT /pools/*=503,DELETE /pools/*=reset")
    async with PveClient(pve_settings(handle)) as pve:
        await pve.post("/pools", {"poolid": "faulty"})
        with pytest.raises(ServerError, match="HTTP 503"):
            await pve.put("/pools/faulty", {"comment": "x"})
        with pytest.raises(OutcomeUnknown, match="DELETE /pools/faulty lost the connection"):
            await pve.delete("/pools/faulty")
    assert [m for m, _ in writes(handle)] == ["POST", "PUT", "DELETE"]


async def test_a_reset_write_is_outcome_unknown_and_sent_once(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="POST */status/start=reset")
    guest = stopped_vm(handle)
    async with make_service(handle, allow_writes=True) as lab:
        with pytest.raises(OutcomeUnknown) as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
    assert "may or may not have been applied" in info.value.message
    assert "never resends a write" in str(info.value.hint)
    assert "pve_list_tasks" in str(info.value.hint)
    assert len(writes(handle)) == 1  # exactly one POST reached the server
    assert start_tasks(handle, guest.vmid) == 0 and status_of(handle, guest.vmid) == "stopped"


async def test_a_write_whose_answer_was_lost_ran_exactly_once(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="POST */status/start=reset:after")
    guest = stopped_vm(handle)
    async with make_service(handle, allow_writes=True) as lab:
        with pytest.raises(OutcomeUnknown):
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
        # what the hint says to do: the task list shows the write happened, once
        tasks = await lab.call("pve_list_tasks", {"vmid": guest.vmid, "type": "qmstart"})
    assert len(tasks.rows) >= 1
    assert len(writes(handle)) == 1 and start_tasks(handle, guest.vmid) == 1
    assert eventually(lambda: status_of(handle, guest.vmid) == "running")


async def test_a_write_that_times_out_is_outcome_unknown(make_sim: Any) -> None:
    handle = make_sim(faults="POST */status/start=timeout:10")
    guest = stopped_vm(handle)
    path = f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start"
    async with PveClient(pve_settings(handle, timeout_s=0.3)) as pve:
        with pytest.raises(OutcomeUnknown, match="timed out after 0.3 s"):
            await pve.post(path)
    assert sent(handle, path, "POST") == 1


async def test_a_malformed_answer_to_a_write_says_it_may_have_applied(make_sim: Any) -> None:
    handle = make_sim(faults="POST */status/start=malformed")
    guest = stopped_vm(handle)
    path = f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start"
    async with PveClient(pve_settings(handle)) as pve:
        with pytest.raises(BadResponse) as info:
            await pve.post(path)
    assert "may have been applied" in str(info.value.hint)
    assert sent(handle, path, "POST") == 1 and start_tasks(handle, guest.vmid) == 1


async def test_task_failure_raises_task_failed_with_the_log(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="POST */status/start=task-fail")
    guest = stopped_vm(handle)
    async with make_service(handle, allow_writes=True) as lab:
        with pytest.raises(TaskFailed) as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
    error = info.value
    assert error.exitstatus == f"start failed: QEMU exited with code 1 (VM {guest.vmid})"
    assert error.log_tail[-1] == f"TASK ERROR: {error.exitstatus}"
    assert len(writes(handle)) == 1 and status_of(handle, guest.vmid) == "stopped"


# ------------------------------------------------------------------ PVE: auth, privileges, agent


async def test_a_revoked_token_is_an_auth_error(make_sim: Any) -> None:
    handle = make_sim(faults="GET /cluster/resources=401")
    async with PveClient(pve_settings(handle)) as pve:
        with pytest.raises(AuthError) as info:
            await pve.get("/cluster/resources")
    assert "refused the API token root@pam!labdeck (authentication failure)" in str(info.value)
    assert "revoked" in str(info.value.hint)
    assert handle.token.secret not in str(info.value)
    assert sent(handle, "/cluster/resources") == 1


async def test_an_expired_ticket_is_renewed_and_the_write_runs_once(make_sim: Any) -> None:
    handle = make_sim(faults="POST */status/start=401x1")
    guest = stopped_vm(handle)
    path = f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start"
    settings = pve_settings(handle, token_name=None, token_value=None, user=handle.login.user,
                            password=SecretStr(handle.login.password))  # fmt: skip
    async with PveClient(settings) as pve:
        upid = await pve.post(path)
        await pve.wait_task(upid, timeout_s=20)
    # pveproxy refuses before any handler runs, so the resend after a new login is safe:
    assert [p for _, p in writes(handle)] == [
        f"{API}/access/ticket",
        f"{API}{path}",
        f"{API}/access/ticket",
        f"{API}{path}",
    ]
    assert start_tasks(handle, guest.vmid) == 1 and status_of(handle, guest.vmid) == "running"


async def test_a_missing_privilege_names_it_and_how_to_grant_it(make_sim: Any) -> None:
    handle = make_sim(faults="GET */status/current=403")
    guest = stopped_vm(handle)
    async with PveClient(pve_settings(handle)) as pve:
        with pytest.raises(PermissionDenied) as info:
            await pve.get(f"/nodes/{guest.node}/qemu/{guest.vmid}/status/current")
    assert (info.value.privilege, info.value.path) == ("VM.Audit", f"/vms/{guest.vmid}")
    assert f"pveum acl modify /vms/{guest.vmid}" in str(info.value.hint)


async def test_an_agent_that_is_down_says_so_and_what_to_do(
    make_sim: Any, make_service: Any
) -> None:
    handle = make_sim(faults="*=agent-down")
    guests = handle.call(lambda: sorted(handle.state.guests.values(), key=lambda g: g.vmid))
    vm = next(g for g in guests if g.kind == "qemu" and g.status == "running" and g.agent)
    async with make_service(handle) as lab:
        with pytest.raises(ServerError, match="QEMU guest agent is not running") as info:
            await lab.call("pve_guest_agent_info", {"vmid": vm.vmid})
        assert (await lab.call("pve_guest_status", {"vmid": vm.vmid})).status == "running"
    assert "qemu-guest-agent" in str(info.value.hint)


# ------------------------------------------------------------------ PVE: certificate change


async def test_a_changed_certificate_is_refused_by_ca_verification(make_sim: Any) -> None:
    handle = make_sim()
    async with PveClient(pve_settings(handle)) as pve:
        assert await pve.get("/version")
        handle.faults.add("cert-change", path="/version")
        handle.clear_request_log()
        with pytest.raises(TLSError, match="is not trusted") as info:
            await pve.get("/version")
    assert "ca_bundle" in str(info.value.hint)
    assert sent(handle, "/version") == 1  # the one that triggered it; none after the change


async def test_a_changed_certificate_is_refused_by_the_pin(make_sim: Any) -> None:
    handle = make_sim()
    pinned = pve_settings(handle, ca_bundle=None, fingerprint=handle.cert_fingerprint)
    async with PveClient(pinned) as pve:
        assert await pve.get("/version")
        handle.faults.add("cert-change", path="/version")
        with pytest.raises(TLSError, match="no longer matches the configured pin") as info:
            await pve.get("/version")
    assert "Refusing to send credentials" in str(info.value)
    assert "fingerprint" in str(info.value.hint)
    handle.clear_request_log()
    async with PveClient(pinned) as pve:  # a new client checks the pin before connecting
        with pytest.raises(TLSError, match="does not match the configured pin"):
            await pve.get("/version")
    assert handle.request_log == []


# ------------------------------------------------------------------ TrueNAS


def nas_client(handle: Any, **kwargs: Any) -> TrueNasClient:
    settings = TrueNasSettings(url=handle.truenas_url, ca_bundle=Path(handle.ca_path))
    kwargs.setdefault("call_timeout_s", 5.0)
    kwargs.setdefault("reconnect_delay_s", 0.05)
    return TrueNasClient(settings, secret=SecretStr(handle.truenas_api_key), **kwargs)


def rpc_count(handle: Any, name: str) -> int:
    return int(handle.call(lambda: handle.simulator.truenas.method_log.count(name)))


async def test_truenas_read_is_retried_after_a_drop(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.query=ws-dropx1")
    async with nas_client(handle) as nas:
        pools = await nas.query("pool.query")
        assert nas.reconnects == 1
    assert pools and rpc_count(handle, "pool.query") == 2


async def test_truenas_write_in_flight_is_not_resent(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.dataset.create=ws-drop")
    async with nas_client(handle) as nas:
        with pytest.raises(OutcomeUnknown, match="may or may not have been applied") as info:
            await nas.call("pool.dataset.create", {"name": "tank/once"})
        assert "Check the current state" in str(info.value.hint)
        found = await nas.query("pool.dataset.query", [["id", "=", "tank/once"]])
    assert [d["id"] for d in found] == ["tank/once"]
    assert rpc_count(handle, "pool.dataset.create") == 1


@pytest.mark.parametrize("spec", ["RPC app.start=ws-drop:after", "RPC core.get_jobs=ws-dropx1"])
async def test_truenas_job_survives_a_drop_by_polling_not_resubmitting(
    make_sim: Any, spec: str
) -> None:
    handle = make_sim(faults=spec)
    async with nas_client(handle) as nas:
        await nas.run_job("app.start", "jellyfin", timeout_s=30)
        app = await nas.query("app.query", [["name", "=", "jellyfin"]], get=True)
        assert nas.reconnects >= 1
    assert app["state"] == "RUNNING"
    assert rpc_count(handle, "app.start") == 1  # never resubmitted
    assert rpc_count(handle, "core.get_jobs") >= 1


async def test_truenas_job_failure_is_job_failed(make_sim: Any) -> None:
    handle = make_sim(faults="RPC app.start=task-fail")
    async with nas_client(handle) as nas:
        with pytest.raises(JobFailed, match="injected fault: the job failed") as info:
            await nas.run_job("app.start", "jellyfin", timeout_s=30)
    assert info.value.state == "FAILED" and rpc_count(handle, "app.start") == 1


@pytest.mark.parametrize(
    ("fault", "error", "needle", "calls"),
    [
        ("403x1", PermissionDenied, "lacks a role", 2),
        # one "not authenticated" is absorbed by a login and one resend (see
        # test_truenas_relogin.py); a second in a row is reported, not retried again
        ("401x2", AuthError, "still says the session is not authenticated", 3),
        ("500x1", ServerError, "injected fault", 2),
    ],
)
async def test_truenas_error_kinds_map_to_clear_errors(
    make_sim: Any, fault: str, error: type[Exception], needle: str, calls: int
) -> None:
    handle = make_sim(faults=f"RPC pool.query={fault}")
    async with nas_client(handle) as nas:
        with pytest.raises(error, match=needle):
            await nas.query("pool.query")
        assert await nas.query("pool.query")  # the connection stays usable
    assert rpc_count(handle, "pool.query") == calls


async def test_truenas_unanswered_calls_time_out_clearly(make_sim: Any) -> None:
    handle = make_sim(faults="RPC pool.query=timeout:5,RPC pool.dataset.create=timeout:5")
    async with nas_client(handle, call_timeout_s=0.3) as nas:
        with pytest.raises(Unreachable, match="did not answer pool.query in time"):
            await nas.query("pool.query")
        with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
            await nas.call("pool.dataset.create", {"name": "tank/slowly"})
    assert rpc_count(handle, "pool.dataset.create") == 1


async def test_truenas_frame_that_is_not_json_breaks_the_connection_not_the_call(
    make_sim: Any,
) -> None:
    # no short call timeout: the answer must come from the broken frame, not from waiting
    handle = make_sim(faults="RPC system.info=malformed,RPC pool.dataset.create=malformed")
    async with nas_client(handle, call_timeout_s=60.0) as nas:
        with pytest.raises(BadResponse, match="system.info") as info:
            await nas.call("system.info")
        assert "is not JSON-RPC" in info.value.message
        with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
            await nas.call("pool.dataset.create", {"name": "tank/garbled"})
        assert await nas.query("pool.query")  # a new connection serves the next call
    assert rpc_count(handle, "system.info") == 2  # the read was asked again once
    assert rpc_count(handle, "pool.dataset.create") == 1  # the write never twice


@pytest.mark.parametrize("pinned", [False, True])
async def test_truenas_changed_certificate_is_refused_on_reconnect(
    make_sim: Any, pinned: bool
) -> None:
    handle = make_sim()
    settings = TrueNasSettings(url=handle.truenas_url, ca_bundle=Path(handle.ca_path))
    if pinned:
        settings = TrueNasSettings(url=handle.truenas_url, fingerprint=handle.cert_fingerprint)
    nas = TrueNasClient(settings, secret=SecretStr(handle.truenas_api_key),
                        reconnect_delay_s=0.05)  # fmt: skip
    async with nas:
        assert await nas.query("pool.query")
        handle.faults.add("cert-change", rpc="pool.query")
        needle = "does not match the configured pin" if pinned else "not trusted"
        with pytest.raises(TLSError, match=needle):
            await nas.query("pool.query")
