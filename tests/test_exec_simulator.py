"""The simulator's QEMU guest agent over real HTTPS: exec lifecycle, errors, privileges."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorHandle, start_in_thread
from simulator.guest_agent import OUTPUT_CAP_BYTES
from simulator.model import Guest

SPAWN_FAILED = "Failed to execute child process \u201c{}\u201d (No such file or directory)"


@pytest.fixture(scope="module")
def handle() -> Iterator[SimulatorHandle]:
    with start_in_thread(SimulatorConfig(seed=7, speed=50, dynamic=False)) as sim:
        yield sim


def _client(handle: SimulatorHandle, readonly: bool = False) -> httpx.Client:
    token = handle.readonly_token if readonly else handle.token
    return httpx.Client(
        base_url=f"{handle.pve_url}/api2/json",
        verify=ssl.create_default_context(cafile=handle.ca_path),
        headers={"Authorization": token.header},
        timeout=10,
    )


@pytest.fixture(scope="module")
def api(handle: SimulatorHandle) -> Iterator[httpx.Client]:
    with _client(handle) as client:
        yield client


@pytest.fixture(scope="module")
def auditor(handle: SimulatorHandle) -> Iterator[httpx.Client]:
    with _client(handle, readonly=True) as client:
        yield client


def _guest(handle: SimulatorHandle, *, kind: str = "qemu", running: bool = True,
           agent: bool = True, windows: bool | None = False) -> Guest:  # fmt: skip
    for guest in handle.state.guests.values():
        if (guest.kind, guest.running, guest.template) != (kind, running, False):
            continue
        if kind == "qemu" and guest.agent != agent:
            continue
        if windows is not None and guest.ostype.startswith("win") != windows:
            continue
        return guest
    raise AssertionError("the seeded cluster lacks such a guest")


def _base(guest: Guest) -> str:
    return f"/nodes/{guest.node}/{guest.kind}/{guest.vmid}/agent"


@pytest.fixture(scope="module")
def vm(handle: SimulatorHandle) -> Guest:
    return _guest(handle)


def _exec(api: httpx.Client, guest: Guest, command: Any, **extra: Any) -> int:
    response = api.post(f"{_base(guest)}/exec", json={"command": command, **extra})
    assert response.status_code == 200, response.reason_phrase
    pid = response.json()["data"]["pid"]
    assert isinstance(pid, int)
    return pid


def _wait(api: httpx.Client, guest: Guest, pid: int, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"{_base(guest)}/exec-status", params={"pid": pid})
        assert response.status_code == 200, response.reason_phrase
        status = response.json()["data"]
        if status["exited"]:
            return dict(status)
        assert status == {"exited": 0}  # nothing else until the process has exited
        assert time.monotonic() < deadline, "the process did not finish"
        time.sleep(0.01)


def _run(api: httpx.Client, guest: Guest, command: Any, **extra: Any) -> dict[str, Any]:
    return _wait(api, guest, _exec(api, guest, command, **extra))


# ------------------------------------------------------------------ lifecycle


def test_exec_then_status_until_exited_then_the_pid_is_forgotten(
    handle: SimulatorHandle, api: httpx.Client, vm: Guest, pve_schema: ModuleType
) -> None:
    exec_path = f"{_base(vm)}/exec"
    assert pve_schema.validate_request("POST", exec_path, {"command": ["sleep", "5"]}) == []
    response = api.post(exec_path, data={"command": ["sleep", "5"]})  # repeated form keys
    assert (
        pve_schema.validate_returns(
            "POST", pve_schema.match("POST", exec_path), response.json()["data"], strict=True
        )
        == []
    )
    pid = response.json()["data"]["pid"]
    status_path = f"{_base(vm)}/exec-status"
    template = pve_schema.match("GET", status_path)
    first = api.get(status_path, params={"pid": pid}).json()["data"]
    assert first == {"exited": 0}
    assert pve_schema.validate_returns("GET", template, first, strict=True) == []
    final = _wait(api, vm, pid)
    assert final == {"exited": 1, "exitcode": 0}  # no output: no data keys at all
    assert pve_schema.validate_returns("GET", template, final, strict=True) == []
    again = api.get(status_path, params={"pid": pid})
    assert (again.status_code, again.reason_phrase) == (
        500, f"VM {vm.vmid} qga command 'guest-exec-status' failed - PID {pid} does not exist"
    )  # fmt: skip
    assert again.json() == {"data": None, "message": again.reason_phrase + "\n"}


def test_sleep_runs_in_simulated_time(handle: SimulatorHandle, api: httpx.Client,
                                      vm: Guest) -> None:  # fmt: skip
    pid = _exec(api, vm, ["sleep", "600"])
    status = f"{_base(vm)}/exec-status"
    assert api.get(status, params={"pid": pid}).json()["data"] == {"exited": 0}
    handle.call(lambda: handle.state.clock.advance(601))
    assert api.get(status, params={"pid": pid}).json()["data"] == {"exited": 1, "exitcode": 0}


def test_pids_are_distinct_and_unknown_pids_fail(api: httpx.Client, vm: Guest) -> None:
    pids = {_exec(api, vm, ["true"]) for _ in range(5)}
    assert len(pids) == 5
    missing = max(pids) + 100_000
    response = api.get(f"{_base(vm)}/exec-status", params={"pid": missing})
    assert response.status_code == 500
    assert response.reason_phrase.endswith(f"PID {missing} does not exist")


def test_output_exit_codes_and_stderr_in_plain_text(
    api: httpx.Client, vm: Guest, pve_schema: ModuleType
) -> None:
    template = pve_schema.match("GET", f"{_base(vm)}/exec-status")
    hello = _run(api, vm, ["/bin/echo", "hello", "world"])
    assert hello == {"exited": 1, "exitcode": 0, "out-data": "hello world\n", "out-truncated": 0}
    missing = _run(api, vm, ["cat", "/etc/no-such-file"])
    assert missing["exitcode"] == 1 and "out-data" not in missing
    assert missing["err-data"] == "cat: /etc/no-such-file: No such file or directory\n"
    assert missing["err-truncated"] == 0
    restart = _run(api, vm, ["systemctl", "restart", "nonexistent"])
    assert restart["exitcode"] == 5
    assert restart["err-data"] == (
        "Failed to restart nonexistent.service: Unit nonexistent.service not found.\n"
    )
    inactive = _run(api, vm, ["systemctl", "is-active", "no-such-daemon"])
    assert (inactive["exitcode"], inactive["out-data"]) == (3, "inactive\n")
    assert _run(api, vm, ["systemctl", "is-active", "ssh", "qemu-guest-agent"])["exitcode"] == 0
    assert _run(api, vm, ["false"]) == {"exited": 1, "exitcode": 1}
    for status in (hello, missing, restart, inactive):
        assert pve_schema.validate_returns("GET", template, status, strict=True) == []


def test_input_data_is_the_programs_stdin_and_one_value_is_a_one_item_command(
    api: httpx.Client, vm: Guest
) -> None:
    pid = api.post(f"{_base(vm)}/exec", data={"command": "cat", "input-data": "line 1\nline 2\n"})
    status = _wait(api, vm, pid.json()["data"]["pid"])
    assert status["out-data"] == "line 1\nline 2\n"
    script = _run(api, vm, ["/bin/sh"], **{"input-data": "echo from a script"})
    assert script["out-data"] == "from a script\n"
    assert _run(api, vm, ["sh"], **{"input-data": "hostname"})["out-data"] == f"{vm.name}\n"


def test_output_over_the_agent_cap_is_cut_and_flagged(api: httpx.Client, vm: Guest) -> None:
    status = _run(api, vm, ["seq", "1", "100000"])
    expected = "".join(f"{n}\n" for n in range(1, 100_001))
    assert status["out-truncated"] == 1
    assert len(status["out-data"].encode()) == OUTPUT_CAP_BYTES
    assert status["out-data"] == expected[:OUTPUT_CAP_BYTES]
    journal = _run(api, vm, ["journalctl", "--no-pager"])
    assert journal["out-truncated"] == 1
    assert journal["out-data"].splitlines()[0].split()[3] == vm.name
    short = _run(api, vm, ["journalctl", "-n", "5"])
    assert (short["out-truncated"], len(short["out-data"].splitlines())) == (0, 5)


def test_endless_output_never_exits(handle: SimulatorHandle, api: httpx.Client,
                                    vm: Guest) -> None:  # fmt: skip
    pid = _exec(api, vm, ["yes"])
    handle.call(lambda: handle.state.clock.advance(3600))
    assert api.get(f"{_base(vm)}/exec-status", params={"pid": pid}).json()["data"] == {"exited": 0}
    assert _run(api, vm, ["sh", "-c", "yes | head -n 3"])["out-data"] == "y\ny\ny\n"


# --------------------------------------------------------- the guest's answers


def test_commands_agree_with_the_agents_structured_answers(api: httpx.Client, vm: Guest) -> None:
    osinfo = api.get(f"{_base(vm)}/get-osinfo").json()["data"]["result"]
    assert {"id", "name", "pretty-name", "version", "version-id", "kernel-release",
            "kernel-version", "machine"} <= set(osinfo)  # fmt: skip
    uname = _run(api, vm, ["uname", "-a"])["out-data"]
    assert uname.startswith(f"Linux {vm.name} {osinfo['kernel-release']} ")
    assert _run(api, vm, ["uname", "-r"])["out-data"] == osinfo["kernel-release"] + "\n"
    release = _run(api, vm, ["cat", "/etc/os-release"])["out-data"]
    assert f'PRETTY_NAME="{osinfo["pretty-name"]}"' in release
    assert f"ID={osinfo['id']}" in release.splitlines()
    interfaces = api.get(f"{_base(vm)}/network-get-interfaces").json()["data"]["result"]
    brief = _run(api, vm, ["ip", "-br", "a"])["out-data"].splitlines()
    assert [line.split()[0] for line in brief] == [i["name"] for i in interfaces]
    for line, iface in zip(brief, interfaces, strict=True):
        addresses = [f"{a['ip-address']}/{a['prefix']}" for a in iface["ip-addresses"]]
        assert line.split()[2:] == addresses
    nic = interfaces[1]
    assert nic["hardware-address"] == vm.mac.lower()
    assert set(nic["statistics"]) >= {"rx-bytes", "tx-bytes", "rx-packets", "tx-packets"}
    assert _run(api, vm, ["hostname"])["out-data"] == f"{vm.name}\n"
    assert _run(api, vm, ["whoami"])["out-data"] == "root\n"
    assert api.post(f"{_base(vm)}/ping").json() == {"data": {"result": {}}}


def test_everyday_commands_answer_plausibly(api: httpx.Client, vm: Guest) -> None:
    df = _run(api, vm, ["df", "-h"])["out-data"].splitlines()
    assert df[0].split() == ["Filesystem", "Size", "Used", "Avail", "Use%", "Mounted", "on"]
    root = next(line.split() for line in df if line.endswith(" /"))
    assert root[1] == f"{vm.disk_gib}G"
    free = _run(api, vm, ["free", "-m"])["out-data"].splitlines()
    assert free[1].split()[0] == "Mem:" and 0 < int(free[1].split()[1]) <= vm.memory_mib
    assert " up " in _run(api, vm, ["uptime"])["out-data"]
    assert "etc" in _run(api, vm, ["ls", "/"])["out-data"].splitlines()
    assert _run(api, vm, ["id"])["out-data"].startswith("uid=0(root)")
    assert _run(api, vm, ["date", "+%Y"])["out-data"].strip().isdigit()


def test_sh_runs_lists_and_pipelines_and_says_what_it_does_not_simulate(
    api: httpx.Client, vm: Guest
) -> None:
    both = _run(api, vm, ["/bin/sh", "-c", "echo hi && echo there"])
    assert (both["exitcode"], both["out-data"]) == (0, "hi\nthere\n")
    assert _run(api, vm, ["sh", "-c", "false || echo fallback"])["out-data"] == "fallback\n"
    assert _run(api, vm, ["sh", "-c", "seq 1 10 | head -n 2"])["out-data"] == "1\n2\n"
    unknown = _run(api, vm, ["/bin/sh", "-c", "frobnicate --now"])
    assert unknown["exitcode"] == 127
    assert "frobnicate: not found" in unknown["err-data"]
    refused = _run(api, vm, ["sh", "-c", "echo $HOME > /tmp/x"])
    assert refused["exitcode"] == 2 and "simulator" in refused["err-data"]


def test_a_program_that_does_not_exist_fails_at_spawn(api: httpx.Client, vm: Guest) -> None:
    for program in ("frobnicate", "/usr/local/sbin/frobnicate"):
        response = api.post(f"{_base(vm)}/exec", json={"command": [program, "-x"]})
        assert response.status_code == 500
        message = response.json()["message"]
        assert message.startswith("Agent error: ")
        assert SPAWN_FAILED.format(program) in message


# -------------------------------------------------------------- availability


def test_agent_checks_come_in_pves_order(handle: SimulatorHandle, api: httpx.Client) -> None:
    no_agent_running = _guest(handle, agent=False)
    no_agent_stopped = _guest(handle, running=False, agent=False)
    stopped = _guest(handle, running=False, windows=None)
    cases = [
        (no_agent_running, "No QEMU guest agent configured"),
        (no_agent_stopped, "No QEMU guest agent configured"),
        (stopped, f"VM {stopped.vmid} is not running"),
    ]
    for guest, reason in cases:
        for method, leaf, body in (("POST", "exec", {"command": "true"}),
                                   ("GET", "exec-status", {"pid": 1}),
                                   ("POST", "ping", {}), ("GET", "get-osinfo", {})):  # fmt: skip
            sent = {"params": body} if method == "GET" else {"data": body}
            response = api.request(method, f"{_base(guest)}/{leaf}", **sent)
            assert (response.status_code, response.reason_phrase) == (500, reason), leaf


def test_an_agent_that_stopped_answering(fresh_sim: SimulatorHandle) -> None:
    vm = _guest(fresh_sim)
    fresh_sim.call(lambda: fresh_sim.state.agents.set_responsive(vm.vmid, False))
    with _client(fresh_sim) as api:
        response = api.post(f"{_base(vm)}/ping")
        assert (response.status_code, response.reason_phrase) == (
            500, "QEMU guest agent is not running")  # fmt: skip


def test_a_reboot_forgets_running_processes(fresh_sim: SimulatorHandle) -> None:
    vm = _guest(fresh_sim)
    with _client(fresh_sim) as api:
        pid = _exec(api, vm, ["sleep", "600"])
        assert api.post(f"/nodes/{vm.node}/qemu/{vm.vmid}/status/reboot").status_code == 200
        fresh_sim.call(lambda: fresh_sim.state.clock.advance(10))
        response = api.get(f"{_base(vm)}/exec-status", params={"pid": pid})
        assert response.status_code == 500
        assert response.reason_phrase.endswith(f"PID {pid} does not exist")


def test_windows_guest(fresh_sim: SimulatorHandle) -> None:
    win = _guest(fresh_sim, running=False, windows=True)
    with _client(fresh_sim) as api:
        assert api.post(f"/nodes/{win.node}/qemu/{win.vmid}/status/start").status_code == 200
        fresh_sim.call(lambda: fresh_sim.state.clock.advance(10))
        osinfo = api.get(f"{_base(win)}/get-osinfo").json()["data"]["result"]
        assert (osinfo["id"], osinfo["name"]) == ("mswindows", "Microsoft Windows")
        assert _run(api, win, ["hostname"])["out-data"] == f"{win.name.upper()}\r\n"
        response = api.post(f"{_base(win)}/exec", json={"command": ["uname", "-a"]})
        assert response.status_code == 500
        assert SPAWN_FAILED.format("uname") in response.json()["message"]


def test_containers_have_no_agent_endpoints(handle: SimulatorHandle, api: httpx.Client) -> None:
    ct = _guest(handle, kind="lxc")
    response = api.post(f"{_base(ct)}/exec", data={"command": "ls"})
    assert response.status_code == 501
    assert response.reason_phrase == f"Method 'POST {_base(ct)}/exec' not implemented"
    as_vm = api.post(f"/nodes/{ct.node}/qemu/{ct.vmid}/agent/ping")
    assert (as_vm.status_code, as_vm.reason_phrase) == (
        500,
        f"Configuration file 'nodes/{ct.node}/qemu-server/{ct.vmid}.conf' does not exist",
    )


# ---------------------------------------------------------- privileges, params


def test_readonly_token_may_inspect_but_not_execute(
    api: httpx.Client, auditor: httpx.Client, vm: Guest
) -> None:
    base = _base(vm)
    for response in (auditor.post(f"{base}/exec", data={"command": "ls"}),
                     auditor.get(f"{base}/exec-status", params={"pid": 1})):  # fmt: skip
        assert (response.status_code, response.reason_phrase) == (
            403,
            f"Permission check failed (/vms/{vm.vmid}, VM.GuestAgent.Unrestricted)",
        )
    assert auditor.post(f"{base}/ping").status_code == 200
    assert auditor.get(f"{base}/get-osinfo").json()["data"]["result"]["name"]
    assert auditor.get(f"{base}/network-get-interfaces").json()["data"]["result"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"command": "property is missing and it is not optional"}),
        ({"command": [{"a": 1}]}, {"command[0]": "type check ('string') failed - got HASH"}),
        ({"command": ""}, {"command": "type check ('array') failed"}),
        ({"command": ["cat"], "input-data": "x" * 65537},
         {"input-data": "value may only be 65536 characters long"}),
        ({"command": ["ls"], "bogus": 1}, {"bogus": "property is not defined in schema and the "
                                           "schema does not allow additional properties"}),
    ],
)  # fmt: skip
def test_exec_parameters_are_checked_like_pve(
    api: httpx.Client, vm: Guest, pve_schema: ModuleType, body: dict[str, Any],
    errors: dict[str, str],
) -> None:  # fmt: skip
    path = f"{_base(vm)}/exec"
    assert pve_schema.validate_request("POST", path, body) != []
    response = api.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["errors"] == errors


def test_accepted_exec_parameters_agree_with_the_schema(
    api: httpx.Client, vm: Guest, pve_schema: ModuleType
) -> None:
    path = f"{_base(vm)}/exec"
    for body in ({"command": "uptime"}, {"command": ["echo", 5]},
                 {"command": ["cat"], "input-data": "x" * 65536}):  # fmt: skip
        assert pve_schema.validate_request("POST", path, body) == []
        assert api.post(path, json=body).status_code == 200
    bad_pid = api.get(f"{_base(vm)}/exec-status", params={"pid": "abc"})
    assert bad_pid.json()["errors"] == {"pid": "type check ('integer') failed - got 'abc'"}
