"""What one refresh fetches from the core, and the guest actions the dashboard offers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.errors import LabdeckError
from core.models import ClusterOverview, Guest, Inventory, PoolInfo, PoolList
from core.service import Labdeck
from tui.widgets.guest_table import guest_column_widths
from tui.widgets.node_table import guest_counts
from tui.widgets.truenas_guests import TrueNasGuests, fetch_truenas_guests

#: what a refresh shows for the cluster when the profile has no Proxmox VE cluster
NO_CLUSTER = Inventory(nodes=[], guests=[], storages=[], pools=[])
#: guests above which what the tables need from all of them is worked out in a worker
#: thread during the fetch (``GuestFigures``: ~20-30 ms at 5,000 guests the event loop
#: would spend)
FIGURES_IN_THREAD = 500


@dataclass(frozen=True, slots=True)
class GuestFigures:
    """What the guest and node tables need from all the guests, worked out once."""

    widths: dict[str, int]  # ``guest_column_widths``
    per_node: dict[str, tuple[int, int]]  # ``guest_counts``


def guest_figures(guests: list[Guest]) -> GuestFigures:
    return GuestFigures(guest_column_widths(guests), guest_counts(guests))


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """One refresh: the inventory (required), pools and overview (best effort).

    With a TrueNAS system configured, its guests too (best effort beside a cluster:
    ``truenas_error`` says why they are missing). ``pve`` is False for a profile with
    TrueNAS only; the inventory is then empty and TrueNAS's failure is the refresh's.
    """

    inventory: Inventory
    pools: list[PoolInfo] | None
    overview: ClusterOverview | None
    truenas: TrueNasGuests | None = None
    truenas_error: LabdeckError | None = field(default=None, compare=False)
    pve: bool = True
    #: ``guest_figures`` of the cluster's guests, when worked out off the loop
    figures: GuestFigures | None = field(default=None, compare=False)

    @property
    def summary(self) -> str:
        if not self.pve:
            return self.truenas.summary if self.truenas is not None else ""
        nodes = self.inventory.nodes
        guests = self.inventory.guests
        online = sum(1 for n in nodes if n.status == "online")
        if self.figures is not None:  # counted in the fetch's worker thread already
            running = sum(on_node for on_node, _ in self.figures.per_node.values())
        else:
            running = sum(1 for g in guests if g.status == "running")
        return f"nodes {online}/{len(nodes)} · guests {running}/{len(guests)} running"


async def _soft(service: Labdeck, operation: str) -> BaseModel | None:
    """A secondary read: a refusal (say, a token without Sys.Audit) must not blank the view.

    The call is made here, not handed in: a refresh cancelled before this ran would leave
    a call coroutine never awaited."""
    try:
        return await service.call(operation, {})
    except LabdeckError:
        return None


async def fetch_snapshot(
    service: Labdeck,
    previous: ClusterSnapshot | None = None,
    *,
    pools: bool = True,
    overview: bool = True,
) -> ClusterSnapshot:
    """The cluster and, when configured, the TrueNAS guests, side by side.

    ``previous`` (the last snapshot) saves asking TrueNAS its host name again, and gives
    what is not asked for again: the pools when ``pools`` is False (the Pools tab is not
    shown: their members cost a refresh of 5,000 guests more than the rest) and the
    overview (the cluster's name) when ``overview`` is False. Then a refresh is one
    request, ``/cluster/resources``.
    """
    known_host = previous.truenas.host if previous and previous.truenas else None
    kept: dict[str, Any] = {}
    if previous is not None:
        kept = {"pools": None if pools else previous.pools,
                "overview": None if overview else previous.overview}  # fmt: skip
    if not service.profile.truenas.configured:
        return await fetch_cluster(service, **kept)
    if not service.profile.pve.configured:
        alone = await fetch_truenas_guests(service, known_host)
        return ClusterSnapshot(NO_CLUSTER, None, None, truenas=alone, pve=False)
    beside = asyncio.ensure_future(_truenas_beside(service, known_host))
    try:
        cluster = await fetch_cluster(service, **kept)
    except BaseException:
        beside.cancel()
        raise
    truenas, error = await beside
    return ClusterSnapshot(
        cluster.inventory, cluster.pools, cluster.overview, truenas=truenas,
        truenas_error=error, figures=cluster.figures,
    )  # fmt: skip


async def _truenas_beside(
    service: Labdeck, host: str | None
) -> tuple[TrueNasGuests | None, LabdeckError | None]:
    """TrueNAS beside a cluster: its failure must not blank the cluster's guests."""
    try:
        return await fetch_truenas_guests(service, host), None
    except LabdeckError as exc:
        return None, exc


async def fetch_cluster(
    service: Labdeck,
    *,
    pools: list[PoolInfo] | None = None,
    overview: ClusterOverview | None = None,
) -> ClusterSnapshot:
    """The inventory first (its failure is the connection state), then pools and overview
    together; all three share the one cached ``/cluster/resources`` read. ``pools`` and
    ``overview``: those of an earlier refresh, kept instead of asking for them again."""
    inventory = await service.inventory()
    guests = inventory.guests
    figuring = (asyncio.to_thread(guest_figures, guests)
                if len(guests) > FIGURES_IN_THREAD else _none())  # fmt: skip
    fresh_pools, fresh_overview, figures = await asyncio.gather(
        _soft(service, "pve_list_pools") if pools is None else _none(),
        _soft(service, "pve_cluster_overview") if overview is None else _none(),
        figuring,
    )
    return ClusterSnapshot(
        inventory=inventory,
        pools=fresh_pools.pools if isinstance(fresh_pools, PoolList) else pools,
        overview=fresh_overview if isinstance(fresh_overview, ClusterOverview) else overview,
        figures=figures,
    )


async def _none() -> None:
    return None


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A write a person asked for from the dashboard: what to call, and how to say it.

    ``question`` and ``detail`` are the confirmation's (asked only for operations that need
    one, with writes allowed); ``label`` names the target in notifications; ``key`` tells
    concurrent actions apart in the header's activity line.
    """

    operation: str
    params: dict[str, Any]
    verb: str
    doing: str
    label: str
    question: str
    detail: str
    key: tuple[str, int | str]


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
