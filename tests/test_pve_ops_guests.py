"""Guest config, suspend/resume/reset, clone and migrate against the simulator."""

from __future__ import annotations

import pytest

from core.errors import ConfirmationRequired, InvalidInput, NotFound, PolicyDenied
from core.models import PowerResult
from core.pve_results import CloneResult, GuestConfig, MigrateResult


def writes(handle) -> list[tuple[str, str]]:
    return [(m, p) for (m, p) in handle.request_log if m != "GET"]


def pick(handle, kind: str, running: bool = True, template: bool = False):
    for guest in handle.state.guests.values():
        if guest.kind == kind and guest.running == running and guest.template == template:
            return guest
    raise AssertionError(f"no {kind} guest running={running}")


async def test_guest_config_of_a_vm_and_a_container(sim, make_service):
    vm, ct = pick(sim, "qemu"), pick(sim, "lxc")
    async with make_service(sim) as lab:
        config = await lab.call("pve_guest_config", {"vmid": vm.vmid})
        assert isinstance(config, GuestConfig)
        assert config.name == vm.name and config.kind == "qemu" and config.digest
        assert config.config["cores"] == vm.cores and "scsi0" in config.config
        assert "digest" not in config.config
        ct_config = await lab.call("pve_guest_config", {"vmid": ct.vmid, "node": ct.node})
        assert ct_config.name == ct.name and "rootfs" in ct_config.config
        with pytest.raises(NotFound):
            await lab.call("pve_guest_config", {"vmid": 999_999})


async def test_suspend_and_resume_a_vm(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(ConfirmationRequired):
            await lab.call("pve_suspend_guest", {"vmid": vm.vmid})
        paused = await lab.call("pve_suspend_guest", {"vmid": vm.vmid}, confirmed=True)
        assert isinstance(paused, PowerResult)
        assert paused.changed and paused.status_after == "paused"
        assert ":qmsuspend:" in str(paused.upid)
        status = await lab.call("pve_guest_status", {"vmid": vm.vmid})
        assert status.status == "running" and status.qmpstatus == "paused"
        again = await lab.call("pve_suspend_guest", {"vmid": vm.vmid}, confirmed=True)
        assert again.changed is False
        resumed = await lab.call("pve_resume_guest", {"vmid": vm.vmid})
        assert resumed.changed and resumed.status_after == "running"
        noop = await lab.call("pve_resume_guest", {"vmid": vm.vmid})
        assert noop.changed is False and "not paused" in noop.message


async def test_container_suspend_checkpoints_and_resume_restores(fresh_sim, make_service):
    ct = pick(fresh_sim, "lxc")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        done = await lab.call("pve_suspend_guest", {"vmid": ct.vmid}, confirmed=True)
        assert done.status_after == "stopped" and ":vzsuspend:" in str(done.upid)
        back = await lab.call("pve_resume_guest", {"vmid": ct.vmid})
        assert back.status_after == "running" and ":vzresume:" in str(back.upid)


async def test_reset_is_for_running_vms_only(fresh_sim, make_service):
    vm, ct, off = pick(fresh_sim, "qemu"), pick(fresh_sim, "lxc"), pick(fresh_sim, "qemu", False)
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(ConfirmationRequired):
            await lab.call("pve_reset_guest", {"vmid": vm.vmid})
        fresh_sim.clear_request_log()
        with pytest.raises(InvalidInput, match="no reset for containers"):
            await lab.call("pve_reset_guest", {"vmid": ct.vmid}, confirmed=True)
        with pytest.raises(InvalidInput, match="only a running VM"):
            await lab.call("pve_reset_guest", {"vmid": off.vmid}, confirmed=True)
        assert writes(fresh_sim) == []
        reset = await lab.call("pve_reset_guest", {"vmid": vm.vmid}, confirmed=True)
        assert reset.changed and reset.status_after == "running" and reset.exitstatus == "OK"
        assert ":qmreset:" in str(reset.upid)


async def test_clone_a_template_linked_and_a_vm_full(fresh_sim, make_service):
    template = pick(fresh_sim, "qemu", running=False, template=True)
    vm = pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        expected = fresh_sim.state.next_free_vmid()
        linked = await lab.call("pve_clone_guest", {"vmid": template.vmid, "name": "web-7",
                                                     "pool": "lab"})  # fmt: skip
        assert isinstance(linked, CloneResult)
        assert linked.newid == expected and linked.full is False
        assert linked.new_name == "web-7" and linked.new_node == template.node
        listing = await lab.call(
            "pve_list_guests", {"name": "web-7", "fields": ["vmid", "status", "pool"]}
        )
        assert listing.rows == [[expected, "stopped", "lab"]]
        full = await lab.call(
            "pve_clone_guest", {"vmid": vm.vmid, "newid": 4242, "target": vm.node, "timeout_s": 300}
        )
        assert full.full is True and full.new_name == f"Copy-of-VM-{vm.name}"
        assert fresh_sim.state.guests[4242].lock is None
        fresh_sim.clear_request_log()
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_clone_guest", {"vmid": vm.vmid, "full": False})
        assert "full" in info.value.fields
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_clone_guest", {"vmid": vm.vmid, "newid": 4242})
        assert "newid" in info.value.fields
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_clone_guest", {"vmid": vm.vmid, "name": "no spaces"})
        assert "name" in info.value.fields
        assert writes(fresh_sim) == []


async def test_clone_to_another_node_needs_shared_storage(fresh_sim, make_service):
    from core.errors import ServerError

    vm = pick(fresh_sim, "qemu", running=False)
    other = next(n for n in fresh_sim.state.nodes if n != vm.node)
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(ServerError, match="uses local storage"):
            await lab.call("pve_clone_guest", {"vmid": vm.vmid, "target": other})
        moved = await lab.call(
            "pve_clone_guest",
            {"vmid": vm.vmid, "target": other, "storage": "nas-nfs", "name": "copy-b"},
        )
        assert moved.new_node == other


async def test_migrate_a_running_vm_live_and_a_container_by_restart(fresh_sim, make_service):
    vm, ct = pick(fresh_sim, "qemu"), pick(fresh_sim, "lxc")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        target = next(n for n in fresh_sim.state.nodes if n != vm.node)
        source = vm.node
        moved = await lab.call("pve_migrate_guest", {"vmid": vm.vmid, "target": target})
        assert isinstance(moved, MigrateResult)
        assert moved.online and moved.source_node == source and moved.target == target
        assert moved.status_after == "running" and ":qmigrate:" in str(moved.upid)
        assert (await lab.find_guest(vm.vmid)).node == target
        ct_target = next(n for n in fresh_sim.state.nodes if n != ct.node)
        fresh_sim.clear_request_log()
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_migrate_guest", {"vmid": ct.vmid, "target": ct_target})
        assert "restart" in info.value.fields
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_migrate_guest", {"vmid": ct.vmid, "target": ct.node})
        assert "target" in info.value.fields
        with pytest.raises(NotFound):
            await lab.call("pve_migrate_guest", {"vmid": ct.vmid, "target": "pve99"})
        assert writes(fresh_sim) == []
        done = await lab.call("pve_migrate_guest", {"vmid": ct.vmid, "target": ct_target,
                                                     "restart": True})  # fmt: skip
        assert done.status_after == "running" and done.online is False
        assert ":vzmigrate:" in str(done.upid)
    assert ct.node == ct_target and ct.lock is None


async def test_protected_and_read_only_refusals_send_nothing(fresh_sim, make_service):
    vm = pick(fresh_sim, "qemu")
    other = next(n for n in fresh_sim.state.nodes if n != vm.node)
    calls = [
        ("pve_migrate_guest", {"vmid": vm.vmid, "target": other}),
        ("pve_suspend_guest", {"vmid": vm.vmid}),
        ("pve_resume_guest", {"vmid": vm.vmid}),
        ("pve_reset_guest", {"vmid": vm.vmid}),
        ("pve_clone_guest", {"vmid": vm.vmid}),
    ]
    async with make_service(fresh_sim) as lab:
        for name, params in calls:
            with pytest.raises(PolicyDenied, match="read-only"):
                await lab.call(name, params, confirmed=True)
    async with make_service(fresh_sim, allow_writes=True, protected=[f"name:{vm.name}"]) as lab:
        for name, params in calls:
            with pytest.raises(PolicyDenied, match="protected"):
                await lab.call(name, params, confirmed=True)
    assert writes(fresh_sim) == []
