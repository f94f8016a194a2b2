"""TrueNAS apps, VMs and containers (``truenas_*``).

Containers are Incus instances (``virt.instance.*``, 25.04/25.10) or LXC containers
(``container.*``, 26); ``client.methods`` names them. Libvirt VMs are ``vm.*`` everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.errors import InvalidInput, NotFound
from core.models import Table
from core.ops import operation
from core.service import OpContext
from core.truenas import TrueNasClient
from core.truenas_ops import PageParams, WaitSeconds, _Params, job_progress, names, nas, page
from core.truenas_results import TrueNasChange

# ------------------------------------------------------------------ apps

APP_COLUMNS = ["name", "state", "version", "upgrade_available", "containers", "portals"]
AppName = Annotated[
    str,
    Field(
        pattern=r"^[a-z]([a-z0-9-]*[a-z0-9])?$",
        max_length=40,
        description="App name, e.g. 'plex' (see truenas_list_apps).",
    ),
]


def _app_cell(app: dict[str, Any], column: str) -> Any:
    if column == "version":
        return app.get("human_version") or app.get("version")
    if column == "containers":
        return (app.get("active_workloads") or {}).get("containers")
    if column == "portals":
        return list((app.get("portals") or {}).values())
    return app.get(column)


class ListAppsParams(PageParams):
    state: Literal["RUNNING", "STOPPED", "DEPLOYING", "STOPPING", "CRASHED"] | None = Field(
        None, description="Only apps in this state."
    )


@operation(
    "truenas_list_apps",
    summary="List installed apps with state, version and web portals.",
    params=ListAppsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_apps(ctx: OpContext, p: ListAppsParams) -> Table:
    """List installed apps (Docker-based) as a table: name, state (RUNNING, STOPPED,
    DEPLOYING, STOPPING, CRASHED), version, upgrade_available, running containers and
    portal URLs. Filter by state."""
    client = await nas(ctx)
    filters = [["state", "=", p.state]] if p.state else []
    apps = await client.query("app.query", filters, order_by=["name"])
    return page(apps, APP_COLUMNS, _app_cell, p)


class AppParams(_Params):
    name: AppName
    timeout_s: WaitSeconds = 600.0


async def _app_power(ctx: OpContext, p: AppParams, start: bool) -> TrueNasChange:
    client = await nas(ctx)
    found = await client.query("app.query", [["name", "=", p.name]])
    if not found:
        raise NotFound(f"no app named {p.name!r}.", hint="List apps with truenas_list_apps.")
    action = "start" if start else "stop"
    done = "RUNNING" if start else "STOPPED"
    if found[0].get("state") == done:
        return TrueNasChange(
            action=action,
            target=f"app {p.name}",
            changed=False,
            status_after=done,
            message=f"app {p.name} is already {done.lower()}; nothing to do.",
        )
    await client.run_job(
        f"app.{action}",
        p.name,
        timeout_s=p.timeout_s,
        progress=job_progress(ctx, f"{action} {p.name}"),
    )
    after = await client.query("app.query", [["name", "=", p.name]])
    state = str(after[0].get("state")) if after else "UNKNOWN"
    return TrueNasChange(
        action=action,
        target=f"app {p.name}",
        changed=True,
        status_after=state,
        message=f"{action} of app {p.name} finished: {state}.",
    )


@operation(
    "truenas_start_app",
    summary="Start a stopped app and wait until it is up.",
    params=AppParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def start_app(ctx: OpContext, p: AppParams) -> TrueNasChange:
    """Start an installed app (its containers) and wait for the job to end, reporting
    progress. A running app is left alone (changed=false). A failed start is an error
    with TrueNAS's reason."""
    return await _app_power(ctx, p, True)


@operation(
    "truenas_stop_app",
    summary="Stop a running app (its service goes down).",
    params=AppParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    idempotent=True,
    backend="truenas",
)
async def stop_app(ctx: OpContext, p: AppParams) -> TrueNasChange:
    """Stop an installed app's containers and wait for the job to end, reporting progress;
    whatever it serves is unavailable until started again. A stopped app is left alone
    (changed=false)."""
    return await _app_power(ctx, p, False)


# ------------------------------------------------------------------ VMs and containers

GuestKind = Literal["vm", "container"]
VM_COLUMNS = ["kind", "id", "name", "status", "type", "cpus", "memory", "autostart", "description"]
MIB = 1 << 20


def _vm_row(vm: dict[str, Any]) -> dict[str, Any]:
    status = vm.get("status") or {}
    cpus = int(vm.get("vcpus") or 1) * int(vm.get("cores") or 1) * int(vm.get("threads") or 1)
    return {
        "kind": "vm",
        "id": vm.get("id"),
        "name": vm.get("name"),
        "status": status.get("state") if isinstance(status, dict) else status,
        "type": "VM",
        "cpus": cpus,
        "memory": int(vm.get("memory") or 0) * MIB,
        "autostart": vm.get("autostart"),
        "description": vm.get("description") or "",
    }


def _container_row(item: dict[str, Any]) -> dict[str, Any]:
    status = item.get("status")
    cpu = str(item.get("cpu") or "")
    image = item.get("image") or {}
    return {
        "kind": "container",
        "id": item.get("id"),
        "name": item.get("name"),
        "status": status.get("state") if isinstance(status, dict) else status,
        "type": item.get("type") or "CONTAINER",
        "cpus": int(cpu) if cpu.isdigit() else None,
        "memory": item.get("memory"),
        "autostart": item.get("autostart"),
        "description": item.get("description") or image.get("description") or "",
    }


async def _guests(client: TrueNasClient) -> list[dict[str, Any]]:
    rows = [_vm_row(vm) for vm in await client.query("vm.query", order_by=["id"])]
    instances = await client.query(names(client).instance_query)
    rows += sorted((_container_row(i) for i in instances), key=lambda r: str(r["name"]))
    return rows


class ListVmsParams(PageParams):
    kind: GuestKind | None = Field(
        None, description="vm (libvirt VMs) or container (Incus instances / LXC containers)."
    )
    status: Literal["RUNNING", "STOPPED"] | None = Field(None, description="Only in this state.")


@operation(
    "truenas_list_vms",
    summary="List virtual machines and containers with status, CPUs and memory.",
    params=ListVmsParams,
    result=Table,
    read_only=True,
    idempotent=True,
    backend="truenas",
)
async def list_vms(ctx: OpContext, p: ListVmsParams) -> Table:
    """List guests running on TrueNAS as a table: kind (vm = libvirt VM; container = Incus
    instance on 25.04/25.10 or LXC container on 26), id, name, status, type, cpus, memory
    bytes, autostart, description. Start or stop one by name with truenas_start_vm /
    truenas_stop_vm."""
    client = await nas(ctx)
    rows = [
        r
        for r in await _guests(client)
        if (p.kind is None or r["kind"] == p.kind) and (p.status is None or r["status"] == p.status)
    ]
    return page(rows, VM_COLUMNS, lambda r, c: r.get(c), p)


class VmParams(_Params):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        max_length=63,
        description="Name of the VM or container (see truenas_list_vms).",
    )
    kind: GuestKind | None = Field(
        None, description="vm or container; only needed when both kinds use the name."
    )
    timeout_s: WaitSeconds = 300.0


class StopVmParams(VmParams):
    force: bool = Field(False, description="Power off at once instead of a clean shutdown.")


async def _find(client: TrueNasClient, p: VmParams) -> dict[str, Any]:
    rows = [
        r
        for r in await _guests(client)
        if r["name"] == p.name and (p.kind is None or r["kind"] == p.kind)
    ]
    if not rows:
        raise NotFound(
            f"no VM or container named {p.name!r}.", hint="List them with truenas_list_vms."
        )
    if len(rows) > 1:
        raise InvalidInput(
            f"both a VM and a container are named {p.name!r}.",
            fields={"kind": "give vm or container"},
        )
    return rows[0]


async def _vm_power(ctx: OpContext, p: VmParams, start: bool) -> TrueNasChange:
    client = await nas(ctx)
    methods = names(client)
    guest = await _find(client, p)
    action = "start" if start else "stop"
    label = f"{guest['kind']} {guest['name']}"
    done = "RUNNING" if start else "STOPPED"
    if guest["status"] == done:
        return TrueNasChange(
            action=action,
            target=label,
            changed=False,
            status_after=done,
            message=f"{label} is already {done.lower()}; nothing to do.",
        )
    progress = job_progress(ctx, f"{action} {label}")
    force = bool(getattr(p, "force", False))
    ident = guest["id"]
    if guest["kind"] == "vm" and start:
        await client.call("vm.start", ident, {"overcommit": False})
    elif guest["kind"] == "vm":
        await client.run_job(
            "vm.stop",
            ident,
            {"force": force, "force_after_timeout": False},
            progress=progress,
            timeout_s=p.timeout_s,
        )
    elif start and methods.instance_start_is_job:
        await client.run_job(
            methods.instance_start, ident, progress=progress, timeout_s=p.timeout_s
        )
    elif start:
        await client.call(methods.instance_start, ident)
    else:
        options: dict[str, Any] = (
            {"force": force, "timeout": -1}
            if methods.instance_stop.startswith("virt.")
            else {"force": force, "force_after_timeout": False}
        )
        await client.run_job(
            methods.instance_stop, ident, options, progress=progress, timeout_s=p.timeout_s
        )
    after = next(
        (r for r in await _guests(client) if r["kind"] == guest["kind"] and r["id"] == ident), None
    )
    state = str(after["status"]) if after else "UNKNOWN"
    return TrueNasChange(
        action=action,
        target=label,
        changed=True,
        status_after=state,
        message=f"{action} of {label} finished: {state}.",
    )


@operation(
    "truenas_start_vm",
    summary="Start a stopped VM or container on TrueNAS.",
    params=VmParams,
    result=TrueNasChange,
    read_only=False,
    idempotent=True,
    backend="truenas",
)
async def start_vm(ctx: OpContext, p: VmParams) -> TrueNasChange:
    """Start a VM or container by name and wait until TrueNAS reports it running. A
    running one is left alone (changed=false)."""
    return await _vm_power(ctx, p, True)


@operation(
    "truenas_stop_vm",
    summary="Stop a VM or container on TrueNAS (its services go down).",
    params=StopVmParams,
    result=TrueNasChange,
    read_only=False,
    destructive=True,
    idempotent=True,
    backend="truenas",
)
async def stop_vm(ctx: OpContext, p: StopVmParams) -> TrueNasChange:
    """Shut a VM or container down by name (force=true powers it off at once; unsaved
    data in the guest is lost) and wait for the job to end, reporting progress. A stopped
    one is left alone (changed=false)."""
    return await _vm_power(ctx, p, False)
