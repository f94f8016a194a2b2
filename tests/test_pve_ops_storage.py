"""Storage listing and content, backups (vzdump) and pool changes against the simulator."""

from __future__ import annotations

import pytest

from core.errors import ConfirmationRequired, InvalidInput, NotFound, PolicyDenied
from core.models import Table
from core.pve_results import BackupResult, PoolResult


def writes(handle) -> list[tuple[str, str]]:
    return [(m, p) for (m, p) in handle.request_log if m != "GET"]


def pick(handle, kind: str, running: bool = True):
    for guest in handle.state.guests.values():
        if guest.kind == kind and guest.running == running and not guest.template:
            return guest
    raise AssertionError(f"no {kind} guest running={running}")


async def test_list_storage_shows_shared_storages_once(sim, make_service):
    async with make_service(sim) as lab:
        table = await lab.call("pve_list_storage")
        assert isinstance(table, Table)
        names = [(r[0], r[1]) for r in table.rows]
        assert names.count(("nas-nfs", None)) == 1
        assert {n for s, n in names if s == "local"} == {"pve1", "pve2", "pve3"}
        one = await lab.call("pve_list_storage", {"node": "pve2", "content": "images"})
        assert sorted((r[0], r[1]) for r in one.rows) == [("local-lvm", "pve2"), ("nas-nfs", None)]
        assert all(0 <= r[6] <= 100 for r in table.rows)


async def test_storage_content_lists_images_isos_and_backups(sim, make_service):
    vm = pick(sim, "qemu")
    async with make_service(sim) as lab:
        images = await lab.call(
            "pve_storage_content", {"storage": "local-lvm", "node": vm.node, "content": "images"}
        )
        row = next(r for r in images.rows if r[4] == vm.vmid)
        assert row[0] == f"local-lvm:vm-{vm.vmid}-disk-0" and row[3] == vm.maxdisk
        isos = await lab.call("pve_storage_content", {"storage": "nas-nfs", "content": "iso"})
        assert isos.rows and all(r[0].startswith("nas-nfs:iso/") and r[2] == "iso"
                                 for r in isos.rows)  # fmt: skip
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_storage_content", {"storage": "local"})
        assert "node" in info.value.fields
        with pytest.raises(NotFound, match="no storage named 'nope'"):
            await lab.call("pve_storage_content", {"storage": "nope"})
        templates = await lab.call(
            "pve_storage_content",
            {"storage": "local", "node": "pve1", "content": "vztmpl", "limit": 1},
        )
        assert len(templates.rows) == 1 and templates.total >= 2


async def test_backup_writes_an_archive_visible_in_the_listing(fresh_sim, make_service):
    ct, vm = pick(fresh_sim, "lxc"), pick(fresh_sim, "qemu")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        before = await lab.call("pve_list_backups", {"storage": "nas-nfs"})
        assert before.total >= 1  # the seeded history's archives
        done = await lab.call(
            "pve_backup_guest",
            {
                "vmid": [ct.vmid, vm.vmid],
                "storage": "nas-nfs",
                "notes": "{{guestname}} on {{node}}",
            },
        )
        assert isinstance(done, BackupResult)
        assert done.exitstatus == "OK" and len(done.volumes) == 2
        assert len(done.upids) == len({ct.node, vm.node})
        assert all(":vzdump:" in upid for upid in done.upids)
        after = await lab.call("pve_list_backups", {"storage": "nas-nfs", "vmid": ct.vmid})
        row = next(r for r in after.rows if r[0] in done.volumes)
        assert row[0].startswith(f"nas-nfs:backup/vzdump-lxc-{ct.vmid}-")
        assert row[0].endswith(".tar.zst") and row[4] == "tar.zst"
        assert row[6] == f"{ct.name} on {ct.node}" and row[5] is None
        content = await lab.call(
            "pve_storage_content", {"storage": "nas-nfs", "content": "backup", "vmid": vm.vmid}
        )
        assert any(r[0] in done.volumes and r[2] == "vma.zst" for r in content.rows)
        # local storage keeps archives per node
        local = await lab.call(
            "pve_backup_guest", {"vmid": [ct.vmid], "storage": "local", "compress": "gzip"}
        )
        assert local.volumes[0].endswith(".tar.gz")
        mine = await lab.call("pve_list_backups", {"vmid": ct.vmid})
        assert [r[5] for r in mine.rows if r[0] == local.volumes[0]] == [ct.node]


async def test_backup_policy_and_input_checks_send_nothing(fresh_sim, make_service):
    ct = pick(fresh_sim, "lxc")
    async with make_service(fresh_sim) as lab:
        with pytest.raises(PolicyDenied, match="read-only"):
            await lab.call("pve_backup_guest", {"vmid": [ct.vmid]})
    async with make_service(fresh_sim, allow_writes=True, protected=[str(ct.vmid)]) as lab:
        with pytest.raises(PolicyDenied, match="protected"):
            await lab.call("pve_backup_guest", {"vmid": [ct.vmid], "mode": "stop"})
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_backup_guest", {"vmid": []})
        assert "vmid" in info.value.fields
        with pytest.raises(InvalidInput):
            await lab.call("pve_backup_guest", {"vmid": [ct.vmid], "notes": "x"})
        with pytest.raises(NotFound):
            await lab.call("pve_backup_guest", {"vmid": [999_999]})
        assert writes(fresh_sim) == []
        # a snapshot-mode backup does not interrupt a protected guest
        done = await lab.call("pve_backup_guest", {"vmid": [ct.vmid], "storage": "nas-nfs"})
        assert done.volumes


async def test_pool_create_update_delete(fresh_sim, make_service):
    vm, ct = pick(fresh_sim, "qemu", running=False), pick(fresh_sim, "lxc", running=False)
    async with make_service(fresh_sim, allow_writes=True) as lab:
        created = await lab.call("pve_create_pool", {"poolid": "staging", "comment": "tests"})
        assert isinstance(created, PoolResult) and created.changed
        assert fresh_sim.state.pools["staging"].comment == "tests"
        in_pool = [g.vmid for g in (vm, ct) if g.pool is not None]
        params = {"poolid": "staging", "vms": [vm.vmid, ct.vmid]}
        if in_pool:
            with pytest.raises(InvalidInput) as info:
                await lab.call("pve_update_pool", params)
            assert "allow_move" in info.value.fields
        await lab.call("pve_update_pool", {**params, "allow_move": True, "comment": "two"})
        pools = {p.poolid: p for p in (await lab.call("pve_list_pools")).pools}
        assert {m.vmid for m in pools["staging"].members} == {vm.vmid, ct.vmid}
        assert pools["staging"].comment == "two"
        with pytest.raises(ConfirmationRequired):
            await lab.call("pve_delete_pool", {"poolid": "staging"})
        with pytest.raises(InvalidInput, match="not empty"):
            await lab.call("pve_delete_pool", {"poolid": "staging"}, confirmed=True)
        await lab.call("pve_update_pool", {**params, "delete": True})
        assert fresh_sim.state.pools["staging"].vmids == set()
        gone = await lab.call("pve_delete_pool", {"poolid": "staging"}, confirmed=True)
        assert gone.action == "delete" and "staging" not in fresh_sim.state.pools
        with pytest.raises(NotFound):
            await lab.call("pve_update_pool", {"poolid": "staging", "comment": "x"})
        with pytest.raises(InvalidInput) as info:
            await lab.call("pve_update_pool", {"poolid": "lab"})
        assert "params" in info.value.fields or info.value.fields


async def test_protected_guests_keep_their_pool(fresh_sim, make_service):
    guest = next(g for g in fresh_sim.state.guests.values() if g.pool == "prod")
    async with make_service(fresh_sim, allow_writes=True, protected=["pool:prod"]) as lab:
        fresh_sim.clear_request_log()
        with pytest.raises(PolicyDenied, match="pool:prod"):
            await lab.call("pve_update_pool", {"poolid": "prod", "vms": [guest.vmid],
                                               "delete": True})  # fmt: skip
        assert writes(fresh_sim) == []
    async with make_service(fresh_sim) as lab:
        with pytest.raises(PolicyDenied, match="read-only"):
            await lab.call("pve_create_pool", {"poolid": "nope"})
    assert guest.pool == "prod" and "nope" not in fresh_sim.state.pools


async def test_backup_of_a_locked_guest_fails_with_job_errors(fresh_sim, make_service):
    from core.errors import TaskFailed

    ct = pick(fresh_sim, "lxc")
    async with make_service(fresh_sim, allow_writes=True) as lab:
        busy = await lab.call("pve_create_snapshot", {"vmid": ct.vmid, "snapname": "busy",
                                                       "wait": False})  # fmt: skip
        with pytest.raises(TaskFailed) as info:
            await lab.call("pve_backup_guest", {"vmid": [ct.vmid], "storage": "nas-nfs"})
        assert info.value.exitstatus == "job errors"
        assert any("is locked (snapshot)" in line for line in info.value.log_tail)
        await lab.pve.wait_task(str(busy.upid))
