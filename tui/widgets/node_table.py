"""The nodes table: one row per cluster node, updated in place."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from core.models import Guest, NodeInfo
from tui.formatting import percent, status_text, uptime, used_of
from tui.widgets.graphs import bar
from tui.widgets.keyed_table import Cell, KeyedTable


def node_cells(node: NodeInfo, guests: list[Guest]) -> tuple[Cell, ...]:
    online = node.status == "online"
    running = sum(1 for g in guests if g.status == "running")
    return (
        node.node,
        status_text(node.status),
        Text.assemble(bar(node.cpu), f" {percent(node.cpu)} of {node.maxcpu}") if online else "-",
        used_of(node.mem, node.maxmem) if online else "-",
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

    def show(self, nodes: Iterable[NodeInfo], guests: Iterable[Guest]) -> None:
        by_node: dict[str, list[Guest]] = {}
        for guest in guests:
            by_node.setdefault(guest.node, []).append(guest)
        self.sync_rows(
            {n.node: node_cells(n, by_node.get(n.node, [])) for n in nodes},
            keep=self.current_key,
        )

    def after_sync(self) -> None:
        self.sort_rows(lambda key: key)
