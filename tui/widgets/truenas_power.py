"""Power actions on the TrueNAS rows of the Guests view, through the ``truenas_*`` operations."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from tui.data import POWER_ACTIONS, WriteRequest
from tui.widgets.truenas_guests import TrueNasVm

if TYPE_CHECKING:
    from tui.app import LabdeckApp

#: dashboard power action -> (operation, extra params): a clean shutdown is TrueNAS's stop,
#: a hard stop is its forced stop (power off); reboot has no TrueNAS equivalent
TRUENAS_POWER: dict[str, tuple[str, dict[str, Any]]] = {
    "start": ("truenas_start_vm", {}),
    "shutdown": ("truenas_stop_vm", {"force": False}),
    "stop": ("truenas_stop_vm", {"force": True}),
}


def truenas_power_applies(vm: TrueNasVm | None, parameters: tuple[object, ...]) -> bool:
    """Whether the dashboard's power key ``parameters[0]`` has a TrueNAS equivalent."""
    return vm is not None and bool(parameters) and parameters[0] in TRUENAS_POWER


def truenas_power_request(name: str, vm: TrueNasVm) -> WriteRequest:
    """The write behind power action ``name`` (start, shutdown, stop) on a TrueNAS guest."""
    operation, extra = TRUENAS_POWER[name]
    verb, doing = POWER_ACTIONS[name].verb, POWER_ACTIONS[name].doing
    return WriteRequest(
        operation=operation,
        params={"name": vm.name, "kind": vm.kind, **extra},
        verb=verb,
        doing=doing,
        label=vm.label,
        question=f"{verb} {vm.name}?",
        detail=f"{vm.what} {vm.id} on {vm.host}, now {vm.status}.",
        key=(name, vm.key),
    )


def request_truenas_power(app: LabdeckApp, name: str, vm: TrueNasVm) -> None:
    """Like ``request_power`` for a cluster guest: disruptive ones ask a person first."""
    app.request_write(truenas_power_request(name, vm))


def select_truenas_vm(app: LabdeckApp, key: str) -> None:
    """The Guests view with the cursor on TrueNAS row ``key`` (clearing a filter hiding it)."""
    dashboard = app.dashboard
    if dashboard is None:
        return
    dashboard.show_view("guests")
    table = dashboard.guest_table
    if key not in table.rows:
        dashboard.action_clear_filter()
    table.wanted_vmid = None  # the next refresh keeps the cursor here, not on a cluster guest
    table.put_cursor_on(key)
    table.post_message(table.Selected(table.selected))


def truenas_guest_commands(app: LabdeckApp) -> list[tuple[str, Callable[[], object], str]]:
    """Palette entries: go to each TrueNAS guest, and the power actions it has."""
    snapshot = app.snapshot
    vms = snapshot.truenas.vms if snapshot is not None and snapshot.truenas is not None else ()
    commands: list[tuple[str, Callable[[], object], str]] = []
    for vm in vms:
        where = f"{vm.what} on {vm.host}, {vm.status}"
        commands.append((f"Go to guest {vm.label}", partial(select_truenas_vm, app, vm.key), where))
        for name in TRUENAS_POWER:
            action = POWER_ACTIONS[name]
            if vm.status in action.applies_to:
                run = partial(request_truenas_power, app, name, vm)
                commands.append((f"{action.verb} guest {vm.label}", run, where))
    return commands
