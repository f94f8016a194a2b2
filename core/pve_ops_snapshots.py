"""Snapshots of VMs and containers: list (as a tree), take, roll back, delete."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from core.errors import InvalidInput, NotFound
from core.models import Guest
from core.ops import operation
from core.pve_ops import GuestParams
from core.pve_results import SnapshotInfo, SnapshotList, SnapshotResult
from core.pve_writes import GuestWaitParams, guest_fields, label, run_task, state_of
from core.service import OpContext

RESERVED_NAMES = ("current", "pending", "vzdump")


def _not_reserved(value: str) -> str:
    if value.lower() in RESERVED_NAMES:
        raise ValueError(f"'{value}' is a reserved name; choose another")
    return value


SnapName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_\-]+$",
        min_length=2,
        max_length=40,
        description="Snapshot name: a letter, then letters, digits, '-' or '_' (2-40), "
        "e.g. 'before-upgrade'.",
    ),
    AfterValidator(_not_reserved),
]


async def _snapshots(ctx: OpContext, guest: Guest) -> list[dict[str, Any]]:
    return list(await ctx.pve.get(f"{guest.ref.api_path}/snapshot") or [])


def _tree(raw: list[dict[str, Any]]) -> list[SnapshotInfo]:
    """Depth-first order, oldest first among siblings, with each snapshot's depth."""
    snaps = {str(s["name"]): s for s in raw if s.get("name") != "current"}
    children: dict[str | None, list[str]] = {}
    for name, snap in snaps.items():
        parent = snap.get("parent")
        key = str(parent) if parent in snaps else None
        children.setdefault(key, []).append(name)
    for names in children.values():
        names.sort(key=lambda n: (int(snaps[n].get("snaptime") or 0), n))
    out: list[SnapshotInfo] = []
    stack: list[tuple[str, int]] = [(n, 0) for n in reversed(children.get(None, []))]
    while stack:
        name, depth = stack.pop()
        snap = snaps[name]
        vmstate = snap.get("vmstate")
        out.append(
            SnapshotInfo(
                name=name,
                parent=snap.get("parent") or None,
                description=str(snap.get("description") or "").strip(),
                snaptime=snap.get("snaptime"),
                vmstate=None if vmstate is None else bool(vmstate),
                depth=depth,
            )
        )
        stack += [(n, depth + 1) for n in reversed(children.get(name, []))]
    return out


@operation(
    "pve_list_snapshots",
    summary="List a guest's snapshots as a tree (name, parent, time, RAM state).",
    params=GuestParams,
    result=SnapshotList,
    read_only=True,
    idempotent=True,
)
async def list_snapshots(ctx: OpContext, p: GuestParams) -> SnapshotList:
    """List the snapshots of a VM or container by vmid, depth first as a tree: each has
    name, parent, description, snaptime (Unix time), vmstate (VMs: RAM saved with it) and
    depth. current_parent names the snapshot the guest's present state descends from."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    raw = await _snapshots(ctx, guest)
    current = next((s for s in raw if s.get("name") == "current"), {})
    return SnapshotList(
        **guest_fields(guest),
        snapshots=_tree(raw),
        current_parent=current.get("parent") or None,
    )


class CreateSnapshotParams(GuestWaitParams):
    snapname: SnapName
    description: str | None = Field(None, max_length=8192, description="What it is for.")
    vmstate: bool = Field(
        False, description="VMs only: also save the RAM, so a rollback resumes the running VM."
    )


class SnapshotParams(GuestWaitParams):
    snapname: SnapName


class RollbackParams(SnapshotParams):
    start: bool = Field(
        False, description="Start the guest after the rollback (a RAM snapshot always resumes)."
    )


def _result(guest: Guest, action: str, snapname: str, task: dict[str, Any], message: str,
            status_after: str | None = None) -> SnapshotResult:  # fmt: skip
    return SnapshotResult(
        **guest_fields(guest), **task, action=action, snapname=snapname, changed=True,
        status_after=status_after, message=message,
    )  # fmt: skip


async def _require(ctx: OpContext, guest: Guest, snapname: str) -> list[dict[str, Any]]:
    raw = await _snapshots(ctx, guest)
    names = [str(s["name"]) for s in raw if s.get("name") != "current"]
    if snapname not in names:
        raise NotFound(
            f"{label(guest)} has no snapshot {snapname!r}.",
            hint=f"Its snapshots: {', '.join(names)}." if names else "It has no snapshots.",
        )
    return raw


@operation(
    "pve_create_snapshot",
    summary="Take a snapshot of a VM or container (optionally with RAM for VMs).",
    params=CreateSnapshotParams,
    result=SnapshotResult,
    read_only=False,
)
async def create_snapshot(ctx: OpContext, p: CreateSnapshotParams) -> SnapshotResult:
    """Take a snapshot named snapname of a VM or container, with an optional description.
    vmstate=true (running VMs only) saves the RAM too, so rolling back resumes the VM where
    it was. The name must not be in use.
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status. A failed task is an error with its exit status and
    last log lines."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    if p.vmstate and guest.kind == "lxc":
        raise InvalidInput(
            "containers cannot save their RAM in a snapshot.",
            fields={"vmstate": "only for VMs (qemu); omit it for a container"},
        )
    if guest.template:
        raise InvalidInput(f"{label(guest)} is a template; templates cannot be snapshotted.")
    raw = await _snapshots(ctx, guest)
    if any(s.get("name") == p.snapname for s in raw):
        raise InvalidInput(
            f"{label(guest)} already has a snapshot named {p.snapname!r}.",
            fields={"snapname": "already in use; choose another name or delete the old one"},
        )
    params: dict[str, Any] = {"snapname": p.snapname, "description": p.description}
    if guest.kind == "qemu" and p.vmstate:
        params["vmstate"] = True
    upid = str(await ctx.pve.post(f"{guest.ref.api_path}/snapshot", params))
    task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
    done = "taken" if p.wait else "started"
    return _result(guest, "snapshot", p.snapname, task,
                   f"snapshot {p.snapname!r} of {label(guest)} {done}.")  # fmt: skip


@operation(
    "pve_rollback_snapshot",
    summary="Roll a guest back to a snapshot (its current state is lost).",
    params=RollbackParams,
    result=SnapshotResult,
    read_only=False,
    destructive=True,
)
async def rollback_snapshot(ctx: OpContext, p: RollbackParams) -> SnapshotResult:
    """Return a VM or container to the state of snapshot snapname. Everything that changed
    since the snapshot (disk and config) is lost; a running guest is stopped first. A
    snapshot with RAM resumes the VM running; otherwise it stays stopped unless start=true.
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status. A failed task is an error with its exit status and
    last log lines."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    await _require(ctx, guest, p.snapname)
    path = f"{guest.ref.api_path}/snapshot/{p.snapname}/rollback"
    upid = str(await ctx.pve.post(path, {"start": True} if p.start else None))
    task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
    after = None
    if p.wait:
        current = await ctx.pve.get(f"{guest.ref.api_path}/status/current")
        after = state_of(dict(current or {}))
    done = f"rolled back to {p.snapname!r}" if p.wait else f"rollback to {p.snapname!r} started"
    message = f"{label(guest)} {done}" + (f"; it is {after}." if after else ".")
    return _result(guest, "rollback", p.snapname, task, message, after)


@operation(
    "pve_delete_snapshot",
    summary="Delete a snapshot of a guest (the guest itself is unchanged).",
    params=SnapshotParams,
    result=SnapshotResult,
    read_only=False,
    destructive=True,
)
async def delete_snapshot(ctx: OpContext, p: SnapshotParams) -> SnapshotResult:
    """Delete snapshot snapname of a VM or container; its data can no longer be rolled
    back to. The guest and its other snapshots stay (children move up to its parent).
    Waits for the task (wait=true, up to timeout_s) with progress; wait=false returns the
    upid at once for pve_task_status. A failed task is an error with its exit status and
    last log lines."""
    guest = await ctx.service.find_guest(p.vmid, p.node)
    await _require(ctx, guest, p.snapname)
    upid = str(await ctx.pve.delete(f"{guest.ref.api_path}/snapshot/{p.snapname}"))
    task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
    done = "deleted" if p.wait else "deletion started"
    return _result(guest, "delete_snapshot", p.snapname, task,
                   f"snapshot {p.snapname!r} of {label(guest)} {done}.")  # fmt: skip
