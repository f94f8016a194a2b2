"""auth.*, core.*, system.*, alerts, disks, accounts, apps, VMs, instances and containers."""

from __future__ import annotations

import asyncio
import errno
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.truenas import seed as s
from simulator.truenas.catalog import (
    BEFORE_26,
    Ctx,
    arg,
    check_fields,
    method,
    query_method,
)
from simulator.truenas.errors import call_error, invalid, not_found
from simulator.truenas.jobs import JobError, JobPlan
from simulator.truenas.query import run_query
from simulator.truenas.state import FULL_VERSION

EVENT_KEYS = {
    "pool.query": "pool", "pool.dataset.query": "dataset", "sharing.smb.query": "smb",
    "sharing.nfs.query": "nfs", "iscsi.target.query": "iscsi_target",
    "iscsi.extent.query": "iscsi_extent", "user.query": "user", "group.query": "group",
    "app.query": "app", "vm.query": "vm", "alert.list": "alert", "core.get_jobs": "job",
    "pool.scrub.query": "scrub", "replication.query": "replication",
}  # fmt: skip
EVENT_ROLES = {
    "pool": "POOL_READ", "dataset": "DATASET_READ", "snapshot": "SNAPSHOT_READ",
    "smb": "SHARING_SMB_READ", "nfs": "SHARING_NFS_READ",
    "iscsi_target": "SHARING_ISCSI_TARGET_READ", "iscsi_extent": "SHARING_ISCSI_EXTENT_READ",
    "user": "ACCOUNT_READ", "group": "ACCOUNT_READ", "app": "APPS_READ", "vm": "VM_READ",
    "instance": "VIRT_INSTANCE_READ", "container": "CONTAINER_READ", "alert": "ALERT_LIST_READ",
    "scrub": "POOL_SCRUB_READ", "replication": "REPLICATION_TASK_READ",
}  # fmt: skip


def event_keys(release: str) -> dict[str, str]:
    """Event (collection) name -> state key, for one release."""
    keys = dict(EVENT_KEYS)
    keys["zfs.snapshot.query" if release == "25.04" else "pool.snapshot.query"] = "snapshot"
    keys["container.query" if release == "26" else "virt.instance.query"] = (
        "container" if release == "26" else "instance"
    )
    return keys


# ---- auth ------------------------------------------------------------------------------------
async def _check_key(ctx: Ctx, raw: str, username: str | None) -> bool:
    key_id, _, secret = raw.partition("-")
    key = ctx.state.api_keys.get(int(key_id)) if key_id.isdigit() else None
    good = key is not None and not key.revoked \
        and hmac.compare_digest(key.secret.encode(), secret.encode())  # fmt: skip
    if key is None or not good or (username is not None and username != key.username):
        if ctx.fail_delay:
            await asyncio.sleep(ctx.fail_delay)
        return False
    account = ctx.state.accounts[key.username]
    ctx.session.username, ctx.session.roles = account.username, account.roles
    return True


@method("auth.login_with_api_key", auth="none", args=1)
async def login_with_api_key(ctx: Ctx, args: list[Any]) -> bool:
    return await _check_key(ctx, arg(args, 0, "api_key", str), None)


@method("auth.login_ex", auth="none", args=1)
async def login_ex(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    data = arg(args, 0, "login_data", dict)
    mechanism = data.get("mechanism")
    if mechanism != "API_KEY_PLAIN":
        if mechanism in ("PASSWORD_PLAIN", "TOKEN_PLAIN", "OTP_TOKEN"):
            return {"response_type": "AUTH_ERR"}
        raise invalid("login_data.mechanism", "Input tag does not match any expected tags")
    check_fields(
        data,
        "login_data",
        {"mechanism": str, "username": str, "api_key": str, "login_options": dict},
        ("username", "api_key"),
    )
    if not await _check_key(ctx, data["api_key"], data["username"]):
        return {"response_type": "AUTH_ERR"}
    return {"response_type": "SUCCESS", "user_info": _me(ctx), "authenticator": "LEVEL_1"}


@method("auth.mechanism_choices", auth="none", read_only=True)
def mechanism_choices(ctx: Ctx, args: list[Any]) -> list[str]:
    base = ["API_KEY_PLAIN", "PASSWORD_PLAIN", "TOKEN_PLAIN", "OTP_TOKEN"]
    return [*base, "SCRAM"] if ctx.release == "26" else base


def _me(ctx: Ctx) -> dict[str, Any]:
    username = ctx.session.username or ""
    account = ctx.state.accounts[username]
    return {"pw_name": username, "pw_gecos": username, "pw_dir": "/var/empty",
            "pw_shell": "/usr/bin/zsh", "pw_uid": account.uid, "pw_gid": account.uid,
            "grouplist": [account.uid], "sid": None, "source": "LOCAL", "local": True,
            "attributes": {}, "two_factor_config": {},
            "privilege": {"roles": {"$set": sorted(account.roles)}, "allowlist": []},
            "account_attributes": ["LOCAL", "API_KEY"]}  # fmt: skip


@method("auth.me", auth="session", read_only=True)
def auth_me(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    return _me(ctx)


@method("auth.logout", auth="session")
def auth_logout(ctx: Ctx, args: list[Any]) -> bool:
    ctx.session.username, ctx.session.roles = None, frozenset()
    ctx.session.subscriptions.clear()
    return True


# ---- core ------------------------------------------------------------------------------------
@method("core.ping", auth="none", read_only=True)
def ping(ctx: Ctx, args: list[Any]) -> str:
    return "pong"


@method("core.set_options", auth="none", args=1)
def set_options(ctx: Ctx, args: list[Any]) -> dict[str, Any] | None:
    opts = arg(args, 0, "options", dict)
    known: dict[str, Any] = {"py_exceptions": bool}
    if ctx.release != "25.04":
        known.update(legacy_jobs=bool, private_methods=bool)
    check_fields(opts, "options", known)
    for key, value in opts.items():
        setattr(ctx.session, key, value)
    if ctx.release == "25.04":
        return None
    return {"legacy_jobs": ctx.session.legacy_jobs,
            "private_methods": ctx.session.private_methods,
            "py_exceptions": ctx.session.py_exceptions}  # fmt: skip


@method("core.subscribe", auth="session", args=1)
def subscribe(ctx: Ctx, args: list[Any]) -> str:
    name = arg(args, 0, "event", str)
    base = name.partition(":")[0]
    keys = event_keys(ctx.release)
    if name != "*" and base not in keys and base not in ("reporting.realtime", "app.stats"):
        raise call_error(errno.ENOENT, f"Event {name!r} does not exist")
    role = EVENT_ROLES.get(keys.get(base, ""), "REPORTING_READ" if base != "app.stats"
                           else "APPS_READ")  # fmt: skip
    if base not in ("*", "core.get_jobs") and not ctx.session.has_role(role):
        raise call_error(errno.EACCES, "Not authorized")
    ident = str(uuid.uuid4())
    ctx.session.subscriptions[ident] = name
    return ident


@method("core.unsubscribe", auth="session", args=1)
def unsubscribe(ctx: Ctx, args: list[Any]) -> None:
    ctx.session.subscriptions.pop(arg(args, 0, "id_", str), None)


@method("core.get_jobs", auth="session", args=2, read_only=True)
def get_jobs(ctx: Ctx, args: list[Any]) -> Any:
    jobs = ctx.jobs.visible(ctx.session.username or "", ctx.session.full_admin)
    items = [ctx.state.render("job", job.item()) for job in jobs]
    return run_query(items, args[0] if args else [], args[1] if len(args) > 1 else {})


def _job(ctx: Ctx, job_id: int) -> Any:
    jobs = {j.id: j for j in ctx.jobs.visible(ctx.session.username or "", ctx.session.full_admin)}
    if job_id not in jobs:
        raise not_found(f"Job {job_id} does not exist")
    return jobs[job_id]


@method("core.job_abort", auth="session", args=1)
def job_abort(ctx: Ctx, args: list[Any]) -> None:
    job = _job(ctx, arg(args, 0, "id", int))
    try:
        ctx.jobs.abort(job)
    except JobError as exc:
        raise call_error(exc.number, exc.reason) from None


@method("core.job_wait", auth="session", job=True, args=1)
def job_wait(ctx: Ctx, args: list[Any]) -> JobPlan:
    target = _job(ctx, arg(args, 0, "id", int))
    return JobPlan(f"Waiting for job {target.id}", 0, lambda: None, wait_for=target)


# ---- system, alerts, disks -------------------------------------------------------------------
@method("system.version", auth="session", read_only=True)
def system_version(ctx: Ctx, args: list[Any]) -> str:
    return f"TrueNAS-{FULL_VERSION[ctx.release]}"


@method("system.version_short", auth="session", read_only=True)
def system_version_short(ctx: Ctx, args: list[Any]) -> str:
    return FULL_VERSION[ctx.release]


@method("system.ready", roles=("SYSTEM_GENERAL_READ",), read_only=True)
def system_ready(ctx: Ctx, args: list[Any]) -> bool:
    return True


@method("system.state", roles=("SYSTEM_GENERAL_READ",), read_only=True)
def system_state(ctx: Ctx, args: list[Any]) -> str:
    return "READY"


@method("system.info", roles=("READONLY_ADMIN",), read_only=True)
def system_info(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    now = datetime.fromtimestamp(ctx.jobs.clock.now(), UTC)
    boot = ctx.state.now0.replace(hour=0, minute=0) - timedelta(days=12)
    up = (now - boot).total_seconds()
    return {"version": f"TrueNAS-{FULL_VERSION[ctx.release]}", "buildtime": boot,
            "hostname": "truenas-demo", "physmem": 64 * s.GiB, "model": "AMD Ryzen 7 5700G",
            "cores": 16, "physical_cores": 8, "loadavg": [0.42, 0.55, 0.61],
            "uptime": f"{int(up // 86400)} days, {int(up % 86400 // 3600)}:00:00",
            "uptime_seconds": up, "system_serial": "LD-0000-7", "system_product": "labdeck sim",
            "system_product_version": "1.0", "license": None, "boottime": boot, "datetime": now,
            "timezone": "UTC", "system_manufacturer": "labdeck", "ecc_memory": True}  # fmt: skip


@method("alert.list", roles=("ALERT_LIST_READ",), read_only=True)
def alert_list(ctx: Ctx, args: list[Any]) -> list[dict[str, Any]]:
    return ctx.state.rendered("alert")


query_method("disk.query", "disk", "DISK_READ")
query_method("replication.query", "replication", "REPLICATION_TASK_READ")
query_method("group.query", "group", "ACCOUNT_READ")
query_method("user.query", "user", "ACCOUNT_READ")
query_method("app.query", "app", "APPS_READ")
query_method("vm.query", "vm", "VM_READ")
query_method("virt.instance.query", "instance", "VIRT_INSTANCE_READ", releases=BEFORE_26)
query_method("container.query", "container", "CONTAINER_READ", releases=("26",))


# ---- users -----------------------------------------------------------------------------------
_USER_FIELDS: dict[str, Any] = {
    "uid": (int, None), "username": str, "home": str, "shell": str, "full_name": str,
    "smb": bool, "webshare": bool, "userns_idmap": (str, int, None), "group": (int, None),
    "groups": list, "password_disabled": bool, "ssh_password_enabled": bool,
    "sshpubkey": (str, None), "locked": bool, "sudo_commands": list,
    "sudo_commands_nopasswd": list, "email": (str, None), "group_create": bool,
    "home_create": bool, "home_mode": str, "password": (str, None), "random_password": bool,
}  # fmt: skip


def _user_fields(ctx: Ctx) -> dict[str, Any]:
    fields = dict(_USER_FIELDS)
    if ctx.release != "26":
        fields.pop("webshare")
    return fields


def _apply_user(ctx: Ctx, item: dict[str, Any], data: dict[str, Any]) -> None:
    for key in ("username", "home", "shell", "full_name", "smb", "webshare", "groups",
                "password_disabled", "ssh_password_enabled", "sshpubkey", "locked",
                "sudo_commands", "sudo_commands_nopasswd", "email"):  # fmt: skip
        if key in data:
            item[key] = data[key]
    if data.get("group") is not None:
        group = ctx.state.items["group"].get(data["group"])
        if group is None:
            raise invalid("user.group", f"Group {data['group']} not found", number=errno.ENOENT)
        item["group"] = {"id": group["id"], "bsdgrp_gid": group["gid"],
                         "bsdgrp_group": group["name"]}  # fmt: skip


@method("user.create", roles=("ACCOUNT_WRITE",), args=1)
def user_create(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    data = arg(args, 0, "user_create", dict)
    check_fields(data, "user_create", _user_fields(ctx), ("username", "full_name"))
    users = ctx.state.items["user"].values()
    if any(u["username"] == data["username"] for u in users):
        raise invalid("user_create.username", f"The username {data['username']!r} already exists.",
                      number=errno.EEXIST)  # fmt: skip
    if not data.get("password") and not data.get("password_disabled") \
            and not data.get("random_password"):  # fmt: skip
        raise invalid("user_create.password", "Password is required")
    pk = ctx.state.next_id("user")
    uid_ = data.get("uid") or max(u["uid"] for u in users) + 1
    group_ref = {"id": 43, "bsdgrp_gid": 545, "bsdgrp_group": "builtin_users"}
    item = s.user(uid_, data["username"], data["full_name"], pk=pk, group=group_ref)
    _apply_user(ctx, item, data)
    ctx.state.put("user", pk, item)
    return ctx.state.render("user", item)


def _user(ctx: Ctx, pk: int) -> dict[str, Any]:
    item = ctx.state.items["user"].get(pk)
    if item is None:
        raise not_found(f"User {pk} does not exist")
    return item


@method("user.update", roles=("ACCOUNT_WRITE",), args=2)
def user_update(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    item = _user(ctx, arg(args, 0, "id", int))
    data = arg(args, 1, "user_update", dict)
    fields = {k: v for k, v in _user_fields(ctx).items() if k not in ("uid", "group_create")}
    check_fields(data, "user_update", fields)
    if item["immutable"] and "username" in data:
        raise invalid("user_update.username", "This attribute cannot be changed")
    _apply_user(ctx, item, data)
    ctx.state.put("user", item["id"], item)
    return ctx.state.render("user", item)


@method("user.delete", roles=("ACCOUNT_WRITE",), args=2)
def user_delete(ctx: Ctx, args: list[Any]) -> int:
    pk = arg(args, 0, "id", int)
    options = arg(args, 1, "options", dict, default={})
    check_fields(options, "options", {"delete_group": bool})
    item = _user(ctx, pk)
    if item["builtin"]:
        raise call_error(errno.EINVAL, "Cannot delete a builtin user")
    ctx.state.remove("user", pk)
    for group in ctx.state.items["group"].values():
        if pk in group["users"]:
            group["users"] = [u for u in group["users"] if u != pk]
    if options.get("delete_group", True):
        _delete_private_group(ctx, int(item["group"]["id"]))
    return int(pk)


def _delete_private_group(ctx: Ctx, pk: int) -> None:
    """TrueNAS deletes a deleted user's primary group unless it is built in or still used."""
    group = ctx.state.items["group"].get(pk)
    if group is None or group["builtin"]:
        return
    users = ctx.state.items["user"].values()
    if any(u["group"]["id"] == pk or pk in u["groups"] for u in users):
        return
    ctx.state.remove("group", pk)
