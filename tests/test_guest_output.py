"""Malicious guest output: what a guest prints (and text others control) is shown, never
obeyed by the terminal: in the dashboard's command pane and in ``labdeck call``'s output.
The guest here is the simulator's, printing the escape sequences with ``echo``."""

from __future__ import annotations

import pytest

from core.textsafe import printable
from labdeck.cli import _render_human
from tests.test_tui_exec import AGENT_VM, log_text, make_app, open_pane, settle, until

#: set the clipboard (OSC 52), retitle the window, clear the screen, a one-byte CSI, a
#: right-to-left override, a backspace and a bell
HOSTILE = "\x1b]52;c;cHduZWQ=\x07\x1b]0;owned\x07\x1b[2J\x9b31m\u202eabc\x08\x07"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text\n\ttabbed", "plain text\n\ttabbed"),
        ("windows\r\nline", "windows\nline"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("\x9b2J", "\\x9b2J"),
        ("\u202eevil", "\\u202eevil"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("ünïcode ✓ 🔥", "ünïcode ✓ 🔥"),
    ],
)
def test_printable_shows_control_characters_and_keeps_the_rest(text, shown):
    assert printable(text) == shown


def test_one_line_cells_escape_line_ends_too():
    assert printable("a\nb\tc\rd", multiline=False) == "a\\nb\\tc\\x0dd"


def unsafe(text: str) -> list[str]:
    return [ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F]


async def test_the_cli_prints_guest_output_escaped(fresh_sim, make_service):
    async with make_service(fresh_sim, allow_writes=True) as lab:
        result = await lab.call("pve_guest_exec", {"vmid": AGENT_VM, "command": ["echo", HOSTILE]})
    assert result.stdout == HOSTILE + "\n"  # the data itself is unchanged (JSON keeps it)
    shown = _render_human(result)
    assert not unsafe(shown)
    assert "\\x1b]52;c;cHduZWQ=\\x07" in shown and "\\u202eabc" in shown


async def test_the_command_pane_shows_guest_output_escaped(fresh_sim, make_service):
    app = make_app(make_service(fresh_sim, allow_writes=True, face="tui"))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        pane = await open_pane(pilot, AGENT_VM)
        pane.input.value = f"echo '{HOSTILE}'"
        await pilot.press("enter")
        await until(pilot, lambda: "exit 0" in log_text(pane))
        text = log_text(pane)
    assert not unsafe(text)
    assert "\\x1b]0;owned\\x07" in text


def test_labdeck_audit_prints_messages_escaped():
    from labdeck.cli import format_audit_entry

    line = format_audit_entry({"time": "2025-03-14T09:26:53.000+00:00", "face": "mcp",
                               "operation": "pve_guest_exec", "outcome": "error",
                               "message": f"agent said {HOSTILE}\nsecond line"})  # fmt: skip
    assert not unsafe(line) and "\n" not in line
    assert "\\x1b[2J" in line and "\\nsecond line" in line
