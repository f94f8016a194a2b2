"""Typed results shared by every face. Field names follow the Proxmox API where one exists."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

GuestKind = Literal["qemu", "lxc"]
GuestState = Literal["running", "stopped", "paused", "suspended", "unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


class NodeInfo(_Model):
    node: str
    status: str = Field(description="online, offline or unknown")
    cpu: float = Field(0.0, description="CPU use as a fraction of maxcpu (0..1)")
    maxcpu: int = 0
    mem: int = Field(0, description="bytes used")
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    uptime: int = Field(0, description="seconds")


class Guest(_Model):
    # frozen: one guest may be in the inventories of several answers (core.service._guests)
    model_config = ConfigDict(extra="ignore", frozen=True)

    vmid: int
    name: str
    node: str
    kind: GuestKind
    status: str
    cpu: float = Field(0.0, description="fraction of its vCPUs in use (0..1)")
    maxcpu: float = 0
    mem: int = 0
    maxmem: int = 0
    disk: int = 0
    maxdisk: int = 0
    uptime: int = 0
    netin: int = 0
    netout: int = 0
    tags: list[str] = Field(default_factory=list)
    pool: str | None = None
    template: bool = False
    lock: str | None = None

    @property
    def ref(self) -> GuestRef:
        return GuestRef(node=self.node, vmid=self.vmid, kind=self.kind)


class GuestRef(_Model):
    node: str
    vmid: int
    kind: GuestKind

    @property
    def api_path(self) -> str:
        return f"/nodes/{self.node}/{self.kind}/{self.vmid}"


class StorageInfo(_Model):
    storage: str
    node: str
    plugintype: str = ""
    status: str = ""
    shared: bool = False
    content: str = ""
    disk: int = 0
    maxdisk: int = 0


class PoolMember(_Model):
    id: str
    type: str
    node: str | None = None
    vmid: int | None = None
    storage: str | None = None


class PoolInfo(_Model):
    poolid: str
    comment: str = ""
    members: list[PoolMember] = Field(default_factory=list)


class Inventory(_Model):
    """Everything ``GET /cluster/resources`` says, in one snapshot."""

    nodes: list[NodeInfo]
    guests: list[Guest]
    storages: list[StorageInfo]
    pools: list[str]

    def guest(self, vmid: int) -> Guest | None:
        for guest in self.guests:
            if guest.vmid == vmid:
                return guest
        return None


# ---------------------------------------------------------------- operation results


class ClusterOverview(_Model):
    cluster_name: str | None = Field(None, description="None for a single, non-clustered node")
    quorate: bool | None = None
    version: str | None = None
    nodes_online: int
    nodes_total: int
    guests_running: int
    guests_total: int
    qemu_total: int
    lxc_total: int
    cpu_used_cores: float = Field(description="sum over online nodes of cpu * maxcpu")
    cpu_total_cores: int
    mem_used: int
    mem_total: int
    storage_used: int
    storage_total: int


class NodeList(_Model):
    nodes: list[NodeInfo]


#: the rows of a columnar result. Its published schema says "an array" and no more: with a
#: schema for each row and cell, a client that validates results against the output schema
#: (the Python MCP SDK does, with jsonschema) descended into every cell, 0.4 s for a listing
#: of 5,000 guests (60 ms with one per row), for a check that cannot fail: a cell may be
#: of any type. Pydantic still checks the rows are lists of lists when the model is built.
Rows = Annotated[
    list[list[Any]],
    WithJsonSchema(
        {"type": "array", "description": "one array per item, its cells in the order of `columns`"}
    ),
]


class Table(_Model):
    """A compact listing: column names once, then one row per item."""

    columns: list[str]
    rows: Rows
    total: int = Field(description="items matching the filters (all pages)")
    next_cursor: str | None = Field(
        None, description="pass as cursor to get the next page; None when this is the last"
    )


class GuestStatus(_Model):
    vmid: int
    name: str
    node: str
    kind: GuestKind
    status: str
    qmpstatus: str | None = None
    cpu: float = 0.0
    cpus: float = 0
    mem: int = 0
    maxmem: int = 0
    maxdisk: int = 0
    uptime: int = 0
    agent: bool | None = Field(None, description="QEMU guest agent enabled in the config")
    tags: list[str] = Field(default_factory=list)
    pool: str | None = None
    lock: str | None = None
    ha_state: str | None = None


class PoolList(_Model):
    pools: list[PoolInfo]


class TaskStatus(_Model):
    upid: str
    node: str
    type: str
    id: str
    user: str
    status: str = Field(description="running or stopped")
    exitstatus: str | None = Field(None, description="OK, WARNINGS: n, or the error; once stopped")
    ok: bool | None = Field(None, description="True when stopped with OK/WARNINGS; None if running")
    starttime: int
    log_tail: list[str] = Field(default_factory=list)


class PowerResult(_Model):
    vmid: int
    name: str
    node: str
    kind: GuestKind
    action: str
    changed: bool = Field(description="False when the guest was already in the wanted state")
    upid: str | None = None
    waited: bool
    task_status: str | None = Field(None, description="running or stopped")
    exitstatus: str | None = None
    status_after: str | None = Field(None, description="guest status once the task ended")
    message: str


class ExecResult(_Model):
    vmid: int
    node: str
    command: list[str] = Field(description="the argv run in the guest")
    pid: int | None = Field(None, description="process id in the guest")
    exited: bool = Field(description="False when we stopped waiting (timeout)")
    exit_code: int | None = Field(None, description="0 is success; None if not exited")
    signal: int | None = Field(None, description="set when killed by a signal")
    ok: bool = Field(description="exited with exit code 0")
    stdout: str = ""
    stderr: str = ""
    out_truncated: bool = Field(False, description="stdout was cut (agent or our limit)")
    err_truncated: bool = Field(False, description="stderr was cut (agent or our limit)")
    duration_s: float
    message: str


class NetworkInterface(_Model):
    name: str
    hardware_address: str | None = None
    addresses: list[str] = Field(default_factory=list, description="address/prefix")


class AgentInfo(_Model):
    vmid: int
    node: str
    os_name: str | None = None
    os_version: str | None = None
    kernel: str | None = None
    machine: str | None = None
    interfaces: list[NetworkInterface] = Field(default_factory=list)
