"""The command palette (ctrl+p): dashboard actions, views, and jumping to a guest, a node or
a pool by name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.errors import LabdeckError
from core.models import Guest, Table
from tui.data import POWER_ACTIONS
from tui.formatting import guest_label
from tui.screens.pool_forms import PoolEditor
from tui.widgets.truenas_power import truenas_guest_commands

if TYPE_CHECKING:
    from tui.app import LabdeckApp

Command = tuple[str, Callable[[], object], str]


def guest_commands(app: LabdeckApp, action: str | None) -> list[Command]:
    """One command per guest the action applies to (``None``: jump to the guest)."""
    commands: list[Command] = []
    for guest in sorted(app.guests(), key=lambda g: g.vmid):
        where = f"{guest.kind} on {guest.node}, {guest.status}"
        if action is None:
            commands.append((guest_label(guest), partial(app.select_guest, guest.vmid), where))
        elif guest.status in POWER_ACTIONS[action].applies_to and not guest.template:
            commands.append((guest_label(guest), partial(app.request_power, action, guest), where))
    return commands


def exec_guest_commands(app: LabdeckApp) -> list[Command]:
    """One command per VM (containers and templates have no guest exec)."""
    return [
        (guest_label(guest), partial(app.open_command_pane, guest),
         f"VM on {guest.node}, {guest.status}")
        for guest in sorted(app.guests(), key=lambda g: g.vmid)
        if guest.kind == "qemu" and not guest.template
    ]  # fmt: skip


#: how long the palette waits for TrueNAS's dataset names before it offers no dataset
DATASETS_WAIT_S = 3.0


async def dataset_names(app: LabdeckApp) -> list[str]:
    """TrueNAS's datasets, for the palette (none when TrueNAS is absent, slow or failing:
    the palette must open at once whatever TrueNAS does)."""
    if not app.service.profile.truenas.configured:
        return []
    try:
        async with asyncio.timeout(DATASETS_WAIT_S):
            table = await app.service.call("truenas_list_datasets", {"fields": ["name", "type"]})
    except (LabdeckError, TimeoutError):
        return []
    assert isinstance(table, Table)
    return [str(row[0]) for row in table.rows]


class LabdeckCommands(Provider):
    """Built each time the palette opens, from the guests the dashboard shows right now
    (and the TrueNAS datasets, fetched once as it opens)."""

    _datasets: list[str] = []

    async def startup(self) -> None:
        self._datasets = await dataset_names(self.labdeck)

    @property
    def labdeck(self) -> LabdeckApp:
        return self.app  # type: ignore[return-value]

    def _general(self) -> Iterator[Command]:
        app = self.labdeck
        yield "Refresh", app.action_refresh, "Fetch the cluster state now (ctrl+r)."
        for view in ("guests", "nodes", "pools", "commands", "storage", "truenas", "tasks"):
            yield f"Go to {view}", partial(app.action_show_view, view), f"Show the {view} view."
        yield "New pool…", PoolEditor(app).create, "Create a resource pool (n in the pools view)."
        yield "Go to guest…", partial(app.pick_guest, None), "Pick a guest by name or vmid."
        yield "Filter guests…", app.action_filter_guests, "Type to filter the guests table (/)."
        for action in POWER_ACTIONS.values():
            yield (
                f"{action.verb} guest…",
                partial(app.pick_guest, action.name),
                f"Pick a guest to {action.verb.lower()} ({action.key} on the selected one).",
            )
        yield (
            "Run command in guest…",
            app.pick_exec_guest,
            "Pick a VM and open its command pane (x on the selected one).",
        )
        yield "Help", app.action_help, "Every key of the dashboard (F1)."

    def _direct(self, guest: Guest) -> Iterator[Command]:
        app = self.labdeck
        label = guest_label(guest)
        where = f"{guest.kind} on {guest.node}, {guest.status}"
        yield f"Go to guest {label}", partial(app.select_guest, guest.vmid), where
        for action in POWER_ACTIONS.values():
            if guest.status in action.applies_to and not guest.template:
                yield (
                    f"{action.verb} guest {label}",
                    partial(app.request_power, action.name, guest),
                    where,
                )
        if guest.kind == "qemu" and not guest.template:
            yield f"Run command in guest {label}", partial(app.open_command_pane, guest), where

    async def discover(self) -> Hits:
        for text, command, help_text in self._general():
            yield DiscoveryHit(text, command, help=help_text)

    def _places(self) -> Iterator[Command]:
        """Nodes and pools of the last refresh, and TrueNAS datasets, to jump to by name."""
        app = self.labdeck
        snapshot = app.snapshot
        nodes = snapshot.inventory.nodes if snapshot else []
        for node in nodes:
            guests = sum(1 for g in app.guests() if g.node == node.node)
            where = f"node, {node.status}, {guests} guests"
            yield f"Go to node {node.node}", partial(app.select_node, node.node), where
        for pool in (snapshot.pools if snapshot else None) or []:
            comment = f": {pool.comment}" if pool.comment else ""
            where = f"pool, {len(pool.members)} members{comment}"
            yield f"Go to pool {pool.poolid}", partial(app.select_pool, pool.poolid), where
        for dataset in self._datasets:
            yield (
                f"Go to dataset {dataset}",
                partial(app.select_dataset, dataset),
                "TrueNAS dataset",
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        commands = [*self._general(), *self._places()]
        for guest in self.labdeck.guests():
            commands.extend(self._direct(guest))
        commands.extend(truenas_guest_commands(self.labdeck))
        for text, command, help_text in commands:
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
