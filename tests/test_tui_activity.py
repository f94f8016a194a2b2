"""The Activity view follows the audit log live: an agent's MCP calls from another process
appear with their outcome, Enter on a guest's row shows that guest, the file may be missing,
truncated or rotated, memory stays bounded, and nothing in a line can drive the terminal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from core.audit import AuditLog
from core.service import Labdeck
from labdeck.demo import demo_profile
from tests.support.tui import dashboard_app, pressing, settle
from tui.app import LabdeckApp
from tui.widgets.activity_view import ActivityRow, ActivityView, LogFollower
from tui.widgets.guest_table import GuestTable

ROOT = Path(__file__).resolve().parents[1]
WIDE = (120, 40)
NARROW = (80, 24)


def app_with_audit(sim: Any, path: Path) -> LabdeckApp:
    service = Labdeck(demo_profile(sim, allow_writes=False), face="tui", audit=AuditLog(path))
    return dashboard_app(service)


def activity(app: LabdeckApp) -> ActivityView:
    return app.screen.query_one(ActivityView)


async def until(pilot: Pilot[None], condition: Callable[[], bool], within_s: float = 30.0) -> None:
    """Wait for ``condition`` (a bounded loop: it fails after ``within_s``)."""
    async with asyncio.timeout(within_s):
        while not condition():
            await pilot.pause(0.05)


def operations(view: ActivityView) -> list[tuple[str, str, str]]:
    return [(row.face, row.operation, row.outcome) for _, row in view.rows]


# ------------------------------------------------------------------ another process, live


def mcp_server_env(sim: Any, tmp_path: Path) -> dict[str, str]:
    """``labdeck mcp`` configured by environment for the test simulator (no config file)."""
    token = sim.token
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONUNBUFFERED": "1",
        "LABDECK_PVE_HOST": sim.host,
        "LABDECK_PVE_PORT": str(sim.port),
        "LABDECK_PVE_USER": token.user,
        "LABDECK_PVE_TOKEN_NAME": token.token_name,
        "LABDECK_PVE_TOKEN_VALUE": token.secret,
        "LABDECK_PVE_CA_BUNDLE": sim.ca_path,
    }


async def test_an_agents_calls_from_another_process_appear_live(sim, tmp_path):
    """An MCP stdio server in its own process, on the same audit log: each tool call shows
    up in the open dashboard with its outcome, and Enter jumps to the guest it touched."""
    path = tmp_path / "state" / "labdeck" / "audit.jsonl"
    app = app_with_audit(sim, path)
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "labdeck", "mcp"],
        env=mcp_server_env(sim, tmp_path), cwd=str(ROOT),
    )  # fmt: skip
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("8")
        view = activity(app)
        assert "does not exist yet" in str(view.query_one("#activity-status").render())
        with (tmp_path / "mcp-stderr.txt").open("w") as errlog:
            async with Client(stdio_client(server, errlog=errlog)) as client:
                status = await client.call_tool("pve_guest_status", {"vmid": 107})
                assert not status.is_error
                await until(pilot, lambda: ("mcp", "pve_guest_status", "ok") in operations(view))
                refused = await client.call_tool("pve_stop_guest", {"vmid": 104})
                assert refused.is_error
                await until(pilot, lambda: ("mcp", "pve_stop_guest", "refused") in operations(view))
        rows = [row for _, row in view.rows]
        read = next(r for r in rows if r.operation == "pve_guest_status")
        assert (read.access, read.vmid, read.target, read.profile) == ("read", 107, "guest 107",
                                                                       "default")  # fmt: skip
        stop = next(r for r in rows if r.operation == "pve_stop_guest")
        assert stop.access == "write" and stop.vmid == 104 and "read-only" in stop.detail
        # newest at the bottom, and the cursor followed it
        assert view.table.cursor_row == view.table.row_count - 1
        assert rows[-1].operation == "pve_stop_guest"

        # Enter on the read of 107: the Guests view, with 107 selected
        view.table.move_cursor(row=rows.index(read))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one(TabbedContent).active == "guests"
        await until(pilot, lambda: app.screen.query_one(GuestTable).selected is not None)
        selected = app.screen.query_one(GuestTable).selected
        assert selected is not None and selected.vmid == 107


# ------------------------------------------------------------------ the file itself


def write_lines(path: Path, entries: list[dict[str, Any]], mode: str = "a") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry) + "\n")


def entry(n: int, **extra: Any) -> dict[str, Any]:
    return {"time": f"2025-03-14T09:{n // 60:02d}:{n % 60:02d}.000+00:00", "face": "mcp",
            "profile": "lab", "operation": f"op{n}", "access": "read", "outcome": "ok",
            **extra}  # fmt: skip


def test_the_follower_reads_only_appended_whole_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    follower = LogFollower(path)
    assert follower.read_new() is None  # missing: no error
    write_lines(path, [entry(1)])
    assert [e["operation"] for e in follower.read_new() or []] == ["op1"]
    assert follower.read_new() == []
    with path.open("a") as fh:  # half a line: kept until its end arrives
        fh.write(json.dumps(entry(2))[:20])
    assert follower.read_new() == []
    with path.open("a") as fh:
        fh.write(json.dumps(entry(2))[20:] + "\nnot json\n")
    assert [e["operation"] for e in follower.read_new() or []] == ["op2"]
    assert follower.bad_lines == 1


def test_the_follower_starts_over_after_truncation_rotation_and_removal(tmp_path):
    path = tmp_path / "audit.jsonl"
    follower = LogFollower(path)
    write_lines(path, [entry(1), entry(2), entry(3)])
    assert len(follower.read_new() or []) == 3
    write_lines(path, [entry(4)], mode="w")  # truncated, then written again
    assert [e["operation"] for e in follower.read_new() or []] == ["op4"]
    path.rename(tmp_path / "audit.jsonl.1")  # rotated: a new file under the same name
    write_lines(path, [entry(5), entry(6)])
    assert [e["operation"] for e in follower.read_new() or []] == ["op5", "op6"]
    path.unlink()
    assert follower.read_new() is None
    write_lines(path, [entry(7)])
    assert [e["operation"] for e in follower.read_new() or []] == ["op7"]


def test_a_long_log_is_read_from_its_end_only(tmp_path, monkeypatch):
    import tui.widgets.activity_view as module

    monkeypatch.setattr(module, "TAIL_BYTES", 1000)
    path = tmp_path / "audit.jsonl"
    write_lines(path, [entry(n) for n in range(200)])
    seen = LogFollower(path).read_new() or []
    assert 0 < len(seen) < 20 and seen[-1]["operation"] == "op199"
    assert all(e["operation"].startswith("op") for e in seen)  # no cut-off first line


def test_rows_name_their_target_and_never_carry_control_characters():
    message = "guest \x1b]52;c;cHduZWQ=\x07 said no"
    write = ActivityRow.from_entry(
        entry(1, access="write", operation="pve_stop_guest", target="qemu/116@pve2\x1b[2J",
              outcome="refused", message=message)
    )  # fmt: skip
    assert write.vmid == 116
    cells = [str(cell) for cell in write.cells()]
    assert "\x1b" not in "".join(cells) and "qemu/116@pve2\\x1b[2J" in cells
    assert write.detail == message  # kept as written; escaped where it is drawn (below)
    nas = ActivityRow.from_entry(entry(2, params={"dataset": "tank/media", "name": "s1"}))
    assert nas.target == "tank/media" and nas.vmid is None
    guest = ActivityRow.from_entry(entry(3, params={"vmid": 107}))
    assert (guest.target, guest.vmid) == ("guest 107", 107)


async def test_the_view_keeps_the_last_rows_and_escapes_what_it_shows(sim, tmp_path):
    path = tmp_path / "audit.jsonl"
    write_lines(path, [entry(n) for n in range(30)])
    app = app_with_audit(sim, path)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("8")
        view = activity(app)
        view.max_rows = 25
        write_lines(path, [entry(n) for n in range(30, 60)])
        await until(pilot, lambda: operations(view)[-1][1] == "op59")
        assert len(view.rows) == 25 and view.table.row_count == 25
        assert operations(view)[0][1] == "op35"
        write_lines(path, [entry(60, outcome="error", message="boom \x1b[2J\x1b]0;owned\x07")])
        await until(pilot, lambda: operations(view)[-1][1] == "op60")
        await pilot.pause()
        detail = str(view.query_one("#activity-detail").render())
        assert "\x1b" not in detail and "\\x1b[2J" in detail
        table = view.table
        assert not [c for key in table.rows for c in table.get_row(key) if "\x1b" in str(c)]


async def test_enter_on_a_row_without_a_guest_says_so(sim, tmp_path):
    path = tmp_path / "audit.jsonl"
    write_lines(path, [entry(1, params={"dataset": "tank"})])
    app = app_with_audit(sim, path)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)  # else Enter may reach the guest table before the view switch
        await pilot.press("8")
        await until(pilot, lambda: bool(activity(app).rows))
        await until(pilot, lambda: activity(app).focus_target().has_focus)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one(TabbedContent).active == "activity"
        assert any("did not touch a guest" in n.message for n in app._notifications)


# ------------------------------------------------------------------ how it looks

SNAPSHOT_LINES = [
    entry(0, face="mcp", operation="pve_cluster_overview", params={}),
    entry(1, face="mcp", operation="pve_guest_status", params={"vmid": 107}),
    entry(2, face="mcp", operation="pve_stop_guest", access="write", target="qemu/104@pve1",
          outcome="refused", error="policy", message="pve_stop_guest changes the cluster, and "
          "labdeck is in read-only mode."),
    entry(3, face="cli", operation="truenas_list_datasets", params={"pool": "tank"}),
    entry(4, face="tui", operation="pve_start_guest", access="write", target="lxc/100@pve1",
          upid="UPID:pve1:0001:0002:00000003:vzstart:100:root@pam:"),
    entry(5, face="mcp", operation="truenas_delete_dataset", access="write",
          target="tank/media", outcome="refused", error="policy",
          message="tank/media is protected by the rule 'dataset:tank/media'"),
    entry(6, face="mcp", operation="pve_guest_exec", access="write", target="qemu/107@pve2",
          outcome="error", error="server", message="agent said \x1b[31mno\x1b[0m"),
]  # fmt: skip


def snapshot_app(sim: Any, tmp_path: Path) -> LabdeckApp:
    path = tmp_path / "audit.jsonl"
    write_lines(path, SNAPSHOT_LINES, mode="w")
    return app_with_audit(sim, path)


#: "8", then every line of the log in the table (read by a worker: CI once caught it half done)
ACTIVITY_SHOWN = pressing(("8", lambda app: len(activity(app).rows) == len(SNAPSHOT_LINES)))


def test_snapshot_activity_view(snap_compare, sim, tmp_path) -> None:
    assert snap_compare(snapshot_app(sim, tmp_path), terminal_size=WIDE,
                        run_before=ACTIVITY_SHOWN)  # fmt: skip


def test_snapshot_activity_view_narrow(snap_compare, sim, tmp_path) -> None:
    assert snap_compare(snapshot_app(sim, tmp_path), terminal_size=NARROW,
                        run_before=ACTIVITY_SHOWN)  # fmt: skip
