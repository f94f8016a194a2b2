"""``/nodes/{node}/{qemu|lxc}/{vmid}/snapshot/...``: list, take, roll back, delete.

Snapshots live on the guest (``Guest.snapshots``); ``Guest.parent`` is the snapshot the
running state descends from, which the listing shows as the ``current`` entry. Taking,
rolling back and deleting are worker tasks (``qmsnapshot``/``vzsnapshot``, ...).
"""

from __future__ import annotations

from typing import Any

from simulator import params as p
from simulator import views
from simulator.errors import die
from simulator.model import Guest, GuestKind, Snapshot
from simulator.routing import Call, Route
from simulator.volumes import disk_volid
from simulator.workers import locked_error, restart_guest, start_worker, stop_guest

Json = dict[str, Any]
GUEST = {"node": p.node(), "vmid": p.vmid()}
SNAPNAME = p.Param("string", optional=False, check=p.check_configid, max_length=40)
SNAP = {**GUEST, "snapname": SNAPNAME}
AUDIT = ("/vms/{vmid}", "VM.Audit")
SNAPSHOT = ("/vms/{vmid}", "VM.Snapshot")
ROLLBACK = ("/vms/{vmid}", "VM.Snapshot|VM.Snapshot.Rollback")
RESERVED = ("current", "pending")
SETTINGS = ("name", "cores", "memory_mib", "description", "tags", "onboot")
# simulated seconds of each worker
TAKE_SECONDS, VMSTATE_SECONDS, ROLLBACK_SECONDS, DELETE_SECONDS = 3.0, 5.0, 4.0, 2.0


def _prefix(kind: GuestKind) -> str:
    return "qm" if kind == "qemu" else "vz"


def _guest(call: Call, kind: GuestKind) -> Guest:
    return call.state.guest_on(call.params["node"], kind, call.params["vmid"])


def _disk(guest: Guest) -> str:
    return disk_volid(guest).split(":", 1)[1]


def snapshot_entry(guest: Guest, snap: Snapshot) -> Json:
    out: Json = {"name": snap.name, "snaptime": snap.snaptime, "description": snap.description}
    if snap.parent is not None:
        out["parent"] = snap.parent
    if guest.kind == "qemu":
        out["vmstate"] = int(snap.vmstate)
    return out


def _list(kind: GuestKind) -> Any:
    def handler(call: Call) -> list[Json]:
        guest = _guest(call, kind)
        snaps = sorted(guest.snapshots.values(), key=lambda s: (s.snaptime, s.name))
        out = [snapshot_entry(guest, snap) for snap in snaps]
        config = views.qemu_config(guest) if kind == "qemu" else views.lxc_config(guest)
        current: Json = {"name": "current", "description": "You are here!",
                         "digest": config["digest"], "running": int(guest.running)}  # fmt: skip
        if guest.parent is not None:
            current["parent"] = guest.parent
        out.append(current)
        return out

    return handler


def _index(kind: GuestKind) -> Any:
    def handler(call: Call) -> list[Json]:
        _guest(call, kind)
        return [{"cmd": "rollback"}, {"cmd": "config"}]

    return handler


def _take(kind: GuestKind) -> Any:
    def handler(call: Call) -> str:
        state, args = call.state, call.params
        guest = _guest(call, kind)
        name: str = args["snapname"]
        reserved = RESERVED if kind == "qemu" else RESERVED[:1]
        if name in reserved:
            raise die(f"unable to use snapshot name '{name}' (reserved name)")
        vmstate = bool(args.get("vmstate")) and guest.running
        error = locked_error(guest)
        if error is None and guest.template:
            error = "you can't take a snapshot if it's a template"
        if error is None and name in guest.snapshots:
            error = f"snapshot name '{name}' already used"
        lines: list[str] = []
        if vmstate:
            saved = state.metrics(guest).mem / 1024**3
            lines += ["saving VM state and RAM using storage 'local-lvm'",
                      f"completed saving the VM state in 3s, saved {saved:.2f} GiB"]  # fmt: skip
        if kind == "qemu":
            lines.append(f"snapshotting 'drive-scsi0' ({disk_volid(guest)})")
        lines.append(f'  Logical volume "snap_{_disk(guest)}_{name}" created.')
        settings = {key: getattr(guest, key) for key in SETTINGS}
        taken = Snapshot(name=name, snaptime=int(state.now()), parent=guest.parent,
                         description=args.get("description") or "", vmstate=vmstate,
                         settings=settings)  # fmt: skip

        def apply(at: float) -> None:
            guest.snapshots[name] = taken
            guest.parent = name

        seconds = TAKE_SECONDS + (VMSTATE_SECONDS if vmstate else 0.0)
        task = start_worker(state, node=guest.node, kind=f"{_prefix(kind)}snapshot",
                            ident=str(guest.vmid), user=call.principal.task_user,
                            seconds=seconds, lines=lines, error=error, effect=apply,
                            lock=(guest, "snapshot"))  # fmt: skip
        return task.upid

    return handler


def _rollback(kind: GuestKind) -> Any:
    def handler(call: Call) -> str:
        state, args = call.state, call.params
        guest = _guest(call, kind)
        name: str = args["snapname"]
        snap = guest.snapshots.get(name)
        error = locked_error(guest)
        if error is None and snap is None:
            error = f"snapshot '{name}' does not exist"
        start = bool(args.get("start"))
        disk = _disk(guest)
        lines = [f'  Logical volume "{disk}" successfully removed.',
                 f'  Logical volume "{disk}" created.']  # fmt: skip
        if snap is not None and (snap.vmstate or start):
            lines.append(f"{guest.label} started")

        def apply(at: float) -> None:
            assert snap is not None
            for key, value in snap.settings.items():
                setattr(guest, key, value)
            guest.parent = name
            # the worker stops a running guest first; a RAM snapshot resumes where it was
            if snap.vmstate or start:
                restart_guest(state, guest, at)
            else:
                stop_guest(state, guest)

        task = start_worker(state, node=guest.node, kind=f"{_prefix(kind)}rollback",
                            ident=str(guest.vmid), user=call.principal.task_user,
                            seconds=ROLLBACK_SECONDS, lines=lines, error=error, effect=apply,
                            lock=(guest, "rollback"))  # fmt: skip
        return task.upid

    return handler


def _delete(kind: GuestKind) -> Any:
    def handler(call: Call) -> str:
        state, args = call.state, call.params
        guest = _guest(call, kind)
        name: str = args["snapname"]
        snap = guest.snapshots.get(name)
        error = locked_error(guest)
        if error is None and snap is None:
            error = f"snapshot '{name}' does not exist"
        lines = [f'  Logical volume "snap_{_disk(guest)}_{name}" successfully removed.']

        def apply(at: float) -> None:
            assert snap is not None
            guest.snapshots.pop(name, None)
            for other in guest.snapshots.values():
                if other.parent == name:
                    other.parent = snap.parent
            if guest.parent == name:
                guest.parent = snap.parent

        task = start_worker(state, node=guest.node, kind=f"{_prefix(kind)}delsnapshot",
                            ident=str(guest.vmid), user=call.principal.task_user,
                            seconds=DELETE_SECONDS, lines=lines, error=error, effect=apply,
                            lock=(guest, "snapshot-delete"))  # fmt: skip
        return task.upid

    return handler


def snapshot_routes() -> list[Route]:
    routes: list[Route] = []
    kind: GuestKind
    for kind in ("qemu", "lxc"):
        base = f"/nodes/{{node}}/{kind}/{{vmid}}/snapshot"
        take = {**SNAP, "description": p.text()}
        if kind == "qemu":
            take["vmstate"] = p.flag()
        routes += [
            Route("GET", base, _list(kind), GUEST, AUDIT),
            Route("POST", base, _take(kind), take, SNAPSHOT),
            Route("GET", f"{base}/{{snapname}}", _index(kind), SNAP),
            Route("DELETE", f"{base}/{{snapname}}", _delete(kind),
                  {**SNAP, "force": p.flag()}, SNAPSHOT),
            Route("POST", f"{base}/{{snapname}}/rollback", _rollback(kind),
                  {**SNAP, "start": p.flag()}, ROLLBACK),
        ]  # fmt: skip
    return routes
