"""What one refresh fetches from the core, and the guest actions the dashboard offers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from pydantic import BaseModel

from core.errors import LabdeckError
from core.models import ClusterOverview, Inventory, PoolInfo, PoolList
from core.service import Labdeck


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """One refresh: the inventory (required), pools and overview (best effort)."""

    inventory: Inventory
    pools: list[PoolInfo] | None
    overview: ClusterOverview | None

    @property
    def summary(self) -> str:
        nodes = self.inventory.nodes
        guests = self.inventory.guests
        online = sum(1 for n in nodes if n.status == "online")
        running = sum(1 for g in guests if g.status == "running")
        return f"nodes {online}/{len(nodes)} · guests {running}/{len(guests)} running"


async def _soft(call: Awaitable[BaseModel]) -> BaseModel | None:
    """A secondary read: a refusal (say, a token without Sys.Audit) must not blank the view."""
    try:
        return await call
    except LabdeckError:
        return None


async def fetch_snapshot(service: Labdeck) -> ClusterSnapshot:
    """The inventory first (its failure is the connection state), then pools and overview
    together; all three share the one cached ``/cluster/resources`` read."""
    inventory = await service.inventory()
    pools, overview = await asyncio.gather(
        _soft(service.call("pve_list_pools", {})),
        _soft(service.call("pve_cluster_overview", {})),
    )
    return ClusterSnapshot(
        inventory=inventory,
        pools=pools.pools if isinstance(pools, PoolList) else None,
        overview=overview if isinstance(overview, ClusterOverview) else None,
    )


@dataclass(frozen=True, slots=True)
class PowerAction:
    """A lifecycle action on one guest, bound to a key and to a catalogue operation."""

    name: str
    operation: str
    verb: str
    doing: str
    key: str
    #: statuses in which the action makes sense (the palette offers it only then)
    applies_to: frozenset[str]


POWER_ACTIONS: dict[str, PowerAction] = {
    a.name: a
    for a in (
        PowerAction("start", "pve_start_guest", "Start", "starting", "S",
                    frozenset({"stopped"})),
        PowerAction("shutdown", "pve_shutdown_guest", "Shut down", "shutting down", "D",
                    frozenset({"running", "paused"})),
        PowerAction("stop", "pve_stop_guest", "Stop", "stopping", "K",
                    frozenset({"running", "paused", "suspended"})),
        PowerAction("reboot", "pve_reboot_guest", "Reboot", "rebooting", "R",
                    frozenset({"running"})),
    )
}  # fmt: skip
