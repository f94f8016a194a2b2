"""TrueNAS operations of the catalogue, against the simulator over real wss: reads match the
seeded state, the policy refuses before anything is sent, bad input names its field."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfirmationRequired, InvalidInput, PolicyDenied
from core.ops import catalogue
from core.truenas_models import is_read

TRUENAS_OPS = {name: op for name, op in catalogue().items() if op.backend == "truenas"}

#: valid parameters of every TrueNAS write, against the seeded simulator
WRITES: dict[str, dict[str, Any]] = {
    "truenas_scrub_pool": {"pool": "tank"},
    "truenas_create_dataset": {"name": "tank/new"},
    "truenas_update_dataset": {"name": "tank/media", "comments": "x"},
    "truenas_delete_dataset": {"name": "tank/apps"},
    "truenas_create_snapshot": {"dataset": "tank/home", "name": "s1"},
    "truenas_delete_snapshot": {"snapshot": "tank/vms@x"},
    "truenas_rollback_snapshot": {"snapshot": "tank/vms@x"},
    "truenas_create_smb_share": {"name": "docs", "path": "/mnt/tank/media"},
    "truenas_update_smb_share": {"id": 1, "comment": "x"},
    "truenas_delete_smb_share": {"id": 1},
    "truenas_create_nfs_share": {"path": "/mnt/tank/media"},
    "truenas_update_nfs_share": {"id": 1, "readonly": True},
    "truenas_delete_nfs_share": {"id": 1},
    "truenas_create_user": {"username": "carol", "full_name": "Carol", "password": "pw-1"},
    "truenas_update_user": {"username": "alice", "locked": True},
    "truenas_delete_user": {"username": "bob"},
    "truenas_start_app": {"name": "jellyfin"},
    "truenas_stop_app": {"name": "plex"},
    "truenas_start_vm": {"name": "win11"},
    "truenas_stop_vm": {"name": "debian"},
}


def nas(handle: Any) -> Any:
    return handle.simulator.truenas


def writes_sent(handle: Any) -> list[str]:
    return [
        m
        for m in nas(handle).method_log
        if not is_read(m) and not m.startswith(("auth.", "core.subscribe", "core.unsubscribe"))
    ]


def cells(table: Any, column: str) -> list[Any]:
    index = table.columns.index(column)
    return [row[index] for row in table.rows]


# ------------------------------------------------------------------ the catalogue


def test_truenas_ops_are_registered_with_their_flags():
    reads = {n for n, op in TRUENAS_OPS.items() if op.read_only}
    assert reads == {
        "truenas_system_info",
        "truenas_list_pools",
        "truenas_list_datasets",
        "truenas_list_snapshots",
        "truenas_list_shares",
        "truenas_list_iscsi",
        "truenas_list_users",
        "truenas_list_groups",
        "truenas_list_apps",
        "truenas_list_vms",
        "truenas_list_alerts",
        "truenas_list_jobs",
    }
    assert set(TRUENAS_OPS) - reads == set(WRITES)
    confirm = {n for n, op in TRUENAS_OPS.items() if op.confirm}
    assert confirm == {
        "truenas_delete_dataset",
        "truenas_delete_snapshot",
        "truenas_rollback_snapshot",
        "truenas_delete_smb_share",
        "truenas_delete_nfs_share",
        "truenas_delete_user",
        "truenas_stop_app",
        "truenas_stop_vm",
    }
    for op in TRUENAS_OPS.values():
        assert op.destructive is op.confirm, op.name
        assert op.description and op.summary, op.name


# ------------------------------------------------------------------ reads


async def test_system_info_matches_the_simulated_system(sim, make_service):
    async with make_service(sim) as lab:
        info = await lab.call("truenas_system_info")
    assert info.hostname == "truenas-demo"
    assert info.release == "25.10" and info.version == "TrueNAS-25.10.6"
    assert info.pools_total == 2 and info.pools_unhealthy == ["backup"]
    assert info.alerts_total == 3 and info.alerts_critical == 1
    assert info.physmem == 64 * 1024**3


async def test_list_pools_reports_health_usage_scrub_and_topology(sim, make_service):
    async with make_service(sim) as lab:
        pools = {p.name: p for p in (await lab.call("truenas_list_pools")).pools}
    assert set(pools) == {"tank", "backup"}
    tank, backup = pools["tank"], pools["backup"]
    assert tank.healthy and tank.status == "ONLINE"
    assert tank.size == 48 * 1000**4 and tank.used_fraction == round(19 / 48, 4)
    assert tank.scan is not None and tank.scan.state == "FINISHED"
    assert tank.vdevs[0].type == "RAIDZ2" and len(tank.vdevs[0].disks) == 6
    assert not backup.healthy and backup.status == "DEGRADED"
    assert backup.vdevs[0].unhealthy_disks == ["sdg"] and backup.vdevs[0].errors > 0


async def test_list_datasets_filters_fields_and_pages(sim, make_service):
    seeded = nas(sim).state.items["dataset"]
    async with make_service(sim) as lab:
        everything = await lab.call("truenas_list_datasets")
        assert everything.columns == ["name", "type", "used", "available", "compression", "quota"]
        assert cells(everything, "name") == sorted(seeded)
        media = await lab.call(
            "truenas_list_datasets", {"prefix": "tank/media", "fields": ["name", "mountpoint"]}
        )
        assert media.rows == [
            [n, f"/mnt/{n}"] for n in ("tank/media", "tank/media/movies", "tank/media/photos")
        ]
        backup = await lab.call("truenas_list_datasets", {"pool": "backup"})
        assert cells(backup, "name") == ["backup", "backup/tank-replica"]
        zvols = await lab.call(
            "truenas_list_datasets", {"type": "VOLUME", "fields": ["name", "volsize"]}
        )
        assert zvols.rows == [["tank/vms/debian-disk", 64 * 1024**3]]
        first = await lab.call("truenas_list_datasets", {"limit": 5})
        second = await lab.call("truenas_list_datasets", {"limit": 5, "cursor": first.next_cursor})
    assert first.total == len(seeded) and len(first.rows) == 5
    assert cells(first, "name") + cells(second, "name") == sorted(seeded)[:10]
    row = dict(
        zip(
            everything.columns,
            everything.rows[cells(everything, "name").index("tank/home/alice")],
            strict=True,
        )
    )
    assert row["quota"] == 1000**4 and row["compression"] == "LZ4"
    assert row["used"] == seeded["tank/home/alice"]["used"]


async def test_list_snapshots_by_dataset(sim, make_service):
    seeded = nas(sim).state.items["snapshot"]
    async with make_service(sim) as lab:
        every = await lab.call("truenas_list_snapshots")
        alice = await lab.call("truenas_list_snapshots", {"dataset": "tank/home/alice"})
        home = await lab.call("truenas_list_snapshots", {"dataset": "tank/home", "recursive": True})
        none = await lab.call("truenas_list_snapshots", {"dataset": "tank/home"})
    assert set(cells(every, "name")) == set(seeded)
    assert cells(alice, "dataset") == ["tank/home/alice"] * 3
    assert cells(alice, "name") == sorted(cells(alice, "name"))  # oldest first
    assert home.total == 3 and none.total == 0
    assert all(isinstance(v, int) for v in cells(alice, "used"))
    assert all(str(v).startswith("2025-") for v in cells(alice, "created"))


async def test_list_shares_by_kind(sim, make_service):
    async with make_service(sim) as lab:
        every = await lab.call("truenas_list_shares")
        smb = await lab.call("truenas_list_shares", {"kind": "smb"})
        nfs = await lab.call("truenas_list_shares", {"kind": "nfs"})
    assert every.total == 4
    assert cells(smb, "name") == ["media", "homes"]
    assert cells(nfs, "path") == ["/mnt/tank/media/movies", "/mnt/backup/tank-replica"]
    assert cells(nfs, "clients") == ["192.168.1.0/24", "any"]


async def test_list_iscsi_targets_and_extents(sim, make_service):
    async with make_service(sim) as lab:
        iscsi = await lab.call("truenas_list_iscsi")
    assert cells(iscsi.targets, "name") == ["debian"]
    assert cells(iscsi.extents, "dataset") == ["tank/vms/debian-disk"]


async def test_list_users_and_groups_leave_builtin_out_by_default(sim, make_service):
    async with make_service(sim) as lab:
        users = await lab.call("truenas_list_users")
        all_users = await lab.call("truenas_list_users", {"include_builtin": True})
        bob = await lab.call("truenas_list_users", {"name": "BO"})
        groups = await lab.call("truenas_list_groups")
        all_groups = await lab.call("truenas_list_groups", {"include_builtin": True})
    assert "root" not in cells(users, "username") and "root" in cells(all_users, "username")
    assert set(cells(users, "username")) == {"truenas_admin", "alice", "bob", "labdeck-ro"}
    assert cells(bob, "username") == ["bob"] and cells(bob, "id") == [72]
    assert cells(bob, "groups") == [["media"]] and cells(bob, "group") == ["bob"]
    assert "builtin_users" not in cells(groups, "name")
    assert "builtin_users" in cells(all_groups, "name")
    media = cells(groups, "users")[cells(groups, "name").index("media")]
    assert sorted(media) == ["alice", "bob"]
    text = str(all_users.model_dump())
    assert "unixhash" not in text and "smbhash" not in text


async def test_list_apps_vms_alerts_and_jobs(sim, make_service):
    async with make_service(sim) as lab:
        apps = await lab.call("truenas_list_apps")
        running = await lab.call("truenas_list_apps", {"state": "RUNNING"})
        vms = await lab.call("truenas_list_vms")
        only_vms = await lab.call("truenas_list_vms", {"kind": "vm", "status": "RUNNING"})
        alerts = await lab.call("truenas_list_alerts")
        bad = await lab.call("truenas_list_alerts", {"min_level": "WARNING"})
        jobs = await lab.call("truenas_list_jobs", {"state": "FAILED"})
    assert cells(apps, "name") == ["broken-app", "jellyfin", "nextcloud", "plex"]
    assert cells(running, "name") == ["nextcloud", "plex"]
    assert [(r[0], r[2]) for r in vms.rows] == [
        ("vm", "debian"),
        ("vm", "win11"),
        ("container", "dev01"),
        ("container", "web01"),
    ]
    assert cells(only_vms, "name") == ["debian"]
    assert cells(alerts, "level") == ["CRITICAL", "WARNING", "INFO"]
    assert cells(bad, "level") == ["CRITICAL", "WARNING"]
    assert jobs.total == 0


# ------------------------------------------------------------------ safety


@pytest.mark.parametrize("name", sorted(WRITES))
async def test_read_only_mode_refuses_every_write_before_any_truenas_call(
    name, fresh_sim, make_service, audit_log
):
    async with make_service(fresh_sim) as lab:
        with pytest.raises(PolicyDenied):
            await lab.call(name, WRITES[name], confirmed=True)
    assert nas(fresh_sim).method_log == []
    assert audit_log.read()[-1]["outcome"] == "refused"


@pytest.mark.parametrize("name", sorted(n for n, op in TRUENAS_OPS.items() if op.confirm))
async def test_destructive_writes_need_a_confirmation(name, fresh_sim, make_service, audit_log):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(ConfirmationRequired):
            await lab.call(name, WRITES[name])
    assert nas(fresh_sim).method_log == []
    entry = audit_log.read()[-1]
    assert entry["operation"] == name and entry["error"] == "confirmation_required"


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("truenas_create_dataset", {"name": "tank"}, "name"),
        ("truenas_create_dataset", {"name": "tank/../etc"}, "name"),
        ("truenas_create_dataset", {"name": "tank/a;rm -rf"}, "name"),
        ("truenas_create_dataset", {"name": "tank/vol", "type": "VOLUME"}, "volsize"),
        ("truenas_create_dataset", {"name": "tank/fs", "volsize": 1 << 30}, "volsize"),
        (
            "truenas_create_dataset",
            {"name": "tank/v", "type": "VOLUME", "volsize": 1 << 30, "quota": 5},
            "quota",
        ),
        ("truenas_update_dataset", {"name": "tank/media"}, "params"),
        ("truenas_delete_dataset", {"name": "tank"}, "name"),
        ("truenas_create_snapshot", {"dataset": "tank/home", "name": "a b"}, "name"),
        ("truenas_delete_snapshot", {"snapshot": "tank/home"}, "snapshot"),
        ("truenas_rollback_snapshot", {"snapshot": "tank@"}, "snapshot"),
        ("truenas_create_smb_share", {"name": "docs", "path": "/etc"}, "path"),
        ("truenas_create_smb_share", {"name": "docs", "path": "/mnt/tank/../../etc"}, "path"),
        ("truenas_create_smb_share", {"name": "a/b", "path": "/mnt/tank/media"}, "name"),
        ("truenas_create_smb_share", {"name": "global", "path": "/mnt/tank/media"}, "name"),
        (
            "truenas_create_nfs_share",
            {"path": "/mnt/tank", "networks": ["999.1.1.1/8"]},
            "networks",
        ),
        ("truenas_create_nfs_share", {"path": "/mnt/tank", "hosts": ["a b"]}, "hosts"),
        ("truenas_update_nfs_share", {"id": 0, "readonly": True}, "id"),
        ("truenas_create_user", {"username": "-x", "full_name": "X", "password": "p"}, "username"),
        ("truenas_create_user", {"username": "carol", "full_name": "C"}, "password"),
        ("truenas_create_user", {"username": "carol", "password": "p"}, "full_name"),
        (
            "truenas_create_user",
            {"username": "carol", "full_name": "a:b", "password": "p"},
            "full_name",
        ),
        (
            "truenas_create_user",
            {"username": "carol", "full_name": "C", "password_disabled": True, "smb": True},
            "smb",
        ),
        (
            "truenas_create_user",
            {"username": "carol", "full_name": "C", "password": "p", "home": "/root"},
            "home",
        ),
        ("truenas_update_user", {"username": "alice", "sshpubkey": "not a key"}, "sshpubkey"),
        ("truenas_start_app", {"name": "Plex!"}, "name"),
        ("truenas_stop_vm", {"name": "debian", "kind": "lxc"}, "kind"),
        ("truenas_list_datasets", {"fields": ["name", "secret"]}, "fields"),
        ("truenas_list_datasets", {"cursor": "abc"}, "cursor"),
        ("truenas_scrub_pool", {"pool": "tank/media"}, "pool"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_before_any_call(
    name, params, field, fresh_sim, make_service
):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        with pytest.raises(InvalidInput) as info:
            await lab.call(name, params, confirmed=True)
    assert field in info.value.fields, info.value.fields
    assert nas(fresh_sim).method_log == []


async def test_an_unconfigured_truenas_is_a_clear_error(make_sim, make_service):
    from core.errors import ConfigError

    handle = make_sim(truenas=False)
    async with make_service(handle) as lab:
        with pytest.raises(ConfigError, match="no TrueNAS"):
            await lab.call("truenas_list_pools")
