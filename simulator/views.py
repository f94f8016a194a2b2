"""Shape model objects into the JSON PVE sends (booleans as 0/1, bytes as integers)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from simulator.guest_sheet import GuestSheet
from simulator.metrics import GuestMetrics, NodeMetrics, node_metrics
from simulator.model import MIB, Guest, Node, Pool, Storage
from simulator.state import ClusterState

PVE_VERSION = "9.1.1"
PVE_RELEASE = "9.1"
PVE_REPOID = "7d2b1a9c4e6f8031"
QEMU_VERSION = "10.1.2"
MACHINE = "pc-i440fx-10.1+pve0"
KERNEL_BUILD = "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)"
SDN_ZONE = "localnetwork"

Json = dict[str, Any]


def node_rollup(state: ClusterState, sheet: GuestSheet) -> dict[str, NodeMetrics]:
    """Node metrics from the guests they run (summed by the sheet once per change)."""
    load, mem = sheet.node_usage(state)
    t = state.metric_time()
    return {
        name: node_metrics(node, load[name], mem[name], t) for name, node in state.nodes.items()
    }


def one_node_metrics(state: ClusterState, node: Node) -> NodeMetrics:
    load, mem = 0.0, 0
    for guest in state.guests_on(node.name):
        if guest.running:
            m = state.metrics(guest)
            load += m.cpu * guest.cores
            mem += m.mem
    return node_metrics(node, load, mem, state.metric_time())


# ------------------------------------------------------------- /cluster/resources


def node_resource(node: Node, m: NodeMetrics) -> Json:
    return {
        "id": f"node/{node.name}", "type": "node", "node": node.name, "status": node.status,
        "cpu": m.cpu, "maxcpu": node.maxcpu, "mem": m.mem, "maxmem": node.maxmem,
        "disk": node.rootfs_used, "maxdisk": node.rootfs_total, "uptime": m.uptime,
        "level": "", "cgroup-mode": 2,
    }  # fmt: skip


def guest_resource(guest: Guest, m: GuestMetrics) -> Json:
    out: Json = {
        "id": guest.resource_id, "type": guest.kind, "vmid": guest.vmid, "name": guest.name,
        "node": guest.node, "status": guest.status, "cpu": m.cpu, "maxcpu": guest.cores,
        "mem": m.mem, "maxmem": guest.maxmem, "disk": m.disk, "maxdisk": guest.maxdisk,
        "diskread": m.diskread, "diskwrite": m.diskwrite, "netin": m.netin,
        "netout": m.netout, "uptime": m.uptime, "template": int(guest.template),
    }  # fmt: skip
    if guest.tags:
        out["tags"] = guest.tags
    if guest.pool is not None:
        out["pool"] = guest.pool
    if guest.lock is not None:
        out["lock"] = guest.lock
    return out


def storage_resource(storage: Storage, node: str, used: int) -> Json:
    return {
        "id": f"storage/{node}/{storage.storage}", "type": "storage",
        "storage": storage.storage, "node": node, "status": "available",
        "plugintype": storage.plugin, "content": storage.content,
        "shared": int(storage.shared), "disk": used, "maxdisk": storage.total,
    }  # fmt: skip


def pool_resource(pool: Pool) -> Json:
    return {"id": f"/pool/{pool.poolid}", "type": "pool", "pool": pool.poolid}


def sdn_resource(node: str) -> Json:
    return {"id": f"sdn/{node}/{SDN_ZONE}", "type": "sdn", "sdn": SDN_ZONE, "node": node,
            "status": "ok"}  # fmt: skip


# ----------------------------------------------------------------- node endpoints


def node_list_entry(node: Node, m: NodeMetrics, fingerprint: str) -> Json:
    return {
        "node": node.name, "id": f"node/{node.name}", "type": "node", "status": node.status,
        "cpu": m.cpu, "maxcpu": node.maxcpu, "mem": m.mem, "maxmem": node.maxmem,
        "disk": node.rootfs_used, "maxdisk": node.rootfs_total, "uptime": m.uptime,
        "level": "", "ssl_fingerprint": fingerprint,
    }  # fmt: skip


def node_status(node: Node, m: NodeMetrics) -> Json:
    free = node.maxmem - m.mem
    swap_used = 0
    return {
        "cpu": m.cpu, "wait": round(m.cpu * 0.02, 6), "idle": 0,
        "loadavg": [f"{v:.2f}" for v in m.loadavg], "uptime": m.uptime,
        "kversion": f"Linux {node.kernel} {KERNEL_BUILD} x86_64",
        "current-kernel": {"sysname": "Linux", "release": node.kernel,
                           "version": KERNEL_BUILD, "machine": "x86_64"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "cpuinfo": {"model": node.cpu_model, "cpus": node.maxcpu,
                    "cores": max(1, node.maxcpu // 2 // node.sockets), "sockets": node.sockets,
                    "mhz": node.cpu_mhz, "hvm": "1", "user_hz": 100,
                    "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov"},
        "memory": {"total": node.maxmem, "used": m.mem, "free": free,
                   "available": free + int(m.mem * 0.1)},
        "swap": {"total": node.swap_total, "used": swap_used, "free": node.swap_total},
        "rootfs": {"total": node.rootfs_total, "used": node.rootfs_used,
                   "free": node.rootfs_total - node.rootfs_used,
                   "avail": node.rootfs_total - node.rootfs_used},
        "ksm": {"shared": 0},
        "pveversion": f"pve-manager/{PVE_VERSION}/{PVE_REPOID}",
    }  # fmt: skip


def node_storage_entry(storage: Storage, used: int) -> Json:
    return {
        "storage": storage.storage, "type": storage.plugin, "content": storage.content,
        "shared": int(storage.shared), "active": 1, "enabled": 1, "total": storage.total,
        "used": used, "avail": storage.total - used,
        "used_fraction": round(used / storage.total, 6) if storage.total else 0.0,
    }  # fmt: skip


# ------------------------------------------------------------------- guests


def _guest_common(guest: Guest, m: GuestMetrics) -> Json:
    out: Json = {
        "vmid": guest.vmid, "name": guest.name, "status": guest.status, "cpus": guest.cores,
        "cpu": m.cpu, "maxmem": guest.maxmem, "mem": m.mem, "maxdisk": guest.maxdisk,
        "disk": m.disk, "netin": m.netin, "netout": m.netout, "diskread": m.diskread,
        "diskwrite": m.diskwrite, "uptime": m.uptime,
    }  # fmt: skip
    if guest.running:
        out["pid"] = guest.pid
    if guest.tags:
        out["tags"] = guest.tags
    if guest.template:
        out["template"] = 1
    if guest.lock is not None:
        out["lock"] = guest.lock
    return out


def guest_list_entry(guest: Guest, m: GuestMetrics) -> Json:
    out = _guest_common(guest, m)
    if guest.kind == "lxc":
        out["type"] = "lxc"
        out["maxswap"] = guest.swap_mib * MIB
        out["swap"] = 0
    return out


def guest_status(guest: Guest, m: GuestMetrics) -> Json:
    out = _guest_common(guest, m)
    out["ha"] = {"managed": 0}
    if guest.kind == "qemu":
        out["qmpstatus"] = "paused" if guest.paused and guest.running else guest.status
        if guest.agent:
            out["agent"] = 1
        if guest.running:
            out["running-machine"] = MACHINE
            out["running-qemu"] = QEMU_VERSION
    else:
        out["type"] = "lxc"
        out["maxswap"] = guest.swap_mib * MIB
        out["swap"] = 0
    return out


def _digest(config: Json) -> str:
    canonical = "\n".join(f"{key}: {config[key]}" for key in sorted(config))
    return hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()


def _description(guest: Guest) -> Json:
    return {"description": guest.description} if guest.description else {}


def qemu_config(guest: Guest) -> Json:
    config: Json = {
        "name": guest.name, "cores": guest.cores, "sockets": 1, "memory": str(guest.memory_mib),
        "cpu": "x86-64-v2-AES", "ostype": guest.ostype, "scsihw": "virtio-scsi-single",
        "scsi0": f"local-lvm:vm-{guest.vmid}-disk-0,iothread=1,size={guest.disk_gib}G",
        "ide2": "none,media=cdrom", "boot": "order=scsi0;ide2;net0",
        "net0": f"virtio={guest.mac},bridge=vmbr0,firewall=1", "numa": 0,
        "onboot": int(guest.onboot), "smbios1": f"uuid={guest.uuid}",
        "vmgenid": str(uuid.uuid5(uuid.NAMESPACE_OID, guest.uuid)),
        "meta": f"creation-qemu=9.2.0,ctime={guest.ctime}",
        **_description(guest),
    }  # fmt: skip
    if guest.agent:
        config["agent"] = "1"
    if guest.tags:
        config["tags"] = guest.tags
    if guest.template:
        config["template"] = 1
    config["digest"] = _digest(config)
    return config


def lxc_config(guest: Guest) -> Json:
    config: Json = {
        "hostname": guest.name, "arch": "amd64", "cores": guest.cores,
        "memory": guest.memory_mib, "swap": guest.swap_mib, "ostype": guest.ostype,
        "rootfs": f"local-lvm:subvol-{guest.vmid}-disk-0,size={guest.disk_gib}G",
        "net0": f"name=eth0,bridge=vmbr0,firewall=1,hwaddr={guest.mac},ip=dhcp,type=veth",
        "features": "nesting=1", "unprivileged": 1, "onboot": int(guest.onboot),
        **_description(guest),
    }  # fmt: skip
    if guest.tags:
        config["tags"] = guest.tags
    config["digest"] = _digest(config)
    return config
