"""Guest config, suspend/resume/reset, clone and migrate."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from core.errors import InvalidInput, NotFound
from core.models import Guest, PowerResult
from core.ops import operation
from core.pve_ops import GuestParams, NodeName, PoolId, PowerParams, Vmid
from core.pve_results import CloneResult, GuestConfig, MigrateResult
from core.pve_writes import GuestWaitParams, guest_fields, label, run_task, state_of, status_now
from core.service import OpContext

# ------------------------------------------------------------------ config


@operation(
    "pve_guest_config",
    summary="The configuration of a VM or container (CPU, memory, disks, network, options).",
    params=GuestParams,
    result=GuestConfig,
    read_only=True,
    idempotent=True,
)
async def guest_config(ctx: OpContext, p: GuestParams) -> GuestConfig:
    """The current configuration of a VM or container by vmid, every key as Proxmox VE
    reports it: cores, memory (MiB), disks (scsi0, rootfs, ...), network (net0), boot
    order, ostype, onboot, tags, description, and the digest that changes with each edit."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    config = dict(await ctx.pve.get(f"{guest.ref.api_path}/config") or {})
    digest = config.pop("digest", None)
    name = config.get("name") or config.get("hostname") or guest.name
    return GuestConfig(**{**guest_fields(guest), "name": str(name)}, digest=digest,
                       config=config)  # fmt: skip


# ------------------------------------------------------------------ suspend / resume / reset


async def _power_task(ctx: OpContext, p: PowerParams, guest: Guest, action: str,
                      before: str) -> PowerResult:  # fmt: skip
    upid = str(await ctx.pve.post(f"{guest.ref.api_path}/status/{action}"))
    task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
    after = state_of(await status_now(ctx, guest)) if p.wait else None
    done = f"finished: {after}" if p.wait else "started; follow it with pve_task_status"
    return PowerResult(
        **guest_fields(guest), action=action, changed=True, upid=upid, waited=p.wait,
        task_status=task["task_status"], exitstatus=task.get("exitstatus"), status_after=after,
        message=f"{action} of {label(guest)} {done}.",
    )  # fmt: skip


def _unchanged(guest: Guest, action: str, state: str, why: str) -> PowerResult:
    return PowerResult(
        **guest_fields(guest), action=action, changed=False, waited=False, status_after=state,
        message=f"{label(guest)} {why}; nothing to do.",
    )  # fmt: skip


@operation(
    "pve_suspend_guest",
    summary="Suspend (pause) a running VM; containers are checkpointed and stop.",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    destructive=True,
    idempotent=True,
)
async def suspend_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Suspend a running VM: its vCPUs pause and its services stop answering until
    pve_resume_guest; RAM stays in place. A container is suspended by a checkpoint (an
    experimental Proxmox VE feature) and shows as stopped until resumed. Suspending a
    paused VM changes nothing (changed=false).
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    state = state_of(await status_now(ctx, guest))
    if state == "paused":
        return _unchanged(guest, "suspend", state, "is already paused")
    if state != "running":
        raise InvalidInput(f"{label(guest)} is {state}; only a running guest can be suspended.")
    return await _power_task(ctx, p, guest, "suspend", state)


@operation(
    "pve_resume_guest",
    summary="Resume a suspended (paused) VM or checkpointed container.",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    idempotent=True,
)
async def resume_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Resume a VM paused by pve_suspend_guest (or a container suspended by a checkpoint).
    Resuming a VM that runs normally changes nothing (changed=false).
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    state = state_of(await status_now(ctx, guest))
    if guest.kind == "qemu" and state == "running":
        return _unchanged(guest, "resume", state, "is running, not paused")
    if guest.kind == "qemu" and state != "paused":
        raise InvalidInput(
            f"{label(guest)} is {state}; only a paused VM can be resumed.",
            hint="Start it with pve_start_guest instead.",
        )
    if guest.kind == "lxc" and state == "running":
        return _unchanged(guest, "resume", state, "is running")
    return await _power_task(ctx, p, guest, "resume", state)


@operation(
    "pve_reset_guest",
    summary="Hard-reset a running VM (like the reset button; unsaved data is lost).",
    params=PowerParams,
    result=PowerResult,
    read_only=False,
    destructive=True,
)
async def reset_guest(ctx: OpContext, p: PowerParams) -> PowerResult:
    """Reset a running VM at once, like pressing its reset button: the guest OS reboots
    without shutting down and unsaved data is lost. VMs only; containers have no reset
    (use pve_reboot_guest).
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    if guest.kind == "lxc":
        raise InvalidInput(
            f"{label(guest)} is a container; Proxmox VE has no reset for containers.",
            hint="Use pve_reboot_guest, or pve_stop_guest then pve_start_guest.",
        )
    state = state_of(await status_now(ctx, guest))
    if state not in ("running", "paused"):
        raise InvalidInput(f"{label(guest)} is {state}; only a running VM can be reset.")
    return await _power_task(ctx, p, guest, "reset", state)


# ------------------------------------------------------------------ clone


_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DNS_NAME = rf"^(?:{_LABEL}\.)*{_LABEL}$"
StorageId = Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$", max_length=64)]


class CloneParams(GuestWaitParams):
    newid: Vmid | None = Field(None, description="VMID of the copy; default: the next free one.")
    name: str | None = Field(
        None, pattern=_DNS_NAME, max_length=63,
        description="Name (VM) or hostname (container) of the copy, a DNS name.",
    )  # fmt: skip
    full: bool | None = Field(
        None,
        description="Full copy (true) or linked clone sharing the disks (false, templates "
        "only). Default: full, linked for templates.",
    )
    target: NodeName | None = Field(
        None, description="Node for the copy (needs a full clone onto shared storage)."
    )
    storage: StorageId | None = Field(None, description="Storage for the copy's disks (full).")
    pool: PoolId | None = Field(None, description="Add the copy to this pool.")
    description: str | None = Field(None, max_length=8192, description="Notes for the copy.")
    timeout_s: float = Field(600.0, gt=0, le=3600, description="How long to wait, seconds.")


@operation(
    "pve_clone_guest",
    summary="Clone a VM or container (full or linked) to a new vmid, optionally another node.",
    params=CloneParams,
    result=CloneResult,
    read_only=False,
)
async def clone_guest(ctx: OpContext, p: CloneParams) -> CloneResult:
    """Copy a VM or container (or template) to a new guest: newid (default: next free
    vmid), name, full copy or linked clone (templates), target node (needs storage on a
    shared storage), pool. The copy is created stopped. The source is unchanged.
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    inventory = await ctx.service.inventory()
    if p.target is not None and p.target not in {n.node for n in inventory.nodes}:
        raise NotFound(f"no node named {p.target!r}.")
    if p.full is False and not guest.template:
        raise InvalidInput(
            f"{label(guest)} is not a template; only templates can be linked-cloned.",
            fields={"full": "omit it (or true) for a full copy"},
        )
    if p.full is False and p.storage is not None:
        raise InvalidInput("a linked clone stays on the template's storage.",
                           fields={"storage": "only for full clones"})  # fmt: skip
    if p.newid is not None and inventory.guest(p.newid) is not None:
        raise InvalidInput(f"vmid {p.newid} is already in use.",
                           fields={"newid": "omit it to take the next free vmid"})  # fmt: skip
    newid = p.newid if p.newid is not None else int(await ctx.pve.get("/cluster/nextid"))
    full = p.full if p.full is not None else not guest.template
    params: dict[str, Any] = {
        "newid": newid, "full": full, "target": p.target, "storage": p.storage,
        "pool": p.pool, "description": p.description,
        ("name" if guest.kind == "qemu" else "hostname"): p.name,
    }  # fmt: skip
    upid = str(await ctx.pve.post(f"{guest.ref.api_path}/clone", params))
    task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
    new_node = p.target or guest.node
    new_name = p.name or ""
    if p.wait:
        ctx.pve.invalidate()
        copy = (await ctx.service.inventory()).guest(newid)
        if copy is not None:
            new_name, new_node = copy.name, copy.node
    done = "created" if p.wait else "being created"
    return CloneResult(
        **guest_fields(guest), **task, action="clone", changed=True, newid=newid,
        new_name=new_name, new_node=new_node, full=full, status_after=None,
        message=f"{'full' if full else 'linked'} clone {newid} ({new_name or '?'}) of "
        f"{label(guest)} {done} on {new_node}.",
    )  # fmt: skip


# ------------------------------------------------------------------ migrate


class MigrateParams(GuestWaitParams):
    target: NodeName = Field(description="Node to move the guest to.")
    online: bool | None = Field(
        None, description="VMs: live-migrate while running (default: true if it runs)."
    )
    restart: bool = Field(
        False,
        description="Containers: a running container can only move by restarting "
        "(shutdown, move, start); set true to allow that.",
    )
    timeout_s: float = Field(900.0, gt=0, le=3600, description="How long to wait, seconds.")


@operation(
    "pve_migrate_guest",
    summary="Move a VM (live if running) or container (restart if running) to another node.",
    params=MigrateParams,
    result=MigrateResult,
    read_only=False,
)
async def migrate_guest(ctx: OpContext, p: MigrateParams) -> MigrateResult:
    """Move a VM or container to node target. A running VM moves live (online, its local
    disks copied along) without downtime; a running container must restart on the target
    (restart=true), a short outage. Stopped guests just move.
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    inventory = await ctx.service.inventory()
    nodes = {n.node: n for n in inventory.nodes}
    if p.target not in nodes:
        raise NotFound(f"no node named {p.target!r}.", hint=f"Nodes: {', '.join(sorted(nodes))}.")
    if p.target == guest.node:
        raise InvalidInput(f"{label(guest)} is already on {p.target}.",
                           fields={"target": "name another node"})  # fmt: skip
    if nodes[p.target].status != "online":
        raise InvalidInput(f"node {p.target} is {nodes[p.target].status}.")
    running = guest.status == "running"
    params: dict[str, Any] = {"target": p.target}
    online = False
    if guest.kind == "qemu":
        online = running if p.online is None else p.online
        if running and not online:
            raise InvalidInput(f"{label(guest)} is running; it can only move live.",
                               fields={"online": "omit it or pass true"})  # fmt: skip
        if online:
            params.update({"online": True, "with-local-disks": True})
    elif running:
        if p.online:
            raise InvalidInput("containers cannot move live.",
                               fields={"online": "containers move by restarting"})  # fmt: skip
        if not p.restart:
            raise InvalidInput(
                f"{label(guest)} is running; a container moves by restarting on the target.",
                fields={"restart": "pass true to allow the short outage"},
            )
        params["restart"] = True
    upid = str(await ctx.pve.post(f"{guest.ref.api_path}/migrate", params))
    task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
    after = None
    if p.wait:
        ctx.pve.invalidate()
        moved = await ctx.service.find_guest(guest.vmid)
        after = moved.status
    done = f"moved to {p.target}" if p.wait else f"moving to {p.target}"
    return MigrateResult(
        **guest_fields(guest), **task, action="migrate", changed=True, source_node=guest.node,
        target=p.target, online=online, status_after=after,
        message=f"{label(guest)} {done}" + (f"; it is {after}." if after else "."),
    )  # fmt: skip
