"""Storage, storage content, backups (vzdump) and pool changes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from core.errors import InvalidInput, NotFound, PolicyDenied
from core.models import Guest, StorageInfo, Table
from core.ops import operation
from core.pve_ops import NodeName, PoolId, Vmid, _Params
from core.pve_results import BackupResult, PoolResult
from core.pve_writes import WaitParams, run_task
from core.service import OpContext

StorageId = Annotated[
    str,
    Field(
        pattern=r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$",
        max_length=64,
        description="Storage id, e.g. 'local' or 'nas-nfs'.",
    ),
]
Content = Literal["images", "rootdir", "backup", "iso", "vztmpl", "snippets", "import"]


# ------------------------------------------------------------------ storage


class ListStorageParams(_Params):
    node: NodeName | None = Field(
        None, description="Only storages of this node (shared ones included)."
    )
    content: Content | None = Field(None, description="Only storages that hold this content.")


def _pct(s: StorageInfo) -> float:
    return round(100 * s.disk / s.maxdisk, 1) if s.maxdisk else 0.0


@operation(
    "pve_list_storage",
    summary="Storages with type, content types and space used (shared ones once).",
    params=ListStorageParams,
    result=Table,
    read_only=True,
    idempotent=True,
)
async def list_storage(ctx: OpContext, p: ListStorageParams) -> Table:
    """List storages as a table: storage, node (null for a shared storage, listed once),
    type (dir, lvmthin, nfs, ...), content types, used and total bytes, used_pct. Filter by
    node or by content (images, rootdir, backup, iso, vztmpl). From the cached inventory."""
    inventory = await ctx.service.inventory()
    rows: list[list[Any]] = []
    seen: set[str] = set()
    for s in inventory.storages:
        if p.node is not None and s.node != p.node:
            continue
        if p.content is not None and p.content not in s.content.split(","):
            continue
        if s.shared:
            if s.storage in seen:
                continue
            seen.add(s.storage)
        rows.append([s.storage, None if s.shared else s.node, s.plugintype, s.content,
                     s.disk, s.maxdisk, _pct(s), s.status])  # fmt: skip
    columns = ["storage", "node", "type", "content", "used", "total", "used_pct", "status"]
    return Table(columns=columns, rows=rows, total=len(rows))


async def _node_for(ctx: OpContext, storage: str, node: str | None) -> str:
    """The node to ask about ``storage``: the given one, or any online node that has it."""
    inventory = await ctx.service.inventory()
    holders = [s.node for s in inventory.storages if s.storage == storage]
    if not holders:
        names = sorted({s.storage for s in inventory.storages})
        raise NotFound(f"no storage named {storage!r}.", hint=f"Storages: {', '.join(names)}.")
    if node is not None:
        if node not in holders:
            raise NotFound(f"storage {storage!r} is not available on node {node}.",
                           hint=f"It is on: {', '.join(sorted(holders))}.")  # fmt: skip
        return node
    online = {n.node for n in inventory.nodes if n.status == "online"}
    shared = any(s.shared for s in inventory.storages if s.storage == storage)
    if not shared and len(holders) > 1:
        raise InvalidInput(
            f"storage {storage!r} is local to each node; say which node.",
            fields={"node": f"one of {', '.join(sorted(holders))}"},
        )
    return next((n for n in sorted(holders) if n in online), sorted(holders)[0])


CONTENT_COLUMNS = ["volid", "content", "format", "size", "vmid", "ctime", "notes"]


class StorageContentParams(_Params):
    storage: StorageId
    node: NodeName | None = Field(
        None, description="Node to look from; needed for node-local storages like 'local'."
    )
    content: Content | None = Field(None, description="Only this content type.")
    vmid: Vmid | None = Field(None, description="Only volumes of this guest.")
    limit: int | None = Field(None, ge=1, le=10_000, description="At most this many rows.")


async def _content(ctx: OpContext, storage: str, node: str, content: str | None,
                   vmid: int | None) -> list[dict[str, Any]]:  # fmt: skip
    params: dict[str, Any] = {"content": content, "vmid": vmid}
    return list(await ctx.pve.get(f"/nodes/{node}/storage/{storage}/content", params) or [])


@operation(
    "pve_storage_content",
    summary="What a storage holds: disk images, backups, ISOs, templates (volid, size, vmid).",
    params=StorageContentParams,
    result=Table,
    read_only=True,
    idempotent=True,
)
async def storage_content(ctx: OpContext, p: StorageContentParams) -> Table:
    """List the volumes on a storage as a table: volid (e.g. 'local:iso/debian.iso'),
    content type, format, size in bytes, owning vmid, ctime (Unix time) and notes. Filter by
    content (images, rootdir, backup, iso, vztmpl) or vmid. Node-local storages need node."""
    node = await _node_for(ctx, p.storage, p.node)
    items = await _content(ctx, p.storage, node, p.content, p.vmid)
    rows = [[item.get(c) for c in CONTENT_COLUMNS] for item in items]
    shown = rows if p.limit is None else rows[: p.limit]
    return Table(columns=CONTENT_COLUMNS, rows=shown, total=len(rows))


# ------------------------------------------------------------------ backups

BACKUP_COLUMNS = ["volid", "vmid", "size", "ctime", "format", "node", "notes"]


class ListBackupsParams(_Params):
    storage: StorageId | None = Field(
        None, description="Only this storage; default: every storage that holds backups."
    )
    node: NodeName | None = Field(None, description="Only backups visible from this node.")
    vmid: Vmid | None = Field(None, description="Only backups of this guest.")


@operation(
    "pve_list_backups",
    summary="Backup archives (vzdump) on the cluster's storages, newest first.",
    params=ListBackupsParams,
    result=Table,
    read_only=True,
    idempotent=True,
)
async def list_backups(ctx: OpContext, p: ListBackupsParams) -> Table:
    """List backup archives as a table, newest first: volid, vmid, size in bytes, ctime
    (Unix time), format (vma.zst, tar.zst, ...), node (null on shared storage) and notes.
    Filter by storage, node or vmid; without storage every backup storage is searched
    (shared ones once, node-local ones on each node)."""
    inventory = await ctx.service.inventory()
    online = {n.node for n in inventory.nodes if n.status == "online"}
    targets: list[tuple[str, str, bool]] = []
    seen: set[str] = set()
    for s in inventory.storages:
        if "backup" not in s.content.split(",") or s.node not in online:
            continue
        if (p.storage is not None and s.storage != p.storage) or (
            p.node is not None and s.node != p.node
        ):
            continue
        if s.shared:
            if s.storage in seen:
                continue
            seen.add(s.storage)
        targets.append((s.storage, s.node, s.shared))
    if p.storage is not None and not targets:
        raise NotFound(f"no backup storage named {p.storage!r} on an online node.")
    rows: list[list[Any]] = []
    for storage, node, shared in targets:
        for item in await _content(ctx, storage, node, "backup", p.vmid):
            row = {**item, "node": None if shared else node}
            rows.append([row.get(c) for c in BACKUP_COLUMNS])
    rows.sort(key=lambda r: int(r[3] or 0), reverse=True)
    return Table(columns=BACKUP_COLUMNS, rows=rows, total=len(rows))


class BackupParams(WaitParams):
    vmid: list[Vmid] = Field(
        min_length=1, max_length=500, description="Guests to back up, e.g. [100, 101]."
    )
    storage: StorageId | None = Field(
        None, description="Backup storage, e.g. 'nas-nfs'; default: the cluster's default."
    )
    mode: Literal["snapshot", "suspend", "stop"] = Field(
        "snapshot",
        description="snapshot: no downtime (default); suspend: pauses the guest briefly; "
        "stop: stops it for the backup and starts it again.",
    )
    compress: Literal["zstd", "gzip", "lzo", "none"] = Field("zstd", description="Compression.")
    notes: str | None = Field(
        None, max_length=1024, description="Notes on the archive; {{guestname}}, {{vmid}} "
        "and {{node}} are filled in. Needs storage.",
    )  # fmt: skip
    protected: bool = Field(False, description="Protect the archive from pruning. Needs storage.")
    timeout_s: float = Field(1800.0, gt=0, le=3600, description="How long to wait, seconds.")

    @model_validator(mode="after")
    def _needs_storage(self) -> BackupParams:
        if self.storage is None and (self.notes is not None or self.protected):
            raise ValueError("notes and protected need an explicit storage")
        return self


def _check_protected(ctx: OpContext, guests: list[Guest], why: str) -> None:
    for guest in guests:
        rule = ctx.service.policy.protection_of(guest)
        if rule is not None:
            raise PolicyDenied(
                f"guest {guest.vmid} ({guest.name}) is protected by the rule {rule!r}; {why}.",
                hint="Remove the rule from [policy] protected to allow it.",
            )


@operation(
    "pve_backup_guest",
    summary="Back guests up now (vzdump) to a backup storage.",
    params=BackupParams,
    result=BackupResult,
    read_only=False,
)
async def backup_guest(ctx: OpContext, p: BackupParams) -> BackupResult:
    """Back up one or more VMs/containers by vmid with vzdump: one archive per guest on
    storage, mode snapshot (no downtime, default), suspend or stop, zstd compression by
    default. One task per node; waits for them (wait=true, up to timeout_s) with progress
    and returns the new backup volids (see pve_list_backups); wait=false returns the upids.
    Protected guests may be backed up in snapshot mode only."""
    guests = [await ctx.service.find_guest(vmid) for vmid in dict.fromkeys(p.vmid)]
    if p.mode != "snapshot":
        _check_protected(ctx, guests, f"a {p.mode}-mode backup interrupts it")
    by_node: dict[str, list[Guest]] = {}
    for guest in guests:
        by_node.setdefault(guest.node, []).append(guest)
    before: set[str] = set()
    if p.wait and p.storage is not None:
        before = {str(r[0]) for r in (await list_backups(
            ctx, ListBackupsParams(storage=p.storage))).rows}  # fmt: skip
    upids: list[str] = []
    for node, members in sorted(by_node.items()):
        params: dict[str, Any] = {
            "vmid": ",".join(str(g.vmid) for g in members), "storage": p.storage,
            "mode": p.mode, "compress": "0" if p.compress == "none" else p.compress,
            "notes-template": p.notes, "protected": True if p.protected else None,
        }  # fmt: skip
        upids.append(str(await ctx.pve.post(f"/nodes/{node}/vzdump", params)))
    exitstatus: str | None = None
    for upid in upids:
        task = await run_task(ctx, upid, wait=p.wait, timeout_s=p.timeout_s)
        exitstatus = task.get("exitstatus", exitstatus)
    volumes: list[str] = []
    if p.wait:
        listing = await list_backups(ctx, ListBackupsParams(storage=p.storage))
        wanted = {g.vmid for g in guests}
        volumes = [str(r[0]) for r in listing.rows if r[1] in wanted and str(r[0]) not in before]
        if p.storage is None:  # no "before": the newest archive of each guest
            newest: dict[int, str] = {}
            for row in listing.rows:
                newest.setdefault(int(row[1]), str(row[0]))
            volumes = [newest[v] for v in wanted if v in newest]
    names = ", ".join(str(g.vmid) for g in guests)
    done = f"finished: {len(volumes)} archive(s) written" if p.wait else "started"
    return BackupResult(
        vmids=[g.vmid for g in guests], storage=p.storage, mode=p.mode, upids=upids,
        upid=upids[0], waited=p.wait, exitstatus=exitstatus, volumes=sorted(volumes),
        message=f"backup of {names} {done}.",
    )  # fmt: skip


# ------------------------------------------------------------------ pools


class CreatePoolParams(_Params):
    poolid: PoolId = Field(description="Pool name, e.g. 'staging'.")
    comment: str | None = Field(None, max_length=1024, description="What the pool is for.")


@operation(
    "pve_create_pool",
    summary="Create a resource pool.",
    params=CreatePoolParams,
    result=PoolResult,
    read_only=False,
)
async def create_pool(ctx: OpContext, p: CreatePoolParams) -> PoolResult:
    """Create an empty resource pool with an optional comment; add guests with
    pve_update_pool."""
    await ctx.pve.post("/pools", {"poolid": p.poolid, "comment": p.comment})
    return PoolResult(poolid=p.poolid, action="create", changed=True,
                      message=f"pool {p.poolid!r} created.")  # fmt: skip


class UpdatePoolParams(_Params):
    poolid: PoolId = Field(description="The pool to change.")
    vms: list[Vmid] | None = Field(
        None, max_length=1000, description="Guests to add (or, with delete=true, remove)."
    )
    delete: bool = Field(False, description="Remove the guests in vms instead of adding them.")
    allow_move: bool = Field(
        False, description="Move guests that are in another pool (otherwise that is an error)."
    )
    comment: str | None = Field(None, max_length=1024, description="New comment.")

    @model_validator(mode="after")
    def _something(self) -> UpdatePoolParams:
        if not self.vms and self.comment is None:
            raise ValueError("give vms to add/remove, or a comment")
        return self


@operation(
    "pve_update_pool",
    summary="Add guests to a pool, remove them (delete=true), or change its comment.",
    params=UpdatePoolParams,
    result=PoolResult,
    read_only=False,
    idempotent=True,
)
async def update_pool(ctx: OpContext, p: UpdatePoolParams) -> PoolResult:
    """Change a resource pool: add the guests in vms (allow_move=true takes them out of
    their current pool), remove them with delete=true, and/or set the comment. Protected
    guests are not moved in or out of pools."""
    inventory = await ctx.service.inventory()
    if p.poolid not in inventory.pools:
        raise NotFound(f"no pool named {p.poolid!r}.",
                       hint=f"Pools: {', '.join(inventory.pools) or 'none'}.")  # fmt: skip
    guests = [await ctx.service.find_guest(vmid) for vmid in dict.fromkeys(p.vms or [])]
    _check_protected(ctx, guests, "its pool membership is not changed")
    if not p.delete:
        elsewhere = [g for g in guests if g.pool not in (None, p.poolid)]
        if elsewhere and not p.allow_move:
            g = elsewhere[0]
            raise InvalidInput(
                f"guest {g.vmid} ({g.name}) is in pool {g.pool!r}.",
                fields={"allow_move": "pass true to move it into this pool"},
            )
    params: dict[str, Any] = {"poolid": p.poolid, "comment": p.comment}
    if guests:
        params["vms"] = ",".join(str(g.vmid) for g in guests)
        params["delete"] = True if p.delete else None
        params["allow-move"] = True if p.allow_move and not p.delete else None
    await ctx.pve.put("/pools", params)
    what = []
    if guests:
        verb = "removed from" if p.delete else "added to"
        what.append(f"{', '.join(str(g.vmid) for g in guests)} {verb} pool {p.poolid!r}")
    if p.comment is not None:
        what.append(f"comment of {p.poolid!r} set")
    return PoolResult(poolid=p.poolid, action="update", changed=True,
                      message="; ".join(what) + ".")  # fmt: skip


class DeletePoolParams(_Params):
    poolid: PoolId = Field(description="The pool to delete; it must be empty.")


@operation(
    "pve_delete_pool",
    summary="Delete an empty resource pool.",
    params=DeletePoolParams,
    result=PoolResult,
    read_only=False,
    destructive=True,
)
async def delete_pool(ctx: OpContext, p: DeletePoolParams) -> PoolResult:
    """Delete a resource pool. It must be empty: remove its guests and storages first with
    pve_update_pool (delete=true). Permissions granted on the pool go with it."""
    raw = await ctx.pve.get("/pools", {"poolid": p.poolid})
    pool = next(iter(raw or []), None)
    if pool is None:
        raise NotFound(f"no pool named {p.poolid!r}.")
    members = pool.get("members") or []
    if members:
        ids = ", ".join(str(m.get("id")) for m in members[:5])
        raise InvalidInput(
            f"pool {p.poolid!r} is not empty ({len(members)} member(s): {ids}).",
            hint="Remove them with pve_update_pool delete=true first.",
        )
    await ctx.pve.delete("/pools", {"poolid": p.poolid})
    return PoolResult(poolid=p.poolid, action="delete", changed=True,
                      message=f"pool {p.poolid!r} deleted.")  # fmt: skip
