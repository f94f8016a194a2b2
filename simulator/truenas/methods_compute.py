"""Apps, libvirt VMs, Incus instances (25.x) and LXC containers (26): power and lifecycle."""

from __future__ import annotations

import errno
from typing import Any

from simulator.truenas.catalog import BEFORE_26, Ctx, arg, check_fields, method
from simulator.truenas.errors import call_error, not_found
from simulator.truenas.jobs import JobError, JobPlan


# ---- apps, VMs, instances, containers --------------------------------------------------------
def _set(ctx: Ctx, key: str, ident: Any, **changes: Any) -> None:
    item = ctx.state.items[key][ident]
    for name, value in changes.items():
        if isinstance(value, dict) and isinstance(item.get(name), dict):
            item[name].update(value)
        else:
            item[name] = value
    ctx.state.put(key, ident, item)


def _app_plan(ctx: Ctx, name: str, start: bool) -> JobPlan:
    apps = ctx.state.items["app"]

    def finish() -> None:
        if name not in apps:
            raise JobError(f"App {name!r} does not exist", number=errno.ENOENT)
        if start and name == "broken-app":
            _set(ctx, "app", name, state="CRASHED")
            raise JobError(f"Failed 'up' action for {name!r} app. Please check "
                           "/var/log/app_lifecycle.log for more details")  # fmt: skip
        _set(ctx, "app", name, state="RUNNING" if start else "STOPPED")

    if name in apps:
        _set(ctx, "app", name, state="DEPLOYING" if start else "STOPPING")
    verb = "Starting" if start else "Stopping"
    steps = (f"{verb} {name}", "Pulling images" if start else "Stopping containers",
             "Waiting for containers")  # fmt: skip
    return JobPlan(f"{verb} {name!r} app", 6.0 if start else 4.0, finish, steps)


@method("app.start", roles=("APPS_WRITE",), job=True, args=1)
def app_start(ctx: Ctx, args: list[Any]) -> JobPlan:
    return _app_plan(ctx, arg(args, 0, "app_name", str), True)


@method("app.stop", roles=("APPS_WRITE",), job=True, args=1)
def app_stop(ctx: Ctx, args: list[Any]) -> JobPlan:
    return _app_plan(ctx, arg(args, 0, "app_name", str), False)


def _vm(ctx: Ctx, key: str, ident: Any) -> dict[str, Any]:
    item = ctx.state.items.get(key, {}).get(ident)
    if item is None:
        raise not_found(f"{'VM' if key == 'vm' else key.title()} {ident} does not exist")
    return item


def _power(ctx: Ctx, key: str, ident: Any, running: bool) -> None:
    if key == "instance":
        _set(ctx, key, ident, status="RUNNING" if running else "STOPPED")
        return
    pid = (4000 if key == "vm" else 6000) + ident if running else None
    domain = ("RUNNING" if running else "SHUTOFF") if key == "vm" else None
    _set(ctx, key, ident, status={"state": "RUNNING" if running else "STOPPED", "pid": pid,
                                  "domain_state": domain})  # fmt: skip


@method("vm.start", roles=("VM_WRITE",), args=2)
def vm_start(ctx: Ctx, args: list[Any]) -> None:
    pk = arg(args, 0, "id", int)
    check_fields(arg(args, 1, "options", dict, default={}), "options", {"overcommit": bool})
    if _vm(ctx, "vm", pk)["status"]["state"] == "RUNNING":
        raise call_error(errno.EINVAL, f"VM {pk} is already running")
    _power(ctx, "vm", pk, True)


def _stop_plan(ctx: Ctx, key: str, ident: Any, what: str, restart: bool = False) -> JobPlan:
    _vm(ctx, key, ident)

    def finish() -> Any:
        _power(ctx, key, ident, restart)
        return True if key == "instance" else None

    verb = "Restarting" if restart else "Stopping"
    return JobPlan(f"{verb} {what} {ident}", 5.0, finish, (f"{verb} {what}", "Waiting for guest"))


@method("vm.stop", roles=("VM_WRITE",), job=True, args=2)
def vm_stop(ctx: Ctx, args: list[Any]) -> JobPlan:
    pk = arg(args, 0, "id", int)
    check_fields(arg(args, 1, "options", dict, default={}), "options",
                 {"force": bool, "force_after_timeout": bool})  # fmt: skip
    return _stop_plan(ctx, "vm", pk, "VM")


@method("vm.restart", roles=("VM_WRITE",), job=True, args=1)
def vm_restart(ctx: Ctx, args: list[Any]) -> JobPlan:
    return _stop_plan(ctx, "vm", arg(args, 0, "id", int), "VM", restart=True)


@method("vm.status", roles=("VM_READ",), args=1, read_only=True)
def vm_status(ctx: Ctx, args: list[Any]) -> dict[str, Any]:
    return dict(_vm(ctx, "vm", arg(args, 0, "id", int))["status"])


def _instance_plan(ctx: Ctx, args: list[Any], running: bool) -> JobPlan:
    name = arg(args, 0, "id", str)
    _vm(ctx, "instance", name)

    def finish() -> bool:
        _power(ctx, "instance", name, running)
        return True

    verb = "Starting" if running else "Stopping"
    return JobPlan(f"{verb} instance {name}", 4.0, finish, (f"{verb} {name}",))


@method("virt.instance.start", roles=("VIRT_INSTANCE_WRITE",), job=True, args=1,
        releases=BEFORE_26)  # fmt: skip
def instance_start(ctx: Ctx, args: list[Any]) -> JobPlan:
    return _instance_plan(ctx, args, True)


@method("virt.instance.stop", roles=("VIRT_INSTANCE_WRITE",), job=True, args=2,
        releases=BEFORE_26)  # fmt: skip
def instance_stop(ctx: Ctx, args: list[Any]) -> JobPlan:
    check_fields(arg(args, 1, "stop_args", dict, default={}), "stop_args",
                 {"timeout": (int, None), "force": bool})  # fmt: skip
    return _instance_plan(ctx, args, False)


@method("virt.instance.restart", roles=("VIRT_INSTANCE_WRITE",), job=True, args=2,
        releases=BEFORE_26)  # fmt: skip
def instance_restart(ctx: Ctx, args: list[Any]) -> JobPlan:
    return _instance_plan(ctx, args, True)


@method("container.start", roles=("CONTAINER_WRITE",), args=1, releases=("26",))
def container_start(ctx: Ctx, args: list[Any]) -> None:
    pk = arg(args, 0, "id", int)
    if _vm(ctx, "container", pk)["status"]["state"] == "RUNNING":
        raise call_error(errno.EINVAL, f"Container {pk} is already running")
    _power(ctx, "container", pk, True)


@method("container.stop", roles=("CONTAINER_WRITE",), job=True, args=2, releases=("26",))
def container_stop(ctx: Ctx, args: list[Any]) -> JobPlan:
    pk = arg(args, 0, "id", int)
    check_fields(arg(args, 1, "options", dict, default={}), "options",
                 {"force": bool, "force_after_timeout": bool})  # fmt: skip
    return _stop_plan(ctx, "container", pk, "container")
