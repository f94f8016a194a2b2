"""``pve_guest_exec`` on LXC containers: ``pct exec`` over SSH (core/pve_ssh.py).

Why an SSH server of our own: the simulator serves the PVE API (HTTPS), not SSH, and the
API has no exec for containers. So each test starts ``FakeNode``, an in-process asyncssh
*server* on 127.0.0.1 that stands in for a PVE node: a fresh host key, only the test's
client key authorised, and a command handler that parses the command line the way the
node's login shell (POSIX sh) would — refusing anything the shell would interpret instead
of passing on — then accepts only ``pct exec VMID -- ARGV...``. It answers like pct: a
container that is not in the simulator on this node gets pct's "Configuration file ...
does not exist" (exit 255), a stopped one lxc-attach's "Failed to get init pid" (exit 1),
and a running one runs ARGV with the simulator's guest programs (the same ones the QEMU
guest agent runs), honouring their simulated duration at the simulator's speed.

What loopback verifies: the real asyncssh client, host key checking against a real
known_hosts file, public-key login, the exact command string a shell receives, stdin,
exit codes, output caps, timeouts and channel closing, pooling. What it cannot: a real
sshd and login shell, real pct/lxc-attach output on a PVE node.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pydantic import SecretStr

from core.audit import AuditLog
from core.config import PveSshSettings, load_settings
from core.errors import (
    AuthError,
    ConfigError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PolicyDenied,
    ServerError,
    Unreachable,
)
from core.models import ExecResult
from core.pve_ssh import HostKeyError, pct_command
from core.service import Labdeck
from labdeck.demo import demo_profile
from simulator import SimulatorHandle
from simulator.guest_commands import Session, Stream
from simulator.guest_os import services_for
from simulator.guest_shell import SpawnFailed, run_argv
from tests.test_tui_exec import SIZE, log_text, open_pane, run, settle
from tui.app import LabdeckApp

CONTAINER = 100  # pihole: LXC, running, on pve1
STOPPED_CONTAINER = 122  # wireguard: LXC, stopped, on pve2
VM = 107  # home-assistant: QEMU, agent on
PASSPHRASE = "canary-passphrase-7f3a9"  # must never show in an error

# ----------------------------------------------------------------- the login shell's view

# Characters POSIX sh takes literally outside quotes (shlex.quote leaves exactly these bare).
_LITERAL = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


class ShellWouldInterpret(Exception):
    """The command line has something the node's login shell would act on."""


def sh_words(line: str) -> list[str]:
    """Split ``line`` into words as sh would, for lines made only of literal characters,
    '...' and "..." without $, ` or \\ inside. Anything else would be interpreted by the
    shell (expansion, operators, redirections...): raise, so a quoting bug fails the test
    instead of being silently "executed"."""
    words: list[str] = []
    word: list[str] = []
    started = False
    index = 0
    while index < len(line):
        char = line[index]
        if char in "'\"":
            end = line.find(char, index + 1)
            if end < 0:
                raise ShellWouldInterpret(f"an unterminated {char} quote")
            quoted = line[index + 1 : end]
            if char == '"' and any(c in quoted for c in "$`\\"):
                raise ShellWouldInterpret(f"an expansion inside double quotes: {quoted!r}")
            word.append(quoted)
            started = True
            index = end + 1
        elif char == " ":
            if started:
                words.append("".join(word))
                word, started = [], False
            index += 1
        elif char in _LITERAL:
            word.append(char)
            started = True
            index += 1
        else:
            raise ShellWouldInterpret(f"an unquoted {char!r} at {index}")
    if started:
        words.append("".join(word))
    return words


# ----------------------------------------------------------------- the fake node


@dataclass
class Reply:
    stdout: str = ""
    stderr: str = ""
    code: int = 0
    seconds: float = 0.0  # real seconds the command runs; inf: until the channel closes


@dataclass
class FakeNode:
    """A PVE node as seen over SSH (see the module docstring)."""

    sim: SimulatorHandle
    node: str
    host_key: asyncssh.SSHKey
    port: int = 0
    connections: int = 0
    open_connections: int = 0
    commands: list[str] = field(default_factory=list)
    argvs: list[list[str]] = field(default_factory=list)
    stdins: list[str] = field(default_factory=list)
    abandoned: int = 0  # commands whose channel the client closed before they ended
    refused_lines: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    sudo_needs_password: bool = False
    running: asyncio.Event = field(default_factory=asyncio.Event)  # a command has started
    channel_closed_early: asyncio.Event = field(default_factory=asyncio.Event)
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        public = (key or self.host_key).export_public_key().decode().strip()
        return f"[127.0.0.1]:{self.port} {public}\n"

    async def handle(self, process: asyncssh.SSHServerProcess[str]) -> None:
        line = process.command or ""
        self.commands.append(line)
        self.users.append(str(process.get_extra_info("username")))
        try:
            words = sh_words(line)
        except ShellWouldInterpret as exc:
            self.refused_lines.append(line)
            process.stderr.write(f"fake node: the login shell would interpret {exc}\n")
            process.exit(2)
            return
        stdin = await process.stdin.read()
        self.stdins.append(stdin)
        reply = await asyncio.to_thread(self.sim.call, lambda: self._pct(words, stdin))
        process.stdout.write(reply.stdout)
        process.stderr.write(reply.stderr)
        self.running.set()
        ending = asyncio.ensure_future(process.wait_closed())
        done, _ = await asyncio.wait({ending}, timeout=None if math.isinf(reply.seconds)
                                     else reply.seconds)  # fmt: skip
        if done:
            self.abandoned += 1
            self.channel_closed_early.set()
            return
        ending.cancel()
        process.exit(reply.code)

    def _pct(self, words: list[str], stdin: str) -> Reply:
        """pct exec on this node (runs on the simulator's loop, where its state lives)."""
        if words[:2] == ["sudo", "-n"]:
            if self.sudo_needs_password:
                return Reply(stderr="sudo: a password is required\n", code=1)
            words = words[2:]
        if words[:2] != ["pct", "exec"] or len(words) < 5 or words[3] != "--":
            return Reply(stderr="fake node: only `pct exec VMID -- ARGV...` is served\n", code=2)
        vmid, argv = words[2], words[4:]
        self.argvs.append(argv)
        state = self.sim.state
        guest = state.guests.get(int(vmid)) if vmid.isdigit() else None
        if guest is None or guest.kind != "lxc" or guest.node != self.node:
            # pct's load_config dies; the CLI handler exits 255
            return Reply(stderr=f"Configuration file 'nodes/{self.node}/lxc/{vmid}.conf' "
                         "does not exist\n", code=255)  # fmt: skip
        if not guest.running:
            prefix = f"lxc-attach: {vmid}: ../src/lxc/attach.c:"
            return Reply(stderr=f"{prefix} get_attach_context: 405 Connection refused - Failed "
                         f"to get init pid\n{prefix} lxc_attach: 1470 Connection refused - "
                         "Failed to get attach context\n", code=1)  # fmt: skip
        machine = state.machine(guest)
        session = Session(machine, set(machine.services), services_for(guest, machine.distro))
        try:
            outcome = run_argv(session, argv, Stream(stdin))
        except SpawnFailed as failure:
            return Reply(stderr=f"lxc-attach: {vmid}: ../src/lxc/attach.c: "
                         "lxc_attach_run_command: 1841 No such file or directory - Failed to "
                         f'exec "{failure.program}"\n', code=127)  # fmt: skip
        seconds = math.inf if outcome.more == "endless" else outcome.seconds / state.clock.speed
        return Reply(outcome.stdout, outcome.stderr, outcome.exitcode, seconds)


class _Counting(asyncssh.SSHServer):
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.node.connections += 1
        self.node.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.node.open_connections -= 1
        if not self.node.open_connections:
            self.node.all_closed.set()


@dataclass
class Keys:
    client: asyncssh.SSHKey
    key_file: Path
    known_hosts: Path


@asynccontextmanager
async def fake_node(sim: SimulatorHandle, tmp_path: Path, node: str = "pve1",
                    *, authorise: bool = True) -> AsyncIterator[tuple[FakeNode, Keys]]:  # fmt: skip
    """A running fake node plus a 0600 client key and a known_hosts file that trusts it."""
    fake = FakeNode(sim, node, asyncssh.generate_private_key("ssh-ed25519"))
    client = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(
        client.export_public_key().decode() if authorise else ""
    )
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[fake.host_key], authorized_client_keys=authorized,
        process_factory=fake.handle, server_factory=lambda: _Counting(fake),
        encoding="utf-8", errors="replace",
    )  # fmt: skip
    fake.port = server.sockets[0].getsockname()[1]
    key_file = tmp_path / "id_labdeck"
    key_file.write_bytes(client.export_private_key())
    key_file.chmod(0o600)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(fake.known_hosts_line())
    try:
        yield fake, Keys(client, key_file, known_hosts)
    finally:
        server.close()
        await server.wait_closed()


def ssh_service(sim: SimulatorHandle, fake: FakeNode, keys: Keys, audit: AuditLog, *,
                allow_writes: bool = True, protected: tuple[str, ...] = (),
                **ssh: Any) -> Labdeck:  # fmt: skip
    """A Labdeck on the simulator whose [pve.ssh] reaches ``fake`` through the hosts map."""
    profile = demo_profile(sim, allow_writes=allow_writes)
    profile.policy.protected = list(protected)
    settings: dict[str, Any] = {
        "enabled": True, "port": fake.port, "key_file": keys.key_file,
        "known_hosts": str(keys.known_hosts), "hosts": {fake.node: "127.0.0.1"},
        "connect_timeout_s": 5.0,
    }  # fmt: skip
    settings.update(ssh)
    profile.pve.ssh = PveSshSettings(**settings)
    return Labdeck(profile, face="cli", audit=audit)


async def exec_in(lab: Labdeck, vmid: int, command: Any, **extra: Any) -> ExecResult:
    result = await lab.call("pve_guest_exec", {"vmid": vmid, "command": command, **extra})
    assert isinstance(result, ExecResult)
    return result


# ----------------------------------------------------------------- results


async def test_a_command_runs_in_the_container_over_ssh(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, CONTAINER, ["uname", "-n"])
    assert fake.commands == ["pct exec 100 -- uname -n"]
    assert (result.vmid, result.node, result.command) == (CONTAINER, "pve1", ["uname", "-n"])
    assert result.exited and result.ok and result.exit_code == 0 and result.signal is None
    assert result.stdout == "pihole\n" and result.stderr == ""
    assert not result.out_truncated and not result.err_truncated
    assert result.pid is None and result.message.startswith("exited 0")


async def test_a_failing_command_reports_its_exit_code_and_stderr(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            missing = await exec_in(lab, CONTAINER, ["cat", "/etc/nope"])
            no_program = await exec_in(lab, CONTAINER, ["nosuchprogram", "-x"])
    assert missing.exited and not missing.ok and missing.exit_code == 1
    assert missing.stdout == "" and "/etc/nope: No such file or directory" in missing.stderr
    assert missing.message.startswith("FAILED: exit code 1")
    # lxc-attach cannot exec it: 127 and its message, as a command result (not an error)
    assert no_program.exit_code == 127 and 'Failed to exec "nosuchprogram"' in no_program.stderr


async def test_stdin_reaches_the_command(sim, tmp_path, audit_log) -> None:
    text = "line one\nline two with 'quotes' and $HOME\n"
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, CONTAINER, ["cat"], input_data=text)
            without = await exec_in(lab, CONTAINER, ["cat"])  # stdin closed: no hang
    assert result.ok and result.stdout == text
    assert without.ok and without.stdout == "" and fake.stdins == [text, ""]


async def test_output_is_capped_and_flagged(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, CONTAINER, ["seq", "1", "5000"], max_output_chars=100)
            errors = await exec_in(lab, CONTAINER, ["cat", *[f"/nope{i}" for i in range(20)]],
                                   max_output_chars=50)  # fmt: skip
    assert result.ok and result.out_truncated and not result.err_truncated
    assert result.stdout == "".join(f"{i}\n" for i in range(1, 5001))[:100]
    assert errors.err_truncated and len(errors.stderr) == 50 and errors.exit_code == 1


async def test_a_shell_string_runs_in_the_containers_shell(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, CONTAINER, "echo one; echo two | wc -l", shell=True)
    assert fake.argvs == [["/bin/sh", "-c", "echo one; echo two | wc -l"]]
    assert result.ok and result.stdout == "one\n1\n"


@pytest.mark.parametrize(
    "payload",
    ["; rm -rf /", "$(rm -rf /)", "`rm -rf /`", "a\nrm -rf /", "x' ; rm -rf / ; echo '",
     '"; rm -rf / #', "&& reboot", "| sh", "> /etc/passwd", "\\", "*", "~root", ""],
)  # fmt: skip
async def test_injection_attempts_arrive_as_one_literal_argument(
    sim, tmp_path, audit_log, payload: str
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, CONTAINER, ["echo", "before", payload, "after"])
    assert fake.refused_lines == []  # the login shell would have acted on nothing
    assert fake.argvs == [["echo", "before", payload, "after"]]
    assert result.ok and result.stdout == f"before {payload} after\n"


def test_the_command_line_quotes_every_word() -> None:
    line = pct_command(100, ["echo", "it's", "$(id)"], sudo=True)
    assert line == "sudo -n pct exec 100 -- echo 'it'\"'\"'s' '$(id)'"
    assert sh_words(line) == ["sudo", "-n", "pct", "exec", "100", "--", "echo", "it's", "$(id)"]


async def test_a_nul_character_is_refused_before_connecting(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(InvalidInput, match="NUL"):
                await exec_in(lab, CONTAINER, ["echo", "a\0b"])
    assert fake.connections == 0


async def test_a_non_root_user_runs_pct_through_sudo(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log, user="labdeck", sudo=True) as lab:
            result = await exec_in(lab, CONTAINER, ["hostname"])
            fake.sudo_needs_password = True
            with pytest.raises(PermissionDenied) as caught:
                await exec_in(lab, CONTAINER, ["hostname"])
    assert result.ok and result.stdout == "pihole\n"
    assert fake.commands[0] == "sudo -n pct exec 100 -- hostname"
    assert fake.users == ["labdeck", "labdeck"]
    assert "sudo on node pve1 asked for a password" in caught.value.message
    assert "NOPASSWD: /usr/sbin/pct exec *" in str(caught.value.hint)


# ----------------------------------------------------------------- time and cancellation


async def test_a_timeout_closes_the_channel_and_says_the_command_may_go_on(
    sim, tmp_path, audit_log
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, CONTAINER, ["sleep", "3600"], timeout_s=0.3)
            await asyncio.wait_for(fake.channel_closed_early.wait(), 10)  # the node sees it
            after = await exec_in(lab, CONTAINER, ["hostname"])  # the connection still works
    assert not result.exited and not result.ok and result.exit_code is None
    assert "may go on running" in result.message and "3600" not in result.message
    assert after.ok and after.stdout == "pihole\n" and fake.connections == 1


async def test_cancelling_closes_the_channel_and_keeps_the_connection(
    sim, tmp_path, audit_log
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            task = asyncio.create_task(exec_in(lab, CONTAINER, ["yes"]))
            await asyncio.wait_for(fake.running.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(fake.channel_closed_early.wait(), 10)  # the node sees it
            after = await exec_in(lab, CONTAINER, ["hostname"])
    assert after.ok and fake.connections == 1
    assert audit_log.read()[-2]["outcome"] == "error"  # the cancelled call is audited too


async def test_connections_are_pooled_per_node_and_closed_by_aclose(
    sim, tmp_path, audit_log
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        lab = ssh_service(sim, fake, keys, audit_log)
        results = await asyncio.gather(
            *(exec_in(lab, CONTAINER, ["echo", str(i)]) for i in range(5))
        )
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]
        assert fake.connections == 1 and lab.pct_exec.open_connections == 1
        await lab.aclose()
        await asyncio.wait_for(fake.all_closed.wait(), 10)
    assert fake.connections == 1


# ----------------------------------------------------------------- pct's own errors


async def test_a_stopped_container_gives_pcts_error(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path, node="pve2") as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(ServerError) as caught:
                await exec_in(lab, STOPPED_CONTAINER, ["hostname"])
    assert "CT 122 is not running" in caught.value.message
    assert "Failed to get init pid" in caught.value.message and caught.value.hint


async def test_a_container_on_another_node_is_not_found_there(sim, tmp_path, audit_log) -> None:
    # pve2 is mapped to a node that says it is pve1: pct there does not know CT 110
    async with fake_node(sim, tmp_path, node="pve1") as (fake, keys):
        lab = ssh_service(sim, fake, keys, audit_log, hosts={"pve2": "127.0.0.1"})
        async with lab:
            with pytest.raises(NotFound, match="CT 110 is not on node pve2"):
                await exec_in(lab, 110, ["hostname"])
    assert fake.commands == ["pct exec 110 -- hostname"]


# ----------------------------------------------------------------- trust and credentials


async def test_an_unknown_host_key_is_refused(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        keys.known_hosts.write_text(f"pve9.example {other}")  # nothing for this node
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(HostKeyError) as caught:
                await exec_in(lab, CONTAINER, ["hostname"])
    assert "is not in" in caught.value.message and "never trusted on first use" in str(caught.value)
    assert "ssh-keyscan" in str(caught.value.hint) and fake.commands == []
    assert audit_log.read()[-1]["error"] == "host_key"


async def test_a_changed_host_key_is_refused(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        impostor = asyncssh.generate_private_key("ssh-ed25519")
        keys.known_hosts.write_text(fake.known_hosts_line(impostor))
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(HostKeyError) as caught:
                await exec_in(lab, CONTAINER, ["hostname"])
    assert "does not match" in caught.value.message
    assert f"ssh-keygen -R '[127.0.0.1]:{fake.port}'" in str(caught.value.hint)
    assert fake.commands == []


async def test_a_missing_known_hosts_file_is_refused_before_connecting(
    sim, tmp_path, audit_log
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        keys.known_hosts.unlink()
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(ConfigError, match="known_hosts file .* does not exist"):
                await exec_in(lab, CONTAINER, ["hostname"])
    assert fake.connections == 0


async def test_a_key_file_others_can_read_is_refused_before_connecting(
    sim, tmp_path, audit_log
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        keys.key_file.chmod(0o644)
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(ConfigError) as caught:
                await exec_in(lab, CONTAINER, ["hostname"])
    assert "readable by others (mode 0644)" in caught.value.message
    assert caught.value.hint == f"Run: chmod 600 {keys.key_file}"
    assert fake.connections == 0


async def test_an_unauthorised_key_is_an_auth_error(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path, authorise=False) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            with pytest.raises(AuthError, match="refused the SSH key for user 'root'"):
                await exec_in(lab, CONTAINER, ["hostname"])
    assert fake.connections == 1 and fake.commands == []


async def test_a_closed_port_is_unreachable(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        pass  # stopped: its port is closed now
    async with ssh_service(sim, fake, keys, audit_log) as lab:
        with pytest.raises(Unreachable, match="cannot reach node pve1 .127.0.0.1. port"):
            await exec_in(lab, CONTAINER, ["hostname"])


@pytest.mark.parametrize("key_format", ["openssh", "pkcs8-pem"])
async def test_an_encrypted_key_uses_the_passphrase_file_and_never_shows_it(
    sim, tmp_path, audit_log, key_format
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        # openssh is ssh-keygen's default format (its encryption needs bcrypt); PKCS#8 too
        keys.key_file.write_bytes(keys.client.export_private_key(key_format, PASSPHRASE))
        secret = tmp_path / "passphrase"
        secret.write_text(PASSPHRASE + "\n")
        secret.chmod(0o600)
        async with ssh_service(sim, fake, keys, audit_log, key_passphrase_file=secret) as lab:
            result = await exec_in(lab, CONTAINER, ["hostname"])
        assert result.ok and result.stdout == "pihole\n"
        errors = []
        for settings in ({"key_passphrase": SecretStr("wrong-" + PASSPHRASE)}, {}):
            async with ssh_service(sim, fake, keys, audit_log, **settings) as lab:
                with pytest.raises(ConfigError) as caught:
                    await exec_in(lab, CONTAINER, ["hostname"])
                errors.append(caught.value)
    assert "does not decrypt it" in errors[0].message
    assert "is encrypted and no passphrase is configured" in errors[1].message
    shown = [str(e) for e in errors] + [str(e.to_dict()) for e in errors]
    shown.append(audit_log.path.read_text())
    assert not any(PASSPHRASE in text for text in shown)


def test_the_settings_read_from_toml_and_guard_the_passphrase(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[pve]\nhost = "pve1.lan"\n[pve.ssh]\nenabled = true\nkey_file = "~/.ssh/labdeck"\n'
        '[pve.ssh.hosts]\npve1 = " 10.0.0.11 "\n'
    )
    config.chmod(0o644)
    ssh = load_settings(config).pve.ssh
    assert (ssh.enabled, ssh.user, ssh.port, ssh.sudo) == (True, "root", 22, False)
    assert ssh.hosts == {"pve1": "10.0.0.11"} and ssh.known_hosts == "~/.ssh/known_hosts"
    with config.open("a") as out:  # a passphrase in a file others can read is refused
        out.write(f'[profiles.b.pve.ssh]\nkey_passphrase = "{PASSPHRASE}"\n')
    with pytest.raises(ConfigError, match="holds a secret but is readable by others"):
        load_settings(config)
    with pytest.raises(ValueError, match="give a host name or IP address"):
        PveSshSettings(hosts={"pve1": "10.0.0.11 rm"})


# ----------------------------------------------------------------- policy and audit


async def test_disabled_ssh_refuses_containers_with_how_to_enable(
    sim, tmp_path, audit_log, make_service
) -> None:
    async with make_service(sim, allow_writes=True) as lab:
        with pytest.raises(InvalidInput) as caught:
            await exec_in(lab, CONTAINER, ["hostname"])
    assert "is an LXC container" in caught.value.message
    assert "[pve.ssh]" in str(caught.value.hint) and "enabled = true" in str(caught.value.hint)


async def test_read_only_mode_refuses_before_connecting(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log, allow_writes=False) as lab:
            with pytest.raises(PolicyDenied):
                await exec_in(lab, CONTAINER, ["hostname"])
    assert fake.connections == 0
    assert audit_log.read()[-1]["outcome"] == "refused"


async def test_protected_containers_are_refused_before_connecting(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log, protected=("name:pihole",)) as lab:
            with pytest.raises(PolicyDenied):
                await exec_in(lab, CONTAINER, ["hostname"])
    assert fake.connections == 0


async def test_each_command_writes_an_audit_line(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            await exec_in(lab, CONTAINER, ["cat", "/etc/nope"])
    line = audit_log.read()[-1]
    assert line["operation"] == "pve_guest_exec" and line["access"] == "write"
    assert line["target"] == "lxc/100@pve1" and line["outcome"] == "ok"
    assert line["params"]["command"] == ["cat", "/etc/nope"]
    assert (line["exit_code"], line["exited"]) == (1, True)


async def test_vms_still_use_the_guest_agent(sim, tmp_path, audit_log) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        async with ssh_service(sim, fake, keys, audit_log) as lab:
            result = await exec_in(lab, VM, ["hostname"])
    assert result.ok and result.pid is not None and fake.connections == 0


# ----------------------------------------------------------------- the dashboard pane

FROZEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


async def test_the_pane_runs_commands_in_a_container_when_ssh_is_enabled(
    sim, tmp_path, audit_log
) -> None:
    async with fake_node(sim, tmp_path) as (fake, keys):
        service = ssh_service(sim, fake, keys, audit_log)
        app = LabdeckApp(service, refresh_interval=3600.0, clock=lambda: FROZEN)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            pane = await open_pane(pilot, CONTAINER)
            assert not pane.input.disabled
            assert "commands run with pct exec over SSH on node" in log_text(pane)
            await run(pilot, pane, "hostname")
            await run(pilot, pane, "cat /etc/nope")
            text = log_text(pane)
        await service.aclose()
    assert fake.commands == ["pct exec 100 -- hostname", "pct exec 100 -- cat /etc/nope"]
    assert "pihole" in text.split("$ hostname", 1)[1] and "✔ exit 0" in text
    assert "No such file or directory" in text and "✖ exit 1" in text
