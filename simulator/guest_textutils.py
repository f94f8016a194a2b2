"""Text tools and the journal of the simulated guests: echo, seq, head, grep, journalctl ...

Generators stop at ``STREAM_LIMIT``; what comes after is marked (``more``), so a
consumer that needs the whole input (``wc``, ``grep``) refuses honestly, and one that
needs only a prefix (``head``) still answers exactly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from simulator.guest_commands import (
    BASE_SECONDS,
    STREAM_LIMIT,
    More,
    Outcome,
    Session,
    Stream,
    concat,
    fail,
    not_simulated,
    read_file,
    unit_name,
)

JOURNAL_MESSAGES = (
    "systemd[1]: Started {unit}.service.",
    "CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "systemd[1]: Starting apt-daily.service - Daily apt download activities...",
    "kernel: [UFW BLOCK] IN={nic} OUT= SRC=10.10.20.1 DST=224.0.0.1 PROTO=2",
    "qemu-ga[{pid}]: info: guest-ping called",
    "systemd-timesyncd[{pid}]: Contacted time server 10.10.10.1:123 (10.10.10.1).",
    "sshd[{pid}]: Connection closed by 10.10.10.5 port {port} [preauth]",
    "systemd[1]: {unit}.service: Deactivated successfully.",
)
JOURNAL_SECONDS_PER_LINE = 20


def journalctl(session: Session, args: list[str], stdin: Stream) -> Outcome:
    count: int | None = None
    unit: str | None = None
    items = iter(args)
    for arg in items:
        if arg in ("-n", "--lines"):
            count = int(next(items, "10"))
        elif arg.startswith("--lines="):
            count = int(arg.split("=", 1)[1])
        elif re.fullmatch(r"-n\d+", arg):
            count = int(arg[2:])
        elif arg in ("-u", "--unit"):
            unit = unit_name(next(items, ""))
        elif arg not in ("--no-pager", "-b", "-q", "--quiet", "-o", "short"):
            return not_simulated("journalctl", f"option {arg}")
    machine = session.machine
    total = max(2000, machine.uptime // JOURNAL_SECONDS_PER_LINE)
    first = 0 if count is None else max(0, total - count)
    lines: list[str] = []
    size = 0
    more: More = ""
    start = machine.now - machine.uptime
    units = sorted(session.services)
    for n in range(first, total):
        when = time.strftime("%b %d %H:%M:%S", time.gmtime(start + n * machine.uptime / total))
        text = JOURNAL_MESSAGES[n % len(JOURNAL_MESSAGES)].format(
            unit=unit or units[n % len(units)], pid=1000 + n * 7 % 60000,
            port=32768 + n * 13 % 28000, nic=machine.distro.nic)  # fmt: skip
        line = f"{when} {machine.hostname} {text}\n"
        lines.append(line)
        size += len(line)
        if size > STREAM_LIMIT:
            more = "big"
            break
    return Outcome("".join(lines), seconds=0.05 + 0.25 * min(1.0, size / STREAM_LIMIT),
                   more=more)  # fmt: skip


# ------------------------------------------------------------- text tools


def echo(session: Session, args: list[str], stdin: Stream) -> Outcome:
    newline = "\n"
    if args[:1] == ["-n"]:
        args, newline = args[1:], ""
    return Outcome(" ".join(args) + newline)


def sleep(session: Session, args: list[str], stdin: Stream) -> Outcome:
    if not args:
        return fail("sleep", "missing operand\nTry 'sleep --help' for more information.")
    total = 0.0
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for arg in args:
        found = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if found is None:
            return fail("sleep", f"invalid time interval '{arg}'\n"
                        "Try 'sleep --help' for more information.")  # fmt: skip
        total += float(found[1]) * factor[found[2]]
    return Outcome(seconds=total + BASE_SECONDS)


def true(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return Outcome()


def false(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return Outcome(exitcode=1)


def _bounded(lines: Iterable[str]) -> Outcome:
    """Join generated lines until ``STREAM_LIMIT``; the rest is left ungenerated."""
    out: list[str] = []
    size = 0
    for line in lines:
        out.append(line)
        size += len(line)
        if size > STREAM_LIMIT:
            return Outcome("".join(out), more="big", seconds=0.05)
    return Outcome("".join(out))


def seq(session: Session, args: list[str], stdin: Stream) -> Outcome:
    try:
        numbers = [int(a) for a in args]
    except ValueError:
        bad = next(a for a in args if not re.fullmatch(r"[+-]?\d+", a))
        return fail("seq", f"invalid floating point argument: '{bad}'\n"
                    "Try 'seq --help' for more information.")  # fmt: skip
    if not 1 <= len(numbers) <= 3:
        return fail("seq", "missing operand\nTry 'seq --help' for more information.")
    first, step, last = {1: (1, 1, numbers[0]), 2: (numbers[0], 1, numbers[-1])}.get(
        len(numbers), (numbers[0], numbers[1], numbers[-1]))  # fmt: skip
    if step == 0:
        return fail("seq", "invalid Zero increment value: '0'")
    return _bounded(f"{n}\n" for n in range(first, last + (1 if step > 0 else -1), step))


def yes(session: Session, args: list[str], stdin: Stream) -> Outcome:
    line = (" ".join(args) or "y") + "\n"
    return Outcome(line * (STREAM_LIMIT // len(line) + 1), more="endless")


def _take(program: str, args: list[str], stdin: Stream, session: Session,
          from_end: bool) -> Outcome:  # fmt: skip
    lines, chars, paths = 10, None, []
    items = iter(args)
    for arg in items:
        if arg == "-n":
            lines = int(next(items, "10"))
        elif arg == "-c":
            chars = int(next(items, "0"))
        elif re.fullmatch(r"-n?\d+", arg):
            lines = int(arg.lstrip("-n"))
        elif arg.startswith("-"):
            return not_simulated(program, f"option {arg}")
        else:
            paths.append(arg)
    source = stdin if not paths else concat([read_file(session, program, p, stdin) for p in paths])
    text, more = (source.text, source.more) if isinstance(source, Stream) else \
        (source.stdout, source.more)  # fmt: skip
    if from_end and more:
        return Outcome(more=more if more == "endless" else "", stderr=_limit(program),
                       exitcode=2 if more == "big" else 0)  # fmt: skip
    if chars is not None:
        piece = text[-chars:] if from_end else text[:chars]
        enough = from_end or len(text) >= chars
    else:
        parts = text.splitlines(keepends=True)
        piece = "".join(parts[-lines:] if from_end else parts[:lines])
        enough = from_end or len(parts) >= lines
    return Outcome(piece, more="" if enough else more)


def _limit(program: str) -> str:
    return f"{program}: input over {STREAM_LIMIT // 1024} KiB is not simulated\n"


def head(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return _take("head", args, stdin, session, from_end=False)


def tail(session: Session, args: list[str], stdin: Stream) -> Outcome:
    return _take("tail", args, stdin, session, from_end=True)


def _whole_input(program: str, stdin: Stream) -> Outcome | None:
    """Refuse input we only hold a prefix of; an endless input never ends."""
    if stdin.more == "endless":
        return Outcome(more="endless")
    if stdin.more == "big":
        return Outcome(stderr=_limit(program), exitcode=2)
    return None


def wc(session: Session, args: list[str], stdin: Stream) -> Outcome:
    refused = _whole_input("wc", stdin)
    if refused is not None:
        return refused
    text = stdin.text
    counts = {"l": text.count("\n"), "w": len(text.split()), "c": len(text.encode())}
    flags = "".join(a[1:] for a in args if a.startswith("-")) or "lwc"
    if set(flags) - set(counts) or any(not a.startswith("-") for a in args):
        return not_simulated("wc", "this option or a file operand")
    chosen = [counts[k] for k in "lwc" if k in flags]
    if len(chosen) == 1:
        return Outcome(f"{chosen[0]}\n")
    return Outcome(" ".join(f"{n:7d}" for n in chosen) + "\n")


def grep(session: Session, args: list[str], stdin: Stream) -> Outcome:
    flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
    operands = [a for a in args if not (a.startswith("-") and len(a) > 1)]
    if set(flags) - set("ivcqF") or not operands:
        return not_simulated("grep", "this option") if operands else \
            fail("grep", "Usage: grep [OPTION]... PATTERNS [FILE]...", 2)  # fmt: skip
    pattern, paths = operands[0], operands[1:]
    source = stdin if not paths else concat([read_file(session, "grep", p, stdin) for p in paths])
    stream = source if isinstance(source, Stream) else source.output
    refused = _whole_input("grep", stream)
    if refused is not None:
        return refused
    try:
        regex = re.compile(re.escape(pattern) if "F" in flags else pattern,
                           re.IGNORECASE if "i" in flags else 0)  # fmt: skip
    except re.error:
        return fail("grep", "Unmatched ( or \\(", 2)
    hits = [line for line in stream.text.splitlines(keepends=True)
            if bool(regex.search(line)) != ("v" in flags)]  # fmt: skip
    text = "" if "q" in flags else (f"{len(hits)}\n" if "c" in flags else "".join(hits))
    return Outcome(text, exitcode=0 if hits else 1)
