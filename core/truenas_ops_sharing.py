"""TrueNAS SMB/NFS shares, iSCSI targets and extents, users and groups (``truenas_*``).

25.04 serves SMB shares in the legacy layout (``ro``, ``abe``); later releases use
``readonly`` and ``access_based_share_enumeration``. Both are read and written here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from core.errors import NotFound
from core.models import Table
from core.ops import operation
from core.service import OpContext
from core.truenas import TrueNasClient
from core.truenas_ops import PageParams, _Params, mnt_path, nas, page, plain
from core.truenas_results import IscsiListing, TrueNasChange

# ------------------------------------------------------------------ shares

SHARE_COLUMNS = ["kind", "id", "name", "path", "enabled", "readonly", "comment", "clients"]
_SMB_FORBIDDEN = set('\\/[]:|<>+=;,*?"%')
_HOST_RE = re.compile(r"^[A-Za-z0-9*?\[\]][A-Za-z0-9.*?:_\[\]-]{0,252}$")

ShareId = Annotated[
    int, Field(ge=1, le=2**31 - 1, description="Share id (from truenas_list_shares).")
]


def _legacy(client: TrueNasClient) -> bool:
    return client.release == "25.04"


def share_cell(share: dict[str, Any], column: str) -> Any:
    smb = share.get("_kind") == "smb"
    if column == "kind":
        return share.get("_kind")
    if column == "name":
        return share.get("name") if smb else share.get("path")
    if column == "readonly":
        return share.get("readonly", share.get("ro"))
    if column == "clients":
        if smb:
            opts = share.get("options") or {}
            allow = share.get("hostsallow", opts.get("hostsallow")) or []
            return ", ".join(allow) or "any"
        return ", ".join([*(share.get("networks") or []), *(share.get("hosts") or [])]) or "any"
    return share.get(column)


class ListSharesParams(PageParams):
    kind: Literal["smb", "nfs", "all"] = Field("all", description="smb, nfs or all.")


@operation(
    "truenas_list_shares",
    summary="List SMB and NFS shares (compact table).",
    params=ListSharesParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_shares(ctx: OpContext, p: ListSharesParams) -> Table:
    """List file shares as a table: kind (smb/nfs), id, name (the SMB share name, or the
    path for NFS), path, enabled, readonly, comment and clients (allowed hosts/networks,
    'any' if unrestricted). Use the kind and id to update or delete a share."""
    client = await nas(ctx)
    shares: list[dict[str, Any]] = []
    for kind in ("smb", "nfs"):
        if p.kind in (kind, "all"):
            items = await client.query(f"sharing.{kind}.query", order_by=["id"])
            shares += [{**item, "_kind": kind} for item in items]
    return page(shares, SHARE_COLUMNS, share_cell, p)


def _share_item(kind: str, item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    return {c: plain(share_cell({**item, "_kind": kind}, c)) for c in SHARE_COLUMNS}


def smb_name(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError("no leading or trailing spaces, and not empty")
    if any(ch in _SMB_FORBIDDEN or ord(ch) < 32 for ch in value):
        raise ValueError('these characters are not allowed: \\ / [ ] : | < > + = ; , * ? " %')
    if value.lower() in ("global", "printers", "ipc$"):
        raise ValueError(f"{value!r} is reserved by Samba")
    return value


class _SmbFields(_Params):
    comment: str | None = Field(None, max_length=1024, description="Shown to clients.")
    readonly: bool | None = Field(None, description="Clients may only read.")
    browsable: bool | None = Field(None, description="Shown in network browse lists.")
    enabled: bool | None = Field(None, description="Serve the share (default: yes).")


class CreateSmbParams(_SmbFields):
    name: str = Field(max_length=80, description="Share name clients see, e.g. 'media'.")
    path: str = Field(
        max_length=1023, description="Dataset mountpoint to share, e.g. /mnt/tank/media."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return smb_name(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return mnt_path(value)


class UpdateSmbParams(_SmbFields):
    id: ShareId
    name: str | None = Field(None, max_length=80, description="New share name.")
    path: str | None = Field(None, max_length=1023, description="New path under /mnt/.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else smb_name(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else mnt_path(value)

    @model_validator(mode="after")
    def _something(self) -> UpdateSmbParams:
        if all(getattr(self, f) is None for f in type(self).model_fields if f != "id"):
            raise ValueError("give at least one setting to change")
        return self


def _smb_body(client: TrueNasClient, p: _SmbFields) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": getattr(p, "name", None),
        "path": getattr(p, "path", None),
        "comment": p.comment,
        "browsable": p.browsable,
        "enabled": p.enabled,
        "ro" if _legacy(client) else "readonly": p.readonly,
    }
    return {k: v for k, v in body.items() if v is not None}


@operation(
    "truenas_create_smb_share",
    summary="Share a dataset over SMB (Windows/macOS file sharing).",
    params=CreateSmbParams,
    result=TrueNasChange,
    read_only=False,
    backend="truenas",
)
async def create_smb_share(ctx: OpContext, p: CreateSmbParams) -> TrueNasChange:
    """Create an SMB share `name` for an existing dataset's path under /mnt/. Access is
    then governed by the dataset's ACL. Returns the share with its id."""
    client = await nas(ctx)
    item = await client.call("sharing.smb.create", _smb_body(client, p))
    return TrueNasChange(
        action="create",
        target=f"smb share {p.name}",
        changed=True,
        item=_share_item("smb", item),
        message=f"SMB share {p.name} created.",
    )


@operation(
    "truenas_update_smb_share",
    summary="Change an SMB share (name, path, comment, readonly, browsable, enabled).",
    params=UpdateSmbParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def update_smb_share(ctx: OpContext, p: UpdateSmbParams) -> TrueNasChange:
    """Change settings of the SMB share with this id; settings not given stay as they
    are. enabled=false stops serving it without deleting it."""
    client = await nas(ctx)
    body = _smb_body(client, p)
    item = await client.call("sharing.smb.update", p.id, body)
    return TrueNasChange(
        action="update",
        target=f"smb share {p.id}",
        changed=True,
        item=_share_item("smb", item),
        message=f"SMB share {p.id} updated: {', '.join(sorted(body))}.",
    )


def network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a network (e.g. 192.168.1.0/24)") from None


def host(value: str) -> str:
    if not _HOST_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a host name or address")
    return value


class _NfsFields(_Params):
    comment: str | None = Field(None, max_length=1024, description="Free text.")
    networks: list[Annotated[str, Field(max_length=64)]] | None = Field(
        None, max_length=64, description="Allowed client networks (CIDR); empty = any."
    )
    hosts: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None, max_length=64, description="Allowed client host names or addresses; empty = any."
    )
    readonly: bool | None = Field(None, description="Export read-only.")
    enabled: bool | None = Field(None, description="Serve the share (default: yes).")

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [network(v) for v in value]

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [host(v) for v in value]


class CreateNfsParams(_NfsFields):
    path: str = Field(
        max_length=1023, description="Dataset mountpoint to export, e.g. /mnt/tank/media."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return mnt_path(value)


class UpdateNfsParams(_NfsFields):
    id: ShareId
    path: str | None = Field(None, max_length=1023, description="New path under /mnt/.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else mnt_path(value)

    @model_validator(mode="after")
    def _something(self) -> UpdateNfsParams:
        if all(getattr(self, f) is None for f in type(self).model_fields if f != "id"):
            raise ValueError("give at least one setting to change")
        return self


def _nfs_body(p: _NfsFields) -> dict[str, Any]:
    body: dict[str, Any] = {
        "path": getattr(p, "path", None),
        "comment": p.comment,
        "networks": p.networks,
        "hosts": p.hosts,
        "ro": p.readonly,
        "enabled": p.enabled,
    }
    return {k: v for k, v in body.items() if v is not None}


@operation(
    "truenas_create_nfs_share",
    summary="Export a dataset over NFS.",
    params=CreateNfsParams,
    result=TrueNasChange,
    read_only=False,
    backend="truenas",
)
async def create_nfs_share(ctx: OpContext, p: CreateNfsParams) -> TrueNasChange:
    """Export an existing dataset's path under /mnt/ over NFS, optionally only to some
    networks (CIDR) or hosts; with neither, every client may mount it. Returns the share
    with its id."""
    client = await nas(ctx)
    item = await client.call("sharing.nfs.create", _nfs_body(p))
    return TrueNasChange(
        action="create",
        target=f"nfs share {p.path}",
        changed=True,
        item=_share_item("nfs", item),
        message=f"NFS export {p.path} created.",
    )


@operation(
    "truenas_update_nfs_share",
    summary="Change an NFS export (path, comment, networks, hosts, readonly, enabled).",
    params=UpdateNfsParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def update_nfs_share(ctx: OpContext, p: UpdateNfsParams) -> TrueNasChange:
    """Change settings of the NFS export with this id; settings not given stay as they
    are (networks/hosts given replace the whole list; [] allows every client)."""
    client = await nas(ctx)
    body = _nfs_body(p)
    item = await client.call("sharing.nfs.update", p.id, body)
    return TrueNasChange(
        action="update",
        target=f"nfs share {p.id}",
        changed=True,
        item=_share_item("nfs", item),
        message=f"NFS share {p.id} updated: {', '.join(sorted(body))}.",
    )


class DeleteShareParams(_Params):
    id: ShareId


async def _delete_share(ctx: OpContext, kind: str, share_id: int) -> TrueNasChange:
    client = await nas(ctx)
    found = await client.query(f"sharing.{kind}.query", [["id", "=", share_id]])
    if not found:
        raise NotFound(
            f"no {kind.upper()} share with id {share_id}.",
            hint=f"List them with truenas_list_shares kind={kind}.",
        )
    await client.call(f"sharing.{kind}.delete", share_id)
    label = share_cell({**found[0], "_kind": kind}, "name")
    return TrueNasChange(
        action="delete",
        target=f"{kind} share {share_id}",
        changed=True,
        item=_share_item(kind, found[0]),
        message=f"{kind.upper()} share {share_id} ({label}) deleted; the data "
        "stays in its dataset.",
    )


@operation(
    "truenas_delete_smb_share",
    summary="Stop sharing over SMB and remove the share (the data stays).",
    params=DeleteShareParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    backend="truenas",
)
async def delete_smb_share(ctx: OpContext, p: DeleteShareParams) -> TrueNasChange:
    """Remove the SMB share with this id: clients lose access at once. The files stay in
    the dataset."""
    return await _delete_share(ctx, "smb", p.id)


@operation(
    "truenas_delete_nfs_share",
    summary="Stop exporting over NFS and remove the export (the data stays).",
    params=DeleteShareParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    backend="truenas",
)
async def delete_nfs_share(ctx: OpContext, p: DeleteShareParams) -> TrueNasChange:
    """Remove the NFS export with this id: clients that mounted it lose access at once.
    The files stay in the dataset."""
    return await _delete_share(ctx, "nfs", p.id)


# ------------------------------------------------------------------ iSCSI

TARGET_COLUMNS = ["id", "name", "alias", "mode", "portal_groups", "auth"]
EXTENT_COLUMNS = ["id", "name", "type", "path", "dataset", "enabled", "readonly", "comment"]


def _target_cell(item: dict[str, Any], column: str) -> Any:
    groups = item.get("groups") or []
    if column == "portal_groups":
        return [g.get("portal") for g in groups]
    if column == "auth":
        return sorted({str(g.get("authmethod")) for g in groups})
    return item.get(column)


def _extent_cell(item: dict[str, Any], column: str) -> Any:
    if column == "path":
        return item.get("path") or item.get("disk")
    if column == "dataset":
        disk = str(item.get("disk") or "")
        return item.get("dataset") or (
            disk.removeprefix("zvol/") if disk.startswith("zvol/") else None
        )
    if column == "readonly":
        return item.get("ro")
    return item.get(column)


@operation(
    "truenas_list_iscsi",
    summary="iSCSI targets and extents (the zvols or files they export).",
    params=PageParams,
    result=IscsiListing,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_iscsi(ctx: OpContext, p: PageParams) -> IscsiListing:
    """List iSCSI block sharing: targets (id, name, alias, mode, portal groups, auth
    methods) and extents (id, name, type DISK/FILE, path, backing zvol dataset, enabled,
    readonly, comment). limit/cursor page both tables."""
    client = await nas(ctx)
    targets = await client.query("iscsi.target.query", order_by=["id"])
    extents = await client.query("iscsi.extent.query", order_by=["id"])
    return IscsiListing(
        targets=page(targets, TARGET_COLUMNS, _target_cell, p),
        extents=page(extents, EXTENT_COLUMNS, _extent_cell, p),
    )
