"""``pct exec`` over SSH: commands in LXC containers, which the Proxmox API cannot run.

The API has an exec only for QEMU guests (through their agent). For a container, labdeck
opens SSH to the node that hosts it and runs ``pct exec VMID -- ARGV...`` there. This is
opt-in (``[pve.ssh] enabled``) because it needs a login on the node — root, or a user with
a sudoers rule for ``pct`` only — and it keeps to three rules:

* The node's host key is always checked against ``known_hosts``; an unknown or changed key
  is refused with what to do, never accepted. No agent, no ``~/.ssh/config``, no password:
  only the configured key (mode 0600), so what connects is what the settings say.
* sshd hands the command string to the user's login shell, so every word is quoted with
  ``shlex.quote``: ``; rm -rf /``, ``$(...)``, backticks and newlines reach pct as literal
  single arguments. That quoting is POSIX sh's (bash, dash, zsh — PVE's root uses bash);
  a node user whose login shell is fish or csh is not supported.
* Output is read as it comes and kept up to ``max_output_chars`` per stream (the rest is
  read and dropped, so the command is never blocked by a full window). Past ``timeout_s``
  or on cancellation the channel is closed: we stop waiting; without a terminal the
  command may go on in the container, and the result says so.

One connection per node is kept open and reused (each command is a channel on it); the
service closes them in ``aclose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from core.config import PveSshSettings
from core.errors import (
    AuthError,
    ConfigError,
    InvalidInput,
    LabdeckError,
    NotFound,
    PermissionDenied,
    ServerError,
    Unreachable,
)
from core.models import ExecResult, Guest
from core.secrets import resolve_secret

ReportFn = Callable[[float, str], Awaitable[None]]
READ_CHUNK = 65536
PROGRESS_EVERY_S = 1.0
CLOSE_WAIT_S = 5.0  # at most this long for connections to close in aclose
KEEPALIVE_S = 30.0
# The sshd of the node sends "exit-status" for a normal exit; pct's own failures (a Perl
# die before lxc-attach runs) exit 255, lxc-attach's "cannot attach" exits 1.
_NOT_RUNNING = "Failed to get init pid"
_NO_CONFIG = "does not exist"


class HostKeyError(LabdeckError):
    """The node's SSH host key is unknown or differs from the one in known_hosts."""

    kind = "host_key"


def pct_command(vmid: int, argv: Sequence[str], *, sudo: bool = False) -> str:
    """The command line sshd gives the login shell: every word quoted, nothing interpreted."""
    words = ["pct", "exec", str(int(vmid)), "--", *argv]
    if sudo:
        words = ["sudo", "-n", *words]  # -n: fail instead of waiting for a password
    return " ".join(shlex.quote(word) for word in words)


def _signal_number(name: str) -> int | None:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class _Credentials:
    key: asyncssh.SSHKey
    known_hosts: asyncssh.SSHKnownHosts
    known_hosts_path: Path


class PctExec:
    """SSH connections to the nodes (one each, reused) and ``pct exec`` on them."""

    def __init__(self, settings: PveSshSettings) -> None:
        self.settings = settings
        self._connections: dict[str, asyncssh.SSHClientConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------ settings

    def address(self, node: str) -> str:
        return self.settings.hosts.get(node, node)

    def _endpoint(self, node: str) -> str:
        address = self.address(node)
        shown = address if node == address else f"{node} ({address})"
        return shown if self.settings.port == 22 else f"{shown} port {self.settings.port}"

    def _known_hosts_name(self, node: str) -> str:
        """How ssh-keygen -R and known_hosts name this host."""
        address = self.address(node)
        return address if self.settings.port == 22 else f"[{address}]:{self.settings.port}"

    def check_key_file(self) -> Path:
        """The key file, refused unless only its owner can read it (checked before any I/O)."""
        if self.settings.key_file is None:
            raise ConfigError(
                "[pve.ssh] is enabled but has no key_file.",
                hint="Set [pve.ssh] key_file to a private key whose public half is in the "
                "node's ~/.ssh/authorized_keys (README: Commands in containers).",
            )
        path = self.settings.key_file.expanduser()
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            raise ConfigError(f"cannot read SSH key file {path}: {exc.strerror}.") from None
        if mode & 0o077:
            raise ConfigError(
                f"SSH key file {path} is readable by others (mode {mode:04o}); it is not used.",
                hint=f"Run: chmod 600 {path}",
            )
        return path

    def _credentials(self) -> _Credentials:
        """Key and known hosts, read fresh for each new connection (blocking: run in a thread).

        Reading known_hosts again means a key added after a refusal counts at the next try.
        """
        key_path = self.check_key_file()
        known_path = Path(self.settings.known_hosts).expanduser()
        if not known_path.is_file():
            raise ConfigError(
                f"known_hosts file {known_path} does not exist; labdeck checks every node's "
                "SSH host key and accepts none unseen.",
                hint="Add each node's key after checking its fingerprint (README: Commands in "
                "containers), or point [pve.ssh] known_hosts at the cluster's "
                "/etc/pve/priv/known_hosts.",
            )
        try:
            known = asyncssh.read_known_hosts(str(known_path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read known_hosts file {known_path}: {exc}.") from None
        return _Credentials(self._read_key(key_path), known, known_path)

    def _read_key(self, path: Path) -> asyncssh.SSHKey:
        settings = self.settings
        passphrase: str | None = None
        if (
            settings.key_passphrase_keyring
            or settings.key_passphrase_file
            or (settings.key_passphrase is not None)
        ):
            passphrase = resolve_secret(
                value=settings.key_passphrase, file=settings.key_passphrase_file,
                keyring_entry=settings.key_passphrase_keyring, what="SSH key passphrase",
                setting_names="[pve.ssh] key_passphrase_file, key_passphrase_keyring",
            ).get_secret_value()  # fmt: skip
        try:
            return asyncssh.read_private_key(path, passphrase)
        except (asyncssh.KeyEncryptionError, asyncssh.KeyImportError) as exc:
            raise _key_error(path, str(exc), has_passphrase=passphrase is not None) from None
        except OSError as exc:
            raise ConfigError(f"cannot read SSH key file {path}: {exc.strerror}.") from None

    # ------------------------------------------------------------ connections

    async def _connect(self, node: str) -> asyncssh.SSHClientConnection:
        credentials = await asyncio.to_thread(self._credentials)
        settings = self.settings
        address = self.address(node)
        try:
            return await asyncssh.connect(
                address, port=settings.port, username=settings.user,
                client_keys=[credentials.key], known_hosts=credentials.known_hosts,
                agent_path=None, config=None, password_auth=False, kbdint_auth=False,
                gss_auth=False, gss_kex=False, host_based_auth=False,
                connect_timeout=settings.connect_timeout_s,
                login_timeout=settings.connect_timeout_s, keepalive_interval=KEEPALIVE_S,
            )  # fmt: skip
        except asyncssh.HostKeyNotVerifiable:
            raise self._host_key_error(node, credentials) from None
        except asyncssh.PermissionDenied:
            raise AuthError(
                f"node {self._endpoint(node)} refused the SSH key for user {settings.user!r}.",
                hint=f"Add the key's public half to ~{settings.user}/.ssh/authorized_keys on "
                f"node {node} (ssh-keygen -y -f KEY prints it).",
            ) from None
        except TimeoutError:
            raise Unreachable(
                f"SSH to node {self._endpoint(node)} did not answer within "
                f"{settings.connect_timeout_s:g} s.",
                hint="Is sshd running there, and does [pve.ssh] hosts give the right address?",
            ) from None
        except OSError as exc:
            raise Unreachable(
                f"cannot reach node {self._endpoint(node)} over SSH: "
                f"{exc.strerror or type(exc).__name__}.",
                hint=f"Check sshd on {node}, the port ([pve.ssh] port), and map node names "
                'that do not resolve in [pve.ssh] hosts, e.g. { pve1 = "10.0.0.11" }.',
            ) from None
        except asyncssh.Error as exc:
            raise Unreachable(f"SSH to node {self._endpoint(node)} failed: {exc.reason}.") from None

    def _host_key_error(self, node: str, credentials: _Credentials) -> HostKeyError:
        """Unknown and changed keys both fail verification; known_hosts tells them apart."""
        address = self.address(node)
        path = credentials.known_hosts_path
        listed = credentials.known_hosts.match(address, "", self.settings.port)[0]
        name = self._known_hosts_name(node)
        if listed:
            return HostKeyError(
                f"the SSH host key of node {self._endpoint(node)} does not match the one in "
                f"{path}: the node was reinstalled, or someone is in between. Refused.",
                hint=f"Check the node's key on its console (ssh-keygen -lf "
                f"/etc/ssh/ssh_host_ed25519_key.pub); only if it is right: ssh-keygen -R "
                f"'{name}' -f {path}, then add the new key.",
            )
        return HostKeyError(
            f"the SSH host key of node {self._endpoint(node)} is not in {path}; unknown keys "
            "are refused, never trusted on first use.",
            hint=f"Compare `ssh-keyscan -p {self.settings.port} {address}` with "
            "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the node, then append "
            f"the matching line to {path}.",
        )

    async def _connection(self, node: str) -> tuple[asyncssh.SSHClientConnection, bool]:
        """The pooled connection to ``node`` (opened if needed) and whether it is new."""
        lock = self._locks.setdefault(node, asyncio.Lock())
        async with lock:
            conn = self._connections.get(node)
            if conn is not None and not conn.is_closed():
                return conn, False
            conn = await self._connect(node)
            self._connections[node] = conn
            return conn, True

    def _forget(self, node: str, conn: asyncssh.SSHClientConnection) -> None:
        if self._connections.get(node) is conn:
            del self._connections[node]
        conn.close()

    @property
    def open_connections(self) -> int:
        return sum(1 for conn in self._connections.values() if not conn.is_closed())

    async def aclose(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        for conn in connections:
            conn.close()
        if connections:
            # a node that does not answer the close is left behind, not waited for forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await asyncio.gather(*(conn.wait_closed() for conn in connections))

    # ------------------------------------------------------------ commands

    async def _open_process(
        self, node: str, command: str
    ) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHClientProcess[str]]:
        """A channel running ``command``; a pooled connection that died is replaced once."""
        while True:
            conn, fresh = await self._connection(node)
            try:
                async with asyncio.timeout(self.settings.connect_timeout_s):
                    process = await conn.create_process(command, encoding="utf-8",
                                                        errors="replace")  # fmt: skip
                return conn, process
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                self._forget(node, conn)
                if fresh:
                    reason = getattr(exc, "reason", None) or type(exc).__name__
                    raise Unreachable(
                        f"node {self._endpoint(node)} accepted SSH but would not run a "
                        f"command: {reason}."
                    ) from None

    async def run(
        self,
        guest: Guest,
        argv: list[str],
        *,
        input_data: str | None,
        timeout_s: float,
        max_output_chars: int,
        report: ReportFn | None = None,
    ) -> ExecResult:
        """Run ``argv`` in container ``guest`` with pct exec on its node; wait up to timeout_s."""
        if any("\0" in word for word in argv):
            raise InvalidInput(
                "an argument contains a NUL character, which no command line can carry.",
                fields={"command": "remove the NUL character"},
            )
        self.check_key_file()  # before any connection, even a pooled one
        command = pct_command(guest.vmid, argv, sudo=self.settings.sudo)
        started = time.monotonic()
        conn, process = await self._open_process(guest.node, command)
        if input_data:
            process.stdin.write(input_data)
        process.stdin.write_eof()
        finished = asyncio.gather(
            _drain(process.stdout, max_output_chars),
            _drain(process.stderr, max_output_chars),
            process.wait_closed(),
        )
        deadline = started + timeout_s
        try:
            while not finished.done():
                now = time.monotonic()
                if now >= deadline:
                    break
                await asyncio.wait({finished}, timeout=min(PROGRESS_EVERY_S, deadline - now))
                if not finished.done() and report is not None:
                    await report(time.monotonic() - started, f"{argv[0]} running in "
                                 f"{guest.vmid}")  # fmt: skip
        except asyncio.CancelledError:
            _stop(process, finished)
            raise
        if not finished.done():
            _stop(process, finished)
            return ExecResult(
                vmid=guest.vmid, node=guest.node, command=argv, exited=False, ok=False,
                duration_s=round(time.monotonic() - started, 3),
                message=f"still running after {timeout_s:g} s in CT {guest.vmid}; it may go "
                "on running there. Closed the SSH channel and stopped waiting, which does "
                "not stop the command.",
            )  # fmt: skip
        try:
            (stdout, out_cut), (stderr, err_cut), _ = finished.result()
        except (asyncssh.Error, OSError) as exc:
            self._forget(guest.node, conn)
            raise Unreachable(
                f"the SSH connection to node {self._endpoint(guest.node)} broke while "
                f"{argv[0]} ran in CT {guest.vmid}: {getattr(exc, 'reason', exc)}; the "
                "command may or may not have finished.",
            ) from None
        duration = round(time.monotonic() - started, 3)
        return self._result(guest, argv, process, duration,
                            stdout, out_cut, stderr, err_cut)  # fmt: skip

    def _result(self, guest: Guest, argv: list[str], process: asyncssh.SSHClientProcess[str],
                duration: float, stdout: str, out_cut: bool, stderr: str,
                err_cut: bool) -> ExecResult:  # fmt: skip
        exit_code = process.exit_status
        signal_name = process.exit_signal[0] if process.exit_signal else None
        if exit_code is None and signal_name is None:
            raise Unreachable(
                f"the SSH channel to node {self._endpoint(guest.node)} closed before "
                f"{argv[0]} in CT {guest.vmid} reported an exit status; it may or may not "
                "have finished.",
            )
        if signal_name is None and exit_code:
            failure = self._pct_failure(guest, exit_code, stdout, stderr)
            if failure is not None:
                raise failure
        sig = None if signal_name is None else _signal_number(signal_name)
        ok = exit_code == 0 and signal_name is None
        if ok:
            message = f"exited 0 after {duration:g} s"
        elif signal_name is not None:
            message = f"killed by signal {signal_name} after {duration:g} s"
        else:
            message = f"FAILED: exit code {exit_code} after {duration:g} s"
        return ExecResult(
            vmid=guest.vmid, node=guest.node, command=argv, exited=True,
            exit_code=None if signal_name is not None else exit_code, signal=sig, ok=ok,
            stdout=stdout, stderr=stderr, out_truncated=out_cut, err_truncated=err_cut,
            duration_s=duration, message=message,
        )  # fmt: skip

    def _pct_failure(
        self, guest: Guest, exit_code: int, stdout: str, stderr: str
    ) -> LabdeckError | None:
        """pct's (or sudo's) own refusals, told apart from the command's by their text.

        Only when the command printed nothing on stdout: these come before it starts.
        """
        if stdout:
            return None
        said = " ".join(line.strip() for line in stderr.strip().splitlines()[:2])
        node, vmid = guest.node, guest.vmid
        if _NOT_RUNNING in stderr:
            return ServerError(
                f"CT {vmid} is not running (pct exec on {node}: {said})",
                hint="Start it first (S in the guests view, or pve_guest_power).",
            )
        if exit_code == 255 and "Configuration file" in stderr and _NO_CONFIG in stderr:
            return NotFound(
                f"CT {vmid} is not on node {node} (pct exec: {said})",
                hint="It may have moved: refresh the guest list and try again.",
            )
        if self.settings.sudo and "sudo" in stderr and "password" in stderr:
            return PermissionDenied(
                f"sudo on node {node} asked for a password (pct exec: {said}).",
                hint=f"Allow it without one: '{self.settings.user} ALL=(root) NOPASSWD: "
                "/usr/sbin/pct exec *' in /etc/sudoers.d/labdeck (README).",
            )
        if exit_code == 127 and ("pct: not found" in stderr or "pct: command not found" in stderr):
            return ConfigError(
                f"node {self._endpoint(node)} has no pct command: is it a Proxmox VE node?",
                hint="Check [pve.ssh] hosts: it must map the node name to that node.",
            )
        return None


def _key_error(path: Path, reason: str, *, has_passphrase: bool) -> ConfigError:
    """Why asyncssh could not load the key (its reasons never contain the passphrase)."""
    if "bcrypt" in reason:
        return ConfigError(
            f"SSH key {path} is an encrypted OpenSSH key: {reason}.",
            hint="pip install bcrypt in labdeck's environment, or convert the key: "
            "ssh-keygen -p -m PKCS8 -f KEY.",
        )
    if has_passphrase and ("decrypt" in reason or "ncorrect" in reason):
        return ConfigError(
            f"the passphrase configured for SSH key {path} does not decrypt it.",
            hint="Check [pve.ssh] key_passphrase_file / key_passphrase_keyring.",
        )
    if not has_passphrase and "assphrase" in reason:
        return ConfigError(
            f"SSH key {path} is encrypted and no passphrase is configured.",
            hint="Set [pve.ssh] key_passphrase_file (mode 0600) or key_passphrase_keyring.",
        )
    return ConfigError(f"SSH key {path} could not be loaded: {reason}.")


async def _drain(stream: asyncssh.SSHReader[str], limit: int) -> tuple[str, bool]:
    """Read ``stream`` to its end; keep the first ``limit`` characters, drop the rest."""
    kept: list[str] = []
    size = 0
    cut = False
    while chunk := await stream.read(READ_CHUNK):
        room = limit - size
        if room > 0:
            kept.append(chunk[:room])
            size += min(room, len(chunk))
        if len(chunk) > room:
            cut = True
    return "".join(kept), cut


def _stop(process: asyncssh.SSHClientProcess[str], finished: asyncio.Future[Any]) -> None:
    """Close the channel (sshd then closes the command's pipes) and stop reading."""
    process.close()
    finished.cancel()
