"""Seeded demo data: pools, datasets, snapshots, shares, iSCSI, accounts, apps, VMs, alerts.

Items are built in the newest (26.0) shape; :mod:`simulator.truenas.state` trims them to the
release being served. Datetimes are ``datetime`` objects; the wire encoder writes ``$date``.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

TB = 1000**4
GB = 1000**3
GiB = 1024**3


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.2f}{unit}".replace(".00", "")
        value /= 1024
    return str(size)


def prop(parsed: Any, *, source: str = "LOCAL", value: str | None = None) -> dict[str, Any]:
    """A ZFS property object as pool.dataset.query shows it."""
    if isinstance(parsed, bool):
        raw = "on" if parsed else "off"
    elif parsed is None:
        raw = "none"
    else:
        raw = str(parsed)
    shown = (
        value
        if value is not None
        else (
            human(parsed)
            if isinstance(parsed, int) and not isinstance(parsed, bool)
            else raw.upper()
        )
    )
    return {"parsed": parsed, "rawvalue": raw, "value": shown, "source": source,
            "source_info": None}  # fmt: skip


def _vdev(name: str, kind: str, children: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "path": None, "guid": str(abs(hash(name)) % 10**18),
            "status": status, "stats": {"read_errors": 0, "write_errors": 0,
                                        "checksum_errors": 0}, "children": children}  # fmt: skip


def _disk_vdev(disk: str, status: str = "ONLINE") -> dict[str, Any]:
    return {"name": f"{disk}1", "type": "DISK", "path": f"/dev/{disk}1", "disk": disk,
            "guid": str(abs(hash(disk)) % 10**18), "status": status,
            "stats": {"read_errors": 0, "write_errors": 0 if status == "ONLINE" else 12,
                      "checksum_errors": 0}, "children": []}  # fmt: skip


def pool(pid: int, name: str, layout: str, disks: list[str], *, size: int, allocated: int,
         status: str, rng: random.Random, scrubbed: datetime) -> dict[str, Any]:  # fmt: skip
    healthy = status == "ONLINE"
    leaves = [_disk_vdev(d, "ONLINE" if healthy or i else "FAULTED") for i, d in enumerate(disks)]
    return {
        "id": pid, "name": name, "guid": str(rng.getrandbits(63)), "all_sed": False,
        "status": status, "path": f"/mnt/{name}",
        "scan": {"function": "SCRUB", "state": "FINISHED", "start_time": scrubbed,
                 "end_time": scrubbed + timedelta(hours=5), "percentage": 100.0,
                 "bytes_to_process": allocated, "bytes_processed": allocated,
                 "bytes_issued": allocated, "pause": None, "errors": 0, "total_secs_left": None},
        "expand": None, "is_upgraded": True, "healthy": healthy, "warning": False,
        "status_code": None if healthy else "DEGRADED",
        "status_detail": None if healthy else "One or more devices are faulted.",
        "size": size, "allocated": allocated, "free": size - allocated, "freeing": 0,
        "dedup_table_size": 0, "dedup_table_quota": "auto",
        "fragmentation": str(rng.randint(2, 19)), "size_str": str(size),
        "allocated_str": str(allocated), "free_str": str(size - allocated), "freeing_str": "0",
        "autotrim": {"parsed": "off", "rawvalue": "off", "source": "DEFAULT", "value": "off"},
        "topology": {"data": [_vdev(f"{layout.lower()}-0", layout, leaves, status)],
                     "log": [], "cache": [], "spare": [], "special": [], "dedup": []},
    }  # fmt: skip


def dataset_raw(name: str, *, used: int, avail: int, created: datetime, compression: str = "LZ4",
                quota: int | None = None, comments: str = "", kind: str = "FILESYSTEM",
                volsize: int | None = None) -> dict[str, Any]:  # fmt: skip
    return {"name": name, "type": kind, "used": used, "available": avail, "created": created,
            "compression": compression, "quota": quota, "refquota": None, "comments": comments,
            "readonly": False, "atime": False, "sync": "STANDARD", "recordsize": "128K",
            "volsize": volsize, "user_properties": {}, "snapdir": "HIDDEN"}  # fmt: skip


def dataset_item(raw: dict[str, Any]) -> dict[str, Any]:
    """Render a stored dataset as pool.dataset.query returns it."""
    name = raw["name"]
    local = "/" in name
    inherited = "INHERITED" if local else "LOCAL"
    volume = raw["type"] == "VOLUME"
    item: dict[str, Any] = {
        "id": name,
        "type": raw["type"],
        "name": name,
        "pool": name.split("/")[0],
        "encrypted": False,
        "encryption_root": None,
        "key_loaded": False,
        "children": [],
        "user_properties": dict(raw["user_properties"]),
        "locked": False,
        "tier": None,
        "mountpoint": None if volume else f"/mnt/{name}",
    }
    text = {"parsed": raw["comments"], "rawvalue": raw["comments"], "value": raw["comments"],
            "source": "LOCAL" if raw["comments"] else "NONE", "source_info": None}  # fmt: skip
    item["comments"] = text
    item["managedby"] = prop("-", source="DEFAULT", value="-")
    for key in ("quota_warning", "refquota_warning"):
        item[key] = prop(80, source="DEFAULT", value="80")
    for key in ("quota_critical", "refquota_critical"):
        item[key] = prop(95, source="DEFAULT", value="95")
    item["deduplication"] = prop("off", source=inherited, value="OFF")
    item["aclmode"] = prop("passthrough", source=inherited, value="PASSTHROUGH")
    item["acltype"] = prop("posix", source=inherited, value="POSIX")
    item["xattr"] = prop("sa", source=inherited, value="SA")
    item["atime"] = prop(raw["atime"], source=inherited)
    item["casesensitivity"] = prop("sensitive", source="NONE", value="SENSITIVE")
    item["checksum"] = prop("on", source="DEFAULT", value="ON")
    item["exec"] = prop(True, source=inherited)
    item["sync"] = prop(raw["sync"].lower(), source=inherited, value=raw["sync"])
    comp = raw["compression"]
    item["compression"] = prop(comp.lower(), source="LOCAL" if not local else inherited,
                               value=comp)  # fmt: skip
    item["compressratio"] = prop("1.42", source="NONE", value="1.42x")
    item["origin"] = prop("", source="NONE", value="")
    for key in ("quota", "refquota"):
        size = raw[key]
        item[key] = prop(size, source="LOCAL" if size else "DEFAULT")
    for key in ("reservation", "refreservation"):
        item[key] = prop(0, source="DEFAULT", value="0")
    item["copies"] = prop(1, source="DEFAULT", value="1")
    item["snapdir"] = prop(raw["snapdir"].lower(), source="DEFAULT", value=raw["snapdir"])
    item["readonly"] = prop(raw["readonly"], source="LOCAL" if raw["readonly"] else "DEFAULT")
    item["recordsize"] = prop(raw["recordsize"], source=inherited, value=raw["recordsize"])
    absent = prop(None, source="NONE", value="-")  # filesystems have no volume properties
    item["sparse"] = prop(False, source="NONE") if volume else absent
    item["volsize"] = prop(raw["volsize"], source="LOCAL") if volume else dict(absent)
    item["volblocksize"] = prop("16K", source="DEFAULT", value="16K") if volume else dict(absent)
    item["key_format"] = prop("none", source="DEFAULT", value="NONE")
    item["encryption_algorithm"] = prop("off", source="DEFAULT", value="OFF")
    used = raw["used"]
    item["used"] = prop(used, source="NONE")
    item["usedbychildren"] = prop(used // 3, source="NONE")
    item["usedbydataset"] = prop(used - used // 3 - used // 20, source="NONE")
    item["usedbyrefreservation"] = prop(0, source="NONE")
    item["usedbysnapshots"] = prop(used // 20, source="NONE")
    item["available"] = prop(raw["available"], source="NONE")
    item["special_small_block_size"] = prop(0, source="DEFAULT", value="0")
    item["pbkdf2iters"] = prop(0, source="DEFAULT", value="0")
    stamp = int(raw["created"].timestamp())
    item["creation"] = {"parsed": raw["created"].isoformat(), "rawvalue": str(stamp),
                        "value": raw["created"].strftime("%a %b %d %H:%M %Y"), "source": "NONE",
                        "source_info": None}  # fmt: skip
    item["snapdev"] = prop("hidden", source="DEFAULT", value="HIDDEN")
    return item


def snapshot(dataset: str, name: str, *, txg: int, created: datetime, used: int) -> dict[str, Any]:
    def sprop(value: str, raw: str) -> dict[str, Any]:
        return {"value": value, "rawvalue": raw, "source": "NONE", "parsed": raw}

    return {
        "id": f"{dataset}@{name}", "name": f"{dataset}@{name}", "pool": dataset.split("/")[0],
        "type": "SNAPSHOT", "snapshot_name": name, "dataset": dataset, "createtxg": str(txg),
        "holds": {}, "retention": None,
        "properties": {"used": sprop(human(used), str(used)),
                       "creation": sprop(created.isoformat(), str(int(created.timestamp()))),
                       "referenced": sprop(human(used * 9), str(used * 9))},
    }  # fmt: skip


def smb_share(sid: int, name: str, path: str, comment: str = "") -> dict[str, Any]:
    return {
        "id": sid, "purpose": "DEFAULT_SHARE", "name": name, "path": path,
        "dataset": path.removeprefix("/mnt/"), "relative_path": "", "enabled": True,
        "comment": comment, "readonly": False, "browsable": True,
        "access_based_share_enumeration": False, "locked": False,
        "audit": {"enable": False, "watch_list": [], "ignore_list": []},
        "options": {"aapl_name_mangling": False, "hostsallow": [], "hostsdeny": []},
        "tier": None,
    }  # fmt: skip


def nfs_share(sid: int, path: str, networks: list[str], comment: str = "") -> dict[str, Any]:
    return {
        "id": sid, "path": path, "dataset": path.removeprefix("/mnt/"), "relative_path": "",
        "aliases": [], "comment": comment, "networks": networks, "hosts": [], "ro": False,
        "maproot_user": "root", "maproot_group": "wheel", "mapall_user": None,
        "mapall_group": None, "security": ["SYS"], "enabled": True, "locked": False,
        "expose_snapshots": False, "tier": None,
    }  # fmt: skip


def iscsi_target(tid: int, name: str) -> dict[str, Any]:
    return {"id": tid, "name": name, "alias": None, "mode": "ISCSI",
            "groups": [{"portal": 1, "initiator": 1, "authmethod": "NONE", "auth": None}],
            "auth_networks": [], "rel_tgt_id": tid, "iscsi_parameters": None}  # fmt: skip


def iscsi_extent(eid: int, name: str, zvol: str, size: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": eid, "name": name, "type": "DISK", "disk": f"zvol/{zvol}",
        "serial": f"{rng.getrandbits(48):012x}", "path": f"zvol/{zvol}", "dataset": zvol,
        "relative_path": None, "filesize": "0", "blocksize": 512, "pblocksize": False,
        "avail_threshold": None, "comment": "", "naa": f"0x6589cfc000000{rng.getrandbits(76):019x}",
        "insecure_tpc": True, "xen": False, "rpm": "SSD", "ro": False, "enabled": True,
        "vendor": "TrueNAS", "product_id": "iSCSI Disk", "locked": False,
    }  # fmt: skip


def user(uid_: int, username: str, full_name: str, *, pk: int, group: dict[str, Any],
         builtin: bool = False, roles: list[str] | None = None, api_keys: list[int] | None = None,
         login_shell: str = "/usr/bin/zsh") -> dict[str, Any]:  # fmt: skip
    home = "/root" if username == "root" else f"/mnt/tank/home/{username}"
    if builtin and username != "root":
        home = "/var/empty"
    return {
        "id": pk, "uid": uid_, "username": username, "unixhash": "*", "smbhash": "*",
        "home": home, "shell": login_shell, "full_name": full_name, "builtin": builtin,
        "smb": not builtin, "webshare": False, "userns_idmap": None, "group": group,
        "groups": [], "password_disabled": False, "ssh_password_enabled": False,
        "sshpubkey": None, "locked": False, "sudo_commands": [], "sudo_commands_nopasswd": [],
        "email": None, "local": True, "immutable": builtin, "twofactor_auth_configured": False,
        "sid": None, "last_password_change": None, "password_age": None,
        "password_history": None, "password_change_required": False, "roles": roles or [],
        "api_keys": api_keys or [],
    }  # fmt: skip


def group(pk: int, gid: int, name: str, *, builtin: bool = False,
          roles: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {"id": pk, "gid": gid, "name": name, "builtin": builtin, "sudo_commands": [],
            "sudo_commands_nopasswd": [], "smb": not builtin, "userns_idmap": None,
            "group": name, "local": True, "sid": None, "roles": roles or [], "users": [],
            "immutable": builtin}  # fmt: skip


ANY_ADDRESS = ".".join(["0"] * 4)  # what apps publish ports on (not a bind of ours)


def app(name: str, version: str, state: str, *, port: int, image: str) -> dict[str, Any]:
    running = state == "RUNNING"
    return {
        "name": name, "id": name, "state": state, "upgrade_available": name == "nextcloud",
        "latest_version": version, "latest_app_version": version,
        "image_updates_available": False, "custom_app": False, "migrated": False,
        "human_version": f"{version}_1.0.0", "version": "1.0.0",
        "metadata": {"name": name, "title": name.title(), "train": "community"},
        "active_workloads": {
            "containers": 1 if running else 0,
            "used_ports": [{"container_port": port, "protocol": "tcp",
                            "host_ports": [{"host_port": port, "host_ip": ANY_ADDRESS}]}],
            "used_host_ips": [ANY_ADDRESS] if running else [],
            "container_details": [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                                   "service_name": name, "image": image, "port_config": [],
                                   "state": "running" if running else "exited",
                                   "volume_mounts": []}] if running else [],
            "volumes": [], "images": [image], "networks": [],
        },
        "notes": None, "action_required": False,
        "portals": {"Web UI": f"http://{ANY_ADDRESS}:{port}/"}, "version_details": None,
        "config": None,
    }  # fmt: skip


def vm(pk: int, name: str, *, vcpus: int, memory_mib: int, running: bool,
       rng: random.Random) -> dict[str, Any]:  # fmt: skip
    mac = ":".join(f"{b:02x}" for b in [0x00, 0xA0, 0x98, *rng.randbytes(3)])
    return {
        "command_line_args": "", "cpu_mode": "CUSTOM", "cpu_model": None, "name": name,
        "description": f"{name} guest", "vcpus": vcpus, "cores": 1, "threads": 1,
        "cpuset": None, "nodeset": None, "enable_cpu_topology_extension": False,
        "pin_vcpus": False, "suspend_on_snapshot": False, "trusted_platform_module": False,
        "memory": memory_mib, "min_memory": None, "hyperv_enlightenments": False,
        "bootloader": "UEFI", "bootloader_ovmf": "OVMF_CODE.fd", "autostart": running,
        "hide_from_msr": False, "ensure_display_device": True, "time": "LOCAL",
        "shutdown_timeout": 90, "arch_type": None, "machine_type": None,
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "devices": [{"id": pk * 10 + 1, "vm": pk, "order": 1001,
                     "attributes": {"dtype": "NIC", "trust_guest_rx_filters": False,
                                    "type": "VIRTIO", "nic_attach": "enp1s0", "mac": mac}}],
        "display_available": False, "id": pk, "enable_secure_boot": False,
        "status": {"state": "RUNNING" if running else "STOPPED",
                   "pid": 4000 + pk if running else None,
                   "domain_state": "RUNNING" if running else "SHUTOFF"},
    }  # fmt: skip


def virt_instance(name: str, kind: str, running: bool, image_os: str) -> dict[str, Any]:
    return {
        "id": name, "name": name, "type": kind, "status": "RUNNING" if running else "STOPPED",
        "cpu": "2", "memory": 2 * GiB, "autostart": running, "environment": {},
        "aliases": [{"type": "INET", "address": "10.0.3.10", "netmask": 24}] if running else [],
        "image": {"architecture": "amd64", "description": f"{image_os} amd64",
                  "os": image_os, "release": "bookworm", "serial": "20250101_05:24",
                  "type": "container" if kind == "CONTAINER" else "virtual-machine",
                  "variant": "default", "secureboot": None},
        "userns_idmap": None, "raw": None, "vnc_enabled": False, "vnc_port": None,
        "vnc_password": None, "secure_boot": None, "privileged_mode": False,
        "root_disk_size": None, "root_disk_io_bus": None, "storage_pool": "tank",
    }  # fmt: skip


def container(pk: int, name: str, running: bool, rng: random.Random) -> dict[str, Any]:
    return {
        "id": pk, "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "name": name,
        "description": "", "devices": [], "cpuset": None, "autostart": running,
        "time": "LOCAL", "shutdown_timeout": 30, "dataset": f"tank/.truenas_containers/{name}",
        "init": "/sbin/init", "initdir": None, "initenv": {}, "inituser": None,
        "initgroup": None, "idmap": {"type": "DEFAULT"}, "capabilities_policy": "DEFAULT",
        "capabilities_state": {}, "default_network": "truenasbr0",
        "status": {"state": "RUNNING" if running else "STOPPED",
                   "pid": 6000 + pk if running else None, "domain_state": None},
    }  # fmt: skip


def disk(index: int, pool_name: str | None, size: int, rng: random.Random) -> dict[str, Any]:
    name = f"sd{chr(ord('a') + index)}"
    serial = f"ZR{rng.getrandbits(32):08X}"
    return {
        "identifier": f"{{serial_lunid}}{serial}_5000c500{rng.getrandbits(32):08x}",
        "name": name, "subsystem": "scsi", "number": 2048 + index * 16, "serial": serial,
        "lunid": f"5000c500{rng.getrandbits(32):08x}", "size": size,
        "description": "", "transfermode": "Auto", "hddstandby": "ALWAYS ON",
        "advpowermgmt": "DISABLED", "expiretime": None, "model": "ST8000VN004-3CP101",
        "rotationrate": 7200, "type": "HDD", "zfs_guid": str(rng.getrandbits(63)),
        "bus": "ATA", "devname": name, "enclosure": None, "pool": pool_name, "passwd": "",
        "kmip_uid": None, "sed": False, "sed_status": "UNSUPPORTED",
    }  # fmt: skip


def alert(klass: str, level: str, text: str, when: datetime, rng: random.Random) -> dict[str, Any]:
    uid_ = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {"id": uid_, "uuid": uid_, "source": "", "klass": klass, "args": None,
            "node": "Controller A", "key": klass, "datetime": when, "last_occurrence": when,
            "dismissed": False, "mail": None, "text": text, "level": level, "formatted": text,
            "one_shot": False}  # fmt: skip


def scrub_task(pk: int, pool_id: int, pool_name: str) -> dict[str, Any]:
    return {"pool": pool_id, "threshold": 35, "description": "", "enabled": True, "id": pk,
            "pool_name": pool_name, "schedule": {"minute": "00", "hour": "00", "dom": "*",
                                                 "month": "*", "dow": "7"}}  # fmt: skip


def epoch_for(seed: int) -> datetime:
    """A fixed 'now' for seeded data: reproducible, never the wall clock."""
    return datetime(2025, 11, 3, 9, 30, tzinfo=UTC) + timedelta(hours=seed % 97)
