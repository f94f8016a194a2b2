"""The left side of the TrueNAS view: pools with health and usage, and the dataset tree."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table as RichTable
from rich.text import Text
from textual.message import Message
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from core.truenas_results import TrueNasPool
from tui.formatting import short_bytes, status_text, usage_bar


def _pool_problem(pool: TrueNasPool) -> Text | None:
    """One line under an unhealthy pool: why, and which disks."""
    if pool.healthy:
        return None
    disks = sorted({d for vdev in pool.vdevs for d in vdev.unhealthy_disks})
    line = Text(f"{pool.name}: ", style="bold yellow", no_wrap=True, overflow="ellipsis")
    line.append(pool.status_detail or pool.status, style="yellow")
    if disks:
        line.append(f" ({', '.join(disks)})", style="yellow")
    return line


def pools_view(pools: Iterable[TrueNasPool]) -> RenderableType:
    """Name, health, a usage bar, used/size and percent; unhealthy pools say why below."""
    grid = RichTable.grid(padding=(0, 1), expand=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, min_width=4)
    grid.add_column(justify="right", no_wrap=True)
    problems: list[Text] = []
    shown = False
    for pool in pools:
        shown = True
        size, used = pool.size or 0, pool.allocated or 0
        share = f"{used * 100 // size}%" if size else "-"
        usage = f"{short_bytes(used)}/{short_bytes(size)} {share:>3}" if size else "-"
        grid.add_row(pool.name, status_text(pool.status), usage_bar(used, size), usage)
        problem = _pool_problem(pool)
        if problem is not None:
            problems.append(problem)
    if not shown:
        return Text("No pools.", style="dim italic")
    return Group(grid, *problems)


class PoolsPanel(Static):
    """The pools, a few lines; ``show`` new data."""

    def show(self, pools: Iterable[TrueNasPool]) -> None:
        self.update(pools_view(pools))


def dataset_label(row: dict[str, Any]) -> Text:
    """``media  7.3T / 16T  zstd``: the last name part, used / available, compression."""
    name = str(row["name"])
    root = "/" not in name
    label = Text(name.rsplit("/", 1)[-1], style="bold" if root else "")
    if row.get("type") == "VOLUME":
        label.append(" zvol", style="italic")
    used, avail = row.get("used"), row.get("available")
    sizes = f"  {short_bytes(used or 0)} / {short_bytes(avail or 0)}"
    label.append(sizes, style="dim")
    if row.get("quota"):
        label.append(f"  quota {short_bytes(int(row['quota']))}", style="dim")
    compression = str(row.get("compression") or "").lower()
    if compression and compression != "off":
        label.append(f"  {compression}", style="dim italic")
    return label


class DatasetTree(Tree[str]):
    """Datasets nested by name (root hidden), kept in step label by label like PoolTree.

    Each node's data is the full dataset name; moving the cursor posts ``Chosen``.
    """

    class Chosen(Message):
        """The dataset under the cursor changed."""

        def __init__(self, dataset: str | None) -> None:
            super().__init__()
            self.dataset = dataset

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("datasets", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self._by_name: dict[str, TreeNode[str]] = {}
        self._labels: dict[str, Text] = {}

    @property
    def dataset(self) -> str | None:
        node = self.cursor_node
        return None if node is None else node.data

    def show(self, rows: list[dict[str, Any]]) -> None:
        """Bring the tree in step with ``truenas_list_datasets`` rows (sorted by name)."""
        wanted = {str(r["name"]): r for r in rows}
        for name in sorted(self._by_name, key=len, reverse=True):  # children before parents
            if name not in wanted:
                self._labels.pop(name, None)
                self._by_name.pop(name).remove()
        first = not self._by_name
        for name in sorted(wanted):
            label = dataset_label(wanted[name])
            node = self._by_name.get(name)
            if node is None:
                parent = self._by_name.get(name.rsplit("/", 1)[0]) if "/" in name else None
                node = (parent or self.root).add(label, data=name, expand=True)
                self._by_name[name] = node
            elif self._labels.get(name) != label:
                node.set_label(label)
            self._labels[name] = label
        for node in self._by_name.values():
            node.allow_expand = bool(node.children)  # no arrow on a leaf
        if first and self._by_name:
            self.move_cursor_to_line(0)  # highlights it: Chosen follows

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        event.stop()
        self.post_message(self.Chosen(event.node.data))
