"""TrueNAS ZFS snapshots (``truenas_*``). The method names differ per release (25.04 has
``zfs.snapshot.*``, later releases ``pool.snapshot.*``): they come from ``client.methods``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from core.errors import InvalidInput, NotFound
from core.models import Table
from core.ops import operation
from core.service import OpContext
from core.truenas_ops import (
    SNAPNAME_RE,
    PageParams,
    _Params,
    dataset_name,
    names,
    nas,
    page,
    plain,
    snapshot_id,
)
from core.truenas_results import TrueNasChange

# ------------------------------------------------------------------ snapshots

SNAPSHOT_COLUMNS = ["name", "dataset", "created", "used", "referenced"]


def _snap_number(item: dict[str, Any], key: str) -> int | None:
    raw = ((item.get("properties") or {}).get(key) or {}).get("rawvalue")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def snapshot_cell(item: dict[str, Any], column: str) -> Any:
    if column in ("used", "referenced"):
        return _snap_number(item, column)
    if column == "created":
        parsed = ((item.get("properties") or {}).get("creation") or {}).get("parsed")
        if isinstance(parsed, datetime):
            return parsed
        stamp = _snap_number(item, "creation")
        return datetime.fromtimestamp(stamp, UTC) if stamp is not None else parsed
    return item.get(column)


def _txg(item: dict[str, Any]) -> int:
    raw = str(item.get("createtxg") or "0")
    return int(raw) if raw.isdigit() else 0


class ListSnapshotsParams(PageParams):
    dataset: str | None = Field(
        None, max_length=200, description="Only snapshots of this dataset, e.g. tank/home."
    )
    recursive: bool = Field(False, description="With dataset: also its children's snapshots.")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str | None) -> str | None:
        return None if value is None else dataset_name(value, child=False)


async def _snapshots(ctx: OpContext, dataset: str | None, recursive: bool) -> list[Any]:
    client = await nas(ctx)
    filters: list[Any] = []
    if dataset and recursive:
        filters.append(["OR", [["dataset", "=", dataset], ["dataset", "^", dataset + "/"]]])
    elif dataset:
        filters.append(["dataset", "=", dataset])
    items = list(await client.query(names(client).snapshot_query, filters))
    items.sort(key=lambda s: (str(s.get("dataset")), _txg(s)))
    return items


@operation(
    "truenas_list_snapshots",
    summary="List ZFS snapshots (compact table; filter by dataset; paging).",
    params=ListSnapshotsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_snapshots(ctx: OpContext, p: ListSnapshotsParams) -> Table:
    """List snapshots as a table (name as dataset@snapshot, dataset, created, used and
    referenced bytes), oldest first per dataset. Filter by dataset (recursive=true adds
    its children). `total` counts all matches; pass `next_cursor` back for the next page."""
    return page(await _snapshots(ctx, p.dataset, p.recursive), SNAPSHOT_COLUMNS, snapshot_cell, p)


class CreateSnapshotParams(_Params):
    dataset: str = Field(max_length=200, description="Dataset or zvol to snapshot, e.g. tank/home.")
    name: str = Field(max_length=200, description="Snapshot name, e.g. before-upgrade.")
    recursive: bool = Field(False, description="Also snapshot every child dataset (same name).")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return dataset_name(value, child=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SNAPNAME_RE.fullmatch(value):
            raise ValueError("letters, digits and _ . : - only (1-200 characters)")
        return value


@operation(
    "truenas_create_snapshot",
    summary="Take a ZFS snapshot of a dataset (optionally of its children too).",
    params=CreateSnapshotParams,
    result=TrueNasChange,
    read_only=False,
    backend="truenas",
)
async def create_snapshot(ctx: OpContext, p: CreateSnapshotParams) -> TrueNasChange:
    """Take a read-only, point-in-time snapshot dataset@name (instant, uses no space at
    first). recursive=true snapshots every child dataset with the same name. Returns the
    snapshot."""
    client = await nas(ctx)
    item = await client.call(
        names(client).snapshot_create,
        {"dataset": p.dataset, "name": p.name, "recursive": p.recursive},
    )
    ident = f"{p.dataset}@{p.name}"
    row = (
        {c: plain(snapshot_cell(item, c)) for c in SNAPSHOT_COLUMNS}
        if isinstance(item, dict)
        else None
    )
    return TrueNasChange(
        action="create", target=ident, changed=True, item=row, message=f"snapshot {ident} created."
    )


class SnapshotParams(_Params):
    snapshot: str = Field(
        max_length=401, description="The snapshot as dataset@name, e.g. tank/home@before-upgrade."
    )

    @field_validator("snapshot")
    @classmethod
    def _snapshot(cls, value: str) -> str:
        return snapshot_id(value)


class DeleteSnapshotParams(SnapshotParams):
    recursive: bool = Field(False, description="Also delete same-named snapshots of children.")


@operation(
    "truenas_delete_snapshot",
    summary="Delete a ZFS snapshot (its data can no longer be restored).",
    params=DeleteSnapshotParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    backend="truenas",
)
async def delete_snapshot(ctx: OpContext, p: DeleteSnapshotParams) -> TrueNasChange:
    """Destroy one snapshot (dataset@name); the state it kept is no longer recoverable and
    its space is freed. recursive=true also destroys the same-named snapshots of child
    datasets."""
    client = await nas(ctx)
    await client.call(names(client).snapshot_delete, p.snapshot, {"recursive": p.recursive})
    return TrueNasChange(
        action="delete", target=p.snapshot, changed=True, message=f"snapshot {p.snapshot} deleted."
    )


class RollbackParams(SnapshotParams):
    destroy_newer: bool = Field(
        False, description="Required when newer snapshots exist: they are destroyed too."
    )
    force: bool = Field(False, description="Unmount the dataset by force if it is busy.")


@operation(
    "truenas_rollback_snapshot",
    summary="Roll a dataset back to a snapshot (later changes are lost).",
    params=RollbackParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    backend="truenas",
)
async def rollback_snapshot(ctx: OpContext, p: RollbackParams) -> TrueNasChange:
    """Return a dataset to the state of one of its snapshots: every change written since
    is lost. If newer snapshots exist it is refused unless destroy_newer=true, which
    destroys them too (they are listed in the refusal)."""
    dataset = p.snapshot.partition("@")[0]
    items = await _snapshots(ctx, dataset, False)
    target = next((s for s in items if s.get("name") == p.snapshot), None)
    if target is None:
        raise NotFound(
            f"no snapshot {p.snapshot}.",
            hint=f"List them with truenas_list_snapshots dataset={dataset}.",
        )
    newer = [str(s.get("name")) for s in items if _txg(s) > _txg(target)]
    if newer and not p.destroy_newer:
        shown = ", ".join(newer[:5]) + (" …" if len(newer) > 5 else "")
        raise InvalidInput(
            f"{dataset} has {len(newer)} snapshot(s) newer than {p.snapshot} ({shown}); a "
            "rollback destroys them.",
            fields={"destroy_newer": "must be true to destroy the newer snapshots"},
            hint="Pass destroy_newer=true if that is intended.",
        )
    client = await nas(ctx)
    await client.call(
        names(client).snapshot_rollback,
        p.snapshot,
        {"recursive": p.destroy_newer, "force": p.force},
    )
    lost = f"; destroyed {len(newer)} newer snapshot(s)" if newer else ""
    return TrueNasChange(
        action="rollback",
        target=p.snapshot,
        changed=True,
        item={c: plain(snapshot_cell(target, c)) for c in SNAPSHOT_COLUMNS},
        message=f"{dataset} rolled back to {p.snapshot}{lost}.",
    )
