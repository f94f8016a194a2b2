"""The PVE endpoints the simulator serves: parameters, permissions, handlers."""

from __future__ import annotations

import json
from typing import Any

from simulator import params as p
from simulator import views
from simulator.agent_routes import agent_routes
from simulator.errors import die, param_error, permission_denied
from simulator.guest_sheet import guest_sheet
from simulator.model import GuestKind
from simulator.placement_routes import placement_routes
from simulator.power_routes import power_routes
from simulator.routing import Call, EncodedJson, Reply, Route
from simulator.rrd import rrd_routes
from simulator.snapshot_routes import snapshot_routes
from simulator.storage_routes import storage_routes
from simulator.tasks import Task, looks_like_upid

Json = dict[str, Any]
NODE = {"node": p.node()}
GUEST = {"node": p.node(), "vmid": p.vmid()}
VM_AUDIT = ("/vms/{vmid}", "VM.Audit")
POWER = ("/vms/{vmid}", "VM.PowerMgmt")


# ------------------------------------------------------------------ cluster


def get_version(call: Call) -> Json:
    return {"version": views.PVE_VERSION, "release": views.PVE_RELEASE,
            "repoid": views.PVE_REPOID}  # fmt: skip


def get_cluster_status(call: Call) -> list[Json]:
    state = call.state
    out: list[Json] = [{
        "type": "cluster", "id": "cluster", "name": state.cluster_name,
        "nodes": len(state.nodes), "quorate": 1, "version": state.config_version + 2,
    }]  # fmt: skip
    for index, node in enumerate(state.nodes.values()):
        out.append({
            "type": "node", "id": f"node/{node.name}", "name": node.name, "ip": node.ip,
            "nodeid": node.nodeid, "online": int(node.status == "online"), "level": "",
            "local": int(index == 0),
        })  # fmt: skip
    return out


def get_cluster_resources(call: Call) -> EncodedJson:
    """Guests come as JSON text (``guest_sheet``), the rest as dicts: at 5,000
    guests building and encoding dicts was most of the request."""
    state, who, kind = call.state, call.principal, call.params.get("type")
    out: list[Json] = []
    sheet = guest_sheet(state) if kind in (None, "vm", "node") else None
    guests: list[str] = []
    if sheet is not None and kind in (None, "vm"):
        see_all = who.has_everywhere_below("/vms", "VM.Audit")
        guests = [row.text for vmid, row in sheet.rows.items()
                  if see_all or who.has(f"/vms/{vmid}", "VM.Audit")]  # fmt: skip
    if sheet is not None and kind in (None, "node"):
        for name, nm in views.node_rollup(state, sheet).items():
            if who.has(f"/nodes/{name}", "Sys.Audit"):
                out.append(views.node_resource(state.nodes[name], nm))
    if kind in (None, "storage"):
        allocations = state.disk_allocations() if sheet is None else sheet.disk_allocations(state)
        used = state.storage_used(allocations)
        for storage in state.storages:
            if _may_see_storage(call, storage.storage):
                out.extend(views.storage_resource(storage, node, used(storage, node))
                           for node in storage.nodes)  # fmt: skip
    if kind in (None, "sdn"):
        out.extend(views.sdn_resource(node) for node in state.nodes
                   if who.has(f"/sdn/zones/{views.SDN_ZONE}", "SDN.Audit"))  # fmt: skip
    if kind is None:
        see_all = who.has_everywhere_below("/pool", "Pool.Audit")
        out.extend(views.pool_resource(pool) for pool in state.pools.values()
                   if see_all or who.has(f"/pool/{pool.poolid}", "Pool.Audit"))  # fmt: skip
    if out:  # one encoder pass for the rest, spliced in after the guests
        guests.append(json.dumps(out, separators=(",", ":"))[1:-1])
    return EncodedJson("[" + ",".join(guests) + "]")


def _may_see_storage(call: Call, storage_id: str) -> bool:
    path = f"/storage/{storage_id}"
    return call.principal.has(path, "Datastore.Audit") or call.principal.has(
        path, "Datastore.AllocateSpace"
    )


def _may_see_task(call: Call, task: Task) -> bool:
    owner = task.user == call.principal.task_user or task.user == call.principal.userid
    return owner or call.principal.has(f"/nodes/{task.node}", "Sys.Audit")


def get_cluster_tasks(call: Call) -> list[Json]:
    return [task.list_view() for task in call.state.tasks.everything() if _may_see_task(call, task)]


def get_nextid(call: Call) -> int:
    wanted = call.params.get("vmid")
    if wanted is None:
        return call.state.next_free_vmid()
    if wanted in call.state.guests:
        raise param_error({"vmid": f"VM {wanted} already exists"})
    return int(wanted)


# ------------------------------------------------------------------- nodes


def get_nodes(call: Call) -> list[Json]:
    state = call.state
    rollup = views.node_rollup(state, guest_sheet(state))
    out: list[Json] = []
    for name, node in state.nodes.items():
        entry = views.node_list_entry(node, rollup[name], call.server.cert_fingerprint)
        if not call.principal.has(f"/nodes/{name}", "Sys.Audit"):
            entry = {k: entry[k] for k in ("node", "id", "type", "status", "level")}
        out.append(entry)
    return out


def get_node_status(call: Call) -> Json:
    node = call.state.node(call.params["node"])
    return views.node_status(node, views.one_node_metrics(call.state, node))


def get_node_storage(call: Call) -> list[Json]:
    state, args = call.state, call.params
    node = state.node(args["node"]).name
    content = set(p.split_list(args["content"])) if "content" in args else None
    used = state.storage_used(state.disk_allocations())
    out: list[Json] = []
    for storage in state.storages:
        if node not in storage.nodes or not _may_see_storage(call, storage.storage):
            continue
        if "storage" in args and storage.storage != args["storage"]:
            continue
        if content is not None and not content & set(storage.content.split(",")):
            continue
        out.append(views.node_storage_entry(storage, used(storage, node)))
    return out


# -------------------------------------------------------------------- tasks


def _task_list(call: Call) -> list[Task]:
    args = call.params
    node = call.state.node(args["node"]).name
    source = args.get("source", "archive")
    tasks = [t for t in call.state.tasks.for_node(node) if _may_see_task(call, t)]
    if source == "archive":
        tasks = [t for t in tasks if t.finished]
    elif source == "active":
        tasks = [t for t in tasks if not t.finished]
    if "vmid" in args:
        tasks = [t for t in tasks if t.ident == str(args["vmid"])]
    if "typefilter" in args:
        tasks = [t for t in tasks if t.kind == args["typefilter"]]
    if "userfilter" in args:
        tasks = [t for t in tasks if args["userfilter"] in t.user]
    if args.get("errors"):
        tasks = [t for t in tasks if t.finished and t.failed]
    if "statusfilter" in args:
        wanted = {s.lower() for s in p.split_list(args["statusfilter"])}
        tasks = [t for t in tasks if t.status_class() in wanted]
    if "since" in args:
        tasks = [t for t in tasks if t.starttime >= args["since"]]
    if "until" in args:
        tasks = [t for t in tasks if t.starttime <= args["until"]]
    return tasks


def get_node_tasks(call: Call) -> Reply:
    tasks = _task_list(call)
    start, limit = call.params.get("start", 0), call.params.get("limit", 50)
    page = tasks[start : start + limit] if limit else tasks[start:]
    return Reply([t.list_view() for t in page], total=len(tasks))


def _task(call: Call) -> Task:
    node = call.state.node(call.params["node"]).name
    upid = call.params["upid"]
    if not looks_like_upid(upid):
        raise param_error({"upid": "unable to parse worker upid"})
    task = call.state.tasks.get(node, upid)
    if task is None:
        raise param_error({"upid": "no such task"})
    if not _may_see_task(call, task):
        raise permission_denied(f"/nodes/{node}", "Sys.Audit")
    return task


def get_task_status(call: Call) -> Json:
    return _task(call).status_view()


def get_task_log(call: Call) -> Reply:
    lines = _task(call).log_lines(call.state.now())
    start, limit = call.params.get("start", 0), call.params.get("limit", 50)
    if not lines:
        return Reply([{"n": 1, "t": "no content"}], total=1)
    page = lines[start : start + limit] if limit else lines[start:]
    return Reply([{"n": start + i + 1, "t": text} for i, text in enumerate(page)],
                 total=len(lines))  # fmt: skip


# ------------------------------------------------------------------- guests


def _guest_list(kind: GuestKind) -> Any:
    def handler(call: Call) -> list[Json]:
        node = call.state.node(call.params["node"]).name
        return [views.guest_list_entry(g, call.state.metrics(g))
                for g in call.state.guests_on(node, kind)
                if call.principal.has(f"/vms/{g.vmid}", "VM.Audit")]  # fmt: skip

    return handler


def _guest_status(kind: GuestKind) -> Any:
    def handler(call: Call) -> Json:
        guest = call.state.guest_on(call.params["node"], kind, call.params["vmid"])
        return views.guest_status(guest, call.state.metrics(guest))

    return handler


def _guest_config(kind: GuestKind) -> Any:
    def handler(call: Call) -> Json:
        guest = call.state.guest_on(call.params["node"], kind, call.params["vmid"])
        if "snapshot" in call.params:
            raise die(f"snapshot '{call.params['snapshot']}' does not exist")
        return views.qemu_config(guest) if kind == "qemu" else views.lxc_config(guest)

    return handler


def _power(kind: GuestKind, action: str) -> Any:
    def handler(call: Call) -> str:
        args = call.params
        task = call.state.power(args["node"], kind, args["vmid"], action,
                                call.principal.task_user)  # fmt: skip
        return task.upid

    return handler


# -------------------------------------------------------------------- pools


def _pool_members(call: Call, poolid: str, kind: str | None) -> list[Json]:
    state = call.state
    pool = state.pool(poolid)
    members: list[Json] = []
    if kind in (None, "qemu", "lxc"):
        for vmid in sorted(pool.vmids):
            guest = state.guests[vmid]
            if kind in (None, guest.kind):
                members.append(views.guest_resource(guest, state.metrics(guest)))
    if kind in (None, "storage") and pool.storages:  # usage sums every guest: only if asked
        used = state.storage_used(state.disk_allocations())
        for sid in sorted(pool.storages):
            storage = state.storage(sid)
            if storage is not None:
                members.extend(views.storage_resource(storage, node, used(storage, node))
                               for node in storage.nodes)  # fmt: skip
    return members


def get_pools(call: Call) -> list[Json]:
    poolid = call.params.get("poolid")
    pools = [call.state.pool(poolid)] if poolid is not None else call.state.pools.values()
    out: list[Json] = []
    for pool in sorted(pools, key=lambda x: x.poolid):
        if not call.principal.has(f"/pool/{pool.poolid}", "Pool.Audit"):
            continue  # like PVE: pools the caller may not audit are left out
        entry: Json = {"poolid": pool.poolid, **_comment(pool.comment)}
        if poolid is not None:  # members only for the one pool asked for
            entry["members"] = _pool_members(call, poolid, call.params.get("type"))
        out.append(entry)
    return out


def _comment(comment: str | None) -> Json:
    return {} if comment is None else {"comment": comment}


def get_pool(call: Call) -> Json:
    poolid = call.params["poolid"]
    pool = call.state.pool(poolid)
    members = _pool_members(call, poolid, call.params.get("type"))
    return {**_comment(pool.comment), "members": members}


def post_pools(call: Call) -> None:
    call.state.create_pool(call.params["poolid"], call.params.get("comment"))


def put_pools(call: Call) -> None:
    args = call.params
    vmids = [int(v) for v in p.split_list(args.get("vms", ""))]
    storages = p.split_list(args.get("storage", ""))
    for path in [f"/vms/{v}" for v in vmids] + [f"/storage/{s}" for s in storages]:
        if not call.principal.has(path, "Permissions.Modify"):
            raise permission_denied(path, "Permissions.Modify")
    call.state.update_pool(
        args["poolid"], comment=args.get("comment"), vmids=vmids, storages=storages,
        delete=bool(args.get("delete")), allow_move=bool(args.get("allow-move")),
    )  # fmt: skip


def delete_pools(call: Call) -> None:
    call.state.delete_pool(call.params["poolid"])


# ------------------------------------------------------------------- access


def get_permissions(call: Call) -> Json:
    who = call.principal
    wanted = call.params.get("userid")
    if wanted is not None and wanted not in (who.userid, who.task_user):
        if not who.has("/access", "Sys.Audit"):
            raise permission_denied("/access", "Sys.Audit")
        other = call.server.lookup_principal(wanted)
        if other is None:
            raise die(f"user '{wanted}' does not exist")
        who = other
    paths = [call.params["path"]] if "path" in call.params else who.permission_paths()
    return {path: dict.fromkeys(sorted(who.privileges(path)), 1) for path in paths}


# -------------------------------------------------------------------- table

_QEMU_START = {
    **GUEST, "force-cpu": p.text(), "machine": p.text(), "migratedfrom": p.node(optional=True),
    "migration_network": p.formatted(p.cidr), "migration_type": p.choice("secure", "insecure"),
    "nets-host-mtu": p.pattern(r"net\d+=\d+(,net\d+=\d+)*"), "skiplock": p.flag(),
    "stateuri": p.text(max_length=128), "targetstorage": p.text(), "timeout": p.integer(0),
    "with-conntrack-state": p.flag(),
}  # fmt: skip
_QEMU_STOP = {
    **GUEST,
    "keepActive": p.flag(),
    "migratedfrom": p.node(optional=True),
    "overrule-shutdown": p.flag(),
    "skiplock": p.flag(),
    "timeout": p.integer(0),
}
_QEMU_SHUTDOWN = {**GUEST, "forceStop": p.flag(), "keepActive": p.flag(), "skiplock": p.flag(),
                  "timeout": p.integer(0)}  # fmt: skip
_REBOOT = {**GUEST, "timeout": p.integer(0)}
_LXC_START = {**GUEST, "debug": p.flag(), "skiplock": p.flag()}
_LXC_STOP = {**GUEST, "overrule-shutdown": p.flag(), "skiplock": p.flag()}
_LXC_SHUTDOWN = {**GUEST, "forceStop": p.flag(), "timeout": p.integer(0)}
_CONFIG = {**GUEST, "current": p.flag(),
           "snapshot": p.Param("string", check=p.check_configid, max_length=40)}  # fmt: skip
_TASK = {**NODE, "upid": p.text(optional=False)}
_POOL_ID = p.formatted(p.pool_id, optional=False)
_MEMBER_TYPE = ("qemu", "lxc", "storage")
_USERID = r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+(?:![A-Za-z][A-Za-z0-9.\-_]+)?"


def build_routes() -> list[Route]:
    qemu, lxc = "/nodes/{node}/qemu/{vmid}", "/nodes/{node}/lxc/{vmid}"
    power = {"qemu": (_QEMU_START, _QEMU_STOP, _QEMU_SHUTDOWN, _REBOOT),
             "lxc": (_LXC_START, _LXC_STOP, _LXC_SHUTDOWN, _REBOOT)}  # fmt: skip
    routes = [
        Route("GET", "/version", get_version, {}),
        Route("GET", "/cluster/status", get_cluster_status, {}, ("/", "Sys.Audit")),
        Route("GET", "/cluster/resources", get_cluster_resources,
              {"type": p.choice("vm", "storage", "node", "sdn")}),
        Route("GET", "/cluster/tasks", get_cluster_tasks, {}),
        Route("GET", "/cluster/nextid", get_nextid, {"vmid": p.vmid(optional=True)}),
        Route("GET", "/nodes", get_nodes, {}),
        Route("GET", "/nodes/{node}/status", get_node_status, NODE, ("/nodes/{node}", "Sys.Audit")),
        Route("GET", "/nodes/{node}/tasks", get_node_tasks, {
            **NODE, "errors": p.flag(), "limit": p.integer(0), "since": p.integer(),
            "source": p.choice("archive", "active", "all"), "start": p.integer(0),
            "statusfilter": p.formatted(p.check_task_status, is_list=True),
            "typefilter": p.text(), "until": p.integer(), "userfilter": p.text(),
            "vmid": p.vmid(optional=True)}),
        Route("GET", "/nodes/{node}/tasks/{upid}/status", get_task_status, _TASK),
        Route("GET", "/nodes/{node}/tasks/{upid}/log", get_task_log, {
            **_TASK, "download": p.flag(), "limit": p.integer(0), "start": p.integer(0)}),
        Route("GET", "/nodes/{node}/storage", get_node_storage, {
            **NODE, "content": p.formatted(p.check_storage_content, is_list=True),
            "enabled": p.flag(), "format": p.flag(), "storage": p.formatted(p.storage_id),
            "target": p.node(optional=True)}),
        Route("GET", "/nodes/{node}/qemu", _guest_list("qemu"), {**NODE, "full": p.flag()}),
        Route("GET", "/nodes/{node}/lxc", _guest_list("lxc"), NODE),
        Route("GET", f"{qemu}/status/current", _guest_status("qemu"), GUEST, VM_AUDIT),
        Route("GET", f"{lxc}/status/current", _guest_status("lxc"), GUEST, VM_AUDIT),
        Route("GET", f"{qemu}/config", _guest_config("qemu"), _CONFIG, VM_AUDIT),
        Route("GET", f"{lxc}/config", _guest_config("lxc"), _CONFIG, VM_AUDIT),
        Route("GET", "/pools", get_pools, {
            "poolid": p.formatted(p.pool_id), "type": p.choice(*_MEMBER_TYPE, requires="poolid")}),
        Route("POST", "/pools", post_pools, {"poolid": _POOL_ID, "comment": p.text()},
              ("/pool/{poolid}", "Pool.Allocate")),
        Route("PUT", "/pools", put_pools, {
            "poolid": _POOL_ID, "comment": p.text(), "allow-move": p.flag(), "delete": p.flag(),
            "storage": p.formatted(p.storage_id, is_list=True),
            "vms": p.formatted(p.check_vmid, is_list=True)}, ("/pool/{poolid}", "Pool.Allocate")),
        Route("DELETE", "/pools", delete_pools, {"poolid": _POOL_ID},
              ("/pool/{poolid}", "Pool.Allocate")),
        Route("GET", "/pools/{poolid}", get_pool, {
            "poolid": _POOL_ID, "type": p.choice(*_MEMBER_TYPE)}, ("/pool/{poolid}", "Pool.Audit")),
        Route("GET", "/access/permissions", get_permissions, {
            "path": p.text(), "userid": p.pattern(_USERID)}),
    ]  # fmt: skip
    kind: GuestKind
    for kind in ("qemu", "lxc"):
        base = qemu if kind == "qemu" else lxc
        for action, spec in zip(("start", "stop", "shutdown", "reboot"), power[kind], strict=True):
            path = f"{base}/status/{action}"
            routes.append(Route("POST", path, _power(kind, action), spec, POWER))
    routes.extend(agent_routes())
    routes.extend(snapshot_routes())
    routes.extend(power_routes())
    routes.extend(rrd_routes())
    routes.extend(storage_routes())
    routes.extend(placement_routes())
    return routes
