"""One guest's command pane: type a command, read its output, exit code and duration.

Each pane owns its worker (group ``exec`` on the pane node), so panes for different guests
run at once, and removing a pane cancels its command: the core stops polling the agent
(the command itself may go on in the guest; the log says so). The service and clock come
in from the dashboard ("attributes down"); closing and busy state go up as messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, RichLog, Static

from core.errors import LabdeckError, PolicyDenied, ServerError
from core.models import AgentInfo, ExecResult, Guest
from core.service import Labdeck
from core.textsafe import printable
from tui.command_line import CommandLine, CommandLineError, parse_command_line
from tui.formatting import guest_label

Clock = Callable[[], datetime]
#: how long the pane waits for one command; escape (or closing the pane) stops sooner
EXEC_TIMEOUT_S = 3600.0
STDERR_STYLE = "red"
NOTE_STYLE = "dim italic"


def explain(error: LabdeckError, guest: Guest) -> tuple[str, str | None]:
    """``(what happened, what to do)`` for a failed exec, in a person's words.

    The agent's refusals reach us as server errors whose text is all that tells them
    apart; anything not recognised is shown as the core phrased it.
    """
    label = guest_label(guest)
    text = error.message
    if isinstance(error, PolicyDenied):
        return f"refused: {text}", error.hint
    if isinstance(error, ServerError):
        if "No QEMU guest agent configured" in text:
            return (
                f"{label} has no QEMU guest agent configured.",
                f"Enable it (qm set {guest.vmid} --agent 1) and install qemu-guest-agent "
                "in the guest.",
            )
        if "guest agent is not running" in text:
            return (
                f"the guest agent in {label} does not answer.",
                "Is qemu-guest-agent running in the guest?",
            )
        if "is not running" in text:
            return f"{label} is not running.", "Start it first (S in the guests view)."
        if "Failed to execute child process" in text:
            program = text.split("Failed to execute child process", 1)[1].strip(" '.")
            return f"no such program in the guest: {program}", None
    return text, error.hint


class HistoryInput(Input):
    """An Input that recalls earlier lines with up/down, like a shell (one per pane)."""

    BINDINGS = [
        Binding("up", "recall(-1)", "Previous", id="exec.history_previous", show=False,
                tooltip="Recall the previous command of this pane."),
        Binding("down", "recall(1)", "Next", id="exec.history_next", show=False,
                tooltip="Recall the next command (past the last: what you were typing)."),
    ]  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: list[str] = []
        self._position = 0  # == len(history): the line being typed
        self._draft = ""

    def remember(self, line: str) -> None:
        if not self.history or self.history[-1] != line:
            self.history.append(line)
        self._position = len(self.history)
        self._draft = ""

    def action_recall(self, step: int) -> None:
        if not self.history:
            return
        if self._position == len(self.history):
            self._draft = self.value
        self._position = max(0, min(len(self.history), self._position + step))
        if self._position == len(self.history):
            self.value = self._draft
        else:
            self.value = self.history[self._position]
        self.cursor_position = len(self.value)


class CommandPane(Vertical):
    """Commands for one guest: ``CommandPane(guest, service, clock=...)``."""

    BINDINGS = [
        Binding("ctrl+w", "close", "Close pane", id="exec.close", priority=True,
                tooltip="Close this command pane (cancels a running command)."),
        Binding("escape", "cancel", "Cancel", id="exec.cancel",
                tooltip="Stop waiting for the running command."),
        Binding("escape", "leave_input", "Leave input", id="exec.leave_input",
                tooltip="Leave the command line (then 1-4 switch views, enter comes back)."),
        Binding("enter", "focus_input", "Type", id="exec.focus_input", show=False,
                tooltip="Back to the command line."),
        Binding("ctrl+y", "copy_output", "Copy output", id="exec.copy",
                tooltip="Copy the last command's output to the clipboard."),
        Binding("ctrl+l", "clear", "Clear", id="exec.clear", show=False,
                tooltip="Clear this pane's log."),
    ]  # fmt: skip

    class CloseRequested(Message):
        def __init__(self, pane: CommandPane) -> None:
            super().__init__()
            self.pane = pane

    class BusyChanged(Message):
        def __init__(self, pane: CommandPane, busy: bool) -> None:
            super().__init__()
            self.pane = pane
            self.busy = busy

    def __init__(self, guest: Guest, service: Labdeck, *, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guest = guest
        self.service = service
        self.clock = clock
        self.running: CommandLine | None = None
        self.last_output: str | None = None

    # ------------------------------------------------------------------ layout

    @property
    def can_exec(self) -> bool:
        """VMs through their agent; containers only with pct exec over SSH (opt-in)."""
        if self.guest.template:
            return False
        return self.guest.kind == "qemu" or self.service.profile.pve.ssh.enabled

    def compose(self) -> ComposeResult:
        yield RichLog(wrap=True, markup=False, highlight=False, min_width=20, classes="exec-log")
        yield Static("", classes="exec-status")
        placeholder = (
            "command, e.g. df -h  (!… or | && ; > $ run with sh -c)"
            if self.can_exec
            else "commands cannot run here"
        )
        yield HistoryInput(placeholder=placeholder, disabled=not self.can_exec,
                           classes="exec-input")  # fmt: skip

    @property
    def log_view(self) -> RichLog:
        return self.query_one(RichLog)

    @property
    def input(self) -> HistoryInput:
        return self.query_one(HistoryInput)

    @property
    def status(self) -> Static:
        return self.query_one(".exec-status", Static)

    def on_mount(self) -> None:
        guest = self.guest
        kind = "VM" if guest.kind == "qemu" else "container"
        state = "template" if guest.template else guest.status
        title = Text(guest_label(guest), style="bold")
        title.append(f"  {kind} on {guest.node}, {state}", style="dim")
        self.log_view.write(title)
        if guest.kind == "lxc" and not self.service.profile.pve.ssh.enabled:
            self._note(
                f"{guest_label(guest)} is an LXC container: the Proxmox API runs commands "
                "only in QEMU VMs, through the guest agent.",
                f"On node {guest.node}, use: pct exec {guest.vmid} -- <command>",
            )
            self._note(
                "Or let labdeck run pct exec over SSH: [pve.ssh] enabled = true"
                " (README: Commands in containers)."
            )
        elif guest.template:
            self._note(f"{guest_label(guest)} is a template: it never runs, so no commands.")
        else:
            if guest.kind == "lxc":
                self._note(
                    f"{guest_label(guest)} is an LXC container: commands run with pct exec "
                    f"over SSH on node {guest.node}, as root in the container."
                )
            if guest.status != "running" and guest.kind == "lxc":
                self._note(
                    f"{guest_label(guest)} is {guest.status}: pct exec runs commands only "
                    "while it runs.",
                    "Start it first (S in the guests view).",
                )
            elif guest.status != "running":
                self._note(
                    f"{guest_label(guest)} is {guest.status}: its guest agent answers only "
                    "while it runs.",
                    "Start it first (S in the guests view).",
                )
            elif guest.kind == "qemu":
                self._probe_agent()
            if not self.service.policy.allow_writes:
                self._note(
                    "labdeck is read-only: running a command is a write, so it will be refused."
                )
        self._show_status()

    def focus_input(self) -> None:
        if self.can_exec:
            self.input.focus()
        else:
            self.log_view.focus()

    # ------------------------------------------------------------------ log

    def _note(self, text: str, hint: str | None = None) -> None:
        self.log_view.write(Text(text, style=NOTE_STYLE))
        if hint:
            self.log_view.write(Text(hint, style=NOTE_STYLE))

    def _problem(self, text: str, hint: str | None, *, style: str = "bold red") -> None:
        line = Text("✖ ", style=style)
        line.append(printable(text), style=style)  # server messages quote guests
        self.log_view.write(line)
        if hint:
            self.log_view.write(Text(hint, style="dim"))
        self.last_output = text if not hint else f"{text}\n{hint}"

    def _write_command(self, line: CommandLine, started: datetime) -> None:
        header = Text(f"{started:%H:%M:%S} ", style="dim")
        header.append("$ ", style="bold")
        header.append(printable(line.text, multiline=False), style="bold")
        header.append(f"  ({line.mode})", style="dim")
        self.log_view.write(Text(" "))  # a blank line between commands
        self.log_view.write(header)

    def _write_result(self, result: ExecResult, seconds: float) -> None:
        for stream, style in ((result.stdout, ""), (result.stderr, STDERR_STYLE)):
            if stream:
                # printable: escape sequences a guest prints are shown, never obeyed
                self.log_view.write(Text(printable(stream.rstrip("\n")), style=style))
        if result.out_truncated or result.err_truncated:
            cut = " and ".join(
                name
                for name, flag in (("stdout", result.out_truncated),
                                   ("stderr", result.err_truncated))
                if flag
            )  # fmt: skip
            self._note(f"({cut} truncated)")
        took = f" · {seconds:.1f} s"
        if not result.exited:
            self.log_view.write(Text(f"⧗ {result.message}", style="bold yellow"))
        elif result.signal is not None:
            self.log_view.write(Text(f"✖ killed by signal {result.signal}{took}", "bold red"))
        else:
            style = "bold green" if result.exit_code == 0 else "bold red"
            mark = "✔" if result.exit_code == 0 else "✖"
            self.log_view.write(Text(f"{mark} exit {result.exit_code}{took}", style=style))
        self.last_output = result.stdout + result.stderr

    # ------------------------------------------------------------------ running

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            return
        if self.running is not None:
            self.notify(f"{self.running.text} is still running (escape stops waiting).",
                        severity="warning", timeout=4)  # fmt: skip
            return
        self.input.remember(event.value.strip())
        self.input.value = ""
        try:
            line = parse_command_line(event.value)
        except CommandLineError as exc:
            self._problem(str(exc), None)
            return
        self._set_running(line)
        self._run(line)

    def _set_running(self, line: CommandLine | None, elapsed_s: float = 0.0) -> None:
        was_busy = self.running is not None
        self.running = line
        self._show_status(elapsed_s)
        if was_busy != (line is not None):
            self.post_message(self.BusyChanged(self, line is not None))
        self.refresh_bindings()

    def _show_status(self, elapsed_s: float = 0.0) -> None:
        self.status.set_class(self.running is not None, "-busy")
        if self.running is not None:
            self.status.update(
                f"⟳ running {self.running.text} ({self.running.mode}) · {elapsed_s:.0f} s"
                " · escape stops waiting"
            )
        elif not self.can_exec:
            self.status.update("no commands for this guest · ctrl+w closes")
        else:
            self.status.update(
                "ready · ↑↓ history · ctrl+y copies the last output · esc leaves the input"
            )

    @work(exclusive=True, group="exec", exit_on_error=False)
    async def _run(self, line: CommandLine) -> None:
        started = self.clock()
        self._write_command(line, started)

        def progress(elapsed_s: float, message: str) -> None:
            if self.running is line:
                self._show_status(elapsed_s)

        params = {"vmid": self.guest.vmid, **line.params, "timeout_s": EXEC_TIMEOUT_S}
        try:
            result = await self.service.call("pve_guest_exec", params, progress=progress)
        except asyncio.CancelledError:
            self._problem(
                "stopped waiting; the command may still be running in the guest.",
                None,
                style="bold yellow",
            )
            raise
        except PolicyDenied as exc:
            self._problem(*explain(exc, self.guest), style="bold yellow")
        except LabdeckError as exc:
            self._problem(*explain(exc, self.guest))
        else:
            seconds = (self.clock() - started).total_seconds()
            if isinstance(result, ExecResult):
                self._write_result(result, seconds)
        finally:
            if self.is_mounted:
                self._set_running(None)

    @work(group="agent", exit_on_error=False)
    async def _probe_agent(self) -> None:
        """Ask the agent who it is, so a missing agent shows before the first command."""
        try:
            info = await self.service.call("pve_guest_agent_info", {"vmid": self.guest.vmid})
        except LabdeckError as exc:
            self._problem(*explain(exc, self.guest), style="bold yellow")
            return
        if isinstance(info, AgentInfo):
            about = info.os_name or "unknown OS"
            if info.kernel:
                about += f", kernel {info.kernel}"
            self._note(f"guest agent: {about}")

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.running is not None
        if action == "leave_input":
            return self.running is None and self.input.has_focus
        if action == "focus_input":
            return self.can_exec and not self.input.has_focus
        if action == "copy_output":
            return None if self.last_output is None else True
        return True

    def action_cancel(self) -> None:
        if self.workers.cancel_group(self, "exec"):
            self._set_running(None)

    def action_leave_input(self) -> None:
        # printable keys belong to the input; from the log, 1-4 and q reach the app
        self.log_view.focus()

    def action_focus_input(self) -> None:
        self.input.focus()

    def action_close(self) -> None:
        self.workers.cancel_node(self)
        self.post_message(self.CloseRequested(self))

    def action_copy_output(self) -> None:
        if self.last_output is None:
            return
        self.app.copy_to_clipboard(self.last_output)
        lines = len(self.last_output.splitlines())
        self.notify(f"Copied {lines} line{'s' if lines != 1 else ''} of output.", timeout=3)

    def action_clear(self) -> None:
        self.log_view.clear()
