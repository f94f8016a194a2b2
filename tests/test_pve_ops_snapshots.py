"""Snapshot operations against the simulator over real HTTPS: state really changes."""

from __future__ import annotations

import pytest

from core.errors import ConfirmationRequired, InvalidInput, NotFound, PolicyDenied, TaskFailed
from core.pve_results import SnapshotList, SnapshotResult


def writes(handle) -> list[tuple[str, str]]:
    return [(m, p) for (m, p) in handle.request_log if m != "GET"]


def pick(handle, kind: str, running: bool = True):
    for guest in handle.state.guests.values():
        if guest.kind == kind and guest.running == running and not guest.template:
            return guest
    raise AssertionError(f"no {kind} guest running={running}")


async def snapshots(lab, vmid: int) -> SnapshotList:
    result = await lab.call("pve_list_snapshots", {"vmid": vmid})
    assert isinstance(result, SnapshotList)
    return result


async def test_vm_snapshot_lifecycle_with_ram(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        assert (await snapshots(lab, vm.vmid)).snapshots == []
        taken = await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "before",
                                                        "description": "pre-upgrade",
                                                        "vmstate": True})  # fmt: skip
        assert isinstance(taken, SnapshotResult)
        assert taken.changed and taken.waited and taken.exitstatus == "OK"
        assert taken.upid and ":qmsnapshot:" in taken.upid
        await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "after"})
        listed = await snapshots(lab, vm.vmid)
        assert [(s.name, s.parent, s.depth) for s in listed.snapshots] == [
            ("before", None, 0), ("after", "before", 1)]  # fmt: skip
        assert listed.snapshots[0].vmstate is True and listed.snapshots[1].vmstate is False
        assert listed.snapshots[0].description == "pre-upgrade"
        assert listed.current_parent == "after"
        # rolling back to the RAM snapshot resumes the VM; "current" now hangs below it
        back = await lab.call("pve_rollback_snapshot", {"vmid": vm.vmid, "snapname": "before"},
                              confirmed=True)  # fmt: skip
        assert back.status_after == "running" and ":qmrollback:" in str(back.upid)
        assert (await snapshots(lab, vm.vmid)).current_parent == "before"
        gone = await lab.call("pve_delete_snapshot", {"vmid": vm.vmid, "snapname": "before"},
                              confirmed=True)  # fmt: skip
        assert ":qmdelsnapshot:" in str(gone.upid)
        listed = await snapshots(lab, vm.vmid)
        assert [(s.name, s.parent) for s in listed.snapshots] == [("after", None)]
        assert listed.current_parent is None
    assert "before" not in vm.snapshots and vm.snapshots["after"].parent is None


async def test_container_rollback_without_start_leaves_it_stopped(fresh_sim, make_service):
    ct = pick(fresh_sim, "lxc")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        await lab.call("pve_create_snapshot", {"vmid": ct.vmid, "snapname": "clean"})
        back = await lab.call("pve_rollback_snapshot", {"vmid": ct.vmid, "snapname": "clean"},
                              confirmed=True)  # fmt: skip
        assert back.status_after == "stopped" and ":vzrollback:" in str(back.upid)
        again = await lab.call(
            "pve_rollback_snapshot",
            {"vmid": ct.vmid, "snapname": "clean", "start": True},
            confirmed=True,
        )
        assert again.status_after == "running"
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_create_snapshot", {"vmid": ct.vmid, "snapname": "x2",
                                                    "vmstate": True})  # fmt: skip
        assert "vmstate" in info.value.fields


async def test_snapshot_errors_are_clear_and_sent_nothing(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "one"})
        fresh_sim.clear_request_log()
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "one"})
        assert "snapname" in info.value.fields
        with pytest.raises(NotFound, match="no snapshot 'nope'") as missing:
            await lab.call("pve_delete_snapshot", {"vmid": vm.vmid, "snapname": "nope"},
                           confirmed=True)  # fmt: skip
        assert "one" in str(missing.value.hint)
        with pytest.raises(InvalidInput) as bad:
            await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "current"})
        assert "reserved" in bad.value.fields["snapname"]
        with pytest.raises(InvalidInput) as bad:
            await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "1-bad name"})
        assert "snapname" in bad.value.fields
        assert writes(fresh_sim) == []


async def test_destructive_snapshot_ops_need_confirmation(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "keep"})
        fresh_sim.clear_request_log()
        for op in ("pve_rollback_snapshot", "pve_delete_snapshot"):
            with pytest.raises(ConfirmationRequired):
                await lab.call(op, {"vmid": vm.vmid, "snapname": "keep"})
        assert writes(fresh_sim) == []
    assert "keep" in vm.snapshots


async def test_read_only_and_protected_guests_send_nothing(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim) as lab:
        with pytest.raises(PolicyDenied, match="read-only"):
            await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "x1"})
    async with make_service(fresh_sim, allow_writes=True, protected=[str(vm.vmid)]) as lab:
        with pytest.raises(PolicyDenied, match="protected"):
            await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "x1"})
    assert writes(fresh_sim) == []
    assert vm.snapshots == {}


async def test_a_failing_task_raises_task_failed_with_the_log(fresh_sim, make_service):
    """A second worker on a locked guest fails in the worker, like PVE's config lock."""
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        first = await lab.call(
            "pve_create_snapshot",
            {"vmid": vm.vmid, "snapname": "slow", "vmstate": True, "wait": False},
        )
        assert first.waited is False and first.task_status == "running"
        with pytest.raises(TaskFailed) as info:
            await lab.call("pve_create_snapshot", {"vmid": vm.vmid, "snapname": "second"})
        assert info.value.exitstatus == f"VM {vm.vmid} is locked (snapshot)"
        assert info.value.log_tail[-1].startswith("TASK ERROR: VM")
        await lab.pve.wait_task(str(first.upid))
    assert set(vm.snapshots) == {"slow"} and vm.lock is None


def test_snapshot_listing_matches_the_pve_schema(fresh_sim, pve_schema):
    import ssl

    import httpx

    vm, ct = pick(fresh_sim, "qemu"), pick(fresh_sim, "lxc")
    trust = ssl.create_default_context(cafile=fresh_sim.ca_path)
    headers = {"Authorization": fresh_sim.token.header}
    with httpx.Client(base_url=f"{fresh_sim.pve_url}/api2/json", verify=trust,
                      headers=headers) as api:  # fmt: skip
        for guest in (vm, ct):
            base = f"/nodes/{guest.node}/{guest.kind}/{guest.vmid}/snapshot"
            assert api.post(base, data={"snapname": "s1"}).status_code == 200
            fresh_sim.call(lambda: fresh_sim.state.clock.advance(30))
            data = api.get(base).json()["data"]
            assert [e["name"] for e in data] == ["s1", "current"]
            assert data[1]["parent"] == "s1" and data[1]["description"] == "You are here!"
            assert pve_schema.validate_returns("GET", pve_schema.match("GET", base), data,
                                               strict=True) == []  # fmt: skip
            again = api.post(base, data={"snapname": "current"})
            assert again.status_code == 500
            assert again.reason_phrase == "unable to use snapshot name 'current' (reserved name)"
