"""Power operations run as PVE worker tasks in simulated time, then really change guests."""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorHandle, start_in_thread
from simulator.model import Guest

UPID_RE = re.compile(
    r"UPID:(?P<node>pve\d+):(?P<pid>[0-9A-F]{8}):(?P<pstart>[0-9A-F]{8,9}):"
    r"(?P<start>[0-9A-F]{8}):(?P<type>\w+):(?P<id>\d*):(?P<user>[^:]+):"
)
POLL_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def sim_handle() -> Iterator[SimulatorHandle]:
    with start_in_thread(SimulatorConfig(seed=11, speed=50)) as handle:
        yield handle


def _client(handle: SimulatorHandle) -> httpx.Client:
    return httpx.Client(
        base_url=f"{handle.pve_url}/api2/json",
        verify=ssl.create_default_context(cafile=handle.ca_path),
        headers={"Authorization": handle.token.header},
        timeout=10,
    )


@pytest.fixture(scope="module")
def api(sim_handle: SimulatorHandle) -> Iterator[httpx.Client]:
    with _client(sim_handle) as client:
        yield client


_taken: set[int] = set()


def _fresh(handle: SimulatorHandle, kind: str, running: bool) -> Guest:
    """A guest no other test in this module has touched."""
    for guest in handle.state.guests.values():
        if guest.vmid in _taken or guest.template:
            continue
        if guest.kind == kind and guest.running == running:
            _taken.add(guest.vmid)
            return guest
    raise AssertionError(f"no untouched {kind} guest with running={running}")


def _wait_for_task(api: httpx.Client, node: str, upid: str) -> dict[str, Any]:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while time.monotonic() < deadline:
        status = api.get(f"/nodes/{node}/tasks/{upid}/status").json()["data"]
        if status["status"] == "stopped":
            return dict(status)
        time.sleep(0.02)
    raise AssertionError(f"task {upid} still running after {POLL_TIMEOUT_S}s")


def _status(api: httpx.Client, guest: Guest) -> dict[str, Any]:
    data: dict[str, Any] = api.get(
        f"/nodes/{guest.node}/{guest.kind}/{guest.vmid}/status/current"
    ).json()["data"]
    return data


def test_starting_a_stopped_vm_returns_a_upid_and_the_vm_ends_up_running(
    api: httpx.Client, sim_handle: SimulatorHandle
) -> None:
    guest = _fresh(sim_handle, "qemu", running=False)
    response = api.post(f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start")
    assert response.status_code == 200
    upid = response.json()["data"]
    found = UPID_RE.fullmatch(upid)
    assert found is not None, upid
    assert found["node"] == guest.node
    assert (found["type"], found["id"], found["user"]) == ("qmstart", str(guest.vmid),
                                                            "root@pam!labdeck")  # fmt: skip
    assert _status(api, guest)["status"] == "stopped"  # the worker has only just begun

    final = _wait_for_task(api, guest.node, upid)
    assert final["exitstatus"] == "OK"
    assert final["upid"] == upid
    assert (final["user"], final["tokenid"]) == ("root@pam", "labdeck")
    assert final["starttime"] == int(found["start"], 16)

    current = _status(api, guest)
    assert current["status"] == "running"
    assert current["qmpstatus"] == "running"
    assert current["uptime"] < 120
    assert current["mem"] > 0 and current["pid"] > 0


def test_task_log_pages_and_ends_with_task_ok(
    api: httpx.Client, sim_handle: SimulatorHandle
) -> None:
    guest = _fresh(sim_handle, "qemu", running=True)
    upid = api.post(f"/nodes/{guest.node}/qemu/{guest.vmid}/status/shutdown").json()["data"]
    assert _wait_for_task(api, guest.node, upid)["exitstatus"] == "OK"
    body = api.get(f"/nodes/{guest.node}/tasks/{upid}/log").json()
    lines = body["data"]
    assert body["total"] == len(lines) >= 2
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["t"] == "TASK OK"
    page = api.get(f"/nodes/{guest.node}/tasks/{upid}/log", params={"start": 1, "limit": 1})
    assert page.json()["data"] == [lines[1]]
    assert page.json()["total"] == len(lines)
    assert _status(api, guest)["status"] == "stopped"
    assert _status(api, guest)["uptime"] == 0


def test_starting_a_running_vm_fails_in_the_worker(
    api: httpx.Client, sim_handle: SimulatorHandle
) -> None:
    guest = _fresh(sim_handle, "qemu", running=True)
    response = api.post(f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start")
    assert response.status_code == 200  # PVE accepts the request; the task fails
    final = _wait_for_task(api, guest.node, response.json()["data"])
    assert final["exitstatus"] == f"VM {guest.vmid} already running"
    log = api.get(f"/nodes/{guest.node}/tasks/{final['upid']}/log").json()["data"]
    assert log[-1]["t"] == f"TASK ERROR: VM {guest.vmid} already running"
    assert _status(api, guest)["status"] == "running"


def test_a_template_cannot_be_started(api: httpx.Client, sim_handle: SimulatorHandle) -> None:
    template = next(g for g in sim_handle.state.guests.values() if g.template)
    response = api.post(f"/nodes/{template.node}/qemu/{template.vmid}/status/start")
    assert response.status_code == 500
    assert response.reason_phrase == "you can't start a vm if it's a template"
    assert not sim_handle.state.guests[template.vmid].running


def test_stopping_a_stopped_container_fails(api: httpx.Client, sim_handle: SimulatorHandle) -> None:
    guest = _fresh(sim_handle, "lxc", running=False)
    upid = api.post(f"/nodes/{guest.node}/lxc/{guest.vmid}/status/stop").json()["data"]
    assert ":vzstop:" in upid
    assert _wait_for_task(api, guest.node, upid)["exitstatus"] == f"CT {guest.vmid} not running"


@pytest.mark.parametrize(("action", "before", "after"), [
    ("start", False, "running"), ("shutdown", True, "stopped"), ("stop", True, "stopped"),
    ("reboot", True, "running"),
])  # fmt: skip
def test_container_power_actions_change_state(
    api: httpx.Client, sim_handle: SimulatorHandle, action: str, before: bool, after: str
) -> None:
    guest = _fresh(sim_handle, "lxc", running=before)
    upid = api.post(f"/nodes/{guest.node}/lxc/{guest.vmid}/status/{action}").json()["data"]
    assert f":vz{action}:{guest.vmid}:" in upid
    assert _wait_for_task(api, guest.node, upid)["exitstatus"] == "OK"
    current = _status(api, guest)
    assert current["status"] == after
    if action == "reboot":
        assert current["uptime"] < 120


def test_tasks_are_listed_per_node_and_cluster_wide(
    api: httpx.Client, sim_handle: SimulatorHandle
) -> None:
    guest = _fresh(sim_handle, "qemu", running=True)
    upid = api.post(f"/nodes/{guest.node}/qemu/{guest.vmid}/status/reboot").json()["data"]
    _wait_for_task(api, guest.node, upid)
    listed = api.get(f"/nodes/{guest.node}/tasks", params={"vmid": guest.vmid}).json()
    entry = next(t for t in listed["data"] if t["upid"] == upid)
    assert entry["status"] == "OK" and entry["endtime"] >= entry["starttime"]
    assert entry["type"] == "qmreboot"
    cluster = api.get("/cluster/tasks").json()["data"]
    assert upid in {t["upid"] for t in cluster}
    errors_only = api.get(f"/nodes/{guest.node}/tasks", params={"errors": 1}).json()["data"]
    assert upid not in {t["upid"] for t in errors_only}


def test_running_tasks_are_active_not_archived_and_have_no_log_yet() -> None:
    config = SimulatorConfig(seed=3, nodes=1, speed=1.0)
    with start_in_thread(config) as handle, _client(handle) as api:
        guest = next(g for g in handle.state.guests.values() if g.kind == "lxc" and not g.running)
        upid = api.post(f"/nodes/pve1/lxc/{guest.vmid}/status/start").json()["data"]
        assert api.get(f"/nodes/pve1/tasks/{upid}/status").json()["data"]["status"] == "running"
        log = api.get(f"/nodes/pve1/tasks/{upid}/log").json()
        assert log == {"data": [{"n": 1, "t": "no content"}], "total": 1}
        active = api.get("/nodes/pve1/tasks", params={"source": "active"}).json()["data"]
        archive = api.get("/nodes/pve1/tasks").json()["data"]
        assert upid in {t["upid"] for t in active}
        assert upid not in {t["upid"] for t in archive}
        assert "status" not in next(t for t in active if t["upid"] == upid)
        # Jump simulated time instead of waiting: the task finishes on the next look.
        handle.call(lambda: handle.state.clock.advance(5))
        final = api.get(f"/nodes/pve1/tasks/{upid}/status").json()["data"]
        assert (final["status"], final["exitstatus"]) == ("stopped", "OK")
        assert handle.state.guests[guest.vmid].running


def test_readonly_token_sees_tasks_it_may_audit(sim_handle: SimulatorHandle) -> None:
    with httpx.Client(
        base_url=f"{sim_handle.pve_url}/api2/json",
        verify=ssl.create_default_context(cafile=sim_handle.ca_path),
        headers={"Authorization": sim_handle.readonly_token.header},
    ) as auditor:
        tasks = auditor.get("/nodes/pve1/tasks").json()["data"]
        assert tasks, "seeded history should be visible with Sys.Audit"
        status = auditor.get(f"/nodes/pve1/tasks/{tasks[0]['upid']}/status")
        assert status.status_code == 200
