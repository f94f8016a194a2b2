"""The QEMU guest agent (qemu-ga) inside each simulated VM, seen through PVE's API.

``GuestAgents`` keeps, per guest, the processes started with ``guest-exec`` (each
ends at a simulated time), the next pid, the state of services changed by
``systemctl``, and a fault flag that makes the agent stop answering. Like qemu-ga,
a process's status is handed out once after it exited and then forgotten; a guest
that stops or reboots loses its agent state.

Errors are ``ApiError`` values worded like PVE's ``QemuServer/Agent.pm``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import ApiError, die
from simulator.guest_commands import Session, Stream
from simulator.guest_os import Machine, services_for
from simulator.guest_shell import SpawnFailed, run_argv
from simulator.model import Guest

# qemu-ga keeps at most 16 MiB of each output stream; the simulator keeps less so
# that huge outputs stay cheap. Clients see the same out-truncated flag either way.
OUTPUT_CAP_BYTES = 64 * 1024
NEVER = float("inf")


@dataclass
class AgentProcess:
    pid: int
    end_at: float  # simulated epoch seconds; NEVER for a process that does not end
    exitcode: int
    stdout: bytes
    stderr: bytes
    out_truncated: bool
    err_truncated: bool

    def status(self) -> dict[str, Any]:
        """exec-status once exited: PVE turns qemu-ga's booleans into 0/1, decodes the data."""
        out: dict[str, Any] = {"exited": 1, "exitcode": self.exitcode}
        # qemu-ga (10.1+) sends data and its truncated flag only for a non-empty stream.
        if self.stdout:
            out["out-data"] = self.stdout.decode("utf-8", "replace")
            out["out-truncated"] = int(self.out_truncated)
        if self.stderr:
            out["err-data"] = self.stderr.decode("utf-8", "replace")
            out["err-truncated"] = int(self.err_truncated)
        return out


@dataclass
class GuestAgentState:
    next_pid: int
    processes: dict[int, AgentProcess] = field(default_factory=dict)
    services: set[str] | None = None  # None: as booted
    responsive: bool = True


def _capture(text: str) -> tuple[bytes, bool]:
    data = text.encode("utf-8")
    if len(data) <= OUTPUT_CAP_BYTES:
        return data, False
    return data[:OUTPUT_CAP_BYTES], True


def spawn_error(program: str) -> ApiError:
    """qemu-ga could not start the program (glib's message, wrapped by qemu-ga, then PVE)."""
    reason = f"Failed to execute child process \u201c{program}\u201d (No such file or directory)"
    return die(f"Agent error: Guest agent command failed, error was '{reason}'")


class GuestAgents:
    """Agent state of every guest, created on first use."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"labdeck-agent-{seed}")
        self._agents: dict[int, GuestAgentState] = {}

    def _state(self, vmid: int) -> GuestAgentState:
        agent = self._agents.get(vmid)
        if agent is None:
            agent = GuestAgentState(next_pid=self._rng.randrange(900, 2400))
            self._agents[vmid] = agent
        return agent

    # ------------------------------------------------------------ lifecycle

    def reset(self, vmid: int) -> None:
        """The guest stopped or rebooted: its processes and service changes are gone."""
        old = self._agents.pop(vmid, None)
        if old is not None and not old.responsive:
            self._state(vmid).responsive = False  # a broken agent stays broken

    def set_responsive(self, vmid: int, responsive: bool) -> None:
        """Tests and demos: make the agent in ``vmid`` stop (or resume) answering."""
        self._state(vmid).responsive = responsive

    def process_count(self, vmid: int) -> int:
        return len(self._state(vmid).processes)

    # ----------------------------------------------------------------- calls

    def assert_available(self, guest: Guest) -> None:
        """PVE's three checks, in its order; each is a plain die (HTTP 500)."""
        if not guest.agent:
            raise die("No QEMU guest agent configured")
        if not guest.running:
            raise die(f"VM {guest.vmid} is not running")
        if not self._state(guest.vmid).responsive:
            raise die("QEMU guest agent is not running")

    def services(self, guest: Guest, machine: Machine) -> set[str]:
        agent = self._state(guest.vmid)
        if agent.services is None:
            return set(machine.services)
        return set(agent.services)

    def exec(self, guest: Guest, machine: Machine, argv: list[str], input_data: str | None,
             now: float) -> int:  # fmt: skip
        """``guest-exec``: start ``argv``; returns the pid. The result is known at once
        (the program is simulated) but only reported once its simulated time is up."""
        agent = self._state(guest.vmid)
        session = Session(machine, self.services(guest, machine),
                          services_for(guest, machine.distro))  # fmt: skip
        stdin = Stream(input_data or "")
        try:
            outcome = run_argv(session, argv, stdin)
        except SpawnFailed as failure:
            raise spawn_error(failure.program) from None
        agent.services = session.services
        stdout, out_cut = _capture(outcome.stdout)
        stderr, err_cut = _capture(outcome.stderr)
        if outcome.more == "big":
            out_cut = True
        pid = agent.next_pid
        agent.next_pid += self._rng.randrange(1, 9)
        agent.processes[pid] = AgentProcess(
            pid=pid, end_at=NEVER if outcome.more == "endless" else now + outcome.seconds,
            exitcode=outcome.exitcode, stdout=stdout, stderr=stderr,
            out_truncated=out_cut, err_truncated=err_cut,
        )  # fmt: skip
        return pid

    def exec_status(self, guest: Guest, pid: int, now: float) -> dict[str, Any]:
        """``guest-exec-status``: ``{exited: 0}`` while running; the full status once,
        after which the pid is forgotten."""
        agent = self._state(guest.vmid)
        process = agent.processes.get(pid)
        if process is None:
            raise die(f"VM {guest.vmid} qga command 'guest-exec-status' failed - "
                      f"PID {pid} does not exist")  # fmt: skip
        if now < process.end_at:
            return {"exited": 0}
        del agent.processes[pid]
        return process.status()
