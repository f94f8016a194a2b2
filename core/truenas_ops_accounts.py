"""TrueNAS local users and groups (``truenas_*``). Passwords are secrets: a ``SecretStr``
parameter (the audit redacts it by its name), sent to TrueNAS and never returned."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from core.errors import InvalidInput, NotFound
from core.models import Table
from core.ops import operation
from core.service import OpContext
from core.truenas import TrueNasClient
from core.truenas_ops import PageParams, _Params, mnt_path, nas, page, plain
from core.truenas_results import TrueNasChange

USER_COLUMNS = [
    "id",
    "uid",
    "username",
    "full_name",
    "group",
    "groups",
    "home",
    "shell",
    "smb",
    "locked",
    "password_disabled",
]
GROUP_COLUMNS = ["id", "gid", "name", "builtin", "smb", "users", "roles"]
_SSH_KEY = re.compile(r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$")

Username = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$",
        max_length=32,
        description="User name: letters, digits, _ . - (not first); at most 32.",
    ),
]
GroupId = Annotated[int, Field(ge=1, le=2**31 - 1)]


async def _group_names(client: TrueNasClient) -> dict[int, str]:
    rows = await client.query("group.query", select=["id", "name"])
    return {int(g["id"]): str(g["name"]) for g in rows}


def _user_cell(groups: dict[int, str]) -> Any:
    def cell(user: dict[str, Any], column: str) -> Any:
        if column == "group":
            return (user.get("group") or {}).get("bsdgrp_group")
        if column == "groups":
            return [groups.get(g, str(g)) for g in user.get("groups") or []]
        return user.get(column)

    return cell


class ListAccountsParams(PageParams):
    include_builtin: bool = Field(False, description="Also list built-in system accounts.")
    name: str | None = Field(
        None, max_length=64, description="Case-insensitive substring of the name."
    )


@operation(
    "truenas_list_users",
    summary="List local users (compact table; built-in accounts left out by default).",
    params=ListAccountsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_users(ctx: OpContext, p: ListAccountsParams) -> Table:
    """List local user accounts as a table: id (for TrueNAS), uid, username, full_name,
    primary group, other groups (names), home, shell, smb (may log in over SMB), locked,
    password_disabled. Built-in system users (root, daemons) only with include_builtin;
    filter by a name substring. No password hash is ever returned."""
    client = await nas(ctx)
    filters = [] if p.include_builtin else [["builtin", "=", False]]
    users = await client.query("user.query", filters, order_by=["uid"])
    if p.name:
        users = [u for u in users if p.name.lower() in str(u.get("username", "")).lower()]
    return page(users, USER_COLUMNS, _user_cell(await _group_names(client)), p)


@operation(
    "truenas_list_groups",
    summary="List local groups with their members (built-in groups left out by default).",
    params=ListAccountsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_groups(ctx: OpContext, p: ListAccountsParams) -> Table:
    """List local groups as a table: id, gid, name, builtin, smb, users (member user
    names) and roles (TrueNAS admin roles the group grants). Built-in groups only with
    include_builtin; filter by a name substring."""
    client = await nas(ctx)
    filters = [] if p.include_builtin else [["builtin", "=", False]]
    groups = await client.query("group.query", filters, order_by=["gid"])
    if p.name:
        groups = [g for g in groups if p.name.lower() in str(g.get("name", "")).lower()]
    users = {
        int(u["id"]): str(u["username"])
        for u in await client.query("user.query", select=["id", "username"])
    }

    def cell(group: dict[str, Any], column: str) -> Any:
        if column == "users":
            return [users.get(u, str(u)) for u in group.get("users") or []]
        return group.get(column)

    return page(groups, GROUP_COLUMNS, cell, p)


def _full_name(value: str | None) -> str | None:
    if value is not None and (":" in value or any(ord(ch) < 32 for ch in value)):
        raise ValueError("no ':' and no control characters")
    return value


def _home(value: str | None) -> str | None:
    if value is None or value == "/var/empty":
        return value
    return mnt_path(value)


def _ssh_key(value: str | None) -> str | None:
    if value is not None and not _SSH_KEY.fullmatch(value.strip()):
        raise ValueError("not an OpenSSH public key line (e.g. 'ssh-ed25519 AAAA... me@host')")
    return value


class _UserFields(_Params):
    full_name: str | None = Field(None, min_length=1, max_length=256, description="Display name.")
    email: str | None = Field(
        None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Mail address for alerts to this user.",
    )
    password_disabled: bool | None = Field(
        None, description="No password log-in at all (e.g. SSH key only)."
    )
    password: SecretStr | None = Field(
        None, min_length=1, max_length=512, description="The password (never returned or logged)."
    )
    smb: bool | None = Field(None, description="May log in to SMB shares (needs a password).")
    groups: list[GroupId] | None = Field(
        None, max_length=64, description="Ids of supplementary groups (see truenas_list_groups)."
    )
    home: str | None = Field(
        None, max_length=1023, description="Home directory under /mnt/, or /var/empty for none."
    )
    shell: str | None = Field(
        None, max_length=64, pattern=r"^/[A-Za-z0-9_/.-]+$", description="e.g. /usr/bin/bash."
    )
    sshpubkey: str | None = Field(None, max_length=16384, description="An OpenSSH public key.")

    @field_validator("full_name")
    @classmethod
    def _full_name(cls, value: str | None) -> str | None:
        return _full_name(value)

    @field_validator("home")
    @classmethod
    def _home(cls, value: str | None) -> str | None:
        return _home(value)

    @field_validator("sshpubkey")
    @classmethod
    def _ssh(cls, value: str | None) -> str | None:
        return _ssh_key(value)

    @field_validator("smb")
    @classmethod
    def _smb(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("password_disabled"):
            raise ValueError("SMB users need a password; set smb=false with password_disabled")
        return value


def _user_body(p: _UserFields) -> dict[str, Any]:
    body: dict[str, Any] = {
        "full_name": p.full_name,
        "email": p.email,
        "password_disabled": p.password_disabled,
        "smb": p.smb,
        "groups": p.groups,
        "home": p.home,
        "shell": p.shell,
        "sshpubkey": p.sshpubkey,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if p.password is not None:
        body["password"] = p.password.get_secret_value()
    return body


class CreateUserParams(_UserFields):
    username: Username
    full_name: str | None = Field(
        None, min_length=1, max_length=256, validate_default=True, description="Display name."
    )
    password: SecretStr | None = Field(
        None,
        min_length=1,
        max_length=512,
        validate_default=True,
        description="The password (never returned or logged); required unless "
        "password_disabled=true.",
    )
    group: GroupId | None = Field(
        None, description="Primary group id; default: a new group named like the user."
    )
    home_create: bool = Field(False, description="Create the home directory (home under /mnt/).")

    @field_validator("full_name")
    @classmethod
    def _full_name_required(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("give the user's full name")
        return _full_name(value)

    @field_validator("password")
    @classmethod
    def _password_required(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        disabled = info.data.get("password_disabled")
        if value is None and not disabled:
            raise ValueError("give a password, or set password_disabled=true")
        if value is not None and disabled:
            raise ValueError("a password with password_disabled=true would be ignored")
        return value


async def _user_row(client: TrueNasClient, item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    cell = _user_cell(await _group_names(client))
    return {c: plain(cell(item, c)) for c in USER_COLUMNS}


@operation(
    "truenas_create_user",
    summary="Create a local user (password, groups, home, SMB access).",
    params=CreateUserParams,
    result=TrueNasChange,
    read_only=False,
    backend="truenas",
)
async def create_user(ctx: OpContext, p: CreateUserParams) -> TrueNasChange:
    """Create a local user. A password is required unless password_disabled=true (then
    smb must be false). Without `group`, TrueNAS creates a primary group named like the
    user. The password is sent once to TrueNAS and never returned or logged."""
    body = {"username": p.username, **_user_body(p)}
    if p.group is None:
        body["group_create"] = True
    else:
        body["group"] = p.group
    if p.home_create:
        body["home_create"] = True
    if p.password_disabled and p.smb is None:
        body["smb"] = False  # TrueNAS makes users SMB users by default, which needs a password
    client = await nas(ctx)
    item = await client.call("user.create", body)
    return TrueNasChange(
        action="create",
        target=f"user {p.username}",
        changed=True,
        item=await _user_row(client, item),
        message=f"user {p.username} created.",
    )


async def _find_user(client: TrueNasClient, username: str) -> dict[str, Any]:
    found = await client.query("user.query", [["username", "=", username]])
    if not found:
        raise NotFound(f"no user named {username!r}.", hint="List users with truenas_list_users.")
    user: dict[str, Any] = found[0]
    return user


class UpdateUserParams(_UserFields):
    username: Username
    locked: bool | None = Field(None, description="Lock the account (no log-in at all).")

    @model_validator(mode="after")
    def _something(self) -> UpdateUserParams:
        if all(getattr(self, f) is None for f in type(self).model_fields if f != "username"):
            raise ValueError("give at least one setting to change")
        return self


@operation(
    "truenas_update_user",
    summary="Change a local user (full name, password, groups, shell, lock, SMB…).",
    params=UpdateUserParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def update_user(ctx: OpContext, p: UpdateUserParams) -> TrueNasChange:
    """Change settings of a local user found by username; settings not given stay as they
    are (groups given replace the whole list). A new password is sent once and never
    returned or logged."""
    client = await nas(ctx)
    user = await _find_user(client, p.username)
    body = _user_body(p)
    if p.locked is not None:
        body["locked"] = p.locked
    item = await client.call("user.update", int(user["id"]), body)
    return TrueNasChange(
        action="update",
        target=f"user {p.username}",
        changed=True,
        item=await _user_row(client, item),
        message=f"user {p.username} updated: {', '.join(sorted(body))}.",
    )


class DeleteUserParams(_Params):
    username: Username
    delete_group: bool = Field(
        True, description="Also delete its primary group if no one else uses it."
    )


@operation(
    "truenas_delete_user",
    summary="Delete a local user account (its files stay).",
    params=DeleteUserParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    backend="truenas",
)
async def delete_user(ctx: OpContext, p: DeleteUserParams) -> TrueNasChange:
    """Delete a local user: it can no longer log in, and its API keys stop working. Files
    it owns stay (owned by its uid). Built-in accounts cannot be deleted."""
    client = await nas(ctx)
    user = await _find_user(client, p.username)
    if user.get("builtin"):
        raise InvalidInput(
            f"{p.username} is a built-in account; it cannot be deleted.",
            fields={"username": "a built-in account"},
        )
    await client.call("user.delete", int(user["id"]), {"delete_group": p.delete_group})
    return TrueNasChange(
        action="delete",
        target=f"user {p.username}",
        changed=True,
        message=f"user {p.username} deleted.",
    )
