"""``/nodes/{node}/qemu/{vmid}/agent/...``: the guest agent endpoints PVE serves.

Only QEMU guests have them; for containers the paths do not exist (501, as in
PVE). Every call loads the guest (500 when its config does not exist), then runs
PVE's agent checks, then asks the simulated agent (``simulator.guest_agent``).
"""

from __future__ import annotations

from typing import Any

from simulator import params as p
from simulator.errors import die
from simulator.guest_os import network_interfaces, osinfo
from simulator.model import Guest
from simulator.routing import Call, Route

Json = dict[str, Any]
GUEST = {"node": p.node(), "vmid": p.vmid()}
AUDIT = ("/vms/{vmid}", "VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted")
UNRESTRICTED = ("/vms/{vmid}", "VM.GuestAgent.Unrestricted")
MAX_INPUT_DATA = 64 * 1024


def _agent_guest(call: Call) -> Guest:
    guest = call.state.guest_on(call.params["node"], "qemu", call.params["vmid"])
    call.state.agents.assert_available(guest)
    return guest


def post_ping(call: Call) -> Json:
    _agent_guest(call)
    return {"result": {}}


def get_osinfo(call: Call) -> Json:
    guest = _agent_guest(call)
    return {"result": osinfo(call.state.machine(guest))}


def get_network_interfaces(call: Call) -> Json:
    guest = _agent_guest(call)
    return {"result": network_interfaces(call.state.machine(guest))}


def post_exec(call: Call) -> Json:
    guest = _agent_guest(call)
    argv: list[str] = list(call.params.get("command") or [])
    input_data: str | None = call.params.get("input-data")
    if not argv:
        if input_data is None:
            raise die("command or input-data (or both) required")
        raise die("Agent error: Parameter 'path' is missing")
    state = call.state
    pid = state.agents.exec(guest, state.machine(guest), argv, input_data, state.now())
    return {"pid": pid}


def get_exec_status(call: Call) -> Json:
    guest = _agent_guest(call)
    return call.state.agents.exec_status(guest, call.params["pid"], call.state.now())


def agent_routes() -> list[Route]:
    base = "/nodes/{node}/qemu/{vmid}/agent"
    return [
        Route("POST", f"{base}/ping", post_ping, GUEST, AUDIT),
        Route("GET", f"{base}/get-osinfo", get_osinfo, GUEST, AUDIT),
        Route("GET", f"{base}/network-get-interfaces", get_network_interfaces, GUEST, AUDIT),
        Route("POST", f"{base}/exec", post_exec, {
            **GUEST, "command": p.strings(optional=False),
            "input-data": p.text(max_length=MAX_INPUT_DATA)}, UNRESTRICTED),
        Route("GET", f"{base}/exec-status", get_exec_status, {
            **GUEST, "pid": p.Param("integer", optional=False)}, UNRESTRICTED),
    ]  # fmt: skip
