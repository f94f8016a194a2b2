"""Pools with their member guests, as a tree kept in step label by label."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from core.models import Guest, PoolInfo
from tui.formatting import STATUS_STYLES
from tui.screens.pool_forms import PoolEditor

if TYPE_CHECKING:
    from tui.app import LabdeckApp


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
    """Root hidden; one branch per pool, one leaf per member (guest or storage).

    The keys edit pools (forms and flows in ``tui.screens.pool_forms``).
    """

    BINDINGS = [
        Binding("n", "create_pool", "New pool", id="pools.create",
                tooltip="Create a resource pool (pool id and comment)."),
        Binding("a", "add_members", "Add guests", id="pools.add",
                tooltip="Add guests to the selected pool (pick them from a list)."),
        Binding("r", "remove_member", "Remove", id="pools.remove",
                tooltip="Remove the selected guest from its pool (asks first)."),
        Binding("e", "edit_comment", "Comment", id="pools.comment",
                tooltip="Change the selected pool's comment."),
        Binding("d", "delete_pool", "Delete pool", id="pools.delete",
                tooltip="Delete the selected pool (asks first; it must be empty)."),
    ]  # fmt: skip

    app: LabdeckApp

    def __init__(self, **kwargs: object) -> None:
        super().__init__("pools", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 3
        #: the pools shown, by id (what the editing keys act on)
        self.pools: dict[str, PoolInfo] = {}
        self._pools: dict[str, TreeNode[str]] = {}
        self._members: dict[tuple[str, str], TreeNode[str]] = {}
        self._labels: dict[int, Text] = {}

    def _set_label(self, node: TreeNode[str], label: Text) -> None:
        if self._labels.get(node.id) != label:
            node.set_label(label)
            self._labels[node.id] = label

    def show(self, pools: Iterable[PoolInfo], guests: Iterable[Guest]) -> None:
        by_vmid = {g.vmid: g for g in guests}
        pools = list(pools)
        self.pools = {pool.poolid: pool for pool in pools}
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

    # ------------------------------------------------------------------ editing

    def selected_pool(self) -> PoolInfo | None:
        """The pool under the cursor, or the pool of the member under it."""
        node = self.cursor_node
        if node is None or node is self.root:
            return None
        if node.parent is not None and node.parent is not self.root:
            node = node.parent
        return self.pools.get(str(node.data))

    def selected_guest(self) -> Guest | None:
        """The guest under the cursor (None on a pool or a storage member)."""
        node = self.cursor_node
        pool = self.selected_pool()
        if node is None or pool is None or node.parent is self.root:
            return None
        member = next((m for m in pool.members if m.id == node.data), None)
        if member is None or member.vmid is None:
            return None
        return next((g for g in self.app.guests() if g.vmid == member.vmid), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("add_members", "edit_comment", "delete_pool"):
            return True if self.selected_pool() is not None else None
        if action == "remove_member":
            return True if self.selected_guest() is not None else None
        return True

    def on_tree_node_highlighted(self) -> None:
        self.refresh_bindings()

    def action_create_pool(self) -> None:
        PoolEditor(self.app).create()

    def action_add_members(self) -> None:
        if (pool := self.selected_pool()) is not None:
            PoolEditor(self.app).add_members(pool)

    def action_edit_comment(self) -> None:
        if (pool := self.selected_pool()) is not None:
            PoolEditor(self.app).edit_comment(pool)

    def action_delete_pool(self) -> None:
        if (pool := self.selected_pool()) is not None:
            PoolEditor(self.app).delete(pool)

    def action_remove_member(self) -> None:
        pool, guest = self.selected_pool(), self.selected_guest()
        if pool is not None and guest is not None:
            PoolEditor(self.app).remove_member(pool, guest)
