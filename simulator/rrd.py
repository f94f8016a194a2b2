"""``GET .../rrddata``: seeded metric history for nodes and guests.

PVE keeps round-robin databases of 70 rows per timeframe (one minute apart for an hour,
30 minutes for a day, 3 hours for a week, ...). Here the history is computed from the
same smooth, seeded functions as the live values (``simulator.metrics``), sampled a few
times within each row and consolidated as the average or the maximum, so the newest row
agrees with what ``status/current`` says now. Guests count as stopped before their last
boot; nothing is stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from simulator import params as p
from simulator.metrics import guest_metrics, node_metrics, wobble
from simulator.model import Drift, Guest, GuestKind, Node
from simulator.routing import Call, Route
from simulator.state import ClusterState

Json = dict[str, Any]
ROWS = 70
SAMPLES = 3
STEPS = {"hour": 60, "day": 1800, "week": 10800, "month": 43200, "year": 604800,
         "decade": 4_838_400}  # fmt: skip
GUEST_TIMEFRAMES = ("hour", "day", "week", "month", "year")


def _rate(base: float, drift: Drift, t: float, salt: float) -> float:
    """Bytes per second around ``base``, wobbling like the rest of the object."""
    return max(0.0, base * (1.0 + 0.5 * wobble(drift, t * 1.3 + salt)))


def guest_sample(guest: Guest, t: float) -> dict[str, float]:
    running = guest.running and t >= guest.boot_time
    out: dict[str, float] = {"maxcpu": guest.cores, "maxmem": guest.maxmem,
                             "maxdisk": guest.maxdisk}  # fmt: skip
    if not running:
        return {**out, "cpu": 0.0, "mem": 0.0, "disk": 0.0, "netin": 0.0, "netout": 0.0,
                "diskread": 0.0, "diskwrite": 0.0}  # fmt: skip
    m = guest_metrics(guest, t, t)
    d = guest.drift
    return {
        **out, "cpu": m.cpu, "mem": float(m.mem), "disk": float(m.disk),
        "netin": _rate(d.net_in_rate, d, t, 11.0), "netout": _rate(d.net_out_rate, d, t, 23.0),
        "diskread": _rate(d.disk_read_rate, d, t, 37.0),
        "diskwrite": _rate(d.disk_write_rate, d, t, 53.0),
    }  # fmt: skip


def node_sample(state: ClusterState, node: Node, t: float) -> dict[str, float]:
    load = mem = netin = netout = 0.0
    for guest in state.guests_on(node.name):
        sample = guest_sample(guest, t)
        load += sample["cpu"] * guest.cores
        mem += sample["mem"]
        netin += sample["netin"]
        netout += sample["netout"]
    m = node_metrics(node, load, int(mem), t)
    return {
        "cpu": m.cpu, "maxcpu": node.maxcpu, "iowait": round(m.cpu * 0.02, 6),
        "loadavg": m.loadavg[0], "memtotal": node.maxmem, "memused": float(m.mem),
        "swaptotal": node.swap_total, "swapused": 0.0, "roottotal": node.rootfs_total,
        "rootused": node.rootfs_used, "netin": netin + 900.0, "netout": netout + 600.0,
    }  # fmt: skip


def series(now: float, timeframe: str, cf: str,
           sample: Callable[[float], dict[str, float]]) -> list[Json]:  # fmt: skip
    step = STEPS[timeframe]
    last = math.floor(now / step) * step
    rows: list[Json] = []
    for index in range(ROWS):
        end = last - step * (ROWS - 1 - index)
        points = [sample(end - step + step * (j + 0.5) / SAMPLES) for j in range(SAMPLES)]
        row: Json = {"time": int(end)}
        for key in points[0]:
            values = [point[key] for point in points]
            value = max(values) if cf == "MAX" else sum(values) / len(values)
            row[key] = round(value, 6) if key in ("cpu", "iowait", "loadavg") else round(value, 2)
        rows.append(row)
    return rows


def get_node_rrddata(call: Call) -> list[Json]:
    state = call.state
    node = state.node(call.params["node"])
    return series(state.metric_time(), call.params["timeframe"], call.params.get("cf", "AVERAGE"),
                  lambda t: node_sample(state, node, t))  # fmt: skip


def _guest_rrddata(kind: GuestKind) -> Any:
    def handler(call: Call) -> list[Json]:
        state, args = call.state, call.params
        guest = state.guest_on(args["node"], kind, args["vmid"])
        return series(state.metric_time(), args["timeframe"], args.get("cf", "AVERAGE"),
                      lambda t: guest_sample(guest, t))  # fmt: skip

    return handler


def rrd_routes() -> list[Route]:
    cf = p.choice("AVERAGE", "MAX")
    node_spec = {"node": p.node(), "cf": cf,
                 "timeframe": p.Param("string", optional=False, enum=tuple(STEPS))}  # fmt: skip
    guest_spec = {
        "node": p.node(),
        "vmid": p.vmid(),
        "cf": cf,
        "timeframe": p.Param("string", optional=False, enum=GUEST_TIMEFRAMES),
    }
    routes = [Route("GET", "/nodes/{node}/rrddata", get_node_rrddata, node_spec,
                    ("/nodes/{node}", "Sys.Audit"))]  # fmt: skip
    kind: GuestKind
    for kind in ("qemu", "lxc"):
        routes.append(
            Route(
                "GET",
                f"/nodes/{{node}}/{kind}/{{vmid}}/rrddata",
                _guest_rrddata(kind),
                guest_spec,
                ("/vms/{vmid}", "VM.Audit"),
            )
        )
    return routes
