"""TrueNAS datasets and zvols (``truenas_*``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from core.models import Table
from core.ops import columns_of, operation
from core.service import OpContext
from core.truenas_ops import (
    PageParams,
    PoolName,
    _Params,
    dataset_name,
    nas,
    page,
    plain,
    prop,
)
from core.truenas_results import TrueNasChange

# ------------------------------------------------------------------ datasets

DATASET_FIELDS: tuple[str, ...] = (
    "name",
    "type",
    "pool",
    "used",
    "available",
    "compression",
    "compressratio",
    "quota",
    "refquota",
    "readonly",
    "atime",
    "sync",
    "recordsize",
    "volsize",
    "mountpoint",
    "encrypted",
    "locked",
    "comments",
    "usedbysnapshots",
    "deduplication",
    "created",
)
DEFAULT_DATASET_FIELDS: tuple[str, ...] = (
    "name",
    "type",
    "used",
    "available",
    "compression",
    "quota",
)
_SIZES = frozenset({"used", "available", "quota", "refquota", "volsize", "usedbysnapshots"})
_TEXTS = frozenset(
    {"compression", "compressratio", "sync", "recordsize", "deduplication", "comments"}
)

Compression = Literal[
    "LZ4", "ZSTD", "ZSTD-FAST", "GZIP", "GZIP-1", "GZIP-9", "ZLE", "LZJB", "ON", "OFF", "INHERIT"
]
Sync = Literal["STANDARD", "ALWAYS", "DISABLED", "INHERIT"]
RecordSize = Literal[
    "512",
    "1K",
    "2K",
    "4K",
    "8K",
    "16K",
    "32K",
    "64K",
    "128K",
    "256K",
    "512K",
    "1M",
    "2M",
    "4M",
    "8M",
    "16M",
]


def dataset_cell(item: dict[str, Any], column: str) -> Any:
    if column in _SIZES:
        value = prop(item, column)
        if column in ("quota", "refquota") and not value:
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if column in _TEXTS:
        return prop(item, column, "value")
    if column in ("readonly", "atime"):
        return prop(item, column)
    if column == "created":
        return prop(item, "creation")
    return item.get(column)


class ListDatasetsParams(PageParams):
    pool: PoolName | None = Field(None, description="Only datasets of this pool.")
    prefix: str | None = Field(
        None, max_length=200, description="Only this dataset and its children, e.g. tank/media."
    )
    type: Literal["FILESYSTEM", "VOLUME"] | None = Field(
        None, description="FILESYSTEM or VOLUME (zvol)."
    )
    fields: list[str] | None = Field(
        None,
        description="Columns to return. Default: "
        + ", ".join(DEFAULT_DATASET_FIELDS)
        + ". Available: "
        + ", ".join(DATASET_FIELDS)
        + ". Sizes are bytes.",
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return None if value is None else dataset_name(value, child=False)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[str] | None) -> list[str] | None:
        return columns_of(value, DATASET_FIELDS)


def _dataset_filters(pool: str | None, prefix: str | None, kind: str | None) -> list[Any]:
    filters: list[Any] = []
    if pool:
        filters.append(["pool", "=", pool])
    if prefix:
        filters.append(["OR", [["name", "=", prefix], ["name", "^", prefix + "/"]]])
    if kind:
        filters.append(["type", "=", kind])
    return filters


@operation(
    "truenas_list_datasets",
    summary="List datasets and zvols (compact table; filters, fields, paging).",
    params=ListDatasetsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_datasets(ctx: OpContext, p: ListDatasetsParams) -> Table:
    """List ZFS datasets (filesystems) and zvols as a compact table sorted by name: default
    columns name, type, used, available, compression, quota (bytes; quota null = none); ask
    for more with `fields` (e.g. ["name","mountpoint","readonly","comments"]). Filter by
    pool, by prefix (a dataset and everything below it) or type. `total` counts all
    matches; when `next_cursor` is set, call again with it for the next page."""
    client = await nas(ctx)
    items = await client.query(
        "pool.dataset.query",
        _dataset_filters(p.pool, p.prefix, p.type),
        order_by=["name"],
        extra={"flat": True, "retrieve_children": False},
    )
    return page(items, list(p.fields or DEFAULT_DATASET_FIELDS), dataset_cell, p)


def _dataset_item(item: dict[str, Any]) -> dict[str, Any]:
    columns = [*DEFAULT_DATASET_FIELDS, "mountpoint", "readonly", "comments"]
    return {c: plain(dataset_cell(item, c)) for c in columns}


def _onoff(value: bool | None) -> str | None:
    return None if value is None else ("ON" if value else "OFF")


class CreateDatasetParams(_Params):
    name: str = Field(
        max_length=200, description="Full name of the new dataset, e.g. tank/media/music."
    )
    type: Literal["FILESYSTEM", "VOLUME"] = Field(
        "FILESYSTEM", description="FILESYSTEM (a dataset) or VOLUME (a zvol, needs volsize)."
    )
    volsize: int | None = Field(
        None,
        ge=1 << 20,
        le=1 << 60,
        validate_default=True,
        description="Size of a VOLUME in bytes (required for volumes, only for them).",
    )
    comments: str | None = Field(None, max_length=1024, description="Free text.")
    compression: Compression | None = Field(None, description="Default: inherited.")
    quota: int | None = Field(
        None, ge=0, le=1 << 62, description="Quota in bytes (filesystems only); 0 = none."
    )
    readonly: bool | None = Field(None, description="Refuse writes to the dataset.")
    atime: bool | None = Field(None, description="Update access times (filesystems only).")
    sync: Sync | None = Field(
        None, description="Sync writes: STANDARD, ALWAYS, DISABLED or INHERIT."
    )
    recordsize: RecordSize | None = Field(None, description="Filesystems only, e.g. 1M.")
    share_type: Literal["GENERIC", "SMB", "NFS", "MULTIPROTOCOL", "APPS"] | None = Field(
        None, description="Preset ACL/case settings for the intended use (filesystems only)."
    )
    create_ancestors: bool = Field(False, description="Create missing parent datasets too.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dataset_name(value, child=True)

    @field_validator("volsize")
    @classmethod
    def _volsize(cls, value: int | None, info: ValidationInfo) -> int | None:
        volume = info.data.get("type") == "VOLUME"
        if volume and value is None:
            raise ValueError("a VOLUME needs volsize (bytes)")
        if not volume and value is not None:
            raise ValueError("volsize is only for type VOLUME")
        return value

    @field_validator("quota", "atime", "recordsize", "share_type")
    @classmethod
    def _filesystem_only(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("type") == "VOLUME":
            raise ValueError("only for filesystems, not for a VOLUME")
        return value


@operation(
    "truenas_create_dataset",
    summary="Create a dataset (filesystem) or zvol.",
    params=CreateDatasetParams,
    result=TrueNasChange,
    read_only=False,
    backend="truenas",
)
async def create_dataset(ctx: OpContext, p: CreateDatasetParams) -> TrueNasChange:
    """Create a ZFS dataset (type FILESYSTEM, mounted under /mnt/<name>) or a zvol (type
    VOLUME with volsize bytes). Its parent must exist unless create_ancestors=true.
    Unset properties are inherited from the parent. Returns the new dataset."""
    body: dict[str, Any] = {"name": p.name, "type": p.type}
    optional = {
        "volsize": p.volsize,
        "comments": p.comments,
        "compression": p.compression,
        "quota": p.quota or None,
        "readonly": _onoff(p.readonly),
        "atime": _onoff(p.atime),
        "sync": p.sync,
        "recordsize": p.recordsize,
        "share_type": p.share_type,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if p.create_ancestors:
        body["create_ancestors"] = True
    client = await nas(ctx)
    item = await client.call("pool.dataset.create", body)
    return TrueNasChange(
        action="create",
        target=p.name,
        changed=True,
        item=_dataset_item(item),
        message=f"{p.type.lower()} {p.name} created.",
    )


class UpdateDatasetParams(_Params):
    name: str = Field(max_length=200, description="The dataset to change, e.g. tank/media.")
    comments: str | None = Field(None, max_length=1024, description="Free text.")
    compression: Compression | None = Field(None, description="Compression algorithm.")
    quota: int | None = Field(None, ge=0, le=1 << 62, description="Bytes; 0 removes the quota.")
    readonly: bool | None = Field(None, description="Refuse writes to the dataset.")
    atime: bool | None = Field(None, description="Update access times (filesystems only).")
    sync: Sync | None = Field(
        None, description="Sync writes: STANDARD, ALWAYS, DISABLED or INHERIT."
    )
    recordsize: RecordSize | None = Field(None, description="Filesystems only, e.g. 1M.")
    volsize: int | None = Field(None, ge=1 << 20, le=1 << 60, description="zvols only: grow it.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dataset_name(value, child=False)

    @model_validator(mode="after")
    def _something(self) -> UpdateDatasetParams:
        if all(getattr(self, f) is None for f in type(self).model_fields if f != "name"):
            raise ValueError("give at least one property to change")
        return self


@operation(
    "truenas_update_dataset",
    summary="Change properties of a dataset or zvol (compression, quota, readonly…).",
    params=UpdateDatasetParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def update_dataset(ctx: OpContext, p: UpdateDatasetParams) -> TrueNasChange:
    """Set properties of an existing dataset or zvol: comments, compression (INHERIT takes
    the parent's), quota in bytes (0 removes it), readonly, atime, sync, recordsize, or a
    zvol's volsize (grow only). Properties not given are left unchanged."""
    body: dict[str, Any] = {
        "comments": p.comments,
        "compression": p.compression,
        "readonly": _onoff(p.readonly),
        "atime": _onoff(p.atime),
        "sync": p.sync,
        "recordsize": p.recordsize,
        "volsize": p.volsize,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if p.quota is not None:
        body["quota"] = p.quota or None
    client = await nas(ctx)
    item = await client.call("pool.dataset.update", p.name, body)
    return TrueNasChange(
        action="update",
        target=p.name,
        changed=True,
        item=_dataset_item(item),
        message=f"{p.name} updated: {', '.join(sorted(body))}.",
    )


class DeleteDatasetParams(_Params):
    name: str = Field(max_length=200, description="The dataset or zvol to delete, e.g. tank/old.")
    recursive: bool = Field(False, description="Also delete its child datasets.")
    force: bool = Field(False, description="Delete even if busy (unmount by force).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dataset_name(value, child=True)


@operation(
    "truenas_delete_dataset",
    summary="Delete a dataset or zvol with all its data and snapshots (irreversible).",
    params=DeleteDatasetParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    backend="truenas",
)
async def delete_dataset(ctx: OpContext, p: DeleteDatasetParams) -> TrueNasChange:
    """Destroy a dataset or zvol: its files, its snapshots and (recursive=true) every
    child dataset are gone for good. A dataset with children is refused unless
    recursive=true. A pool's root dataset cannot be deleted."""
    client = await nas(ctx)
    await client.call("pool.dataset.delete", p.name, {"recursive": p.recursive, "force": p.force})
    extent = " and its children" if p.recursive else ""
    return TrueNasChange(
        action="delete", target=p.name, changed=True, message=f"{p.name}{extent} deleted."
    )
