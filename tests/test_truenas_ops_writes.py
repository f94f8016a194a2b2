"""TrueNAS writes change the simulated NAS: datasets, snapshots (each release), shares
(including the 25.04 SMB layout), users (the password never leaves), scrubs, audit lines."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, NotFound
from tests.test_truenas_ops import cells, nas

RELEASES = ["25.04", "25.10", "26"]


# ------------------------------------------------------------------ datasets


async def test_dataset_create_update_delete(fresh_sim, make_service, audit_log):
    state = nas(fresh_sim).state
    async with make_service(fresh_sim, allow_writes=True) as lab:
        made = await lab.call(
            "truenas_create_dataset",
            {
                "name": "tank/projects",
                "comments": "work",
                "compression": "ZSTD",
                "quota": 10 * 1000**3,
                "share_type": "SMB",
            },
        )
        assert made.changed and made.item is not None
        assert (
            made.item["name"] == "tank/projects" and made.item["mountpoint"] == "/mnt/tank/projects"
        )
        assert made.item["quota"] == 10 * 1000**3 and made.item["compression"] == "ZSTD"
        zvol = await lab.call(
            "truenas_create_dataset",
            {"name": "tank/vms/disk2", "type": "VOLUME", "volsize": 8 * 1024**3},
        )
        assert zvol.item is not None and zvol.item["type"] == "VOLUME"
        listed = await lab.call(
            "truenas_list_datasets", {"prefix": "tank/projects", "fields": ["name", "comments"]}
        )
        assert listed.rows == [["tank/projects", "work"]]

        await lab.call(
            "truenas_update_dataset",
            {"name": "tank/projects", "readonly": True, "quota": 0, "compression": "LZ4"},
        )
        raw = state.items["dataset"]["tank/projects"]
        assert raw["readonly"] is True and raw["quota"] is None and raw["compression"] == "LZ4"

        # (the simulator ignores create_ancestors, so the child is made step by step)
        await lab.call("truenas_create_dataset", {"name": "tank/projects/a"})
        with pytest.raises(Exception, match="children"):
            await lab.call("truenas_delete_dataset", {"name": "tank/projects"}, confirmed=True)
        gone = await lab.call(
            "truenas_delete_dataset", {"name": "tank/projects", "recursive": True}, confirmed=True
        )
        assert gone.changed
        after = await lab.call("truenas_list_datasets", {"prefix": "tank/projects"})
    assert after.total == 0
    assert not [d for d in state.items["dataset"] if d.startswith("tank/projects")]
    ops = [(e["operation"], e["outcome"]) for e in audit_log.read()]
    assert ("truenas_create_dataset", "ok") in ops
    assert ("truenas_delete_dataset", "error") in ops  # the refused non-recursive delete
    assert ops[-1] == ("truenas_delete_dataset", "ok")
    last = audit_log.read()[-1]
    assert last["params"] == {"name": "tank/projects", "recursive": True, "force": False}
    assert last["changed"] is True and last["face"] == "cli"


async def test_creating_a_dataset_under_a_missing_parent_names_the_field(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(InvalidInput) as info:
            await lab.call("truenas_create_dataset", {"name": "tank/nope/child"})
    assert any("name" in key for key in info.value.fields)


# ------------------------------------------------------------------ snapshots


@pytest.mark.parametrize("release", RELEASES)
async def test_snapshot_create_rollback_delete_on_each_release(release, make_sim, make_service):
    handle = make_sim(truenas_version=release)
    log = nas(handle).method_log
    async with make_service(handle, allow_writes=True) as lab:
        first = await lab.call("truenas_create_snapshot", {"dataset": "tank/apps", "name": "one"})
        assert first.item is not None and first.item["name"] == "tank/apps@one"
        await lab.call("truenas_create_snapshot", {"dataset": "tank/apps", "name": "two"})
        listed = await lab.call("truenas_list_snapshots", {"dataset": "tank/apps"})
        assert cells(listed, "name") == ["tank/apps@one", "tank/apps@two"]

        sent = len(log)
        with pytest.raises(InvalidInput) as info:
            await lab.call(
                "truenas_rollback_snapshot", {"snapshot": "tank/apps@one"}, confirmed=True
            )
        assert "destroy_newer" in info.value.fields and "tank/apps@two" in info.value.message
        assert not [m for m in log[sent:] if "rollback" in m]
        done = await lab.call(
            "truenas_rollback_snapshot",
            {"snapshot": "tank/apps@one", "destroy_newer": True},
            confirmed=True,
        )
        assert "1 newer" in done.message
        listed = await lab.call("truenas_list_snapshots", {"dataset": "tank/apps"})
        assert cells(listed, "name") == ["tank/apps@one"]

        await lab.call("truenas_delete_snapshot", {"snapshot": "tank/apps@one"}, confirmed=True)
        listed = await lab.call("truenas_list_snapshots", {"dataset": "tank/apps"})
        assert listed.total == 0
        with pytest.raises(NotFound):
            await lab.call(
                "truenas_rollback_snapshot", {"snapshot": "tank/apps@one"}, confirmed=True
            )
    family = "zfs.snapshot" if release == "25.04" else "pool.snapshot"
    assert f"{family}.create" in log and f"{family}.rollback" in log
    assert f"{family}.delete" in log
    assert nas(handle).state.items["snapshot"].get("tank/apps@one") is None


# ------------------------------------------------------------------ shares


@pytest.mark.parametrize("release", ["25.04", "25.10"])
async def test_smb_share_create_update_delete(release, make_sim, make_service):
    handle = make_sim(truenas_version=release)
    shares = nas(handle).state.items["smb"]
    async with make_service(handle, allow_writes=True) as lab:
        made = await lab.call(
            "truenas_create_smb_share",
            {"name": "docs", "path": "/mnt/tank/home", "comment": "papers", "readonly": True},
        )
        assert made.item is not None and made.item["readonly"] is True
        share_id = made.item["id"]
        assert shares[share_id]["readonly"] is True and shares[share_id]["comment"] == "papers"
        await lab.call(
            "truenas_update_smb_share", {"id": share_id, "readonly": False, "name": "documents"}
        )
        listed = await lab.call("truenas_list_shares", {"kind": "smb"})
        assert "documents" in cells(listed, "name")
        assert shares[share_id]["readonly"] is False
        gone = await lab.call("truenas_delete_smb_share", {"id": share_id}, confirmed=True)
        assert "documents" in gone.message
        with pytest.raises(NotFound):
            await lab.call("truenas_delete_smb_share", {"id": share_id}, confirmed=True)
    assert share_id not in shares


async def test_nfs_share_create_update_delete(fresh_sim, make_service):
    shares = nas(fresh_sim).state.items["nfs"]
    async with make_service(fresh_sim, allow_writes=True) as lab:
        made = await lab.call(
            "truenas_create_nfs_share",
            {"path": "/mnt/tank/apps", "networks": ["10.0.0.7/8"], "hosts": ["nas-client"]},
        )
        assert made.item is not None
        share_id = made.item["id"]
        assert shares[share_id]["networks"] == ["10.0.0.0/8"]  # normalised before sending
        assert made.item["clients"] == "10.0.0.0/8, nas-client"
        await lab.call(
            "truenas_update_nfs_share", {"id": share_id, "readonly": True, "networks": []}
        )
        assert shares[share_id]["ro"] is True and shares[share_id]["networks"] == []
        await lab.call("truenas_delete_nfs_share", {"id": share_id}, confirmed=True)
        listed = await lab.call("truenas_list_shares", {"kind": "nfs"})
    assert "/mnt/tank/apps" not in cells(listed, "path")


async def test_share_of_a_path_that_is_no_dataset_is_refused_by_truenas(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(InvalidInput) as info:
            await lab.call("truenas_create_nfs_share", {"path": "/mnt/tank/nothing-here"})
    assert any("path" in key for key in info.value.fields)


# ------------------------------------------------------------------ users


async def test_user_create_update_delete_never_leaks_the_password(
    fresh_sim, make_service, audit_log
):
    password = "Corr3ct-Horse-Battery"
    users = nas(fresh_sim).state.items["user"]
    async with make_service(fresh_sim, allow_writes=True) as lab:
        made = await lab.call(
            "truenas_create_user",
            {
                "username": "carol",
                "full_name": "Carol Example",
                "password": password,
                "groups": [70],
                "shell": "/usr/bin/bash",
            },
        )
        assert made.item is not None and made.item["username"] == "carol"
        assert made.item["groups"] == ["media"]
        listed = await lab.call("truenas_list_users", {"name": "carol"})
        assert cells(listed, "full_name") == ["Carol Example"]
        new_password = "An0ther-Secret-Pass"
        await lab.call(
            "truenas_update_user", {"username": "carol", "password": new_password, "locked": True}
        )
        pk = made.item["id"]
        assert users[pk]["locked"] is True
        robot = await lab.call(
            "truenas_create_user",
            {"username": "backup-bot", "full_name": "Backup", "password_disabled": True},
        )
        assert robot.item is not None and robot.item["smb"] is False
        await lab.call("truenas_delete_user", {"username": "carol"}, confirmed=True)
        with pytest.raises(InvalidInput, match="built-in"):
            await lab.call("truenas_delete_user", {"username": "root"}, confirmed=True)
        with pytest.raises(NotFound):
            await lab.call("truenas_update_user", {"username": "carol", "locked": False})
    assert pk not in users
    text = audit_log.path.read_text()
    assert password not in text and new_password not in text
    created = next(e for e in audit_log.read() if e["operation"] == "truenas_create_user")
    assert created["params"]["password"] == "***"
    for result in (made, robot):
        assert password not in result.model_dump_json()


# ------------------------------------------------------------------ scrub


@pytest.mark.parametrize(
    ("release", "method"), [("25.10", "pool.scrub.scrub"), ("26", "zpool.scrub.run")]
)
async def test_scrub_starts_and_can_be_waited_for(release, method, make_sim, make_service):
    handle = make_sim(truenas_version=release)
    seen: list[str] = []
    async with make_service(handle, allow_writes=True) as lab:
        started = await lab.call("truenas_scrub_pool", {"pool": "backup"})
        assert started.changed and isinstance(started.job_id, int)
        again = await lab.call("truenas_scrub_pool", {"pool": "backup"})
        assert not again.changed
        waited = await lab.call(
            "truenas_scrub_pool",
            {"pool": "tank", "wait": True},
            progress=lambda elapsed, message: seen.append(message),
        )
        pools = {p.name: p for p in (await lab.call("truenas_list_pools")).pools}
    assert waited.status_after == "FINISHED"
    assert pools["tank"].scan is not None and pools["tank"].scan.state == "FINISHED"
    assert seen and all(m.startswith("scrub tank") for m in seen)
    assert nas(handle).method_log.count(method) == 2
