"""Text from a guest or a NAS, made safe to show on a terminal.

What a guest prints (``pve_guest_exec`` output), and free text others control (comments,
task logs, error messages), may hold terminal escape sequences: a crafted ``ESC ] 52``
writes the person's clipboard, others retitle the window, hide text or move the cursor
over what labdeck printed. Every face that writes such text to a terminal passes it
through :func:`printable` first; JSON output needs nothing (JSON escapes control codes).
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls (``\x9b`` is a one-byte CSI), and the
#: bidirectional overrides that make text read differently from what it is
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, multiline: bool = True) -> str:
    """``text`` with every control character shown as ``\\xNN`` instead of acting.

    Line ends stay (``\\r\\n`` and a lone ``\\r`` become ``\\n``) unless ``multiline`` is
    false, for one-line cells, where they are shown escaped like the rest.
    """
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    else:
        text = text.replace("\n", "\\n").replace("\t", "\\t")
    return _UNSAFE.sub(_visible, text)
