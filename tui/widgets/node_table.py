"""The nodes table: one row per cluster node, updated in place."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import compress
from operator import attrgetter
from typing import Any

from rich.text import Text

from core.models import Guest, NodeInfo
from tui.formatting import percent, status_text, uptime, used_of
from tui.widgets.graphs import trend
from tui.widgets.keyed_table import Cell, KeyedTable

#: refreshes of history each node row draws as its CPU and memory sparklines
TREND_POINTS = 8
RUNNING = "running".__eq__


def node_cells(
    node: NodeInfo,
    guests: tuple[int, int],
    cpu_history: Sequence[float] = (),
    mem_history: Sequence[float] = (),
) -> tuple[Cell, ...]:
    """One row; ``guests``: how many of the node's guests run, and how many it has. The
    histories (fractions, oldest first) come from earlier refreshes, so the sparklines
    cost no request of their own."""
    online = node.status == "online"
    running, total = guests
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
        f"{running}/{total}",
    )


def guest_counts(guests: Sequence[Guest]) -> dict[str, tuple[int, int]]:
    """Per node: how many of its guests run, and how many it has (counted in C: 5,000
    guests are still ~5 ms, and ``fetch_snapshot`` counts them in a worker thread)."""
    on_node = Counter(map(attrgetter("node"), guests))
    statuses = map(attrgetter("status"), guests)
    running = Counter(map(attrgetter("node"), compress(guests, map(RUNNING, statuses))))
    return {node: (running[node], total) for node, total in on_node.items()}


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

    def show(
        self,
        nodes: Iterable[NodeInfo],
        guests: Iterable[Guest],
        counts: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """``counts``: ``guest_counts(guests)``, if counted already."""
        if counts is None:
            counts = guest_counts(list(guests))
        rows = {}
        for n in nodes:
            cpu = self._cpu.setdefault(n.node, deque(maxlen=TREND_POINTS))
            mem = self._mem.setdefault(n.node, deque(maxlen=TREND_POINTS))
            if n.status == "online":
                cpu.append(n.cpu)
                mem.append(n.mem / n.maxmem if n.maxmem else 0.0)
            rows[n.node] = node_cells(n, counts.get(n.node, (0, 0)), cpu, mem)
        self.sync_rows(rows, keep=self.current_key)

    def after_sync(self) -> None:
        self.sort_rows(lambda key: key)
