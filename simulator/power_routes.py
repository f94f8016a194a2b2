"""More power endpoints: QEMU ``suspend``/``resume``/``reset``, LXC ``suspend``/``resume``.

A suspended VM keeps running with its vCPUs paused (``qmpstatus`` ``paused``). PVE
suspends a container with a CRIU checkpoint, which stops it until ``resume`` restores
it; ``Guest.paused`` marks both. LXC has no ``reset`` (the path does not exist).
"""

from __future__ import annotations

from typing import Any

from simulator import params as p
from simulator.errors import die
from simulator.model import Guest, GuestKind
from simulator.routing import Call, Route
from simulator.workers import restart_guest, start_worker, stop_guest

GUEST = {"node": p.node(), "vmid": p.vmid()}
POWER = ("/vms/{vmid}", "VM.PowerMgmt")
SECONDS = {"suspend": 1.0, "resume": 1.0, "reset": 1.0}


def _not_running(guest: Guest) -> Any:
    return die(f"{guest.label} not running")


def _action(kind: GuestKind, action: str) -> Any:
    def handler(call: Call) -> str:
        state, args = call.state, call.params
        guest = state.guest_on(args["node"], kind, args["vmid"])
        error: str | None = None
        if action == "suspend" and args.get("todisk"):
            raise die("hibernation (todisk) is not simulated")
        if kind == "lxc" and action == "resume":
            if not guest.paused:  # nothing checkpointed to restore
                error = f"{guest.label} has no checkpoint to restore"
        elif not guest.running and not (action == "resume" and args.get("nocheck")):
            raise _not_running(guest)
        if kind == "lxc" and action == "suspend":
            lines = [f"checkpointing {guest.label} (CRIU)"]
        else:
            lines = []

        def apply(at: float) -> None:
            if kind == "qemu":
                if action == "reset":  # same QEMU process: the guest OS boots again
                    state.agents.reset(guest.vmid)
                guest.paused = action == "suspend"
            elif action == "suspend":
                stop_guest(state, guest)
                guest.paused = True
            else:
                restart_guest(state, guest, at)

        prefix = "qm" if kind == "qemu" else "vz"
        task = start_worker(state, node=guest.node, kind=f"{prefix}{action}",
                            ident=str(guest.vmid), user=call.principal.task_user,
                            seconds=SECONDS[action], lines=lines, error=error,
                            effect=apply)  # fmt: skip
        return task.upid

    return handler


def power_routes() -> list[Route]:
    qemu, lxc = "/nodes/{node}/qemu/{vmid}/status", "/nodes/{node}/lxc/{vmid}/status"
    return [
        Route("POST", f"{qemu}/suspend", _action("qemu", "suspend"), {
            **GUEST, "skiplock": p.flag(), "todisk": p.flag(),
            "statestorage": p.Param("string", check=p.storage_id, requires="todisk")}, POWER),
        Route("POST", f"{qemu}/resume", _action("qemu", "resume"), {
            **GUEST, "nocheck": p.flag(), "skiplock": p.flag()}, POWER),
        Route("POST", f"{qemu}/reset", _action("qemu", "reset"), {
            **GUEST, "skiplock": p.flag()}, POWER),
        Route("POST", f"{lxc}/suspend", _action("lxc", "suspend"), GUEST, POWER),
        Route("POST", f"{lxc}/resume", _action("lxc", "resume"), GUEST, POWER),
    ]  # fmt: skip
