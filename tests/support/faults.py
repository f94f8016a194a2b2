"""What the fault tests of the MCP server and the CLI share: the fault matrix and its counters.

Every case names the fault (a ``--faults`` rule), what the face must say about it (phrases
of the message *and* of the hint: what went wrong and what to do) and how many requests of
that kind the simulator saw. Counts come from the simulator's request log (TrueNAS: its
method log), so "retried twice" and "sent once" are what the server saw.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from core.truenas import TrueNasClient

API = "/api2/json"
#: the PVE client timeout of the faces under test ([pve] timeout_s)
TIMEOUT_S = 1.0  # room for a loaded 2-core CI machine; slow:3 and timeout are past it
#: the TrueNAS call timeout of the faces under test (see short_truenas_calls)
NAS_TIMEOUT_S = 2.0
#: for tests whose writes must get through on a loaded machine (no timeout is tested there)
ROOMY_TIMEOUT_S = 10.0


# ------------------------------------------------------------------ counters


def writes(handle: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in handle.request_log if m != "GET"]


def sent(handle: Any, path: str, method: str = "GET") -> int:
    """How many ``method path`` requests reached the simulator."""
    return sum(1 for m, p in handle.request_log if (m, p) == (method, API + path))


def rpc_count(handle: Any, name: str) -> int:
    return int(handle.call(lambda: handle.simulator.truenas.method_log.count(name)))


def stopped_vm(handle: Any) -> Any:
    guests = handle.call(lambda: sorted(handle.state.guests.values(), key=lambda g: g.vmid))
    return next(g for g in guests if g.kind == "qemu" and g.status == "stopped" and not g.template)


def agent_vm(handle: Any) -> Any:
    """A running VM whose guest agent answers (until a fault says otherwise)."""
    guests = handle.call(lambda: sorted(handle.state.guests.values(), key=lambda g: g.vmid))
    return next(g for g in guests if g.kind == "qemu" and g.status == "running" and g.agent)


def start_path(guest: Any) -> str:
    return f"/nodes/{guest.node}/qemu/{guest.vmid}/status/start"


def start_tasks(handle: Any, vmid: int) -> int:
    """qmstart tasks the simulator ran for ``vmid``: all of them, since the seeded task
    history holds only updates and backups (a time window would depend on the machine's
    speed, the simulated clock running fast)."""
    tasks = handle.call(handle.state.tasks.everything)
    return sum(1 for t in tasks if t.kind == "qmstart" and t.ident == str(vmid))


def eventually(condition: Callable[[], bool], within_s: float = 10.0) -> bool:
    """Poll ``condition`` until it holds; bounded (not a timing assertion)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def secrets_of(handle: Any) -> list[str]:
    """What must never appear in a face's output: the token secret, password, API key."""
    found = [handle.token.secret, handle.login.password]
    if handle.truenas_api_key:
        found.append(handle.truenas_api_key.split("-", 1)[1])
    return found


def assert_clean(text: str, handle: Any) -> None:
    """No traceback and no secret in what a face showed."""
    assert "Traceback" not in text, text
    for secret in secrets_of(handle):
        assert secret not in text


def short_truenas_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faces build their TrueNAS client with the default 60 s call timeout ([truenas]
    timeout_s, not set by the faces' test profiles); an unanswered call (the timeout fault)
    would hold a test for a minute. The real client, with a short timeout and reconnect
    delay. (A frame that is not JSON needs no timeout: it fails its calls at once.)"""
    monkeypatch.setattr(
        "core.service.TrueNasClient",
        functools.partial(TrueNasClient, call_timeout_s=NAS_TIMEOUT_S, reconnect_delay_s=0.05),
    )


# ------------------------------------------------------------------ the matrix


@dataclass(frozen=True)
class Case:
    """One fault as a face must report it."""

    spec: str
    needles: tuple[str, ...]  # phrases of the message and of its hint
    sent: int  # requests (reads) or writes the server saw
    error: str = ""  # the error kind (JSON output, audit line); "" for a call that succeeds

    @property
    def id(self) -> str:
        return self.spec.rsplit("=", 1)[1]


def params(cases: list[Case]) -> Any:
    return pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in cases])


GUESTS = "/cluster/resources"  # what pve_list_guests reads

#: reads of pve_list_guests that fail: one clear message, retried only where it may help
PVE_READ_FAILURES = [
    Case("GET /cluster/resources=401",
         ("refused the API token root@pam!labdeck", "may be revoked or expired"), 1, "auth"),
    Case("GET /cluster/resources=403",
         ("lacks Sys.Audit on /", "pveum acl modify / --tokens"), 1, "permission"),
    Case("GET /cluster/resources=500",
         ("failed: got unexpected error", "journalctl -u pvedaemon"), 1, "server"),
    Case("GET /cluster/resources=503",
         ("Service Unavailable (HTTP 503)", "retried within its budget"), 3, "server"),
    Case("GET /cluster/resources=429:60",
         ("rate-limiting requests (HTTP 429", "wait 60 s"), 1, "server"),
    Case("GET /cluster/resources=slow:3",
         (f"timed out after {TIMEOUT_S:g} s", "raise [pve] timeout_s"), 3, "unreachable"),
    Case("GET /cluster/resources=timeout:10",
         (f"timed out after {TIMEOUT_S:g} s", "raise [pve] timeout_s"), 3, "unreachable"),
    Case("GET /cluster/resources=reset",
         ("lost the connection", "pveproxy is running"), 3, "unreachable"),
    Case("GET /cluster/resources=malformed",
         ("is not valid JSON", "A proxy between labdeck and pveproxy"), 1, "bad_response"),
]  # fmt: skip

#: reads that a retry carries through: the answer comes, after this many requests
PVE_READ_RECOVERIES = [
    Case("GET /cluster/resources=429:0.2x1", (), 2),  # after the Retry-After it asked for
    Case("GET /cluster/resources=503x2", (), 3),
    Case("GET /cluster/resources=resetx1", (), 2),
    Case("GET /cluster/resources=timeout:10x1", (), 2),
    Case("GET /cluster/resources=slow:0.1", (), 1),  # slow, but within the timeout
]

#: pve_start_guest of a stopped VM: exactly one POST, never resent
PVE_WRITE_FAILURES = [
    Case("POST */status/start=401",
         ("refused the API token root@pam!labdeck", "may be revoked or expired"), 1, "auth"),
    Case("POST */status/start=403",
         ("lacks VM.PowerMgmt on /vms/", "pveum acl modify /vms/"), 1, "permission"),
    Case("POST */status/start=500",
         ("failed: got unexpected error", "never resends a write", "pve_list_tasks"), 1, "server"),
    Case("POST */status/start=503",
         ("Service Unavailable (HTTP 503)", "try again in a moment"), 1, "server"),
    Case("POST */status/start=429",
         ("rate-limiting requests (HTTP 429", "wait 1 s"), 1, "server"),
    Case("POST */status/start=timeout:10",
         (f"timed out after {TIMEOUT_S:g} s", "may or may not have been applied",
          "pve_list_tasks"), 1, "outcome_unknown"),
    Case("POST */status/start=slow:3",
         (f"timed out after {TIMEOUT_S:g} s", "may or may not have been applied",
          "pve_list_tasks"), 1, "outcome_unknown"),
    Case("POST */status/start=reset",
         ("lost the connection", "may or may not have been applied", "pve_list_tasks"),
         1, "outcome_unknown"),
    Case("POST */status/start=reset:after",
         ("lost the connection", "may or may not have been applied", "pve_list_tasks"),
         1, "outcome_unknown"),
    Case("POST */status/start=malformed",
         ("is not valid JSON", "may have been applied", "pve_list_tasks"), 1, "bad_response"),
    Case("POST */status/start=task-fail",
         ("start failed: QEMU exited with code 1",), 1, "task_failed"),
]  # fmt: skip

#: writes that ran on the server although the face could not tell (or said it failed late)
APPLIED_ANYWAY = frozenset({"reset:after", "malformed", "slow:3"})

#: reads of truenas_list_pools
NAS_READ_FAILURES = [
    # the login ended: one new login and one resend, then it is reported
    Case("RPC pool.query=401",
         ("still says the session is not authenticated", "may have been revoked"), 2, "auth"),
    Case("RPC pool.query=403", ("lacks a role", "READONLY_ADMIN"), 1, "permission"),
    Case("RPC pool.query=500",
         ("[EFAULT] injected fault", "/var/log/middlewared.log"), 1, "server"),
    Case("RPC pool.query=ws-drop",
         ("lost the connection to TrueNAS", "Check that TrueNAS is up"), 3, "unreachable"),
    Case("RPC pool.query=timeout:10",
         ("did not answer pool.query in time", "retry later"), 1, "unreachable"),
    # a frame that is not JSON closes the connection at once; the read is asked again once
    Case("RPC pool.query=malformed",
         ("is not JSON-RPC", "A proxy between labdeck and TrueNAS"), 2, "bad_response"),
]  # fmt: skip

#: truenas_create_dataset: exactly one pool.dataset.create, never resent
NAS_WRITE_FAILURES = [
    # middlewared refuses before the method runs: the one resend after a new login is safe
    Case("RPC pool.dataset.create=401",
         ("still says the session is not authenticated", "may have been revoked"), 2, "auth"),
    Case("RPC pool.dataset.create=403", ("lacks a role", "DATASET_WRITE"), 1, "permission"),
    Case("RPC pool.dataset.create=500",
         ("[EFAULT] injected fault", "never resends a change"), 1, "server"),
    Case("RPC pool.dataset.create=ws-drop",
         ("dropped while pool.dataset.create was in flight", "may or may not have been applied",
          "Check the current state"), 1, "outcome_unknown"),
    Case("RPC pool.dataset.create=timeout:10",
         ("did not answer pool.dataset.create in time", "may or may not have been applied"),
         1, "outcome_unknown"),
    Case("RPC pool.dataset.create=malformed",
         ("is not JSON-RPC", "may or may not have been applied", "Check the current state"),
         1, "outcome_unknown"),
]  # fmt: skip
