"""Plain data of the simulated cluster: nodes, guests, pools, storages."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

GuestKind = Literal["qemu", "lxc"]
GIB = 1024**3
MIB = 1024**2
_EDIT_STAMPS = itertools.count(1)


@dataclass(frozen=True)
class Drift:
    """Seeded parameters of one object's smooth metric wobble over time."""

    cpu_base: float  # typical CPU fraction when running
    cpu_swing: float
    mem_fraction: float  # typical share of maxmem in use
    periods: tuple[float, float, float]
    phases: tuple[float, float, float]
    net_in_rate: float  # bytes per simulated second
    net_out_rate: float
    disk_read_rate: float
    disk_write_rate: float


@dataclass
class Node:
    name: str
    nodeid: int
    ip: str
    maxcpu: int
    sockets: int
    cpu_model: str
    cpu_mhz: str
    maxmem: int
    boot_time: float
    rootfs_total: int
    rootfs_used: int
    swap_total: int
    kernel: str
    drift: Drift
    status: str = "online"


@dataclass
class Guest:
    vmid: int
    kind: GuestKind
    node: str
    name: str
    cores: int
    memory_mib: int
    disk_gib: int
    ostype: str
    tags: str  # "" or semicolon-separated, as PVE stores them
    template: bool
    agent: bool
    onboot: bool
    description: str
    mac: str
    ctime: int
    uuid: str
    drift: Drift
    disk_fraction: float  # share of the root disk in use (containers report it)
    status: str = "stopped"
    boot_time: float = 0.0  # when it last started (meaningful while running)
    pid: int = 0
    pool: str | None = None
    swap_mib: int = 512
    # snapshots by name, the one "current" descends from, and PVE's config lock
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    parent: str | None = None
    lock: str | None = None
    paused: bool = False  # QEMU: vCPUs paused (suspend); LXC: checkpointed
    # Unique per assignment to any field (see __setattr__); changes inside the snapshots
    # dict do not count.
    edit_stamp: int = field(default=0, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        """Every assignment stamps the guest anew, so what is built from it and kept
        (``simulator.guest_sheet``) can tell in one comparison that it is out of date."""
        object.__setattr__(self, name, value)
        object.__setattr__(self, "edit_stamp", next(_EDIT_STAMPS))

    @property
    def maxmem(self) -> int:
        return self.memory_mib * MIB

    @property
    def maxdisk(self) -> int:
        return self.disk_gib * GIB

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def resource_id(self) -> str:
        return f"{self.kind}/{self.vmid}"

    @property
    def label(self) -> str:
        """How PVE names the guest in messages: ``VM 100`` or ``CT 100``."""
        return f"{'VM' if self.kind == 'qemu' else 'CT'} {self.vmid}"

    def config_path(self) -> str:
        folder = "qemu-server" if self.kind == "qemu" else "lxc"
        return f"nodes/{self.node}/{folder}/{self.vmid}.conf"


@dataclass
class Snapshot:
    name: str
    snaptime: int
    description: str
    parent: str | None
    vmstate: bool  # QEMU: RAM saved with it
    settings: dict[str, object]  # the guest's settings when it was taken


@dataclass
class Volume:
    """A file or volume a storage lists as content (backups, ISOs, templates)."""

    volid: str
    content: str  # backup, iso, vztmpl
    format: str
    size: int
    ctime: int
    node: str | None  # the node a local storage holds it on; None on shared storage
    vmid: int | None = None
    subtype: str | None = None  # backups: qemu or lxc
    notes: str | None = None
    protected: bool = False

    @property
    def storage(self) -> str:
        return self.volid.split(":", 1)[0]


@dataclass
class Pool:
    poolid: str
    comment: str | None = None  # PVE omits the key when a pool has no comment
    vmids: set[int] = field(default_factory=set)
    storages: set[str] = field(default_factory=set)


@dataclass
class Storage:
    storage: str
    plugin: str  # dir, lvmthin, nfs
    content: str
    shared: bool
    total: int
    used: int  # for lvmthin this is the fixed base; guest disks add to it
    nodes: tuple[str, ...]
