"""What storages hold besides running guests' disks: backups, ISO images, templates.

Guest disks are derived from the guests (one per guest, on ``local-lvm`` of its node);
backups are stored in ``ClusterState.backups`` (seeded from the backup tasks of the task
history, added to by ``vzdump`` workers); ISOs and container templates are a fixed set.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from simulator.model import MIB, Guest, Storage, Volume

if TYPE_CHECKING:
    from simulator.state import ClusterState

Json = dict[str, Any]
BACKUP_STORAGE = "nas-nfs"
IMAGE_STORAGE = "local-lvm"

# file name, size in MiB
ISOS = (
    ("debian-13.1.0-amd64-netinst.iso", 754),
    ("ubuntu-24.04.3-live-server-amd64.iso", 3139),
    ("proxmox-backup-server_4.0-1.iso", 1398),
    ("virtio-win-0.1.271.iso", 709),
)
TEMPLATES = (
    ("debian-13-standard_13.1-2_amd64.tar.zst", 131),
    ("ubuntu-24.04-standard_24.04-2_amd64.tar.zst", 141),
    ("alpine-3.22-default_20250617_amd64.tar.xz", 3),
)
TEMPLATE_FORMATS = {"zst": "tzst", "xz": "txz", "gz": "tgz"}


def archive_name(guest: Guest, when: float) -> str:
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.gmtime(when))
    extension = "vma.zst" if guest.kind == "qemu" else "tar.zst"
    return f"vzdump-{guest.kind}-{guest.vmid}-{stamp}.{extension}"


def backup_size(guest: Guest, salt: str) -> int:
    """A zstd archive of the used part of the guest's disk, give or take."""
    rng = random.Random(f"labdeck-backup-{guest.vmid}-{salt}")
    return int(guest.maxdisk * guest.disk_fraction * rng.uniform(0.25, 0.45))


def backup_volume(guest: Guest, storage: Storage, when: float, node: str) -> Volume:
    name = archive_name(guest, when)
    return Volume(
        volid=f"{storage.storage}:backup/{name}", content="backup",
        format=name.split(".", 1)[1], size=backup_size(guest, name), ctime=int(when),
        node=None if storage.shared else node, vmid=guest.vmid, subtype=guest.kind,
        notes=guest.name,
    )  # fmt: skip


def seed_backups(state: ClusterState) -> list[Volume]:
    """The archives the seeded backup tasks (on ``nas-nfs``) wrote."""
    storage = state.storage(BACKUP_STORAGE)
    out: list[Volume] = []
    if storage is None:
        return out
    for task in state.tasks.everything():
        if task.kind != "vzdump" or not task.finished or task.failed or not task.ident:
            continue
        guest = state.guests.get(int(task.ident))
        if guest is not None:
            out.append(backup_volume(guest, storage, task.starttime, task.node))
    return out


def _fixed(state: ClusterState, storage: Storage, node: str) -> list[Volume]:
    out: list[Volume] = []
    ctime = state.clock.base_epoch - 40 * 86400
    owner = None if storage.shared else node
    if "iso" in storage.content:
        wanted = ISOS if storage.shared else ISOS[:2]
        out += [
            Volume(
                f"{storage.storage}:iso/{name}",
                "iso",
                "iso",
                size * MIB,
                ctime + i * 3 * 86400,
                owner,
            )
            for i, (name, size) in enumerate(wanted)
        ]
    if "vztmpl" in storage.content:
        out += [Volume(f"{storage.storage}:vztmpl/{name}", "vztmpl",
                       TEMPLATE_FORMATS[name.rsplit(".", 1)[1]],
                       size * MIB, ctime + i * 86400, owner)
                for i, (name, size) in enumerate(TEMPLATES)]  # fmt: skip
    return out


def disk_volid(guest: Guest) -> str:
    prefix = "vm" if guest.kind == "qemu" else "subvol"
    return f"{IMAGE_STORAGE}:{prefix}-{guest.vmid}-disk-0"


def _entry(volume: Volume) -> Json:
    out: Json = {"volid": volume.volid, "content": volume.content, "format": volume.format,
                 "size": volume.size, "ctime": volume.ctime}  # fmt: skip
    if volume.vmid is not None:
        out["vmid"] = volume.vmid
    if volume.subtype is not None:
        out["subtype"] = volume.subtype
    if volume.notes is not None:
        out["notes"] = volume.notes
    if volume.protected:
        out["protected"] = 1
    return out


def content(state: ClusterState, storage: Storage, node: str) -> list[Json]:
    """Everything ``storage`` holds as seen from ``node``, sorted by volid like PVE."""
    out: list[Json] = []
    if storage.storage == IMAGE_STORAGE:
        for guest in state.guests_on(node):
            kind = "images" if guest.kind == "qemu" else "rootdir"
            used = int(guest.maxdisk * guest.disk_fraction)
            out.append({"volid": disk_volid(guest), "content": kind,
                        "format": "raw" if guest.kind == "qemu" else "subvol",
                        "size": guest.maxdisk, "used": used, "vmid": guest.vmid,
                        "ctime": guest.ctime})  # fmt: skip
    out += [_entry(v) for v in _fixed(state, storage, node)]
    out += [_entry(v) for v in state.backups
            if v.storage == storage.storage and v.node in (None, node)]  # fmt: skip
    return sorted(out, key=lambda entry: str(entry["volid"]))
