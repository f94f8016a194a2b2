"""SMB and NFS shares (create/update/delete); the 25.04 SMB layout is the legacy one."""

from __future__ import annotations

import errno
from typing import Any

from simulator.truenas import seed as s
from simulator.truenas.catalog import Ctx, arg, check_fields, method
from simulator.truenas.errors import invalid, not_found


def _param(ctx: Ctx, legacy: str) -> str:
    """Attribute prefix: the parameter name (25.04 legacy methods used their schema name)."""
    return legacy if ctx.release == "25.04" else "data"


# ---- shares ----------------------------------------------------------------------------------
def _share_path(ctx: Ctx, path: str, attribute: str) -> str:
    dataset = path.removeprefix("/mnt/")
    if not path.startswith("/mnt/") or dataset not in ctx.state.items["dataset"]:
        raise invalid(attribute, f"{path}: path must point to an existing dataset mountpoint",
                      number=errno.ENOENT)  # fmt: skip
    return dataset


_SMB_FIELDS: dict[str, Any] = {"purpose": str, "name": str, "path": str, "enabled": bool,
                               "comment": str, "readonly": bool, "browsable": bool,
                               "access_based_share_enumeration": bool, "audit": dict,
                               "options": (dict, None)}  # fmt: skip
_SMB_LEGACY: dict[str, Any] = {"purpose": str, "name": str, "path": str, "enabled": bool,
                               "comment": str, "ro": bool, "browsable": bool, "abe": bool,
                               "guestok": bool, "timemachine": bool, "recyclebin": bool,
                               "hostsallow": list, "hostsdeny": list, "auxsmbconf": str,
                               "home": bool, "audit": dict}  # fmt: skip


def _smb_apply(ctx: Ctx, item: dict[str, Any], data: dict[str, Any], prefix: str) -> None:
    if "path" in data:
        item["dataset"] = _share_path(ctx, data["path"], f"{prefix}.path")
    legacy = {"ro": "readonly", "abe": "access_based_share_enumeration"}
    for key, value in data.items():
        key = legacy.get(key, key)
        if key in item and key not in ("id", "purpose" if ctx.release == "25.04" else ""):
            item[key] = value


def _smb_check(ctx: Ctx, data: dict[str, Any], prefix: str, required: tuple[str, ...],
               exclude: int | None) -> None:  # fmt: skip
    check_fields(data, prefix, _SMB_LEGACY if ctx.release == "25.04" else _SMB_FIELDS, required)
    names = {v["name"].lower() for k, v in ctx.state.items["smb"].items() if k != exclude}
    if str(data.get("name", "")).lower() in names:
        raise invalid(f"{prefix}.name", "Share with this name already exists.",
                      number=errno.EEXIST)  # fmt: skip


@method("sharing.smb.create", roles=("SHARING_SMB_WRITE",), args=1)
def smb_create(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    prefix = _param(ctx, "sharingsmb_create")
    data = arg(args, 0, prefix, dict)
    _smb_check(ctx, data, prefix, ("name", "path"), None)
    pk = ctx.state.next_id("smb")
    item = s.smb_share(pk, data["name"], data["path"])
    _smb_apply(ctx, item, data, prefix)
    ctx.state.put("smb", pk, item)
    return ctx.state.render("smb", item)


def _share(ctx: Ctx, key: str, pk: int) -> dict[str, Any]:
    item = ctx.state.items[key].get(pk)
    if item is None:
        raise not_found(f"{key.upper()} share {pk} does not exist")
    return item


@method("sharing.smb.update", roles=("SHARING_SMB_WRITE",), args=2)
def smb_update(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    item = _share(ctx, "smb", arg(args, 0, "id", int))
    prefix = _param(ctx, "sharingsmb_update")
    data = arg(args, 1, prefix, dict)
    _smb_check(ctx, data, prefix, (), item["id"])
    _smb_apply(ctx, item, data, prefix)
    ctx.state.put("smb", item["id"], item)
    return ctx.state.render("smb", item)


def _share_delete(ctx: Ctx, key: str, args: list[Any]) -> bool:
    pk = arg(args, 0, "id", int)
    _share(ctx, key, pk)
    ctx.state.remove(key, pk)
    return True


@method("sharing.smb.delete", roles=("SHARING_SMB_WRITE",), args=1)
def smb_delete(ctx: Ctx, args: list[Any]) -> bool:
    return _share_delete(ctx, "smb", args)


_NFS_FIELDS: dict[str, Any] = {"path": str, "aliases": list, "comment": str, "networks": list,
                               "hosts": list, "ro": bool, "maproot_user": (str, None),
                               "maproot_group": (str, None), "mapall_user": (str, None),
                               "mapall_group": (str, None), "security": list, "enabled": bool,
                               "expose_snapshots": bool}  # fmt: skip


def _nfs_apply(ctx: Ctx, item: dict[str, Any], data: dict[str, Any]) -> None:
    if "path" in data:
        item["dataset"] = _share_path(ctx, data["path"], "data.path")
    item.update(data)


@method("sharing.nfs.create", roles=("SHARING_NFS_WRITE",), args=1)
def nfs_create(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    data = arg(args, 0, "data", dict)
    check_fields(data, "data", _NFS_FIELDS, ("path",))
    pk = ctx.state.next_id("nfs")
    item = s.nfs_share(pk, data["path"], [])
    _nfs_apply(ctx, item, data)
    ctx.state.put("nfs", pk, item)
    return ctx.state.render("nfs", item)


@method("sharing.nfs.update", roles=("SHARING_NFS_WRITE",), args=2)
def nfs_update(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    item = _share(ctx, "nfs", arg(args, 0, "id", int))
    data = arg(args, 1, "data", dict)
    check_fields(data, "data", _NFS_FIELDS)
    _nfs_apply(ctx, item, data)
    ctx.state.put("nfs", item["id"], item)
    return ctx.state.render("nfs", item)


@method("sharing.nfs.delete", roles=("SHARING_NFS_WRITE",), args=1)
def nfs_delete(ctx: Ctx, args: list[Any]) -> bool:
    return _share_delete(ctx, "nfs", args)
