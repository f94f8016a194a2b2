"""``POST .../clone`` and ``POST .../migrate`` for VMs and containers.

Like PVE, a clone's config is written first, locked (``clone``) until the worker has
copied the disks, so the new guest shows up in the inventory at once. A migration locks
the guest (``migrate``) and moves it to the target node when the worker ends.
Guest disks live on node-local storage (``local-lvm``): cloning to another node needs a
full clone onto shared storage, and running VMs move with ``online`` and local disks.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from simulator import params as p
from simulator.errors import die, permission_denied
from simulator.model import GIB, Guest, GuestKind
from simulator.routing import Call, Route
from simulator.state import ClusterState
from simulator.volumes import IMAGE_STORAGE, disk_volid
from simulator.workers import locked_error, restart_guest, start_worker

GUEST = {"node": p.node(), "vmid": p.vmid()}
DRIVE = {"qemu": "scsi0", "lxc": "rootfs"}
COPY_RATE = 2 * GIB  # bytes per simulated second when copying disks


MIGRATE_TASK = {"qemu": "qmigrate", "lxc": "vzmigrate"}
_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
check_dns_name = p._regex_check(
    rf"({_DNS_LABEL}\.)*{_DNS_LABEL}", "value does not look like a valid DNS name"
)


def _prefix(kind: GuestKind) -> str:
    return "qm" if kind == "qemu" else "vz"


def _mac(state: ClusterState) -> str:
    tail = ":".join(f"{state._rng.randrange(256):02X}" for _ in range(3))
    return f"BC:24:11:{tail}"


def _copy_seconds(guest: Guest) -> float:
    return 3.0 + guest.maxdisk * guest.disk_fraction / COPY_RATE


def _clone(kind: GuestKind) -> Any:
    def handler(call: Call) -> str:
        state, args = call.state, call.params
        source = state.guest_on(args["node"], kind, args["vmid"])
        newid: int = args["newid"]
        target = state.node(args.get("target", source.node)).name
        if newid in state.guests:
            raise die(f"unable to create {source.label.split()[0]} {newid}: config file "
                      "already exists")  # fmt: skip
        full = bool(args.get("full", not source.template))
        storage_id = args.get("storage")
        storage = state.storage(storage_id) if storage_id else None
        if storage_id and storage is None:
            raise die(f"storage '{storage_id}' does not exist")
        if not full and storage_id:
            raise die("parameter 'storage' not allowed for linked clones")
        if not full and not source.template:
            raise die(f"Linked clone feature is not supported for drive '{DRIVE[kind]}'")
        if target != source.node and not (storage is not None and storage.shared):
            raise die(f"can't clone {source.label.split()[0]} to node '{target}' "
                      f"({source.label.split()[0]} uses local storage)")  # fmt: skip
        snapname = args.get("snapname")
        if snapname is not None and snapname not in source.snapshots:
            raise die(f"snapshot '{snapname}' does not exist")
        pool = state.pool(args["pool"]) if "pool" in args else None
        who = call.principal
        if not who.has(f"/vms/{newid}", "VM.Allocate") and not (
            pool is not None and who.has(f"/pool/{pool.poolid}", "VM.Allocate")
        ):
            raise permission_denied(f"/vms/{newid}", "VM.Allocate")
        error = locked_error(source)
        if kind == "qemu":
            name = args.get("name") or f"Copy-of-VM-{source.name}"
        else:
            name = args.get("hostname") or source.name
        now = state.now()
        rng = state._rng
        clone = dataclasses.replace(
            source, vmid=newid, node=target, name=name, template=False, status="stopped",
            boot_time=0.0, pid=0, pool=None, snapshots={}, parent=None, lock="clone",
            paused=False, mac=_mac(state), ctime=int(now),
            uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            description=args.get("description", source.description),
        )  # fmt: skip
        how = "full" if full else "linked"
        target_disk = disk_volid(clone).replace(IMAGE_STORAGE, (storage_id or IMAGE_STORAGE))
        lines = [f"create {how} clone of drive {DRIVE[kind]} ({disk_volid(source)})",
                 f'  Logical volume "{target_disk.split(":", 1)[1]}" created.']  # fmt: skip
        if full:
            size = f"{source.disk_gib:.1f} GiB"
            lines.append(f"transferred {size} of {size} (100.00%)")
        if error is None:
            state.guests[newid] = clone
            if pool is not None:
                pool.vmids.add(newid)
                clone.pool = pool.poolid

        def apply(at: float) -> None:
            clone.lock = None

        task = start_worker(state, node=source.node, kind=f"{_prefix(kind)}clone",
                            ident=str(source.vmid), user=call.principal.task_user,
                            seconds=_copy_seconds(source) if full else 2.0, lines=lines,
                            error=error, effect=apply)  # fmt: skip
        return task.upid

    return handler


def _migrate(kind: GuestKind) -> Any:
    def handler(call: Call) -> str:
        state, args = call.state, call.params
        guest = state.guest_on(args["node"], kind, args["vmid"])
        target = args["target"]
        if target not in state.nodes:
            raise die(f"no such cluster node '{target}'")
        if target == guest.node:
            raise die("target is local node.")
        online, restart = bool(args.get("online")), bool(args.get("restart"))
        was_running = guest.running
        if was_running and kind == "qemu" and not online:
            raise die("can't migrate running VM without --online")
        if was_running and kind == "lxc":
            if online:
                raise die("lxc live migration is currently not implemented")
            if not restart:
                raise die("running container can only be migrated in restart mode")
        error = locked_error(guest)
        volid = disk_volid(guest)
        if error is None and was_running and kind == "qemu" and not args.get("with-local-disks"):
            error = (f"can't migrate local disk '{volid}': can't live migrate attached local "
                     "disks without with-local-disks option")  # fmt: skip
        host = state.nodes[target]
        seconds = _copy_seconds(guest) + (6.0 if was_running else 1.0)
        lines = [f"starting migration of {guest.label} to node '{target}' ({host.ip})",
                 f"found local disk '{volid}' (attached)"]  # fmt: skip
        if was_running and kind == "lxc":
            lines.insert(1, f"shutdown CT {guest.vmid}")
        if was_running and kind == "qemu":
            lines += [f"starting VM {guest.vmid} on remote node '{target}'",
                      "starting storage migration", "starting online/live migration",
                      "migration status: completed"]  # fmt: skip
        else:
            lines.append(f"copying local disk images ({guest.disk_gib} GiB)")
        if was_running and kind == "lxc":
            lines.append(f"start container on target node '{target}'")
        lines.append("migration finished successfully")

        def apply(at: float) -> None:
            guest.node = target
            if was_running and kind == "lxc":
                restart_guest(state, guest, at)
            elif was_running:  # a new QEMU process on the target; the guest OS runs on
                guest.boot_time = at
                guest.pid = state._rng.randrange(1000, 4_000_000)

        task = start_worker(state, node=guest.node, kind=MIGRATE_TASK[kind], ident=str(guest.vmid),
                            user=call.principal.task_user, seconds=seconds, lines=lines,
                            error=error, effect=apply, lock=(guest, "migrate"))  # fmt: skip
        return task.upid

    return handler


def placement_routes() -> list[Route]:
    routes: list[Route] = []
    clone_perm = ("/vms/{vmid}", "VM.Clone")
    migrate_perm = ("/vms/{vmid}", "VM.Migrate")
    common = {
        **GUEST, "newid": p.vmid(), "description": p.text(), "full": p.flag(),
        "pool": p.formatted(p.pool_id), "storage": p.formatted(p.storage_id),
        "target": p.node(optional=True),
        "snapname": p.Param("string", check=p.check_configid, max_length=40),
    }  # fmt: skip
    qemu, lxc = "/nodes/{node}/qemu/{vmid}", "/nodes/{node}/lxc/{vmid}"
    routes += [
        Route("POST", f"{qemu}/clone", _clone("qemu"), {
            **common, "name": p.Param("string", check=check_dns_name),
            "format": p.choice("raw", "qcow2", "vmdk"), "bwlimit": p.integer(0)}, clone_perm),
        Route("POST", f"{lxc}/clone", _clone("lxc"), {
            **common, "hostname": p.Param("string", check=check_dns_name),
            "bwlimit": p.Param("number", minimum=0)}, clone_perm),
        Route("POST", f"{qemu}/migrate", _migrate("qemu"), {
            **GUEST, "target": p.node(), "online": p.flag(), "force": p.flag(),
            "with-local-disks": p.flag(), "with-conntrack-state": p.flag(),
            "bwlimit": p.integer(0), "migration_network": p.formatted(p.cidr),
            "migration_type": p.choice("secure", "insecure"), "targetstorage": p.text()},
            migrate_perm),
        Route("POST", f"{lxc}/migrate", _migrate("lxc"), {
            **GUEST, "target": p.node(), "online": p.flag(), "restart": p.flag(),
            "timeout": p.integer(), "bwlimit": p.Param("number", minimum=0),
            "target-storage": p.text()}, migrate_perm),
    ]  # fmt: skip
    return routes
