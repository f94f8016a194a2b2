"""Command panes: typing commands into a VM through its guest agent, from the dashboard.

Driven with Pilot against the simulator over real sockets; its QEMU guests with an agent
run a small simulated OS (``hostname``, ``df -h``, ``sleep N`` in simulated time...).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
from rich.color import Color
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input

from core.service import Labdeck
from tests.support.tui import dashboard_app, settle, until
from tui.app import LabdeckApp
from tui.command_line import CommandLineError, parse_command_line
from tui.commands import exec_guest_commands
from tui.screens.dashboard import DashboardScreen
from tui.widgets.command_pane import CommandPane
from tui.widgets.guest_table import GuestTable

SIZE = (120, 36)
AGENT_VM = 107  # home-assistant: running, agent on, Debian 12
OTHER_VM = 104  # k3s-master: running, agent on
NO_AGENT_VM = 114  # opnsense: running, no agent configured
STOPPED_VM = 116  # windows-11
CONTAINER = 100  # pihole (LXC)


def make_app(service: Labdeck) -> LabdeckApp:
    return dashboard_app(service)


def dashboard(app: LabdeckApp) -> DashboardScreen:
    screen = app.dashboard
    assert screen is not None
    return screen


def log_text(pane: CommandPane) -> str:
    return "\n".join(strip.text.rstrip() for strip in pane.log_view.lines)


async def open_pane(pilot: Pilot[None], vmid: int) -> CommandPane:
    """Select ``vmid`` in the guests view and press x, as a person would."""
    app = pilot.app
    assert isinstance(app, LabdeckApp)
    dashboard(app).show_view("guests")
    assert dashboard(app).query_one(GuestTable).select_vmid(vmid)
    await pilot.pause()
    await pilot.press("x")
    await until(pilot, lambda: dashboard(app).commands_view.pane_for(vmid) is not None)
    pane = dashboard(app).commands_view.pane_for(vmid)
    assert pane is not None
    probes = [w for w in app.workers if w.node is pane and w.group == "agent"]
    await app.workers.wait_for_complete(probes)  # only these: other panes may be running
    # x ends with the pane's input (or, when it cannot run commands, its log) focused
    await until(pilot, lambda: pane.input.has_focus or pane.log_view.has_focus)
    return pane


async def run(pilot: Pilot[None], pane: CommandPane, command: str) -> None:
    """Type ``command`` in ``pane`` and wait until it has ended."""
    pane.input.focus()
    pane.input.value = command
    await pilot.press("enter")
    await until(pilot, lambda: pane.running is None)
    await pilot.pause()


def exec_requests(handle: object, what: str = "exec") -> int:
    log: list[tuple[str, str]] = handle.request_log  # type: ignore[attr-defined]
    return sum(1 for _, path in log if path.endswith(f"/agent/{what}"))


# ---------------------------------------------------------------- the command line


def test_plain_lines_run_as_argv_and_shell_syntax_as_sh_c() -> None:
    assert parse_command_line("df -h").command == ["df", "-h"]
    quoted = parse_command_line("echo 'a b' c")
    assert (quoted.command, quoted.shell, quoted.mode) == (["echo", "a b", "c"], False, "argv")
    for line in ("df -h | head -n 2", "hostname && uptime", "a; b", "echo $HOME", "ls > x"):
        parsed = parse_command_line(line)
        assert (parsed.command, parsed.shell, parsed.mode) == (line, True, "sh -c")
    forced = parse_command_line("!hostname")
    assert (forced.command, forced.shell) == ("hostname", True)
    for bad in ("", "   ", "!", "echo 'unbalanced"):
        with pytest.raises(CommandLineError):
            parse_command_line(bad)


# ---------------------------------------------------------------- running commands


async def test_hostname_prints_its_output_and_a_green_exit_0(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        assert dashboard(app).active_view == "commands"
        assert pane.input.has_focus
        assert "guest agent: Debian GNU/Linux 12" in log_text(pane)
        await run(pilot, pane, "hostname")
        text = log_text(pane)
        assert "09:26:53 $ hostname  (argv)" in text
        assert "\nhome-assistant\n" in text
        assert "✔ exit 0 · 0.0 s" in text  # the frozen clock: no time passes
        exit_line = next(s for s in pane.log_view.lines if "exit 0" in s.text)
        assert any(seg.style and seg.style.color == Color.parse("green") for seg in exit_line)
        # a pipeline runs with sh -c, and says so
        await run(pilot, pane, "df -h | head -n 2")
        text = log_text(pane)
        assert "$ df -h | head -n 2  (sh -c)" in text
        assert "Filesystem" in text and "udev" in text and "tmpfs" not in text
        # the last output can be copied
        await pilot.press("ctrl+y")
        assert app.clipboard.startswith("Filesystem") and "udev" in app.clipboard


async def test_failing_command_shows_stderr_and_a_red_exit_code(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        await run(pilot, pane, "systemctl restart nonexistent")
        text = log_text(pane)
        assert "Unit nonexistent.service not found." in text
        assert "✖ exit 5 · 0.0 s" in text
        stderr_line = next(s for s in pane.log_view.lines if "not found" in s.text)
        exit_line = next(s for s in pane.log_view.lines if "exit 5" in s.text)
        red = Color.parse("red")
        assert any(seg.style and seg.style.color == red for seg in stderr_line if seg.text.strip())
        assert any(seg.style and seg.style.color == red for seg in exit_line)
        # a program the guest does not have: the agent cannot start it
        await run(pilot, pane, "nosuchprogram --now")
        assert "no such program in the guest: “nosuchprogram”" in log_text(pane)
        # an unbalanced quote never reaches the cluster
        before = exec_requests(fresh_sim)
        await run(pilot, pane, "echo 'oops")
        assert "cannot split the command: No closing quotation." in log_text(pane)
        assert exec_requests(fresh_sim) == before


async def test_long_command_shows_the_running_indicator_then_completes(
    make_sim, make_service, monkeypatch
) -> None:
    handle = make_sim(speed=50.0)  # sleep 5 takes 0.1 s here: watch the status line
    app = make_app(make_service(handle, allow_writes=True, face="tui"))
    busy: list[CommandPane.BusyChanged] = []

    def hook(message: Message) -> None:
        # called at every node the message bubbles through: keep each message once
        if isinstance(message, CommandPane.BusyChanged) and all(m is not message for m in busy):
            busy.append(message)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        shown: list[tuple[str, bool]] = []
        update = pane.status.update

        def spy(content: object = "") -> None:
            update(content)  # type: ignore[arg-type]
            shown.append((str(content), pane.status.has_class("-busy")))

        monkeypatch.setattr(pane.status, "update", spy)
        await run(pilot, pane, "sleep 5")
        assert "✔ exit 0" in log_text(pane)
        running = [text for text, is_busy in shown if is_busy]
        assert running and running[0].startswith("⟳ running sleep 5 (argv) · 0 s")
        assert all("escape stops waiting" in text for text in running)
        assert shown[-1][0].startswith("ready · ↑↓ history · ctrl+y copies the last output")
        assert not shown[-1][1]
        assert [m.busy for m in busy] == [True, False]


async def test_up_and_down_recall_this_panes_commands(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        for command in ("hostname", "uname -a", "free -m"):
            await run(pilot, pane, command)
        field = pane.input
        field.focus()
        await pilot.press(*"half")
        await pilot.press("up")
        assert field.value == "free -m"
        await pilot.press("up", "up")
        assert field.value == "hostname"
        await pilot.press("up")  # the oldest stays
        assert field.value == "hostname"
        await pilot.press("down")
        assert field.value == "uname -a"
        await pilot.press("down", "down")
        assert field.value == "half"  # what was being typed comes back
        # another guest's pane has its own history
        other = await open_pane(pilot, OTHER_VM)
        await pilot.press("up")
        assert other.input.value == ""


async def test_two_panes_run_commands_at_the_same_time(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = await open_pane(pilot, AGENT_VM)
        second = await open_pane(pilot, OTHER_VM)
        assert dashboard(app).command_panes == [first, second]
        tabs = dashboard(app).commands_view.tabs

        async def submit(pane: CommandPane, command: str) -> None:
            tabs.active = f"exec-{pane.guest.vmid}"
            # switching tabs focuses the pane's input (a chain of messages: not one pause)
            await until(pilot, lambda: pane.input.has_focus)
            pane.input.value = command
            # Enter, as the pane's input gets it. Not a key press: under load a tab switch
            # still queued from opening the other pane could move the focus back to it
            # before the key arrives (a full run saw the command never start).
            await pane.input.action_submit()

        # 8 s at speed 50: long enough to still run on a loaded machine when the other ends
        await submit(first, "sleep 400")
        # Enter is handled by the pane a message later (``Input.Submitted``): under load the
        # second tab could open before it, and the run below not have started yet (CI saw it)
        await until(pilot, lambda: first.running is not None)
        await submit(second, "sleep 25")  # 0.5 s
        assert first.running is not None
        assert str(tabs.get_tab(f"exec-{AGENT_VM}").label) == "home-assistant (107) ⟳"
        # the pane's result line, not ``running``: that is None too until the run starts
        await until(pilot, lambda: "✔ exit" in log_text(second))
        assert second.running is None
        assert first.running is not None  # still going: each pane has its own worker
        assert "✔ exit 0" in log_text(second) and "✔ exit" not in log_text(first)

        # the elapsed seconds come from the core's progress callback
        def elapsed_shown() -> int:
            found = re.search(r"sleep 400 \(argv\) · (\d+) s", str(first.status.content))
            return int(found[1]) if found else 0

        await until(pilot, lambda: elapsed_shown() >= 2)
        await until(pilot, lambda: first.running is None, within_s=30.0)
        await pilot.pause()
        assert "✔ exit 0" in log_text(first)
        assert "$ sleep 25" not in log_text(first) and "$ sleep 400" not in log_text(second)
        assert str(tabs.get_tab(f"exec-{AGENT_VM}").label) == "home-assistant (107)"
        # x on a guest that already has a pane shows that pane again
        again = await open_pane(pilot, AGENT_VM)
        assert again is first and len(dashboard(app).command_panes) == 2


# ---------------------------------------------------------------- guests that cannot run them


async def test_container_pane_explains_pct_exec_and_sends_nothing(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fresh_sim.clear_request_log()
        pane = await open_pane(pilot, CONTAINER)
        text = log_text(pane)
        assert "pihole (100) is an LXC container" in text
        assert "pct exec 100 -- <command>" in text and "node pve1" in text
        assert pane.input.disabled
        assert not any("/agent/" in path for _, path in fresh_sim.request_log)


async def test_vm_without_agent_or_stopped_says_so(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        no_agent = await open_pane(pilot, NO_AGENT_VM)
        assert "opnsense (114) has no QEMU guest agent configured." in log_text(no_agent)
        assert "qm set 114 --agent 1" in log_text(no_agent)
        stopped = await open_pane(pilot, STOPPED_VM)
        assert "windows-11 (116) is stopped" in log_text(stopped)
        await run(pilot, stopped, "hostname")
        assert "✖ windows-11 (116) is not running." in log_text(stopped)
        assert "Traceback" not in log_text(stopped)


async def test_read_only_service_refuses_in_the_pane(sim, make_service) -> None:
    app = make_app(make_service(sim, allow_writes=False, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        assert "labdeck is read-only" in log_text(pane)
        before = exec_requests(sim)
        await run(pilot, pane, "hostname")
        text = log_text(pane)
        assert "✖ refused: pve_guest_exec changes the cluster, and labdeck is in read-only" in text
        assert "--allow-writes" in text
        assert exec_requests(sim) == before


# ---------------------------------------------------------------- panes and the dashboard


async def test_panes_survive_a_refresh_of_the_guest_table(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        await run(pilot, pane, "hostname")
        pane.input.value = "half-typed"
        before = log_text(pane)
        app.action_refresh()
        await settle(pilot)
        assert dashboard(app).command_panes == [pane]
        assert log_text(pane) == before
        assert pane.input.value == "half-typed"
        assert pane.input.history == ["hostname"]
        assert dashboard(app).active_view == "commands"


async def test_closing_a_pane_cancels_its_command(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        pane.input.value = "sleep 600"  # 12 s at speed 50
        await pilot.press("enter")
        await until(pilot, lambda: exec_requests(fresh_sim, "exec-status") >= 3)
        await pilot.press("ctrl+w")
        await until(pilot, lambda: not dashboard(app).command_panes)
        polls = exec_requests(fresh_sim, "exec-status")
        await asyncio.sleep(0.8)  # several poll intervals
        assert exec_requests(fresh_sim, "exec-status") == polls
        assert not [w for w in app.workers if w.group == "exec" and not w.is_finished]
        assert str(dashboard(app).query_one("#views").get_tab("commands").label) == "Commands"


async def test_escape_stops_waiting_and_the_pane_stays(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        pane.input.value = "sleep 600"
        await pilot.press("enter")
        await until(pilot, lambda: exec_requests(fresh_sim, "exec-status") >= 2)
        await pilot.press("escape")
        await until(pilot, lambda: pane.running is None)
        await pilot.pause()
        assert "stopped waiting; the command may still be running in the guest." in log_text(pane)
        await run(pilot, pane, "hostname")
        assert "✔ exit 0" in log_text(pane)


async def test_escape_leaves_the_input_so_view_keys_work_again(fresh_sim, make_service) -> None:
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = await open_pane(pilot, AGENT_VM)
        second = await open_pane(pilot, OTHER_VM)
        tabs = dashboard(app).commands_view.tabs
        await pilot.press("ctrl+pagedown")  # wraps around to the first pane
        await until(pilot, lambda: first.input.has_focus)
        assert tabs.active == f"exec-{AGENT_VM}"
        await pilot.press("ctrl+pageup")
        await until(pilot, lambda: second.input.has_focus)
        assert tabs.active == f"exec-{OTHER_VM}"
        await pilot.press("1")  # typed: the input has the keys
        assert second.input.value == "1" and dashboard(app).active_view == "commands"
        await pilot.press("escape")
        await until(pilot, lambda: not second.input.has_focus)
        await pilot.press("1")
        await until(pilot, lambda: dashboard(app).active_view == "guests")
        await pilot.press("4")
        await until(pilot, lambda: second.input.has_focus)
        assert dashboard(app).active_view == "commands"


async def test_palette_offers_vms_only_and_opens_their_pane(sim, make_service) -> None:
    app = make_app(make_service(sim, face="tui"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = exec_guest_commands(app)
        names = [name for name, _, _ in commands]
        assert "home-assistant (107)" in names and "windows-11 (116)" in names
        assert "pihole (100)" not in names  # a container
        assert "ubuntu-template (118)" not in names
        await pilot.press("ctrl+p")
        await pilot.press(*"Run command in guest")
        await pilot.pause(0.3)
        await pilot.press("enter")  # the picker of VMs
        await pilot.pause(0.3)
        await pilot.press(*"home-assistant")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: dashboard(app).commands_view.pane_for(AGENT_VM) is not None)
        assert dashboard(app).active_view == "commands"
        focused = app.focused
        assert isinstance(focused, Input) and focused is dashboard(app).command_panes[0].input


# ---------------------------------------------------------------- what it looks like
# Deterministic: the seeded simulator with frozen metrics, the frozen clock (so every
# duration reads 0.0 s), a simulator of one's own where a command runs, no cursor blink.

SNAP_SIZE = (100, 30)


def snapshot_app(make_service, handle, *, allow_writes: bool = True) -> LabdeckApp:
    return make_app(make_service(handle, allow_writes=allow_writes, face="tui"))


def pane_with(vmid: int, *commands: str) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pane = await open_pane(pilot, vmid)
        for command in commands:
            await run(pilot, pane, command)
        pane.input.cursor_blink = False  # a blinking cursor is on or off by the clock
        await settle(pilot)

    return run_before


def test_snapshot_empty_pane(snap_compare, fresh_sim, make_service) -> None:
    app = snapshot_app(make_service, fresh_sim)
    assert snap_compare(app, terminal_size=SNAP_SIZE, run_before=pane_with(AGENT_VM))


def test_snapshot_pane_after_commands(snap_compare, fresh_sim, make_service) -> None:
    app = snapshot_app(make_service, fresh_sim)
    run_before = pane_with(AGENT_VM, "hostname", "df -h | head -n 3")
    assert snap_compare(app, terminal_size=SNAP_SIZE, run_before=run_before)


def test_snapshot_pane_with_errors(snap_compare, fresh_sim, make_service) -> None:
    app = snapshot_app(make_service, fresh_sim)
    run_before = pane_with(AGENT_VM, "systemctl restart nonexistent", "nosuchprogram")
    assert snap_compare(app, terminal_size=SNAP_SIZE, run_before=run_before)


def test_snapshot_container_pane(snap_compare, fresh_sim, make_service) -> None:
    app = snapshot_app(make_service, fresh_sim)
    assert snap_compare(app, terminal_size=SNAP_SIZE, run_before=pane_with(CONTAINER))
