"""Every write the simulator received has its audit line, and every audited write reached it.

A realistic session of writes (power, snapshots, clone, migrate, backup, pools, a refused
call, a failing call) goes through ``Labdeck``; then the simulator's own request log is
matched one to one against the audit log. A write that bypassed the audit (or an audit line
for a write that was never sent) fails the test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.errors import ConfirmationRequired, InvalidInput, LabdeckError, PolicyDenied

#: the write request each operation sends (method, path pattern) — one each
SENDS: dict[str, tuple[str, str]] = {
    "pve_start_guest": ("POST", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/status/start"),
    "pve_stop_guest": ("POST", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/status/stop"),
    "pve_create_snapshot": ("POST", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/snapshot"),
    "pve_rollback_snapshot": ("POST", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/snapshot/[^/]+/rollback"),
    "pve_delete_snapshot": ("DELETE", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/snapshot/[^/]+"),
    "pve_clone_guest": ("POST", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/clone"),
    "pve_migrate_guest": ("POST", r"/nodes/[^/]+/(qemu|lxc)/{vmid}/migrate"),
    "pve_backup_guest": ("POST", r"/nodes/[^/]+/vzdump"),
    "pve_create_pool": ("POST", r"/pools"),
    "pve_update_pool": ("PUT", r"/pools"),
    "pve_delete_pool": ("DELETE", r"/pools"),
    "pve_guest_exec": ("POST", r"/nodes/[^/]+/qemu/{vmid}/agent/exec"),
}


def _writes(handle: Any) -> list[tuple[str, str]]:
    return [
        (method, path.split("?")[0].removeprefix("/api2/json"))
        for method, path in handle.request_log
        if method != "GET"
    ]


def _pick(handle: Any, kind: str, running: bool) -> Any:
    for guest in handle.state.guests.values():
        if guest.kind == kind and guest.running == running and not guest.template:
            return guest
    raise AssertionError(f"the seeded cluster has no {kind} with running={running}")


async def _session(lab: Any, handle: Any) -> None:
    """Writes of every kind, with a refusal and a failure among them."""
    stopped = _pick(handle, "qemu", running=False)
    running = _pick(handle, "qemu", running=True)
    other_node = next(n for n in handle.state.nodes if n != running.node)
    await lab.call("pve_start_guest", {"vmid": stopped.vmid})
    with pytest.raises(ConfirmationRequired):  # refused before sending: audited, not sent
        await lab.call("pve_stop_guest", {"vmid": stopped.vmid})
    await lab.call("pve_stop_guest", {"vmid": stopped.vmid}, confirmed=True)
    await lab.call("pve_guest_exec", {"vmid": running.vmid, "command": ["hostname"]})
    await lab.call("pve_create_snapshot", {"vmid": running.vmid, "snapname": "before"})
    await lab.call(
        "pve_rollback_snapshot", {"vmid": running.vmid, "snapname": "before"}, confirmed=True
    )
    await lab.call(
        "pve_delete_snapshot", {"vmid": running.vmid, "snapname": "before"}, confirmed=True
    )
    await lab.call("pve_clone_guest", {"vmid": stopped.vmid, "name": "audited-clone"})
    await lab.call("pve_migrate_guest", {"vmid": stopped.vmid, "target": other_node})
    await lab.call("pve_backup_guest", {"vmid": [running.vmid]})
    await lab.call("pve_create_pool", {"poolid": "audited", "comment": "test"})
    with pytest.raises(LabdeckError):  # sent, and the cluster said no: audited as an error
        await lab.call("pve_create_pool", {"poolid": "audited"})
    await lab.call("pve_update_pool", {"poolid": "audited", "vms": [stopped.vmid]})
    await lab.call("pve_update_pool", {"poolid": "audited", "vms": [stopped.vmid], "delete": True})
    await lab.call("pve_delete_pool", {"poolid": "audited"}, confirmed=True)
    with pytest.raises(InvalidInput):  # refused before sending: audited, not sent
        await lab.call("pve_create_snapshot", {"vmid": running.vmid, "snapname": "x" * 41})


async def test_every_write_received_has_its_audit_line(fresh_sim, make_service, audit_log):
    fresh_sim.clear_request_log()
    async with make_service(fresh_sim, allow_writes=True) as lab:
        await _session(lab, fresh_sim)
    received = _writes(fresh_sim)
    audited = [e for e in audit_log.read() if e["access"] == "write"]
    # refused by the policy or by parameter checks: audited, never sent
    unsent = [e for e in audited if e["outcome"] == "refused" or e.get("error") == "invalid_input"]
    sent = [e for e in audited if e not in unsent]
    assert len(received) == len(sent), (received, [e["operation"] for e in sent])
    for (method, path), entry in zip(received, sent, strict=True):
        want_method, pattern = SENDS[entry["operation"]]
        vmids = entry["params"].get("vmid")
        vmid = str(vmids) if isinstance(vmids, int) else r"\d+"
        assert method == want_method, (entry, method, path)
        assert re.fullmatch(pattern.replace("{vmid}", vmid), path), (entry, path)
    assert [e["operation"] for e in unsent] == ["pve_stop_guest", "pve_create_snapshot"]
    failed = [e["operation"] for e in sent if e["outcome"] != "ok"]
    assert failed == ["pve_create_pool"]


async def test_refused_writes_send_nothing_and_are_still_audited(sim, make_service, audit_log):
    sim.clear_request_log()
    stopped = _pick(sim, "qemu", running=False)
    async with make_service(sim, allow_writes=False) as lab:
        for op, params in (
            ("pve_start_guest", {"vmid": stopped.vmid}),
            ("pve_create_pool", {"poolid": "nope"}),
            ("pve_backup_guest", {"vmid": [stopped.vmid]}),
        ):
            with pytest.raises(PolicyDenied):
                await lab.call(op, params)
    assert _writes(sim) == []
    outcomes = [(e["operation"], e["outcome"]) for e in audit_log.read()]
    assert outcomes == [
        ("pve_start_guest", "refused"),
        ("pve_create_pool", "refused"),
        ("pve_backup_guest", "refused"),
    ]
