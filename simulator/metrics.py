"""Live-looking numbers: smooth, seeded wobble as a pure function of time.

Nothing here is stored; each value is computed from the object's ``Drift`` and
the metric time, so 5,000 guests cost nothing between requests and the same
time always gives the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from simulator.model import MIB, Drift, Guest, Node


def wobble(drift: Drift, t: float) -> float:
    """A smooth value in [-1, 1]: three sines of seeded period and phase."""
    (p1, p2, p3), (f1, f2, f3) = drift.periods, drift.phases
    return (
        0.6 * math.sin(math.tau * t / p1 + f1)
        + 0.3 * math.sin(math.tau * t / p2 + f2)
        + 0.1 * math.sin(math.tau * t / p3 + f3)
    )


class GuestMetrics(NamedTuple):
    """One guest's live numbers. A NamedTuple, not a frozen dataclass: /cluster/resources
    makes one per guest per request, and a tuple is several times cheaper to build. The
    fields are in the order /cluster/resources lists them (``guest_sheet.guest_template``
    fills the tuple in as it is)."""

    cpu: float
    mem: int
    disk: int
    diskread: int
    diskwrite: int
    netin: int
    netout: int
    uptime: int


STOPPED = GuestMetrics(0.0, 0, 0, 0, 0, 0, 0, 0)


def guest_metrics(guest: Guest, metric_time: float, now: float) -> GuestMetrics:
    """Metrics at ``metric_time``; uptime counts from ``now`` for guests booted later.

    With frozen metrics ``metric_time`` is the base epoch: guests booted during
    the run would otherwise show a negative uptime. /cluster/resources calls this for
    every guest, so it avoids calls it can spare (the clamps are comparisons, not
    ``min``/``max``; same values).
    """
    if guest.status != "running":
        return STOPPED
    drift = guest.drift
    clock = metric_time if guest.boot_time <= metric_time else now
    uptime = int(clock - guest.boot_time)
    if uptime < 0:
        uptime = 0
    level = wobble(drift, clock)
    cpu = _clamp(drift.cpu_base + drift.cpu_swing * level, 0.001, 1.0)
    # A freshly booted guest has not filled its memory yet.
    warmup = 0.35 + uptime / 600
    if warmup > 1.0:
        warmup = 1.0
    mem_share = _clamp(drift.mem_fraction * warmup * (1 + 0.08 * level), 0.05, 0.98)
    disk = int(guest.maxdisk * guest.disk_fraction) if guest.kind == "lxc" else 0
    return GuestMetrics(  # positional (cheaper): cpu, mem, disk, diskread, diskwrite, net..
        round(cpu, 6),
        int(guest.maxmem * mem_share),
        disk,
        int(drift.disk_read_rate * uptime),
        int(drift.disk_write_rate * uptime),
        int(drift.net_in_rate * uptime),
        int(drift.net_out_rate * uptime),
        uptime,
    )


def _clamp(value: float, low: float, high: float) -> float:
    """``min(high, max(low, value))``."""
    return low if value < low else high if value > high else value


@dataclass(frozen=True)
class NodeMetrics:
    cpu: float
    mem: int
    uptime: int
    loadavg: tuple[float, float, float]


def node_metrics(node: Node, guest_cpu_load: float, guest_mem: int,
                 metric_time: float) -> NodeMetrics:  # fmt: skip
    """``guest_cpu_load`` is the sum of running guests' cpu x cores."""
    level = wobble(node.drift, metric_time)
    host_cpu = 0.02 + 0.015 * level
    cpu = min(1.0, max(0.001, host_cpu + guest_cpu_load / node.maxcpu))
    host_mem = int((2800 + 300 * level) * MIB)
    mem = min(int(node.maxmem * 0.97), guest_mem + host_mem)
    load = cpu * node.maxcpu
    return NodeMetrics(
        cpu=round(cpu, 6),
        mem=mem,
        uptime=max(0, int(metric_time - node.boot_time)),
        loadavg=(round(load, 2), round(load * 0.95 + 0.05, 2), round(load * 0.9 + 0.1, 2)),
    )
