"""An audit log that cannot be written: one clear error in every face, and no unaudited change.

The service writes a call's audit line once the call ended (the line holds its outcome), so
before a write is sent it checks that the log can be opened for appending; a line that
still fails afterwards is said with how the call ended. The log is made unusable the way
it happens on real machines: a state directory without write permission (not for root,
who writes anyway), or something else where the log file or its directory should be.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from core.audit import AuditLog
from core.errors import ConfigError
from core.service import AuditUnwritable, Labdeck
from labdeck.demo import demo_profile
from mcp_server import build_server
from tests.support.faults import assert_clean, rpc_count, start_path, stopped_vm, writes
from tests.test_faults_cli import Cli

AS_ROOT = os.geteuid() == 0


def path_taken(state: Path) -> Path:
    """A directory where the log file should be: unusable even for root."""
    path = state / "labdeck" / "audit.jsonl"
    path.mkdir(parents=True)
    return path


def dir_taken(state: Path) -> Path:
    """A file where the log's directory should be: mkdir fails, for root too."""
    state.mkdir(parents=True)
    (state / "labdeck").write_text("not a directory\n")
    return state / "labdeck" / "audit.jsonl"


def dir_read_only(state: Path) -> Path:
    """A state directory this user may not write to (root ignores the mode: skipped)."""
    if AS_ROOT:
        pytest.skip("root writes to a mode 0500 directory anyway")
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o500)
    return state / "labdeck" / "audit.jsonl"


BLOCKERS = [pytest.param(path_taken, id="path-is-a-directory"),
            pytest.param(dir_taken, id="dir-is-a-file"),
            pytest.param(dir_read_only, id="dir-not-writable")]  # fmt: skip


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """The state directory; its mode is given back so that pytest can clean it up."""
    where = tmp_path / "state"
    yield where
    if where.exists():
        where.chmod(0o700)


def service(handle: Any, log: AuditLog, *, allow_writes: bool = True,
            face: str = "cli", audit_reads: bool = False) -> Labdeck:  # fmt: skip
    return Labdeck(demo_profile(handle, allow_writes=allow_writes), face=face, audit=log,
                   audit_reads=audit_reads)  # fmt: skip


def says_how_to_fix(error: ConfigError, path: Path) -> None:
    assert error.kind == "config"
    assert str(path) in error.message and "cannot append to its audit log" in error.message
    assert error.hint is not None
    assert f"Make {path.parent} writable" in error.hint and "XDG_STATE_HOME" in error.hint


# ------------------------------------------------------------------ the service


@pytest.mark.parametrize("blocked", BLOCKERS)
async def test_a_write_is_not_sent_when_its_audit_line_cannot_be_written(
    make_sim: Any, state: Path, blocked: Callable[[Path], Path]
) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    path = blocked(state)
    async with service(handle, AuditLog(path)) as lab:
        with pytest.raises(AuditUnwritable) as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
        says_how_to_fix(info.value, path)
        assert info.value.message.startswith("pve_start_guest was not sent:")
        with pytest.raises(AuditUnwritable, match="truenas_create_dataset was not sent"):
            await lab.call("truenas_create_dataset", {"name": "tank/unaudited"})
        assert (await lab.call("pve_list_guests")).rows  # type: ignore[attr-defined]
    assert writes(handle) == []
    assert rpc_count(handle, "pool.dataset.create") == 0
    assert handle.call(lambda: handle.state.guests[guest.vmid].status) == "stopped"


async def test_a_refusal_is_said_with_the_missing_line(make_sim: Any, state: Path) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    path = path_taken(state)
    async with service(handle, AuditLog(path), allow_writes=False) as lab:
        with pytest.raises(AuditUnwritable) as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid})
    says_how_to_fix(info.value, path)
    assert info.value.message.startswith("pve_start_guest was refused (")
    assert "the refusal is not audited" in info.value.message
    assert writes(handle) == []


async def test_a_change_that_ran_says_so_when_its_line_cannot_follow(
    make_sim: Any, tmp_path: Path
) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    path = tmp_path / "audit.jsonl"

    def take_the_path(elapsed_s: float, message: str) -> None:
        # while the task runs (after the check that the log can be opened), the log's
        # path is taken away: what a full disk or a removed directory does in real life
        if not path.is_dir():
            path.unlink(missing_ok=True)
            path.mkdir()

    async with service(handle, AuditLog(path)) as lab:
        with pytest.raises(AuditUnwritable) as info:
            await lab.call("pve_start_guest", {"vmid": guest.vmid}, progress=take_the_path)
    says_how_to_fix(info.value, path)
    assert info.value.message.startswith("pve_start_guest succeeded (do not run it again)")
    assert writes(handle) == [("POST", "/api2/json" + start_path(guest))]
    assert handle.call(lambda: handle.state.guests[guest.vmid].status) == "running"


async def test_a_failed_read_keeps_its_error_beside_the_missing_line(
    make_sim: Any, state: Path
) -> None:
    handle = make_sim(faults="GET /cluster/resources=500")
    path = path_taken(state)
    async with service(handle, AuditLog(path), audit_reads=True) as lab:
        with pytest.raises(AuditUnwritable) as info:
            await lab.call("pve_list_guests")
    says_how_to_fix(info.value, path)
    assert info.value.message.startswith("pve_list_guests failed (")
    assert "got unexpected error" in info.value.message  # the server's own error, kept


# ------------------------------------------------------------------ MCP


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@pytest.mark.parametrize("blocked", BLOCKERS)
async def test_mcp_tool_says_the_audit_log_cannot_be_written(
    make_sim: Any, state: Path, blocked: Callable[[Path], Path], caplog: pytest.LogCaptureFixture
) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    path = blocked(state)

    def factory() -> Labdeck:  # as `labdeck mcp --allow-writes` builds it: reads audited too
        return service(handle, AuditLog(path), face="mcp", audit_reads=True)

    async with Client(build_server(factory, allow_writes=True)) as client:
        started = await client.call_tool("pve_start_guest", {"vmid": guest.vmid})
        # needs a confirmation: checked before anyone is asked
        stopped = await client.call_tool("pve_stop_guest", {"vmid": guest.vmid})
        listed = await client.call_tool("pve_list_nodes", {})
    said = [
        (started, "pve_start_guest was not sent"),
        (stopped, "pve_stop_guest was not sent"),
        (listed, "pve_list_nodes succeeded, but the read is not audited"),
    ]
    for result, needle in said:
        text = text_of(result)
        assert result.is_error, text
        assert needle in text and str(path) in text and "XDG_STATE_HOME" in text, text
        assert_clean(text, handle)
    assert writes(handle) == []
    # the SDK logs a tool that raised anything but a clear ToolError as a crash
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# ------------------------------------------------------------------ CLI


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(monkeypatch, capsys, tmp_path)


@pytest.mark.parametrize("blocked", BLOCKERS)
def test_cli_says_the_audit_log_cannot_be_written_and_sends_nothing(
    make_sim: Any, cli: Cli, state: Path, blocked: Callable[[Path], Path]
) -> None:
    handle = make_sim()
    guest = stopped_vm(handle)
    cli.point_at(handle)  # XDG_STATE_HOME is tmp_path / "state": ``state``
    path = blocked(state)
    run = cli.call("pve_start_guest", f"vmid={guest.vmid}", "--allow-writes")
    assert run.code == 2 and run.out == "", run  # a setting to fix, like other config errors
    first, *rest = run.err.splitlines()
    assert first.startswith("labdeck: error: pve_start_guest was not sent:"), run.err
    assert str(path) in first
    assert rest and "XDG_STATE_HOME" in rest[0], run.err
    assert writes(handle) == []
    read = cli.call("pve_list_guests")  # the CLI audits reads too: said, not crashed
    assert read.code == 2 and "pve_list_guests succeeded, but the read is not audited" in read.err
