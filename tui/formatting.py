"""How numbers and states read on screen: short, aligned, and the same everywhere."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable

from rich.progress_bar import ProgressBar
from rich.text import Text

from core.models import Guest

_UNITS = ("B", "K", "M", "G", "T", "P")

STATUS_STYLES = {
    "running": "bold green",
    "online": "bold green",
    "stopped": "dim",
    "offline": "bold red",
    "paused": "yellow",
    "suspended": "yellow",
    "unknown": "red",
    # TrueNAS: pool health, app states, alert levels (upper case, as TrueNAS writes them)
    "ONLINE": "bold green",
    "DEGRADED": "bold yellow",
    "FAULTED": "bold red",
    "OFFLINE": "bold red",
    "UNAVAIL": "bold red",
    "REMOVED": "bold red",
    "RUNNING": "bold green",
    "STOPPED": "dim",
    "DEPLOYING": "yellow",
    "STOPPING": "yellow",
    "CRASHED": "bold red",
    "INFO": "",
    "NOTICE": "cyan",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
    "ALERT": "bold red",
    "EMERGENCY": "bold red",
}


def short_bytes(value: int) -> str:
    """``3506992231`` -> ``3.3G``: binary units, one letter, at most four characters."""
    amount = float(max(value, 0))
    for unit in _UNITS:
        if amount < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(amount)}B"
            return f"{amount:.1f}{unit}" if amount < 10 else f"{amount:.0f}{unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _first(lo: int, hi: int, test: Callable[[int], bool]) -> int:
    """The smallest ``v`` in [lo, hi] for which ``test(v)`` (False up to it, True from it)."""
    while lo < hi:
        middle = (lo + hi) // 2
        if test(middle):
            hi = middle
        else:
            lo = middle + 1
    return lo


#: from here (8 P) ``float(value)`` rounds, and from 1024 P the last unit's figure grows:
#: such values are measured by formatting them
_BYTES_TABLE_END = 2**53


def _short_bytes_pieces() -> tuple[list[int], list[int]]:
    """Where the width of ``short_bytes`` changes below ``_BYTES_TABLE_END``, in order, and
    its width from there on.

    ``0B``..``1023B``, then in each unit ``1.0K`` (4), ``10.0K`` (9.95.. rounds up: 5),
    ``10K`` (3), ``100K`` (99.5.. rounds up: 4), ``1000K`` (999.5..: 5). Where rounding
    moves a value to the next width is found with ``short_bytes`` itself, so the pieces
    cannot drift from it."""
    pieces = [(0, 2), (10, 3), (100, 4), (1000, 5)]
    for power in range(1, len(_UNITS)):
        scale = 1024**power
        pieces += [(scale, 4), (10 * scale, 3)]
        for below, width in ((9, 5), (99, 4), (999, 5)):
            lo = below * scale
            narrower = len(short_bytes(lo))
            start = _first(lo, lo + scale, lambda v, n=narrower: len(short_bytes(v)) != n)
            pieces.append((start, width))
    pieces = sorted(piece for piece in pieces if piece[0] < _BYTES_TABLE_END)
    return [start for start, _ in pieces], [width for _, width in pieces]


_BYTES_STARTS, _BYTES_WIDTHS = _short_bytes_pieces()


def short_bytes_width(value: int) -> int:
    """``len(short_bytes(value))`` without formatting it (a column of 5,000 is sized
    at every refresh)."""
    if value >= _BYTES_TABLE_END:
        return len(short_bytes(value))
    return _BYTES_WIDTHS[bisect_right(_BYTES_STARTS, max(value, 0)) - 1]


def widest_short_bytes(values: Iterable[int]) -> int:
    """``max(len(short_bytes(v)) for v in values)``, measured piece by piece: a piece of
    ``short_bytes_width`` counts if any value falls in it (0 for no values)."""
    ordered = sorted(set(values))
    if not ordered:
        return 0
    widest = max(map(len, map(short_bytes, ordered[bisect_left(ordered, _BYTES_TABLE_END) :])),
                 default=0)  # fmt: skip
    ends = [*_BYTES_STARTS[1:], _BYTES_TABLE_END]
    for start, end, width in zip(_BYTES_STARTS, ends, _BYTES_WIDTHS, strict=True):
        found = bisect_left(ordered, start) if start else 0  # negatives print 0B too
        if width > widest and found < len(ordered) and ordered[found] < end:
            widest = width
    return widest


def used_of(used: int, total: int) -> str:
    """``245M/512M``, or ``-`` when nothing is allotted."""
    if total <= 0:
        return "-"
    return f"{short_bytes(used)}/{short_bytes(total)}"


def usage_style(fraction: float) -> str:
    """Green, then yellow from 80 % full, red from 90 % (where ZFS slows down)."""
    return "red" if fraction >= 0.9 else "yellow" if fraction >= 0.8 else "green"


def usage_bar(used: int, total: int) -> ProgressBar:
    """A bar as wide as its cell, coloured by how full it is."""
    style = usage_style(used / total if total > 0 else 0.0)
    return ProgressBar(
        total=max(total, 1), completed=max(used, 0), complete_style=style, finished_style=style
    )


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def uptime(seconds: int) -> str:
    """``664195`` -> ``7d16h``; the two largest units only, ``-`` when not running."""
    if seconds <= 0:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def uptime_width(seconds: int) -> int:
    """``len(uptime(seconds))`` without formatting it."""
    if seconds <= 0:
        return 1
    if seconds >= 86400:
        return len(str(seconds // 86400)) + 4  # 7d16h
    if seconds >= 600:
        return 6 if seconds < 3600 or seconds >= 36000 else 5  # 10m00s, 10h00m; 1h00m
    return 5 if seconds >= 60 else 3 if seconds >= 10 else 2  # 1m00s; 10s; 9s


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def guest_label(guest: Guest) -> str:
    """``windows-11 (116)``: how a person names a guest in a sentence."""
    return f"{guest.name} ({guest.vmid})"


def guest_haystack(guest: Guest) -> str:
    """What a filter searches in a guest: its name, vmid, node, status, kind, pool and tags,
    in lower case."""
    fields = [guest.name, str(guest.vmid), guest.node, guest.status, guest.kind, guest.pool or ""]
    return " ".join([*fields, *guest.tags]).lower()


def guest_matches(guest: Guest, query: str) -> bool:
    """Every word of ``query`` occurs in the guest's name, vmid, node, tags, pool or status."""
    haystack = guest_haystack(guest)
    return all(word in haystack for word in query.lower().split())
