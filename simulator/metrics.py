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
    return _wobble(drift.periods, drift.phases, t)


def _wobble(periods: tuple[float, float, float], phases: tuple[float, float, float],
            t: float) -> float:  # fmt: skip
    (p1, p2, p3), (f1, f2, f3) = periods, phases
    turn = math.tau * t  # math.tau * t / p1 is (math.tau * t) / p1: the same operations
    return (
        0.6 * math.sin(turn / p1 + f1)
        + 0.3 * math.sin(turn / p2 + f2)
        + 0.1 * math.sin(turn / p3 + f3)
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
    the run would otherwise show a negative uptime.
    """
    curve = guest_curve(guest)
    return STOPPED if curve is None else metrics_at(curve, metric_time, now)


class GuestCurve(NamedTuple):
    """What a running guest's metrics depend on besides the time: read once from the guest
    and its drift, and valid until the guest changes (any assignment to it gives it a new
    ``edit_stamp``). /cluster/resources needs every running guest's metrics each simulated
    second; ``simulator.guest_sheet`` keeps each guest's curve instead of reading a dozen
    fields of the guest (two of them properties) again every second. Plain numbers, so
    the garbage collector stops tracking it."""

    boot_time: float
    periods: tuple[float, float, float]
    phases: tuple[float, float, float]
    cpu_base: float
    cpu_swing: float
    mem_fraction: float
    maxmem: int
    disk: int
    disk_read_rate: float
    disk_write_rate: float
    net_in_rate: float
    net_out_rate: float


#: a NamedTuple built without its ``__new__``, Python code that costs as much as the rest
#: of building it: ``_new_tuple(GuestMetrics, (cpu, mem, ...))``, fields in their order
_new_tuple = tuple.__new__


def guest_curve(guest: Guest) -> GuestCurve | None:
    """The curve of a running guest's metrics; None for one that is not running (all 0)."""
    if guest.status != "running":
        return None
    d = guest.drift
    disk = int(guest.maxdisk * guest.disk_fraction) if guest.kind == "lxc" else 0
    return _new_tuple(GuestCurve, (
        guest.boot_time, d.periods, d.phases, d.cpu_base, d.cpu_swing, d.mem_fraction,
        guest.maxmem, disk, d.disk_read_rate, d.disk_write_rate, d.net_in_rate,
        d.net_out_rate,
    ))  # fmt: skip


def metrics_at(curve: GuestCurve, metric_time: float, now: float) -> GuestMetrics:
    """A running guest's metrics (see ``guest_metrics``). Called for thousands of guests
    per request: clamped by comparisons, not min/max calls (the same values, cheaper)."""
    (boot_time, periods, phases, cpu_base, cpu_swing, mem_fraction, maxmem, disk,
     read_rate, write_rate, in_rate, out_rate) = curve  # fmt: skip
    clock = metric_time if boot_time <= metric_time else now
    uptime = int(clock - boot_time)
    if uptime < 0:
        uptime = 0
    level = _wobble(periods, phases, clock)
    cpu = cpu_base + cpu_swing * level
    cpu = 0.001 if cpu < 0.001 else 1.0 if cpu > 1.0 else cpu
    # A freshly booted guest has not filled its memory yet.
    warmup = 0.35 + uptime / 600
    if warmup > 1.0:
        warmup = 1.0
    share = mem_fraction * warmup * (1 + 0.08 * level)
    share = 0.05 if share < 0.05 else 0.98 if share > 0.98 else share
    return _new_tuple(GuestMetrics, (  # cpu, mem, disk, diskread, diskwrite, netin, ...
        round(cpu, 6), int(maxmem * share), disk, int(read_rate * uptime),
        int(write_rate * uptime), int(in_rate * uptime), int(out_rate * uptime), uptime,
    ))  # fmt: skip


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
