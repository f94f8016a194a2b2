"""Pools with their member guests, as a tree kept in step label by label."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from core.models import Guest, PoolInfo
from tui.formatting import STATUS_STYLES


def pool_label(pool: PoolInfo, guests: dict[int, Guest]) -> Text:
    members = [guests[m.vmid] for m in pool.members if m.vmid is not None and m.vmid in guests]
    running = sum(1 for g in members if g.status == "running")
    label = Text(pool.poolid, style="bold")
    label.append(f"  {running}/{len(members)} running", style="dim")
    if pool.comment:
        label.append(f"  {pool.comment}", style="italic")
    return label


def member_label(member_id: str, guest: Guest | None) -> Text:
    if guest is None:
        return Text(member_id, style="dim")
    label = Text(f"{guest.vmid:>5} ")
    label.append(f"{guest.name:<18}")
    label.append(f"{guest.kind:<5}{guest.node:<8}")
    label.append(guest.status, style=STATUS_STYLES.get(guest.status, ""))
    return label


class PoolTree(Tree[str]):
    """Root hidden; one branch per pool, one leaf per member (guest or storage)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("pools", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 3
        self._pools: dict[str, TreeNode[str]] = {}
        self._members: dict[tuple[str, str], TreeNode[str]] = {}
        self._labels: dict[int, Text] = {}

    def _set_label(self, node: TreeNode[str], label: Text) -> None:
        if self._labels.get(node.id) != label:
            node.set_label(label)
            self._labels[node.id] = label

    def show(self, pools: Iterable[PoolInfo], guests: Iterable[Guest]) -> None:
        by_vmid = {g.vmid: g for g in guests}
        seen_pools: set[str] = set()
        seen_members: set[tuple[str, str]] = set()
        for pool in pools:
            seen_pools.add(pool.poolid)
            branch = self._pools.get(pool.poolid)
            if branch is None:
                branch = self.root.add(pool.poolid, data=pool.poolid, expand=True)
                self._pools[pool.poolid] = branch
            self._set_label(branch, pool_label(pool, by_vmid))
            for member in pool.members:
                key = (pool.poolid, member.id)
                seen_members.add(key)
                leaf = self._members.get(key)
                if leaf is None:
                    leaf = branch.add_leaf(member.id, data=member.id)
                    self._members[key] = leaf
                guest = by_vmid.get(member.vmid) if member.vmid is not None else None
                self._set_label(leaf, member_label(member.id, guest))
        for key in [k for k in self._members if k not in seen_members]:
            self._labels.pop(self._members[key].id, None)
            self._members.pop(key).remove()
        for poolid in [p for p in self._pools if p not in seen_pools]:
            self._labels.pop(self._pools[poolid].id, None)
            self._pools.pop(poolid).remove()
