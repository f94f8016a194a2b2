"""One node's history: CPU, memory, load and network over the last hour, day or week.

Opened with Enter on a node of the Nodes view, closed with Escape. The charts come from
the node's round-robin database (``pve_node_metrics``); ``t`` switches the timeframe.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.errors import LabdeckError
from core.models import NodeInfo
from core.pve_results import Metrics
from tui.formatting import percent, status_text, uptime, used_of
from tui.widgets.graphs import Chart, MetricsGraphs, next_timeframe

if TYPE_CHECKING:
    from tui.app import LabdeckApp

NODE_CHARTS = (
    Chart("CPU", (("cpu", "cpu"),), "percent"),
    Chart("Memory", (("memused", "used"),), "bytes"),
    Chart("Load average", (("loadavg", "1 min"),), "plain"),
    Chart("Network", (("netin", "in"), ("netout", "out")), "rate"),
)


def node_header(node: NodeInfo) -> Text:
    """``pve1 · online · CPU 4.2% of 16 · memory 11G/64G · up 12d03h``."""
    text = Text(node.node, style="bold")
    text.append(" · ")
    text.append_text(status_text(node.status))
    if node.status == "online":
        text.append(f" · CPU {percent(node.cpu)} of {node.maxcpu}")
        text.append(f" · memory {used_of(node.mem, node.maxmem)}")
        text.append(f" · root disk {used_of(node.disk, node.maxdisk)}")
        text.append(f" · up {uptime(node.uptime)}")
    return text


class NodeScreen(Screen[None]):
    """``NodeScreen(node)``: the graphs of one cluster node."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="node_detail.close",
                tooltip="Close the node graphs (back to the dashboard)."),
        Binding("t", "timeframe", "Hour/day/week", id="node_detail.timeframe",
                tooltip="Node graphs: switch between the last hour, day and week."),
        Binding("ctrl+r,f5", "reload", "Reload", id="node_detail.reload", show=False,
                tooltip="Fetch the node's history again."),
    ]  # fmt: skip

    app: LabdeckApp

    def __init__(self, node: NodeInfo) -> None:
        super().__init__()
        self.node = node

    @property
    def zone(self) -> tzinfo | None:
        return self.app.clock().tzinfo

    def compose(self) -> ComposeResult:
        yield Static(node_header(self.node), id="node-header")
        yield MetricsGraphs(NODE_CHARTS, self._fetch, self.zone, id="node-graphs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.action_reload()

    async def _fetch(self, timeframe: str) -> Metrics:
        result = await self.app.service.call(
            "pve_node_metrics", {"node": self.node.node, "timeframe": timeframe}
        )
        assert isinstance(result, Metrics)
        return result

    async def _load_header(self) -> None:
        try:
            inventory = await self.app.service.inventory()
        except LabdeckError:
            return  # the graphs' status line says what is wrong with the connection
        found = next((n for n in inventory.nodes if n.node == self.node.node), None)
        if found is not None:
            self.node = found
            self.query_one("#node-header", Static).update(node_header(found))

    def action_reload(self) -> None:
        self.run_worker(self._load_header(), group="node-header", exclusive=True,
                        exit_on_error=False)  # fmt: skip
        graphs = self.query_one(MetricsGraphs)
        self.run_worker(graphs.load(), group="node-graphs", exclusive=True, exit_on_error=False)

    def action_timeframe(self) -> None:
        graphs = self.query_one(MetricsGraphs)
        self.run_worker(graphs.load(next_timeframe(graphs.timeframe)), group="node-graphs",
                        exclusive=True, exit_on_error=False)  # fmt: skip

    def action_close(self) -> None:
        self.dismiss(None)
