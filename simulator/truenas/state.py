"""The simulated NAS: collections of items, API keys, per-release shapes and change events."""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulator.truenas import seed as s

RELEASES = ("25.04", "25.10", "26")
FULL_VERSION = {"25.04": "25.04.2.6", "25.10": "25.10.6", "26": "26.0.0"}
API_VERSIONS = {
    "25.04": ["v25.04.0", "v25.04.1", "v25.04.2"],
    "25.10": [f"v25.10.{n}" for n in range(6)],
    "26": ["v26.0.0"],
}

Listener = Callable[[str, str, Any, "dict[str, Any] | None"], None]

# Field differences of older releases, relative to the 26.0 item: (dropped, added).
_SHAPES: dict[tuple[str, str], tuple[tuple[str, ...], dict[str, Any]]] = {
    ("pool", "25.04"): (("all_sed",), {}),
    ("pool", "25.10"): (("all_sed",), {}),
    ("dataset", "25.04"): (("tier",), {}),
    ("dataset", "25.10"): (("tier",), {}),
    ("smb", "25.10"): (("dataset", "relative_path", "tier"), {}),
    ("nfs", "25.04"): (("dataset", "relative_path", "tier"), {}),
    ("nfs", "25.10"): (("dataset", "relative_path", "tier"), {}),
    ("iscsi_extent", "25.04"): (("dataset", "relative_path", "product_id"), {}),
    ("iscsi_extent", "25.10"): (("dataset", "relative_path"), {}),
    ("user", "25.04"): (("webshare",), {"id_type_both": False}),
    ("user", "25.10"): (("webshare",), {}),
    ("group", "25.04"): (("immutable",), {"id_type_both": False}),
    ("app", "25.04"): (("action_required", "latest_app_version"), {}),
    ("app", "25.10"): (("action_required", "latest_app_version"), {}),
    ("instance", "25.04"): (("privileged_mode",), {}),
    ("disk", "25.04"): (("sed", "sed_status"), {"critical": None, "difference": None,
                                                "informational": None, "smartoptions": "",
                                                "supports_smart": True, "togglesmart": True}),
    ("disk", "25.10"): (("sed", "sed_status"), {}),
    ("job", "25.04"): (("message_ids",), {}),
}  # fmt: skip


def _legacy_smb(item: dict[str, Any]) -> dict[str, Any]:
    """25.04 shares: the flat pre-'purpose options' layout."""
    opts = item.get("options") or {}
    return {
        "id": item["id"], "purpose": "NO_PRESET", "path": item["path"], "path_suffix": "",
        "home": False, "name": item["name"], "comment": item["comment"], "ro": item["readonly"],
        "browsable": item["browsable"], "timemachine": False, "timemachine_quota": 0,
        "recyclebin": False, "guestok": False, "abe": item["access_based_share_enumeration"],
        "hostsallow": opts.get("hostsallow", []), "hostsdeny": opts.get("hostsdeny", []),
        "aapl_name_mangling": False, "acl": True, "durablehandle": True, "shadowcopy": True,
        "streams": True, "fsrvp": False, "auxsmbconf": "", "enabled": item["enabled"],
        "afp": False, "audit": item["audit"], "locked": item["locked"],
    }  # fmt: skip


@dataclass
class ApiKey:
    id: int
    username: str
    secret: str = field(repr=False)
    revoked: bool = False  # TrueNAS keeps a revoked key's entry; logins with it fail

    @property
    def raw(self) -> str:
        return f"{self.id}-{self.secret}"


@dataclass
class Account:
    username: str
    roles: frozenset[str]
    uid: int


class TrueNasState:
    """Everything the API can read or change, plus listeners for collection events."""

    def __init__(self, release: str, seed: int) -> None:
        self.release = release
        self.seed = seed
        self.rng = random.Random(f"labdeck-truenas-{seed}")
        self.now0 = s.epoch_for(seed)
        self.items: dict[str, dict[Any, dict[str, Any]]] = {}
        self.listeners: list[Listener] = []
        self._next_ids: dict[str, int] = {}
        self.accounts: dict[str, Account] = {}
        self.api_keys: dict[int, ApiKey] = {}
        self._build()

    # ---- ids, events and shapes ----------------------------------------------------------
    def next_id(self, key: str) -> int:
        used = [k for k in self.items.get(key, {}) if isinstance(k, int)]
        self._next_ids[key] = max([self._next_ids.get(key, 0), *used]) + 1
        return self._next_ids[key]

    def emit(self, key: str, msg: str, ident: Any, item: dict[str, Any] | None) -> None:
        for listener in list(self.listeners):
            listener(key, msg, ident, item)

    def put(self, key: str, ident: Any, item: dict[str, Any], *, event: bool = True) -> None:
        added = ident not in self.items.setdefault(key, {})
        self.items[key][ident] = item
        if event:
            self.emit(key, "added" if added else "changed", ident, item)

    def remove(self, key: str, ident: Any) -> dict[str, Any] | None:
        item = self.items.get(key, {}).pop(ident, None)
        if item is not None:
            self.emit(key, "removed", ident, None)
        return item

    def render(self, key: str, item: dict[str, Any]) -> dict[str, Any]:
        """An item as this release sends it (older releases lack newer fields)."""
        shown = s.dataset_item(item) if key == "dataset" else copy.deepcopy(item)
        if key == "smb" and self.release == "25.04":
            return _legacy_smb(shown)
        dropped, added = _SHAPES.get((key, self.release), ((), {}))
        for name in dropped:
            shown.pop(name, None)
        shown.update(copy.deepcopy(added))
        return shown

    def rendered(self, key: str) -> list[dict[str, Any]]:
        return [self.render(key, item) for item in self.items.get(key, {}).values()]

    # ---- seed ----------------------------------------------------------------------------
    def _build(self) -> None:
        rng, now = self.rng, self.now0
        alnum = string.ascii_letters + string.digits
        for pk, name, roles in ((1, "truenas_admin", "FULL_ADMIN"),
                                (2, "labdeck-ro", "READONLY_ADMIN")):  # fmt: skip
            secret = "".join(rng.choice(alnum) for _ in range(64))
            self.api_keys[pk] = ApiKey(pk, name, secret)
            self.accounts[name] = Account(name, frozenset([roles]), 950 + pk)
        self._seed_storage(rng, now)
        self._seed_sharing(rng)
        self._seed_accounts()
        self._seed_compute(rng)
        for index in range(8):
            pool_name = "tank" if index < 6 else "backup"
            self.put("disk", f"sd{chr(97 + index)}", s.disk(index, pool_name, 8 * s.TB, rng),
                     event=False)  # fmt: skip
        for klass, level, text, age in (
            ("ZpoolStatus", "CRITICAL", "Pool backup state is DEGRADED: One or more devices "
             "are faulted.", 3),
            ("SMARTAttributeWarning", "WARNING", "Device /dev/sdg: 8 Currently unreadable "
             "(pending) sectors.", 30),
            ("HasUpdate", "INFO", "A system update is available. Go to System > Update to "
             "download and apply the update.", 50),
        ):  # fmt: skip
            item = s.alert(klass, level, text, now - timedelta(hours=age), rng)
            self.put("alert", item["uuid"], item, event=False)

    def _seed_storage(self, rng: random.Random, now: datetime) -> None:
        scrubbed = now - timedelta(days=6)
        tank = s.pool(
            1,
            "tank",
            "RAIDZ2",
            [f"sd{c}" for c in "abcdef"],
            size=48 * s.TB,
            allocated=19 * s.TB,
            status="ONLINE",
            rng=rng,
            scrubbed=scrubbed,
        )
        backup = s.pool(
            2,
            "backup",
            "MIRROR",
            ["sdg", "sdh"],
            size=8 * s.TB,
            allocated=5 * s.TB,
            status="DEGRADED",
            rng=rng,
            scrubbed=scrubbed,
        )
        for item in (tank, backup):
            self.put("pool", item["id"], item, event=False)
        self.put("scrub", 1, s.scrub_task(1, 1, "tank"), event=False)
        self.put("scrub", 2, s.scrub_task(2, 2, "backup"), event=False)
        created = now - timedelta(days=400)
        tb = s.TB
        rows = [
            ("tank", 12 * tb, 18 * tb, None, "", "FILESYSTEM", None),
            ("tank/media", 8 * tb, 18 * tb, None, "Films, music and photos", "FILESYSTEM", None),
            ("tank/media/movies", 6 * tb, 18 * tb, 10 * tb, "", "FILESYSTEM", None),
            ("tank/media/photos", 1500 * s.GB, 18 * tb, 2 * tb, "", "FILESYSTEM", None),
            ("tank/home", 900 * s.GB, 18 * tb, None, "", "FILESYSTEM", None),
            ("tank/home/alice", 600 * s.GB, 18 * tb, 1 * tb, "", "FILESYSTEM", None),
            ("tank/home/bob", 250 * s.GB, 18 * tb, 500 * s.GB, "", "FILESYSTEM", None),
            ("tank/apps", 120 * s.GB, 18 * tb, None, "", "FILESYSTEM", None),
            ("tank/vms", 400 * s.GB, 18 * tb, None, "", "FILESYSTEM", None),
            ("tank/vms/debian-disk", 64 * s.GiB, 18 * tb, None, "", "VOLUME", 64 * s.GiB),
            ("backup", 4 * tb, 3 * tb, None, "", "FILESYSTEM", None),
            ("backup/tank-replica", 3 * tb, 3 * tb, None, "Replica of tank/home", "FILESYSTEM",
             None),
        ]  # fmt: skip
        for name, used, avail, quota, comments, kind, volsize in rows:
            comp = "ZSTD" if name.startswith("tank/media") else "LZ4"
            raw = s.dataset_raw(
                name,
                used=used,
                avail=avail,
                created=created,
                compression=comp,
                quota=quota,
                comments=comments,
                kind=kind,
                volsize=volsize,
            )
            self.put("dataset", name, raw, event=False)
        txg = 180000
        for ds in ("tank/home/alice", "tank/media/photos", "tank/vms"):
            for day in (3, 2, 1):
                when = now - timedelta(days=day)
                txg += rng.randint(500, 3000)
                name = f"auto-{when:%Y-%m-%d_%H-%M}"
                item = s.snapshot(ds, name, txg=txg, created=when, used=rng.randint(1, 900) * 2**20)
                self.put("snapshot", item["id"], item, event=False)
        self.txg = txg

    def _seed_sharing(self, rng: random.Random) -> None:
        self.put("smb", 1, s.smb_share(1, "media", "/mnt/tank/media", "Media library"), event=False)
        self.put("smb", 2, s.smb_share(2, "homes", "/mnt/tank/home"), event=False)
        self.put("nfs", 1, s.nfs_share(1, "/mnt/tank/media/movies", ["192.168.1.0/24"]),
                 event=False)  # fmt: skip
        self.put("nfs", 2, s.nfs_share(2, "/mnt/backup/tank-replica", [], "replica, read-only"),
                 event=False)  # fmt: skip
        target = s.iscsi_target(1, "debian")
        self.put("iscsi_target", 1, target, event=False)
        extent = s.iscsi_extent(1, "debian-disk", "tank/vms/debian-disk", 64 * s.GiB, rng)
        self.put("iscsi_extent", 1, extent, event=False)
        self.put("replication", 1, _replication(), event=False)

    def _seed_accounts(self) -> None:
        groups = [
            s.group(1, 0, "root", builtin=True),
            s.group(41, 544, "builtin_administrators", builtin=True, roles=["FULL_ADMIN"]),
            s.group(43, 545, "builtin_users", builtin=True),
            s.group(70, 3000, "media"),
            s.group(71, 1000, "alice"),
            s.group(72, 1001, "bob"),
            s.group(73, 3001, "labdeck-ro"),
        ]
        for g in groups:
            self.put("group", g["id"], g, event=False)

        def ref(pk: int) -> dict[str, Any]:
            g = self.items["group"][pk]
            return {"id": pk, "bsdgrp_gid": g["gid"], "bsdgrp_group": g["name"]}

        users = [
            s.user(0, "root", "root", pk=1, group=ref(1), builtin=True, roles=["FULL_ADMIN"]),
            s.user(950, "truenas_admin", "Local Administrator", pk=70, group=ref(43),
                   roles=["FULL_ADMIN"], api_keys=[1]),
            s.user(1000, "alice", "Alice Example", pk=71, group=ref(71)),
            s.user(1001, "bob", "Bob Example", pk=72, group=ref(72), login_shell="/usr/bin/bash"),
            s.user(3001, "labdeck-ro", "labdeck read-only", pk=73, group=ref(73),
                   roles=["READONLY_ADMIN"], api_keys=[2]),
        ]  # fmt: skip
        users[2]["groups"] = [70]
        users[3]["groups"] = [70]
        users[1]["groups"] = [41]
        for u in users:
            self.put("user", u["id"], u, event=False)
        for g in self.items["group"].values():
            g["users"] = [u["id"] for u in users if u["group"]["id"] == g["id"]
                          or g["id"] in u["groups"]]  # fmt: skip

    def _seed_compute(self, rng: random.Random) -> None:
        for name, version, state, port, image in (
            ("plex", "1.41.3", "RUNNING", 32400, "plexinc/pms-docker:1.41.3"),
            ("nextcloud", "30.0.4", "RUNNING", 30027, "nextcloud:30.0.4"),
            ("jellyfin", "10.10.3", "STOPPED", 30013, "jellyfin/jellyfin:10.10.3"),
            ("broken-app", "0.1.0", "CRASHED", 30099, "example/broken:0.1.0"),
        ):
            self.put("app", name, s.app(name, version, state, port=port, image=image),
                     event=False)  # fmt: skip
        self.put("vm", 1, s.vm(1, "debian", vcpus=2, memory_mib=4096, running=True, rng=rng),
                 event=False)  # fmt: skip
        self.put("vm", 2, s.vm(2, "win11", vcpus=4, memory_mib=8192, running=False, rng=rng),
                 event=False)  # fmt: skip
        if self.release == "26":
            self.put("container", 1, s.container(1, "web01", True, rng), event=False)
            self.put("container", 2, s.container(2, "dev01", False, rng), event=False)
        else:
            self.put("instance", "web01", s.virt_instance("web01", "CONTAINER", True, "Debian"),
                     event=False)  # fmt: skip
            self.put("instance", "dev01", s.virt_instance("dev01", "CONTAINER", False, "Ubuntu"),
                     event=False)  # fmt: skip


def _replication() -> dict[str, Any]:
    return {
        "id": 1, "name": "tank/home - backup/tank-replica", "direction": "PUSH",
        "transport": "LOCAL", "ssh_credentials": None, "netcat_active_side": None,
        "netcat_active_side_listen_address": None, "netcat_active_side_port_min": None,
        "netcat_active_side_port_max": None, "netcat_passive_side_connect_address": None,
        "sudo": False, "source_datasets": ["tank/home"], "target_dataset": "backup/tank-replica",
        "recursive": True, "exclude": [], "properties": True, "properties_exclude": [],
        "properties_override": {}, "replicate": False, "encryption": False,
        "encryption_inherit": None, "encryption_key": None, "encryption_key_format": None,
        "encryption_key_location": None, "periodic_snapshot_tasks": [],
        "naming_schema": ["auto-%Y-%m-%d_%H-%M"], "also_include_naming_schema": [],
        "name_regex": None, "auto": True,
        "schedule": {"minute": "0", "hour": "1", "dom": "*", "month": "*", "dow": "*",
                     "begin": "00:00", "end": "23:59"},
        "restrict_schedule": None, "only_matching_schedule": False, "allow_from_scratch": False,
        "readonly": "SET", "hold_pending_snapshots": False, "retention_policy": "SOURCE",
        "lifetime_value": None, "lifetime_unit": None, "lifetimes": [], "compression": None,
        "speed_limit": None, "large_block": True, "embed": False, "compressed": True,
        "retries": 5, "logging_level": None, "enabled": True,
        "state": {"state": "FINISHED"}, "job": None, "has_encrypted_dataset_keys": False,
    }  # fmt: skip
