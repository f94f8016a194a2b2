"""``pve_guest_exec`` and ``pve_guest_agent_info`` (core/pve_exec.py) against the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.audit import AuditLog
from core.errors import (
    InvalidInput,
    PermissionDenied,
    PolicyDenied,
    ServerError,
)
from core.service import Labdeck
from simulator import SimulatorConfig, SimulatorHandle, start_in_thread
from simulator.guest_agent import OUTPUT_CAP_BYTES
from simulator.model import Guest

MakeService = Callable[..., Labdeck]


@pytest.fixture(scope="module")
def handle() -> Iterator[SimulatorHandle]:
    with start_in_thread(SimulatorConfig(seed=7, speed=50, dynamic=False)) as sim:
        yield sim


def _guest(handle: SimulatorHandle, *, kind: str = "qemu", running: bool = True,
           agent: bool = True) -> Guest:  # fmt: skip
    for guest in handle.state.guests.values():
        if guest.kind != kind or guest.running != running or guest.template:
            continue
        if kind == "qemu" and guest.agent != agent:
            continue
        if kind == "lxc" or not guest.ostype.startswith("win"):
            return guest
    raise AssertionError("the seeded cluster lacks such a guest")


@pytest.fixture(scope="module")
def vm(handle: SimulatorHandle) -> Guest:
    return _guest(handle)


async def _exec(lab: Labdeck, vm: Guest, command: Any, **extra: Any) -> Any:
    return await lab.call("pve_guest_exec", {"vmid": vm.vmid, "command": command, **extra})


def _posts(handle: SimulatorHandle) -> list[tuple[str, str]]:
    return [entry for entry in list(handle.request_log) if entry[0] != "GET"]


def _status_polls(handle: SimulatorHandle) -> int:
    return sum(1 for _, path in list(handle.request_log) if path.endswith("/agent/exec-status"))


# -------------------------------------------------------------------- results


async def test_a_successful_command(handle: SimulatorHandle, vm: Guest,
                                    make_service: MakeService) -> None:  # fmt: skip
    async with make_service(handle, allow_writes=True) as lab:
        result = await _exec(lab, vm, ["uname", "-a"])
    assert (result.vmid, result.node, result.command) == (vm.vmid, vm.node, ["uname", "-a"])
    assert result.exited and result.ok and result.exit_code == 0 and result.signal is None
    assert result.stdout.startswith(f"Linux {vm.name} ") and result.stderr == ""
    assert not result.out_truncated and not result.err_truncated
    assert isinstance(result.pid, int) and result.message.startswith("exited 0")


async def test_a_failing_command_is_not_ok(handle: SimulatorHandle, vm: Guest,
                                           make_service: MakeService) -> None:  # fmt: skip
    async with make_service(handle, allow_writes=True) as lab:
        missing = await _exec(lab, vm, ["cat", "/etc/nope"])
        restart = await _exec(lab, vm, ["systemctl", "restart", "nonexistent"])
    assert (missing.exited, missing.ok, missing.exit_code) == (True, False, 1)
    assert missing.stderr == "cat: /etc/nope: No such file or directory\n"
    assert missing.stdout == "" and missing.message.startswith("FAILED: exit code 1")
    assert (restart.ok, restart.exit_code) == (False, 5)
    assert "Unit nonexistent.service not found." in restart.stderr


async def test_a_long_command_completes_in_simulated_time(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        started = time.monotonic()
        result = await _exec(lab, vm, ["sleep", "5"])  # 5 simulated s = 0.1 s at speed 50
        took = time.monotonic() - started
    assert result.exited and result.ok
    assert 0.09 <= result.duration_s <= took + 0.01
    assert result.duration_s < 2.0


async def test_a_timeout_says_the_command_may_still_run(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        result = await _exec(lab, vm, ["sleep", "600"], timeout_s=0.3)
    assert (result.exited, result.ok, result.exit_code) == (False, False, None)
    assert 0.3 <= result.duration_s < 1.5
    assert "may go on running" in result.message and str(result.pid) in result.message
    assert handle.call(lambda: handle.state.agents.process_count(vm.vmid)) >= 1


async def test_truncation_by_the_agent_and_by_our_limit(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        big = await _exec(lab, vm, ["seq", "1", "100000"])
        clipped = await _exec(lab, vm, ["seq", "1", "1000"], max_output_chars=100)
    assert big.ok and big.out_truncated and len(big.stdout) == OUTPUT_CAP_BYTES
    assert big.stdout.startswith("1\n2\n3\n")
    expected = "".join(f"{n}\n" for n in range(1, 1001))[:100]
    assert clipped.out_truncated and clipped.stdout == expected


async def test_shell_string_and_stdin(handle: SimulatorHandle, vm: Guest,
                                      make_service: MakeService) -> None:  # fmt: skip
    async with make_service(handle, allow_writes=True) as lab:
        result = await _exec(lab, vm, "echo hi && echo there", shell=True)
        piped = await _exec(lab, vm, ["cat"], input_data="to stdin\n")
    assert result.command == ["/bin/sh", "-c", "echo hi && echo there"]
    assert (result.ok, result.stdout) == (True, "hi\nthere\n")
    assert piped.stdout == "to stdin\n"


async def test_agent_info_matches_the_guest(handle: SimulatorHandle, vm: Guest,
                                            make_service: MakeService) -> None:  # fmt: skip
    machine = handle.call(lambda: handle.state.machine(vm))
    async with make_service(handle) as lab:  # read-only mode is enough
        info = await lab.call("pve_guest_agent_info", {"vmid": vm.vmid})
    assert (info.vmid, info.node) == (vm.vmid, vm.node)
    assert info.os_name == machine.distro.pretty_name
    assert info.kernel == machine.distro.kernel_release
    assert [i.name for i in info.interfaces] == ["lo", machine.distro.nic]
    nic = info.interfaces[1]
    assert nic.hardware_address == vm.mac.lower()
    address = machine.interfaces[1].addresses[0]
    assert f"{address.address}/{address.prefix}" in nic.addresses


# -------------------------------------------------------------------- refusals


async def test_a_string_command_without_shell_is_refused_before_any_request(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        handle.clear_request_log()
        with pytest.raises(InvalidInput) as caught:
            await _exec(lab, vm, "uname -a")
    assert "command" in caught.value.fields
    assert handle.request_log == []


async def test_containers_are_refused_before_any_write(
    handle: SimulatorHandle, make_service: MakeService
) -> None:
    ct = _guest(handle, kind="lxc")
    async with make_service(handle, allow_writes=True) as lab:
        handle.clear_request_log()
        with pytest.raises(InvalidInput, match="LXC container"):
            await lab.call("pve_guest_exec", {"vmid": ct.vmid, "command": ["ls"]})
        with pytest.raises(InvalidInput, match="LXC container"):
            await lab.call("pve_guest_agent_info", {"vmid": ct.vmid})
    assert _posts(handle) == []


async def test_read_only_mode_refuses_before_any_request(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService, audit_log: AuditLog
) -> None:
    async with make_service(handle) as lab:
        handle.clear_request_log()
        with pytest.raises(PolicyDenied):
            await _exec(lab, vm, ["uname", "-a"])
    assert handle.request_log == []
    assert audit_log.read()[-1]["outcome"] == "refused"


async def test_a_token_without_the_privilege_is_told_which(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService
) -> None:
    async with make_service(handle, allow_writes=True, readonly_token=True) as lab:
        with pytest.raises(PermissionDenied) as caught:
            await _exec(lab, vm, ["uname"])
    assert caught.value.privilege == "VM.GuestAgent.Unrestricted"
    assert caught.value.path == f"/vms/{vm.vmid}"


async def test_unavailable_agents_are_reported_clearly(
    handle: SimulatorHandle, make_service: MakeService
) -> None:
    no_agent = _guest(handle, agent=False)
    stopped = next(g for g in handle.state.guests.values()
                   if g.kind == "qemu" and g.agent and not g.running)  # fmt: skip
    async with make_service(handle, allow_writes=True) as lab:
        with pytest.raises(ServerError, match="No QEMU guest agent configured") as first:
            await _exec(lab, no_agent, ["uptime"])
        with pytest.raises(ServerError, match=f"VM {stopped.vmid} is not running"):
            await _exec(lab, stopped, ["uptime"])
        with pytest.raises(ServerError, match="No QEMU guest agent configured"):
            await lab.call("pve_guest_agent_info", {"vmid": no_agent.vmid})
    assert first.value.status == 500


async def test_a_missing_program_fails_with_the_agents_message(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        with pytest.raises(ServerError) as caught:  # the VM exists: not a NotFound
            await _exec(lab, vm, ["frobnicate"])
    assert "Failed to execute child process \u201cfrobnicate\u201d" in caught.value.message


# ------------------------------------------------------------ audit, cancel


async def test_the_audit_line_names_the_target_and_outcome(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService, audit_log: AuditLog
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        await _exec(lab, vm, ["hostname"])
        with pytest.raises(ServerError):
            await _exec(lab, _guest(handle, agent=False), ["hostname"])
        await _exec(lab, vm, ["cat"], input_data="hunter2-canary\n")
    *_, ok, failed, piped = audit_log.read()
    assert piped["params"]["input_data"] == "<15 characters>"
    assert "hunter2-canary" not in audit_log.path.read_text()
    assert (ok["operation"], ok["outcome"]) == ("pve_guest_exec", "ok")
    assert ok["target"] == f"qemu/{vm.vmid}@{vm.node}"
    assert ok["params"]["command"] == ["hostname"]
    assert (failed["outcome"], failed["error"]) == ("error", "server")


async def test_cancelling_stops_the_polling_promptly(
    handle: SimulatorHandle, vm: Guest, make_service: MakeService, audit_log: AuditLog
) -> None:
    async with make_service(handle, allow_writes=True) as lab:
        call = asyncio.create_task(_exec(lab, vm, ["sleep", "600"], timeout_s=60))
        deadline = time.monotonic() + 5
        while _status_polls(handle) < 3:  # it is polling the running command
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        call.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert time.monotonic() - cancelled_at < 0.5
        polls = _status_polls(handle)
        await asyncio.sleep(0.4)
        assert _status_polls(handle) == polls  # no poll after the cancellation
    assert audit_log.read()[-1]["outcome"] == "error"
    assert audit_log.read()[-1]["error"] == "CancelledError"
