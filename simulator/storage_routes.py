"""``GET /nodes/{node}/storage/{storage}/content`` and ``POST /nodes/{node}/vzdump``.

A backup is a ``vzdump`` worker on the guests' node: it locks each guest (``backup``),
writes one archive per guest to the backup storage (``ClusterState.backups``) when it
finishes, and reports guests it could not back up as ``job errors``.
"""

from __future__ import annotations

import time
from typing import Any

from simulator import params as p
from simulator.errors import die, param_error, permission_denied
from simulator.model import Guest, Storage, Volume
from simulator.routing import Call, Route
from simulator.volumes import archive_name, backup_size, content
from simulator.workers import locked_error, start_worker

Json = dict[str, Any]
DEFAULT_BACKUP_STORAGE = "local"
COMPRESS_SUFFIX = {"0": "", "1": ".lzo", "lzo": ".lzo", "gzip": ".gz", "zstd": ".zst"}
SETUP_SECONDS = 4.0


def _storage_on(call: Call, storage_id: str, node: str) -> Storage:
    storage = call.state.storage(storage_id)
    if storage is None:
        raise die(f"storage '{storage_id}' does not exist")
    if node not in storage.nodes:
        raise die(f"storage '{storage_id}' is not available on node '{node}'")
    return storage


def get_storage_content(call: Call) -> list[Json]:
    state, args = call.state, call.params
    node = state.node(args["node"]).name
    storage = _storage_on(call, args["storage"], node)
    out: list[Json] = []
    for entry in content(state, storage, node):
        if "content" in args and entry["content"] != args["content"]:
            continue
        vmid = entry.get("vmid")
        if "vmid" in args and vmid != args["vmid"]:
            continue
        if vmid is not None and not call.principal.has(f"/vms/{vmid}", "VM.Audit"):
            continue
        out.append(entry)
    return out


def _notes(template: str, guest: Guest, cluster: str) -> str:
    return (template.replace("{{guestname}}", guest.name).replace("{{vmid}}", str(guest.vmid))
            .replace("{{node}}", guest.node).replace("{{cluster}}", cluster))  # fmt: skip


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def post_vzdump(call: Call) -> str:
    state, args = call.state, call.params
    node = state.node(args["node"]).name
    storage = _storage_on(call, args.get("storage", DEFAULT_BACKUP_STORAGE), node)
    if "backup" not in storage.content.split(","):
        raise die(f"storage '{storage.storage}' does not support vzdump backups")
    if not call.principal.has(f"/storage/{storage.storage}", "Datastore.AllocateSpace"):
        raise permission_denied(f"/storage/{storage.storage}", "Datastore.AllocateSpace")
    wanted = [int(v) for v in p.split_list(args.get("vmid", ""))]
    if args.get("all"):
        excluded = {int(v) for v in p.split_list(args.get("exclude", ""))}
        wanted = [g.vmid for g in state.guests_on(node) if g.vmid not in excluded]
    elif "pool" in args:
        wanted = sorted(state.pool(args["pool"]).vmids)
    if not wanted:
        raise param_error({"vmid": "property is missing and it is not optional"})
    for vmid in wanted:
        if vmid not in state.guests:
            raise die(f"unable to find VM '{vmid}'")
        if not call.principal.has(f"/vms/{vmid}", "VM.Backup"):
            raise permission_denied(f"/vms/{vmid}", "VM.Backup")
    local = [state.guests[v] for v in wanted if state.guests[v].node == node]
    external = [v for v in wanted if state.guests[v].node != node]
    mode, compress = args.get("mode", "snapshot"), args.get("compress", "0")
    begin = state.now()
    command = f"vzdump {' '.join(map(str, wanted))} --storage {storage.storage} --mode {mode}"
    lines = [f"INFO: starting new backup job: {command} --compress {compress} --node {node}"]
    if external:
        lines.append(f"INFO: skip external VMs: {' '.join(map(str, external))}")
    made: list[tuple[Guest, Volume]] = []
    failures = 0
    clock = begin + SETUP_SECONDS
    for guest in local:
        lines.append(f"INFO: Starting Backup of VM {guest.vmid} ({guest.kind})")
        error = locked_error(guest)
        if error is not None:
            lines.append(f"ERROR: Backup of VM {guest.vmid} failed - {error}")
            failures += 1
            continue
        name = archive_name(guest, clock).replace(".zst", COMPRESS_SUFFIX[compress])
        size = backup_size(guest, name)
        took = max(5.0, size / (400 * 1024**2))  # about 400 MiB/s
        lines += [
            f"INFO: Backup started at {_stamp(clock)}", f"INFO: Backup mode: {mode}",
            f"INFO: VM Name: {guest.name}",
            f"INFO: creating vzdump archive '{storage.storage}:backup/{name}'",
            f"INFO: archive file size: {size / 1024**3:.2f}GB",
            f"INFO: Finished Backup of VM {guest.vmid} "
            f"({time.strftime('%H:%M:%S', time.gmtime(took))})",
        ]  # fmt: skip
        notes = _notes(args.get("notes-template", "{{guestname}}"), guest, state.cluster_name)
        made.append((guest, Volume(
            volid=f"{storage.storage}:backup/{name}", content="backup",
            format=name.split(".", 1)[1], size=size, ctime=int(clock),
            node=None if storage.shared else node, vmid=guest.vmid, subtype=guest.kind,
            notes=notes, protected=bool(args.get("protected")))))  # fmt: skip
        clock += took
    if not local:
        lines.append("INFO: no guests to back up on this node")
    lines.append(f"INFO: Backup job finished {'with errors' if failures else 'successfully'}")
    for guest, _ in made:
        guest.lock = "backup"

    def apply(at: float) -> None:
        for guest, volume in made:
            guest.lock = None
            state.backups.append(volume)

    ident = str(wanted[0]) if len(wanted) == 1 else ""
    task = start_worker(state, node=node, kind="vzdump", ident=ident,
                        user=call.principal.task_user, seconds=clock - begin + 1.0,
                        lines=lines, effect=apply)  # fmt: skip
    if failures:
        task.exitstatus = "job errors"
        task.log[-1] = (task.end_at, "TASK ERROR: job errors")
        task.on_finish = None
        for guest, _ in made:  # the archives that were written still are
            guest.lock = None
        state.backups.extend(volume for _, volume in made)
    return task.upid


def storage_routes() -> list[Route]:
    return [
        Route("GET", "/nodes/{node}/storage/{storage}/content", get_storage_content, {
            "node": p.node(), "storage": p.formatted(p.storage_id, optional=False),
            "content": p.formatted(p.check_storage_content), "vmid": p.vmid(optional=True)},
            ("/storage/{storage}", "Datastore.Audit|Datastore.AllocateSpace")),
        Route("POST", "/nodes/{node}/vzdump", post_vzdump, {
            "node": p.node(), "vmid": p.formatted(p.check_vmid, is_list=True), "all": p.flag(),
            "exclude": p.formatted(p.check_vmid, is_list=True), "pool": p.text(),
            "storage": p.formatted(p.storage_id),
            "mode": p.choice("snapshot", "suspend", "stop"),
            "compress": p.choice("0", "1", "gzip", "lzo", "zstd"),
            "notes-template": p.Param("string", max_length=1024, requires="storage"),
            "protected": p.Param("boolean", requires="storage"), "remove": p.flag(),
            "quiet": p.flag(), "stdexcludes": p.flag(), "bwlimit": p.integer(0),
            "ionice": p.integer(0, 8), "lockwait": p.integer(0), "stopwait": p.integer(0),
            "mailnotification": p.choice("always", "failure"),
            "notification-mode": p.choice("auto", "legacy-sendmail", "notification-system")}),
    ]  # fmt: skip
