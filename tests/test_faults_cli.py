"""Faults as ``labdeck call`` shows them, for every fault kind of ``simulator.faults``.

The CLI runs in-process (``main([...])``), configured through the environment as a person
would. Each failure: exit code 1, nothing on stdout, ``labdeck: error: <what>`` then the
hint on the next line, no traceback, no secret; the next invocation works once the fault
is gone; a write is sent at most once and leaves one audit line. The matrix is shared with
the MCP tests (``tests.support.faults``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.audit import AuditLog
from labdeck.cli import main
from simulator.cli import read_facts
from tests.support.faults import (
    API,
    GUESTS,
    NAS_READ_FAILURES,
    NAS_WRITE_FAILURES,
    PVE_READ_FAILURES,
    PVE_READ_RECOVERIES,
    PVE_WRITE_FAILURES,
    ROOMY_TIMEOUT_S,
    TIMEOUT_S,
    Case,
    agent_vm,
    assert_clean,
    eventually,
    params,
    rpc_count,
    sent,
    short_truenas_calls,
    start_path,
    start_tasks,
    stopped_vm,
    writes,
)

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"^labdeck: .+ \(\d+\.\d s\)$")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


class Cli:
    """``labdeck call`` against one simulator, configured through the environment."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                 tmp_path: Path) -> None:  # fmt: skip
        self.monkeypatch, self.capsys, self.tmp_path = monkeypatch, capsys, tmp_path
        self.handle: Any = None

    def point_at(self, handle: Any, *, auth: str = "token") -> None:
        """``auth``: token (CA bundle), ticket (user + password) or pinned (fingerprint)."""
        self.handle = handle
        for name in list(os.environ):
            if name.startswith(("LABDECK_", "PROXMOX_", "TRUENAS_")):
                self.monkeypatch.delenv(name)
        values = {
            "XDG_CONFIG_HOME": str(self.tmp_path / "config"),
            "XDG_STATE_HOME": str(self.tmp_path / "state"),
            "PROXMOX_HOST": handle.host, "PROXMOX_PORT": str(handle.port),
            "PROXMOX_USER": handle.token.user, "PROXMOX_TOKEN_NAME": handle.token.token_name,
            "PROXMOX_TOKEN_VALUE": handle.token.secret, "LABDECK_PVE_CA_BUNDLE": handle.ca_path,
            "LABDECK_PVE_TIMEOUT_S": str(TIMEOUT_S),
            "TRUENAS_URL": handle.truenas_url, "TRUENAS_API_KEY": handle.truenas_api_key,
            "LABDECK_TRUENAS_CA_BUNDLE": handle.ca_path,
        }  # fmt: skip
        if auth == "ticket":
            del values["PROXMOX_TOKEN_NAME"], values["PROXMOX_TOKEN_VALUE"]
            values["PROXMOX_USER"] = handle.login.user
            values["LABDECK_PVE_PASSWORD"] = handle.login.password
        if auth == "pinned":
            del values["LABDECK_PVE_CA_BUNDLE"]
            values["LABDECK_PVE_FINGERPRINT"] = handle.cert_fingerprint
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)

    def setenv(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)

    def call(self, *argv: str) -> Run:
        code = main(["call", *argv])
        out, err = self.capsys.readouterr()
        assert_clean(out + err, self.handle)
        return Run(code, out, err)

    def fails(self, *argv: str, case: Case | None = None, needles: tuple[str, ...] = ()) -> str:
        """Run a call that must fail: exit 1, one error line, then at most the hint."""
        run = self.call(*argv)
        assert run.code == 1 and run.out == "", run
        lines = run.err.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("labdeck: error: "))
        assert all(PROGRESS.match(line) for line in lines[:at]), run.err  # a task's progress
        rest = lines[at + 1 :]  # at most the hint, on its own line
        assert len(rest) <= 1 and all(line.startswith("  ") for line in rest), run.err
        for needle in (*(case.needles if case else ()), *needles):
            assert needle in run.err, run.err
        return run.err

    def audited(self, operation: str) -> list[tuple[str, str | None]]:
        log = AuditLog(self.tmp_path / "state" / "labdeck" / "audit.jsonl")
        return [(e["outcome"], e.get("error")) for e in log.read() if e["operation"] == operation]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(monkeypatch, capsys, tmp_path)


# ------------------------------------------------------------------ Proxmox VE reads


@params(PVE_READ_FAILURES)
def test_cli_read_fault_is_one_clear_error_then_the_next_run_works(
    make_sim: Any, cli: Cli, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    cli.point_at(handle)
    cli.fails("pve_list_guests", case=case)
    assert sent(handle, GUESTS) == case.sent  # retried only where a retry may help
    handle.clear_request_log()
    as_json = cli.call("pve_list_guests", "--json")
    assert as_json.code == 1 and json.loads(as_json.out)["error"] == case.error
    assert sent(handle, GUESTS) == case.sent
    handle.faults.clear()
    assert cli.call("pve_list_guests").code == 0
    assert cli.audited("pve_list_guests") == [("error", case.error)] * 2 + [("ok", None)]


@params(PVE_READ_RECOVERIES)
def test_cli_read_retried_through_a_passing_fault_succeeds(
    make_sim: Any, cli: Cli, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    cli.point_at(handle)
    run = cli.call("pve_list_guests")
    assert run.code == 0 and "24 of 24" in run.out and run.err == "", run
    assert sent(handle, GUESTS) == case.sent


# ------------------------------------------------------------------ Proxmox VE writes


@params(PVE_WRITE_FAILURES)
def test_cli_write_fault_sends_once_and_says_how_to_check(
    make_sim: Any, cli: Cli, case: Case
) -> None:
    handle = make_sim(faults=case.spec)
    guest = stopped_vm(handle)
    cli.point_at(handle)
    cli.fails("pve_start_guest", f"vmid={guest.vmid}", "--allow-writes", case=case)
    assert writes(handle) == [("POST", API + start_path(guest))]  # never resent
    assert cli.audited("pve_start_guest") == [("error", case.error)]
    handle.faults.clear()
    assert cli.call("pve_list_tasks", f"vmid={guest.vmid}").code == 0  # the check it suggests
    if case.id in ("reset:after", "malformed", "slow:3"):  # it ran, though the answer failed
        assert eventually(lambda: start_tasks(handle, guest.vmid) == 1)
    else:
        assert start_tasks(handle, guest.vmid) == (1 if case.id == "task-fail" else 0)


def test_cli_exec_with_the_agent_down_says_so_and_sends_once(make_sim: Any, cli: Cli) -> None:
    handle = make_sim(faults="*=agent-down")
    vm = agent_vm(handle)
    cli.point_at(handle)
    cli.setenv("LABDECK_PVE_TIMEOUT_S", str(ROOMY_TIMEOUT_S))  # the exec after must get through
    argv = ("pve_guest_exec", f"vmid={vm.vmid}", 'command=["uname","-a"]', "--allow-writes")
    needles = ("QEMU guest agent is not running", "start the qemu-guest-agent service")
    cli.fails(*argv, needles=needles)
    assert writes(handle) == [("POST", f"{API}/nodes/{vm.node}/qemu/{vm.vmid}/agent/exec")]
    handle.faults.clear()
    assert cli.call(*argv).code == 0
    assert cli.audited("pve_guest_exec") == [("error", "server"), ("ok", None)]


def test_cli_ticket_refused_once_logs_in_again_and_the_write_runs_once(
    make_sim: Any, cli: Cli
) -> None:
    handle = make_sim(faults="POST */status/start=401x1")  # the ticket expired in between
    guest = stopped_vm(handle)
    cli.point_at(handle, auth="ticket")
    cli.setenv("LABDECK_PVE_TIMEOUT_S", str(ROOMY_TIMEOUT_S))
    run = cli.call("pve_start_guest", f"vmid={guest.vmid}", "--allow-writes")
    assert run.code == 0, run
    ticket, start = f"{API}/access/ticket", API + start_path(guest)
    assert [p for _, p in writes(handle)] == [ticket, start, ticket, start]
    assert start_tasks(handle, guest.vmid) == 1


def test_cli_refused_password_names_the_login_and_what_to_check(make_sim: Any, cli: Cli) -> None:
    handle = make_sim(faults="*=401")
    cli.point_at(handle, auth="ticket")
    cli.fails("pve_list_nodes", needles=("refused the login of root@pam", "password"))
    handle.faults.clear()
    assert cli.call("pve_list_nodes").code == 0


@pytest.mark.parametrize(
    ("auth", "needles", "fix"),
    [
        ("token", ("is not trusted", "Set [pve] ca_bundle"), "LABDECK_PVE_CA_BUNDLE"),
        ("pinned", ("no longer matches the configured pin", "update 'fingerprint'"),
         "LABDECK_PVE_FINGERPRINT"),
    ],
)  # fmt: skip
def test_cli_changed_certificate_names_the_fix_and_the_fix_works(
    make_sim: Any, cli: Cli, auth: str, needles: tuple[str, ...], fix: str
) -> None:
    handle = make_sim(faults="GET /cluster/resources=cert-change")
    cli.point_at(handle, auth=auth)
    cli.fails("pve_list_nodes", needles=needles)
    assert sent(handle, GUESTS) == 1  # the request that met the change; no credential after
    cli.setenv(fix, handle.ca_path if auth == "token" else handle.cert_fingerprint)
    assert cli.call("pve_list_nodes").code == 0  # what the hint says to do


# ------------------------------------------------------------------ TrueNAS


@params(NAS_READ_FAILURES)
def test_cli_truenas_read_fault_is_one_clear_error(
    make_sim: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    short_truenas_calls(monkeypatch)
    handle = make_sim(faults=case.spec)
    cli.point_at(handle)
    cli.fails("truenas_list_pools", case=case)
    assert rpc_count(handle, "pool.query") == case.sent
    handle.faults.clear()
    assert cli.call("truenas_list_pools").code == 0


@params(NAS_WRITE_FAILURES)
def test_cli_truenas_write_fault_sends_once(
    make_sim: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    short_truenas_calls(monkeypatch)
    handle = make_sim(faults=case.spec)
    cli.point_at(handle)
    cli.fails("truenas_create_dataset", "name=tank/cli", "--allow-writes", case=case)
    assert rpc_count(handle, "pool.dataset.create") == case.sent
    assert cli.audited("truenas_create_dataset") == [("error", case.error)]
    handle.faults.clear()
    assert cli.call("truenas_list_datasets").code == 0


def test_cli_truenas_job_failure_shows_the_job_s_error(make_sim: Any, cli: Cli) -> None:
    handle = make_sim(faults="RPC app.start=task-fail")
    cli.point_at(handle)
    needles = ("(app.start) failed", "injected fault: the job failed")
    cli.fails("truenas_start_app", "name=jellyfin", "--allow-writes", needles=needles)
    assert rpc_count(handle, "app.start") == 1
    assert cli.audited("truenas_start_app") == [("error", "job_failed")]


def test_cli_truenas_read_is_retried_after_a_drop_and_login_renewed(
    make_sim: Any, cli: Cli
) -> None:
    handle = make_sim(faults="RPC pool.query=ws-dropx1,RPC pool.dataset.query=401x1")
    cli.point_at(handle)
    assert cli.call("truenas_list_pools").code == 0
    assert cli.call("truenas_list_datasets").code == 0
    assert rpc_count(handle, "pool.query") == 2 and rpc_count(handle, "pool.dataset.query") == 2


def test_cli_truenas_changed_certificate_names_the_fix(make_sim: Any, cli: Cli) -> None:
    handle = make_sim(faults="RPC pool.query=cert-change")
    cli.point_at(handle)
    cli.fails("truenas_list_pools", needles=("is not trusted", "Set [truenas] ca_bundle"))


# ------------------------------------------------------------------ labdeck sim --faults


def test_sim_refuses_a_wrong_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--port", "0", "--faults", "GET /version=teapot"]) == 2
    _, err = capsys.readouterr()
    assert "--faults: fault rule 'GET /version=teapot': unknown fault kind" in err
    assert "labdeck sim --help" in err


def test_sim_help_documents_the_fault_grammar(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sim", "--help"])
    out, _ = capsys.readouterr()
    assert info.value.code == 0
    assert "--faults SPEC" in out and "[METHOD] PATTERN=KIND[:ARG][xCOUNT][@NTH][%PROB]" in out
    assert "cert-change" in out and "ws-drop" in out


def test_sim_serves_the_faults_it_was_given(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABDECK_", "PROXMOX_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "sim", "--port", "0",
         "--faults", "GET /cluster/resources=503x1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        facts = read_facts(proc.stdout)
        context = ssl.create_default_context(cafile=facts["CA certificate"])
        headers = {"Authorization": facts["PVE token"]}
        with httpx.Client(verify=context, headers=headers, timeout=5) as client:
            url = facts["PVE URL"] + "/cluster/resources"
            statuses = [client.get(url).status_code for _ in range(2)]
        assert statuses == [503, 200]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
