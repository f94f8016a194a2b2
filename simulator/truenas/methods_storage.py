"""Pools, scrubs, datasets, snapshots (three generations of names), shares and iSCSI."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from typing import Any

from simulator.truenas import seed as s
from simulator.truenas.catalog import (
    FROM_2510,
    Ctx,
    arg,
    check_fields,
    method,
    query_method,
)
from simulator.truenas.errors import call_error, invalid, not_found
from simulator.truenas.jobs import JobPlan

query_method("pool.query", "pool", "POOL_READ")
query_method("pool.scrub.query", "scrub", "POOL_SCRUB_READ")
query_method("pool.dataset.query", "dataset", "DATASET_READ")
query_method("pool.snapshot.query", "snapshot", "SNAPSHOT_READ", releases=FROM_2510)
query_method("zfs.snapshot.query", "snapshot", "SNAPSHOT_READ", releases=("25.04",),
             private_in=("25.10",))  # fmt: skip
query_method("sharing.smb.query", "smb", "SHARING_SMB_READ")
query_method("sharing.nfs.query", "nfs", "SHARING_NFS_READ")
query_method("iscsi.target.query", "iscsi_target", "SHARING_ISCSI_TARGET_READ")
query_method("iscsi.extent.query", "iscsi_extent", "SHARING_ISCSI_EXTENT_READ")

COMPRESSION = ("ON", "OFF", "LZ4", "GZIP", "GZIP-1", "GZIP-9", "ZSTD", "ZSTD-FAST", "ZLE", "LZJB",
               "INHERIT")  # fmt: skip
_ONOFF = ("ON", "OFF", "INHERIT")


def _now(ctx: Ctx) -> datetime:
    return datetime.fromtimestamp(ctx.jobs.clock.now(), UTC)


# ---- scrub -----------------------------------------------------------------------------------
def _scrub_plan(ctx: Ctx, pool: dict[str, Any], action: str) -> JobPlan:
    started = _now(ctx)
    if action != "START":

        def halt() -> None:
            pool["scan"]["state"] = "CANCELED"
            ctx.state.put("pool", pool["id"], pool)

        return JobPlan(f"Scrub {action.lower()} {pool['name']}", 0.5, halt, transient=True)

    pool["scan"] = {**pool["scan"], "state": "SCANNING", "start_time": started, "end_time": None,
                    "percentage": 0.0, "bytes_processed": 0, "bytes_issued": 0}  # fmt: skip
    ctx.state.put("pool", pool["id"], pool)

    def finish() -> None:
        pool["scan"].update(
            state="FINISHED",
            end_time=_now(ctx),
            percentage=100.0,
            bytes_processed=pool["allocated"],
            bytes_issued=pool["allocated"],
        )
        ctx.state.put("pool", pool["id"], pool)

    return JobPlan(f"Scrub of pool {pool['name']}", 20.0, finish,
                   ("Scrubbing", "Scrubbing", "Scrubbing"), abortable=True)  # fmt: skip


def _pool_by(ctx: Ctx, field: str, value: Any) -> dict[str, Any]:
    for pool in ctx.state.items["pool"].values():
        if pool[field] == value:
            return pool
    raise not_found(f"Pool {value} does not exist")


@method("pool.scrub", roles=("POOL_WRITE",), job=True, args=2)
def pool_scrub(ctx: Ctx, args: list[Any]) -> JobPlan:
    pool = _pool_by(ctx, "id", arg(args, 0, "id", int))
    action = arg(args, 1, "action", str)
    if action not in ("START", "STOP", "PAUSE"):
        raise invalid("action", "Input should be 'START', 'STOP' or 'PAUSE'")
    return _scrub_plan(ctx, pool, action)


@method("pool.scrub.scrub", roles=("POOL_WRITE",), job=True, args=2)
def pool_scrub_scrub(ctx: Ctx, args: list[Any]) -> JobPlan:
    pool = _pool_by(ctx, "name", arg(args, 0, "name", str))
    return _scrub_plan(ctx, pool, arg(args, 1, "action", str, default="START"))


@method("zpool.scrub.run", roles=("POOL_WRITE",), job=True, args=1, releases=("26",))
def zpool_scrub_run(ctx: Ctx, args: list[Any]) -> JobPlan:
    data = arg(args, 0, "data", dict)
    check_fields(data, "data", {"pool_name": str, "scan_type": str, "action": str,
                                "threshold": int}, ("pool_name",),
                 {"action": ("START", "PAUSE", "CANCEL")})  # fmt: skip
    action = data.get("action", "START")
    return _scrub_plan(ctx, _pool_by(ctx, "name", data["pool_name"]),
                       "STOP" if action == "CANCEL" else action)  # fmt: skip


# ---- datasets --------------------------------------------------------------------------------
_DATASET_COMMON: dict[str, Any] = {
    "comments": str, "sync": str, "compression": str, "atime": str, "readonly": str,
    "quota": (int, None), "refquota": (int, None), "recordsize": str, "snapdir": str,
    "exec": str, "copies": (int, str), "deduplication": str, "checksum": str,
    "user_properties": list, "aclmode": str, "acltype": str, "managedby": str,
    "quota_warning": (int, str), "quota_critical": (int, str), "refquota_warning": (int, str),
    "refquota_critical": (int, str), "reservation": int, "refreservation": int,
    "special_small_block_size": (int, str), "snapdev": str, "create_ancestors": bool,
    "volsize": int, "force_size": bool,
}  # fmt: skip
_DATASET_CREATE: dict[str, Any] = {
    **_DATASET_COMMON, "name": str, "type": str, "casesensitivity": str, "share_type": str,
    "encryption": bool, "inherit_encryption": bool, "encryption_options": dict, "sparse": bool,
    "volblocksize": str,
}  # fmt: skip
_DATASET_CHOICES: dict[str, tuple[Any, ...]] = {
    "compression": COMPRESSION, "atime": _ONOFF, "readonly": _ONOFF, "exec": _ONOFF,
    "sync": ("STANDARD", "ALWAYS", "DISABLED", "INHERIT"), "type": ("FILESYSTEM", "VOLUME"),
    "snapdir": ("DISABLED", "VISIBLE", "HIDDEN", "INHERIT"),
}  # fmt: skip


def _param(ctx: Ctx, legacy: str) -> str:
    """Attribute prefix: the parameter name (25.04 legacy methods used their schema name)."""
    return legacy if ctx.release == "25.04" else "data"


def _apply_dataset(raw: dict[str, Any], data: dict[str, Any]) -> None:
    for key in ("comments", "quota", "refquota", "recordsize", "volsize"):
        if key in data:
            raw[key] = data[key] or None if key in ("quota", "refquota") else data[key]
    for key in ("compression", "sync", "snapdir"):
        if key in data and data[key] != "INHERIT":
            raw[key] = data[key]
    for key in ("readonly", "atime"):
        if key in data and data[key] != "INHERIT":
            raw[key] = data[key] == "ON"
    for prop in data.get("user_properties", []):
        raw["user_properties"][prop["key"]] = {"value": prop["value"], "source": "LOCAL"}
    for prop in data.get("user_properties_update", []):
        if prop.get("remove"):
            raw["user_properties"].pop(prop["key"], None)
        else:
            raw["user_properties"][prop["key"]] = {"value": prop["value"], "source": "LOCAL"}


@method("pool.dataset.create", roles=("DATASET_WRITE",), args=1)
def dataset_create(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    prefix = _param(ctx, "pool_dataset_create")
    data = arg(args, 0, prefix, dict)
    check_fields(data, prefix, _DATASET_CREATE, ("name",), _DATASET_CHOICES)
    datasets = ctx.state.items["dataset"]
    name = data["name"]
    kind = data.get("type", "FILESYSTEM")
    if kind == "VOLUME" and "volsize" not in data:
        raise invalid(f"{prefix}.volsize", "This field is required for a volume")
    if name in datasets:
        raise invalid(f"{prefix}.name", f"Path {name} already exists", number=errno.EEXIST)
    parent = name.rpartition("/")[0]
    ancestors: list[str] = []  # missing ones create_ancestors makes, nearest first
    while data.get("create_ancestors") and "/" in parent and parent not in datasets:
        ancestors.append(parent)
        parent = parent.rpartition("/")[0]
    if not parent or parent not in datasets:
        raise invalid(f"{prefix}.name", f"Parent dataset {parent or name!r} does not exist",
                      number=errno.ENOENT)  # fmt: skip
    if datasets[parent]["type"] == "VOLUME":
        raise invalid(f"{prefix}.name", "Parent dataset cannot be a volume")
    for ancestor in reversed(ancestors):  # plain filesystems inheriting from their parent
        ctx.state.put("dataset", ancestor, s.dataset_raw(
            ancestor, used=96 * 1024, avail=datasets[parent]["available"], created=_now(ctx),
            compression=datasets[parent]["compression"]))  # fmt: skip
    raw = s.dataset_raw(name, used=96 * 1024, avail=datasets[parent]["available"],
                        created=_now(ctx), kind=kind, volsize=data.get("volsize"),
                        compression=datasets[parent]["compression"])  # fmt: skip
    _apply_dataset(raw, data)
    ctx.state.put("dataset", name, raw)
    return ctx.state.render("dataset", raw)


def _dataset(ctx: Ctx, name: str) -> dict[str, Any]:
    raw = ctx.state.items["dataset"].get(name)
    if raw is None:
        raise not_found(f"PoolDataset {name} does not exist")
    return raw


@method("pool.dataset.update", roles=("DATASET_WRITE",), args=2)
def dataset_update(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    raw = _dataset(ctx, arg(args, 0, "id", str))
    prefix = _param(ctx, "pool_dataset_update")
    data = arg(args, 1, prefix, dict)
    fields = {**_DATASET_COMMON, "user_properties_update": list}
    check_fields(data, prefix, fields, (), _DATASET_CHOICES)
    if "volsize" in data and raw["type"] != "VOLUME":
        raise invalid(f"{prefix}.volsize", "This field is only valid for a volume")
    _apply_dataset(raw, data)
    ctx.state.put("dataset", raw["name"], raw)
    return ctx.state.render("dataset", raw)


@method("pool.dataset.delete", roles=("DATASET_DELETE",), args=2)
def dataset_delete(ctx: Ctx, args: list[Any]) -> bool:
    name = arg(args, 0, "id", str)
    _dataset(ctx, name)
    opts = arg(args, 1, "options", dict, default={})
    check_fields(opts, "options", {"recursive": bool, "force": bool})
    if "/" not in name:
        raise call_error(errno.EINVAL, "The root dataset of a pool cannot be deleted")
    children = [d for d in ctx.state.items["dataset"] if d.startswith(name + "/")]
    if children and not opts.get("recursive"):
        raise call_error(errno.EBUSY, f"Failed to delete dataset: cannot destroy {name!r}: "
                         "filesystem has children; use 'recursive' to destroy them")  # fmt: skip
    for child in sorted([*children, name], reverse=True):
        for snap in [k for k in ctx.state.items["snapshot"] if k.startswith(child + "@")]:
            ctx.state.remove("snapshot", snap)
        ctx.state.remove("dataset", child)
    return True


# ---- snapshots -------------------------------------------------------------------------------
def _snap_create(ctx: Ctx, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    dataset = data["dataset"]
    if dataset not in ctx.state.items["dataset"]:
        raise invalid(f"{prefix}.dataset", f"Dataset {dataset} does not exist",
                      number=errno.ENOENT)  # fmt: skip
    now = _now(ctx)
    if data.get("name"):
        name = str(data["name"])
    elif data.get("naming_schema"):
        name = now.strftime(str(data["naming_schema"]))
    else:
        raise invalid(f"{prefix}.name", "Either name or naming_schema must be provided")
    ident = f"{dataset}@{name}"
    if ident in ctx.state.items["snapshot"]:
        raise invalid(f"{prefix}.name", f"Snapshot {ident} already exists", number=errno.EEXIST)
    ctx.state.txg += 17
    item = s.snapshot(dataset, name, txg=ctx.state.txg, created=now, used=0)
    ctx.state.put("snapshot", ident, item)
    return item


def _snap(ctx: Ctx, ident: str) -> dict[str, Any]:
    item = ctx.state.items["snapshot"].get(ident)
    if item is None:
        raise not_found(f"ZFS snapshot {ident} does not exist")
    return item


def _snap_rollback(ctx: Ctx, ident: str, recursive: bool) -> None:
    target = _snap(ctx, ident)
    txg = int(target["createtxg"])
    newer = [
        k
        for k, v in ctx.state.items["snapshot"].items()
        if v["dataset"] == target["dataset"] and int(v["createtxg"]) > txg
    ]
    if newer and not recursive:
        raise call_error(errno.EFAULT, f"cannot rollback to {ident!r}: more recent snapshots or "
                         "bookmarks exist; use 'recursive' to destroy them")  # fmt: skip
    for key in newer:
        ctx.state.remove("snapshot", key)
    raw = ctx.state.items["dataset"][target["dataset"]]
    ctx.state.put("dataset", raw["name"], raw)


_SNAP_FIELDS: dict[str, Any] = {"dataset": str, "name": str, "naming_schema": str,
                                "recursive": bool, "exclude": list, "vmware_sync": bool,
                                "properties": dict, "suspend_vms": bool}  # fmt: skip
_DELETE_OPTS: dict[str, Any] = {"defer": bool, "recursive": bool}
_ROLLBACK_OPTS: dict[str, Any] = {"recursive": bool, "recursive_clones": bool, "force": bool,
                                  "recursive_rollback": bool}  # fmt: skip


def _register_snapshots(ns: str, releases: tuple[str, ...], private: tuple[str, ...],
                        create_param: str) -> None:  # fmt: skip
    def create(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
        data = arg(args, 0, create_param, dict)
        fields = dict(_SNAP_FIELDS)
        if ctx.release == "25.10" and ns == "pool.snapshot":
            fields.pop("suspend_vms")
        check_fields(data, create_param, fields, ("dataset",))
        return ctx.state.render("snapshot", _snap_create(ctx, data, create_param))

    def delete(ctx: Ctx, args: list[Any]) -> bool:
        ident = arg(args, 0, "id", str)
        check_fields(arg(args, 1, "options", dict, default={}), "options", _DELETE_OPTS)
        _snap(ctx, ident)
        ctx.state.remove("snapshot", ident)
        return True

    def rollback(ctx: Ctx, args: list[Any]) -> None:
        ident = arg(args, 0, "id", str)
        opts = arg(args, 1, "options", dict, default={})
        check_fields(opts, "options", _ROLLBACK_OPTS)
        _snap_rollback(ctx, ident, bool(opts.get("recursive")))

    write = ("SNAPSHOT_WRITE",)
    rollback_roles = ("POOL_WRITE", "SNAPSHOT_WRITE") if ns == "pool.snapshot" else ()
    method(f"{ns}.create", roles=write, args=1, releases=releases, private_in=private)(create)
    method(f"{ns}.delete", roles=("SNAPSHOT_DELETE",), args=2, releases=releases,
           private_in=private)(delete)  # fmt: skip
    method(f"{ns}.rollback", roles=rollback_roles, args=2, releases=releases,
           private_in=private)(rollback)  # fmt: skip


_register_snapshots("pool.snapshot", FROM_2510, (), "data")
_register_snapshots("zfs.snapshot", ("25.04",), ("25.10",), "snapshot_create")


def _resource(item: dict[str, Any]) -> dict[str, Any]:
    """zfs.resource.snapshot.* (26) entries: numeric txg/guid, raw/value property pairs."""
    props = {k: {"raw": v["rawvalue"], "source": None, "value": v["rawvalue"]}
             for k, v in item["properties"].items()}  # fmt: skip
    return {"createtxg": int(item["createtxg"]), "guid": abs(hash(item["id"])) % 2**63,
            "name": item["name"], "pool": item["pool"], "dataset": item["dataset"],
            "snapshot_name": item["snapshot_name"], "type": "SNAPSHOT", "holds": None,
            "properties": props, "user_properties": None}  # fmt: skip


@method("zfs.resource.snapshot.query", roles=("SNAPSHOT_READ",), args=1, releases=("26",),
        read_only=True)  # fmt: skip
def resource_snapshot_query(ctx: Ctx, args: list[Any]) -> list[dict[str, Any]]:
    data = arg(args, 0, "data", dict, default={})
    check_fields(
        data,
        "data",
        {
            "paths": list,
            "recursive": bool,
            "properties": (list, None),
            "get_user_properties": bool,
            "get_source": bool,
            "get_holds": bool,
            "min_txg": int,
            "max_txg": int,
        },
    )
    paths = data.get("paths") or []
    out = []
    for item in ctx.state.items["snapshot"].values():
        ds = item["dataset"]
        hit = (
            not paths
            or item["id"] in paths
            or ds in paths
            or (data.get("recursive") and any(ds.startswith(p + "/") for p in paths))
        )
        if hit:
            out.append(_resource(item))
    return out


@method("zfs.resource.snapshot.create", roles=("SNAPSHOT_WRITE",), args=1, releases=("26",))
def resource_snapshot_create(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    data = arg(args, 0, "data", dict)
    check_fields(
        data,
        "data",
        {"dataset": str, "name": str, "recursive": bool, "exclude": list, "user_properties": dict},
        ("dataset", "name"),
    )
    return _resource(_snap_create(ctx, data, "data"))


@method("zfs.resource.snapshot.destroy", roles=("SNAPSHOT_DELETE",), args=1, releases=("26",))
def resource_snapshot_destroy(ctx: Ctx, args: list[Any]) -> None:
    data = arg(args, 0, "data", dict)
    check_fields(data, "data", {"path": str, "recursive": bool, "all_snapshots": bool,
                                "defer": bool}, ("path",))  # fmt: skip
    _snap(ctx, data["path"])
    ctx.state.remove("snapshot", data["path"])


@method("zfs.resource.snapshot.rollback", roles=("SNAPSHOT_WRITE",), args=1, releases=("26",))
def resource_snapshot_rollback(ctx: Ctx, args: list[Any]) -> None:
    data = arg(args, 0, "data", dict)
    check_fields(data, "data", {"path": str, **_ROLLBACK_OPTS}, ("path",))
    _snap_rollback(ctx, data["path"], bool(data.get("recursive")))
