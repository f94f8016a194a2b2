"""Proxmox VE operations of the catalogue (``pve_*``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from core.errors import InvalidInput
from core.models import (
    ClusterOverview,
    Guest,
    GuestStatus,
    NodeList,
    PoolInfo,
    PoolList,
    PoolMember,
    PowerResult,
    Table,
    TaskStatus,
)
from core.ops import columns_of, operation
from core.pve import parse_upid
from core.service import OpContext, _tags

Vmid = Annotated[int, Field(ge=100, le=999_999_999, description="Guest id (VMID), e.g. 100.")]
NodeName = Annotated[
    str,
    Field(
        pattern=r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$",
        max_length=63,
        description="Node name, e.g. 'pve1'.",
    ),
]


def _check_upid(value: str) -> str:
    try:
        parse_upid(value)
    except InvalidInput:
        # pydantic reports ValueErrors per field; our own error would escape it
        raise ValueError(
            "not a Proxmox task id; expected 'UPID:node:pid:pstart:starttime:type:id:user:'"
        ) from None
    return value


Upid = Annotated[
    str,
    Field(max_length=512, description="Task id as returned by a write: 'UPID:node:...:'."),
    AfterValidator(_check_upid),
]
PoolId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=64)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParams(_Params):
    pass


# ------------------------------------------------------------------ listings

GUEST_FIELDS: tuple[str, ...] = (
    "vmid", "name", "node", "status", "type", "cpu", "maxcpu", "mem", "maxmem",
    "disk", "maxdisk", "uptime", "netin", "netout", "tags", "pool", "template", "lock",
)  # fmt: skip
DEFAULT_GUEST_FIELDS: tuple[str, ...] = ("vmid", "name", "node", "status")
CHUNK = 500  # guests handled between two yields to the event loop


class ListGuestsParams(_Params):
    node: NodeName | None = Field(None, description="Only guests on this node.")
    kind: Literal["qemu", "lxc"] | None = Field(None, description="qemu (VMs) or lxc.")
    status: Literal["running", "stopped", "paused", "suspended"] | None = Field(
        None, description="Only guests in this state."
    )
    pool: PoolId | None = Field(None, description="Only members of this pool.")
    tag: str | None = Field(None, max_length=64, description="Only guests with this tag.")
    name: str | None = Field(
        None, max_length=128, description="Case-insensitive substring of the guest name."
    )
    fields: list[str] | None = Field(
        None,
        description="Columns to return. Default: vmid, name, node, status. Available: "
        + ", ".join(GUEST_FIELDS)
        + ".",
    )
    limit: int | None = Field(None, ge=1, le=10_000, description="Page size (default: all).")
    cursor: str | None = Field(None, description="next_cursor of the previous page.")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: list[str] | None) -> list[str] | None:
        return columns_of(value, GUEST_FIELDS)

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        if value is not None and (not value.isdigit() or len(value) > 9):
            raise ValueError("not a cursor from a previous page (pass next_cursor unchanged)")
        return value


def _guest_cell(guest: Guest, name: str) -> Any:
    if name == "type":
        return guest.kind
    if name == "cpu":
        return round(guest.cpu, 4)
    if name == "tags":
        return ";".join(guest.tags)
    return getattr(guest, name)


def _matches(guest: Guest, p: ListGuestsParams) -> bool:
    return (
        (p.node is None or guest.node == p.node)
        and (p.kind is None or guest.kind == p.kind)
        and (p.status is None or guest.status == p.status)
        and (p.pool is None or guest.pool == p.pool)
        and (p.tag is None or p.tag in guest.tags)
        and (p.name is None or p.name.lower() in guest.name.lower())
    )


@operation(
    "pve_list_guests",
    summary="List VMs and containers (compact table; filters, fields, paging).",
    params=ListGuestsParams,
    result=Table,
    read_only=True,
    idempotent=True,
)
async def list_guests(ctx: OpContext, p: ListGuestsParams) -> Table:
    """List the cluster's guests (QEMU VMs and LXC containers) as a compact table:
    `columns` once, then one row per guest, sorted by vmid. Default columns are vmid, name,
    node, status; ask for more with `fields` (e.g. ["vmid","name","type","cpu","mem","tags"]).
    Filter by node, kind, status, pool, tag or name substring instead of pulling everything.
    `total` counts all matches; when `next_cursor` is set, call again with it for the next page.
    One request to the cluster, whatever the number of guests."""
    inventory = await ctx.service.inventory()
    matches: list[Guest] = []
    for start in range(0, len(inventory.guests), CHUNK):
        matches += [g for g in inventory.guests[start : start + CHUNK] if _matches(g, p)]
        await asyncio.sleep(0)  # thousands of guests: let other work run between chunks
    columns = list(p.fields or DEFAULT_GUEST_FIELDS)
    offset = int(p.cursor) if p.cursor else 0
    page = matches[offset:] if p.limit is None else matches[offset : offset + p.limit]
    end = offset + len(page)
    rows: list[list[Any]] = []
    for start in range(0, len(page), CHUNK):
        rows += [[_guest_cell(g, c) for c in columns] for g in page[start : start + CHUNK]]
        await asyncio.sleep(0)
    return Table(
        columns=columns,
        rows=rows,
        total=len(matches),
        next_cursor=str(end) if end < len(matches) else None,
    )


@operation(
    "pve_list_nodes",
    summary="List cluster nodes with status, CPU, memory and uptime.",
    params=NoParams,
    result=NodeList,
    read_only=True,
    idempotent=True,
)
async def list_nodes(ctx: OpContext, p: NoParams) -> NodeList:
    """List the cluster's nodes: status (online/offline), cpu (fraction of maxcpu cores),
    mem/maxmem and disk/maxdisk in bytes, uptime in seconds."""
    inventory = await ctx.service.inventory()
    return NodeList(nodes=inventory.nodes)


@operation(
    "pve_cluster_overview",
    summary="Cluster health at a glance: quorum, nodes, guests, CPU/memory/storage totals.",
    params=NoParams,
    result=ClusterOverview,
    read_only=True,
    idempotent=True,
)
async def cluster_overview(ctx: OpContext, p: NoParams) -> ClusterOverview:
    """Summarise the cluster: name and quorum, Proxmox VE version, how many nodes are
    online, how many guests run, and CPU/memory/storage used vs. total. Start here."""
    inventory = await ctx.service.inventory()
    status = await ctx.pve.cached_get("/cluster/status")
    version = await ctx.pve.cached_get("/version")
    cluster = next((s for s in status or [] if s.get("type") == "cluster"), None)
    online = [n for n in inventory.nodes if n.status == "online"]
    seen_shared: set[str] = set()
    storage_used = storage_total = 0
    for s in inventory.storages:
        if s.shared:
            if s.storage in seen_shared:
                continue
            seen_shared.add(s.storage)
        storage_used += s.disk
        storage_total += s.maxdisk
    return ClusterOverview(
        cluster_name=cluster.get("name") if cluster else None,
        quorate=bool(cluster.get("quorate")) if cluster else None,
        version=(version or {}).get("version"),
        nodes_online=len(online),
        nodes_total=len(inventory.nodes),
        guests_running=sum(1 for g in inventory.guests if g.status == "running"),
        guests_total=len(inventory.guests),
        qemu_total=sum(1 for g in inventory.guests if g.kind == "qemu"),
        lxc_total=sum(1 for g in inventory.guests if g.kind == "lxc"),
        cpu_used_cores=round(sum(n.cpu * n.maxcpu for n in online), 2),
        cpu_total_cores=sum(n.maxcpu for n in online),
        mem_used=sum(n.mem for n in online),
        mem_total=sum(n.maxmem for n in online),
        storage_used=storage_used,
        storage_total=storage_total,
    )


class GuestParams(_Params):
    vmid: Vmid
    node: NodeName | None = Field(
        None, description="Node of the guest; optional, labdeck looks it up."
    )


@operation(
    "pve_guest_status",
    summary="Live status of one guest: state, CPU, memory, uptime, agent, tags, pool.",
    params=GuestParams,
    result=GuestStatus,
    read_only=True,
    idempotent=True,
)
async def guest_status(ctx: OpContext, p: GuestParams) -> GuestStatus:
    """Current status of one VM or container by vmid (node optional): running/stopped,
    CPU fraction, memory bytes, uptime seconds, whether the QEMU guest agent is enabled,
    tags, pool, lock and HA state."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    data = await ctx.pve.get(f"{guest.ref.api_path}/status/current")
    ha = data.get("ha") or {}
    agent = data.get("agent")
    return GuestStatus(
        vmid=guest.vmid,
        name=str(data.get("name") or guest.name),
        node=guest.node,
        kind=guest.kind,
        status=str(data.get("status", guest.status)),
        qmpstatus=data.get("qmpstatus"),
        cpu=float(data.get("cpu") or 0.0),
        cpus=float(data.get("cpus") or 0),
        mem=int(data.get("mem") or 0),
        maxmem=int(data.get("maxmem") or 0),
        maxdisk=int(data.get("maxdisk") or 0),
        uptime=int(data.get("uptime") or 0),
        agent=None if agent is None else bool(agent),
        tags=_tags(data.get("tags")),
        pool=guest.pool,
        lock=data.get("lock"),
        ha_state=ha.get("state") if isinstance(ha, dict) else None,
    )


@operation(
    "pve_list_pools",
    summary="List resource pools with their member guests and storages.",
    params=NoParams,
    result=PoolList,
    read_only=True,
    idempotent=True,
)
async def list_pools(ctx: OpContext, p: NoParams) -> PoolList:
    """List resource pools: id, comment and members (guests with vmid/node, storages)."""
    raw = await ctx.pve.cached_get("/pools")
    inventory = await ctx.service.inventory()
    # `GET /pools` lists no members (members come per pool, `?poolid=`): the guests' `pool`
    # field from the one /cluster/resources call gives them without a request per pool.
    guests_of: dict[str, list[PoolMember]] = {}
    for g in inventory.guests:
        if g.pool:
            member = PoolMember(id=f"{g.kind}/{g.vmid}", type=g.kind, node=g.node, vmid=g.vmid)
            guests_of.setdefault(g.pool, []).append(member)
    pools: list[PoolInfo] = []
    for item in raw or []:
        poolid = str(item.get("poolid"))
        members_raw = item.get("members")
        if members_raw is None:
            members = guests_of.get(poolid, [])
        else:
            members = [PoolMember.model_validate(m) for m in members_raw]
        pools.append(
            PoolInfo(poolid=poolid, comment=str(item.get("comment") or ""), members=members)
        )
    pools.sort(key=lambda pool: pool.poolid)
    return PoolList(pools=pools)


class TaskParams(_Params):
    upid: Upid
    log_lines: int = Field(5, ge=0, le=200, description="Last log lines to include.")


@operation(
    "pve_task_status",
    summary="Status, exit status and last log lines of one task (UPID).",
    params=TaskParams,
    result=TaskStatus,
    read_only=True,
    idempotent=True,
)
async def task_status(ctx: OpContext, p: TaskParams) -> TaskStatus:
    """Status of a Proxmox task by UPID: running or stopped, and once stopped its
    exitstatus ("OK", "WARNINGS: n" or the error), plus the last log lines."""
    data = await ctx.pve.task_status(p.upid)
    tail = await ctx.pve.task_log_tail(p.upid, p.log_lines) if p.log_lines else []
    return _task_model(data, tail)


def _task_model(data: dict[str, Any], tail: list[str]) -> TaskStatus:
    info = parse_upid(str(data["upid"]))
    exitstatus = data.get("exitstatus")
    stopped = data.get("status") == "stopped"
    return TaskStatus(
        upid=str(data["upid"]),
        node=str(data.get("node") or info.node),
        type=str(data.get("type") or info.type),
        id=str(data.get("id") or info.id),
        user=str(data.get("user") or info.user),
        status=str(data.get("status")),
        exitstatus=exitstatus,
        ok=(exitstatus == "OK" or str(exitstatus).startswith("WARNINGS")) if stopped else None,
        starttime=int(data.get("starttime") or info.starttime),
        log_tail=tail,
    )


# ------------------------------------------------------------------ lifecycle


class PowerParams(GuestParams):
    wait: bool = Field(True, description="Wait for the task to finish (recommended).")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="How long to wait, seconds.")


_ALREADY = {
    "start": ("running", "is already running"),
    "shutdown": ("stopped", "is already stopped"),
    "stop": ("stopped", "is already stopped"),
}


async def _power(ctx: OpContext, p: PowerParams, action: str) -> PowerResult:
    guest = await ctx.service.find_guest(p.vmid, p.node)
    label = "VM" if guest.kind == "qemu" else "CT"
    base = {"vmid": guest.vmid, "name": guest.name, "node": guest.node, "kind": guest.kind}
    if guest.template:
        raise InvalidInput(f"{label} {guest.vmid} is a template and cannot be {action}ed.")
    wanted = _ALREADY.get(action)
    if wanted and guest.status == wanted[0]:
        return PowerResult(
            **base, action=action, changed=False, waited=False, status_after=guest.status,
            message=f"{label} {guest.vmid} ({guest.name}) {wanted[1]}; nothing to do.",
        )  # fmt: skip
    if action == "reboot" and guest.status != "running":
        raise InvalidInput(
            f"{label} {guest.vmid} ({guest.name}) is {guest.status}; it cannot be rebooted.",
            hint="Start it with pve_start_guest instead.",
        )
    upid = str(await ctx.pve.post(f"{guest.ref.api_path}/status/{action}"))
    if not p.wait:
        return PowerResult(
            **base, action=action, changed=True, upid=upid, waited=False,
            task_status="running",
            message=f"{action} of {label} {guest.vmid} started; follow it with pve_task_status.",
        )  # fmt: skip
    status = await ctx.pve.wait_task(upid, timeout_s=p.timeout_s, progress=ctx.progress)
    current = await ctx.pve.get(f"{guest.ref.api_path}/status/current")
    after = str(current.get("status"))
    return PowerResult(
        **base, action=action, changed=True, upid=upid, waited=True,
        task_status=str(status.get("status")), exitstatus=status.get("exitstatus"),
        status_after=after,
        message=f"{action} of {label} {guest.vmid} ({guest.name}) finished: {after}.",
    )  # fmt: skip


@operation(
    "pve_start_guest",
    summary="Start a stopped VM or container.",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    idempotent=True,
)
async def start_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Start a VM or container by vmid. Starting a running guest changes nothing
    (changed=false).
    Waits for the task to end (wait=true, up to timeout_s) and reports the guest's status
    afterwards; wait=false returns the task id (upid) at once for pve_task_status."""
    return await _power(ctx, p, "start")


@operation(
    "pve_shutdown_guest",
    summary="Shut a guest down cleanly (ACPI / init), like pressing the power button.",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    destructive=True,
    idempotent=True,
)
async def shutdown_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Ask a VM or container to shut down cleanly; its services stop. Prefer this over
    pve_stop_guest. Shutting down a stopped guest changes nothing (changed=false).
    Waits for the task to end (wait=true, up to timeout_s) and reports the guest's status
    afterwards; wait=false returns the task id (upid) at once for pve_task_status."""
    return await _power(ctx, p, "shutdown")


@operation(
    "pve_stop_guest",
    summary="Power a guest off at once (like pulling the plug; unsaved data is lost).",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    destructive=True,
    idempotent=True,
)
async def stop_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Hard-stop a VM or container immediately, without a clean shutdown: unsaved data in
    the guest is lost. Use only when pve_shutdown_guest does not work.
    Waits for the task to end (wait=true, up to timeout_s) and reports the guest's status
    afterwards; wait=false returns the task id (upid) at once for pve_task_status."""
    return await _power(ctx, p, "stop")


@operation(
    "pve_reboot_guest",
    summary="Reboot a running guest cleanly.",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    destructive=True,
)
async def reboot_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Reboot a running VM or container (clean shutdown, then start); its services are
    briefly down.
    Waits for the task to end (wait=true, up to timeout_s) and reports the guest's status
    afterwards; wait=false returns the task id (upid) at once for pve_task_status."""
    return await _power(ctx, p, "reboot")
