"""The nodes table: one row per cluster node, updated in place."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text

from core.models import Guest, NodeInfo
from tui.formatting import percent, status_text, uptime, used_of
from tui.widgets.graphs import trend
from tui.widgets.keyed_table import Cell, KeyedTable

#: refreshes of history each node row draws as its CPU and memory sparklines
TREND_POINTS = 8


def node_cells(
    node: NodeInfo,
    guests: list[Guest],
    cpu_history: Sequence[float] = (),
    mem_history: Sequence[float] = (),
) -> tuple[Cell, ...]:
    """One row; the histories (fractions, oldest first) come from earlier refreshes, so the
    sparklines cost no request of their own."""
    online = node.status == "online"
    running = sum(1 for g in guests if g.status == "running")
    cpu = Text.assemble(
        trend(cpu_history or [node.cpu], TREND_POINTS), f" {percent(node.cpu)} of {node.maxcpu}"
    )
    mem = Text.assemble(
        trend(mem_history or [node.mem / node.maxmem if node.maxmem else 0.0], TREND_POINTS),
        f" {used_of(node.mem, node.maxmem)}",
    )
    return (
        node.node,
        status_text(node.status),
        cpu if online else "-",
        mem if online else "-",
        used_of(node.disk, node.maxdisk) if online else "-",
        uptime(node.uptime) if online else "-",
        f"{running}/{len(guests)}",
    )


class NodeTable(KeyedTable):
    COLUMNS = (
        ("node", "Node"),
        ("status", "Status"),
        ("cpu", "CPU"),
        ("mem", "Memory"),
        ("disk", "Root disk"),
        ("uptime", "Uptime"),
        ("guests", "Running"),
    )

    initial_sort = ("node", False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cpu: dict[str, deque[float]] = {}
        self._mem: dict[str, deque[float]] = {}

    def show(self, nodes: Iterable[NodeInfo], guests: Iterable[Guest]) -> None:
        by_node: dict[str, list[Guest]] = {}
        for guest in guests:
            by_node.setdefault(guest.node, []).append(guest)
        rows = {}
        for n in nodes:
            cpu = self._cpu.setdefault(n.node, deque(maxlen=TREND_POINTS))
            mem = self._mem.setdefault(n.node, deque(maxlen=TREND_POINTS))
            if n.status == "online":
                cpu.append(n.cpu)
                mem.append(n.mem / n.maxmem if n.maxmem else 0.0)
            rows[n.node] = node_cells(n, by_node.get(n.node, []), cpu, mem)
        self.sync_rows(rows, keep=self.current_key)

    def after_sync(self) -> None:
        self.sort_rows(lambda key: key)
