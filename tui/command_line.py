"""What a person types in a command pane, turned into ``pve_guest_exec`` parameters.

A plain line is split like a POSIX shell would split it (``shlex.split``) and run as an
argument vector: no shell in the guest, so nothing in it is interpreted twice. A line
that starts with ``!`` or uses shell syntax (pipes, lists, redirections, variables) runs
with ``/bin/sh -c`` instead. Over-detecting is harmless: a quoted ``;`` means the same
to ``sh -c`` as to ``shlex``; the pane always says which mode it used.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

#: characters that only a shell gives a meaning to (``|`` covers ``||``, ``&`` covers ``&&``)
SHELL_SYNTAX = ("|", "&", ";", ">", "<", "$", "`")
FORCE_SHELL = "!"


class CommandLineError(ValueError):
    """The line cannot be run (empty, or an unbalanced quote)."""


@dataclass(frozen=True, slots=True)
class CommandLine:
    """One line, ready for ``pve_guest_exec``: ``command`` is argv, or a string with shell."""

    text: str
    command: list[str] | str
    shell: bool

    @property
    def mode(self) -> str:
        return "sh -c" if self.shell else "argv"

    @property
    def params(self) -> dict[str, object]:
        return {"command": self.command, "shell": self.shell}


def parse_command_line(line: str) -> CommandLine:
    """``df -h`` -> argv ``["df", "-h"]``; ``!ls`` or ``a | b`` -> a ``sh -c`` string."""
    text = line.strip()
    if text.startswith(FORCE_SHELL):
        script = text[len(FORCE_SHELL) :].strip()
        if not script:
            raise CommandLineError("nothing to run after '!'.")
        # S604: nothing runs on this machine; the flag asks the guest agent for sh -c
        return CommandLine(text, script, shell=True)  # noqa: S604
    if not text:
        raise CommandLineError("the command is empty.")
    if any(mark in text for mark in SHELL_SYNTAX):
        return CommandLine(text, text, shell=True)  # noqa: S604
    try:
        argv = shlex.split(text)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise CommandLineError(f"cannot split the command: {exc}.") from exc
    if not argv:
        raise CommandLineError("the command is empty.")
    return CommandLine(text, argv, shell=False)
