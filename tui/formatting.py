"""How numbers and states read on screen: short, aligned, and the same everywhere."""

from __future__ import annotations

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


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def guest_label(guest: Guest) -> str:
    """``windows-11 (116)``: how a person names a guest in a sentence."""
    return f"{guest.name} ({guest.vmid})"


def guest_matches(guest: Guest, query: str) -> bool:
    """Every word of ``query`` occurs in the guest's name, vmid, node, tags, pool or status."""
    fields = [guest.name, str(guest.vmid), guest.node, guest.status, guest.kind, guest.pool or ""]
    haystack = " ".join([*fields, *guest.tags]).lower()
    return all(word in haystack for word in query.lower().split())
